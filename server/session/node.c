/* cd_node, the session side of a node: the sessions on it and what they share, wired
 * to the node/ services (keyring, site cache, cron), presence/ (this node's agents) and
 * timers/ and events/ (the sites' event consumers). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"
#include "chatdesk/route.h"
#include "chatdesk/ticket.h"
#include "session_int.h"

/* A site cache load: every site's timers are polled once now (the safety net for
 * notices missed while the bus was down). */
static void on_sites_loaded(void *ud, const cd_site *sites, size_t n_sites)
{
    cd_node *n = ud;
    const char **keys = cd_calloc(n_sites + 1, sizeof *keys);
    for (size_t i = 0; i < n_sites; i++)
        keys[i] = sites[i].key;
    cd_timers_set_sites(n->timers, keys, n_sites);
    cd_node_gauges_set_sites(n->gauges, keys, n_sites);
    cd_free(keys);
    /* and every site's consumers once, for the same reason */
    for (size_t i = 0; i < n_sites; i++)
        cd_events_poll(n->events, sites[i].key);
}

static void on_routed(void *ud, const cd_route_result *r)
{
    (void)ud;
    if (r->err != CD_ERR_OK && r->err != CD_ERR_UNAVAILABLE)
        cd_log_warn("background script failed: %s %s", cd_err_name(r->err), r->message ? r->message : "");
}

static void on_sites_event(cd_hub_sub *sub, const cd_hub_event *ev)
{
    cd_node *n = CD_CONTAINER_OF(sub, cd_node, sites_sub);
    /* an agent's settings or sites: its record in each of its sites follows */
    if (ev->frame && cd_route_agent_notice(n->st, ev->frame->data, ev->frame->len))
        return;
    cd_node_sites_load(n->sites);
    /* settings or capacity may have changed: assign what waits (atomic, idempotent) */
    cd_route_drain(n->st, NULL, on_routed, NULL);
}

/* ---------- presence: this node's agents (presence/) ---------- */

/* Conversations a presence sync gave an agent: its sessions here follow them. */
static void on_assigned(void *ud, const cd_route_result *r)
{
    for (size_t i = 0; i < r->n_assigned; i++)
        cd_session__handover(ud, &r->assigned[i]);
}

/* ---------- timers: the rules consumer's kind; the poller is timers/ ---------- */

/* "rule|<site>|<rule id>|<cid>": an automation rule's time trigger (events/). */
static void on_rule_timer(void *ud, const char *site, const char *arg)
{
    char buf[256];
    (void)site;
    cd_strlcpy(buf, arg, sizeof buf);
    char *rest = strchr(buf, '|');
    if (!rest) {
        cd_log_warn("timer of unknown kind: rule|%s", arg);
        return;
    }
    *rest++ = '\0';
    cd_events_rule_timer(ud, buf, rest);
}

/* "T <site> <due>" on the timers channel (timer_set in _common.lua); other notices there
 * ("W <site> <due>": a webhook delivery, wh_due) go to the module that asked for them. */
static void on_timer_notice(cd_hub_sub *sub, const cd_hub_event *ev)
{
    cd_node *n = CD_CONTAINER_OF(sub, cd_node, timers_sub);
    if (ev->frame->len > 0 && ev->frame->data[0] == 'T')
        cd_timers_notice(n->timers, ev->frame->data, ev->frame->len);
    else if (n->notice_fn)
        n->notice_fn(n->notice_ctx, ev->frame->data, ev->frame->len);
}

void cd_node_on_notice(cd_node *n, void (*fn)(void *ctx, const char *p, size_t len), void *ctx)
{
    n->notice_fn = fn;
    n->notice_ctx = ctx;
}

const char *cd_node_ops_text(const cd_node *n)
{
    return cd_node_gauges_text(n->gauges);
}

void cd_node_role_counts(const cd_node *n, size_t *visitors, size_t *agents)
{
    *visitors = *agents = 0;
    for (const cd_session *s = n->sessions; s; s = s->next)
        (*(s->role == CD_SESSION_AGENT ? agents : visitors))++;
}

void cd_node_events_stats(const cd_node *n, cd_events_stats *out)
{
    cd_events_get_stats(n->events, out);
}

/* RELIABILITY F6: a node cut off from Redis while its peers are not serves nobody; once
 * Redis has been down for redis_down_close_ms its clients are closed (1013, retry) and new
 * upgrades refused (503), so a load balancer sends them to a node that has Redis. Off by
 * default: when Redis is down for every node, connections stay open and each request is
 * answered unavailable. */
