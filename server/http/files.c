/* The attachment routes (docs/attachments.md).
 *
 * POST /files: the caller's token (a visitor's; an agent's with ?conversation_id= of its
 * site) is checked before a byte of the body is read, and the declared length against
 * file_max_bytes. The body (raw, with ?name=, or multipart/form-data) streams to
 * "<files_dir>/<site>/<id>.part" on the thread pool: reads pause (lws_rx_flow_control)
 * while 64 KB wait for a write, so an upload holds at most about 64 KB whatever its size.
 * Its first 512 bytes decide its type (cd_files_sniff) before anything is written; a
 * refused type is answered 415 and nothing is stored. A complete body is renamed and
 * recorded (file_put.lua) with its orphan timer; the answer is {"id","name","type","size"}.
 *
 * GET /files/<id>/link: the caller's token, the access check in Redis (file_get.lua:
 * an agent of the file's site, the visitor of its conversation), then a URL signed for
 * file_url_ttl_s. GET /files/<id>?e=&k=&s=: the signature, the record (a file removed
 * since is not_found), then the body with headers that let nothing run. */
#include "files_int.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <libwebsockets.h>
#include <uv.h>

#include "chatdesk/account.h"
#include "chatdesk/auth.h"
#include "chatdesk/clock.h"
#include "chatdesk/files.h"
#include "chatdesk/log.h"

#define UPLOAD_CHUNK (64 * 1024)
#define MULTIPART_SLACK (64 * 1024) /* headers and boundaries beside the file part */

struct cd_http__upload {
    http_state *h; /* NULL once the connection is gone */
    struct lws *wsi;
    cd_net_ctx *cx;
    char site[80];
    char id[160];
    char kind[8];
    char who[80];
    int64_t epoch; /* an agent's token: its epoch and jti (revocation, agent_get) */
    char jti[40];
    char cid[200];
    char name[201];
    const char *mime;
    cd_files_mp *mp;    /* multipart; NULL for a raw body */
    cd_files_writer *w; /* NULL until created (and once failed) */
    bool opened, writing, complete, paused, finishing;
    bool recording; /* a Redis call in flight (the token, begin, done) */
    bool begun;     /* file_put "begin" said yes */
    int refused;    /* an answer decided before the body ended: its status */
    const char *ref_code, *ref_msg;
    unsigned char sniff[CD_FILES_SNIFF_LEN];
    size_t sniff_len;
    bool sniffed;
    int64_t size;      /* file bytes seen */
    int64_t max_bytes; /* the site's limit (file_max_bytes, lowered by the site's own) */
    char types[64];    /* the site's own categories, "" when it sets none */
    cd_buf pending;    /* file bytes waiting for the writer (at most UPLOAD_CHUNK + one read) */
};

struct cd_http__fileop {
    http_state *h;
    cd_net_ctx *cx;
    bool download;
    bool remove; /* DELETE: the agent's token is live, now the withdrawal */
    char id[160];
    char who[80];
};

/* ---- the token of a request ---- */

/* A verified visitor or agent token from "Bearer <token>"; false after answering 401. */
static bool caller(http_state *h, cd_net_ctx *cx, const char *auth, cd_auth_claims *c)
{
    if (!cd_node_ready(cx->node)) {
        cd_http__reply_error(h, 503, "unavailable", "node not ready, retry");
        return false;
    }
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 ||
        cd_auth_token_verify(cd_node_keys(cx->node), auth + 7, (int64_t)cd_now_ms(), c) != CD_ERR_OK ||
        (c->role != CD_AUTH_ROLE_VISITOR && c->role != CD_AUTH_ROLE_AGENT)) {
        cd_http__reply_error(h, 401, "unauthorized", "Authorization: Bearer <visitor or agent token> required");
        return false;
    }
    return true;
}

/* The value of query argument key ("k=v" fragments, URL-decoded), or NULL. */
static const char *arg(const char *const *args, size_t nargs, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < nargs; i++)
        if (strncmp(args[i], key, kl) == 0 && args[i][kl] == '=')
            return args[i] + kl + 1;
    return NULL;
}

static bool plain_id(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_' || s[i] == '-' || s[i] == '.'))
            return false;
    return true;
}

/* ---- upload ---- */

