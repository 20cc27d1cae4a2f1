/* cd_rconn: one hiredis async connection on the uv loop, treated as a state.
 * Connect timeout, PING deadline, reconnect with capped exponential backoff and
 * full jitter. hiredis 0.14 has no command timeouts, hence the PING deadline. */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"
#include "chatdesk/store.h"
#include "store_int.h"

struct cd_rconn {
    uv_loop_t *loop;
    const cd_config *cfg;
    cd_redis_addr addr;
    char name[32];
    bool ping;
    cd_rconn_state_cb cb;
    void *ud;

    redisAsyncContext *ac;
    bool connected; /* TCP/unix connected */
    bool up;        /* usable: connected, authenticated, ready */
    bool held;      /* wait for cd_rconn_ready() before "up" */
    bool stopping;
    unsigned attempt;
    uint64_t connect_started;
    uint64_t ping_sent;                 /* mono ms of the PING awaiting its reply, 0 if none */
    uint64_t ping_sent_ns, ping_rtt_us; /* uv_hrtime() of that PING; last round trip (for /metrics) */
    uint64_t last_alive;                /* mono ms of the last reply of any kind */
    uv_timer_t tick;                    /* ping + connect deadline */
    uv_timer_t retry;                   /* backoff */
    int closing_handles;
    unsigned long long reconnects, ping_failures;
    /* redis+sentinel://: while resolving, ac is a connection to endpoints[sentinel_next];
     * redis+cluster://: each connect takes the next seed, endpoints[sentinel_next] */
    bool resolving;
    size_t sentinel_next;
    /* raw replies (cd_rconn_set_raw) once up */
    cd_rconn_reply_cb raw_cb;
    void *raw_ud;
};

static void raw_read(cd_rconn *rc);

static void schedule_reconnect(cd_rconn *rc);

/* ---------- hiredis on the libuv loop ----------
 * hiredis' own libuv adapter calls uv_poll_start on every command to ask for write
 * readiness and again when the buffer is flushed: two epoll_ctl per loop pass per
 * connection, and each command waits one more loop pass for POLLOUT. Here the
 * commands a loop pass queues are written together from a uv_prepare callback, just
 * before the loop polls again; write readiness is asked for only while connecting or
 * when the socket would block. */
typedef struct rc_ev {
    redisAsyncContext *ac; /* NULL once hiredis let go of it */
    uv_poll_t poll;
    uv_prepare_t flush;
    int armed; /* events on the poll handle */
    bool want_read, want_write, blocked;
    int open_handles;
} rc_ev;

static void ev_on_poll(uv_poll_t *h, int status, int events);

static void ev_arm(rc_ev *e)
{
    bool connected = e->ac && (e->ac->c.flags & REDIS_CONNECTED);
    int ev = (e->want_read ? UV_READABLE : 0) | (e->want_write && (!connected || e->blocked) ? UV_WRITABLE : 0);
    if (ev == e->armed)
        return;
    e->armed = ev;
    if (ev)
        uv_poll_start(&e->poll, ev, ev_on_poll);
    else
        uv_poll_stop(&e->poll);
}

static void ev_on_poll(uv_poll_t *h, int status, int events)
{
    rc_ev *e = h->data;
    if (status != 0 || !e->ac)
        return;
    if (events & UV_READABLE) {
        cd_rconn *rc = e->ac->data;
        if (rc && rc->raw_cb && rc->up && rc->ac == e->ac)
            raw_read(rc);
        else
            redisAsyncHandleRead(e->ac);
    }
    if (e->ac && (events & UV_WRITABLE)) {
        redisAsyncHandleWrite(e->ac);
        if (e->ac && !e->want_write)
            e->blocked = false;
    }
    if (e->ac)
        ev_arm(e);
}

