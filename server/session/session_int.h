/* session module internals shared by session.c (lifetime, queue, delivery, resume,
 * dispatch), handlers_*.c (one handler per row of CD_PROTO_FRAMES) and node.c. */
#ifndef CHATDESK_SESSION_INT_H
#define CHATDESK_SESSION_INT_H

#include <uv.h>

#include "chatdesk/conv.h"
#include "chatdesk/events.h"
#include "chatdesk/node.h"
#include "chatdesk/presence.h"
#include "chatdesk/route.h"
#include "chatdesk/session.h"

typedef enum sess_state { SESS_AWAIT_HELLO, SESS_HELLO_PENDING, SESS_ACTIVE, SESS_CLOSING } sess_state;

/* One subscription of a session: a conversation (with its seq cursor) or a
 * site/agent channel. */
typedef struct sess_sub {
    cd_hub_sub hub; /* first member: deliver() casts back */
    cd_session *s;
    struct sess_sub *next;
    bool is_conv;
    bool backfilling;
    int64_t last_seq;
    int64_t pending_max; /* highest seq seen while backfilling */
    /* a replay larger than half the outbound queue goes page by page as the queue drains */
    bool paging, page_inflight;
    int page_kind; /* resume (answered with "resumed") or backfill */
    int64_t page_after;
    char *page_epoch; /* heap, while paging */
    char id[160];     /* conversation id (conv subs) */
} sess_sub;

typedef struct outq_item {
    struct outq_item *next;
    cd_frame *f;
} outq_item;

struct cd_session {
    cd_node *node;
    void *conn; /* NULL once detached */
    cd_session_role role;
    sess_state state;
    int refs;                       /* the connection + each pending request */
    struct cd_session *prev, *next; /* node's list */
    uint64_t hello_deadline;        /* mono ms */
    char *origin;                   /* heap: idle connections stay small */
    char site_hint[80];

    /* identity after hello */
    char id[80];
    char *name;         /* agent's display name (heap), NULL for visitors */
    char site[80];      /* visitor's site */
    char *profile;      /* anonymous visitor without a record yet: its hello's profile (heap), else NULL */
    char **sites;       /* agent's sites */
    char *sites_joined; /* the same as " s1 s2 " for msg_send's access check (heap) */
    size_t n_sites;
    char author_key[96]; /* "<kind>:<id>" */
    int64_t token_epoch; /* agent: its login token's epoch and id (revocation) */
    char jti[40];
    bool totp; /* agent: two-factor login is on (a site turning on require_2fa closes the others) */

    sess_sub *subs;
    cd_ratelimit rl;
    int strikes;

    outq_item *qhead, *qtail;
    int npaging; /* subs replaying page by page (continue_paging) */
    size_t qcount, qbytes;
    uint64_t probe_sent_ms; /* the unanswered delivery ping's time (its payload), 0: none */
    uint64_t probe_ok_ms;   /* the last answered one, or the session's start */

    char *viewing;         /* agent: the conversation it last said it views (heap), NULL: none */
    bool presence_counted; /* agent: counted in the node's presence map */
    bool close_when_idle;  /* draining: close 1001 once the pending requests are answered */
    int close_code;
    char close_reason[64];
    bool close_flush;
};

struct cd_node {
    uv_loop_t *loop;
    const cd_config *cfg;
    cd_store *st;
    cd_hub *hub;
    cd_session_io io;
    cd_proto_limits lim;
    cd_node_keyring *keys;       /* the token keyring (node/) */
    cd_node_sites *sites;        /* the site cache and origins (node/) */
    cd_node_cron *cron;          /* the one tick (node/) */
    cd_presence_local *presence; /* this node's agents (presence/) */
    cd_session *sessions;        /* list head */
    size_t nsessions;
    bool draining;
    uint64_t store_down_since; /* when the sweep first found Redis down (0: up) */
    bool shedding;             /* redis_down_close_ms passed: connections closed */
    cd_hub_sub sites_sub;
    cd_hub_sub timers_sub; /* "timers": a timer was set (when its site needs a poll) */
    void (*notice_fn)(void *ctx, const char *p, size_t len); /* other notices there */
    void *notice_ctx;
    cd_node_stats stats;
    char node_id[128];
    cd_timers *timers;      /* the timer poller and its kind -> handler registry */
    cd_events *events;      /* the sites' event consumers (server/events) */
    cd_node_gauges *gauges; /* operational gauges for /metrics (node/gauges.c) */
};

/* The agent's dashboard closed: the conversation it viewed forgets it at once (others
 * see it leave) rather than after viewer_ttl_ms (handlers_conv.c). */
void cd_session__viewing_end(cd_session *s);

/* ---- requests (session.c) ---- */

typedef enum sess_op_kind { OP_PLAIN, OP_RESUME, OP_BACKFILL } sess_op_kind;

/* One request in flight: holds a reference on its session until cd_session__op_done. */
typedef struct sess_op {
    cd_session *s;
    sess_op_kind kind;
    cd_frame_type type;
    char rid[80];
    bool has_rid;
    char cid[160];
    int64_t after_seq;
} sess_op;

#define RID(o) ((o)->has_rid ? (o)->rid : NULL)

sess_op *cd_session__op_new(cd_session *s, const cd_req *req);
void cd_session__op_done(sess_op *o);
void cd_session__unref(cd_session *s);
/* The session as the author of a conv/ call. */
cd_conv_author cd_session__author(cd_session *s);
/* rc != 0 (the call could not start): answer unavailable and finish o; true then. */
bool cd_session__start_failed(cd_session *s, sess_op *o, int rc);
/* r is an error: answer it (if connected); true then. */
bool cd_session__reply_failed(sess_op *o, cd_conv_result *r);
/* Queue a frame (taken); over the queue's limits the session closes with 4008. */
void cd_session__enqueue(cd_session *s, cd_frame *f);
void cd_session__send_error(cd_session *s, const char *rid, cd_err code, const char *msg);
void cd_session__send_ok(cd_session *s, const char *rid, size_t n, const char *const *keys, const char *const *raws);
sess_sub *cd_session__find_conv(cd_session *s, const char *cid);
sess_sub *cd_session__join(cd_session *s, const char *topic, bool is_conv, const char *cid, int64_t last_seq);
sess_sub *cd_session__join_conv(cd_session *s, const char *cid, int64_t last_seq);
/* Replay what follows the sub's last seq from history (one at a time per sub). */
void cd_session__backfill(sess_sub *sub);
void cd_session__start_resumes(cd_session *s, const cd_req *req);
/* A ticket's SLA clocks follow its conversation's new state (handlers_conv.c). */
void cd_session__sla_sync(cd_session *s, const char *site, const char *cid);

/* ---- handlers: one per row of CD_PROTO_FRAMES (handlers_*.c, session.c) ---- */

#define CD_SESSION_HANDLER(e, name, roles, h) void cd_session__h_##h(cd_session *s, const cd_req *req);
CD_PROTO_FRAMES(CD_SESSION_HANDLER)
#undef CD_SESSION_HANDLER
/* The first hello of a connection (handlers_hello.c). */
void cd_session__hello(cd_session *s, const cd_req *req);

void cd_session__sweep(cd_node *n, uint64_t now);
void cd_session__resync(cd_session *s);
/* Conversations given to an agent by a script this node ran: its sessions here follow
 * them and get conversation.assigned, unless the bus event got there first. */
void cd_session__handover(cd_node *n, const cd_route_assigned *as);

#endif
