/* HTTP endpoints on the lws HTTP side of the same port. Responses are built in
 * memory and written from HTTP_WRITEABLE; the login runs Argon2id on the libuv
 * thread pool so the loop never blocks. */
#include <libwebsockets.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "api/api_int.h"
#include "chatdesk/account.h"
#include "chatdesk/auth.h"
#include "chatdesk/clock.h"
#include "chatdesk/conv.h"
#include "chatdesk/http.h"
#include "chatdesk/log.h"
#include "chatdesk/ticket.h"
#include "chatdesk/webhook.h"
#include "files_int.h"

/* Lifetimes of the tokens of an unfinished login: the challenge after a right password
 * (two-factor login on) and the enrolment token (a site requires it and it is off). */
#define CD_HTTP_CHALLENGE_TTL_S 300
#define CD_HTTP_ENROL_TTL_S 900

typedef struct login_job {
    uv_work_t work;
    http_state *h; /* NULL once the connection is gone */
    cd_net_ctx *cx;
    bool counted; /* holds a slot of cx->hash_jobs */
    char email[256];
    char password[CD_AUTH_PASSWORD_MAX + 1];
    char *pw_hash; /* NULL: unknown agent (a dummy hash is verified for timing) */
    bool ok;
    char *agent; /* raw agent JSON */
    char agent_id[80];
    int64_t token_epoch; /* the agent's, for the token */
    char ip[64];         /* the client's address, for the audit log */
    bool totp;           /* two-factor login on: the password earns a challenge */
    bool enrol;          /* a site of the agent requires two-factor login, which is off */
} login_job;

typedef struct api_job api_job;

struct http_state {
    struct lws *wsi;
    cd_net_ctx *cx;
    bool is_login;
    bool is_api;
    bool keep_alive; /* the peer is a trusted proxy: the connection may carry more requests */
    char method[8];
    char *path;
    char **args;
    size_t nargs;
    char auth[CD_AUTH_TOKEN_MAX + 16];
    api_job *ajob;
    cd_buf body;
    bool too_large;
    int status;
    const char *ctype;
    cd_buf out;
    bool ready;      /* response complete, waiting for WRITEABLE */
    int retry_after; /* > 0: a Retry-After header (seconds) on this response */
    login_job *job;
    /* attachments (files.c) */
    bool is_upload;       /* POST /files: the body is the upload's */
    bool is_files;        /* a /files route: answers carry CORS headers (the widget runs on the customer page) */
    cd_http__upload *up;  /* the upload in progress */
    cd_http__fileop *fop; /* a link or download waiting for Redis */
    char *serve_path;     /* a download to serve at the next WRITEABLE */
    char serve_mime[128];
    char serve_name[201];
    /* files_store s3: a download streamed from the store (serve_mime, serve_name too) */
    cd_files_s3_req *s3get; /* the GET in flight; NULL once done */
    bool s3_streaming;      /* the response is the store's body */
    bool s3_headers;        /* its headers are out */
    int s3_status;          /* the GET's end: 0 ok, < 0 failed; 1 while running */
    int64_t s3_left;        /* bytes still to send */
    cd_buf s3_chunk;        /* one piece from curl, waiting for WRITEABLE */
};

/* A valid Argon2id hash of a random password, so an unknown e-mail costs the same time. */
static const char dummy_hash[] =
    "$argon2id$v=19$m=19456,t=2,p=1$W72lNqegbxMC2pj3MfHFag$9MJERkJJ3YsJ/t0+bPzNnd8VrlucxgsQyzHAQnjSiLw";

static void respond(http_state *h, int status, const char *ctype)
{
    h->status = status;
    h->ctype = ctype;
    h->ready = true;
    if (h->wsi)
        lws_callback_on_writable(h->wsi);
}

static void json_error(http_state *h, int status, const char *code, const char *message)
{
    cd_buf_reset(&h->out);
    cd_buf_printf(&h->out, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, message);
    respond(h, status, "application/json");
}

/* A 429 or 503 that says when to come back (RELIABILITY 4.4). */
static void json_error_retry(http_state *h, int status, const char *code, const char *message, int64_t retry_ms)
{
    int64_t secs = (retry_ms + 999) / 1000;
    h->retry_after = secs < 1 ? 1 : (int)secs;
    json_error(h, status, code, message);
}

static void json_escape(cd_buf *b, const char *s)
{
    cd_buf_append(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            cd_buf_append(b, "\\", 1);
            cd_buf_append(b, s, 1);
        } else if (c < 0x20) {
            cd_buf_printf(b, "\\u%04x", c);
        } else {
            cd_buf_append(b, s, 1);
        }
    }
    cd_buf_append(b, "\"", 1);
}

/* One request per connection, except from a trusted proxy. lws 4.1 reads a kept-alive
 * connection's next request head itself: past the front door (server/door.c), so without
 * its deadline, its per-address cap, or a 431 for a head too large (lws just drops the
 * connection). A direct client's next request comes on a new connection through the door;
 * a trusted proxy sends whole heads within its own limits and keeps its upstream
 * connections alive. Closing (-1) lets lws flush what is still buffered first. */
static int transaction_done(struct lws *wsi, http_state *h)
{
    if (!h->keep_alive || lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

static int write_response(struct lws *wsi, http_state *h)
{
    unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
    if (lws_add_http_common_headers(wsi, (unsigned int)h->status, h->ctype, (lws_filepos_t)h->out.len, &p, end))
        return -1;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:", (const unsigned char *)"no-store", 8,
                                    &p, end) ||
        lws_add_http_header_by_name(
            wsi, (const unsigned char *)"x-content-type-options:", (const unsigned char *)"nosniff", 7, &p, end))
        return -1;
    /* reports as CSV (format=csv): a download */
    if (h->ctype && strncmp(h->ctype, "text/csv", 8) == 0 &&
        lws_add_http_header_by_name(wsi, (const unsigned char *)"content-disposition:",
                                    (const unsigned char *)"attachment; filename=\"chatdesk-report.csv\"", 42, &p, end))
        return -1;
    /* public read-only API (published knowledge base, …): any page may read it; the
     * attachment routes answer the widget on the customer's page (a bearer token, no
     * cookie, is what authorises them) */
    if (((h->is_api && h->path && cd_http__api_is_public(h->path)) || h->is_files) &&
        lws_add_http_header_by_name(
            wsi, (const unsigned char *)"access-control-allow-origin:", (const unsigned char *)"*", 1, &p, end))
        return -1;
    if (h->retry_after > 0) {
        char ra[16];
        int n = snprintf(ra, sizeof ra, "%d", h->retry_after);
        h->retry_after = 0;
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)"retry-after:", (const unsigned char *)ra, n, &p,
                                        end))
            return -1;
    }
    if (!h->keep_alive && lws_add_http_header_by_name(
                              wsi, (const unsigned char *)"connection:", (const unsigned char *)"close", 5, &p, end))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    unsigned char *body = cd_malloc(LWS_PRE + h->out.len + 1);
    if (h->out.len)
        memcpy(body + LWS_PRE, h->out.data, h->out.len);
    int m = lws_write(wsi, body + LWS_PRE, h->out.len, LWS_WRITE_HTTP_FINAL);
    cd_free(body);
    if (m < (int)h->out.len)
        return -1;
    h->ready = false;
    return transaction_done(wsi, h);
}