static void ev_on_flush(uv_prepare_t *h)
{
    rc_ev *e = h->data;
    uv_prepare_stop(h);
    if (!e->ac || !e->want_write || !(e->ac->c.flags & REDIS_CONNECTED))
        return;
    redisAsyncHandleWrite(e->ac);
    if (!e->ac)
        return;
    e->blocked = e->want_write; /* still data to write: the socket would block */
    ev_arm(e);
}

static void ev_add_read(void *p)
{
    rc_ev *e = p;
    e->want_read = true;
    ev_arm(e);
}

static void ev_del_read(void *p)
{
    rc_ev *e = p;
    e->want_read = false;
    ev_arm(e);
}

static void ev_add_write(void *p)
{
    rc_ev *e = p;
    e->want_write = true;
    if (e->ac && (e->ac->c.flags & REDIS_CONNECTED) && !e->blocked)
        uv_prepare_start(&e->flush, ev_on_flush);
    else
        ev_arm(e); /* connecting (writable = connected), or waiting for room */
}

static void ev_del_write(void *p)
{
    rc_ev *e = p;
    e->want_write = false;
    e->blocked = false;
    ev_arm(e);
}

static void ev_closed(uv_handle_t *h)
{
    rc_ev *e = h->data;
    if (--e->open_handles == 0)
        cd_free(e);
}

static void ev_cleanup(void *p)
{
    rc_ev *e = p;
    e->ac = NULL;
    uv_close((uv_handle_t *)&e->poll, ev_closed);
    uv_close((uv_handle_t *)&e->flush, ev_closed);
}

static int ev_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    rc_ev *e = cd_calloc(1, sizeof *e);
    if (uv_poll_init(loop, &e->poll, ac->c.fd) != 0) {
        cd_free(e);
        return -1;
    }
    uv_prepare_init(loop, &e->flush);
    e->poll.data = e->flush.data = e;
    e->open_handles = 2;
    e->ac = ac;
    ac->ev.data = e;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    return 0;
}

static void set_up(cd_rconn *rc, bool up)
{
    if (rc->up == up)
        return;
    rc->up = up;
    if (up)
        rc->attempt = 0;
    cd_log(up ? CD_LOG_INFO : CD_LOG_WARN, "redis %s conn=%s", up ? "up" : "down", rc->name);
    if (rc->cb)
        rc->cb(rc->ud, rc, up ? CD_RCONN_UP : CD_RCONN_DOWN);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    cd_rconn *rc = ac->data;
    if (!rc || rc->ac != ac)
        return;
    if (status != REDIS_OK)
        cd_log_warn("redis connection lost conn=%s err=\"%s\"", rc->name, ac->errstr);
    rc->ac = NULL;
    rc->connected = false;
    rc->ping_sent = 0;
    set_up(rc, false);
    schedule_reconnect(rc);
}

static void on_auth(redisAsyncContext *ac, void *r, void *priv)
{
    cd_rconn *rc = priv;
    redisReply *reply = r;
    if (!reply || rc->ac != ac)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        cd_log_error("redis AUTH/SELECT failed conn=%s err=\"%s\"", rc->name, reply->str);
        cd_rconn_fail(rc, "auth");
    }
}

static void on_ready_marker(redisAsyncContext *ac, void *r, void *priv)
{
    cd_rconn *rc = priv;
    redisReply *reply = r;
    if (!r || rc->ac != ac || !rc->connected)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* LOADING (the AOF is being read after a restart), NOAUTH, ...: try again later */
        cd_log_warn("redis not ready conn=%s err=\"%s\"", rc->name, reply->str);
        cd_rconn_fail(rc, "not ready");
        return;
    }
    if (rc->cb)
        rc->cb(rc->ud, rc, CD_RCONN_CONNECTED);
    if (!rc->held && rc->ac == ac)
        set_up(rc, true);
}

/* Sentinel mode: the server we reached must still be the primary (after a failover the
 * old one comes back as a replica): ROLE at connect and with every PING. */
