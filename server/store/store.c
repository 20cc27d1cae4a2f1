/* cd_store: Lua scripts over one command connection. Scripts are loaded at every
 * (re)connect; the store is "up" once they are. A NOSCRIPT reply (script cache
 * flushed, failover) is answered by one EVAL with the full source. */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <string.h>
#include <uv.h>

#include "chatdesk/log.h"
#include "chatdesk/store.h"
#include "store_int.h"

#define MAX_SCRIPTS 96

typedef struct script {
    const char *name;
    char *src; /* preludes + script */
    size_t len;
    char sha[41];
} script;

struct cd_store {
    cd_rconn *rc;
    const cd_config *cfg;
    char *prefix;
    size_t prefix_len;
    script scripts[MAX_SCRIPTS];
    size_t nscripts;
    size_t loading; /* SCRIPT LOADs awaiting replies */
    cd_store_state_cb state_cb;
    void *state_ud;
    unsigned long long commands, errors;
};

typedef struct eval_op {
    cd_store *st;
    script *sc;
    int argc; /* incl. EVALSHA sha numkeys */
    char **argv;
    size_t *lens;
    cd_store_reply_cb cb;
    void *ud;
    bool retried;
} eval_op;

static void on_script_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    script *sc = priv;
    redisReply *reply = r;
    if (!reply)
        return; /* connection lost; loads again on reconnect */
    if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
        cd_log_error("SCRIPT LOAD %s failed: %s", sc->name, reply->type == REDIS_REPLY_ERROR ? reply->str : "?");
        return;
    }
    memcpy(sc->sha, reply->str, 40);
    sc->sha[40] = '\0';
}

static void on_scripts_done(redisAsyncContext *ac, void *r, void *priv)
{
    cd_store *st = priv;
    if (!r)
        return;
    for (size_t i = 0; i < st->nscripts; i++)
        if (!st->scripts[i].sha[0]) {
            cd_rconn_fail(st->rc, "script load failed");
            return;
        }
    cd_rconn_ready(st->rc);
}

static void on_rconn(void *ud, cd_rconn *rc, cd_rconn_event ev)
{
    cd_store *st = ud;
    if (ev == CD_RCONN_CONNECTED) {
        redisAsyncContext *ac = cd_rconn_ctx(rc);
        for (size_t i = 0; i < st->nscripts; i++) {
            st->scripts[i].sha[0] = '\0';
            const char *argv[] = {"SCRIPT", "LOAD", st->scripts[i].src};
            size_t lens[] = {6, 4, st->scripts[i].len};
            redisAsyncCommandArgv(ac, on_script_loaded, &st->scripts[i], 3, argv, lens);
        }
        redisAsyncCommand(ac, on_scripts_done, st, "PING");
        return;
    }
    if (st->state_cb)
        st->state_cb(st->state_ud, ev == CD_RCONN_UP);
}

cd_store *cd_store_create(uv_loop_t *loop, const cd_config *cfg)
{
    cd_store *st = cd_calloc(1, sizeof *st);
    st->cfg = cfg;
    st->prefix = cd_strdup(cfg->prefix);
    st->prefix_len = strlen(st->prefix);
    /* every script = _common + [_api for api*.lua] + its own text; "_" files are preludes */
    const cd_store_lua_source *common = NULL, *api = NULL;
    for (size_t i = 0; i < cd_store_lua_count; i++) {
        if (strcmp(cd_store_lua_sources[i].name, "_common") == 0)
            common = &cd_store_lua_sources[i];
        else if (strcmp(cd_store_lua_sources[i].name, "_api") == 0)
            api = &cd_store_lua_sources[i];
    }
    for (size_t i = 0; i < cd_store_lua_count && st->nscripts < MAX_SCRIPTS; i++) {
        const cd_store_lua_source *s = &cd_store_lua_sources[i];
        if (s->name[0] == '_')
            continue;
        const cd_store_lua_source *parts[3] = {common, strncmp(s->name, "api", 3) == 0 ? api : NULL, s};
        script *sc = &st->scripts[st->nscripts++];
        sc->name = s->name;
        sc->len = 0;
        for (int k = 0; k < 3; k++)
            sc->len += parts[k] ? parts[k]->len : 0;
        sc->src = cd_malloc(sc->len + 1);
        size_t off = 0;
        for (int k = 0; k < 3; k++) {
            if (!parts[k])
                continue;
            memcpy(sc->src + off, parts[k]->src, parts[k]->len);
            off += parts[k]->len;
        }
        sc->src[sc->len] = '\0';
    }
    st->rc = cd_rconn_create(loop, cfg, "cmd", true, on_rconn, st);
    if (!st->rc) {
        cd_store_destroy(st);
        return NULL;
    }
    cd_rconn_hold(st->rc);
    return st;
}

void cd_store_on_state(cd_store *st, cd_store_state_cb cb, void *ud)
{
    st->state_cb = cb;
    st->state_ud = ud;
}

void cd_store_start(cd_store *st)
{
    cd_rconn_start(st->rc);
}

void cd_store_stop(cd_store *st)
{
    if (st->rc)
        cd_rconn_stop(st->rc);
}

void cd_store_destroy(cd_store *st)
{
    if (!st)
        return;
    if (st->rc)
        cd_rconn_destroy(st->rc);
    for (size_t i = 0; i < st->nscripts; i++)
        cd_free(st->scripts[i].src);
    cd_free(st->prefix);
    cd_free(st);
}

