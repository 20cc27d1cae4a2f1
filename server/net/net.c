/* The node's one lws callback. lws hands every reason of every connection on the port to
 * the first protocol, HTTP and WebSocket alike; this function is the only place that
 * decides which side a reason belongs to: the upgrade check and the WebSocket reasons go
 * to ws/, the HTTP reasons to http/, anything else to lws's default handler. A refused
 * upgrade is answered as an HTTP error, so ws/ never calls http/ (nor the reverse). The
 * sides come as functions in the context (cd_net_ctx), so net includes neither. */
#include <libwebsockets.h>

#include "chatdesk/net.h"

int cd_net_callback(struct lws *wsi, int reason, void *user, void *in, size_t len)
{
    cd_net_pss *pss = user;
    const cd_net_ctx *cx = lws_context_user(lws_get_context(wsi));
    int handled = 0, rc;
    if (reason == LWS_CALLBACK_HTTP_CONFIRM_UPGRADE) {
        cd_net_refusal why;
        if (cx->ws_upgrade(wsi, &why) != 0)
            return cx->http_error(wsi, why.status, why.code, why.message);
        return 0;
    }
    rc = cx->ws(wsi, reason, pss, in, len, &handled);
    if (handled)
        return rc;
    rc = cx->http(wsi, reason, pss, in, len, &handled);
    if (handled)
        return rc;
    return lws_callback_http_dummy(wsi, (enum lws_callback_reasons)reason, user, in, len);
}
