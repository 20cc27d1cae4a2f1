/* ws: the lws protocol callback for /ws/visitor and /ws/agent (and, through it,
 * HTTP, which lws delivers to the same first protocol). */
#ifndef CHATDESK_WS_H
#define CHATDESK_WS_H

#include <stddef.h>

#include "chatdesk/base.h"
#include "chatdesk/config.h"
#include "chatdesk/session.h"
#include "chatdesk/store.h"

struct lws;
struct uv_loop_s;

/* The lws context user pointer. */
typedef struct cd_ws_ctx {
    struct uv_loop_s *loop;
    const cd_config *cfg;
    cd_store *st;
    cd_node *node;
    const char *node_id;
    const char *static_dir; /* widget.js, demo/, app/; NULL when none was found */
    cd_map ip_conns;        /* client address -> connection count */
    /* public API token buckets, by a hash of the client address (collisions share one) */
    cd_ratelimit public_rl[1024];
    cd_ratelimit conn_rl[1024];               /* new connections per client address (conn_rate_per_ip) */
    unsigned long long conn_rate_refused;     /* upgrades refused by conn_rl */
    cd_ratelimit login_rl[1024];              /* logins per client address (login_rate_per_ip a minute) */
    unsigned long long login_rate_refused;    /* logins refused by login_rl */
    unsigned long long login_account_refused; /* logins refused for the account's failures */
    size_t hash_jobs;                         /* password hashes queued or running (hash_queue_max) */
    unsigned long long hash_refused;          /* requests refused for a full hash queue */
    /* the front door (server/door.c): connections refused or ended before their request
     * head was complete */
    unsigned long long door_refused;   /* over max_pending_per_ip (429) */
    unsigned long long door_timeouts;  /* head not complete in header_timeout_s (408) */
    unsigned long long door_too_large; /* head over max_header_bytes or its line limits (431) */
} cd_ws_ctx;

/* true when ip is one of cfg->trusted_proxies. */
bool cd_ws_trusted_proxy(const cd_config *cfg, const char *ip);

/* The client's address: the peer, or when the peer is one of trusted_proxies the last
 * address of its X-Forwarded-For (the one the proxy saw). */
void cd_ws_client_ip(struct lws *wsi, const cd_config *cfg, char *out, size_t outsz);

/* Per-connection storage (lws "per session data"). */
typedef struct cd_ws_pss {
    cd_session *s;
    cd_buf rx;  /* message reassembly */
    void *http; /* http.c state */
    char ip[64];
    unsigned counted : 1;
    unsigned close_sent : 1; /* our close frame is out; waiting for the peer's */
} cd_ws_pss;

int cd_ws_callback(struct lws *wsi, int reason, void *user, void *in, size_t len);
extern const cd_session_io cd_ws_io;

#endif