bool cd_store_up(const cd_store *st)
{
    return cd_rconn_up(st->rc);
}

const char *cd_store_prefix(const cd_store *st)
{
    return st->prefix;
}

static void op_free(eval_op *op)
{
    for (int i = 0; i < op->argc; i++)
        cd_free(op->argv[i]);
    cd_free(op->argv);
    cd_free(op->lens);
    cd_free(op);
}

static void op_finish(eval_op *op, cd_err err, const char *json, size_t len)
{
    op->cb(op->ud, err, json, len);
    op_free(op);
}

/* A script's failure reply: {"err":"code","message":"..."} */
static cd_err script_error(const char *s, size_t len)
{
    static const char head[] = "{\"err\":\"";
    if (len < sizeof head || memcmp(s, head, sizeof head - 1) != 0)
        return CD_ERR_OK;
    const char *start = s + sizeof head - 1;
    const char *end = memchr(start, '"', len - (size_t)(start - s));
    if (!end || end - start > 31)
        return CD_ERR_INTERNAL;
    char code[32];
    memcpy(code, start, (size_t)(end - start));
    code[end - start] = '\0';
    return cd_err_from_name(code);
}

static void on_eval_reply(redisAsyncContext *ac, void *r, void *priv)
{
    eval_op *op = priv;
    redisReply *reply = r;
    if (reply)
        cd_rconn_alive(op->st->rc);
    if (!reply) {
        op_finish(op, CD_ERR_UNAVAILABLE, "redis unavailable", 17);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        if (!op->retried && strncmp(reply->str, "NOSCRIPT", 8) == 0 && cd_rconn_ctx(op->st->rc)) {
            op->retried = true;
            cd_free(op->argv[0]);
            cd_free(op->argv[1]);
            op->argv[0] = cd_strdup("EVAL");
            op->lens[0] = 4;
            op->argv[1] = cd_strndup(op->sc->src, op->sc->len);
            op->lens[1] = op->sc->len;
            redisAsyncCommandArgv(cd_rconn_ctx(op->st->rc), on_eval_reply, op, op->argc, (const char **)op->argv,
                                  op->lens);
            return;
        }
        op->st->errors++;
        cd_log_error("script %s failed: %s", op->sc->name, reply->str);
        cd_err e = strncmp(reply->str, "LOADING", 7) == 0 || strncmp(reply->str, "BUSY", 4) == 0 ? CD_ERR_UNAVAILABLE
                                                                                                 : CD_ERR_INTERNAL;
        op_finish(op, e, "redis error", 11);
        return;
    }
    if (reply->type != REDIS_REPLY_STRING) {
        op->st->errors++;
        op_finish(op, CD_ERR_INTERNAL, "unexpected reply", 16);
        return;
    }
    cd_err e = script_error(reply->str, reply->len);
    op_finish(op, e, reply->str, reply->len);
}

int cd_store_eval(cd_store *st, const char *name, int nargs, const char *const *args, const size_t *lens,
                  cd_store_reply_cb cb, void *ud)
{
    redisAsyncContext *ac = cd_rconn_up(st->rc) ? cd_rconn_ctx(st->rc) : NULL;
    if (!ac)
        return -1;
    script *sc = NULL;
    for (size_t i = 0; i < st->nscripts; i++)
        if (strcmp(st->scripts[i].name, name) == 0)
            sc = &st->scripts[i];
    if (!sc) {
        cd_log_error("no script named %s", name);
        return -1;
    }
    eval_op *op = cd_calloc(1, sizeof *op);
    op->st = st;
    op->sc = sc;
    op->cb = cb;
    op->ud = ud;
    op->argc = 4 + nargs;
    op->argv = cd_calloc((size_t)op->argc, sizeof(char *));
    op->lens = cd_calloc((size_t)op->argc, sizeof(size_t));
    op->argv[0] = cd_strdup("EVALSHA");
    op->argv[1] = cd_strdup(sc->sha);
    op->argv[2] = cd_strdup("0");
    op->argv[3] = cd_strndup(st->prefix, st->prefix_len);
    op->lens[0] = 7;
    op->lens[1] = 40;
    op->lens[2] = 1;
    op->lens[3] = st->prefix_len;
    for (int i = 0; i < nargs; i++) {
        const char *a = args[i] ? args[i] : "";
        size_t l = lens ? lens[i] : strlen(a);
        op->argv[4 + i] = cd_strndup(a, l);
        op->lens[4 + i] = l;
    }
    st->commands++;
    if (redisAsyncCommandArgv(ac, on_eval_reply, op, op->argc, (const char **)op->argv, op->lens) != REDIS_OK) {
        op_free(op);
        return -1;
    }
    return 0;
}

int cd_store_publish(cd_store *st, const char *channel, const char *payload, size_t len)
{
    redisAsyncContext *ac = cd_rconn_up(st->rc) ? cd_rconn_ctx(st->rc) : NULL;
    if (!ac)
        return -1;
    return redisAsyncCommand(ac, NULL, NULL, "PUBLISH %s%s %b", st->prefix, channel, payload, len) == REDIS_OK ? 0 : -1;
}

void cd_store_get_stats(const cd_store *st, cd_store_stats *out)
{
    out->commands = st->commands;
    out->errors = st->errors;
    cd_store__rconn_stats(st->rc, &out->reconnects, &out->ping_failures);
    out->ping_rtt_us = cd_store__rconn_rtt_us(st->rc);
}