static void upload_free(cd_http__upload *u)
{
    if (u->h)
        cd_http__upload_clear(u->h);
    if (u->w)
        cd_files_writer_free(u->w); /* an unfinished body is removed */
    cd_files_mp_free(u->mp);
    cd_buf_cleanup(&u->pending);
    cd_free(u);
}

/* Answers (when the connection is still there) and lets the connection read on. */
static void upload_answer(cd_http__upload *u, int status, const char *code, const char *msg)
{
    if (u->h && u->paused) {
        lws_rx_flow_control(u->wsi, 1);
        u->paused = false;
    }
    if (status >= 400) {
        u->cx->files_rejected++;
        cd_http__reply_error(u->h, status, code, msg);
    }
}

/* Decided before the end of the body: the rest is read and dropped, then answered. */
static void upload_refuse(cd_http__upload *u, int status, const char *code, const char *msg)
{
    if (u->refused)
        return;
    u->refused = status;
    u->ref_code = code;
    u->ref_msg = msg;
    cd_buf_reset(&u->pending);
    if (u->paused && u->h) {
        lws_rx_flow_control(u->wsi, 1);
        u->paused = false;
    }
}

static void pump(cd_http__upload *u);

/* The connection is gone: the upload frees itself once nothing of it is in flight. */
static void maybe_free(cd_http__upload *u)
{
    if (!u->writing && !u->recording)
        upload_free(u);
}

#define TOO_MANY_PENDING "too many uploads not yet sent in a message: send or remove some first"

/* The answer of a Redis call as an HTTP status. */
static int status_for(cd_err err)
{
    switch (err) {
    case CD_ERR_NOT_FOUND:
        return 404;
    case CD_ERR_UNAVAILABLE:
        return 503;
    case CD_ERR_UNAUTHORIZED:
        return 401;
    case CD_ERR_CONFLICT:
        return 409;
    case CD_ERR_RATE_LIMITED:
        return 429;
    case CD_ERR_BAD_REQUEST:
        return 400;
    case CD_ERR_FORBIDDEN:
        return 403;
    default:
        return 500;
    }
}

/* A storage operation's outcome for /healthz (0 or a libuv error). */
static void files_health(cd_net_ctx *cx, const char *what, int status)
{
    cx->files_known = true;
    if (status == 0)
        cx->files_error[0] = '\0';
    else
        snprintf(cx->files_error, sizeof cx->files_error, "%s: %s", what,
                 status < 0 ? uv_strerror(status) : "the store refused or failed");
}

static void on_recorded(void *ud, cd_err err, const char *json)
{
    cd_http__upload *u = ud;
    u->recording = false;
    if (err == CD_ERR_OK) {
        u->cx->files_uploads++;
        u->cx->files_bytes += (unsigned long long)u->size;
        cd_http__reply(u->h, 201, "application/json", json, strlen(json));
    } else {
        cd_files_remove(u->cx->loop, u->cx->cfg->files_dir, u->site, u->id);
        upload_answer(u, status_for(err), cd_err_name(err),
                      err == CD_ERR_RATE_LIMITED ? TOO_MANY_PENDING : "cannot record the file");
    }
    upload_free(u);
}

static void on_begun(void *ud, cd_err err, const char *json)
{
    cd_http__upload *u = ud;
    (void)json;
    u->recording = false;
    if (!u->h) {
        maybe_free(u);
        return;
    }
    if (err == CD_ERR_OK)
        u->begun = true;
    else
        upload_refuse(u, status_for(err), cd_err_name(err),
                      err == CD_ERR_NOT_FOUND      ? "no such conversation"
                      : err == CD_ERR_RATE_LIMITED ? TOO_MANY_PENDING
                                                   : "cannot start the upload");
    pump(u);
}

static void begin_record(cd_http__upload *u)
{
    u->recording = true;
    if (cd_files_begin(u->cx->st, u->cx->cfg, u->site, u->id, u->kind, u->who, u->cid, on_begun, u) != 0) {
        u->recording = false;
        upload_refuse(u, 503, "unavailable", "Redis unavailable, retry");
    }
}

/* An agent's token is checked against its revocations (logout, epoch, disabled), as every
 * API call checks it, before its upload starts. */