static void on_role(redisAsyncContext *ac, void *r, void *priv)
{
    cd_rconn *rc = priv;
    redisReply *reply = r;
    if (!reply || rc->ac != ac)
        return;
    bool primary = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                   reply->element[0]->type == REDIS_REPLY_STRING && strcmp(reply->element[0]->str, "master") == 0;
    if (!primary) {
        cd_log_warn("redis %s:%d is not the primary of %s any more conn=%s", rc->addr.host, rc->addr.port,
                    rc->addr.master, rc->name);
        cd_rconn_fail(rc, "not the primary");
    }
}

/* AUTH password, or AUTH user password with redis_user (an ACL user, docs/ops.md). */
static void send_auth(cd_rconn *rc, redisAsyncContext *c, redisCallbackFn *cb)
{
    if (!rc->addr.password[0])
        return;
    if (rc->cfg->redis_user[0])
        redisAsyncCommand(c, cb, rc, "AUTH %s %s", rc->cfg->redis_user, rc->addr.password);
    else
        redisAsyncCommand(c, cb, rc, "AUTH %s", rc->addr.password);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    cd_rconn *rc = ac->data;
    if (!rc || rc->ac != ac)
        return;
    if (status != REDIS_OK) {
        cd_log_warn("redis connect failed conn=%s err=\"%s\"", rc->name, ac->errstr);
        rc->ac = NULL; /* hiredis frees the context after this callback */
        schedule_reconnect(rc);
        return;
    }
    rc->connected = true;
    redisAsyncContext *c = (redisAsyncContext *)ac;
    send_auth(rc, c, on_auth);
    if (rc->addr.db)
        redisAsyncCommand(c, on_auth, rc, "SELECT %d", rc->addr.db);
    if (rc->addr.sentinel)
        redisAsyncCommand(c, on_role, rc, "ROLE");
    /* PING orders after AUTH/SELECT: its reply means the connection is usable. */
    redisAsyncCommand(c, on_ready_marker, rc, "PING");
}

static void connect_primary(cd_rconn *rc);

/* ---------- redis+sentinel://: ask a sentinel where the primary is ---------- */

static void end_resolve(cd_rconn *rc)
{
    redisAsyncContext *ac = rc->ac;
    rc->ac = NULL;
    rc->resolving = false;
    if (ac) {
        ac->data = NULL;
        redisAsyncFree(ac); /* deferred by hiredis when called from its callback */
    }
}

static void on_master_addr(redisAsyncContext *ac, void *r, void *priv)
{
    cd_rconn *rc = priv;
    redisReply *reply = r;
    if (!reply || rc->ac != ac || !rc->resolving)
        return;
    const cd_redis_endpoint *s = &rc->addr.endpoints[rc->sentinel_next % rc->addr.n_endpoints];
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 || reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        cd_log_warn("sentinel %s:%d does not know master %s conn=%s", s->host, s->port, rc->addr.master, rc->name);
        rc->sentinel_next++;
        end_resolve(rc);
        schedule_reconnect(rc);
        return;
    }
    cd_strlcpy(rc->addr.host, reply->element[0]->str, sizeof rc->addr.host);
    rc->addr.port = atoi(reply->element[1]->str);
    cd_log_info("sentinel %s:%d: primary of %s is %s:%d conn=%s", s->host, s->port, rc->addr.master, rc->addr.host,
                rc->addr.port, rc->name);
    end_resolve(rc);
    connect_primary(rc);
}

static void on_sentinel_auth(redisAsyncContext *ac, void *r, void *priv)
{
    /* a sentinel without a password refuses AUTH: that is fine, the query decides */
    (void)ac, (void)r, (void)priv;
}