int cd_http_respond_error(struct lws *wsi, int status, const char *code, const char *message)
{
    char body[LWS_PRE + 512];
    int n = snprintf(body + LWS_PRE, sizeof body - LWS_PRE, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code,
                     message);
    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
    if (lws_add_http_common_headers(wsi, (unsigned int)status, "application/json", (lws_filepos_t)n, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    lws_write(wsi, (unsigned char *)body + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_FINAL);
    return 1; /* "rejected, response sent" */
}

/* ---------- what files.c answers through ---------- */

void cd_http__reply(http_state *h, int status, const char *ctype, const char *body, size_t len)
{
    if (!h)
        return;
    cd_buf_reset(&h->out);
    cd_buf_append(&h->out, body, len);
    respond(h, status, ctype);
}

void cd_http__reply_error(http_state *h, int status, const char *code, const char *message)
{
    if (h)
        json_error(h, status, code, message);
}

void cd_http__reply_file(http_state *h, const char *path, const char *mime, const char *name)
{
    if (!h)
        return;
    cd_free(h->serve_path);
    h->serve_path = cd_strdup(path);
    cd_strlcpy(h->serve_mime, mime, sizeof h->serve_mime);
    cd_strlcpy(h->serve_name, name, sizeof h->serve_name);
    if (h->wsi)
        lws_callback_on_writable(h->wsi);
}

void cd_http__upload_clear(http_state *h)
{
    h->up = NULL;
}

void cd_http__fileop_clear(http_state *h)
{
    h->fop = NULL;
}

void cd_http__fileop_set(http_state *h, cd_http__fileop *op)
{
    h->fop = op;
}

/* ---- files_store s3: a download streamed from the store ---- */

/* A piece of the object: taken when the last one is out, else curl waits (paused). */
static int on_s3_data(void *ud, const unsigned char *p, size_t n)
{
    http_state *h = ud;
    if (h->s3_chunk.len > 0)
        return 1;
    cd_buf_append(&h->s3_chunk, p, n);
    if (h->wsi)
        lws_callback_on_writable(h->wsi);
    return 0;
}

static void on_s3_done(void *ud, int status)
{
    http_state *h = ud;
    h->s3get = NULL;
    h->s3_status = status;
    if (status != 0 && !h->s3_headers) {
        h->s3_streaming = false;
        if (status == UV_ENOENT)
            json_error(h, 404, "not_found", "no such file");
        else
            json_error(h, 503, "unavailable", "the file store is unavailable, retry");
        return;
    }
    if (h->wsi)
        lws_callback_on_writable(h->wsi);
}

void cd_http__reply_s3(http_state *h, cd_files_s3 *s3, const char *site, const char *id, const char *mime,
                       const char *name, int64_t size)
{
    cd_strlcpy(h->serve_mime, mime, sizeof h->serve_mime);
    cd_strlcpy(h->serve_name, name, sizeof h->serve_name);
    cd_buf_reset(&h->s3_chunk);
    h->s3_left = size;
    h->s3_headers = false;
    h->s3_status = 1;
    h->s3_streaming = true;
    h->s3get = cd_files_s3_get(s3, site, id, on_s3_data, on_s3_done, h);
    if (!h->s3get) {
        h->s3_streaming = false;
        json_error(h, 503, "unavailable", "the file store is unavailable, retry");
    }
}

/* One write per WRITEABLE: the headers (once the first piece is in), then each piece;
 * the last one ends the response. A store failure after the headers closes the
 * connection (the client sees a short body). */
static int s3_writeable(struct lws *wsi, http_state *h)
{
    if (!h->s3_headers) {
        if (h->s3_chunk.len == 0)
            return h->s3_status < 0 ? -1 : 0;
        unsigned char hdr[LWS_PRE + 2048], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
        if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, h->serve_mime, (lws_filepos_t)h->s3_left, &p, end) ||
            cd_http__file_headers(wsi, h->serve_mime, h->serve_name, &p, end) ||
            (!h->keep_alive && lws_add_http_header_by_name(wsi, (const unsigned char *)"connection:",
                                                           (const unsigned char *)"close", 5, &p, end)) ||
            lws_finalize_write_http_header(wsi, start, &p, end))
            return -1;
        h->s3_headers = true;
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (h->s3_chunk.len == 0)
        return h->s3_status < 0 || (h->s3_status == 0 && h->s3_left > 0) ? -1 : 0;
    size_t n = h->s3_chunk.len;
    if ((int64_t)n > h->s3_left)
        return -1; /* more than the record's size */
    unsigned char *buf = cd_malloc(LWS_PRE + n);
    memcpy(buf + LWS_PRE, h->s3_chunk.data, n);
    h->s3_left -= (int64_t)n;
    bool last = h->s3_left == 0;
    int m = lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
    cd_free(buf);
    cd_buf_reset(&h->s3_chunk);
    if (m < (int)n)
        return -1;
    if (last) {
        h->s3_streaming = false;
        if (h->s3get) {
            cd_files_s3_cancel(h->s3get);
            h->s3get = NULL;
        }
        return transaction_done(wsi, h);
    }
    if (h->s3get)
        cd_files_s3_resume(h->s3get);
    return 0;
}

/* A download the record allowed: the body through lws's file serving, with headers that
 * let nothing in it run (cd_http__file_headers). */
static int serve_download(struct lws *wsi, http_state *h)
{
    char *path = h->serve_path;
    h->serve_path = NULL;
    unsigned char hdr[2048], *p = hdr, *end = hdr + sizeof hdr;
    int rc = -1;
    if (cd_http__file_headers(wsi, h->serve_mime, h->serve_name, &p, end) == 0 &&
        (h->keep_alive || lws_add_http_header_by_name(wsi, (const unsigned char *)"connection:",
                                                      (const unsigned char *)"close", 5, &p, end) == 0)) {
        int n = lws_serve_http_file(wsi, path, h->serve_mime, (const char *)hdr, (int)(p - hdr));
        rc = n < 0 ? -1 : n > 0 ? transaction_done(wsi, h) : 0;
    }
    cd_free(path);
    return rc;
}

/* ---------- /healthz and /metrics ---------- */

/* GET /api/v1/openapi.json: the API's OpenAPI 3.1 document (docs/openapi.json), public
 * like the rest of the docs. */
static void openapi(http_state *h)
{
    cd_buf_reset(&h->out);
    cd_buf_append(&h->out, cd_http_openapi_json, cd_http_openapi_json_len);
    respond(h, 200, "application/json");
}

static void healthz(http_state *h)
{
    cd_net_ctx *cx = h->cx;
    bool redis = cd_store_up(cx->st);
    bool full = redis && cd_store_full(cx->st);
    bool draining = cd_node_draining(cx->node);
    cd_buf_reset(&h->out);
    cd_buf_append_str(&h->out, "{\"status\":");
    cd_buf_append_str(&h->out, draining ? "\"draining\"" : "\"ok\"");
    cd_buf_append_str(&h->out, ",\"node\":");
    json_escape(&h->out, cx->node_id);
    cd_buf_printf(&h->out, ",\"redis\":\"%s\",\"connections\":%zu",
                  full    ? "full"
                  : redis ? "up"
                          : "down",
                  cd_node_session_count(cx->node));
    /* a full Redis (maxmemory) refuses writes: out of the balancer, with the reason */
    if (full)
        cd_buf_append_str(&h->out, ",\"reason\":\"redis maxmemory reached: writes are refused\"");
    char shard[300];
    if (cd_store_down_shard(cx->st, shard, sizeof shard)) { /* redis+cluster://: which primary */
        cd_buf_append_str(&h->out, ",\"shard_down\":");
        json_escape(&h->out, shard);
    }
    /* attachments: not a reason to leave the balancer (chat works without them), but said */
    cd_http__files_probe(cx);
    cd_buf_append_str(&h->out, !cx->files_known     ? ",\"files\":\"unknown\""
                               : cx->files_error[0] ? ",\"files\":\"error\",\"files_error\":"
                                                    : ",\"files\":\"ok\"");
    if (cx->files_error[0])
        json_escape(&h->out, cx->files_error);
    cd_buf_append_str(&h->out, "}");
    respond(h, redis && !full && !draining ? 200 : 503, "application/json");
}

static void metric(cd_buf *b, const char *name, const char *type, const char *help, unsigned long long v)
{
    cd_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

/* ---- reports: operational series (docs/ops.md "Metrics") ---- */

static void help(cd_buf *b, const char *name, const char *type, const char *text)
{
    cd_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static void ops_metrics(cd_buf *b, cd_net_ctx *cx, const cd_node_stats *ns, const cd_store_stats *ss)
{
    size_t nv, na;
    cd_node_role_counts(cx->node, &nv, &na);
    help(b, "chatdesk_connections_by_role", "gauge", "Open WebSocket sessions by role.");
    cd_buf_printf(
        b, "chatdesk_connections_by_role{role=\"visitor\"} %zu\nchatdesk_connections_by_role{role=\"agent\"} %zu\n", nv,
        na);
    help(b, "chatdesk_upgrades_rate_limited_total", "counter",
         "WebSocket upgrades refused (429) by the per-address connection rate (conn_rate_per_ip).");
    cd_buf_printf(b, "chatdesk_upgrades_rate_limited_total %llu\n", cx->conn_rate_refused);
    help(b, "chatdesk_request_heads_refused_total", "counter",
         "Connections answered before their request head was complete: too many from one address (429, "
         "max_pending_per_ip), not complete in time (408, header_timeout_s), too large (431, max_header_bytes), a NUL "
         "or control character in the target (400).");
    cd_buf_printf(b,
                  "chatdesk_request_heads_refused_total{by=\"address\"} %llu\n"
                  "chatdesk_request_heads_refused_total{by=\"timeout\"} %llu\n"
                  "chatdesk_request_heads_refused_total{by=\"size\"} %llu\n"
                  "chatdesk_request_heads_refused_total{by=\"malformed\"} %llu\n",
                  cx->door_refused, cx->door_timeouts, cx->door_too_large, cx->door_malformed);
    help(b, "chatdesk_login_refused_total", "counter",
         "Logins refused (429): by the address's rate (login_rate_per_ip; API token calls of an address whose failed "
         "API tokens used it up too) or the account's failures (login_fail_max).");
    cd_buf_printf(
        b, "chatdesk_login_refused_total{by=\"address\"} %llu\nchatdesk_login_refused_total{by=\"account\"} %llu\n",
        cx->login_rate_refused, cx->login_account_refused);
    help(b, "chatdesk_hash_queue", "gauge", "Password hashes queued or running (at most hash_queue_max).");
    cd_buf_printf(b, "chatdesk_hash_queue %zu\n", cx->hash_jobs);
    help(b, "chatdesk_hash_queue_refused_total", "counter", "Requests refused (503) because the hash queue was full.");
    cd_buf_printf(b, "chatdesk_hash_queue_refused_total %llu\n", cx->hash_refused);
    help(b, "chatdesk_file_uploads_total", "counter", "Attachments stored through this node (docs/attachments.md).");
    cd_buf_printf(b, "chatdesk_file_uploads_total %llu\n", cx->files_uploads);
    help(b, "chatdesk_file_upload_bytes_total", "counter", "Bytes of the attachments stored through this node.");
    cd_buf_printf(b, "chatdesk_file_upload_bytes_total %llu\n", cx->files_bytes);
    help(b, "chatdesk_file_uploads_refused_total", "counter",
         "Uploads refused: type (by the bytes), size, rate, malformed body, storage errors.");
    cd_buf_printf(b, "chatdesk_file_uploads_refused_total %llu\n", cx->files_rejected);
    help(b, "chatdesk_messages_total", "counter", "Messages stored through this node (acknowledged message.send).");
    cd_buf_printf(b, "chatdesk_messages_total %llu\n", ns->acks);
    help(b, "chatdesk_redis_ping_rtt_seconds", "gauge", "Round trip of the last Redis PING on the command connection.");
    cd_buf_printf(b, "chatdesk_redis_ping_rtt_seconds %.6f\n", (double)ss->ping_rtt_us / 1e6);
    cd_events_stats es;
    cd_node_events_stats(cx->node, &es);
    help(b, "chatdesk_event_consumer_lag_seconds", "gauge",
         "Age of the oldest event notice this node has not yet caught up with (0: caught up).");
    cd_buf_printf(b, "chatdesk_event_consumer_lag_seconds %.3f\n", (double)es.lag_ms / 1000.0);
    help(b, "chatdesk_event_passes_total", "counter", "Event consumer passes this node ran (one read per batch).");
    cd_buf_printf(b, "chatdesk_event_passes_total %llu\n", (unsigned long long)es.passes);
    help(b, "chatdesk_events_applied_total", "counter", "Events those passes applied (every consumer at once).");
    cd_buf_printf(b, "chatdesk_events_applied_total %llu\n", (unsigned long long)es.applied);
    help(b, "chatdesk_event_sites_pending", "gauge", "Sites with events this node is about to apply.");
    cd_buf_printf(b, "chatdesk_event_sites_pending %zu\n", es.pending);
    /* queue depths, backlog, timer lag, stream length: read from Redis every few seconds by
     * the node (metrics_ops.lua renders the lines), never per scrape */
    const char *ops = cd_node_ops_text(cx->node);
    if (ops)
        cd_buf_append_str(b, ops);
}

static void metrics(http_state *h)
{
    cd_net_ctx *cx = h->cx;
    cd_node_stats ns;
    cd_store_stats ss;
    cd_node_get_stats(cx->node, &ns);
    cd_store_get_stats(cx->st, &ss);
    cd_buf *b = &h->out;
    cd_buf_reset(b);
    metric(b, "chatdesk_connections", "gauge", "Open WebSocket sessions.", cd_node_session_count(cx->node));
    metric(b, "chatdesk_sessions_total", "counter", "WebSocket sessions opened.", ns.sessions_total);
    metric(b, "chatdesk_frames_in_total", "counter", "Client frames received.", ns.frames_in);
    metric(b, "chatdesk_frames_out_total", "counter", "Frames queued to clients.", ns.frames_out);
    metric(b, "chatdesk_errors_total", "counter", "Error frames sent.", ns.errors_out);
    metric(b, "chatdesk_acks_total", "counter", "Messages acknowledged after Redis stored them.", ns.acks);
    metric(b, "chatdesk_dedupe_hits_total", "counter", "Retried sends answered from the dedupe index.", ns.dedupe_hits);
    metric(b, "chatdesk_gap_backfills_total", "counter", "Seq gaps filled from history.", ns.backfills);
    metric(b, "chatdesk_resume_recovered_total", "counter", "Resumes replayed from history.", ns.resume_recovered);
    metric(b, "chatdesk_resume_reset_total", "counter", "Resumes answered recovered:false.", ns.resume_reset);
    metric(b, "chatdesk_slow_consumer_closes_total", "counter", "Connections closed for a full outbound queue.",
           ns.slow_consumer_closes);
    metric(b, "chatdesk_rate_limited_total", "counter", "Frames refused by the rate limit.", ns.rate_limited);
    metric(b, "chatdesk_frames_invalid_total", "counter", "Client frames refused as invalid (bad_request).",
           ns.frames_invalid);
    metric(b, "chatdesk_resume_entries_total", "counter", "Conversations named by resume frames after hello.",
           ns.resume_entries);
    metric(b, "chatdesk_hello_timeouts_total", "counter", "Connections closed without hello.", ns.hello_timeouts);
    metric(b, "chatdesk_redis_up", "gauge", "1 while the Redis command connection is usable.",
           cd_store_up(cx->st) ? 1 : 0);
    metric(b, "chatdesk_redis_full", "gauge", "1 while Redis refuses writes (maxmemory reached).",
           cd_store_full(cx->st) ? 1 : 0);
    metric(b, "chatdesk_redis_oom_total", "counter", "Calls Redis refused with OOM (maxmemory).", ss.oom_replies);
    metric(b, "chatdesk_redis_replica_waits_total", "counter", "WAITs sent for ack_replicas (one per batch of writes).",
           ss.replica_waits);
    metric(b, "chatdesk_redis_replica_shortfalls_total", "counter",
           "WAITs that came back with fewer than ack_replicas replicas (writes answered unavailable).",
           ss.replica_shortfalls);
    metric(b, "chatdesk_redis_commands_total", "counter", "Scripts sent to Redis.", ss.commands);
    metric(b, "chatdesk_redis_batches_total", "counter",
           "Batched calls sent (message.send: one per site and loop pass).", ss.batches);
    metric(b, "chatdesk_redis_batched_total", "counter", "Calls the batches carried.", ss.batched);
    metric(b, "chatdesk_redis_errors_total", "counter", "Redis error replies.", ss.errors);
    metric(b, "chatdesk_redis_reconnects_total", "counter", "Redis reconnect attempts.", ss.reconnects);
    metric(b, "chatdesk_redis_ping_failures_total", "counter", "Missed Redis PING deadlines.", ss.ping_failures);
    ops_metrics(b, cx, &ns, &ss);
    respond(h, 200, "text/plain; version=0.0.4");
}

/* ---------- POST /api/v1/login ---------- */

static void login_work(uv_work_t *w)
{
    login_job *j = w->data;
    bool ok = cd_auth_password_verify(j->pw_hash ? j->pw_hash : dummy_hash, j->password);
    j->ok = ok && j->pw_hash != NULL;
}

static void login_job_free(login_job *j)
{
    if (j->counted)
        j->cx->hash_jobs--;
    memset(j->password, 0, sizeof j->password);
    cd_free(j->pw_hash);
    cd_free(j->agent);
    cd_free(j);
}

/* The login ends before its password check: the connection no longer waits for the job. */
static void login_abort(login_job *j)
{
    if (j->h)
        j->h->job = NULL;
    login_job_free(j);
}

static void on_login_reset(void *ud, const cd_account *r)
{
    (void)ud;
    (void)r; /* best effort: the count expires with its window anyway */
}

/* A signed token of the role for the agent, answered as {"<field>":…,"expires_at":…,<rest>}
 * where rest is the members of the JSON object obj (NULL: none). false after a 503. */
static bool answer_token(http_state *h, const char *field, cd_auth_role role, const char *agent_id, int64_t epoch,
                         int64_t ttl_s, const char *obj, size_t obj_len)
{
    cd_auth_claims c;
    memset(&c, 0, sizeof c);
    c.role = role;
    cd_strlcpy(c.sub, agent_id, sizeof c.sub);
    c.epoch = epoch;
    c.iat = (int64_t)cd_now_ms();
    c.exp = c.iat + ttl_s * 1000;
    char token[CD_AUTH_TOKEN_MAX];
    if (!cd_node_ready(h->cx->node) || cd_auth_token_sign(cd_node_keys(h->cx->node), &c, token, sizeof token) != 0) {
        json_error(h, 503, "unavailable", "node not ready, retry");
        return false;
    }
    cd_buf_reset(&h->out);
    cd_buf_printf(&h->out, "{\"%s\":", field);
    json_escape(&h->out, token);
    cd_buf_printf(&h->out, ",\"expires_at\":%lld", (long long)c.exp);
    if (obj && obj_len > 2 && obj[0] == '{') {
        cd_buf_append_str(&h->out, ",");
        cd_buf_append(&h->out, obj + 1, obj_len - 1);
    } else {
        cd_buf_append_str(&h->out, "}");
    }
    explicit_bzero(token, sizeof token);
    respond(h, 200, "application/json");
    return true;
}

/* The password was right and the agent has two-factor login on: a challenge token that
 * only POST /api/v1/login/totp takes, with the code (docs/api.md "Two-factor login"). */
static void login_challenge(http_state *h, login_job *j)
{
    static const char rest[] = "{\"totp_required\":true}";
    cd_log_info("agent login id=%s: password ok, second factor next", j->agent_id);
    answer_token(h, "challenge", CD_AUTH_ROLE_CHALLENGE, j->agent_id, j->token_epoch, CD_HTTP_CHALLENGE_TTL_S, rest,
                 sizeof rest - 1);
}

static void login_done(uv_work_t *w, int status)
{
    login_job *j = w->data;
    http_state *h = j->h;
    /* a success resets the account's count, connection or not, and is audited, as is a
     * failure; a password that only earns the second step does neither (code guesses go on
     * counting against the same window; totp_login audits the login that completes) */
    if (status == 0 && !(j->ok && j->totp))
        cd_account_attempt(j->cx->st, j->email, j->ok ? "ok" : "fail", 0, j->ip, j->cx->cfg->audit_retain_days,
                           on_login_reset, NULL);
    if (!h) { /* connection gone */
        login_job_free(j);
        return;
    }
    h->job = NULL;
    if (status != 0 || !j->ok) {
        cd_log_info("login failed");
        json_error(h, 401, "unauthorized", "wrong e-mail or password");
        login_job_free(j);
        return;
    }
    if (j->totp) {
        login_challenge(h, j);
        login_job_free(j);
        return;
    }
    /* {"agent":…} (with "enrolment_required" for an enrolment token: the agent may only
     * set up two-factor login, which a site of its requires, docs/api.md) */
    cd_buf rest;
    cd_buf_init(&rest);
    cd_buf_printf(&rest, "{%s\"agent\":%s}", j->enrol ? "\"enrolment_required\":true," : "", j->agent);
    if (answer_token(h, "token", j->enrol ? CD_AUTH_ROLE_ENROL : CD_AUTH_ROLE_AGENT, j->agent_id, j->token_epoch,
                     j->enrol ? CD_HTTP_ENROL_TTL_S : h->cx->cfg->agent_token_ttl_s, rest.data, rest.len))
        cd_log_info("agent login id=%s%s", j->agent_id, j->enrol ? ": two-factor enrolment required" : "");
    cd_buf_cleanup(&rest);
    login_job_free(j);
}

/* Too many attempts on the account in its window: 429 until the window ends. */
static bool login_throttled(login_job *j, int64_t fails, int64_t retry_ms)
{
    if (fails < j->cx->cfg->login_fail_max)
        return false;
    j->cx->login_account_refused++;
    cd_log_warn("login throttled: too many attempts for one account");
    json_error_retry(j->h, 429, "rate_limited", "too many failed logins for this account, retry later",
                     retry_ms > 0 ? retry_ms : j->cx->cfg->login_fail_window_s * 1000);
    return true;
}

/* The attempt is counted (or could not be: a full Redis answers unavailable to writes,
 * and reads, so logins, keep working): check the password on the thread pool. */
static void on_login_counted(void *ud, const cd_account *r)
{
    login_job *j = ud;
    http_state *h = j->h;
    if (!h) {
        login_job_free(j);
        return;
    }
    if (r->err != CD_ERR_OK && r->err != CD_ERR_UNAVAILABLE) {
        json_error(h, 500, "internal", "storage error, retry");
        login_abort(j);
        return;
    }
    /* the count includes this attempt */
    if (r->err == CD_ERR_OK && login_throttled(j, r->fails - 1, r->retry_ms)) {
        login_abort(j);
        return;
    }
    j->work.data = j;
    uv_queue_work(h->cx->loop, &j->work, login_work, login_done);
}

static void on_agent(void *ud, const cd_account *r)
{
    login_job *j = ud;
    http_state *h = j->h;
    if (!h) {
        login_job_free(j);
        return;
    }
    if (r->err != CD_ERR_OK && r->err != CD_ERR_NOT_FOUND && r->err != CD_ERR_UNAUTHORIZED) {
        json_error(h, r->err == CD_ERR_UNAVAILABLE ? 503 : 500, cd_err_name(r->err), "storage error, retry");
        login_abort(j);
        return;
    }
    if (r->err == CD_ERR_OK && login_throttled(j, r->fails, r->retry_ms)) {
        login_abort(j);
        return;
    }
    if (r->err == CD_ERR_OK && r->found && r->pw) {
        j->pw_hash = cd_strdup(r->pw);
        j->agent = cd_strdup(r->raw_agent);
        cd_strlcpy(j->agent_id, r->id, sizeof j->agent_id);
        j->token_epoch = r->token_epoch;
        j->totp = r->totp;
        j->enrol = !r->totp && cd_node_requires_2fa(h->cx->node, r->sites, r->n_sites);
    }
    if (cd_account_attempt(h->cx->st, j->email, "try", h->cx->cfg->login_fail_window_s * 1000, j->ip,
                           h->cx->cfg->audit_retain_days, on_login_counted, j) != 0) {
        json_error(h, 503, "unavailable", "storage unavailable, retry");
        login_abort(j);
    }
}

/* A token bucket of a fixed table by a hash of the client address (nothing grows with
 * the number of addresses; two addresses in one slot share a bucket). */
static cd_ratelimit *address_bucket(http_state *h, cd_ratelimit *table, size_t n, double rate, double burst)
{
    if (!h->wsi)
        return NULL;
    char ip[64];
    cd_net_client_ip(h->wsi, h->cx->cfg, ip, sizeof ip);
    cd_ratelimit *rl = &table[cd_fnv1a(CD_FNV1A_INIT, ip, strlen(ip)) % n];
    if (rl->rate == 0)
        cd_ratelimit_init(rl, rate, burst, cd_mono_ms());
    return rl;
}

bool cd_http__address_rate_ok(http_state *h, cd_ratelimit *table, size_t n, double rate, double burst)
{
    cd_ratelimit *rl = address_bucket(h, table, n, rate, burst);
    return rl && cd_ratelimit_take(rl, cd_mono_ms());
}

/* The address's login bucket (login_rate_per_ip a minute): an API token that fails its
 * check (malformed, unknown, revoked, wrong secret) takes from it like a login, and an
 * address whose bucket is empty gets 429 for API tokens before any Redis call, so
 * guessing costs Redis no more than logins do. Valid tokens take nothing. */
static cd_ratelimit *login_bucket(http_state *h)
{
    const cd_config *cfg = h->cx->cfg;
    return address_bucket(h, h->cx->login_rl, CD_ARRAY_LEN(h->cx->login_rl), (double)cfg->login_rate_per_ip / 60.0,
                          (double)cfg->login_rate_per_ip);
}

static void api_token_failed(http_state *h)
{
    cd_ratelimit *rl = login_bucket(h);
    if (rl)
        cd_ratelimit_take(rl, cd_mono_ms());
}

/* The address's login rate (login_rate_per_ip a minute, the password and the second
 * step alike), or false after a 429. */
static bool login_rate_ok(http_state *h)
{
    const cd_config *cfg = h->cx->cfg;
    if (cd_http__address_rate_ok(h, h->cx->login_rl, CD_ARRAY_LEN(h->cx->login_rl),
                                 (double)cfg->login_rate_per_ip / 60.0, (double)cfg->login_rate_per_ip))
        return true;
    h->cx->login_rate_refused++;
    json_error_retry(h, 429, "rate_limited", "too many logins from this address, retry later",
                     60000 / cfg->login_rate_per_ip);
    return false;
}

/* A slot of the bounded password-hash queue (hash_queue_max), or false after a 503. */
static bool hash_slot(http_state *h)
{
    if (h->cx->hash_jobs >= (size_t)h->cx->cfg->hash_queue_max) {
        h->cx->hash_refused++;
        json_error_retry(h, 503, "unavailable", "too many password checks in progress, retry", 1000);
        return false;
    }
    h->cx->hash_jobs++;
    return true;
}

/* POST /api/v1/login: the address's rate (login_rate_per_ip a minute), a slot of the hash
 * queue, the account's attempts in its window (agent_get reads them, login_attempt counts
 * this one), then Argon2id off the loop. */
static void login(http_state *h)
{
    const char *msg;
    login_job *j = cd_calloc(1, sizeof *j);
    j->cx = h->cx;
    if (cd_proto_decode_login(h->body.data ? h->body.data : "", h->body.len, j->email, sizeof j->email, j->password,
                              sizeof j->password, &msg) != CD_ERR_OK) {
        login_job_free(j);
        json_error(h, 400, "bad_request", msg);
        return;
    }
    if (!cd_node_ready(h->cx->node)) {
        login_job_free(j);
        json_error(h, 503, "unavailable", "node not ready, retry");
        return;
    }
    if (!login_rate_ok(h)) {
        login_job_free(j);
        return;
    }
    if (!hash_slot(h)) {
        login_job_free(j);
        return;
    }
    j->counted = true;
    j->h = h;
    h->job = j;
    cd_net_client_ip(h->wsi, h->cx->cfg, j->ip, sizeof j->ip);
    if (cd_account_by_email(h->cx->st, j->email, on_agent, j) != 0) {
        h->job = NULL;
        login_job_free(j);
        json_error(h, 503, "unavailable", "storage unavailable, retry");
    }
}

/* ---------- the HTTP API under /api/v1/ (docs/api.md) ---------- */

struct api_job {
    uv_work_t work;
    uv_getaddrinfo_t gai; /* a webhook URL's host being resolved */
    http_state *h;        /* NULL once the connection is gone */
    cd_net_ctx *cx;
    char agent_id[80];
    char password[CD_AUTH_PASSWORD_MAX + 1];
    char pw_hash[160];
    bool hash_ok;
    bool counted; /* holds a slot of cx->hash_jobs */
    int64_t token_epoch, token_exp;
    char jti[40];
    cd_auth_role role; /* of the caller's token: agent, challenge or enrolment */
    bool api;          /* the caller's token is an API token (then api_token, agent_id its id) */
    cd_auth_api_token api_token;
};

static void api_job_free(api_job *j)
{
    if (j->counted)
        j->cx->hash_jobs--;
    memset(j->password, 0, sizeof j->password);
    explicit_bzero(&j->api_token, sizeof j->api_token);
    cd_free(j);
}

/* A call that ends a login: the challenge's second step, or the enrolment's confirmation
 * with an enrolment token. */
static bool finishes_login(const api_job *j)
{
    return j->role == CD_AUTH_ROLE_CHALLENGE ||
           (j->role == CD_AUTH_ROLE_ENROL && j->h && strcmp(j->h->path, "/api/v1/me/totp/confirm") == 0);
}

static void on_api_done(void *ud, int status, const char *json, size_t len, const char *ctype)
{
    api_job *j = ud;
    http_state *h = j->h;
    if (h && status == 200 && finishes_login(j)) {
        /* the second factor was right (challenge), or the enrolment a site requires is done:
         * the login token, with the reply's members */
        h->ajob = NULL;
        if (answer_token(h, "token", CD_AUTH_ROLE_AGENT, j->agent_id, j->token_epoch, h->cx->cfg->agent_token_ttl_s,
                         json, len))
            cd_log_info("agent login id=%s: second factor ok", j->agent_id);
    } else if (h) {
        h->ajob = NULL;
        cd_buf_reset(&h->out);
        if (status != 204)
            cd_buf_append(&h->out, json, len);
        if (status == 401 && j->api)
            api_token_failed(h);
        if (status == 429 && j->api) /* the token's minute (api_token_rate_per_min) */
            h->retry_after = 60;
        else if (status == 429 && j->role != CD_AUTH_ROLE_AGENT) /* code guesses: the account's window */
            h->retry_after = (int)h->cx->cfg->login_fail_window_s;
        respond(h, status, ctype ? ctype : "application/json");
    }
    api_job_free(j);
}

static const char *node_intervals(void *node, const char *site)
{
    return cd_node_intervals(node, site);
}

static void api_run(api_job *j)
{
    http_state *h = j->h;
    cd_api_call call = {h->method,
                        h->path,
                        (const char *const *)h->args,
                        h->nargs,
                        h->body.data,
                        h->body.len,
                        j->agent_id,
                        j->hash_ok ? j->pw_hash : NULL,
                        j->token_epoch,
                        j->jti,
                        j->token_exp,
                        "",
                        node_intervals,
                        h->cx->node,
                        j->api ? &j->api_token : NULL};
    char ip[64] = "";
    if (h->wsi)
        cd_net_client_ip(h->wsi, h->cx->cfg, ip, sizeof ip);
    call.addr = ip;
    cd_http__api_run(h->cx->st, h->cx->cfg, &call, on_api_done, j);
}

static void hash_work(uv_work_t *w)
{
    api_job *j = w->data;
    j->hash_ok = cd_auth_password_hash(j->password, j->pw_hash, sizeof j->pw_hash) == 0;
}

static void hash_done(uv_work_t *w, int status)
{
    api_job *j = w->data;
    if (!j->h) {
        api_job_free(j);
        return;
    }
    if (status != 0 || !j->hash_ok) {
        j->h->ajob = NULL;
        json_error(j->h, 500, "internal", "cannot hash the password");
        api_job_free(j);
        return;
    }
    api_run(j);
}

static void webhook_refused(api_job *j, const char *why)
{
    char msg[160];
    snprintf(msg, sizeof msg, "url is a %s address: not allowed (webhook_allow_hosts)", why);
    j->h->ajob = NULL;
    json_error(j->h, 400, "bad_request", msg);
    api_job_free(j);
}

static void on_webhook_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    api_job *j = req->data;
    const char *why = NULL;
    for (struct addrinfo *ai = status == 0 ? res : NULL; ai && !why; ai = ai->ai_next)
        why = cd_webhook_addr_blocked(ai->ai_addr);
    uv_freeaddrinfo(res);
    if (!j->h)
        api_job_free(j);
    else if (why)
        webhook_refused(j, why);
    else
        api_run(j); /* public, or not resolvable now: the check at connect time still holds */
}

/* A webhook URL whose host is, or resolves to, a loopback, private, link-local... address
 * is refused when it is set (400), not only when a delivery connects; a host in
 * webhook_allow_hosts is exempt. true when the call was taken over (refused or resolving). */
static bool webhook_url_check(http_state *h, api_job *j, const cd_api_call *call)
{
    char url[2048], host[256];
    long port = 0;
    if (!cd_http__api_webhook_url(call, url, sizeof url) || cd_webhook_url_target(url, host, sizeof host, &port) != 0 ||
        cd_webhook_host_allowed(h->cx->cfg->webhook_allow_hosts, host, port))
        return false; /* no URL, or one the script judges */
    const char *why = cd_webhook_ip_blocked(host);
    if (!why)
        return false;
    if (strcmp(why, "invalid") != 0) { /* an address literal */
        webhook_refused(j, why);
        return true;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    j->gai.data = j;
    return uv_getaddrinfo(h->cx->loop, &j->gai, on_webhook_resolved, host, NULL, &hints) == 0;
}

/* The public API's per-address token bucket. */
static bool public_rate_ok(http_state *h)
{
    return cd_http__address_rate_ok(h, h->cx->public_rl, CD_ARRAY_LEN(h->cx->public_rl),
                                    (double)h->cx->cfg->public_api_rate, (double)h->cx->cfg->public_api_burst);
}

/* The token may make this call (cd_http__api_role_allowed), or false after the answer: an
 * unfinished login's token does nothing else, and its second step is rate-limited per
 * address like the login. */
static bool token_fits(http_state *h, const cd_auth_claims *c)
{
    cd_api_call call = {h->method, h->path, NULL, 0, NULL, 0, c->sub, NULL, 0, NULL, 0, NULL, NULL, NULL, NULL};
    if (c->role == CD_AUTH_ROLE_VISITOR ||
        (c->role == CD_AUTH_ROLE_CHALLENGE) != cd_http__api_role_allowed(&call, CD_AUTH_ROLE_CHALLENGE)) {
        json_error(h, 401, "unauthorized", "invalid or expired token");
        return false;
    }
    if (!cd_http__api_role_allowed(&call, c->role)) {
        json_error(h, 403, "forbidden", "two-factor login required: set it up first (POST /api/v1/me/totp/enroll)");
        return false;
    }
    return c->role != CD_AUTH_ROLE_CHALLENGE || login_rate_ok(h);
}

/* A call with an API token ("cdt.<site>.<id>.<secret>", docs/api.md "API tokens"): the
 * shape is checked here, everything else (it exists, the secret, the scope, the rate) by
 * the token's check in its site (api/tokens.c) on every call. Its routes never set a
 * password; a webhook URL is checked as for an admin's login. */
static void api_token_start(http_state *h, const char *tok)
{
    cd_ratelimit *rl = login_bucket(h);
    if (rl && !cd_ratelimit_peek(rl, cd_mono_ms())) {
        h->cx->login_rate_refused++;
        json_error_retry(h, 429, "rate_limited", "too many failed logins or API tokens from this address, retry later",
                         60000 / h->cx->cfg->login_rate_per_ip);
        return;
    }
    api_job *j = cd_calloc(1, sizeof *j);
    if (!cd_auth_api_token_parse(tok, &j->api_token)) {
        cd_free(j);
        api_token_failed(h);
        json_error(h, 401, "unauthorized", "invalid or revoked API token");
        return;
    }
    j->h = h;
    j->cx = h->cx;
    j->api = true;
    j->role = CD_AUTH_ROLE_AGENT;
    cd_strlcpy(j->agent_id, j->api_token.id, sizeof j->agent_id);
    h->ajob = j;
    cd_api_call call = {h->method, h->path, NULL, 0,    h->body.data, h->body.len, j->agent_id,  NULL,
                        0,         NULL,    0,    NULL, NULL,         NULL,        &j->api_token};
    if (webhook_url_check(h, j, &call))
        return;
    api_run(j);
}

static void api_start(http_state *h)
{
    if (h->too_large) {
        json_error(h, 413, "too_large", "request body too large");
        return;
    }
    if (cd_http__api_is_public(h->path)) {
        if (!cd_node_ready(h->cx->node)) {
            json_error(h, 503, "unavailable", "node not ready, retry");
            return;
        }
        if (!public_rate_ok(h)) {
            json_error(h, 429, "rate_limited", "too many requests from this address, retry later");
            return;
        }
        api_job *j = cd_calloc(1, sizeof *j);
        j->h = h;
        j->cx = h->cx;
        h->ajob = j;
        api_run(j);
        return;
    }
    const char *tok = h->auth;
    if (strncasecmp(tok, "Bearer ", 7) != 0) {
        json_error(h, 401, "unauthorized", "Authorization: Bearer <token> required");
        return;
    }
    tok += 7;
    if (!cd_node_ready(h->cx->node)) {
        json_error(h, 503, "unavailable", "node not ready, retry");
        return;
    }
    if (strncmp(tok, CD_AUTH_API_PREFIX, sizeof CD_AUTH_API_PREFIX - 1) == 0) {
        api_token_start(h, tok);
        return;
    }
    cd_auth_claims c;
    if (cd_auth_token_verify(cd_node_keys(h->cx->node), tok, (int64_t)cd_now_ms(), &c) != CD_ERR_OK) {
        json_error(h, 401, "unauthorized", "invalid or expired token");
        return;
    }
    if (!token_fits(h, &c))
        return;
    api_job *j = cd_calloc(1, sizeof *j);
    j->h = h;
    j->cx = h->cx;
    cd_strlcpy(j->agent_id, c.sub, sizeof j->agent_id);
    cd_strlcpy(j->jti, c.jti, sizeof j->jti);
    j->token_epoch = c.epoch;
    j->token_exp = c.exp;
    j->role = c.role;
    h->ajob = j;
    cd_api_call call = {h->method, h->path, NULL, 0,    h->body.data, h->body.len, j->agent_id, NULL,
                        0,         NULL,    0,    NULL, NULL,         NULL,        NULL};
    if (webhook_url_check(h, j, &call))
        return;
    if (cd_http__api_wants_password(&call)) {
        int pw =
            cd_http__api_password(h->body.data, h->body.len, CD_AUTH_PASSWORD_MIN, j->password, sizeof j->password);
        if (pw < 0) {
            h->ajob = NULL;
            api_job_free(j);
            json_error(h, 400, "bad_request", CD_AUTH_PASSWORD_RULE);
            return;
        }
        if (pw > 0 && !hash_slot(h)) {
            h->ajob = NULL;
            api_job_free(j);
            return;
        }
        if (pw > 0) {
            j->counted = true;
            j->work.data = j;
            uv_queue_work(h->cx->loop, &j->work, hash_work, hash_done);
            return;
        }
    }
    api_run(j);
}

/* The query's "k=v" fragments (URL-decoded, at most 32) and the Authorization header. */
static void request_args(struct lws *wsi, http_state *h)
{
    for (size_t i = 0; i < h->nargs; i++)
        cd_free(h->args[i]);
    cd_free(h->args);
    h->args = NULL;
    h->nargs = 0;
    char frag[512];
    for (int n = 0; n < 32; n++) {
        int l = lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, n);
        if (l <= 0)
            break;
        h->args = cd_realloc(h->args, (h->nargs + 1) * sizeof *h->args);
        h->args[h->nargs++] = cd_strdup(frag);
    }
    h->auth[0] = '\0';
    if (lws_hdr_copy(wsi, h->auth, sizeof h->auth, WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
        h->auth[0] = '\0';
}

static void api_begin(struct lws *wsi, http_state *h, const char *uri)
{
    static const struct {
        enum lws_token_indexes tok;
        const char *name;
    } methods[] = {{WSI_TOKEN_GET_URI, "GET"},
                   {WSI_TOKEN_POST_URI, "POST"},
                   {WSI_TOKEN_PATCH_URI, "PATCH"},
                   {WSI_TOKEN_PUT_URI, "PUT"},
                   {WSI_TOKEN_DELETE_URI, "DELETE"}};
    h->method[0] = '\0';
    for (size_t i = 0; i < CD_ARRAY_LEN(methods); i++)
        if (lws_hdr_total_length(wsi, methods[i].tok) > 0)
            cd_strlcpy(h->method, methods[i].name, sizeof h->method);
    h->is_api = true;
    cd_free(h->path);
    h->path = cd_strdup(uri);
    request_args(wsi, h);
}

/* ---------- static files: /widget.js, /demo, /app/, /kb/ ---------- */

static const char *mime_of(const char *path)
{
    static const struct {
        const char *ext, *mime;
    } types[] = {{".js", "application/javascript"},
                 {".html", "text/html; charset=utf-8"},
                 {".css", "text/css"},
                 {".svg", "image/svg+xml"},
                 {".png", "image/png"},
                 {".json", "application/json"},
                 {".map", "application/json"},
                 {".ico", "image/x-icon"},
                 {".woff2", "font/woff2"},
                 {".mp3", "audio/mpeg"},
                 {".ogg", "audio/ogg"},
                 {".txt", "text/plain; charset=utf-8"}};
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < CD_ARRAY_LEN(types); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].mime;
    return NULL;
}

/* Map a URL path to a file under static_dir; only plain names, never "..". */
static bool static_path(const char *dir, const char *uri, char *out, size_t outsz)
{
    const char *rel;
    if (strcmp(uri, "/widget.js") == 0 || strcmp(uri, "/widget.js.map") == 0)
        rel = uri + 1;
    else if (strcmp(uri, "/demo") == 0 || strcmp(uri, "/demo/") == 0)
        rel = "demo/index.html";
    else if (strcmp(uri, "/app") == 0 || strcmp(uri, "/app/") == 0)
        rel = "app/index.html";
    else if (strcmp(uri, "/kb") == 0 || strcmp(uri, "/kb/") == 0) /* help-article page, docs/kb.md */
        rel = "kb/index.html";
    else if (strncmp(uri, "/demo/", 6) == 0 || strncmp(uri, "/app/", 5) == 0 || strncmp(uri, "/kb/", 4) == 0)
        rel = uri + 1;
    else
        return false;
    for (const char *p = rel; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
                  c == '_' || c == '/';
        if (!ok || (c == '.' && p[1] == '.') || (c == '/' && p[1] == '/'))
            return false;
    }
    if (!mime_of(rel))
        return false;
    int n = snprintf(out, outsz, "%s/%s", dir, rel);
    return n > 0 && (size_t)n < outsz;
}

static int serve_static(struct lws *wsi, http_state *h, const char *uri)
{
    char path[1024];
    const char *dir = h->cx->static_dir;
    if (!dir || !dir[0] || !static_path(dir, uri, path, sizeof path))
        return 1;
    const char *mime = mime_of(path);
    unsigned char hdr[1024], *p = hdr, *end = hdr + sizeof hdr;
    static const char csp[] = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                              "connect-src 'self' ws: wss:; media-src 'self' data:; frame-ancestors 'none'; "
                              "base-uri 'none'; form-action 'self'; object-src 'none'";
    if (strncmp(mime, "text/html", 9) == 0 &&
        (lws_add_http_header_by_name(wsi, (const unsigned char *)"content-security-policy:", (const unsigned char *)csp,
                                     (int)strlen(csp), &p, end) ||
         lws_add_http_header_by_name(wsi, (const unsigned char *)"x-frame-options:", (const unsigned char *)"DENY", 4,
                                     &p, end)))
        return -1;
    if (lws_add_http_header_by_name(
            wsi, (const unsigned char *)"x-content-type-options:", (const unsigned char *)"nosniff", 7, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"referrer-policy:",
                                    (const unsigned char *)"strict-origin-when-cross-origin", 31, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:", (const unsigned char *)"no-cache", 8,
                                    &p, end))
        return -1;
    if (!h->keep_alive && lws_add_http_header_by_name(
                              wsi, (const unsigned char *)"connection:", (const unsigned char *)"close", 5, &p, end))
        return -1;
    int n = lws_serve_http_file(wsi, path, mime, (const char *)hdr, (int)(p - hdr));
    if (n < 0)
        return -1;
    return n > 0 ? transaction_done(wsi, h) : 0;
}

/* ---------- attachments: /files (files.c) ---------- */

/* POST /files, GET /files/<id>/link, GET /files/<id>?e=&k=&s=, DELETE /files/<id>. */
/* The CORS preflight of a /files route: the widget on a customer's page sends its token
 * in Authorization, which browsers ask about first. */
static int files_preflight(struct lws *wsi, http_state *h)
{
    static const struct {
        const char *name, *value;
    } hdrs[] = {{"access-control-allow-origin:", "*"},
                {"access-control-allow-methods:", "GET, POST, DELETE"},
                {"access-control-allow-headers:", "authorization, content-type"},
                {"access-control-max-age:", "600"}};
    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
    if (lws_add_http_common_headers(wsi, HTTP_STATUS_NO_CONTENT, "text/plain", 0, &p, end))
        return -1;
    for (size_t i = 0; i < CD_ARRAY_LEN(hdrs); i++)
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)hdrs[i].name, (const unsigned char *)hdrs[i].value,
                                        (int)strlen(hdrs[i].value), &p, end))
            return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    return transaction_done(wsi, h);
}

