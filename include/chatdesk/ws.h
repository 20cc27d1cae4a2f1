/* ws: the WebSocket side of a connection on /ws/visitor and /ws/agent: the upgrade check
 * (path, origin, per-address limits), pss <-> session binding, frames in (reassembly up
 * to max_frame) and out (from the session's bounded queue), and close codes. net/ routes
 * the WebSocket reasons here; ws/ never sees an HTTP request. */
#ifndef CHATDESK_WS_H
#define CHATDESK_WS_H

#include <stddef.h>

#include "chatdesk/net.h"
#include "chatdesk/session.h"

struct lws;

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: 0 to accept, -1 with why filled to refuse. */
int cd_ws_confirm_upgrade(struct lws *wsi, cd_net_refusal *why);
/* The WebSocket reasons; *handled is set when reason was one of them. Returns what the
 * lws callback must return. */
int cd_ws_callback(struct lws *wsi, int reason, cd_net_pss *pss, void *in, size_t len, int *handled);
/* How a session reaches its connection (cd_node_create). */
extern const cd_session_io cd_ws_io;

#endif