static void on_sentinel_connect(const redisAsyncContext *ac, int status)
{
    cd_rconn *rc = ac->data;
    if (!rc || rc->ac != ac)
        return;
    if (status != REDIS_OK) {
        cd_log_warn("sentinel connect failed conn=%s err=\"%s\"", rc->name, ac->errstr);
        rc->ac = NULL;
        rc->resolving = false;
        rc->sentinel_next++;
        schedule_reconnect(rc);
        return;
    }
    redisAsyncContext *c = (redisAsyncContext *)ac;
    send_auth(rc, c, on_sentinel_auth);
    redisAsyncCommand(c, on_master_addr, rc, "SENTINEL get-master-addr-by-name %s", rc->addr.master);
}

static void on_sentinel_disconnect(const redisAsyncContext *ac, int status)
{
    cd_rconn *rc = ac->data;
    (void)status;
    if (!rc || rc->ac != ac)
        return;
    rc->ac = NULL;
    rc->resolving = false;
    rc->sentinel_next++;
    schedule_reconnect(rc);
}

/* Attach a new hiredis context to the loop as rc's connection; false when it failed. */
static bool attach(cd_rconn *rc, redisAsyncContext *ac, const char *what)
{
    if (!ac || ac->err) {
        cd_log_warn("%s connect failed conn=%s err=\"%s\"", what, rc->name, ac ? ac->errstr : "oom");
        if (ac)
            redisAsyncFree(ac);
        return false;
    }
    ac->data = rc;
    rc->ac = ac;
    rc->connect_started = cd_mono_ms();
    if (ev_attach(ac, rc->loop) != 0) {
        cd_log_warn("%s connect failed conn=%s err=\"cannot watch the socket\"", what, rc->name);
        redisAsyncFree(ac);
        rc->ac = NULL;
        return false;
    }
    return true;
}

static void start_resolve(cd_rconn *rc)
{
    const cd_redis_endpoint *s = &rc->addr.endpoints[rc->sentinel_next % rc->addr.n_endpoints];
    rc->resolving = true;
    if (!attach(rc, redisAsyncConnect(s->host, s->port), "sentinel")) {
        rc->resolving = false;
        rc->sentinel_next++;
        schedule_reconnect(rc);
        return;
    }
    redisAsyncSetConnectCallback(rc->ac, on_sentinel_connect);
    redisAsyncSetDisconnectCallback(rc->ac, on_sentinel_disconnect);
}

static void start_connect(cd_rconn *rc)
{
    if (rc->stopping)
        return;
    if (rc->addr.cluster) { /* any node of the cluster: the next seed */
        const cd_redis_endpoint *s = &rc->addr.endpoints[rc->sentinel_next++ % rc->addr.n_endpoints];
        cd_strlcpy(rc->addr.host, s->host, sizeof rc->addr.host);
        rc->addr.port = s->port;
    }
    if (rc->addr.sentinel)
        start_resolve(rc);
    else
        connect_primary(rc);
}

