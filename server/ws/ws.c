/* The WebSocket reasons of the lws callback (net/ routes them here): upgrade checks,
 * pss <-> session, RECEIVE -> session, WRITEABLE -> frames from the session's queue,
 * close codes. */
#include <libwebsockets.h>
#include <string.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"
#include "chatdesk/ws.h"

_Static_assert(CD_FRAME_HEADROOM >= LWS_PRE, "frames need LWS_PRE bytes of headroom");

#define WRITES_PER_CALLBACK 16

static void io_wake(void *conn)
{
    lws_callback_on_writable((struct lws *)conn);
}

const cd_session_io cd_ws_io = {io_wake, io_wake};

static cd_net_ctx *ctx_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

static cd_session_role role_of(struct lws *wsi)
{
    char uri[128];
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0)
        return 0;
    if (strcmp(uri, "/ws/visitor") == 0)
        return CD_SESSION_VISITOR;
    if (strcmp(uri, "/ws/agent") == 0)
        return CD_SESSION_AGENT;
    return 0;
}

static void header(struct lws *wsi, enum lws_token_indexes t, char *buf, size_t n)
{
    buf[0] = '\0';
    if (lws_hdr_copy(wsi, buf, (int)n, t) < 0)
        buf[0] = '\0';
}

/* ?site=KEY: lws copies "site=KEY" into the buffer and returns a pointer to KEY. */
static void site_arg(struct lws *wsi, char *site, size_t n)
{
    char arg[128];
    const char *v = lws_get_urlarg_by_name(wsi, "site=", arg, (int)sizeof arg);
    cd_strlcpy(site, v ? v : "", n);
}

static int refuse(cd_net_refusal *why, int status, const char *code, const char *message)
{
    why->status = status;
    why->code = code;
    why->message = message;
    return -1;
}

int cd_ws_confirm_upgrade(struct lws *wsi, cd_net_refusal *why)
{
    cd_net_ctx *cx = ctx_of(wsi);
    cd_session_role role = role_of(wsi);
    char origin[256], site[80], host[256];
    if (!role)
        return refuse(why, 404, "not_found", "no WebSocket endpoint here");
    if (cd_node_draining(cx->node))
        return refuse(why, 503, "unavailable", "node draining");
    if (cd_node_shedding(cx->node))
        return refuse(why, 503, "unavailable", "storage unavailable");
    header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin);
    if (role == CD_SESSION_VISITOR) {
        site_arg(wsi, site, sizeof site);
        if (!cd_node_origin_allowed(cx->node, origin, site[0] ? site : NULL)) {
            cd_log_info("upgrade refused origin=\"%s\" site=\"%s\"", origin, site);
            return refuse(why, 403, "forbidden", "origin not allowed");
        }
    } else {
        header(wsi, WSI_TOKEN_HOST, host, sizeof host);
        if (!cd_node_agent_origin_allowed(cx->node, origin, host)) {
            cd_log_info("agent upgrade refused origin=\"%s\" host=\"%s\"", origin, host);
            return refuse(why, 403, "forbidden", "origin not allowed");
        }
    }
    char ip[64] = "";
    cd_net_client_ip(wsi, cx->cfg, ip, sizeof ip); /* no pss yet at this point */
    /* Every upgrade attempt costs a token of its address's bucket, so a connect -> hello
     * -> close loop is bounded by rate, not only by the open-connection cap (a connection
     * carries at most one hello). The table is fixed: nothing grows with addresses. */
    cd_ratelimit *rl = &cx->conn_rl[cd_fnv1a(CD_FNV1A_INIT, ip, strlen(ip)) % CD_ARRAY_LEN(cx->conn_rl)];
    uint64_t now = cd_mono_ms();
    if (rl->rate == 0)
        cd_ratelimit_init(rl, (double)cx->cfg->conn_rate_per_ip, (double)cx->cfg->conn_burst_per_ip, now);
    if (!cd_ratelimit_take(rl, now)) {
        cx->conn_rate_refused++;
        return refuse(why, 429, "rate_limited", "too many new connections from this address");
    }
    size_t n = (size_t)(uintptr_t)cd_map_get(&cx->ip_conns, ip, strlen(ip));
    if (n >= (size_t)cx->cfg->max_conns_per_ip)
        return refuse(why, 429, "rate_limited", "too many connections from this address");
    return 0;
}

static void count_ip(cd_net_ctx *cx, cd_net_pss *pss, int delta)
{
    cd_map_count(&cx->ip_conns, pss->ip, strlen(pss->ip), delta);
}

/* Send the close frame ourselves (with lws 4.1 on a foreign loop a reason set by
 * lws_close_reason() before returning -1 was observed never to reach the peer), then
 * keep reading until the peer answers with its own close, or 2 s: hanging up with
 * unread input in the socket makes the kernel send a reset, and the peer then loses
 * the frames we just wrote (seen as 1006 after a burst of rate-limited frames). */
