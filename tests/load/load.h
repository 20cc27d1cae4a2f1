/* chatdesk-load: shared declarations of the load generator (see main.c for the why). */
#ifndef CHATDESK_LOAD_H
#define CHATDESK_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LD_MAX_NODES 16
#define LD_MAX_PROCS 32
#define LD_MAX_PIDS 16

/* ---------- time ---------- */
uint64_t ld_now_ns(void); /* CLOCK_MONOTONIC: the same clock in every process */
uint64_t ld_wall_ms(void);
uint64_t ld_self_cpu_us(void); /* this process: user + system */

/* ---------- histogram (log-linear, ~1% precision, ns values) ---------- */
#define LD_HIST_SUB 128 /* buckets per power of two */
#define LD_HIST_POW 40  /* up to 2^40 ns (~18 min) */
typedef struct ld_hist {
    uint64_t count;
    uint64_t max;
    uint64_t sum;
    uint32_t b[LD_HIST_POW * LD_HIST_SUB];
} ld_hist;
void ld_hist_add(ld_hist *h, uint64_t v);
void ld_hist_merge(ld_hist *dst, const ld_hist *src);
uint64_t ld_hist_pct(const ld_hist *h, double pct); /* 0..100 */

/* ---------- small JSON scanning (server frames are compact, keys are unique per level) ---------- */
/* Finds "key":"<string>" at or after p; copies at most n-1 bytes; returns the length or -1. */
int ld_json_str(const char *p, size_t len, const char *key, char *out, size_t n);
/* Finds "key":<integer>; returns 0 or -1. */
int ld_json_int(const char *p, size_t len, const char *key, int64_t *out);
/* The frame's "type" (the first key of every server frame); returns its length or -1. */
int ld_frame_type(const char *p, size_t len, char *out, size_t n);
const char *ld_memmem(const char *h, size_t hl, const char *n, size_t nl);

/* ---------- /proc ---------- */
long ld_proc_rss_kb(pid_t pid);    /* VmRSS, -1 on error */
long ld_proc_cpu_ticks(pid_t pid); /* utime+stime (all threads), -1 on error */
long ld_ticks_per_sec(void);
/* whole machine from /proc/stat: busy (non-idle, non-iowait) and total ticks */
int ld_machine_ticks(long long *busy, long long *total);

/* ---------- blocking helpers for setup (parent only) ---------- */
/* Runs argv (no shell) with stdout captured into out (NUL-terminated); returns exit code or -1. */
int ld_run(char *const argv[], char *out, size_t outn, int timeout_s);
/* One HTTP/1.1 request on 127.0.0.1:port; returns the status, the body in out. */
int ld_http(const char *host, int port, const char *method, const char *path, const char *body, char *out, size_t outn,
            int timeout_ms);
/* The same with "Authorization: Bearer <token>" (token NULL: none). */
int ld_http_auth(const char *host, int port, const char *method, const char *path, const char *token, const char *body,
                 char *out, size_t outn, int timeout_ms);
/* Sum of a Prometheus counter over the nodes' /metrics (-1 when no node answered). */
long long ld_metric(const char *host, const int *ports, int nports, const char *name);

/* ---------- the event loop and WebSocket client (one per worker process) ---------- */
typedef struct ld_conn ld_conn;
typedef struct ld_loop ld_loop;

typedef enum {
    LD_C_IDLE = 0,   /* not connected */
    LD_C_CONNECTING, /* TCP connect in progress */
    LD_C_UPGRADING,  /* HTTP upgrade sent, waiting for 101 */
    LD_C_OPEN,       /* WebSocket open */
} ld_cstate;

typedef struct ld_target {
    char host[64];
    int port;
} ld_target;

struct ld_conn {
    int fd;
    uint8_t state;
    uint8_t role;     /* 'v' visitor, 'a' agent */
    uint8_t closing;  /* we sent a close frame */
    uint8_t want_out; /* EPOLLOUT armed */
    uint8_t pending;  /* scenario: handshake/hello not finished yet */
    uint8_t attempts; /* scenario: connection attempts in the prep phase */
    uint16_t close_code;
    int node;     /* index into the loop's targets */
    uint32_t src; /* source address 127.0.0.<src> */
    uint32_t idx; /* index within the worker (scenario-defined meaning) */
    char *rbuf;   /* partial inbound bytes (heap, only while a frame is split) */
    uint32_t rlen, rcap;
    char *wbuf; /* unsent outbound bytes */
    uint32_t wlen, wcap, woff;
    uint64_t t_connect; /* when the TCP connect started (ns) */
    void *ud;           /* scenario state */
};

typedef struct ld_callbacks {
    void (*on_open)(ld_loop *l, ld_conn *c);                                   /* WebSocket open */
    void (*on_frame)(ld_loop *l, ld_conn *c, char *p, size_t n, uint64_t now); /* one text frame */
    void (*on_close)(ld_loop *l, ld_conn *c, int code, const char *why);       /* closed (any reason) */
    void (*on_tick)(ld_loop *l, uint64_t now);                                 /* every loop iteration */
} ld_callbacks;

