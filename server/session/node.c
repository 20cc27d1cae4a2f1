/* cd_node: what sessions and HTTP share on one node: the token keyring (from
 * config or Redis), the site cache (origins, identity secrets; reloaded on every
 * store connect, on a "sites" bus event and periodically), hello deadlines. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"
#include "chatdesk/ticket.h"
#include "session_int.h"

static void load_sites(cd_node *n);
static void periodic(cd_node *n, uint64_t now);

static void on_keys(void *ud, cd_conv_result *r)
{
    cd_node *n = ud;
    n->keys_loading = false;
    if (r->err != CD_ERR_OK) {
        cd_log_error("loading token keys failed: %s", cd_err_name(r->err));
        return;
    }
    cd_auth_keyring kr;
    cd_auth_keyring_init(&kr);
    for (size_t i = 0; i < r->n_keys; i++)
        if (cd_auth_keyring_add_hex(&kr, r->keys[i].kid, r->keys[i].hex) != 0)
            cd_log_error("bad token key kid=%s in Redis", r->keys[i].kid);
    if (kr.n == 0)
        return;
    n->keys = kr;
    n->keys_ready = true;
}

static void load_keys(cd_node *n)
{
    if (n->keys_ready || n->keys_loading)
        return;
    char hex[CD_AUTH_KEY_LEN * 2 + 1], kid[16];
    cd_random_hex(hex, CD_AUTH_KEY_LEN);
    cd_random_hex(kid, 4);
    if (cd_conv_keys_init(n->st, kid, hex, on_keys, n) == 0)
        n->keys_loading = true;
}

static void on_sites(void *ud, cd_conv_result *r)
{
    cd_node *n = ud;
    n->sites_loading = false;
    if (r->err == CD_ERR_OK) {
        cd_conv_sites_free(n->sites, n->n_sites);
        n->sites = r->sites;
        n->n_sites = r->n_sites;
        r->sites = NULL;
        r->n_sites = 0;
        n->sites_loaded_at = cd_mono_ms();
        cd_log_debug("site cache loaded sites=%zu", n->n_sites);
        /* every site's consumers once: the safety net for an events notice lost while
         * the bus was down (like the timers below) */
        for (size_t i = 0; i < n->n_sites; i++)
            cd_events_poll(n->events, n->sites[i].key);
    }
    if (n->sites_again) {
        n->sites_again = false;
        load_sites(n);
    }
}