static int files_route(struct lws *wsi, http_state *h, const char *uri, bool post, bool get)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI) > 0)
        return files_preflight(wsi, h);
    request_args(wsi, h);
    if (strcmp(uri, "/files") == 0 && post) {
        h->is_upload = true;
        h->up = cd_http__upload_begin(h, wsi, h->cx, h->auth, (const char *const *)h->args, h->nargs);
        return 0;
    }
    const char *id = uri + 7;
    size_t n = strlen(uri);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI) > 0 && strcmp(uri, "/files") != 0) {
        h->fop = cd_http__file_remove(h, h->cx, h->auth, id);
        return 0;
    }
    if (!get || strcmp(uri, "/files") == 0) {
        json_error(h, 405, "bad_request", "method not allowed");
        return 0;
    }
    if (n > 12 && strcmp(uri + n - 5, "/link") == 0) {
        char fid[200];
        size_t l = n - 5 - 7;
        if (l >= sizeof fid) {
            json_error(h, 404, "not_found", "no such file");
            return 0;
        }
        memcpy(fid, id, l);
        fid[l] = '\0';
        h->fop = cd_http__file_link(h, h->cx, h->auth, fid);
        return 0;
    }
    h->fop = cd_http__file_download(h, h->cx, id, (const char *const *)h->args, h->nargs);
    return 0;
}

