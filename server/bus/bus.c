/* cd_bus: one hiredis connection in subscribe mode; on Redis Cluster also one shard
 * subscriber per primary that owns a site channel this node needs.
 * Redis Cluster: a site's channels (site:<site>, conv:<cid> of an id naming its site) are
 * shard channels P{s:<site>}:ch:<channel> (publish() in _common.lua), SSUBSCRIBEd on the
 * primary of the site's slot (the store's slot map). When the map moves a slot, or its
 * primary drops the channels (a slot migrated away: Redis sends sunsubscribe) or the
 * connection is lost, the channels are subscribed where they live now and, once Redis
 * confirmed them, on_state(true) has every session backfill from history. The other
 * channels stay plain SUBSCRIBEs on the first connection (PUBLISH reaches every node of a
 * cluster). */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "chatdesk/bus.h"
#include "chatdesk/clock.h"
#include "chatdesk/log.h"

#define MAX_SHARDS 64

/* One shard subscriber (a primary of the slot map, raw replies: cd_rconn_set_raw). */
typedef struct bus_shard {
    cd_bus *bus;
    size_t idx; /* in bus->shards */
    cd_rconn *rc;
    char host[256];
    int port;
    unsigned pending;   /* SSUBSCRIBEs not confirmed yet */
    bool backfill;      /* channels were (re)placed here: backfill once they are confirmed */
    uint64_t ping_sent; /* mono ms of the PING awaiting its pong, 0 if none */
} bus_shard;

struct cd_bus {
    uv_loop_t *loop;
    const cd_config *cfg;
    cd_store *st;
    cd_rconn *rc;
    char *prefix;
    size_t prefix_len;
    char node_channel[160]; /* "node:<id>", the liveness channel */
    cd_map channels;        /* channel (no prefix) -> (void*)1, or a shard channel's place */
    /* Redis Cluster: shard subscribers; a shard channel's value is UNPLACED or shard + 2 */
    bool cluster;
    bus_shard *shards[MAX_SHARDS];
    size_t nshards;
    unsigned map_gen;
    bool unplaced; /* some shard channel waits for a primary */
    cd_bus_message_cb on_message;
    cd_bus_state_cb on_state;
    void *ud;
    bool up;
    uint64_t ping_sent; /* mono ms of the liveness ping awaiting its echo */
    uint64_t last_msg;  /* mono ms of the last message of any kind */
    uv_timer_t tick;
    bool stopping;
};

static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv)
{
    cd_bus *bus = priv;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR && cd_rconn_ctx(bus->rc) == ac) {
        /* a SUBSCRIBE refused (LOADING after a restart...): subscribe again from scratch */
        cd_log_warn("redis refused a subscription: %s", reply->str);
        cd_rconn_fail(bus->rc, "subscribe refused");
        return;
    }
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    bus->last_msg = cd_mono_ms(); /* any message proves the subscription alive */
    redisReply *kind = reply->element[0], *ch = reply->element[1], *msg = reply->element[2];
    if (kind->type != REDIS_REPLY_STRING || ch->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(kind->str, "message") != 0 || msg->type != REDIS_REPLY_STRING)
        return;
    if ((size_t)ch->len < bus->prefix_len || memcmp(ch->str, bus->prefix, bus->prefix_len) != 0)
        return;
    const char *name = ch->str + bus->prefix_len + 3; /* skip "<prefix>ch:" */
    size_t nlen = (size_t)ch->len - bus->prefix_len - 3;
    if (nlen == strlen(bus->node_channel) && memcmp(name, bus->node_channel, nlen) == 0) {
        bus->ping_sent = 0;
        return;
    }
    bus->on_message(bus->ud, name, nlen, msg->str, (size_t)msg->len);
}

static void send_sub(cd_bus *bus, const char *cmd, const char *channel)
{
    redisAsyncContext *ac = cd_rconn_ctx(bus->rc);
    if (!ac)
        return;
    redisAsyncCommand(ac, on_sub_reply, bus, "%s %sch:%s", cmd, bus->prefix, channel);
}

/* ---------- Redis Cluster: shard channels ---------- */

#define PLAIN ((void *)1)    /* a channel on the plain subscriber */
#define UNPLACED ((void *)2) /* a shard channel without a known primary */
#define AT(i) ((void *)(uintptr_t)((i) + 3))

