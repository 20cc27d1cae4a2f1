/* http: POST /api/v1/login, GET /healthz, GET /metrics, JSON error bodies. */
#ifndef CHATDESK_HTTP_H
#define CHATDESK_HTTP_H

#include <stddef.h>

#include "chatdesk/ws.h"

/* Handles the HTTP callback reasons; returns what the lws callback must return.
 * *handled is set when the reason was an HTTP one. */
int cd_http_callback(struct lws *wsi, int reason, cd_ws_pss *pss, void *in, size_t len, int *handled);
/* Send a complete small response now (used by ws.c to refuse an upgrade). */
int cd_http_respond_error(struct lws *wsi, int status, const char *code, const char *message);

#endif
