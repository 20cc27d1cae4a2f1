/* The node's side of the sites' event consumers (include/chatdesk/events.h says why it
 * works this way). Per site: when its pass is due, whether a call is in flight, and
 * since when this node owes it a pass (lag). The node's cron tick (cd_events_tick, every
 * 100 ms) runs the passes that are due, and does nothing until the earliest is. The
 * Redis side is store/lua/events.lua. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "chatdesk/base.h"
#include "chatdesk/clock.h"
#include "chatdesk/events.h"
#include "chatdesk/log.h"
#include "chatdesk/rules.h"

/* Events per pass: a call holds Redis for its whole batch (20-40 µs per event with every
 * consumer and a rule that reads message text), so a batch stays around a millisecond
 * and does not show in message latency. */
#define EV_BATCH 32
/* How long a pass may hold its site before another node may take over (a node that
 * dies mid-pass delays the site by this much at most). */
#define EV_LEASE_MS 10000

typedef struct ev_site {
    cd_events *ev;
    uint64_t due;   /* mono ms of the next pass; 0 = none scheduled */
    uint64_t since; /* mono ms of the oldest notice not yet caught up with; 0 = none */
    bool busy;      /* a call in flight */
    char key[];
} ev_site;

struct cd_events {
    uv_loop_t *loop;
    const cd_config *cfg;
    cd_store *st;
    cd_hub *hub;
    cd_hub_sub sub; /* "events": "E <site>" notices */
    char owner[128];
    cd_events_intervals_fn iv;
    void *iv_ud;
    cd_map sites;      /* site key -> ev_site */
    uint64_t next_due; /* mono ms of the earliest scheduled pass; 0 = none */
    bool draining, up;
    cd_events_stats stats;
};

static void arm(cd_events *ev, uint64_t due)
{
    if (!ev->next_due || due < ev->next_due)
        ev->next_due = due;
}

static ev_site *site_get(cd_events *ev, const char *key)
{
    size_t len = strlen(key);
    ev_site *s = cd_map_get(&ev->sites, key, len);
    if (!s) {
        s = cd_calloc(1, sizeof *s + len + 1);
        s->ev = ev;
        memcpy(s->key, key, len + 1);
        cd_map_put(&ev->sites, s->key, len, s);
    }
    return s;
}

/* Run site's pass at `due` (or earlier if one is already scheduled earlier). */
static void schedule(ev_site *s, uint64_t due)
{
    if (!s->due || due < s->due)
        s->due = due;
    arm(s->ev, s->due); /* also a pass noted while one ran (cd_events_poll) */
}

/* The end of a pass: caught up, more to do now (a full batch), or events arrived
 * meanwhile (they get the usual wait, so they gather into one batch). */
static void pass_done(ev_site *s, bool more, bool full)
{
    s->busy = false;
    if (s->due) /* a notice came during the pass (cd_events_poll): its pass follows */
        arm(s->ev, s->due);
    uint64_t now = cd_mono_ms();
    if (more)
        schedule(s, full ? now : now + (uint64_t)s->ev->cfg->event_poll_ms);
    else
        s->since = 0;
}

static bool has(const char *json, size_t len, const char *needle)
{
    return json && memmem(json, len, needle, strlen(needle)) != NULL;
}

static bool call_failed(ev_site *s, cd_err err, const char *what, const char *json)
{
    if (err == CD_ERR_OK)
        return false;
    s->busy = false;
    if (err != CD_ERR_UNAVAILABLE)
        cd_log_warn("events %s for site %s: %s", what, s->key, json ? json : cd_err_name(err));
    /* try again later: the notice that brought us here will not come again */
    if (s->ev->up && !s->ev->draining)
        schedule(s, cd_mono_ms() + (uint64_t)s->ev->cfg->event_poll_ms * 4);
    return true;
}

static int events_call(cd_events *ev, const char *site, const char *suffix, int nargs, const char *const *args,
                       cd_store_reply_cb cb, void *ud)
{
    cd_key k;
    const char *keys[] = {cd_key_tagged(&k, cd_store_prefix(ev->st), site, suffix)};
    return cd_store_fcall(ev->st, "events", 1, keys, nargs, args, NULL, cb, ud);
}

static void on_rules_applied(void *ud, cd_err err, const char *json, size_t len)
{
    ev_site *s = ud;
    if (call_failed(s, err, "rules apply", json))
        return;
    if (has(json, len, "\"applied\":false"))
        cd_log_debug("events: site %s moved on before the rules plan was applied", s->key);
    pass_done(s, has(json, len, "\"more\":true"), false);
}