static void on_agent_live(void *ud, const cd_account *r)
{
    cd_http__upload *u = ud;
    u->recording = false;
    if (!u->h) {
        maybe_free(u);
        return;
    }
    if (r->err == CD_ERR_OK)
        begin_record(u);
    else if (r->err == CD_ERR_UNAVAILABLE)
        upload_refuse(u, 503, "unavailable", "Redis unavailable, retry");
    else
        upload_refuse(u, 401, "unauthorized", "invalid or expired token");
    pump(u);
}

/* The body is stored: the record says so ("done"). */
static void done_record(cd_http__upload *u)
{
    u->recording = true;
    if (cd_files_put(u->cx->st, u->cx->cfg, u->site, u->id, u->kind, u->who, u->name, u->mime, u->size, on_recorded,
                     u) != 0) {
        u->recording = false;
        cd_files_remove(u->cx->loop, u->cx->cfg->files_dir, u->site, u->id);
        upload_answer(u, 503, "unavailable", "Redis unavailable, retry");
        upload_free(u);
    }
}

/* files_store s3: the staged body is in the store (status 0), or could not get there. */
static void on_pushed(void *ud, int status)
{
    cd_http__upload *u = ud;
    u->writing = false;
    files_health(u->cx, "putting an upload in the s3 store", status);
    if (status == 0 && u->h) {
        done_record(u);
        return;
    }
    cd_files_remove(u->cx->loop, u->cx->cfg->files_dir, u->site, u->id);
    if (status == 0) /* the connection went: the orphan timer removes the object */
        upload_free(u);
    else {
        upload_answer(u, 503, "unavailable", "the file store is unavailable, retry");
        upload_free(u);
    }
}

static void on_finished(void *ud, int status)
{
    cd_http__upload *u = ud;
    cd_files_writer *w = u->w;
    u->w = NULL;
    u->writing = false;
    cd_files_writer_free(w); /* renamed: the body stays */
    files_health(u->cx, "storing an upload", status);
    if (!u->h || status != 0) {
        if (status != 0)
            cd_log_warn("upload %s: storing failed: %s", u->id, uv_strerror(status));
        cd_files_remove(u->cx->loop, u->cx->cfg->files_dir, u->site, u->id);
        upload_answer(u, 500, "internal", "cannot store the file");
        upload_free(u);
        return;
    }
    if (u->cx->files_s3) { /* staged here: now to the store */
        char path[768];
        u->writing = true;
        if (cd_files_path(u->cx->cfg->files_dir, u->site, u->id, path, sizeof path) != 0 ||
            cd_files_s3_put(u->cx->files_s3, path, u->size, u->site, u->id, on_pushed, u) != 0) {
            u->writing = false;
            on_pushed(u, UV_EIO);
        }
        return;
    }
    done_record(u);
}

/* The writer's open (the first operation) or a write ended. */
static void on_io(void *ud, int status)
{
    cd_http__upload *u = ud;
    u->writing = false;
    if (!u->h) {
        maybe_free(u);
        return;
    }
    if (status != 0) {
        cd_log_warn("upload %s under %s: %s failed: %s", u->id, u->cx->cfg->files_dir, u->opened ? "write" : "open",
                    uv_strerror(status));
        files_health(u->cx, u->opened ? "writing an upload" : "opening an upload", status);
        upload_refuse(u, 500, "internal", "cannot store the file");
    }
    u->opened = true;
    pump(u);
}

