/* The timer kind registry (server/timers): a due member "<kind>|<arg>" reaches exactly
 * the handler registered for its kind, with the zset's site and the member's arg; an
 * unregistered kind or a member without a kind reaches none; a later registration of a
 * kind replaces the earlier one; handler contexts live as long as the registry. No Redis:
 * nothing here polls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chatdesk/timers.h"

typedef struct seen {
    int calls;
    char site[64];
    char arg[128];
} seen;

static void on_kind(void *ud, const char *site, const char *arg)
{
    seen *s = ud;
    s->calls++;
    strncpy(s->site, site, sizeof s->site - 1);
    strncpy(s->arg, arg, sizeof s->arg - 1);
}

static void test_dispatch_by_kind(void **state)
{
    (void)state;
    cd_timers *t = cd_timers_create(NULL, NULL);
    seen a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    cd_timers_register(t, "autoclose", on_kind, &a);
    cd_timers_register(t, "slawarn", on_kind, &b);
    assert_true(cd_timers_fire(t, "demo", "autoclose|c_1.demo"));
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 0);
    assert_string_equal(a.site, "demo");
    assert_string_equal(a.arg, "c_1.demo");
    assert_true(cd_timers_fire(t, "demo", "slawarn|c_2.demo|first_response"));
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_string_equal(b.arg, "c_2.demo|first_response");
    cd_timers_destroy(t);
}

static void test_unknown_kinds_reach_no_handler(void **state)
{
    (void)state;
    cd_timers *t = cd_timers_create(NULL, NULL);
    seen a;
    memset(&a, 0, sizeof a);
    cd_timers_register(t, "slawarn", on_kind, &a);
    assert_false(cd_timers_fire(t, "demo", "slabreach|c_1|resolution")); /* not registered */
    assert_false(cd_timers_fire(t, "demo", "slawarn"));                  /* no '|': no kind */
    assert_false(cd_timers_fire(t, "demo", "slawar|c_1|x"));             /* a prefix is not the kind */
    assert_false(cd_timers_fire(t, "demo", "slawarnx|c_1|x"));
    assert_int_equal(a.calls, 0);
    cd_timers_destroy(t);
}

static void test_second_registration_replaces(void **state)
{
    (void)state;
    cd_timers *t = cd_timers_create(NULL, NULL);
    seen a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    cd_timers_register(t, "rule", on_kind, &a);
    cd_timers_register(t, "rule", on_kind, &b);
    assert_true(cd_timers_fire(t, "s1", "rule|s1|r_1|c_1"));
    assert_int_equal(a.calls, 0);
    assert_int_equal(b.calls, 1);
    assert_string_equal(b.arg, "s1|r_1|c_1");
    cd_timers_destroy(t);
}

static void test_context_is_zeroed_and_owned(void **state)
{
    (void)state;
    cd_timers *t = cd_timers_create(NULL, NULL);
    seen *ctx = cd_timers_context(t, sizeof *ctx);
    assert_non_null(ctx);
    assert_int_equal(ctx->calls, 0);
    cd_timers_register(t, "unanswered", on_kind, ctx);
    assert_true(cd_timers_fire(t, "s2", "unanswered|s2|c_9"));
    assert_int_equal(ctx->calls, 1);
    cd_timers_destroy(t); /* frees ctx (ASan/valgrind would report it otherwise) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch_by_kind),
        cmocka_unit_test(test_unknown_kinds_reach_no_handler),
        cmocka_unit_test(test_second_registration_replaces),
        cmocka_unit_test(test_context_is_zeroed_and_owned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
