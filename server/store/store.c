/* cd_store: the Lua scripts of store/lua/ as one Redis 7 function library over one
 * command connection. The library is loaded at every (re)connect and the store is "up"
 * once it is; a call is FCALL <library>_<script>. _common.lua (and _api.lua for api*.lua)
 * run once when the library loads, so a call pays only for its own work (as EVALSHA,
 * each call re-ran the whole prelude: ~7 us). The library's name carries a hash of its
 * text, so nodes of different versions never replace each other's functions. Every call
 * declares its keys (cd_store_fcall). A
 * "Function not found" reply (FUNCTION FLUSH, a fresh replica promoted) loads the library
 * again and retries once.
 * redis+cluster://: one command connection per primary of the slot map (read with
 * CLUSTER SLOTS over a control connection to any seed, again every few seconds and after
 * a redirection or a lost primary), each with the library loaded; a call goes to the
 * primary of its first declared key's slot, follows MOVED (the map is updated and read
 * again) and ASK (ASKING, then the call, once). The store is up while every primary of
 * the map is; cd_store_down_shard names one that is not.
 * Batched calls (msg_send): the calls of one function for one site that a loop pass makes
 * go out as one FCALL when the pass ends (a uv_check), so Redis runs the function once for
 * all of them and writes one reply; while a batched call of the same function and site is
 * in flight, they wait for its reply and go then (group commit); see
 * cd_store_fcall_batched. */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"
#include "chatdesk/store.h"
#include "store_int.h"

#define MAX_NODES 64              /* cluster primaries (and former ones) known */
#define MAP_REFRESH_MS 10000      /* the slot map is read again this often */
#define MAP_REFRESH_DIRTY_MS 1000 /* … and this soon after a redirection or a lost primary */

typedef struct script {
    char name[48];
    char fname[64]; /* the function: <library>_<name> */
    bool ro;        /* registered with the no-writes flag */
} script;

/* One command connection: the single Redis (or Sentinel's primary), a cluster's control
 * connection (slot map, PUBLISH), or one cluster primary. */
typedef struct sconn {
    cd_store *st;
    cd_rconn *rc;
    char host[256];
    int port;
    bool in_map; /* a primary of the current slot map */
    /* ack_replicas: stored durable replies wait here for the WAIT sent after them */
    struct eval_op *waiting, **waiting_tail;
    bool wait_out;
} sconn;

struct cd_store {
    uv_loop_t *loop;
    cd_rconn *rc; /* main->rc */
    sconn *main;
    const cd_config *cfg;
    /* redis+cluster:// */
    bool cluster;
    sconn *nodes[MAX_NODES];
    size_t nnodes;
    uint16_t *slots; /* CD_CLUSTER_SLOTS node indexes */
    bool map_whole, map_loading, map_dirty;
    uint64_t map_at;
    unsigned map_gen; /* moved on whenever a slot changes primary (the bus re-places channels) */
    bool up;          /* as last told to state_cb */
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
    unsigned long long waits, wait_shortfalls, redirects;
    unsigned long long n_batches, n_batched; /* batched calls sent, calls they carried */
    /* batched calls waiting for the end of the loop pass or for the reply of their
     * function and site's call in flight (cd_store_fcall_batched) */
    struct batch *batches;
    struct flight *flights; /* batched calls in flight, per function and site */
    bool closing;
    uv_check_t *batch_check;
    uv_idle_t *batch_idle; /* active while calls wait: the loop then polls without blocking */
};

/* One call of a batch: its callback, the key it declared and its arguments (copied). */
typedef struct batch_item {
    cd_store_reply_cb cb;
    void *ud;
    char *key;
    int nargs;
    char **args;
    size_t *lens;
    struct batch_item *next;
} batch_item;

/* The calls of one function for one site's slot (the hash tag of their keys) in this loop
 * pass, in the order they were made. */
typedef struct batch {
    script *sc;
    char tag[CD_KEY_MAX];
    int n;
    batch_item *head, **tail;
    struct batch *next;
} batch;

/* The batched calls of one function for one site's slot that are in flight (sent, no reply
 * yet): while there is one, that site's next calls wait for its reply (group commit). */
typedef struct flight {
    script *sc;
    char tag[CD_KEY_MAX];
    int n;
    struct flight *next;
} flight;

