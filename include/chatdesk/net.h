/* net: the one lws callback of the node and the client address. lws delivers every
 * reason of a connection, HTTP or WebSocket, to the first protocol's callback; net routes
 * each reason to ws/ (upgrades, frames, close codes) or http/ (requests and responses),
 * so neither of those two needs the other (the http <-> ws include cycle this module
 * replaces). It also owns what both share: the lws context's user data (cd_net_ctx), the
 * per-connection storage (cd_net_pss) and the client's address behind trusted proxies.
 * The two sides are handed to net as functions in cd_net_ctx (server.c sets them), so
 * net sits below ws/ and http/ and the include graph has no cycle. */
#ifndef CHATDESK_NET_H
#define CHATDESK_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatdesk/base.h"
#include "chatdesk/config.h"
#include "chatdesk/session.h"
#include "chatdesk/store.h"

struct lws;
struct uv_loop_s;

struct cd_net_pss;
typedef struct cd_net_refusal cd_net_refusal;

/* One side's callback: the reasons it handles (*handled set), and what lws must get. */
typedef int (*cd_net_side_fn)(struct lws *wsi, int reason, struct cd_net_pss *pss, void *in, size_t len, int *handled);

/* The lws context user pointer. */
typedef struct cd_net_ctx {
    /* the two sides (server.c): ws/ (upgrade check, WebSocket reasons), http/ (the rest,
     * and the answer to a refused upgrade) */
    int (*ws_upgrade)(struct lws *wsi, cd_net_refusal *why);
    cd_net_side_fn ws, http;
    int (*http_error)(struct lws *wsi, int status, const char *code, const char *message);
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
    unsigned long long door_malformed; /* request target with a NUL or control character (400) */
    /* attachments (http/files.c) */
    struct cd_files_s3 *files_s3;      /* files_store s3: the store client; NULL for local */
    cd_ratelimit upload_rl[1024];      /* uploads per client address (file_upload_rate) */
    unsigned long long files_uploads;  /* uploads stored by this node */
    unsigned long long files_bytes;    /* their bytes */
    unsigned long long files_rejected; /* uploads refused: type, size, rate, malformed */
    /* the file store's health on /healthz: why the last probe or storage operation
     * failed, "" when it worked (http/files.c cd_http__files_probe) */
    char files_error[200];
    uint64_t files_probed_ms; /* when the last probe started (monotonic) */
    bool files_probing;
    bool files_known; /* a probe or an operation has said */
} cd_net_ctx;

/* Per-connection storage (lws "per session data"): the ws side uses s/rx/ip/counted/
 * close_sent, the http side its own state behind http. */
typedef struct cd_net_pss {
    cd_session *s;
    cd_buf rx;  /* message reassembly */
    void *http; /* http.c state */
    char ip[64];
    unsigned counted : 1;
    unsigned close_sent : 1; /* our close frame is out; waiting for the peer's */
} cd_net_pss;

/* Why ws/ refuses an upgrade: net answers it as an HTTP error through http/. */
struct cd_net_refusal {
    int status;
    const char *code;
    const char *message;
};

/* The lws protocol callback (lws_callback_function) of the node's one protocol. */
int cd_net_callback(struct lws *wsi, int reason, void *user, void *in, size_t len);

/* true when ip is one of cfg->trusted_proxies. */
bool cd_net_trusted_proxy(const cd_config *cfg, const char *ip);

/* The client's address: the peer, or when the peer is one of trusted_proxies the last
 * address of its X-Forwarded-For (the one the proxy saw). */
void cd_net_client_ip(struct lws *wsi, const cd_config *cfg, char *out, size_t outsz);

/* true when the connection's peer itself (not an X-Forwarded-For entry) is one of
 * trusted_proxies. */
bool cd_net_peer_is_proxy(struct lws *wsi, const cd_config *cfg);

#endif
