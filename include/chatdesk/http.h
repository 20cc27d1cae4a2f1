/* http: the HTTP side of the port: POST /api/v1/login (Argon2id on the thread pool),
 * GET /healthz, GET /metrics, static files, JSON error bodies, and the HTTP API under
 * /api/v1/ (api/: the routes by resource family, each to its Redis function). net/
 * routes the HTTP reasons of the lws callback here. */
#ifndef CHATDESK_HTTP_H
#define CHATDESK_HTTP_H

#include <stddef.h>

#include "chatdesk/net.h"

struct lws;

/* Handles the HTTP callback reasons; returns what the lws callback must return.
 * *handled is set when the reason was an HTTP one. */
int cd_http_callback(struct lws *wsi, int reason, cd_net_pss *pss, void *in, size_t len, int *handled);
/* Send a complete small response now (net/ refuses an upgrade with it). */
int cd_http_respond_error(struct lws *wsi, int status, const char *code, const char *message);

#endif