static void shed_if_cut_off(cd_node *n, uint64_t now)
{
    if (cd_store_up(n->st)) {
        if (n->shedding)
            cd_log_info("redis back: accepting connections again");
        n->store_down_since = 0;
        n->shedding = false;
        return;
    }
    if (!n->store_down_since)
        n->store_down_since = now;
    if (!n->cfg->redis_down_close_ms || n->shedding ||
        now - n->store_down_since < (uint64_t)n->cfg->redis_down_close_ms)
        return;
    n->shedding = true;
    cd_log_warn("redis down for %llu ms: closing %zu connections (1013)",
                (unsigned long long)(now - n->store_down_since), n->nsessions);
    for (cd_session *s = n->sessions; s; s = s->next)
        cd_session_close(s, 1013, "storage unavailable, reconnect", true);
}

/* ---------- the cron's jobs ---------- */

static void tick_sessions(void *ud, uint64_t now)
{
    cd_session__sweep(ud, now); /* hello deadlines */
}

static void tick_store(void *ud, uint64_t now)
{
    cd_store_tick(ud, now);
}

static void tick_shed(void *ud, uint64_t now)
{
    shed_if_cut_off(ud, now);
}

static void tick_presence(void *ud, uint64_t now)
{
    cd_presence_tick(ud, now);
}

static void tick_timers(void *ud, uint64_t now)
{
    cd_timers_tick(ud, now);
}

static void tick_gauges(void *ud, uint64_t now)
{
    cd_node_gauges_tick(ud, now);
}

static void tick_keys(void *ud, uint64_t now)
{
    cd_node_keyring_tick(ud, now);
}

static void tick_events(void *ud, uint64_t now)
{
    cd_events_tick(ud, now);
}

static void tick_sites(void *ud, uint64_t now)
{
    cd_node_sites_tick(ud, now);
}

static const char *iv_of(void *sites, const char *site)
{
    return cd_node_sites_intervals(sites, site);
}

cd_node *cd_node_create(uv_loop_t *loop, const cd_config *cfg, const char *node_id, cd_store *st, cd_hub *hub,
                        const cd_session_io *io)
{
    cd_node *n = cd_calloc(1, sizeof *n);
    cd_strlcpy(n->node_id, node_id, sizeof n->node_id);
    n->loop = loop;
    n->cfg = cfg;
    n->st = st;
    n->hub = hub;
    n->io = *io;
    cd_proto_limits_default(&n->lim);
    n->lim.max_frame = (size_t)cfg->max_frame;
    n->lim.max_body = (size_t)cfg->max_body;
    n->lim.max_depth = (int)cfg->max_json_depth;
    n->lim.max_rid = (size_t)cfg->max_rid;
    n->lim.max_id = (size_t)cfg->max_id;
    n->lim.max_field = (size_t)cfg->max_field;
    n->lim.max_history = (int)cfg->history_page_max;
    n->lim.max_attachments = (size_t)cfg->file_max_per_message;
    n->keys = cd_node_keyring_create(st, cfg);
    if (!n->keys) {
        cd_free(n);
        return NULL;
    }
    n->gauges = cd_node_gauges_create(st);
    n->sites = cd_node_sites_create(st, cfg, on_sites_loaded, n);
    n->presence = cd_presence_local_create(st, cfg, node_id, on_assigned, n);
    n->events = cd_events_create(loop, cfg, st, hub, node_id, iv_of, n->sites);
    n->timers = cd_timers_create(cfg, st);
    cd_timers_register(n->timers, "rule", on_rule_timer, n->events);
    cd_hub_join(hub, &n->sites_sub, "sites", on_sites_event);
    cd_hub_join(hub, &n->timers_sub, "timers", on_timer_notice);
    /* the one tick (node/cron.c), every 100 ms in this order */
    n->cron = cd_node_cron_create(loop, 100);
    cd_node_cron_add(n->cron, 0, tick_sessions, n);
    cd_node_cron_add(n->cron, 0, tick_store, st);
    cd_node_cron_add(n->cron, 0, tick_shed, n);
    cd_node_cron_add(n->cron, 0, tick_presence, n->presence);
    cd_node_cron_add(n->cron, 0, tick_timers, n->timers);
    cd_node_cron_add(n->cron, 0, tick_gauges, n->gauges);
    cd_node_cron_add(n->cron, 0, tick_keys, n->keys);
    cd_node_cron_add(n->cron, 0, tick_sites, n->sites);
    cd_node_cron_add(n->cron, 0, tick_events, n->events);
    return n;
}

