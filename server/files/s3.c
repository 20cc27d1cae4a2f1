/* Attachment bodies in an S3-compatible store (files_store = s3): libcurl's multi
 * interface on the node's libuv loop (cd_curluv), requests signed with libcurl's AWS SigV4
 * (CURLOPT_AWS_SIGV4, "aws:amz:<region>:s3", payload UNSIGNED-PAYLOAD). Nothing blocks
 * the loop and nothing holds a whole file:
 *
 * - PUT streams a body staged in the local files directory: 64 KB at a time is read on
 *   the thread pool (uv_fs_read) while curl waits paused (CURL_READFUNC_PAUSE), then curl
 *   is resumed; the staged file is removed once the store has it.
 * - GET hands each piece curl receives to the caller, which may refuse it for now
 *   (the HTTP connection is not writable yet): curl pauses and re-offers it on resume.
 * - DELETE removes an object (the orphan timer), fire and forget.
 *
 * Objects are "<site>/<id>" in s3_bucket, addressed path-style
 * (<endpoint>/<bucket>/<key>, s3_path_style) or virtual-hosted
 * (<scheme>://<bucket>.<host>/<key>). */
#include "chatdesk/files.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "chatdesk/curluv.h"
#include "chatdesk/log.h"

#define S3_READ_CHUNK (64 * 1024)

struct cd_files_s3 {
    uv_loop_t *loop;
    const cd_config *cfg;
    cd_curluv *curl;
    CURLM *multi;
    int inflight;
    bool stopping;
    cd_files_s3_req *reqs; /* in flight (destroy aborts them) */
};

typedef enum s3_op { S3_PUT, S3_GET, S3_DELETE } s3_op;

struct cd_files_s3_req {
    cd_files_s3 *s3;
    cd_files_s3_req *prev, *next;
    CURL *easy;
    struct curl_slist *hdrs;
    s3_op op;
    char url[1024];
    char err[CURL_ERROR_SIZE];
    bool gone; /* the caller let go (GET): finish quietly */
    /* PUT: the staged body */
    char path[768];
    uv_file fd;
    uv_fs_t rreq;
    char *buf;
    size_t len, off;
    int64_t offset;
    bool reading, eof, paused, read_failed;
    /* GET */
    cd_files_s3_data_cb on_data;
    cd_files_io_cb done;
    void *ud;
};

/* ---- lifetime ---- */

static void s3_maybe_free(cd_files_s3 *s3)
{
    if (s3->stopping && s3->inflight == 0) {
        cd_curluv_destroy(s3->curl);
        cd_free(s3);
        curl_global_cleanup();
    }
}

/* A fire-and-forget file operation ended (unlink, close). */
static void on_unlinked(uv_fs_t *req)
{
    uv_fs_req_cleanup(req);
    cd_free(req);
}

static void req_free(cd_files_s3_req *r)
{
    cd_files_s3 *s3 = r->s3;
    if (r->prev)
        r->prev->next = r->next;
    else
        s3->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    if (r->easy) {
        curl_multi_remove_handle(s3->multi, r->easy);
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->hdrs);
    if (r->fd >= 0) { /* closed on the thread pool too */
        uv_fs_t *c = cd_calloc(1, sizeof *c);
        if (uv_fs_close(s3->loop, c, r->fd, on_unlinked) != 0)
            cd_free(c);
    }
    cd_free(r->buf);
    cd_free(r);
    s3->inflight--;
    s3_maybe_free(s3);
}

/* ---- a transfer ended (cd_curluv) ---- */

static void on_done(void *ud, void *easy, int result)
{
    cd_files_s3 *s3 = ud;
    char *pv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &pv);
    cd_files_s3_req *r = (cd_files_s3_req *)(void *)pv;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    const char *op = r->op == S3_PUT ? "PUT" : r->op == S3_GET ? "GET" : "DELETE";
    int rc = 0;
    if (result != CURLE_OK || r->read_failed) {
        if (!r->gone)
            cd_log_warn("s3 %s %s: %s", op, r->url, r->err[0] ? r->err : curl_easy_strerror((CURLcode)result));
        rc = UV_EIO;
    } else if (status < 200 || status > 299) {
        if (r->op != S3_DELETE || status != 404)
            cd_log_warn("s3 %s %s: HTTP %ld", op, r->url, status);
        rc = status == 404 ? UV_ENOENT : UV_EIO;
    }
    if (r->op == S3_PUT && rc == 0) { /* the store has it: the staged copy goes */
        uv_fs_t *u = cd_calloc(1, sizeof *u);
        if (uv_fs_unlink(s3->loop, u, r->path, on_unlinked) != 0)
            cd_free(u);
    }
    if (r->done && !r->gone)
        r->done(r->ud, rc);
    req_free(r);
}