typedef struct eval_op {
    cd_store *st;
    sconn *conn; /* where it was sent */
    script *sc;
    int argc; /* incl. FCALL name numkeys */
    char **argv;
    size_t *lens;
    cd_store_reply_cb cb;
    void *ud;
    bool retried, asked;
    bool durable; /* ack_replicas > 0: answered only after WAIT confirms it */
    char *held;   /* its reply while it waits */
    size_t held_len;
    struct eval_op *next; /* in st->waiting */
    /* a batch: one callback per call, answered from the array reply in order */
    int nitems;
    batch_item *items;
    flight *flight; /* a batch's: counted in flight until the op ends */
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
    sconn *c = priv;
    redisReply *reply = r;
    (void)ac;
    if (!reply)
        return; /* connection lost; loads again on reconnect */
    if (!lib_loaded(reply)) {
        cd_log_error("FUNCTION LOAD failed on %s:%d: %s", c->host, c->port,
                     reply->type == REDIS_REPLY_ERROR ? reply->str : "?");
        cd_rconn_fail(c->rc, "function library load failed");
        return;
    }
    cd_rconn_ready(c->rc);
}

static void send_lib(cd_store *st, redisAsyncContext *ac, redisCallbackFn *cb, void *priv)
{
    const char *argv[] = {"FUNCTION", "LOAD", st->lib};
    size_t lens[] = {8, 4, st->lib_len};
    redisAsyncCommandArgv(ac, cb, priv, 3, argv, lens);
}

static void map_read(cd_store *st);

/* Up: the single Redis is, or every primary of a whole slot map is. */
static void report_state(cd_store *st)
{
    bool up = cd_rconn_up(st->rc);
    if (st->cluster) {
        up = up && st->map_whole;
        for (size_t i = 0; up && i < st->nnodes; i++)
            if (st->nodes[i]->in_map && !cd_rconn_up(st->nodes[i]->rc))
                up = false;
    }
    if (up == st->up)
        return;
    st->up = up;
    if (st->state_cb)
        st->state_cb(st->state_ud, up);
}

static void on_rconn(void *ud, cd_rconn *rc, cd_rconn_event ev)
{
    sconn *c = ud;
    cd_store *st = c->st;
    if (ev == CD_RCONN_CONNECTED) {
        if (st->cluster && c == st->main) { /* the control connection: no library, the map */
            cd_rconn_ready(rc);
            st->map_dirty = true;
            map_read(st);
        } else {
            send_lib(st, cd_rconn_ctx(rc), on_lib_loaded, c);
        }
        return;
    }
    if (ev == CD_RCONN_DOWN && st->cluster && c != st->main)
        st->map_dirty = true; /* a primary lost: a replica may take over */
    report_state(st);
}

static sconn *conn_new(cd_store *st, const char *host, int port, const char *name)
{
    sconn *c = cd_calloc(1, sizeof *c);
    c->st = st;
    c->waiting_tail = &c->waiting;
    if (host)
        cd_strlcpy(c->host, host, sizeof c->host);
    c->port = port;
    c->rc = host ? cd_rconn_create_at(st->loop, st->cfg, name, host, port, on_rconn, c)
                 : cd_rconn_create(st->loop, st->cfg, name, true, on_rconn, c);
    if (!c->rc) {
        cd_free(c);
        return NULL;
    }
    cd_rconn_hold(c->rc);
    return c;
}

/* ---------- redis+cluster://: the slot map ---------- */

/* The connection to a primary host:port, made (and started) the first time. */
static int node_index(void *ud, const char *host, int port)
{
    cd_store *st = ud;
    if (!host[0]) /* "" in CLUSTER SLOTS: the host the control connection reached */
        host = st->main->host;
    for (size_t i = 0; i < st->nnodes; i++)
        if (st->nodes[i]->port == port && strcmp(st->nodes[i]->host, host) == 0)
            return (int)i;
    if (st->nnodes == MAX_NODES)
        return -1;
    char name[32];
    snprintf(name, sizeof name, "cmd%zu", st->nnodes);
    sconn *c = conn_new(st, host, port, name);
    if (!c)
        return -1;
    cd_log_info("redis cluster: primary %s:%d conn=%s", host, port, name);
    st->nodes[st->nnodes] = c;
    cd_rconn_start(c->rc);
    return (int)st->nnodes++;
}