/* Moves the upload on: the next write when one is due, the end when all is written. */
static void pump(cd_http__upload *u)
{
    if (u->writing || u->recording || u->finishing)
        return;
    if (u->refused) {
        if (u->complete) {
            u->finishing = true;
            upload_answer(u, u->refused, u->ref_code, u->ref_msg);
            upload_free(u);
        }
        return;
    }
    if (!u->opened)
        return;
    if (u->pending.len >= UPLOAD_CHUNK || (u->complete && u->pending.len > 0)) {
        size_t n = u->pending.len < UPLOAD_CHUNK ? u->pending.len : UPLOAD_CHUNK;
        if (cd_files_writer_write(u->w, u->pending.data, n, on_io, u) != 0) {
            upload_refuse(u, 500, "internal", "cannot store the file");
            pump(u);
            return;
        }
        u->writing = true;
        memmove(u->pending.data, u->pending.data + n, u->pending.len - n);
        u->pending.len -= n;
        u->pending.data[u->pending.len] = '\0';
        return;
    }
    if (u->paused && u->pending.len < UPLOAD_CHUNK) {
        lws_rx_flow_control(u->wsi, 1);
        u->paused = false;
    }
    if (!u->complete)
        return;
    if (u->mp && !cd_files_mp_done(u->mp)) {
        upload_refuse(u, 400, "bad_request", "a multipart body with one file part expected");
        pump(u);
        return;
    }
    if (u->size == 0) {
        upload_refuse(u, 400, "bad_request", "empty file");
        pump(u);
        return;
    }
    u->finishing = true;
    u->writing = true;
    if (cd_files_writer_finish(u->w, on_finished, u) != 0) {
        u->writing = false;
        upload_answer(u, 500, "internal", "cannot store the file");
        upload_free(u);
    }
}

/* The file's first bytes are known (CD_FILES_SNIFF_LEN, or all of a shorter file). */
static void sniff_now(cd_http__upload *u)
{
    u->sniffed = true;
    cd_files_cat cat = cd_files_sniff(u->sniff, u->sniff_len, u->name, &u->mime);
    if (!cd_files_allowed(u->cx->cfg->file_types, cat) || (u->types[0] && !cd_files_allowed(u->types, cat))) {
        upload_refuse(u, 415, "unsupported_type",
                      cat == CD_FILES_MARKUP ? "HTML, SVG and XML files are not accepted"
                                             : "this type of file is not accepted here");
        return;
    }
    cd_buf_append(&u->pending, u->sniff, u->sniff_len);
}

/* Bytes of the file itself (a raw body, or the multipart file part). */
static int file_bytes(void *ud, const unsigned char *p, size_t n)
{
    cd_http__upload *u = ud;
    if (u->refused)
        return 0;
    if (!u->name[0]) { /* a multipart file part: its headers came first */
        const char *fn = cd_files_mp_filename(u->mp);
        cd_files_name(fn, strlen(fn), u->name);
    }
    u->size += (int64_t)n;
    if (u->size > u->max_bytes) {
        upload_refuse(u, 413, "too_large", "file too large");
        return 0;
    }
    if (!u->sniffed) {
        size_t take = CD_FILES_SNIFF_LEN - u->sniff_len;
        if (take > n)
            take = n;
        memcpy(u->sniff + u->sniff_len, p, take);
        u->sniff_len += take;
        p += take;
        n -= take;
        if (u->sniff_len < CD_FILES_SNIFF_LEN)
            return 0;
        sniff_now(u);
        if (u->refused)
            return 0;
    }
    cd_buf_append(&u->pending, p, n);
    return 0;
}

void cd_http__upload_body(cd_http__upload *u, const void *in, size_t len)
{
    if (!u->refused) {
        if (u->mp) {
            if (cd_files_mp_feed(u->mp, in, len) != 0)
                upload_refuse(u, 400, "bad_request", "malformed multipart body");
        } else {
            file_bytes(u, in, len);
        }
    }
    if (!u->refused && u->pending.len >= UPLOAD_CHUNK && !u->paused) {
        lws_rx_flow_control(u->wsi, 0); /* until the writer has caught up */
        u->paused = true;
    }
    pump(u);
}

void cd_http__upload_complete(cd_http__upload *u)
{
    u->complete = true;
    if (!u->refused && !u->sniffed) {
        if (u->sniff_len == 0)
            upload_refuse(u, 400, "bad_request", "empty file");
        else
            sniff_now(u);
    }
    pump(u);
}

void cd_http__upload_detach(cd_http__upload *u)
{
    u->h = NULL;
    maybe_free(u);
}

/* Who uploads, to which site (a visitor's token names it; an agent's upload names its
 * conversation, whose id names the site), for which conversation; false after answering. */