/* "<prefix>{s:<site>}:ch:<channel>" into out; its length, 0 for a channel of no site. */
static size_t shard_name(const cd_bus *bus, const char *ch, size_t n, char *out, size_t cap)
{
    return cd_store_shard_channel(bus->prefix, ch, n, out, cap);
}

/* SSUBSCRIBE / SUNSUBSCRIBE one channel (one slot per command: Redis refuses channels of
 * two slots in one). */
static void shard_cmd(bus_shard *sh, const char *cmd, const char *ch, size_t n)
{
    char name[512];
    size_t len = shard_name(sh->bus, ch, n, name, sizeof name);
    const char *argv[] = {cmd, name};
    size_t lens[] = {strlen(cmd), len};
    if (len && cd_rconn_send_raw(sh->rc, 2, argv, lens) == 0 && strcmp(cmd, "SSUBSCRIBE") == 0)
        sh->pending++; /* confirmed by its reply */
}

/* Sessions resume from history: events of a shard channel may have been missed. */
static void backfill(cd_bus *bus)
{
    cd_log_info("shard channels subscribed again: sessions backfill from history");
    if (bus->up && bus->on_state)
        bus->on_state(bus->ud, true);
}

static void on_shard_rconn(void *ud, cd_rconn *rc, cd_rconn_event ev)
{
    bus_shard *sh = ud;
    cd_bus *bus = sh->bus;
    (void)rc;
    if (ev == CD_RCONN_CONNECTED) {
        sh->pending = 0;
        sh->ping_sent = 0;
        size_t it;
        for (cd_map_entry *e = cd_map_first(&bus->channels, &it); e; e = cd_map_next(&bus->channels, e, &it))
            if (e->value == AT(sh->idx))
                shard_cmd(sh, "SSUBSCRIBE", e->key, e->klen);
        if (!sh->pending)
            sh->backfill = false;
    } else if (ev == CD_RCONN_DOWN) {
        /* its channels are not subscribed any more; the primary may be gone for good */
        sh->backfill = true;
        cd_store_map_stale(bus->st, NULL);
    }
}

/* A shard channel's name as Redis delivers it -> the channel, or NULL. */
static const char *shard_channel(const cd_bus *bus, const redisReply *ch, size_t *n)
{
    if (ch->type != REDIS_REPLY_STRING || (size_t)ch->len < bus->prefix_len ||
        memcmp(ch->str, bus->prefix, bus->prefix_len) != 0)
        return NULL;
    const char *at = memmem(ch->str + bus->prefix_len, (size_t)ch->len - bus->prefix_len, "}:ch:", 5);
    if (!at)
        return NULL;
    at += 5;
    *n = (size_t)(ch->str + ch->len - at);
    return at;
}

/* Every reply of a shard subscriber (raw: hiredis cannot dispatch them). */
static void on_shard_reply(void *ud, redisReply *r)
{
    bus_shard *sh = ud;
    cd_bus *bus = sh->bus;
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "MOVED ", 6) == 0) {
            /* an SSUBSCRIBE sent on an old map: the map learns where the slot is, and the
             * next tick subscribes the channel there */
            if (sh->pending)
                sh->pending--;
            cd_store_map_stale(bus->st, r->str);
            return;
        }
        cd_log_warn("redis refused a shard subscription on %s:%d: %s", sh->host, sh->port, r->str);
        cd_rconn_fail(sh->rc, "shard subscribe refused"); /* all again on reconnect */
        return;
    }
    if (r->type == REDIS_REPLY_STATUS) { /* PONG outside subscribed mode */
        sh->ping_sent = 0;
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = r->element[0]->str;
    size_t n;
    if (strcmp(kind, "pong") == 0) {
        sh->ping_sent = 0;
    } else if (strcmp(kind, "smessage") == 0 && r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING) {
        const char *name = shard_channel(bus, r->element[1], &n);
        if (name)
            bus->on_message(bus->ud, name, n, r->element[2]->str, (size_t)r->element[2]->len);
    } else if (strcmp(kind, "ssubscribe") == 0) {
        if (sh->pending && --sh->pending == 0 && sh->backfill) {
            sh->backfill = false;
            backfill(bus);
        }
    } else if (strcmp(kind, "sunsubscribe") == 0) {
        /* not ours (we moved or dropped the channel first): the primary dropped it, its
         * slot migrated away. Placed again from the map (read again now), then backfill. */
        const char *name = shard_channel(bus, r->element[1], &n);
        if (name && cd_map_get(&bus->channels, name, n) == AT(sh->idx)) {
            cd_map_put(&bus->channels, name, n, UNPLACED);
            bus->unplaced = true;
            cd_store_map_stale(bus->st, NULL);
        }
    }
}

