/* cd_store: the Lua scripts of store/lua/ as one Redis 7 function library over one
 * command connection. The library is loaded at every (re)connect and the store is "up"
 * once it is; a call is FCALL <library>_<script>. _common.lua (and _api.lua for api*.lua)
 * run once when the library loads, so a call pays only for its own work (as EVALSHA,
 * each call re-ran the whole prelude: ~7 us). The library's name carries a hash of its
 * text, so nodes of different versions never replace each other's functions. Every call
 * declares its keys (cd_store_fcall). A
 * "Function not found" reply (FUNCTION FLUSH, a fresh replica promoted) loads the library
 * again and retries once. */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "chatdesk/log.h"
#include "chatdesk/store.h"
#include "store_int.h"

typedef struct script {
    char name[48];
    char fname[64]; /* the function: <library>_<name> */
    bool ro;        /* registered with the no-writes flag */
} script;

struct cd_store {
    cd_rconn *rc;
    const cd_config *cfg;
    char *prefix;
    size_t prefix_len;
    char *lib; /* the library text (FUNCTION LOAD) */
    size_t lib_len;
    char lib_name[32];
    script scripts[CD_STORE_LIB_MAX];
    size_t nscripts;
    cd_store_state_cb state_cb;
    void *state_ud;
    unsigned long long commands, errors;
    /* Redis answered OOM (maxmemory reached, noeviction): writes are refused, reads work.
     * Cleared by a write that succeeds (probe.lua is sent every second while full). */
    bool full;
    uint64_t last_probe;
    unsigned long long oom_replies;
    /* ack_replicas: stored durable replies wait here for the WAIT sent after them */
    struct eval_op *waiting, **waiting_tail;
    bool wait_out;
    unsigned long long waits, wait_shortfalls;
};

typedef struct eval_op {
    cd_store *st;
    script *sc;
    int argc; /* incl. FCALL name numkeys */
    char **argv;
    size_t *lens;
    cd_store_reply_cb cb;
    void *ud;
    bool retried;
    bool durable; /* ack_replicas > 0: answered only after WAIT confirms it */
    char *held;   /* its reply while it waits */
    size_t held_len;
    struct eval_op *next; /* in st->waiting */
} eval_op;

/* FUNCTION LOAD's reply: the library's name, or "already exists" (another node of
 * this version, or a reconnect): both mean it is there. */
static bool lib_loaded(const redisReply *reply)
{
    return reply && (reply->type == REDIS_REPLY_STRING ||
                     (reply->type == REDIS_REPLY_ERROR && strstr(reply->str, "already exists")));
}

static void on_lib_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    cd_store *st = priv;
    redisReply *reply = r;
    if (!reply)
        return; /* connection lost; loads again on reconnect */
    if (!lib_loaded(reply)) {
        cd_log_error("FUNCTION LOAD failed: %s", reply->type == REDIS_REPLY_ERROR ? reply->str : "?");
        cd_rconn_fail(st->rc, "function library load failed");
        return;
    }
    cd_rconn_ready(st->rc);
}

static void send_lib(cd_store *st, redisAsyncContext *ac, redisCallbackFn *cb, void *priv)
{
    const char *argv[] = {"FUNCTION", "LOAD", st->lib};
    size_t lens[] = {8, 4, st->lib_len};
    redisAsyncCommandArgv(ac, cb, priv, 3, argv, lens);
}

static void on_rconn(void *ud, cd_rconn *rc, cd_rconn_event ev)
{
    cd_store *st = ud;
    if (ev == CD_RCONN_CONNECTED) {
        send_lib(st, cd_rconn_ctx(rc), on_lib_loaded, st);
        return;
    }
    if (st->state_cb)
        st->state_cb(st->state_ud, ev == CD_RCONN_UP);
}

/* The scripts of the library (cd_store_lib_build), to find a call's function. */
static int load_lib(cd_store *st)
{
    cd_store_lib lib;
    if (cd_store_lib_build(&lib) != 0)
        return -1;
    cd_strlcpy(st->lib_name, lib.name, sizeof st->lib_name);
    for (size_t i = 0; i < lib.nfn && st->nscripts < CD_STORE_LIB_MAX; i++) {
        script *sc = &st->scripts[st->nscripts++];
        cd_strlcpy(sc->name, lib.fn[i].name, sizeof sc->name);
        snprintf(sc->fname, sizeof sc->fname, "%s_%s", lib.name, lib.fn[i].name);
        sc->ro = lib.fn[i].ro;
    }
    st->lib = lib.text;
    st->lib_len = lib.len;
    return 0;
}

