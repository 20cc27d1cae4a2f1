/* The automation rules consumer (docs/rules.md). Unlike the plain event pumps it needs C
 * between reading and applying: store/lua/rules.lua "batch" reads the events after the
 * "rules" cursor with what the decision needs, server/rules plans which rules fire, and
 * "apply" runs the plan and moves the cursor only if it is still where the batch found
 * it. Any number of nodes poll; exactly one apply per batch wins. Time triggers are
 * "rule|<site>|<rule id>|<cid>" timers, leased like every timer. */
#include <string.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"
#include "chatdesk/rules.h"
#include "session_int.h"

#define RULES_BATCH CD_EVENT_BATCH

/* rules.lua: batch and apply declare the event stream; the timer modes the leased timers. */
static int rules_call(cd_node *n, const char *key, int nargs, const char *const *args, cd_store_reply_cb cb, void *ud)
{
    cd_key k;
    const char *keys[] = {cd_key_global(&k, cd_store_prefix(n->st), key)};
    return cd_store_fcall(n->st, "rules", 1, keys, nargs, args, NULL, cb, ud);
}

static void rules_run(cd_node *n);

static const char *iv_of(void *ud, const char *site)
{
    return cd_session__intervals(ud, site);
}

static bool has(const char *json, size_t len, const char *needle)
{
    return json && memmem(json, len, needle, strlen(needle)) != NULL;
}

static void on_apply(void *ud, cd_err err, const char *json, size_t len)
{
    cd_node *n = ud;
    n->rules_busy = false;
    if (err != CD_ERR_OK) {
        if (err != CD_ERR_UNAVAILABLE)
            cd_log_warn("rules apply: %s", json ? json : cd_err_name(err));
        return;
    }
    /* applied: there may be more; lost the race: another node applied, read again */
    if (!n->draining && cd_store_up(n->st)) {
        if (has(json, len, "\"applied\":false"))
            cd_log_debug("rules: another node applied this batch");
        rules_run(n);
    }
}

static void on_batch(void *ud, cd_err err, const char *json, size_t len)
{
    cd_node *n = ud;
    if (err != CD_ERR_OK) {
        n->rules_busy = false;
        if (err != CD_ERR_UNAVAILABLE)
            cd_log_warn("rules batch: %s", json ? json : cd_err_name(err));
        return;
    }
    if (!has(json, len, "\"expect\":")) {
        n->rules_busy = false;
        if (has(json, len, "\"more\":true") && !n->draining)
            rules_run(n);
        return;
    }
    char *plan = cd_rules_plan_batch(json, len, iv_of, n);
    if (!plan) {
        n->rules_busy = false;
        cd_log_error("rules: malformed batch");
        return;
    }
    char now[24], retain[24];
    snprintf(now, sizeof now, "%llu", (unsigned long long)cd_now_ms());
    snprintf(retain, sizeof retain, "%lld", (long long)n->cfg->history_retain);
    const char *args[] = {"apply", now, plan, retain};
    if (rules_call(n, "events", 4, args, on_apply, n) != 0)
        n->rules_busy = false;
    cd_free(plan);
}

static void rules_run(cd_node *n)
{
    char now[24], max[24];
    snprintf(now, sizeof now, "%llu", (unsigned long long)cd_now_ms());
    snprintf(max, sizeof max, "%d", RULES_BATCH);
    const char *args[] = {"batch", now, max};
    n->rules_last_poll = cd_mono_ms();
    n->rules_busy = rules_call(n, "events", 3, args, on_batch, n) == 0;
}

void cd_session__rules_poll(cd_node *n, uint64_t now)
{
    if (!n->rules_busy && !n->draining && now - n->rules_last_poll >= (uint64_t)n->cfg->event_poll_ms)
        rules_run(n);
}

/* ---------- time triggers ---------- */

typedef struct rules_timer {
    cd_node *n;
    char site[80];
    char member[256];
} rules_timer;

static void on_timer_done(void *ud, cd_err err, const char *json, size_t len)
{
    rules_timer *t = ud;
    (void)len;
    if (err != CD_ERR_OK && err != CD_ERR_UNAVAILABLE)
        cd_log_warn("rule timer %s: %s", t->member, json ? json : cd_err_name(err));
    cd_free(t);
}

static void on_timer_get(void *ud, cd_err err, const char *json, size_t len)
{
    rules_timer *t = ud;
    if (err != CD_ERR_OK || has(json, len, "\"gone\":true")) {
        on_timer_done(t, err, json, len);
        return;
    }
    uint64_t ms = cd_now_ms();
    char *plan = cd_rules_plan_timer(json, len, (int64_t)ms, cd_session__intervals(t->n, t->site));
    if (!plan) {
        cd_log_error("rule timer %s: malformed reply", t->member);
        cd_free(t);
        return;
    }
    char now[24], retain[24];
    snprintf(now, sizeof now, "%llu", (unsigned long long)ms);
    snprintf(retain, sizeof retain, "%lld", (long long)t->n->cfg->history_retain);
    const char *args[] = {"timer_apply", now, t->member, plan, retain};
    if (rules_call(t->n, "timers:leased", 5, args, on_timer_done, t) != 0)
        cd_free(t); /* the lease runs out and the timer is claimed again */
    cd_free(plan);
}

void cd_session__rules_timer(cd_node *n, const char *site, const char *rule_and_cid)
{
    char rid[128];
    const char *bar = strchr(rule_and_cid, '|');
    if (!bar || (size_t)(bar - rule_and_cid) >= sizeof rid) {
        cd_log_warn("rule timer with a bad member: rule|%s|%s", site, rule_and_cid);
        return;
    }
    memcpy(rid, rule_and_cid, (size_t)(bar - rule_and_cid));
    rid[bar - rule_and_cid] = '\0';
    rules_timer *t = cd_calloc(1, sizeof *t);
    t->n = n;
    cd_strlcpy(t->site, site, sizeof t->site);
    snprintf(t->member, sizeof t->member, "rule|%s|%s", site, rule_and_cid);
    char now[24];
    snprintf(now, sizeof now, "%llu", (unsigned long long)cd_now_ms());
    const char *args[] = {"timer_get", now, site, rid, bar + 1};
    if (rules_call(n, "timers:leased", 5, args, on_timer_get, t) != 0)
        cd_free(t);
}