static bool upload_who(cd_http__upload *u, http_state *h, const cd_auth_claims *c, const char *cid)
{
    char site[80];
    if (cid && (!plain_id(cid, sizeof u->cid - 1) || !cd_files_id_site(cid, site, sizeof site))) {
        cd_http__reply_error(h, 404, "not_found", "no such conversation");
        return false;
    }
    if (c->role == CD_AUTH_ROLE_VISITOR) {
        cd_strlcpy(u->kind, "visitor", sizeof u->kind);
        cd_strlcpy(u->site, c->site, sizeof u->site);
        if (cid && strcmp(site, u->site) != 0) {
            cd_http__reply_error(h, 404, "not_found", "no such conversation");
            return false;
        }
    } else if (!cid) {
        cd_http__reply_error(h, 400, "bad_request", "an agent's upload names its conversation (?conversation_id=)");
        return false;
    } else {
        cd_strlcpy(u->kind, "agent", sizeof u->kind);
        cd_strlcpy(u->site, site, sizeof u->site);
    }
    cd_strlcpy(u->who, c->sub, sizeof u->who);
    cd_strlcpy(u->jti, c->jti, sizeof u->jti);
    u->epoch = c->epoch;
    cd_strlcpy(u->cid, cid ? cid : "", sizeof u->cid);
    return true;
}

cd_http__upload *cd_http__upload_begin(http_state *h, struct lws *wsi, cd_net_ctx *cx, const char *auth,
                                       const char *const *args, size_t nargs)
{
    cd_auth_claims c;
    if (!caller(h, cx, auth, &c))
        return NULL;
    if (!cd_http__address_rate_ok(h, cx->upload_rl, CD_ARRAY_LEN(cx->upload_rl), (double)cx->cfg->file_upload_rate,
                                  (double)cx->cfg->file_upload_burst)) {
        cx->files_rejected++;
        cd_http__reply_error(h, 429, "rate_limited", "too many uploads from this address, retry later");
        return NULL;
    }
    char ct[256] = "";
    if (lws_hdr_copy(wsi, ct, sizeof ct, WSI_TOKEN_HTTP_CONTENT_TYPE) < 0)
        ct[0] = '\0';
    bool multipart = strncasecmp(ct, "multipart/", 10) == 0;
    char cl[32] = "";
    if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) < 0)
        cl[0] = '\0';
    long long len = strtoll(cl, NULL, 10);
    if (len > cx->cfg->file_max_bytes + (multipart ? MULTIPART_SLACK : 0)) {
        cx->files_rejected++;
        cd_http__reply_error(h, 413, "too_large", "file too large");
        return NULL;
    }
    cd_http__upload *u = cd_calloc(1, sizeof *u);
    u->h = h;
    u->wsi = wsi;
    u->cx = cx;
    cd_buf_init(&u->pending);
    if (!upload_who(u, h, &c, arg(args, nargs, "conversation_id"))) {
        upload_free(u);
        return NULL;
    }
    /* the site's own limits (site settings) within the node's */
    cd_node_file_limits(cx->node, u->site, &u->max_bytes, u->types, sizeof u->types);
    if (len > u->max_bytes + (multipart ? MULTIPART_SLACK : 0)) {
        cx->files_rejected++;
        cd_http__reply_error(h, 413, "too_large", "file too large for this site");
        upload_free(u);
        return NULL;
    }
    if (multipart && !(u->mp = cd_files_mp_new(ct, file_bytes, u))) {
        cd_http__reply_error(h, 400, "bad_request", "multipart/form-data with a boundary expected");
        upload_free(u);
        return NULL;
    }
    const char *name = arg(args, nargs, "name");
    if (name)
        cd_files_name(name, strlen(name), u->name);
    else if (!multipart)
        cd_strlcpy(u->name, "file", sizeof u->name);
    char rnd[64];
    cd_id_new("f", rnd, sizeof rnd);
    snprintf(u->id, sizeof u->id, "%s.%s", rnd, u->site);
    u->writing = true; /* the open */
    u->w = cd_files_writer_open(cx->loop, cx->cfg->files_dir, u->site, u->id, on_io, u);
    if (!u->w) {
        cd_http__reply_error(h, 500, "internal", "cannot store the file");
        u->writing = false;
        upload_free(u);
        return NULL;
    }
    /* who may upload here is known before the body: checked while it arrives */
    u->recording = true;
    if (strcmp(u->kind, "agent") != 0) {
        u->recording = false;
        begin_record(u);
    } else if (cd_account_by_id(cx->st, u->who, u->epoch, u->jti, on_agent_live, u) != 0) {
        u->recording = false;
        upload_refuse(u, 503, "unavailable", "Redis unavailable, retry");
    }
    return u;
}