cd_store *cd_store_create(uv_loop_t *loop, const cd_config *cfg)
{
    cd_store *st = cd_calloc(1, sizeof *st);
    st->cfg = cfg;
    st->waiting_tail = &st->waiting;
    st->prefix = cd_strdup(cfg->prefix);
    st->prefix_len = strlen(st->prefix);
    if (load_lib(st) != 0) {
        cd_store_destroy(st);
        return NULL;
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
    cd_free(st->lib);
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
    cd_free(op->held);
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

/* An error that is none of our own codes (a Redis error reply, a script's runtime error
 * that _api.lua passes on as internal, a reply of the wrong type): its text (WRONGTYPE,
 * script file and line) goes to the log with a request id, and the caller, so the
 * client, gets only "internal" and that id. */
static void op_finish_internal(eval_op *op, const char *detail, size_t dlen)
{
    char id[17];
    cd_random_hex(id, 8);
    cd_log_error("script %s failed request_id=%s: %.*s", op->sc->name, id, (int)(dlen > 400 ? 400 : dlen), detail);
    char json[160];
    int n =
        snprintf(json, sizeof json,
                 "{\"err\":\"internal\",\"message\":\"internal error (request id %s)\",\"request_id\":\"%s\"}", id, id);
    op_finish(op, CD_ERR_INTERNAL, json, (size_t)n);
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

static void set_full(cd_store *st, bool full)
{
    if (full)
        st->oom_replies++;
    if (st->full == full)
        return;
    st->full = full;
    if (full)
        cd_log_error("redis is full (maxmemory): writes answer unavailable, reads keep working");
    else
        cd_log_info("redis accepts writes again");
}

/* WAIT's answer releases every reply that arrived before it was sent: the connection
 * is in order, so those writes ran before the WAIT. Fewer replicas than ack_replicas in
 * ack_replicas_timeout_ms, or a lost connection: the retryable unavailable (the client's
 * retry with the same client_msg_id dedupes and waits again). */
static void on_wait_reply(redisAsyncContext *ac, void *r, void *priv)
{
    cd_store *st = priv;
    redisReply *reply = r;
    (void)ac;
    bool ok = reply && reply->type == REDIS_REPLY_INTEGER && reply->integer >= st->cfg->ack_replicas;
    if (reply && !ok)
        st->wait_shortfalls++;
    eval_op *op = st->waiting;
    st->waiting = NULL;
    st->waiting_tail = &st->waiting;
    st->wait_out = false;
    while (op) {
        eval_op *next = op->next;
        if (ok)
            op_finish(op, CD_ERR_OK, op->held, op->held_len);
        else
            op_finish(op, CD_ERR_UNAVAILABLE, "replicas did not confirm the write in time", 42);
        op = next;
    }
}

/* One WAIT per batch of replies (per loop pass), not one per message. */
static void hold_for_replicas(eval_op *op, redisAsyncContext *ac, const char *json, size_t len)
{
    cd_store *st = op->st;
    op->held = cd_strndup(json, len);
    op->held_len = len;
    op->next = NULL;
    *st->waiting_tail = op;
    st->waiting_tail = &op->next;
    if (st->wait_out)
        return;
    st->wait_out = true;
    st->waits++;
    if (redisAsyncCommand(ac, on_wait_reply, st, "WAIT %lld %lld", (long long)st->cfg->ack_replicas,
                          (long long)st->cfg->ack_replicas_timeout_ms) != REDIS_OK)
        on_wait_reply(ac, NULL, st);
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
        if (!op->retried && strstr(reply->str, "Function not found") && cd_rconn_ctx(op->st->rc)) {
            /* the library is gone (FUNCTION FLUSH, a promoted replica): load it, call again */
            op->retried = true;
            send_lib(op->st, cd_rconn_ctx(op->st->rc), NULL, NULL);
            redisAsyncCommandArgv(cd_rconn_ctx(op->st->rc), on_eval_reply, op, op->argc, (const char **)op->argv,
                                  op->lens);
            return;
        }
        op->st->errors++;
        if (strncmp(reply->str, "OOM", 3) == 0) {
            /* maxmemory reached: a write refused, nothing changed; retryable */
            set_full(op->st, true);
            op_finish(op, CD_ERR_UNAVAILABLE, "redis full", 10);
            return;
        }
        if (strncmp(reply->str, "LOADING", 7) == 0 || strncmp(reply->str, "BUSY", 4) == 0) {
            cd_log_error("script %s failed: %s", op->sc->name, reply->str);
            op_finish(op, CD_ERR_UNAVAILABLE, "redis busy", 10);
            return;
        }
        op_finish_internal(op, reply->str, reply->len);
        return;
    }
    if (!op->sc->ro)
        set_full(op->st, false); /* a write went through */
    if (reply->type != REDIS_REPLY_STRING) {
        op->st->errors++;
        op_finish_internal(op, "unexpected reply type", 21);
        return;
    }
    cd_err e = script_error(reply->str, reply->len);
    if (e == CD_ERR_OK && op->durable) {
        hold_for_replicas(op, ac, reply->str, reply->len);
        return;
    }
    if (e == CD_ERR_INTERNAL)
        op_finish_internal(op, reply->str, reply->len);
    else
        op_finish(op, e, reply->str, reply->len);
}

static int fcall(cd_store *st, const char *name, int nkeys, const char *const *keys, int nargs, const char *const *args,
                 const size_t *lens, cd_store_reply_cb cb, void *ud, bool durable);

int cd_store_fcall(cd_store *st, const char *name, int nkeys, const char *const *keys, int nargs,
                   const char *const *args, const size_t *lens, cd_store_reply_cb cb, void *ud)
{
    return fcall(st, name, nkeys, keys, nargs, args, lens, cb, ud, false);
}

int cd_store_fcall_durable(cd_store *st, const char *name, int nkeys, const char *const *keys, int nargs,
                           const char *const *args, const size_t *lens, cd_store_reply_cb cb, void *ud)
{
    return fcall(st, name, nkeys, keys, nargs, args, lens, cb, ud, st->cfg->ack_replicas > 0);
}

static int fcall(cd_store *st, const char *name, int nkeys, const char *const *keys, int nargs, const char *const *args,
                 const size_t *lens, cd_store_reply_cb cb, void *ud, bool durable)
{
    redisAsyncContext *ac = cd_rconn_up(st->rc) ? cd_rconn_ctx(st->rc) : NULL;
    if (!ac || nkeys < 0 || nargs < 0)
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
    op->durable = durable;
    op->argc = 4 + nkeys + nargs; /* FCALL fn nkeys keys... P args... */
    op->argv = cd_calloc((size_t)op->argc, sizeof(char *));
    op->lens = cd_calloc((size_t)op->argc, sizeof(size_t));
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    op->argv[0] = cd_strdup("FCALL");
    op->argv[1] = cd_strdup(sc->fname);
    op->argv[2] = cd_strdup(nk);
    int at = 3;
    for (int i = 0; i < nkeys; i++, at++)
        op->argv[at] = cd_strdup(keys[i] ? keys[i] : "");
    op->argv[at++] = cd_strndup(st->prefix, st->prefix_len);
    for (int i = 0; i < nargs; i++, at++) {
        const char *a = args[i] ? args[i] : "";
        size_t l = lens ? lens[i] : strlen(a);
        op->argv[at] = cd_strndup(a, l);
        op->lens[at] = l;
    }
    for (int i = 0; i < 4 + nkeys; i++)
        op->lens[i] = strlen(op->argv[i]);
    st->commands++;
    if (redisAsyncCommandArgv(ac, on_eval_reply, op, op->argc, (const char **)op->argv, op->lens) != REDIS_OK) {
        op_free(op);
        return -1;
    }
    return 0;
}

bool cd_store_full(const cd_store *st)
{
    return st->full && cd_rconn_up(st->rc);
}

static void on_probe(void *ud, cd_err err, const char *json, size_t len)
{
    (void)ud;
    (void)err; /* the reply itself updated st->full */
    (void)json;
    (void)len;
}

void cd_store_tick(cd_store *st, uint64_t now_ms)
{
    if (!st->full || !cd_rconn_up(st->rc) || now_ms - st->last_probe < 1000)
        return;
    st->last_probe = now_ms;
    cd_store_fcall(st, "probe", 0, NULL, 0, NULL, NULL, on_probe, NULL);
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
    out->oom_replies = st->oom_replies;
    out->replica_waits = st->waits;
    out->replica_shortfalls = st->wait_shortfalls;
}