static void on_map(redisAsyncContext *ac, void *r, void *priv)
{
    cd_store *st = priv;
    (void)ac;
    st->map_loading = false;
    if (!r)
        return;
    uint16_t *slots = cd_malloc(sizeof(uint16_t) * CD_CLUSTER_SLOTS);
    int covered = cd_cluster_parse_slots(r, slots, node_index, st);
    if (covered < 0) {
        cd_log_error("redis cluster: CLUSTER SLOTS answered something else than a slot map");
        cd_free(slots);
        return;
    }
    if (!st->slots || memcmp(st->slots, slots, sizeof(uint16_t) * CD_CLUSTER_SLOTS) != 0)
        st->map_gen++;
    cd_free(st->slots);
    st->slots = slots;
    st->map_whole = covered == CD_CLUSTER_SLOTS;
    st->map_dirty = !st->map_whole;
    for (size_t i = 0; i < st->nnodes; i++)
        st->nodes[i]->in_map = false;
    for (int i = 0; i < CD_CLUSTER_SLOTS; i++)
        if (slots[i] != CD_CLUSTER_NO_NODE)
            st->nodes[slots[i]]->in_map = true;
    /* a primary of the map that we cannot reach is about to be failed over: read the map
     * every second until its replica shows up in it (not 10 s later, or at the first MOVED) */
    for (size_t i = 0; i < st->nnodes; i++)
        if (st->nodes[i]->in_map && !cd_rconn_up(st->nodes[i]->rc))
            st->map_dirty = true;
    if (!st->map_whole)
        cd_log_warn("redis cluster: %d of %d slots have a primary", covered, CD_CLUSTER_SLOTS);
    report_state(st);
}

/* CLUSTER SLOTS over the control connection (or any primary while it is down). */
static void map_read(cd_store *st)
{
    if (st->map_loading)
        return;
    redisAsyncContext *ac = cd_rconn_up(st->rc) ? cd_rconn_ctx(st->rc) : NULL;
    for (size_t i = 0; !ac && i < st->nnodes; i++)
        if (cd_rconn_up(st->nodes[i]->rc))
            ac = cd_rconn_ctx(st->nodes[i]->rc);
    if (!ac)
        return;
    st->map_at = cd_mono_ms();
    st->map_loading = redisAsyncCommand(ac, on_map, st, "CLUSTER SLOTS") == REDIS_OK;
}

/* The connection a call with this first key goes to (NULL: not up). */
static sconn *conn_for(cd_store *st, const char *key)
{
    if (!st->cluster)
        return cd_rconn_up(st->rc) ? st->main : NULL;
    sconn *c = NULL;
    if (st->slots && key) {
        uint16_t i = st->slots[cd_cluster_slot(key, strlen(key))];
        c = i == CD_CLUSTER_NO_NODE ? NULL : st->nodes[i];
    } else {
        for (size_t i = 0; !c && i < st->nnodes; i++)
            if (st->nodes[i]->in_map && cd_rconn_up(st->nodes[i]->rc))
                c = st->nodes[i];
    }
    return c && cd_rconn_up(c->rc) ? c : NULL;
}

/* The scripts of the library (cd_store_lib_build), to find a call's function. */
static int load_lib(cd_store *st)
{
    cd_store_lib lib;
    if (cd_store_lib_build(&lib, st->cluster) != 0)
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
    st->loop = loop;
    st->cfg = cfg;
    st->prefix = cd_strdup(cfg->prefix);
    st->prefix_len = strlen(st->prefix);
    cd_redis_addr a;
    char err[256];
    st->cluster = cd_config_parse_redis_url(cfg->redis, &a, err, sizeof err) == 0 && a.cluster;
    if (load_lib(st) != 0 || !(st->main = conn_new(st, NULL, 0, st->cluster ? "ctl" : "cmd"))) {
        cd_store_destroy(st);
        return NULL;
    }
    st->rc = st->main->rc;
    st->batch_check = cd_malloc(sizeof *st->batch_check);
    uv_check_init(loop, st->batch_check);
    st->batch_check->data = st;
    st->batch_idle = cd_malloc(sizeof *st->batch_idle);
    uv_idle_init(loop, st->batch_idle);
    if (st->cluster) { /* for CLUSTER SLOTS answers that leave the host out */
        cd_strlcpy(st->main->host, a.endpoints[0].host, sizeof st->main->host);
        st->main->port = a.endpoints[0].port;
    }
    explicit_bzero(&a, sizeof a);
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
    for (size_t i = 0; i < st->nnodes; i++)
        cd_rconn_stop(st->nodes[i]->rc);
}