/* ---- the store's health: a probe file created and removed ---- */

#define FILES_PROBE_MS 5000

typedef struct files_probe {
    uv_fs_t req;
    cd_net_ctx *cx;
    int step; /* 0 mkdir, 1 open, 2 close, 3 unlink */
    uv_file fd;
    char path[700];
} files_probe;

static void on_probe_fs(uv_fs_t *req)
{
    files_probe *p = req->data;
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    static const char *const what[] = {"creating files_dir", "creating a file in files_dir", "closing it",
                                       "removing it"};
    int rc = 0;
    if (r < 0 && !(p->step == 0 && r == UV_EEXIST)) {
        files_health(p->cx, what[p->step], (int)r);
        rc = -1;
    } else if (p->step == 0) {
        p->step = 1;
        rc = uv_fs_open(p->cx->loop, req, p->path, O_CREAT | O_WRONLY | O_TRUNC, 0600, on_probe_fs);
    } else if (p->step == 1) {
        p->step = 2;
        p->fd = (uv_file)r;
        rc = uv_fs_close(p->cx->loop, req, p->fd, on_probe_fs);
    } else if (p->step == 2) {
        p->step = 3;
        rc = uv_fs_unlink(p->cx->loop, req, p->path, on_probe_fs);
    } else {
        files_health(p->cx, "", 0);
        rc = -1;
    }
    if (rc != 0) { /* done (or a request could not start) */
        p->cx->files_probing = false;
        cd_free(p);
    }
}

void cd_http__files_probe(cd_net_ctx *cx)
{
    uint64_t now = cd_mono_ms();
    if (cx->files_probing || (cx->files_probed_ms && now - cx->files_probed_ms < FILES_PROBE_MS))
        return;
    files_probe *p = cd_calloc(1, sizeof *p);
    p->cx = cx;
    p->req.data = p;
    snprintf(p->path, sizeof p->path, "%s/.probe-%s", cx->cfg->files_dir, cx->node_id ? cx->node_id : "node");
    cx->files_probed_ms = now;
    if (uv_fs_mkdir(cx->loop, &p->req, cx->cfg->files_dir, 0750, on_probe_fs) == 0)
        cx->files_probing = true;
    else
        cd_free(p);
}

/* ---- link and download ---- */

static void fileop_free(cd_http__fileop *op)
{
    cd_free(op);
}

static void on_file(void *ud, cd_err err, const char *json)
{
    cd_http__fileop *op = ud;
    http_state *h = op->h;
    if (h)
        cd_http__fileop_clear(h);
    json_error_t je;
    json_t *rec = err == CD_ERR_OK ? json_loads(json, 0, &je) : NULL;
    const char *id = json_string_value(json_object_get(rec, "id"));
    const char *site = json_string_value(json_object_get(rec, "site"));
    const char *name = json_string_value(json_object_get(rec, "name"));
    const char *type = json_string_value(json_object_get(rec, "type"));
    if (!h) {
        /* the connection is gone */
    } else if (err != CD_ERR_OK || !id || !site || !name || !type) {
        cd_http__reply_error(h, err == CD_ERR_OK ? 500 : status_for(err),
                             err == CD_ERR_OK ? "internal" : cd_err_name(err),
                             err == CD_ERR_NOT_FOUND ? "no such file" : "cannot read the file record");
    } else if (op->download) {
        char path[768];
        if (op->cx->files_s3)
            cd_http__reply_s3(h, op->cx->files_s3, site, id, type, name,
                              (int64_t)json_integer_value(json_object_get(rec, "size")));
        else if (cd_files_path(op->cx->cfg->files_dir, site, id, path, sizeof path) != 0)
            cd_http__reply_error(h, 404, "not_found", "no such file");
        else
            cd_http__reply_file(h, path, type, name);
    } else {
        char url[512];
        int64_t exp = (int64_t)cd_now_ms() + op->cx->cfg->file_url_ttl_s * 1000;
        if (cd_files_url_sign(cd_node_keys(op->cx->node), id, exp, url, sizeof url) != 0) {
            cd_http__reply_error(h, 503, "unavailable", "node not ready, retry");
        } else {
            json_t *out = json_pack("{s:s, s:I, s:O, s:O, s:O}", "url", url, "expires_at", (json_int_t)exp, "name",
                                    json_object_get(rec, "name"), "type", json_object_get(rec, "type"), "size",
                                    json_object_get(rec, "size"));
            char *text = out ? json_dumps(out, JSON_COMPACT) : NULL;
            if (text)
                cd_http__reply(h, 200, "application/json", text, strlen(text));
            else
                cd_http__reply_error(h, 500, "internal", "cannot answer");
            free(text);
            json_decref(out);
        }
    }
    json_decref(rec);
    fileop_free(op);
}