struct ld_loop {
    int ep;
    int tfd; /* timerfd for precise wake-ups */
    ld_target targets[LD_MAX_NODES];
    int ntargets;
    char origin[256];
    ld_callbacks cb;
    void *ud;
    char *scratch; /* read buffer */
    size_t scratch_n;
    uint64_t next_wake; /* ns; 0 = none */
    /* counters */
    uint64_t connect_errors, upgrade_errors, io_errors, frames_in, frames_out, bytes_in, bytes_out;
    uint64_t pings_in;
    int status_seen[6]; /* HTTP status classes of refused upgrades: [4] 4xx [5] 5xx */
    uint32_t rng;
};

int ld_loop_init(ld_loop *l, const ld_target *t, int nt, const char *origin, const ld_callbacks *cb, void *ud);
void ld_loop_free(ld_loop *l);
/* Starts a connection to path ("/ws/visitor") on target node from 127.0.0.<src>; 0 or -1. */
int ld_conn_start(ld_loop *l, ld_conn *c, int node, uint32_t src, const char *path);
/* Sends one text frame (masked); 0 or -1 (the connection is then closed). */
int ld_send_text(ld_loop *l, ld_conn *c, const char *p, size_t n);
/* Sends a close frame with code and closes once the peer answers (or at once when abort). */
void ld_conn_close(ld_loop *l, ld_conn *c, int code, bool abort_rst);
/* Runs the loop once, waiting at most max_wait_ns; returns the number of events. */
int ld_loop_run_once(ld_loop *l, uint64_t max_wait_ns);
/* Asks for a wake-up at t (ns, monotonic) at the latest. */
void ld_loop_wake_at(ld_loop *l, uint64_t t);
uint32_t ld_rand(ld_loop *l);

/* ---------- the plan shared between parent and workers ---------- */
typedef enum { SC_IDLE, SC_CHAT, SC_FANOUT, SC_STORM } ld_scenario;

typedef struct ld_opts {
    ld_scenario sc;
    const char *sc_name;
    ld_target targets[LD_MAX_NODES];
    int ntargets;
    pid_t pids[LD_MAX_PIDS];
    int npids;
    pid_t redis_pid;
    const char *redis_url;
    const char *chatdeskd;
    char origin[256];
    int procs;
    int src_ips;
    int conns;       /* idle, storm */
    int visitors;    /* chat, fanout (senders) */
    int agents;      /* chat, fanout: agent accounts */
    int agent_conns; /* fanout: connections per agent account */
    double rate;     /* chat: msgs/s; fanout: conversation starts/s */
    double duration; /* s */
    double warmup;   /* s (chat: sending before the measured window) */
    double drain;    /* s */
    int window;      /* in-flight connects per process */
    int jitter_ms;   /* storm */
    int body;        /* chat: body bytes */
    int timeout_s;   /* hard limit of the whole run */
    int setup_jobs;  /* parallel admin/login calls */
    bool quiet;
    bool features;           /* chat: every site gets automation rules (and a webhook) */
    const char *webhook_url; /* with --features: a webhook to this URL for message.created */
    bool storm_send;         /* storm: one unacked message per client right before the drop */
    const char *tag;
    char run_id[32];
} ld_opts;

/* Per-worker accounts prepared by the parent (setup). */
typedef struct ld_account {
    char site[72];
    char token[1024]; /* agent login token */
} ld_account;

/* Results written by each worker into shared memory. */
typedef struct ld_wres {
    volatile int ready, done, failed, sent_done;
    char err[256];
    char first_error[160]; /* the first error frame a worker saw */
    uint64_t conns_target, conns_open, conns_per_node[LD_MAX_NODES];
    uint64_t t_first, t_all_open; /* ns */
    uint64_t connect_errors, upgrade_errors, io_errors, closes, close_codes_other;
    uint64_t errors, err_rate_limited, err_unavailable;
    /* chat */
    uint64_t acked_in_window, delivered_in_window; /* by arrival time: the throughput */
    uint64_t sent, acked, delivered, echoes, lost, lost_echo, dup, gaps, unacked, sent_window, acked_window,
        delivered_window;
    uint64_t assigned;
    /* fanout */
    uint64_t events, deliveries, deliveries_window, agent_conns;
    /* storm */
    uint64_t resumed, resume_fail, recovered_false, retries, storm_lost, storm_dup, t_last_resumed, replayed;
    uint64_t bytes_in, bytes_out, frames_in, frames_out;
    uint64_t cpu_us[4]; /* the worker's own CPU at: go, window start, window end, done */
    ld_hist lat;        /* chat: one-way visitor -> agent; fanout: per delivery; storm: reconnect->resumed */
    ld_hist ack_lat;    /* chat: send -> ok */
    ld_hist lag;        /* open-loop schedule lag */
} ld_wres;

typedef struct ld_fan_ev {
    uint32_t count;
    uint32_t max_us;
} ld_fan_ev;

typedef struct ld_shared {
    volatile int go;   /* 1 = start the measured phase */
    volatile int stop; /* 1 = stop now */
    uint64_t t_go;     /* ns */
    int nworkers;
    uint32_t fan_max_events; /* per sender worker */
    ld_wres w[LD_MAX_PROCS];
    /* fanout: [receiver worker][sender worker * fan_max_events + j] follows */
} ld_shared;

ld_fan_ev *ld_fan_table(ld_shared *sh, int receiver);

/* worker entry (scenarios.c) */
int ld_worker(const ld_opts *o, ld_shared *sh, int w, const ld_account *acc, int nacc);

#endif