static void load_sites(cd_node *n)
{
    if (n->sites_loading) {
        n->sites_again = true;
        return;
    }
    if (cd_conv_sites_get(n->st, on_sites, n) == 0)
        n->sites_loading = true;
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

static void on_sweep(uv_timer_t *t)
{
    cd_node *n = t->data;
    uint64_t now = cd_mono_ms();
    cd_session__sweep(n, now);
    cd_store_tick(n->st, now);
    shed_if_cut_off(n, now);
    periodic(n, now);
    if (cd_store_up(n->st)) {
        load_keys(n);
        if (now - n->sites_loaded_at > (uint64_t)n->cfg->site_cache_refresh_s * 1000)
            load_sites(n);
    }
}

static void on_ignore(void *ud, cd_conv_result *r)
{
    (void)ud;
    if (r->err != CD_ERR_OK && r->err != CD_ERR_UNAVAILABLE)
        cd_log_warn("background script failed: %s %s", cd_err_name(r->err), r->message ? r->message : "");
}

static void on_sites_event(cd_hub_sub *sub, const cd_hub_event *ev)
{
    cd_node *n = CD_CONTAINER_OF(sub, cd_node, sites_sub);
    /* an agent's settings or sites: its record in each of its sites follows */
    if (ev->frame && cd_conv_agent_notice(n->st, ev->frame->data, ev->frame->len))
        return;
    load_sites(n);
    /* settings or capacity may have changed: assign what waits (atomic, idempotent) */
    cd_conv_route_drain(n->st, NULL, on_ignore, NULL);
}

/* ---------- presence: this node vouches for its connected agents ---------- */

static void on_touched(void *ud, cd_conv_result *r)
{
    cd_node *n = ud;
    if (r->err != CD_ERR_OK)
        return;
    for (size_t i = 0; i < r->n_assigned; i++)
        cd_session__handover(n, &r->assigned[i]);
}

static void beat(cd_node *n)
{
    const char *ids[256];
    size_t k = 0, it;
    int64_t expiry = (int64_t)cd_now_ms() + n->cfg->presence_ttl_s * 1000;
    for (cd_map_entry *e = cd_map_first(&n->agents, &it); e; e = cd_map_next(&n->agents, e, &it)) {
        ids[k++] = e->key;
        if (k == CD_ARRAY_LEN(ids)) {
            cd_conv_presence_touch(n->st, n->node_id, expiry, ids, k, on_touched, n);
            k = 0;
        }
    }
    if (k)
        cd_conv_presence_touch(n->st, n->node_id, expiry, ids, k, on_touched, n);
}

void cd_session__agent_up(cd_node *n, const char *aid)
{
    size_t kl = strlen(aid);
    uintptr_t c = (uintptr_t)cd_map_get(&n->agents, aid, kl);
    cd_map_put(&n->agents, aid, kl, (void *)(c + 1));
    if (c == 0) {
        const char *ids[] = {aid};
        int64_t expiry = (int64_t)cd_now_ms() + n->cfg->presence_ttl_s * 1000;
        cd_conv_presence_touch(n->st, n->node_id, expiry, ids, 1, on_touched, n);
        /* its record in each of its sites, even when the touch changed no status (a
         * record written before the agent's sites had one, or missed notices) */
        cd_conv_agent_sync(n->st, aid, on_touched, n);
    }
}

void cd_session__agent_down(cd_node *n, const char *aid)
{
    size_t kl = strlen(aid);
    uintptr_t c = (uintptr_t)cd_map_get(&n->agents, aid, kl);
    if (c > 1) {
        cd_map_put(&n->agents, aid, kl, (void *)(c - 1));
        return;
    }
    cd_map_del(&n->agents, aid, kl);
    /* its last connection here: this node no longer vouches (offline if no other node does) */
    cd_conv_presence_sweep(n->st, n->node_id, aid, on_ignore, NULL);
}

/* ---------- timers: claim due deadlines with a lease, run their handlers ---------- */

/* Timer members of site's P{s:<site>}:timers: "autoclose|<cid>", "unanswered|<site>|<cid>",
 * "slawarn|<cid>|<kind>", "slabreach|<cid>|<kind>", "rule|<site>|<rule id>|<cid>". The
 * site is that of the zset, so a conversation id without its site (one of the previous
 * release) still names the right key. */
static void run_timer(cd_node *n, const char *site, const char *item)
{
    char buf[256];
    cd_strlcpy(buf, item, sizeof buf);
    char *f1 = strchr(buf, '|');
    char *f2 = f1 ? strchr(f1 + 1, '|') : NULL;
    if (!f1)
        goto unknown;
    *f1++ = '\0';
    if (f2)
        *f2++ = '\0';
    if (strcmp(buf, "autoclose") == 0 && !f2) {
        cd_conv_autoclose(n->st, site, f1, on_ignore, NULL);
        return;
    }
    if (strcmp(buf, "unanswered") == 0 && f2) {
        cd_conv_ticket_convert(n->st, n->cfg, f1, f2, cd_session__intervals(n, f1), on_ignore, NULL);
        return;
    }
    if ((strcmp(buf, "slawarn") == 0 || strcmp(buf, "slabreach") == 0) && f2) {
        cd_conv_sla_fire(n->st, n->cfg, site, f1, f2, buf[3] == 'w' ? "warn" : "breach", on_ignore, NULL);
        return;
    }
    if (strcmp(buf, "rule") == 0 && f2) { /* "rule|<site>|<rule id>|<cid>": automation rules */
        cd_events_rule_timer(n->events, f1, f2);
        return;
    }
unknown:
    cd_log_warn("timer of unknown kind: %s", item);
}

#define TIMER_BATCH 50

typedef struct timer_poll {
    cd_node *n;
    char site[];
} timer_poll;

/* the site cache's entry for key[0..len) (cd_session__site for a NUL-terminated key) */
static cd_conv_site *site_of(cd_node *n, const char *key, size_t len)
{
    for (size_t i = 0; i < n->n_sites; i++)
        if (strncmp(n->sites[i].key, key, len) == 0 && n->sites[i].key[len] == '\0')
            return &n->sites[i];
    return NULL;
}

static void on_timers(void *ud, cd_conv_result *r)
{
    timer_poll *tp = ud;
    cd_node *n = tp->n;
    if (n->timer_polls > 0)
        n->timer_polls--;
    for (size_t i = 0; r->err == CD_ERR_OK && i < r->n_items; i++)
        run_timer(n, tp->site, r->items[i]);
    cd_conv_site *s = site_of(n, tp->site, strlen(tp->site));
    /* a full batch: more may be due now; else sleep until the next timer or a notice */
    if (s && r->err == CD_ERR_OK && r->n_items < TIMER_BATCH)
        s->next_timer_ms = r->next_due < 0 ? INT64_MAX : r->next_due;
    cd_free(tp);
}

/* "T <site> <due>" on the timers channel (timer_set in _common.lua): poll that site by then. */
static void on_timer_notice(cd_hub_sub *sub, const cd_hub_event *ev)
{
    cd_node *n = CD_CONTAINER_OF(sub, cd_node, timers_sub);
    const char *p = ev->frame->data, *end = p + ev->frame->len;
    if (ev->frame->len < 4 || p[0] != 'T' || p[1] != ' ')
        return;
    const char *site = p + 2, *sp = memchr(site, ' ', (size_t)(end - site));
    if (!sp)
        return;
    cd_conv_site *s = site_of(n, site, (size_t)(sp - site));
    int64_t due = strtoll(sp + 1, NULL, 10);
    if (s && s->next_timer_ms != 0 && due < s->next_timer_ms)
        s->next_timer_ms = due;
}

/* A timers_claim call for each site whose timers may be due (each runs in its site's
 * slot): sites are polled when a notice or their last claim says a timer is due, and all
 * of them after each site cache reload (site_cache_refresh_s), which also covers a
 * notice lost while the bus was down. Idle sites cost nothing in between. */
static void timers_poll(cd_node *n)
{
    int64_t now = (int64_t)cd_now_ms();
    for (size_t i = 0; i < n->n_sites; i++) {
        if (n->sites[i].next_timer_ms != 0 && now < n->sites[i].next_timer_ms)
            continue;
        size_t l = strlen(n->sites[i].key);
        timer_poll *tp = cd_malloc(sizeof *tp + l + 1);
        tp->n = n;
        memcpy(tp->site, n->sites[i].key, l + 1);
        if (cd_conv_timers_claim(n->st, tp->site, n->cfg->timer_lease_ms, TIMER_BATCH, on_timers, tp) == 0)
            n->timer_polls++;
        else
            cd_free(tp);
    }
}

/* ---- reports: operational gauges for /metrics (queue depths, timer lag, stream length),
 * read from Redis every CD_OPS_POLL_MS by metrics_ops.lua, never per scrape ---- */
#define CD_OPS_POLL_MS 5000

static void on_ops(void *ud, cd_err err, const char *json, size_t len)
{
    cd_node *n = ud;
    n->ops_busy = false;
    if (err != CD_ERR_OK || !json || len == 0 || json[len - 1] != '\n')
        return;
    cd_free(n->ops_text);
    n->ops_text = cd_strndup(json, len);
}

static void ops_poll(cd_node *n, uint64_t now)
{
    if (n->ops_busy || (n->last_ops_poll && now - n->last_ops_poll < CD_OPS_POLL_MS))
        return;
    char ts[24];
    snprintf(ts, sizeof ts, "%llu", (unsigned long long)cd_now_ms());
    const char *args[] = {ts};
    cd_key k;
    const char *keys[] = {cd_key_global(&k, cd_store_prefix(n->st), "sites")};
    n->last_ops_poll = now;
    if (cd_store_fcall(n->st, "metrics_ops", 1, keys, 1, args, NULL, on_ops, n) == 0)
        n->ops_busy = true;
}

const char *cd_node_ops_text(const cd_node *n)
{
    return n->ops_text;
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

static void periodic(cd_node *n, uint64_t now)
{
    if (!cd_store_up(n->st))
        return;
    if (now - n->last_beat >= (uint64_t)n->cfg->presence_beat_s * 1000) {
        n->last_beat = now;
        beat(n);
    }
    if (now - n->last_presence_sweep >= 2000) {
        n->last_presence_sweep = now;
        cd_conv_presence_sweep(n->st, NULL, NULL, on_ignore, NULL);
    }
    if (n->timer_polls == 0 && now - n->last_timer_poll >= (uint64_t)n->cfg->timer_poll_ms) {
        n->last_timer_poll = now;
        timers_poll(n);
    }
    ops_poll(n, now);
}

static char **split_csv(const char *s, size_t *n)
{
    *n = 0;
    char **out = cd_calloc(strlen(s) / 2 + 2, sizeof *out);
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && (*p == ' ')) {
            p++;
            len--;
        }
        while (len && p[len - 1] == ' ')
            len--;
        if (len)
            out[(*n)++] = cd_strndup(p, len);
        if (!e)
            break;
        p = e + 1;
    }
    return out;
}