static void on_deleted(void *ud, cd_err err, const char *json);

/* The file call for op (a removal, or a lookup for a link or a download); NULL after
 * answering at once. */
static cd_http__fileop *file_call(cd_http__fileop *op, const char *id, const char *kind, const char *who)
{
    http_state *h = op->h;
    cd_net_ctx *cx = op->cx;
    cd_strlcpy(op->id, id, sizeof op->id);
    int rc = !plain_id(id, 150) ? -2
             : op->remove       ? cd_files_delete(cx->st, id, kind, who, on_deleted, op)
                                : cd_files_get(cx->st, id, kind, who, on_file, op);
    if (rc != 0) {
        if (rc == -2)
            cd_http__reply_error(h, 404, "not_found", "no such file");
        else
            cd_http__reply_error(h, 503, "unavailable", "Redis unavailable, retry");
        fileop_free(op);
        return NULL;
    }
    return op;
}

static cd_http__fileop *file_lookup(http_state *h, cd_net_ctx *cx, const char *id, const char *kind, const char *who,
                                    bool download)
{
    cd_http__fileop *op = cd_calloc(1, sizeof *op);
    op->h = h;
    op->cx = cx;
    op->download = download;
    return file_call(op, id, kind, who);
}

/* ---- removal: DELETE /files/<id> ---- */

static void on_deleted(void *ud, cd_err err, const char *json)
{
    cd_http__fileop *op = ud;
    http_state *h = op->h;
    (void)json;
    if (h)
        cd_http__fileop_clear(h);
    if (err == CD_ERR_OK) {
        /* unreachable from now on; the body goes in the background (the orphan timer
         * finishes it if this node dies first) */
        char site[80];
        if (cd_files_id_site(op->id, site, sizeof site))
            cd_files_discard(op->cx->loop, op->cx->st, op->cx->cfg, op->cx->files_s3, site, op->id);
        cd_http__reply(h, 204, "application/json", "", 0);
    } else {
        cd_http__reply_error(h, status_for(err), cd_err_name(err),
                             err == CD_ERR_NOT_FOUND  ? "no such file"
                             : err == CD_ERR_CONFLICT ? "the file is in a message"
                                                      : "cannot remove the file");
    }
    fileop_free(op);
}

static cd_http__fileop *file_delete(http_state *h, cd_net_ctx *cx, const char *id, const char *kind, const char *who)
{
    cd_http__fileop *op = cd_calloc(1, sizeof *op);
    op->h = h;
    op->cx = cx;
    op->remove = true;
    return file_call(op, id, kind, who);
}

/* The agent's token is live (agent_get): now the file. */
static void on_link_agent(void *ud, const cd_account *r)
{
    cd_http__fileop *op = ud;
    http_state *h = op->h;
    if (h)
        cd_http__fileop_clear(h);
    if (h && r->err == CD_ERR_OK && op->remove)
        cd_http__fileop_set(h, file_delete(h, op->cx, op->id, "agent", op->who));
    else if (h && r->err == CD_ERR_OK)
        cd_http__fileop_set(h, file_lookup(h, op->cx, op->id, "agent", op->who, false));
    else if (h && r->err == CD_ERR_UNAVAILABLE)
        cd_http__reply_error(h, 503, "unavailable", "Redis unavailable, retry");
    else if (h)
        cd_http__reply_error(h, 401, "unauthorized", "invalid or expired token");
    fileop_free(op);
}

/* GET /files/<id>/link (remove false) and DELETE /files/<id> (remove true): a visitor's
 * token is enough; an agent's is first checked against its revocations. */