/* The cron's timer is closed: nothing ticks any more and the store has failed every
 * reply still pending (chatdeskd's order: node, bus, store), so the node goes now. */
static void on_cron_closed(void *ud)
{
    cd_node *n = ud;
    cd_timers_destroy(n->timers);
    cd_presence_local_destroy(n->presence);
    cd_node_sites_destroy(n->sites);
    cd_node_keyring_destroy(n->keys);
    cd_node_gauges_destroy(n->gauges);
    cd_free(n);
}

void cd_node_destroy(cd_node *n)
{
    if (!n)
        return;
    cd_hub_leave(n->hub, &n->sites_sub);
    cd_hub_leave(n->hub, &n->timers_sub);
    cd_events_destroy(n->events);
    cd_node_cron_destroy(n->cron, on_cron_closed, n);
}

void cd_node_on_store(cd_node *n, bool up)
{
    if (!up) {
        cd_timers_on_store(n->timers, false);
        cd_events_on_store(n->events, false);
        return;
    }
    cd_events_on_store(n->events, true);
    cd_node_keyring_on_store(n->keys, true);
    cd_node_sites_on_store(n->sites, true);
    cd_presence_on_store(n->presence, true); /* vouch for our agents again at once */
    /* a backfill the bus asked for while the store was still down is done now */
    for (cd_session *s = n->sessions; s; s = s->next)
        cd_session__resync(s);
}

void cd_node_on_bus(cd_node *n, bool up)
{
    if (!up)
        return;
    cd_node_sites_load(n->sites); /* site events may have been missed too */
    for (cd_session *s = n->sessions; s; s = s->next)
        cd_session__resync(s);
}

void cd_node_sites_changed(cd_node *n)
{
    cd_node_sites_load(n->sites);
}

bool cd_node_origin_allowed(cd_node *n, const char *origin, const char *site_key)
{
    return cd_node_sites_origin_allowed(n->sites, origin, site_key);
}

bool cd_node_agent_origin_allowed(cd_node *n, const char *origin, const char *host)
{
    return cd_node_sites_agent_origin_allowed(n->sites, origin, host);
}

const char *cd_node_intervals(cd_node *n, const char *site_key)
{
    return cd_node_sites_intervals(n->sites, site_key);
}

void cd_node_file_limits(cd_node *n, const char *site_key, int64_t *max_bytes, char *types, size_t typesz)
{
    const cd_site *s = cd_node_sites_get(n->sites, site_key);
    *max_bytes = n->cfg->file_max_bytes;
    if (s && s->file_max_bytes > 0 && s->file_max_bytes < *max_bytes)
        *max_bytes = s->file_max_bytes;
    cd_strlcpy(types, s && s->file_types ? s->file_types : "", typesz);
}

const char *cd_node_site_at(void *node, size_t i)
{
    return cd_node_sites_key_at(((cd_node *)node)->sites, i);
}

cd_timers *cd_node_timers(cd_node *n)
{
    return n->timers;
}

bool cd_node_ready(const cd_node *n)
{
    return cd_node_keyring_ready(n->keys);
}

bool cd_node_requires_2fa(cd_node *n, char *const *sites, size_t n_sites)
{
    for (size_t i = 0; i < n_sites; i++) {
        const cd_site *s = cd_node_sites_get(n->sites, sites[i]);
        if (s && s->require_2fa)
            return true;
    }
    return false;
}

const cd_auth_keyring *cd_node_keys(const cd_node *n)
{
    return cd_node_keyring_get(n->keys);
}

const cd_proto_limits *cd_node_limits(const cd_node *n)
{
    return &n->lim;
}

void cd_node_set_draining(cd_node *n)
{
    n->draining = true;
    cd_events_set_draining(n->events);
}

bool cd_node_draining(const cd_node *n)
{
    return n->draining;
}

bool cd_node_shedding(const cd_node *n)
{
    return n->shedding;
}

size_t cd_node_session_count(const cd_node *n)
{
    return n->nsessions;
}

void cd_node_get_stats(const cd_node *n, cd_node_stats *out)
{
    *out = n->stats;
}

void cd_node_close_all(cd_node *n)
{
    /* in-flight acknowledgements are delivered first: a session with pending requests
     * closes when the last one is answered */
    for (cd_session *s = n->sessions; s; s = s->next) {
        if (s->refs > 1)
            s->close_when_idle = true;
        else
            cd_session_close(s, 1001, "node shutting down", true);
    }
}