static const char *iv_of(void *ud, const char *site)
{
    return cd_session__intervals(ud, site);
}

cd_node *cd_node_create(uv_loop_t *loop, const cd_config *cfg, const char *node_id, cd_store *st, cd_hub *hub,
                        const cd_session_io *io)
{
    cd_node *n = cd_calloc(1, sizeof *n);
    cd_strlcpy(n->node_id, node_id, sizeof n->node_id);
    cd_map_init(&n->agents);
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
    cd_auth_keyring_init(&n->keys);
    if (cfg->token_secret[0]) {
        if (cd_auth_keyring_add_hex(&n->keys, "cfg", cfg->token_secret) != 0) {
            cd_log_error("token_secret must be 64 hex characters");
            cd_free(n);
            return NULL;
        }
        n->keys_ready = true;
    }
    n->agent_origins = split_csv(cfg->agent_origins, &n->n_agent_origins);
    uv_timer_init(loop, &n->sweep);
    n->sweep.data = n;
    uv_timer_start(&n->sweep, on_sweep, 100, 100);
    cd_hub_join(hub, &n->sites_sub, "sites", on_sites_event);
    cd_hub_join(hub, &n->timers_sub, "timers", on_timer_notice);
    n->events = cd_events_create(loop, cfg, st, hub, node_id, iv_of, n);
    return n;
}

