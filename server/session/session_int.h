/* session module internals shared by node.c and session.c. */
#ifndef CHATDESK_SESSION_INT_H
#define CHATDESK_SESSION_INT_H

#include <uv.h>

#include "chatdesk/conv.h"
#include "chatdesk/events.h"
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

    sess_sub *subs;
    cd_ratelimit rl;
    int strikes;

    outq_item *qhead, *qtail;
    int npaging; /* subs replaying page by page (continue_paging) */
    size_t qcount, qbytes;

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
    cd_auth_keyring keys;
    bool keys_ready;
    bool keys_loading;
    cd_conv_site *sites;
    size_t n_sites;
    bool sites_loading, sites_again;
    char **agent_origins;
    size_t n_agent_origins;
    cd_session *sessions; /* list head */
    size_t nsessions;
    bool draining;
    uint64_t store_down_since; /* when the sweep first found Redis down (0: up) */
    bool shedding;             /* redis_down_close_ms passed: connections closed */
    uv_timer_t sweep;
    uint64_t sites_loaded_at;
    cd_hub_sub sites_sub;
    cd_hub_sub timers_sub; /* "timers": a timer was set (when its site needs a poll) */
    cd_node_stats stats;
    char node_id[128];
    cd_map agents; /* agent id -> live local connections (uintptr_t) */
    uint64_t last_beat, last_presence_sweep, last_timer_poll;
    int timer_polls;   /* timers_claim calls in flight (one per site of the site cache) */
    cd_events *events; /* the sites' event consumers (server/events) */
    /* reports: operational gauges for /metrics (metrics_ops.lua), polled every few s */
    char *ops_text;
    uint64_t last_ops_poll;
    bool ops_busy;
};

const cd_conv_site *cd_session__site(cd_node *n, const char *key);
/* The site's business intervals for SLA scripts ("*" when unknown or 24x7); cached. */
const char *cd_session__intervals(cd_node *n, const char *site_key);
void cd_session__sweep(cd_node *n, uint64_t now);
void cd_session__resync(cd_session *s);
/* An agent session became active / went away on this node (presence). */
void cd_session__agent_up(cd_node *n, const char *aid);
void cd_session__agent_down(cd_node *n, const char *aid);
/* Conversations given to an agent by a script this node ran: its sessions here follow
 * them and get conversation.assigned, unless the bus event got there first. */
void cd_session__handover(cd_node *n, const cd_conv_assigned *as);

#endif
