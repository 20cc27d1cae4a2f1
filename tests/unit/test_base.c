/* base: token bucket, map, buffer, ids, error names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chatdesk/base.h"

static void test_ratelimit_burst_then_rate(void **state)
{
    (void)state;
    cd_ratelimit rl;
    cd_ratelimit_init(&rl, 5.0, 10.0, 1000);
    int taken = 0;
    for (int i = 0; i < 50; i++)
        taken += cd_ratelimit_take(&rl, 1000);
    assert_int_equal(taken, 10);                /* the burst, no more */
    assert_false(cd_ratelimit_take(&rl, 1100)); /* 0.5 token after 100 ms */
    assert_true(cd_ratelimit_take(&rl, 1200));  /* 1 token after 200 ms */
    assert_false(cd_ratelimit_take(&rl, 1200));
    /* a long pause refills to the burst, never above */
    taken = 0;
    for (int i = 0; i < 50; i++)
        taken += cd_ratelimit_take(&rl, 100000);
    assert_int_equal(taken, 10);
    /* time going backwards never adds tokens */
    assert_false(cd_ratelimit_take(&rl, 50000));
    /* peek refills and tells, and takes nothing */
    assert_false(cd_ratelimit_peek(&rl, 100100));
    assert_true(cd_ratelimit_peek(&rl, 100200));
    assert_true(cd_ratelimit_peek(&rl, 100200));
    assert_true(cd_ratelimit_take(&rl, 100200));
    assert_false(cd_ratelimit_peek(&rl, 100200));
}

static void test_map(void **state)
{
    (void)state;
    cd_map m;
    cd_map_init(&m);
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        cd_map_put(&m, key, strlen(key), (void *)(intptr_t)(i + 1));
    }
    assert_int_equal(m.count, 1000);
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal((intptr_t)cd_map_get(&m, key, strlen(key)), i + 1);
    }
    assert_null(cd_map_get(&m, "nope", 4));
    cd_map_put(&m, "k5", 2, (void *)(intptr_t)77);
    assert_int_equal(m.count, 1000);
    assert_int_equal((intptr_t)cd_map_get(&m, "k5", 2), 77);
    for (int i = 0; i < 1000; i += 2) {
        snprintf(key, sizeof key, "k%d", i);
        assert_non_null(cd_map_del(&m, key, strlen(key)));
    }
    assert_int_equal(m.count, 500);
    size_t it, n = 0;
    for (cd_map_entry *e = cd_map_first(&m, &it); e; e = cd_map_next(&m, e, &it)) {
        assert_true(atoi(e->key + 1) % 2 == 1);
        n++;
    }
    assert_int_equal(n, 500);
    assert_null(cd_map_del(&m, "k0", 2));
    cd_map_cleanup(&m);
}

static void test_buf(void **state)
{
    (void)state;
    cd_buf b;
    cd_buf_init(&b);
    cd_buf_append_str(&b, "abc");
    cd_buf_printf(&b, "-%d-%s", 42, "x");
    assert_string_equal(b.data, "abc-42-x");
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cd_buf_printf(&b, "%s", big);
    assert_int_equal(b.len, 8 + 999);
    assert_int_equal(b.data[b.len], '\0');
    cd_buf_reset(&b);
    assert_int_equal(b.len, 0);
    cd_buf_cleanup(&b);
}

static void test_ids(void **state)
{
    (void)state;
    char a[64], b[64], hex[65];
    cd_id_new("c", a, sizeof a);
    cd_id_new("c", b, sizeof b);
    assert_int_equal(strlen(a), 24);
    assert_memory_equal(a, "c_", 2);
    assert_string_not_equal(a, b);
    for (const char *p = a + 2; *p; p++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
    cd_random_hex(hex, 32);
    assert_int_equal(strlen(hex), 64);
    assert_int_equal(strspn(hex, "0123456789abcdef"), 64);
}

static void test_err_names(void **state)
{
    (void)state;
    assert_string_equal(cd_err_name(CD_ERR_BAD_REQUEST), "bad_request");
    assert_string_equal(cd_err_name(CD_ERR_UNAVAILABLE), "unavailable");
    assert_int_equal(cd_err_from_name("rate_limited"), CD_ERR_RATE_LIMITED);
    assert_int_equal(cd_err_from_name("nonsense"), CD_ERR_INTERNAL);
    assert_string_equal(cd_err_name((cd_err)999), "internal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_ratelimit_burst_then_rate), cmocka_unit_test(test_map),
                                       cmocka_unit_test(test_buf), cmocka_unit_test(test_ids),
                                       cmocka_unit_test(test_err_names)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
