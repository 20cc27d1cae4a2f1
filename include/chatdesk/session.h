/* session: one per WebSocket connection. State machine AWAIT_HELLO -> ACTIVE ->
 * CLOSING, permissions (the frame table's roles), rate limits, the bounded outbound
 * queue, request dispatch (one handler per frame type), resume and gap backfill. It is
 * where protocol state lives so that ws/ only moves bytes and conv/ only changes state.
 * cd_node here is the session side of a node: the registry of its sessions, their
 * stats, and the wiring to node/ (keyring, site cache, cron), presence/ and timers/. */
#ifndef CHATDESK_SESSION_H
#define CHATDESK_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatdesk/auth.h"
#include "chatdesk/config.h"
#include "chatdesk/events.h"
#include "chatdesk/hub.h"
#include "chatdesk/proto.h"
#include "chatdesk/store.h"
#include "chatdesk/timers.h"

struct uv_loop_s;
typedef struct cd_session cd_session;
typedef struct cd_node cd_node;

typedef enum cd_session_role { CD_SESSION_VISITOR = 1, CD_SESSION_AGENT = 2 } cd_session_role;

/* How a session reaches its connection (implemented by ws/). */
typedef struct cd_session_io {
    void (*wake)(void *conn);  /* output queued: ask for a writeable callback */
    void (*close)(void *conn); /* cd_session_close_code() says how */
} cd_session_io;

typedef struct cd_node_stats {
    unsigned long long sessions_total, frames_in, frames_out, errors_out, acks, dedupe_hits, backfills,
        resume_recovered, resume_reset, slow_consumer_closes, rate_limited, hello_timeouts, frames_invalid,
        resume_entries;
} cd_node_stats;

cd_node *cd_node_create(struct uv_loop_s *loop, const cd_config *cfg, const char *node_id, cd_store *st, cd_hub *hub,
                        const cd_session_io *io);
void cd_node_destroy(cd_node *n);
/* Store came up: load keys and sites. */
void cd_node_on_store(cd_node *n, bool up);
/* Bus (re)subscribed: every session backfills its conversations. */
void cd_node_on_bus(cd_node *n, bool up);
/* A bus message on "sites": reload the site cache. */
void cd_node_sites_changed(cd_node *n);
/* Exact-origin check for the upgrade of /ws/visitor (site_key NULL: any site). */
bool cd_node_origin_allowed(cd_node *n, const char *origin, const char *site_key);
/* The Origin check for the upgrade of /ws/agent (agent_origins): "*" allows any Origin; a
 * list allows exactly those; empty allows the node's own origin, http:// or https://
 * followed by the request's Host (where the node serves the dashboard, /app/). Without
 * "*" an upgrade without Origin is refused. */
bool cd_node_agent_origin_allowed(cd_node *n, const char *origin, const char *host);
bool cd_node_ready(const cd_node *n); /* keys loaded */
/* A site's business intervals for SLA scripts ("*" for 24x7 or an unknown site). */
const char *cd_node_intervals(cd_node *n, const char *site_key);
/* A site's attachment limits: the node's file_max_bytes, lowered by the site's own
 * (*max_bytes), and the site's allowed categories copied into types ("" when the site
 * sets none: only the node's file_types apply). */
void cd_node_file_limits(cd_node *n, const char *site_key, int64_t *max_bytes, char *types, size_t typesz);
const cd_auth_keyring *cd_node_keys(const cd_node *n);
/* Does one of these sites require two-factor login (its site setting require_2fa)? */
bool cd_node_requires_2fa(cd_node *n, char *const *sites, size_t n_sites);
/* The node's timer poller: modules register their kinds on it at start-up. */
cd_timers *cd_node_timers(cd_node *n);
/* Another module's notices on the timers channel (the webhook worker's "W <site> <due>"):
 * fn(ctx, text, len) gets each notice that is not a timer's. */
void cd_node_on_notice(cd_node *n, void (*fn)(void *ctx, const char *p, size_t len), void *ctx);
/* The key of the i-th site of the node's site cache, NULL past the last. */
const char *cd_node_site_at(void *node, size_t i);
const cd_proto_limits *cd_node_limits(const cd_node *n);
void cd_node_set_draining(cd_node *n);
bool cd_node_draining(const cd_node *n);
/* Redis unreachable for redis_down_close_ms: connections closed, upgrades refused. */
bool cd_node_shedding(const cd_node *n);
size_t cd_node_session_count(const cd_node *n);
void cd_node_get_stats(const cd_node *n, cd_node_stats *out);
/* reports (/metrics): sessions by role; the last metrics_ops.lua reply (exposition lines,
 * NULL before the first); the event consumers' figures (server/events). */
void cd_node_role_counts(const cd_node *n, size_t *visitors, size_t *agents);
const char *cd_node_ops_text(const cd_node *n);
void cd_node_events_stats(const cd_node *n, cd_events_stats *out);
/* Close every session with 1001 (node shutting down). */
void cd_node_close_all(cd_node *n);

cd_session *cd_session_create(cd_node *n, cd_session_role role, const char *origin, const char *site_hint, void *conn);
void cd_session_on_frame(cd_session *s, const char *buf, size_t len);
/* Next frame to write, or NULL; the caller owns the returned reference. */
cd_frame *cd_session_pop(cd_session *s);
bool cd_session_has_output(const cd_session *s);
/* Non-zero once the session wants its connection closed: the close code and reason;
 * flush: write queued frames first. */
int cd_session_close_code(const cd_session *s, const char **reason, bool *flush);
/* The delivery check of a connection being written to (ws.c, before it writes): 1 when
 * a delivery ping is due now (the caller writes a WebSocket ping with the 8 bytes of
 * payload given), else 0. A ping left unanswered for slow_reader_s while frames keep
 * coming closes the session with 4008 (the reader stopped reading: its kernel buffers,
 * not the node's queue, are filling). */
int cd_session_delivery_check(cd_session *s, uint64_t now_ms, unsigned char payload[8]);
/* A pong arrived: its payload answers the delivery ping when it is that ping's. */
void cd_session_delivery_pong(cd_session *s, const void *payload, size_t len);
/* Request a close from outside (server protocol errors): code + reason. */
void cd_session_close(cd_session *s, int code, const char *reason, bool flush);
/* The connection is gone: no more io calls; freed when no request is pending. */
void cd_session_detach(cd_session *s);

#endif