static void batches_flush(cd_store *st, bool held_too);

static void on_check_closed(uv_handle_t *h)
{
    cd_free(h);
}

void cd_store_destroy(cd_store *st)
{
    if (!st)
        return;
    if (st->batch_check) {
        batches_flush(st, true); /* their calls are answered unavailable as the connections go */
        st->closing = true;      /* nothing held is sent from a reply any more */
        uv_close((uv_handle_t *)st->batch_check, on_check_closed);
        uv_close((uv_handle_t *)st->batch_idle, on_check_closed);
    }
    for (size_t i = 0; i < st->nnodes; i++) {
        cd_rconn_destroy(st->nodes[i]->rc);
        cd_free(st->nodes[i]);
    }
    if (st->main) {
        cd_rconn_destroy(st->main->rc);
        cd_free(st->main);
    }
    while (st->flights) {
        flight *f = st->flights;
        st->flights = f->next;
        cd_free(f);
    }
    cd_free(st->slots);
    cd_free(st->lib);
    cd_free(st->prefix);
    cd_free(st);
}

bool cd_store_up(const cd_store *st)
{
    return st->up;
}

const char *cd_store_down_shard(const cd_store *st, char *buf, size_t n)
{
    if (!st->cluster || st->up)
        return NULL;
    if (!st->map_whole) {
        snprintf(buf, n, "%s", st->slots ? "slots without a primary" : "no slot map yet");
        return buf;
    }
    for (size_t i = 0; i < st->nnodes; i++)
        if (st->nodes[i]->in_map && !cd_rconn_up(st->nodes[i]->rc)) {
            snprintf(buf, n, "%s:%d", st->nodes[i]->host, st->nodes[i]->port);
            return buf;
        }
    return NULL;
}

const char *cd_store_prefix(const cd_store *st)
{
    return st->prefix;
}

static void item_free(batch_item *it)
{
    for (int i = 0; i < it->nargs; i++)
        cd_free(it->args[i]);
    cd_free(it->args);
    cd_free(it->lens);
    cd_free(it->key);
    cd_free(it);
}

static void flight_done(cd_store *st, flight *f);

static void op_free(eval_op *op)
{
    if (op->flight)
        flight_done(op->st, op->flight);
    while (op->items) {
        batch_item *next = op->items->next;
        item_free(op->items);
        op->items = next;
    }
    cd_free(op->held);
    for (int i = 0; i < op->argc; i++)
        cd_free(op->argv[i]);
    cd_free(op->argv);
    cd_free(op->lens);
    cd_free(op);
}

/* A batch's failure as a whole (Redis lost, OOM, a Redis error) is every call's. */
static void op_finish(eval_op *op, cd_err err, const char *json, size_t len)
{
    if (op->cb)
        op->cb(op->ud, err, json, len);
    for (batch_item *it = op->items; it; it = it->next)
        it->cb(it->ud, err, json, len);
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
    sconn *c = priv;
    cd_store *st = c->st;
    redisReply *reply = r;
    (void)ac;
    bool ok = reply && reply->type == REDIS_REPLY_INTEGER && reply->integer >= st->cfg->ack_replicas;
    if (reply && !ok)
        st->wait_shortfalls++;
    eval_op *op = c->waiting;
    c->waiting = NULL;
    c->waiting_tail = &c->waiting;
    c->wait_out = false;
    while (op) {
        eval_op *next = op->next;
        if (ok)
            op_finish(op, CD_ERR_OK, op->held, op->held_len);
        else
            op_finish(op, CD_ERR_UNAVAILABLE, "replicas did not confirm the write in time", 42);
        op = next;
    }
}

