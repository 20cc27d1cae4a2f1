/* test_timers_poll.c: the timer poller (server/timers) against a real redis-server. A
 * site whose last claim found nothing sleeps until a "T <site> <due>" notice; a notice
 * that arrives while a claim of its site is in flight must not be lost to that claim's
 * reply, which may have run before the timer was set and so says "nothing due". (Seen in
 * CI: a settings change reloads the site list, every site is claimed at once, and a
 * conversation started meanwhile never got its SLA breach.)
 *
 * The harness (fixture, operations, checks) is scripts_support.h; ctest -L integration
 * runs this program against the fixture's redis-server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <uv.h>

#include "chatdesk/clock.h"
#include "chatdesk/timers.h"
#include "it_support.h"
#include "scripts_support.h"

typedef struct probe {
    int fired;
    char arg[64];
} probe;

static void on_probe(void *ud, const char *site, const char *arg)
{
    probe *p = ud;
    assert_string_equal(site, SITE1);
    p->fired++;
    snprintf(p->arg, sizeof p->arg, "%s", arg);
}

typedef struct poller {
    cd_timers *t;
    probe *p;
    uv_timer_t tick;
} poller;

static void on_tick(uv_timer_t *h)
{
    poller *pl = h->data;
    cd_timers_tick(pl->t, uv_now(h->loop));
}

static bool fired(const void *arg)
{
    return ((const probe *)arg)->fired > 0;
}

/* one claim of SITE1 sent, then `notice` (if any) before its reply; the reply is read */
static cd_timers *claim_with_notice(fx *f, probe *p, bool notice, bool reload)
{
    f->cfg.timer_poll_ms = 50;
    cd_timers *t = cd_timers_create(&f->cfg, f->st);
    cd_timers_register(t, "probe", on_probe, p);
    const char *sites[] = {SITE1};
    cd_timers_set_sites(t, sites, 1);
    cd_timers_tick(t, uv_now(&f->loop) + 1000); /* the claim is queued, not yet sent */
    if (notice) {
        char n[96];
        snprintf(n, sizeof n, "T %s %llu", SITE1, (unsigned long long)cd_now_ms());
        cd_timers_notice(t, n, strlen(n));
    }
    if (reload)
        cd_timers_set_sites(t, sites, 1);
    /* the claim runs in Redis and its reply ("nothing due") comes back: the timer is set
     * only now, as when the claim ran just before the script that set it */
    bool never = false;
    (void)it_run_until(&f->loop, flag_is_set, &never, 300);
    return t;
}

static void poll_for(fx *f, cd_timers *t, probe *p, uint64_t ms)
{
    poller pl = {.t = t, .p = p};
    uv_timer_init(&f->loop, &pl.tick);
    pl.tick.data = &pl;
    uv_timer_start(&pl.tick, on_tick, 10, 10);
    it_run_until(&f->loop, fired, p, ms);
    uv_timer_stop(&pl.tick);
    uv_close((uv_handle_t *)&pl.tick, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void set_timer(fx *f)
{
    r_do(f, "ZADD %s{s:%s}:timers %llu probe|c_1", f->prefix, SITE1, (unsigned long long)cd_now_ms() - 1);
}

/* A notice that overtook a claim of its site: the site is claimed again and fires. */
static void test_notice_during_claim_is_kept(void **state)
{
    fx *f = *state;
    probe p = {0};
    cd_timers *t = claim_with_notice(f, &p, true, false);
    set_timer(f);
    poll_for(f, t, &p, 2000);
    assert_int_equal(p.fired, 1);
    assert_string_equal(p.arg, "c_1");
    cd_timers_destroy(t);
}

/* The same across a site list reload (what a settings change does) in between. */
static void test_notice_during_claim_survives_reload(void **state)
{
    fx *f = *state;
    probe p = {0};
    cd_timers *t = claim_with_notice(f, &p, true, true);
    set_timer(f);
    poll_for(f, t, &p, 2000);
    assert_int_equal(p.fired, 1);
    cd_timers_destroy(t);
}

/* Without a notice the site sleeps after a claim that found nothing: a timer set behind
 * the poller's back (no notice) is not claimed until the next site reload. */
static void test_quiet_site_sleeps_until_reload(void **state)
{
    fx *f = *state;
    probe p = {0};
    cd_timers *t = claim_with_notice(f, &p, false, false);
    set_timer(f);
    poll_for(f, t, &p, 400);
    assert_int_equal(p.fired, 0);
    const char *sites[] = {SITE1};
    cd_timers_set_sites(t, sites, 1);
    poll_for(f, t, &p, 2000);
    assert_int_equal(p.fired, 1);
    cd_timers_destroy(t);
}

int main(void)
{
    if (!it_redis_from_env(&redis_url, &redis_path))
        return 0;

    const struct CMUnitTest tests[] = {
        T(test_notice_during_claim_is_kept),
        T(test_notice_during_claim_survives_reload),
        T(test_quiet_site_sleeps_until_reload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