/* The shard subscriber of host:port, made (and started) the first time; NULL when there
 * are too many. */
static bus_shard *shard_at(cd_bus *bus, const char *host, int port)
{
    for (size_t i = 0; i < bus->nshards; i++)
        if (bus->shards[i]->port == port && strcmp(bus->shards[i]->host, host) == 0)
            return bus->shards[i];
    if (bus->nshards == MAX_SHARDS)
        return NULL;
    bus_shard *sh = cd_calloc(1, sizeof *sh);
    sh->bus = bus;
    sh->idx = bus->nshards;
    cd_strlcpy(sh->host, host, sizeof sh->host);
    sh->port = port;
    char name[32];
    snprintf(name, sizeof name, "ssub%zu", sh->idx);
    sh->rc = cd_rconn_create_at(bus->loop, bus->cfg, name, host, port, on_shard_rconn, sh);
    if (!sh->rc) {
        cd_free(sh);
        return NULL;
    }
    cd_rconn_set_raw(sh->rc, on_shard_reply, sh);
    bus->shards[bus->nshards++] = sh;
    if (!bus->stopping)
        cd_rconn_start(sh->rc);
    return sh;
}

/* Subscribes a shard channel on the primary of its slot, leaving the one it was on.
 * moved: it was subscribed (or meant to be) before, so events may have been missed. */
static void place(cd_bus *bus, cd_map_entry *e, bool moved)
{
    char name[512], host[256];
    int port;
    size_t len = shard_name(bus, e->key, e->klen, name, sizeof name);
    bus_shard *to = NULL;
    if (len && cd_store_shard_of(bus->st, name, len, host, sizeof host, &port) == 0)
        to = shard_at(bus, host, port);
    if (to && e->value == AT(to->idx))
        return;
    if (e->value != UNPLACED && e->value != PLAIN) {
        bus_shard *from = bus->shards[(uintptr_t)e->value - 3];
        if (cd_rconn_up(from->rc))
            shard_cmd(from, "SUNSUBSCRIBE", e->key, e->klen);
    }
    e->value = to ? AT(to->idx) : UNPLACED;
    if (!to) {
        bus->unplaced = true;
        return;
    }
    if (moved)
        to->backfill = true;
    if (cd_rconn_up(to->rc))
        shard_cmd(to, "SSUBSCRIBE", e->key, e->klen);
}

/* Each tick: channels follow the slot map, and each shard subscriber proves it is alive
 * (PING answered within redis_ping_timeout_ms, or the connection is failed). */
static void shards_tick(cd_bus *bus, uint64_t now)
{
    unsigned gen = cd_store_map_gen(bus->st);
    if (gen != bus->map_gen || bus->unplaced) {
        bus->map_gen = gen;
        bus->unplaced = false;
        size_t it;
        for (cd_map_entry *e = cd_map_first(&bus->channels, &it); e; e = cd_map_next(&bus->channels, e, &it))
            if (e->value != PLAIN)
                place(bus, e, true);
    }
    for (size_t i = 0; i < bus->nshards; i++) {
        bus_shard *sh = bus->shards[i];
        if (!cd_rconn_up(sh->rc))
            continue;
        if (sh->ping_sent && now - sh->ping_sent > (uint64_t)bus->cfg->redis_ping_timeout_ms) {
            sh->ping_sent = 0;
            cd_rconn_fail(sh->rc, "shard subscriber ping deadline");
        } else if (!sh->ping_sent) {
            const char *argv[] = {"PING"};
            if (cd_rconn_send_raw(sh->rc, 1, argv, NULL) == 0)
                sh->ping_sent = now;
        }
    }
}

static void on_rconn(void *ud, cd_rconn *rc, cd_rconn_event ev)
{
    cd_bus *bus = ud;
    if (ev == CD_RCONN_CONNECTED) {
        send_sub(bus, "SUBSCRIBE", bus->node_channel);
        size_t it;
        for (cd_map_entry *e = cd_map_first(&bus->channels, &it); e; e = cd_map_next(&bus->channels, e, &it))
            if (e->value == PLAIN)
                send_sub(bus, "SUBSCRIBE", e->key);
        bus->ping_sent = 0;
        return;
    }
    bool up = ev == CD_RCONN_UP;
    if (up == bus->up)
        return;
    bus->up = up;
    if (bus->on_state)
        bus->on_state(bus->ud, up);
}