static void connect_primary(cd_rconn *rc)
{
    redisAsyncContext *ac =
        rc->addr.is_unix ? redisAsyncConnectUnix(rc->addr.host) : redisAsyncConnect(rc->addr.host, rc->addr.port);
    if (!attach(rc, ac, "redis")) {
        schedule_reconnect(rc);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

static void on_retry(uv_timer_t *t)
{
    cd_rconn *rc = t->data;
    rc->reconnects++;
    start_connect(rc);
}

static void schedule_reconnect(cd_rconn *rc)
{
    if (rc->stopping)
        return;
    uint64_t lo = (uint64_t)rc->cfg->redis_backoff_min_ms, hi = (uint64_t)rc->cfg->redis_backoff_max_ms;
    uint64_t cap = lo;
    for (unsigned i = 0; i < rc->attempt && cap < hi; i++)
        cap *= 2;
    if (cap > hi)
        cap = hi;
    rc->attempt++;
    /* Full jitter, never below half the base delay so a flapping Redis is not hammered. */
    uint32_t r;
    cd_random_bytes(&r, sizeof r);
    uint64_t delay = lo / 2 + (uint64_t)r % (cap + 1);
    uv_timer_start(&rc->retry, on_retry, delay, 0);
}

static void on_pong(redisAsyncContext *ac, void *r, void *priv)
{
    cd_rconn *rc = priv;
    if (r && rc->ac == ac) {
        if (rc->ping_sent_ns)
            rc->ping_rtt_us = (uv_hrtime() - rc->ping_sent_ns) / 1000;
        rc->ping_sent = 0;
        rc->ping_sent_ns = 0;
        rc->last_alive = cd_mono_ms();
    }
}

/* Every reply that arrived, to raw_cb; a read error or EOF fails the connection. */
static void raw_read(cd_rconn *rc)
{
    redisAsyncContext *ac = rc->ac;
    if (redisBufferRead(&ac->c) != REDIS_OK) {
        cd_rconn_fail(rc, ac->c.errstr[0] ? ac->c.errstr : "read failed");
        return;
    }
    void *reply = NULL;
    while (rc->ac == ac) {
        if (redisGetReplyFromReader(&ac->c, &reply) != REDIS_OK) {
            cd_rconn_fail(rc, "protocol error");
            return;
        }
        if (!reply)
            return;
        rc->last_alive = cd_mono_ms();
        rc->raw_cb(rc->raw_ud, reply); /* may fail the connection: the loop checks */
        freeReplyObject(reply);
    }
}

void cd_rconn_set_raw(cd_rconn *rc, cd_rconn_reply_cb cb, void *ud)
{
    rc->raw_cb = cb;
    rc->raw_ud = ud;
    rc->ping = false;
}

int cd_rconn_send_raw(cd_rconn *rc, int argc, const char **argv, const size_t *lens)
{
    if (!rc->connected || !rc->ac)
        return -1;
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0)
        return -1;
    int rv = redisAppendFormattedCommand(&rc->ac->c, cmd, (size_t)len);
    redisFreeCommand(cmd);
    if (rv != REDIS_OK)
        return -1;
    rc->ac->ev.addWrite(rc->ac->ev.data); /* written with this loop pass's other commands */
    return 0;
}

void cd_rconn_alive(cd_rconn *rc)
{
    rc->last_alive = cd_mono_ms();
}

static void on_tick(uv_timer_t *t)
{
    cd_rconn *rc = t->data;
    uint64_t now = cd_mono_ms();
    if (rc->ac && !rc->connected) {
        if (now - rc->connect_started > (uint64_t)rc->cfg->redis_connect_timeout_ms)
            cd_rconn_fail(rc, "connect timeout");
        return;
    }
    if (!rc->ac || !rc->ping)
        return;
    if (rc->ping_sent) {
        /* under load the PING queues behind many scripts: any reply proves liveness */
        uint64_t limit = (uint64_t)rc->cfg->redis_ping_timeout_ms;
        if (now - rc->ping_sent > limit && now - rc->last_alive > limit) {
            rc->ping_failures++;
            cd_rconn_fail(rc, "ping deadline");
        }
        return;
    }
    rc->ping_sent = now;
    rc->ping_sent_ns = uv_hrtime();
    if (rc->addr.sentinel)
        redisAsyncCommand(rc->ac, on_role, rc, "ROLE");
    redisAsyncCommand(rc->ac, on_pong, rc, "PING");
}

cd_rconn *cd_rconn_create(uv_loop_t *loop, const cd_config *cfg, const char *name, bool ping, cd_rconn_state_cb cb,
                          void *ud)
{
    char err[256];
    cd_rconn *rc = cd_calloc(1, sizeof *rc);
    if (cd_config_parse_redis_url(cfg->redis, &rc->addr, err, sizeof err) != 0) {
        cd_log_error("%s", err);
        cd_free(rc);
        return NULL;
    }
    if (!rc->addr.password[0] && cfg->redis_password[0])
        cd_strlcpy(rc->addr.password, cfg->redis_password, sizeof rc->addr.password);
    rc->loop = loop;
    rc->cfg = cfg;
    cd_strlcpy(rc->name, name, sizeof rc->name);
    rc->ping = ping;
    rc->cb = cb;
    rc->ud = ud;
    uv_timer_init(loop, &rc->tick);
    uv_timer_init(loop, &rc->retry);
    rc->tick.data = rc->retry.data = rc;
    return rc;
}

cd_rconn *cd_rconn_create_at(uv_loop_t *loop, const cd_config *cfg, const char *name, const char *host, int port,
                             cd_rconn_state_cb cb, void *ud)
{
    cd_rconn *rc = cd_rconn_create(loop, cfg, name, true, cb, ud);
    if (!rc)
        return NULL;
    rc->addr.cluster = rc->addr.sentinel = rc->addr.is_unix = false;
    rc->addr.db = 0;
    cd_strlcpy(rc->addr.host, host, sizeof rc->addr.host);
    rc->addr.port = port;
    return rc;
}

void cd_rconn_start(cd_rconn *rc)
{
    uint64_t iv = (uint64_t)rc->cfg->redis_ping_interval_ms;
    uv_timer_start(&rc->tick, on_tick, iv < 250 ? iv : 250, iv < 250 ? iv : 250);
    start_connect(rc);
}

void cd_rconn_fail(cd_rconn *rc, const char *why)
{
    redisAsyncContext *ac = rc->ac;
    if (!ac)
        return;
    if (rc->resolving) { /* a sentinel that did not answer in time: ask the next one */
        cd_log_warn("sentinel did not answer conn=%s reason=\"%s\"", rc->name, why);
        rc->sentinel_next++;
        end_resolve(rc);
        schedule_reconnect(rc);
        return;
    }
    cd_log_warn("redis connection dropped conn=%s reason=\"%s\"", rc->name, why);
    rc->ac = NULL;
    rc->connected = false;
    rc->ping_sent = 0;
    ac->data = NULL;    /* our callbacks ignore this context from now on */
    redisAsyncFree(ac); /* pending command callbacks get NULL replies */
    set_up(rc, false);
    schedule_reconnect(rc);
}

void cd_rconn_stop(cd_rconn *rc)
{
    rc->stopping = true;
    uv_timer_stop(&rc->tick);
    uv_timer_stop(&rc->retry);
    if (rc->ac) {
        redisAsyncContext *ac = rc->ac;
        rc->ac = NULL;
        rc->connected = false;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    rc->up = false;
}

static void on_handle_closed(uv_handle_t *h)
{
    cd_rconn *rc = h->data;
    if (--rc->closing_handles == 0)
        cd_free(rc);
}

void cd_rconn_destroy(cd_rconn *rc)
{
    if (!rc)
        return;
    if (!rc->stopping)
        cd_rconn_stop(rc);
    rc->closing_handles = 2;
    uv_close((uv_handle_t *)&rc->tick, on_handle_closed);
    uv_close((uv_handle_t *)&rc->retry, on_handle_closed);
}

bool cd_rconn_up(const cd_rconn *rc)
{
    return rc->up;
}

redisAsyncContext *cd_rconn_ctx(cd_rconn *rc)
{
    return rc->connected ? rc->ac : NULL;
}

void cd_rconn_hold(cd_rconn *rc)
{
    rc->held = true;
}

void cd_rconn_ready(cd_rconn *rc)
{
    if (rc->connected)
        set_up(rc, true);
}

unsigned long long cd_store__rconn_rtt_us(const cd_rconn *rc)
{
    return rc->ping_rtt_us;
}

void cd_store__rconn_stats(const cd_rconn *rc, unsigned long long *reconnects, unsigned long long *ping_failures)
{
    *reconnects = rc->reconnects;
    *ping_failures = rc->ping_failures;
}
