/* The node's one lws callback. lws hands every reason of every connection on the port to
 * the first protocol, HTTP and WebSocket alike; this function is the only place that
 * decides which side a reason belongs to: the upgrade check and the WebSocket reasons go
 * to ws/, the HTTP reasons to http/, anything else to lws's default handler. A refused
 * upgrade is answered as an HTTP error, so ws/ never calls http/ (nor the reverse). */
#include <libwebsockets.h>

#include "chatdesk/http.h"
#include "chatdesk/net.h"
#include "chatdesk/ws.h"

int cd_net_callback(struct lws *wsi, int reason, void *user, void *in, size_t len)
{
    cd_net_pss *pss = user;
    int handled = 0, rc;
    if (reason == LWS_CALLBACK_HTTP_CONFIRM_UPGRADE) {
        cd_net_refusal why;
        if (cd_ws_confirm_upgrade(wsi, &why) != 0)
            return cd_http_respond_error(wsi, why.status, why.code, why.message);
        return 0;
    }
    rc = cd_ws_callback(wsi, reason, pss, in, len, &handled);
    if (handled)
        return rc;
    rc = cd_http_callback(wsi, reason, pss, in, len, &handled);
    if (handled)
        return rc;
    return lws_callback_http_dummy(wsi, (enum lws_callback_reasons)reason, user, in, len);
}