/* The pass read a batch for the rules: plan in C, then apply (which ends the pass). */
static void rules_step(ev_site *s, const char *json, size_t len)
{
    cd_events *ev = s->ev;
    char *plan = cd_rules_plan_batch(json, len, ev->iv, ev->iv_ud);
    if (!plan) {
        cd_log_error("events: malformed rules batch for site %s", s->key);
        s->busy = false; /* the lease runs out; the site is polled again at the next reload */
        return;
    }
    char now[24], retain[24], keep[24];
    snprintf(now, sizeof now, "%llu", (unsigned long long)cd_now_ms());
    snprintf(retain, sizeof retain, "%lld", (long long)ev->cfg->history_retain);
    snprintf(keep, sizeof keep, "%lld", (long long)ev->cfg->events_retain_s * 1000);
    const char *args[] = {"rules_apply", now, plan, retain, ev->owner, keep};
    if (events_call(ev, s->key, "events", 6, args, on_rules_applied, s) != 0)
        s->busy = false;
    cd_free(plan);
}

static void on_run(void *ud, cd_err err, const char *json, size_t len)
{
    ev_site *s = ud;
    cd_events *ev = s->ev;
    if (call_failed(s, err, "pass", json))
        return;
    if (has(json, len, "\"busy\":true")) {
        /* another node holds the site; look again once its lease could have run out */
        ev->stats.busy++;
        s->busy = false;
        s->since = 0;
        schedule(s, cd_mono_ms() + EV_LEASE_MS);
        return;
    }
    if (has(json, len, "\"idle\":true")) { /* another node's pass got there first */
        pass_done(s, false, false);
        return;
    }
    ev->stats.passes++;
    if (has(json, len, "\"expect\":")) {
        rules_step(s, json, len);
        return;
    }
    const char *n = json ? memmem(json, len, "\"n\":", 4) : NULL;
    long applied = n ? strtol(n + 4, NULL, 10) : 0;
    ev->stats.applied += (uint64_t)(applied > 0 ? applied : 0);
    pass_done(s, has(json, len, "\"more\":true"), applied >= EV_BATCH);
}

static void run(ev_site *s)
{
    cd_events *ev = s->ev;
    char now[24], max[24], lease[24], keep[24], rnd[33], delay[24], hist[16];
    snprintf(now, sizeof now, "%llu", (unsigned long long)cd_now_ms());
    snprintf(max, sizeof max, "%d", EV_BATCH);
    snprintf(lease, sizeof lease, "%d", EV_LEASE_MS);
    snprintf(keep, sizeof keep, "%lld", (long long)ev->cfg->events_retain_s * 1000);
    /* the mail the events ask for (_ev_mail.lua): queued only by a node that can send it */
    cd_random_hex(rnd, 16);
    snprintf(delay, sizeof delay, "%lld", (long long)ev->cfg->mail_unread_delay_s * 1000);
    snprintf(hist, sizeof hist, "%lld", (long long)ev->cfg->mail_history);
    const char *from = ev->cfg->smtp_url[0] ? ev->cfg->mail_from : "";
    const char *args[] = {"run", now, max, ev->owner, lease, keep, rnd, from, delay, hist};
    s->due = 0;
    s->busy = events_call(ev, s->key, "events", 10, args, on_run, s) == 0;
}

/* The cron tick: once the earliest pass is due, run every site whose pass is due and
 * note when the next one is. */
void cd_events_tick(cd_events *ev, uint64_t now)
{
    if (!ev->next_due || now < ev->next_due || !ev->up || ev->draining)
        return;
    ev->next_due = 0;
    uint64_t next = 0;
    size_t it;
    for (cd_map_entry *e = cd_map_first(&ev->sites, &it); e; e = cd_map_next(&ev->sites, e, &it)) {
        ev_site *s = e->value;
        if (!s->due || s->busy)
            continue;
        if (s->due <= now)
            run(s);
        else if (!next || s->due < next)
            next = s->due;
    }
    if (next)
        arm(ev, next);
}

void cd_events_poll(cd_events *ev, const char *site)
{
    if (!site || !site[0])
        return;
    ev_site *s = site_get(ev, site);
    uint64_t now = cd_mono_ms();
    if (!s->since)
        s->since = now;
    if (s->busy) {
        /* a pass is running: make sure another follows it (the notice may be about
         * events that pass does not see) */
        if (!s->due)
            s->due = now + (uint64_t)ev->cfg->event_poll_ms;
        return;
    }
    schedule(s, now + (uint64_t)ev->cfg->event_poll_ms);
}

/* "E <site>" on the events channel (emit in _common.lua). */
static void on_notice(cd_hub_sub *sub, const cd_hub_event *hev)
{
    cd_events *ev = CD_CONTAINER_OF(sub, cd_events, sub);
    const char *p = hev->frame->data;
    size_t len = hev->frame->len;
    char site[128];
    if (len < 3 || len - 2 >= sizeof site || p[0] != 'E' || p[1] != ' ')
        return;
    memcpy(site, p + 2, len - 2);
    site[len - 2] = '\0';
    cd_events_poll(ev, site);
}

