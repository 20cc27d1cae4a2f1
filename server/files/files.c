/* Attachment records in Redis, one small call each in the file's site slot (the id names
 * its site: "f_<random>.<site>", as conversation ids do), and the orphan timer: an upload
 * no message took within file_orphan_s is removed, record and body (file_orphan.lua's
 * two steps around the body's removal; docs/attachments.md). */
#include "chatdesk/files.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"

typedef struct files_call {
    cd_files_cb cb;
    void *ud;
} files_call;

static void on_reply(void *ud, cd_err err, const char *json, size_t len)
{
    files_call *c = ud;
    (void)len;
    c->cb(c->ud, err, json ? json : "");
    cd_free(c);
}

bool cd_files_id_site(const char *id, char *out, size_t outsz)
{
    const char *dot = id ? strrchr(id, '.') : NULL;
    if (!dot || !dot[1] || strlen(dot + 1) >= outsz)
        return false;
    for (const char *p = dot + 1; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-'))
            return false;
    cd_strlcpy(out, dot + 1, outsz);
    return true;
}

static int call(cd_store *st, const char *fn, const char *site, const char *id, int nargs, const char *const *args,
                cd_files_cb cb, void *ud)
{
    cd_key k;
    char suffix[160];
    snprintf(suffix, sizeof suffix, ":file:%s", id);
    const char *keys[] = {cd_key_site(&k, cd_store_prefix(st), site, suffix)};
    files_call *c = cd_malloc(sizeof *c);
    c->cb = cb;
    c->ud = ud;
    if (cd_store_fcall(st, fn, 1, keys, nargs, args, NULL, on_reply, c) != 0) {
        cd_free(c);
        return -1;
    }
    return 0;
}

int cd_files_begin(cd_store *st, const cd_config *cfg, const char *site, const char *id, const char *kind,
                   const char *who, const char *cid, cd_files_cb cb, void *ud)
{
    char now[24], orphan[24], max[24];
    snprintf(now, sizeof now, "%" PRIu64, cd_now_ms());
    snprintf(orphan, sizeof orphan, "%" PRId64, cfg->file_orphan_s * 1000);
    snprintf(max, sizeof max, "%" PRId64, (int64_t)cfg->file_max_pending);
    const char *args[] = {"begin", id, site, kind, who, cid ? cid : "", now, orphan, max};
    return call(st, "file_put", site, id, (int)CD_ARRAY_LEN(args), args, cb, ud);
}

int cd_files_put(cd_store *st, const cd_config *cfg, const char *site, const char *id, const char *kind,
                 const char *who, const char *name, const char *mime, int64_t size, cd_files_cb cb, void *ud)
{
    char sz[24], max[24];
    snprintf(sz, sizeof sz, "%" PRId64, size);
    snprintf(max, sizeof max, "%" PRId64, (int64_t)cfg->file_max_pending);
    const char *args[] = {"done", id, site, kind, who, name, mime, sz, max};
    return call(st, "file_put", site, id, (int)CD_ARRAY_LEN(args), args, cb, ud);
}

/* A call about file id by a caller (kind/who), in the site the id names. */
static int call_as(cd_store *st, const char *fn, const char *id, const char *kind, const char *who, cd_files_cb cb,
                   void *ud)
{
    char site[80];
    if (!cd_files_id_site(id, site, sizeof site))
        return -2;
    const char *args[] = {id, kind, who};
    return call(st, fn, site, id, 3, args, cb, ud);
}

int cd_files_delete(cd_store *st, const char *id, const char *kind, const char *who, cd_files_cb cb, void *ud)
{
    return call_as(st, "file_delete", id, kind, who, cb, ud);
}

int cd_files_get(cd_store *st, const char *id, const char *kind, const char *who, cd_files_cb cb, void *ud)
{
    return call_as(st, "file_get", id, kind, who, cb, ud);
}

/* ---- the orphan timer ---- */

typedef struct orphan_ctx {
    struct uv_loop_s *loop;
    cd_store *st;
    const cd_config *cfg;
    cd_files_s3 *s3;
} orphan_ctx;

typedef struct orphan_job {
    orphan_ctx *ctx;
    char site[80];
    char id[160];
} orphan_job;

static void on_dropped(void *ud, cd_err err, const char *json)
{
    orphan_job *j = ud;
    if (err != CD_ERR_OK)
        cd_log_warn("fileorphan %s: drop failed: %s %s", j->id, cd_err_name(err), json);
    cd_free(j);
}

void cd_files_discard(struct uv_loop_s *loop, cd_store *st, const cd_config *cfg, cd_files_s3 *s3, const char *site,
                      const char *id)
{
    char part[170];
    snprintf(part, sizeof part, "%s.part", id);
    cd_files_remove(loop, cfg->files_dir, site, id);
    cd_files_remove(loop, cfg->files_dir, site, part);
    if (s3)
        cd_files_s3_delete(s3, site, id);
    orphan_job *j = cd_calloc(1, sizeof *j);
    cd_strlcpy(j->site, site, sizeof j->site);
    cd_strlcpy(j->id, id, sizeof j->id);
    const char *args[] = {j->id, "drop"};
    if (call(st, "file_orphan", j->site, j->id, 2, args, on_dropped, j) != 0)
        cd_free(j); /* Redis down: the orphan timer fires later and finishes */
}

/* The record is "reaped": nothing can take or read the file now, so its body goes
 * (on the thread pool), then the record. */
static void on_marked(void *ud, cd_err err, const char *json)
{
    orphan_job *j = ud;
    if (err != CD_ERR_OK)
        cd_log_warn("fileorphan %s: %s %s", j->id, cd_err_name(err), json);
    else if (strstr(json, "\"remove\":true") != NULL)
        cd_files_discard(j->ctx->loop, j->ctx->st, j->ctx->cfg, j->ctx->s3, j->site, j->id);
    cd_free(j);
}

/* "fileorphan|<id>" */
static void on_orphan_timer(void *ud, const char *site, const char *arg)
{
    orphan_ctx *ctx = ud;
    orphan_job *j = cd_calloc(1, sizeof *j);
    j->ctx = ctx;
    cd_strlcpy(j->site, site, sizeof j->site);
    cd_strlcpy(j->id, arg, sizeof j->id);
    const char *args[] = {j->id, "mark"};
    if (call(ctx->st, "file_orphan", j->site, j->id, 2, args, on_marked, j) != 0)
        cd_free(j);
}

void cd_files_timers_register(cd_timers *t, struct uv_loop_s *loop, cd_store *st, const cd_config *cfg, cd_files_s3 *s3)
{
    orphan_ctx *ctx = cd_timers_context(t, sizeof *ctx);
    ctx->loop = loop;
    ctx->st = st;
    ctx->cfg = cfg;
    ctx->s3 = s3;
    cd_timers_register(t, "fileorphan", on_orphan_timer, ctx);
}