cd_files_s3 *cd_files_s3_create(uv_loop_t *loop, const cd_config *cfg)
{
    if (!cfg->s3_bucket[0]) {
        cd_log_error("files_store s3 needs s3_bucket");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    cd_files_s3 *s3 = cd_calloc(1, sizeof *s3);
    s3->loop = loop;
    s3->cfg = cfg;
    s3->curl = cd_curluv_create(loop, on_done, s3);
    if (!s3->curl) {
        cd_free(s3);
        curl_global_cleanup();
        return NULL;
    }
    s3->multi = cd_curluv_multi(s3->curl);
    return s3;
}

/* Transfers in flight are aborted without their callbacks (their owners are going too),
 * then the multi goes. */
void cd_files_s3_destroy(cd_files_s3 *s3)
{
    if (!s3)
        return;
    while (s3->reqs) {
        s3->reqs->gone = true;
        s3->reqs->done = NULL;
        req_free(s3->reqs);
    }
    s3->stopping = true;
    s3_maybe_free(s3);
}

/* ---- requests ---- */

/* "<endpoint>/<bucket>/<site>/<id>" (path style) or "<scheme>://<bucket>.<host>/<site>/<id>". */
static int object_url(const cd_config *cfg, const char *site, const char *id, char *out, size_t outsz)
{
    char def[160];
    const char *ep = cfg->s3_endpoint;
    if (!ep[0]) {
        snprintf(def, sizeof def, "https://s3.%s.amazonaws.com", cfg->s3_region);
        ep = def;
    }
    const char *host = strstr(ep, "://");
    if (!host || strchr(site, '/') || strchr(id, '/'))
        return -1;
    size_t el = strlen(ep);
    while (el > 0 && ep[el - 1] == '/')
        el--;
    int n = cfg->s3_path_style ? snprintf(out, outsz, "%.*s/%s/%s/%s", (int)el, ep, cfg->s3_bucket, site, id)
                               : snprintf(out, outsz, "%.*s%s.%.*s/%s/%s", (int)(host + 3 - ep), ep, cfg->s3_bucket,
                                          (int)(el - (size_t)(host + 3 - ep)), host + 3, site, id);
    return n > 0 && (size_t)n < outsz ? 0 : -1;
}

static cd_files_s3_req *req_new(cd_files_s3 *s3, s3_op op, const char *site, const char *id)
{
    cd_files_s3_req *r = cd_calloc(1, sizeof *r);
    r->s3 = s3;
    r->op = op;
    r->fd = -1;
    if (object_url(s3->cfg, site, id, r->url, sizeof r->url) != 0 || !(r->easy = curl_easy_init())) {
        cd_free(r);
        return NULL;
    }
    char sigv4[128], userpwd[512];
    snprintf(sigv4, sizeof sigv4, "aws:amz:%s:s3", s3->cfg->s3_region);
    snprintf(userpwd, sizeof userpwd, "%s:%s", s3->cfg->s3_access_key, s3->cfg->s3_secret_key);
    r->hdrs = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(e, CURLOPT_USERPWD, userpwd);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->err);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    memset(userpwd, 0, sizeof userpwd);
    s3->inflight++;
    r->next = s3->reqs;
    if (s3->reqs)
        s3->reqs->prev = r;
    s3->reqs = r;
    return r;
}

static int req_start(cd_files_s3_req *r)
{
    if (curl_multi_add_handle(r->s3->multi, r->easy) != CURLM_OK) {
        r->done = NULL;
        req_free(r);
        return -1;
    }
    return 0;
}