/* ---------- dispatch ---------- */

static http_state *state(struct lws *wsi, cd_net_pss *pss)
{
    if (!pss->http) {
        http_state *h = cd_calloc(1, sizeof *h);
        h->wsi = wsi;
        h->cx = lws_context_user(lws_get_context(wsi));
        cd_buf_init(&h->body);
        cd_buf_init(&h->out);
        cd_buf_init(&h->s3_chunk);
        pss->http = h;
    }
    return pss->http;
}

static void state_free(cd_net_pss *pss)
{
    if (!pss) /* a connection that closed before sending a request has no storage */
        return;
    http_state *h = pss->http;
    if (!h)
        return;
    if (h->job)
        h->job->h = NULL; /* the job frees itself */
    if (h->ajob)
        h->ajob->h = NULL;
    if (h->up)
        cd_http__upload_detach(h->up);
    if (h->fop)
        cd_http__fileop_detach(h->fop);
    cd_free(h->serve_path);
    if (h->s3get)
        cd_files_s3_cancel(h->s3get);
    cd_buf_cleanup(&h->s3_chunk);
    cd_free(h->path);
    for (size_t i = 0; i < h->nargs; i++)
        cd_free(h->args[i]);
    cd_free(h->args);
    cd_buf_cleanup(&h->body);
    cd_buf_cleanup(&h->out);
    cd_free(h);
    pss->http = NULL;
}