static void on_sweep_closed(uv_handle_t *h)
{
    cd_node *n = h->data;
    cd_map_cleanup(&n->agents);
    cd_conv_sites_free(n->sites, n->n_sites);
    cd_free(n->ops_text);
    for (size_t i = 0; i < n->n_agent_origins; i++)
        cd_free(n->agent_origins[i]);
    cd_free(n->agent_origins);
    cd_free(n);
}

void cd_node_destroy(cd_node *n)
{
    if (!n)
        return;
    cd_hub_leave(n->hub, &n->sites_sub);
    cd_hub_leave(n->hub, &n->timers_sub);
    cd_events_destroy(n->events);
    uv_timer_stop(&n->sweep);
    uv_close((uv_handle_t *)&n->sweep, on_sweep_closed);
}

void cd_node_on_store(cd_node *n, bool up)
{
    if (!up) {
        n->timer_polls = 0;
        n->ops_busy = false;
        cd_events_on_store(n->events, false);
        return;
    }
    cd_events_on_store(n->events, true);
    load_keys(n);
    load_sites(n);
    n->last_beat = 0; /* vouch for our agents again at once */
    /* a backfill the bus asked for while the store was still down is done now */
    for (cd_session *s = n->sessions; s; s = s->next)
        cd_session__resync(s);
}