cd_events *cd_events_create(uv_loop_t *loop, const cd_config *cfg, cd_store *st, cd_hub *hub, const char *owner,
                            cd_events_intervals_fn intervals, void *ud)
{
    cd_events *ev = cd_calloc(1, sizeof *ev);
    ev->loop = loop;
    ev->cfg = cfg;
    ev->st = st;
    ev->hub = hub;
    ev->iv = intervals;
    ev->iv_ud = ud;
    cd_strlcpy(ev->owner, owner, sizeof ev->owner);
    cd_map_init(&ev->sites);
    cd_hub_join(hub, &ev->sub, "events", on_notice);
    return ev;
}

void cd_events_destroy(cd_events *ev)
{
    if (!ev)
        return;
    cd_hub_leave(ev->hub, &ev->sub);
    size_t it;
    for (cd_map_entry *e = cd_map_first(&ev->sites, &it); e; e = cd_map_next(&ev->sites, e, &it))
        cd_free(e->value);
    cd_map_cleanup(&ev->sites);
    cd_free(ev);
}

void cd_events_on_store(cd_events *ev, bool up)
{
    ev->up = up;
    if (up)
        return;
    size_t it;
    for (cd_map_entry *e = cd_map_first(&ev->sites, &it); e; e = cd_map_next(&ev->sites, e, &it)) {
        ev_site *s = e->value;
        s->busy = false;
    }
}

void cd_events_set_draining(cd_events *ev)
{
    ev->draining = true;
}

void cd_events_get_stats(const cd_events *ev, cd_events_stats *out)
{
    *out = ev->stats;
    out->pending = 0;
    out->lag_ms = 0;
    uint64_t now = cd_mono_ms();
    size_t it;
    for (cd_map_entry *e = cd_map_first(&ev->sites, &it); e; e = cd_map_next(&ev->sites, e, &it)) {
        const ev_site *s = e->value;
        if (s->due || s->busy)
            out->pending++;
        if (s->since && now > s->since && now - s->since > out->lag_ms)
            out->lag_ms = now - s->since;
    }
}

/* ---------- time triggers of automation rules ---------- */

typedef struct rule_timer {
    cd_events *ev;
    char site[80];
    char member[256];
} rule_timer;

static void on_timer_done(void *ud, cd_err err, const char *json, size_t len)
{
    rule_timer *t = ud;
    (void)len;
    if (err != CD_ERR_OK && err != CD_ERR_UNAVAILABLE)
        cd_log_warn("rule timer %s: %s", t->member, json ? json : cd_err_name(err));
    cd_free(t);
}

static void on_timer_get(void *ud, cd_err err, const char *json, size_t len)
{
    rule_timer *t = ud;
    if (err != CD_ERR_OK || has(json, len, "\"gone\":true")) {
        on_timer_done(t, err, json, len);
        return;
    }
    uint64_t ms = cd_now_ms();
    char *plan = cd_rules_plan_timer(json, len, (int64_t)ms, t->ev->iv(t->ev->iv_ud, t->site));
    if (!plan) {
        cd_log_error("rule timer %s: malformed reply", t->member);
        cd_free(t);
        return;
    }
    char now[24], retain[24];
    snprintf(now, sizeof now, "%llu", (unsigned long long)ms);
    snprintf(retain, sizeof retain, "%lld", (long long)t->ev->cfg->history_retain);
    const char *args[] = {"rule_timer_apply", now, t->member, plan, retain};
    if (events_call(t->ev, t->site, "timers:leased", 5, args, on_timer_done, t) != 0)
        cd_free(t); /* the lease runs out and the timer is claimed again */
    cd_free(plan);
}

void cd_events_rule_timer(cd_events *ev, const char *site, const char *rule_and_cid)
{
    char rid[128];
    const char *bar = strchr(rule_and_cid, '|');
    if (!bar || (size_t)(bar - rule_and_cid) >= sizeof rid) {
        cd_log_warn("rule timer with a bad member: rule|%s|%s", site, rule_and_cid);
        return;
    }
    memcpy(rid, rule_and_cid, (size_t)(bar - rule_and_cid));
    rid[bar - rule_and_cid] = '\0';
    rule_timer *t = cd_calloc(1, sizeof *t);
    t->ev = ev;
    cd_strlcpy(t->site, site, sizeof t->site);
    snprintf(t->member, sizeof t->member, "rule|%s|%s", site, rule_and_cid);
    char now[24];
    snprintf(now, sizeof now, "%llu", (unsigned long long)cd_now_ms());
    const char *args[] = {"rule_timer_get", now, site, rid, bar + 1};
    if (events_call(ev, site, "timers:leased", 5, args, on_timer_get, t) != 0)
        cd_free(t);
}