static int close_with(struct lws *wsi, cd_net_pss *pss, int code, const char *reason)
{
    if (pss->close_sent)
        return 0;
    pss->close_sent = 1;
    unsigned char buf[LWS_PRE + 2 + 123];
    size_t n = strlen(reason);
    if (n > 123)
        n = 123;
    buf[LWS_PRE] = (unsigned char)(code >> 8);
    buf[LWS_PRE + 1] = (unsigned char)(code & 0xff);
    memcpy(buf + LWS_PRE + 2, reason, n);
    if (lws_write(wsi, buf + LWS_PRE, n + 2, (enum lws_write_protocol)4 /* LWS_WRITE_CLOSE, internal in 4.1 */) < 0)
        return -1;
    /* A slow reader (4008) reads its close only after everything its kernel buffers hold:
     * hung up after 2 s it would lose those frames and the close with a reset (seen as
     * 1006 after a minute's pause); it gets the idle timeout to come back and read. */
    lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, code == 4008 ? (int)ctx_of(wsi)->cfg->idle_timeout_s : 2);
    return 0;
}

static int on_writeable(struct lws *wsi, cd_net_pss *pss)
{
    cd_session *s = pss->s;
    if (!s || pss->close_sent)
        return 0;
    const char *reason;
    bool flush;
    int code = cd_session_close_code(s, &reason, &flush);
    /* Close once the queue is empty, in a callback of its own so the close frame
     * never queues behind a partly sent message. */
    if (code && (!flush || !cd_session_has_output(s)))
        return close_with(wsi, pss, code, reason);
    unsigned char ping[LWS_PRE + 8];
    if (cd_session_has_output(s) && cd_session_delivery_check(s, cd_mono_ms(), ping + LWS_PRE)) {
        if (lws_write(wsi, ping + LWS_PRE, 8, LWS_WRITE_PING) < 8)
            return -1;
    }
    if (!code && cd_session_close_code(s, &reason, &flush)) { /* the check found a reader that stopped */
        lws_callback_on_writable(wsi);
        return 0;
    }
    for (int i = 0; i < WRITES_PER_CALLBACK; i++) {
        cd_frame *f = cd_session_pop(s);
        if (!f)
            break;
        int m = lws_write(wsi, (unsigned char *)f->data, f->len, LWS_WRITE_TEXT);
        size_t len = f->len;
        cd_frame_unref(f);
        if (m < (int)len)
            return -1;
        if (lws_send_pipe_choked(wsi))
            break;
    }
    if (cd_session_has_output(s) || code)
        lws_callback_on_writable(wsi);
    return 0;
}

int cd_ws_callback(struct lws *wsi, int reason, cd_net_pss *pss, void *in, size_t len, int *handled)
{
    cd_net_ctx *cx;
    *handled = 1;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED: {
        cx = ctx_of(wsi);
        char origin[256], site[80];
        header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin);
        site_arg(wsi, site, sizeof site);
        cd_session_role role = role_of(wsi);
        if (!role) {
            cd_log_warn("established without a known path");
            return -1;
        }
        cd_net_client_ip(wsi, cx->cfg, pss->ip, sizeof pss->ip);
        count_ip(cx, pss, 1);
        pss->counted = 1;
        cd_buf_init(&pss->rx);
        pss->s = cd_session_create(cx->node, role, origin, site, wsi);
        return 0;
    }

    case LWS_CALLBACK_RECEIVE: {
        if (!pss->s)
            return -1;
        cx = ctx_of(wsi);
        if (pss->close_sent)
            return 0; /* draining the peer's input until its close */
        if (lws_frame_is_binary(wsi))
            return close_with(wsi, pss, 1003, "text frames only");
        if (pss->rx.len + len > (size_t)cx->cfg->max_frame) {
            cd_buf_cleanup(&pss->rx);
            return close_with(wsi, pss, 1009, "message too big");
        }
        bool final = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
        if (final && pss->rx.len == 0) {
            cd_session_on_frame(pss->s, in, len);
            return 0;
        }
        cd_buf_append(&pss->rx, in, len);
        if (final) {
            cd_session_on_frame(pss->s, pss->rx.data, pss->rx.len);
            if (pss->rx.cap > 16384)
                cd_buf_cleanup(&pss->rx);
            else
                cd_buf_reset(&pss->rx);
        }
        return 0;
    }

    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(wsi, pss);

    case LWS_CALLBACK_RECEIVE_PONG:
        if (pss->s)
            cd_session_delivery_pong(pss->s, in, len);
        return 0;

    case LWS_CALLBACK_CLOSED:
        cx = ctx_of(wsi);
        if (pss->s) {
            cd_session_detach(pss->s);
            pss->s = NULL;
        }
        if (pss->counted) {
            count_ip(cx, pss, -1);
            pss->counted = 0;
        }
        cd_buf_cleanup(&pss->rx);
        return 0;

    default:
        *handled = 0;
        return 0;
    }
}