static cd_http__fileop *file_as_caller(http_state *h, cd_net_ctx *cx, const char *auth, const char *id, bool remove)
{
    cd_auth_claims c;
    if (!caller(h, cx, auth, &c))
        return NULL;
    if (c.role == CD_AUTH_ROLE_VISITOR)
        return remove ? file_delete(h, cx, id, "visitor", c.sub) : file_lookup(h, cx, id, "visitor", c.sub, false);
    cd_http__fileop *op = cd_calloc(1, sizeof *op);
    op->h = h;
    op->cx = cx;
    op->remove = remove;
    cd_strlcpy(op->id, id, sizeof op->id);
    cd_strlcpy(op->who, c.sub, sizeof op->who);
    if (cd_account_by_id(cx->st, c.sub, c.epoch, c.jti, on_link_agent, op) != 0) {
        cd_http__reply_error(h, 503, "unavailable", "Redis unavailable, retry");
        fileop_free(op);
        return NULL;
    }
    return op;
}

cd_http__fileop *cd_http__file_link(http_state *h, cd_net_ctx *cx, const char *auth, const char *id)
{
    return file_as_caller(h, cx, auth, id, false);
}

cd_http__fileop *cd_http__file_remove(http_state *h, cd_net_ctx *cx, const char *auth, const char *id)
{
    return file_as_caller(h, cx, auth, id, true);
}

cd_http__fileop *cd_http__file_download(http_state *h, cd_net_ctx *cx, const char *id, const char *const *args,
                                        size_t nargs)
{
    if (!cd_node_ready(cx->node)) {
        cd_http__reply_error(h, 503, "unavailable", "node not ready, retry");
        return NULL;
    }
    if (!cd_files_url_verify(cd_node_keys(cx->node), id, arg(args, nargs, "e"), arg(args, nargs, "k"),
                             arg(args, nargs, "s"), (int64_t)cd_now_ms())) {
        /* expired, forged or for another file: alike */
        cd_http__reply_error(h, 403, "forbidden", "link invalid or expired");
        return NULL;
    }
    return file_lookup(h, cx, id, "signed", "", true);
}

void cd_http__fileop_detach(cd_http__fileop *op)
{
    op->h = NULL;
}

/* The name for the headers: an ASCII fallback (filename=, anything else as '_') and the
 * UTF-8 name percent-encoded (filename*=, RFC 6266). */
int cd_http__file_headers(struct lws *wsi, const char *mime, const char *name, unsigned char **p, unsigned char *end)
{
    static const char csp[] = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox; "
                              "frame-ancestors 'none'";
    char ascii[201], pct[620], disp[900];
    size_t a = 0, q = 0;
    for (const unsigned char *s = (const unsigned char *)name; *s && a < 200; s++)
        ascii[a++] = (*s >= 0x20 && *s < 0x7f && *s != '"' && *s != '\\' && *s != '%') ? (char)*s : '_';
    ascii[a] = '\0';
    for (const unsigned char *s = (const unsigned char *)name; *s && q + 3 < sizeof pct; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("-._~", *s))
            pct[q++] = (char)*s;
        else
            q += (size_t)snprintf(pct + q, sizeof pct - q, "%%%02X", *s);
    }
    pct[q] = '\0';
    bool inl = cd_files_inline_safe(mime);
    int n = snprintf(disp, sizeof disp, "%s; filename=\"%s\"; filename*=UTF-8''%s", inl ? "inline" : "attachment",
                     ascii, pct);
    if (n <= 0 || (size_t)n >= sizeof disp)
        return -1;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"content-disposition:", (const unsigned char *)disp, n,
                                    p, end) ||
        lws_add_http_header_by_name(
            wsi, (const unsigned char *)"x-content-type-options:", (const unsigned char *)"nosniff", 7, p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"content-security-policy:", (const unsigned char *)csp,
                                    (int)strlen(csp), p, end) ||
        lws_add_http_header_by_name(
            wsi, (const unsigned char *)"cache-control:", (const unsigned char *)"private, no-store", 17, p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cross-origin-resource-policy:",
                                    (const unsigned char *)"cross-origin", 12, p, end))
        return -1;
    return 0;
}