/* lws 4.1 does not decode a chunked request body, and without a length it waits for 100 MB
 * (then the 10 s content timeout): a body must come with Content-Length. */
static bool body_without_length(struct lws *wsi)
{
    bool body = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0 || lws_hdr_total_length(wsi, WSI_TOKEN_PUT_URI) > 0 ||
                lws_hdr_total_length(wsi, WSI_TOKEN_PATCH_URI) > 0;
    return lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0 ||
           (body && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0);
}

int cd_http_callback(struct lws *wsi, int reason, cd_net_pss *pss, void *in, size_t len, int *handled)
{
    *handled = 1;
    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        http_state *h = state(wsi, pss);
        const char *uri = in;
        bool post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
        bool get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
        cd_buf_reset(&h->body);
        h->keep_alive = cd_net_peer_is_proxy(wsi, h->cx->cfg);
        h->too_large = false;
        h->is_login = false;
        h->is_api = false;
        if (body_without_length(wsi)) {
            json_error(h, 411, "bad_request", "a request body needs Content-Length (chunked bodies are not read)");
            return 0;
        }
        h->is_upload = false;
        h->is_files = strcmp(uri, "/files") == 0 || strncmp(uri, "/files/", 7) == 0;
        if (h->is_files)
            return files_route(wsi, h, uri, post, get);
        if (strcmp(uri, "/api/v1/openapi.json") == 0) {
            if (get)
                openapi(h);
            else
                json_error(h, 405, "bad_request", "use GET");
            return 0;
        }
        if (strncmp(uri, "/api/v1/", 8) == 0 && strcmp(uri, "/api/v1/login") != 0) {
            api_begin(wsi, h, uri);
            if (!h->method[0]) {
                json_error(h, 405, "bad_request", "method not allowed");
                return 0;
            }
            /* a body follows for POST, PATCH and PUT */
            if (strcmp(h->method, "GET") == 0 || strcmp(h->method, "DELETE") == 0)
                api_start(h);
            return 0;
        }
        h->is_api = false;
        if (strcmp(uri, "/api/v1/login") == 0) {
            if (!post) {
                json_error(h, 405, "bad_request", "use POST");
                return 0;
            }
            h->is_login = true;
            return 0; /* the body follows */
        }
        if (!get) {
            json_error(h, 405, "bad_request", "method not allowed");
            return 0;
        }
        if (strcmp(uri, "/healthz") == 0) {
            healthz(h);
            return 0;
        }
        if (strcmp(uri, "/metrics") == 0) {
            metrics(h);
            return 0;
        }
        int rc = serve_static(wsi, h, uri);
        if (rc <= 0)
            return rc;
        json_error(h, 404, "not_found", "no such resource");
        return 0;
    }
    case LWS_CALLBACK_HTTP_BODY: {
        http_state *h = state(wsi, pss);
        if (h->is_upload) { /* the upload's, or dropped after its refusal */
            if (h->up)
                cd_http__upload_body(h->up, in, len);
            return 0;
        }
        if (h->body.len + len > (size_t)h->cx->cfg->max_http_body)
            h->too_large = true;
        else
            cd_buf_append(&h->body, in, len);
        return 0;
    }
    case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
        http_state *h = state(wsi, pss);
        if (h->is_upload) {
            if (h->up)
                cd_http__upload_complete(h->up);
        } else if (h->too_large)
            json_error(h, 413, "too_large", "request body too large");
        else if (h->is_login)
            login(h);
        else if (h->is_api)
            api_start(h);
        else
            json_error(h, 404, "not_found", "no such resource");
        return 0;
    }
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        http_state *h = pss->http;
        if (h && h->s3_streaming)
            return s3_writeable(wsi, h);
        if (h && h->serve_path)
            return serve_download(wsi, h);
        if (!h || !h->ready)
            return 0;
        return write_response(wsi, h);
    }
    case LWS_CALLBACK_HTTP_FILE_COMPLETION:
        return pss->http ? transaction_done(wsi, pss->http) : -1;
    case LWS_CALLBACK_CLOSED_HTTP:
        state_free(pss);
        return 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        /* upgraded to ws or done: the http state is no longer needed */
        state_free(pss);
        return 0;
    default:
        *handled = 0;
        return 0;
    }
}