/* One WAIT per connection per batch of replies (per loop pass), not one per message. */
static void hold_for_replicas(eval_op *op, redisAsyncContext *ac, const char *json, size_t len)
{
    cd_store *st = op->st;
    sconn *c = op->conn;
    op->held = cd_strndup(json, len);
    op->held_len = len;
    op->next = NULL;
    *c->waiting_tail = op;
    c->waiting_tail = &op->next;
    if (c->wait_out)
        return;
    c->wait_out = true;
    st->waits++;
    if (redisAsyncCommand(ac, on_wait_reply, c, "WAIT %lld %lld", (long long)st->cfg->ack_replicas,
                          (long long)st->cfg->ack_replicas_timeout_ms) != REDIS_OK)
        on_wait_reply(ac, NULL, c);
}

static void on_eval_reply(redisAsyncContext *ac, void *r, void *priv);

/* MOVED: the slot's primary is node i now; the whole map is read again soon. */
static void moved(cd_store *st, const cd_cluster_redir *rd, int i)
{
    st->map_dirty = true;
    if (st->slots && i >= 0 && st->slots[rd->slot] != (uint16_t)i) {
        st->slots[rd->slot] = (uint16_t)i;
        st->map_gen++;
    }
}

/* MOVED: the slot lives elsewhere now (the map is read again); ASK: this once, while a
 * slot migrates. The call goes to the named primary if its connection is up, else it
 * answers the retryable unavailable. Returns false when err is no redirection. */
static bool redirected(eval_op *op, const char *err)
{
    cd_store *st = op->st;
    cd_cluster_redir rd;
    if (!st->cluster || cd_cluster_redirect(err, &rd) != 0)
        return false;
    st->redirects++;
    int i = node_index(st, rd.host, rd.port);
    if (!rd.ask)
        moved(st, &rd, i);
    sconn *to = i >= 0 ? st->nodes[i] : NULL;
    if (!to || !cd_rconn_up(to->rc) || op->asked) {
        op_finish(op, CD_ERR_UNAVAILABLE, "redis cluster is moving this site", 33);
        return true;
    }
    op->asked = true; /* one redirection per call: a second one means the map is in flux */
    op->conn = to;
    redisAsyncContext *ac = cd_rconn_ctx(to->rc);
    if (rd.ask)
        redisAsyncCommand(ac, NULL, NULL, "ASKING");
    redisAsyncCommandArgv(ac, on_eval_reply, op, op->argc, (const char **)op->argv, op->lens);
    return true;
}

/* An error reply of a Cluster that is failing over or moving a slot, matched on its text
 * (CLUSTERDOWN, READONLY from a former primary, TRYAGAIN, MASTERDOWN): the call did not
 * run. Also "non local key": while a slot migrates, a script that touches an undeclared
 * key of the site that is not (or no longer) on the source stops there; the caller
 * retries. Redis does not roll back what such a script wrote before it stopped: a known
 * limit of resharding under traffic (docs/ops.md "Redis Cluster"). */
static bool cluster_moving(const char *err)
{
    static const char *const says[] = {"The cluster is down", "read only replica", "TRYAGAIN ", "MASTERDOWN ",
                                       "access a non local key"};
    for (size_t i = 0; i < CD_ARRAY_LEN(says); i++)
        if (strstr(err, says[i]))
            return true;
    return false;
}

/* One call's own reply, as on_eval_reply answers a single call. */
static void finish_reply(eval_op *op, redisAsyncContext *ac, const char *str, size_t len)
{
    cd_err e = script_error(str, len);
    if (e == CD_ERR_OK && op->durable) {
        hold_for_replicas(op, ac, str, len);
        return;
    }
    /* a batched call's own error (msg_send catches each message's, so a slot moving away
     * mid-script reaches here as its text): the same retryable answer as a whole call's */
    if (e == CD_ERR_INTERNAL && cluster_moving(str)) {
        op->st->map_dirty = true;
        op_finish(op, CD_ERR_UNAVAILABLE, "redis cluster failing over", 26);
    } else if (e == CD_ERR_INTERNAL) {
        op_finish_internal(op, str, len);
    } else {
        op_finish(op, e, str, len);
    }
}

/* A batch's array reply: element i answers call i, each call on its own (its own error,
 * its own wait for replicas: one WAIT still covers the whole batch). */