/* PUT: the next 64 KB of the staged file, read on the thread pool. */
static void on_read(uv_fs_t *req)
{
    cd_files_s3_req *r = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    r->reading = false;
    if (n < 0)
        r->read_failed = true;
    else if (n == 0)
        r->eof = true;
    r->len = n > 0 ? (size_t)n : 0;
    r->off = 0;
    r->offset += n > 0 ? n : 0;
    if (r->paused) {
        r->paused = false;
        curl_easy_pause(r->easy, CURLPAUSE_CONT);
    }
}

static size_t read_cb(char *dst, size_t size, size_t nitems, void *ud)
{
    cd_files_s3_req *r = ud;
    size_t want = size * nitems;
    if (r->read_failed)
        return CURL_READFUNC_ABORT;
    if (r->off < r->len) {
        size_t n = r->len - r->off < want ? r->len - r->off : want;
        memcpy(dst, r->buf + r->off, n);
        r->off += n;
        return n;
    }
    if (r->eof)
        return 0;
    if (!r->reading) {
        uv_buf_t b = uv_buf_init(r->buf, S3_READ_CHUNK);
        r->rreq.data = r;
        if (uv_fs_read(r->s3->loop, &r->rreq, r->fd, &b, 1, r->offset, on_read) != 0)
            return CURL_READFUNC_ABORT;
        r->reading = true;
    }
    r->paused = true;
    return CURL_READFUNC_PAUSE;
}

static void on_opened(uv_fs_t *req)
{
    cd_files_s3_req *r = req->data;
    ssize_t fd = req->result;
    uv_fs_req_cleanup(req);
    if (fd < 0) {
        cd_log_warn("s3 PUT %s: cannot open the staged body: %s", r->url, uv_strerror((int)fd));
        cd_files_io_cb done = r->done;
        void *ud = r->ud;
        r->done = NULL;
        req_free(r);
        done(ud, (int)fd);
        return;
    }
    r->fd = (uv_file)fd;
    cd_files_io_cb done = r->done;
    void *ud = r->ud;
    if (req_start(r) != 0)
        done(ud, UV_EIO);
}

int cd_files_s3_put(cd_files_s3 *s3, const char *staged, int64_t size, const char *site, const char *id,
                    cd_files_io_cb done, void *ud)
{
    cd_files_s3_req *r = req_new(s3, S3_PUT, site, id);
    if (!r)
        return -1;
    cd_strlcpy(r->path, staged, sizeof r->path);
    r->buf = cd_malloc(S3_READ_CHUNK);
    r->done = done;
    r->ud = ud;
    curl_easy_setopt(r->easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(r->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
    curl_easy_setopt(r->easy, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(r->easy, CURLOPT_READDATA, r);
    r->rreq.data = r;
    if (uv_fs_open(s3->loop, &r->rreq, r->path, O_RDONLY, 0, on_opened) != 0) {
        r->done = NULL;
        req_free(r);
        return -1;
    }
    return 0;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    cd_files_s3_req *r = ud;
    size_t n = size * nmemb;
    if (r->gone)
        return 0; /* aborts the transfer */
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299)
        return n; /* an error body: not the file's */
    return r->on_data(r->ud, (const unsigned char *)p, n) == 0 ? n : CURL_WRITEFUNC_PAUSE;
}

cd_files_s3_req *cd_files_s3_get(cd_files_s3 *s3, const char *site, const char *id, cd_files_s3_data_cb on_data,
                                 cd_files_io_cb done, void *ud)
{
    cd_files_s3_req *r = req_new(s3, S3_GET, site, id);
    if (!r)
        return NULL;
    r->on_data = on_data;
    r->done = done;
    r->ud = ud;
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    return req_start(r) == 0 ? r : NULL;
}

void cd_files_s3_resume(cd_files_s3_req *r)
{
    curl_easy_pause(r->easy, CURLPAUSE_CONT);
}

void cd_files_s3_cancel(cd_files_s3_req *r)
{
    r->gone = true;
    curl_easy_pause(r->easy, CURLPAUSE_CONT); /* the write callback then aborts it */
}

void cd_files_s3_delete(cd_files_s3 *s3, const char *site, const char *id)
{
    cd_files_s3_req *r = req_new(s3, S3_DELETE, site, id);
    if (!r)
        return;
    curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, "DELETE");
    req_start(r);
}