static void on_tick(uv_timer_t *t)
{
    cd_bus *bus = t->data;
    uint64_t now = cd_mono_ms();
    if (bus->cluster)
        shards_tick(bus, now);
    if (!bus->up || !cd_store_up(bus->st))
        return;
    if (bus->ping_sent) {
        uint64_t limit = (uint64_t)bus->cfg->redis_ping_timeout_ms;
        if (now - bus->ping_sent > limit && now - bus->last_msg > limit) {
            bus->ping_sent = 0;
            cd_rconn_fail(bus->rc, "subscriber ping deadline");
        }
        return;
    }
    char ch[200];
    snprintf(ch, sizeof ch, "ch:%s", bus->node_channel);
    if (cd_store_publish(bus->st, ch, "ping", 4) == 0)
        bus->ping_sent = now;
}

cd_bus *cd_bus_create(uv_loop_t *loop, const cd_config *cfg, cd_store *st, const char *node_id,
                      cd_bus_message_cb on_message, cd_bus_state_cb on_state, void *ud)
{
    cd_bus *bus = cd_calloc(1, sizeof *bus);
    bus->loop = loop;
    bus->cfg = cfg;
    bus->cluster = cd_store_cluster(st);
    bus->st = st;
    bus->prefix = cd_strdup(cfg->prefix);
    bus->prefix_len = strlen(bus->prefix);
    snprintf(bus->node_channel, sizeof bus->node_channel, "node:%s", node_id);
    cd_map_init(&bus->channels);
    bus->on_message = on_message;
    bus->on_state = on_state;
    bus->ud = ud;
    bus->rc = cd_rconn_create(loop, cfg, "sub", false, on_rconn, bus);
    if (!bus->rc) {
        cd_free(bus->prefix);
        cd_free(bus);
        return NULL;
    }
    uv_timer_init(loop, &bus->tick);
    bus->tick.data = bus;
    return bus;
}

void cd_bus_start(cd_bus *bus)
{
    uint64_t iv = (uint64_t)bus->cfg->redis_ping_interval_ms;
    uv_timer_start(&bus->tick, on_tick, iv, iv);
    cd_rconn_start(bus->rc);
}

void cd_bus_stop(cd_bus *bus)
{
    bus->stopping = true;
    uv_timer_stop(&bus->tick);
    cd_rconn_stop(bus->rc);
    for (size_t i = 0; i < bus->nshards; i++)
        cd_rconn_stop(bus->shards[i]->rc);
}

static void on_tick_closed(uv_handle_t *h)
{
    cd_bus *bus = h->data;
    cd_map_cleanup(&bus->channels);
    cd_free(bus->prefix);
    cd_free(bus);
}

void cd_bus_destroy(cd_bus *bus)
{
    if (!bus)
        return;
    if (!bus->stopping)
        cd_bus_stop(bus);
    cd_rconn_destroy(bus->rc);
    for (size_t i = 0; i < bus->nshards; i++) {
        cd_rconn_destroy(bus->shards[i]->rc);
        cd_free(bus->shards[i]);
    }
    uv_close((uv_handle_t *)&bus->tick, on_tick_closed);
}

bool cd_bus_up(const cd_bus *bus)
{
    return bus->up;
}

void cd_bus_subscribe(cd_bus *bus, const char *channel)
{
    size_t n = strlen(channel);
    char name[512];
    if (cd_map_get(&bus->channels, channel, n))
        return;
    if (bus->cluster && shard_name(bus, channel, n, name, sizeof name)) {
        place(bus, cd_map_put(&bus->channels, channel, n, UNPLACED), false);
        return;
    }
    cd_map_put(&bus->channels, channel, n, PLAIN);
    send_sub(bus, "SUBSCRIBE", channel);
}

void cd_bus_unsubscribe(cd_bus *bus, const char *channel)
{
    size_t n = strlen(channel);
    void *v = cd_map_del(&bus->channels, channel, n);
    if (v == PLAIN) {
        send_sub(bus, "UNSUBSCRIBE", channel);
    } else if (v && v != UNPLACED) {
        bus_shard *sh = bus->shards[(uintptr_t)v - 3];
        if (cd_rconn_up(sh->rc))
            shard_cmd(sh, "SUNSUBSCRIBE", channel, n);
    }
}

size_t cd_bus_channel_count(const cd_bus *bus)
{
    return bus->channels.count;
}