static void batch_replies(eval_op *op, redisAsyncContext *ac, const redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != (size_t)op->nitems) {
        op->st->errors++;
        op_finish_internal(op, "unexpected reply to a batch", 27);
        return;
    }
    size_t i = 0;
    while (op->items) {
        batch_item *it = op->items;
        op->items = it->next;
        const redisReply *e = reply->element[i++];
        eval_op *one = cd_calloc(1, sizeof *one);
        one->st = op->st;
        one->conn = op->conn;
        one->sc = op->sc;
        one->cb = it->cb;
        one->ud = it->ud;
        one->durable = op->durable;
        item_free(it);
        if (e->type != REDIS_REPLY_STRING) {
            op->st->errors++;
            op_finish_internal(one, "unexpected reply type in a batch", 32);
        } else {
            finish_reply(one, ac, e->str, e->len);
        }
    }
    op_free(op);
}

static void on_eval_reply(redisAsyncContext *ac, void *r, void *priv)
{
    eval_op *op = priv;
    redisReply *reply = r;
    cd_rconn *rc = op->conn->rc;
    if (reply)
        cd_rconn_alive(rc);
    if (!reply) {
        op_finish(op, CD_ERR_UNAVAILABLE, "redis unavailable", 17);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        if (!op->retried && strstr(reply->str, "Function not found") && cd_rconn_ctx(rc)) {
            /* the library is gone (FUNCTION FLUSH, a promoted replica): load it, call again */
            op->retried = true;
            send_lib(op->st, cd_rconn_ctx(rc), NULL, NULL);
            redisAsyncCommandArgv(cd_rconn_ctx(rc), on_eval_reply, op, op->argc, (const char **)op->argv, op->lens);
            return;
        }
        if (redirected(op, reply->str))
            return;
        op->st->errors++;
        if (strncmp(reply->str, "OOM", 3) == 0) {
            /* maxmemory reached: a write refused, nothing changed; retryable */
            set_full(op->st, true);
            op_finish(op, CD_ERR_UNAVAILABLE, "redis full", 10);
            return;
        }
        /* Redis Cluster between a primary's loss and its replica's promotion (CLUSTERDOWN),
         * a former primary now a replica (READONLY), a slot being migrated (TRYAGAIN): the
         * call did not run; the client retries (a message with its client_msg_id) and the
         * slot map is read again */
        if (cluster_moving(reply->str)) {
            op->st->map_dirty = true;
            op_finish(op, CD_ERR_UNAVAILABLE, "redis cluster failing over", 26);
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
    if (op->items) {
        batch_replies(op, ac, reply);
        return;
    }
    if (reply->type != REDIS_REPLY_STRING) {
        op->st->errors++;
        op_finish_internal(op, "unexpected reply type", 21);
        return;
    }
    finish_reply(op, ac, reply->str, reply->len);
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
    /* the batches waiting go first, held ones too: calls reach Redis in the order they
     * were made */
    batches_flush(st, true);
    sconn *conn = nkeys >= 0 ? conn_for(st, nkeys > 0 ? keys[0] : NULL) : NULL;
    if (!conn || nargs < 0)
        return -1;
    redisAsyncContext *ac = cd_rconn_ctx(conn->rc);
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
    op->conn = conn;
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

/* ---- batched calls ---- */

#define BATCH_MAX 32 /* calls per batch: one function run holds Redis for all of them */

/* The hash tag of a key (its slot on Redis Cluster), or the whole key. */
static void key_tag(const char *key, char *out, size_t n)
{
    const char *o = strchr(key, '{');
    const char *c = o ? strchr(o + 1, '}') : NULL;
    if (!c || c == o + 1)
        cd_strlcpy(out, key, n);
    else
        snprintf(out, n, "%.*s", (int)(c - o - 1), o + 1);
}

static flight *flight_of(cd_store *st, const script *sc, const char *tag)
{
    for (flight *f = st->flights; f; f = f->next)
        if (f->sc == sc && strcmp(f->tag, tag) == 0)
            return f;
    return NULL;
}

/* FCALL <fn> n key1..keyn P args1... args2...: the calls' arguments move into the call. */
static void batch_send(cd_store *st, batch *b)
{
    int argc = 4 + b->n;
    for (batch_item *it = b->head; it; it = it->next)
        argc += it->nargs;
    eval_op *op = cd_calloc(1, sizeof *op);
    op->st = st;
    op->sc = b->sc;
    op->durable = st->cfg->ack_replicas > 0;
    op->items = b->head;
    op->nitems = b->n;
    op->argc = argc;
    op->argv = cd_calloc((size_t)argc, sizeof(char *));
    op->lens = cd_calloc((size_t)argc, sizeof(size_t));
    char nk[16];
    snprintf(nk, sizeof nk, "%d", b->n);
    op->argv[0] = cd_strdup("FCALL");
    op->argv[1] = cd_strdup(b->sc->fname);
    op->argv[2] = cd_strdup(nk);
    int at = 3;
    for (batch_item *it = b->head; it; it = it->next, at++) {
        op->argv[at] = it->key;
        it->key = NULL;
    }
    op->argv[at++] = cd_strndup(st->prefix, st->prefix_len);
    for (int i = 0; i < 4 + b->n; i++)
        op->lens[i] = strlen(op->argv[i]);
    for (batch_item *it = b->head; it; it = it->next)
        for (int i = 0; i < it->nargs; i++, at++) {
            op->argv[at] = it->args[i];
            op->lens[at] = it->lens[i];
            it->args[i] = NULL;
        }
    st->n_batches++;
    st->n_batched += (unsigned long long)b->n;
    op->flight = flight_of(st, b->sc, b->tag);
    if (!op->flight) {
        op->flight = cd_calloc(1, sizeof *op->flight);
        op->flight->sc = b->sc;
        cd_strlcpy(op->flight->tag, b->tag, sizeof op->flight->tag);
        op->flight->next = st->flights;
        st->flights = op->flight;
    }
    op->flight->n++;
    cd_free(b);
    op->conn = conn_for(st, op->argv[3]);
    redisAsyncContext *ac = op->conn ? cd_rconn_ctx(op->conn->rc) : NULL;
    st->commands++;
    if (!ac || redisAsyncCommandArgv(ac, on_eval_reply, op, op->argc, (const char **)op->argv, op->lens) != REDIS_OK)
        op_finish(op, CD_ERR_UNAVAILABLE, "redis unavailable", 17);
}

/* Sends the batches waiting. held_too: also those whose function and site have a call in
 * flight (any other command: calls reach Redis in the order they were made); otherwise
 * (the end of a loop pass) those wait for that call's reply, flight_done. Each batch is
 * taken off the list before it is sent, and the walk starts again from the head, since a
 * call that fails at once runs callbacks that may add to the list. */
static void batches_flush(cd_store *st, bool held_too)
{
    if (st->batch_check) {
        uv_check_stop(st->batch_check);
        uv_idle_stop(st->batch_idle);
    }
    for (;;) {
        batch **at = &st->batches;
        while (*at && !held_too && flight_of(st, (*at)->sc, (*at)->tag))
            at = &(*at)->next;
        batch *b = *at;
        if (!b)
            return;
        *at = b->next;
        batch_send(st, b);
    }
}

/* A batched call ended (answered, failed or given up): when it was its function and
 * site's last in flight, the calls that waited for it go now, as one batch. */
static void flight_done(cd_store *st, flight *f)
{
    if (--f->n > 0)
        return;
    flight **fp = &st->flights;
    while (*fp != f)
        fp = &(*fp)->next;
    *fp = f->next;
    batch **at = &st->batches;
    while (*at && ((*at)->sc != f->sc || strcmp((*at)->tag, f->tag) != 0))
        at = &(*at)->next;
    cd_free(f);
    batch *b = *at;
    if (!b || st->closing)
        return;
    *at = b->next;
    batch_send(st, b);
}

/* The end of the loop pass's I/O: what it batched goes out (hiredis writes it from the
 * next pass's uv_prepare, before the loop waits), except what waits for its site's call
 * in flight (group commit: that call's reply sends it, so a call holds back a site's sends
 * for at most one round trip, and at most BATCH_MAX of them). A call made outside the I/O
 * phase (a timer's callback, or before the loop runs) would wait for the next event before
 * the check runs: while calls wait, an idle handle keeps that pass's poll from blocking. */
static void on_batch_check(uv_check_t *h)
{
    batches_flush(h->data, false);
}

static void on_batch_idle(uv_idle_t *h)
{
    (void)h; /* being active is its work */
}

int cd_store_fcall_batched(cd_store *st, const char *name, const char *key, int nargs, const char *const *args,
                           const size_t *lens, cd_store_reply_cb cb, void *ud)
{
    if (!key || nargs < 0 || !conn_for(st, key) || !st->batch_check)
        return -1;
    script *sc = NULL;
    for (size_t i = 0; i < st->nscripts && !sc; i++)
        if (strcmp(st->scripts[i].name, name) == 0)
            sc = &st->scripts[i];
    if (!sc) {
        cd_log_error("no script named %s", name);
        return -1;
    }
    char tag[CD_KEY_MAX];
    key_tag(key, tag, sizeof tag);
    batch **at = &st->batches;
    while (*at && ((*at)->sc != sc || strcmp((*at)->tag, tag) != 0))
        at = &(*at)->next;
    batch *b = *at;
    if (!b) {
        b = *at = cd_calloc(1, sizeof *b);
        b->sc = sc;
        cd_strlcpy(b->tag, tag, sizeof b->tag);
        b->tail = &b->head;
        uv_check_start(st->batch_check, on_batch_check);
        uv_idle_start(st->batch_idle, on_batch_idle);
    }
    batch_item *it = cd_calloc(1, sizeof *it);
    it->cb = cb;
    it->ud = ud;
    it->key = cd_strdup(key);
    it->nargs = nargs;
    it->args = cd_calloc((size_t)(nargs ? nargs : 1), sizeof(char *));
    it->lens = cd_calloc((size_t)(nargs ? nargs : 1), sizeof(size_t));
    for (int i = 0; i < nargs; i++) {
        const char *a = args[i] ? args[i] : "";
        it->lens[i] = lens ? lens[i] : strlen(a);
        it->args[i] = cd_strndup(a, it->lens[i]);
    }
    *b->tail = it;
    b->tail = &it->next;
    if (++b->n >= BATCH_MAX) { /* full: it goes now, the pass's next calls start another */
        *at = b->next;
        batch_send(st, b);
    }
    return 0;
}

bool cd_store_full(const cd_store *st)
{
    return st->full && st->up;
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
    if (st->cluster) {
        uint64_t mono = cd_mono_ms();
        if (mono - st->map_at >= (st->map_dirty ? MAP_REFRESH_DIRTY_MS : MAP_REFRESH_MS))
            map_read(st);
    }
    if (!st->full || !st->up || now_ms - st->last_probe < 1000)
        return;
    st->last_probe = now_ms;
    cd_store_fcall(st, "probe", 0, NULL, 0, NULL, NULL, on_probe, NULL);
}

int cd_store_publish(cd_store *st, const char *channel, const char *payload, size_t len)
{
    redisAsyncContext *ac = cd_rconn_up(st->rc) ? cd_rconn_ctx(st->rc) : NULL;
    if (!ac)
        return -1;
    batches_flush(st, true);
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
    out->batches = st->n_batches;
    out->batched = st->n_batched;
}

/* ---------- redis+cluster://: where the bus subscribes a shard channel ---------- */

bool cd_store_cluster(const cd_store *st)
{
    return st->cluster;
}

unsigned cd_store_map_gen(const cd_store *st)
{
    return st->map_gen;
}

int cd_store_shard_of(const cd_store *st, const char *key, size_t len, char *host, size_t n, int *port)
{
    if (!st->cluster || !st->slots)
        return -1;
    uint16_t i = st->slots[cd_cluster_slot(key, len)];
    if (i == CD_CLUSTER_NO_NODE)
        return -1;
    cd_strlcpy(host, st->nodes[i]->host, n);
    *port = st->nodes[i]->port;
    return 0;
}

void cd_store_map_stale(cd_store *st, const char *err)
{
    cd_cluster_redir rd;
    if (!st->cluster)
        return;
    st->map_dirty = true;
    if (err && cd_cluster_redirect(err, &rd) == 0 && !rd.ask)
        moved(st, &rd, node_index(st, rd.host, rd.port));
}