void cd_node_on_bus(cd_node *n, bool up)
{
    if (!up)
        return;
    load_sites(n); /* site events may have been missed too */
    for (cd_session *s = n->sessions; s; s = s->next)
        cd_session__resync(s);
}

void cd_node_sites_changed(cd_node *n)
{
    load_sites(n);
}

const cd_conv_site *cd_session__site(cd_node *n, const char *key)
{
    return site_of(n, key, strlen(key));
}

const char *cd_session__intervals(cd_node *n, const char *site_key)
{
    for (size_t i = 0; i < n->n_sites; i++) {
        cd_conv_site *s = &n->sites[i];
        if (strcmp(s->key, site_key) != 0)
            continue;
        int64_t now = (int64_t)cd_now_ms();
        if (!s->intervals || now - s->intervals_from > 86400000 + 3600000) {
            cd_buf b;
            cd_buf_init(&b);
            s->intervals_from = now - 86400000;
            s->intervals_to = now + 60LL * 86400000;
            cd_sla_intervals(&s->calendar, s->intervals_from, s->intervals_to, &b);
            cd_free(s->intervals);
            s->intervals = b.data;
        }
        return s->intervals;
    }
    return "*";
}

static bool site_has_origin(const cd_conv_site *s, const char *origin)
{
    for (size_t i = 0; i < s->n_origins; i++)
        if (strcmp(s->origins[i], origin) == 0)
            return true;
    return false;
}

bool cd_node_origin_allowed(cd_node *n, const char *origin, const char *site_key)
{
    if (!origin || !*origin)
        return false;
    if (site_key && *site_key) {
        const cd_conv_site *s = cd_session__site(n, site_key);
        return s && site_has_origin(s, origin);
    }
    for (size_t i = 0; i < n->n_sites; i++)
        if (site_has_origin(&n->sites[i], origin))
            return true;
    return false;
}

/* origin is http://HOST or https://HOST (a browser omits a default port in both). */
static bool own_origin(const char *origin, const char *host)
{
    const char *rest = NULL;
    if (strncmp(origin, "http://", 7) == 0)
        rest = origin + 7;
    else if (strncmp(origin, "https://", 8) == 0)
        rest = origin + 8;
    return rest && host && *host && strcasecmp(rest, host) == 0;
}

bool cd_node_agent_origin_allowed(cd_node *n, const char *origin, const char *host)
{
    for (size_t i = 0; i < n->n_agent_origins; i++)
        if (strcmp(n->agent_origins[i], "*") == 0)
            return true;
    if (!origin || !*origin)
        return false;
    if (n->n_agent_origins == 0)
        return own_origin(origin, host);
    for (size_t i = 0; i < n->n_agent_origins; i++)
        if (strcmp(n->agent_origins[i], origin) == 0)
            return true;
    return false;
}

const char *cd_node_intervals(cd_node *n, const char *site_key)
{
    return cd_session__intervals(n, site_key);
}

bool cd_node_ready(const cd_node *n)
{
    return n->keys_ready;
}

const cd_auth_keyring *cd_node_keys(const cd_node *n)
{
    return &n->keys;
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
