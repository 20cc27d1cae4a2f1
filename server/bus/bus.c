/* cd_bus: one hiredis connection in subscribe mode. */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "chatdesk/bus.h"
#include "chatdesk/clock.h"
#include "chatdesk/log.h"

struct cd_bus {
    const cd_config *cfg;
    cd_store *st;
    cd_rconn *rc;
    char *prefix;
    size_t prefix_len;
    char node_channel[160]; /* "node:<id>", the liveness channel */
    cd_map channels;        /* channel (no prefix) -> (void*)1 */
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

static void on_rconn(void *ud, cd_rconn *rc, cd_rconn_event ev)
{
    cd_bus *bus = ud;
    if (ev == CD_RCONN_CONNECTED) {
        send_sub(bus, "SUBSCRIBE", bus->node_channel);
        size_t it;
        for (cd_map_entry *e = cd_map_first(&bus->channels, &it); e; e = cd_map_next(&bus->channels, e, &it))
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
    if (!bus->up || !cd_store_up(bus->st))
        return;
    uint64_t now = cd_mono_ms();
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
    bus->cfg = cfg;
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
    uv_close((uv_handle_t *)&bus->tick, on_tick_closed);
}

bool cd_bus_up(const cd_bus *bus)
{
    return bus->up;
}

void cd_bus_subscribe(cd_bus *bus, const char *channel)
{
    size_t n = strlen(channel);
    if (cd_map_get(&bus->channels, channel, n))
        return;
    cd_map_put(&bus->channels, channel, n, (void *)1);
    send_sub(bus, "SUBSCRIBE", channel);
}

void cd_bus_unsubscribe(cd_bus *bus, const char *channel)
{
    if (!cd_map_del(&bus->channels, channel, strlen(channel)))
        return;
    send_sub(bus, "UNSUBSCRIBE", channel);
}

size_t cd_bus_channel_count(const cd_bus *bus)
{
    return bus->channels.count;
}
