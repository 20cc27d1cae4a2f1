/* redis+cluster://'s pure parts (server/store/cluster.c): key slots as Redis computes
 * them (values from CLUSTER KEYSLOT of redis-server 7), MOVED / ASK parsing, the
 * slot map built from a CLUSTER SLOTS reply, and a site's shard channels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../server/store/store_int.h"

static void test_slots_match_redis(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        int slot;
    } cases[] = {
        {"somekey", 11058},  {"foo{hash_tag}", 2515}, {"cd:{s:shop}:conv:c_1.shop", 4060},
        {"cd:sites", 14733}, {"{}x", 10595}, /* an empty tag: the whole key */
        {"a{}b{c}", 7353},                   /* only the first '{' counts */
        {"x{y", 2740},                       /* no closing brace: the whole key */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(cd_cluster_slot(cases[i].key, strlen(cases[i].key)), cases[i].slot);
    /* every key of a site shares its slot */
    const char *a = "cd:{s:shop}:events", *b = "cd:{s:shop}:agent:a_1:active";
    assert_int_equal(cd_cluster_slot(a, strlen(a)), cd_cluster_slot(b, strlen(b)));
}

static void test_redirects(void **state)
{
    (void)state;
    cd_cluster_redir r;
    assert_int_equal(cd_cluster_redirect("MOVED 3999 127.0.0.1:6381", &r), 0);
    assert_false(r.ask);
    assert_int_equal(r.slot, 3999);
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(r.port, 6381);
    assert_int_equal(cd_cluster_redirect("ASK 16383 ::1:7000", &r), 0);
    assert_true(r.ask);
    assert_int_equal(r.slot, 16383);
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.port, 7000);
    static const char *const bad[] = {"ERR wrong",       "MOVED",           "MOVED x 1.2.3.4:5",
                                      "MOVED 16384 h:1", "MOVED 1 h",       "MOVED 1 :7000",
                                      "MOVED 1 h:0",     "MOVED 1 h:70000", "MOVED 1 h:1x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(cd_cluster_redirect(bad[i], &r), -1);
}

/* ---- a CLUSTER SLOTS reply built by hand ---- */
static redisReply *r_int(long long v)
{
    redisReply *r = test_calloc(1, sizeof *r);
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}
static redisReply *r_str(const char *s)
{
    redisReply *r = test_calloc(1, sizeof *r);
    r->type = REDIS_REPLY_STRING;
    r->str = (char *)s;
    r->len = strlen(s);
    return r;
}
static redisReply *r_arr(size_t n, redisReply **el)
{
    redisReply *r = test_calloc(1, sizeof *r);
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = test_calloc(n, sizeof *el);
    memcpy(r->element, el, n * sizeof *el);
    return r;
}
static void r_free(redisReply *r)
{
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++)
            r_free(r->element[i]);
        test_free(r->element);
    }
    test_free(r);
}
static redisReply *range(long long lo, long long hi, const char *host, long long port)
{
    redisReply *node[] = {r_str(host), r_int(port), r_str("id")};
    redisReply *replica[] = {r_str(host), r_int(port + 100), r_str("rid")};
    redisReply *el[] = {r_int(lo), r_int(hi), r_arr(3, node), r_arr(3, replica)};
    return r_arr(4, el);
}

static char added[8][32];
static int nadded;
static int add(void *ud, const char *host, int port)
{
    (void)ud;
    char name[32];
    snprintf(name, sizeof name, "%s:%d", host, port);
    for (int i = 0; i < nadded; i++)
        if (strcmp(added[i], name) == 0)
            return i;
    strcpy(added[nadded], name);
    return nadded++;
}

static void test_slot_map(void **state)
{
    (void)state;
    static uint16_t slots[CD_CLUSTER_SLOTS];
    redisReply *el[] = {range(0, 5460, "127.0.0.1", 7000), range(5461, 10922, "127.0.0.1", 7001),
                        range(10923, 16383, "127.0.0.1", 7002)};
    redisReply *r = r_arr(3, el);
    nadded = 0;
    assert_int_equal(cd_cluster_parse_slots(r, slots, add, NULL), CD_CLUSTER_SLOTS);
    assert_int_equal(nadded, 3);
    assert_string_equal(added[slots[0]], "127.0.0.1:7000");
    assert_string_equal(added[slots[5461]], "127.0.0.1:7001");
    assert_string_equal(added[slots[16383]], "127.0.0.1:7002");
    r_free(r);
    /* a map with a hole: the slots covered, the hole has no node */
    redisReply *el2[] = {range(0, 99, "h", 1)};
    r = r_arr(1, el2);
    assert_int_equal(cd_cluster_parse_slots(r, slots, add, NULL), 100);
    assert_int_equal(slots[100], CD_CLUSTER_NO_NODE);
    r_free(r);
    /* malformed: a range out of bounds, not an array */
    redisReply *el3[] = {range(10, 16384, "h", 1)};
    r = r_arr(1, el3);
    assert_int_equal(cd_cluster_parse_slots(r, slots, add, NULL), -1);
    r_free(r);
    r = r_int(1);
    assert_int_equal(cd_cluster_parse_slots(r, slots, add, NULL), -1);
    r_free(r);
}

/* The bus's shard channel names must be the ones publish() in _common.lua SPUBLISHes:
 * the site from site:<site>, or from a conversation id's ".<site>" tail (cid_site). */
static void test_shard_channels(void **state)
{
    (void)state;
    static const struct {
        const char *ch, *site; /* site NULL: a plain channel */
    } cases[] = {
        {"site:shop", "shop"},
        {"conv:c_1a.shop", "shop"},
        {"conv:c.x.my-site_2", "my-site_2"}, /* the last '.' */
        {"conv:.shop", "shop"},
        {"conv:c_1", NULL},      /* an id of the previous release: no site in it */
        {"conv:c_1.", NULL},     /* nothing after the '.' */
        {"conv:c_1.sh!p", NULL}, /* not a site key after the last '.' */
        {"agent:a_1", NULL},
        {"visitor:v_1.shop", NULL},
        {"sites", NULL},
        {"site:", NULL},
        {"conv:", NULL},
    };
    char out[128], want[128], key[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = cd_store_shard_channel("cd:", cases[i].ch, strlen(cases[i].ch), out, sizeof out);
        if (!cases[i].site) {
            assert_int_equal(n, 0);
            continue;
        }
        snprintf(want, sizeof want, "cd:{s:%s}:ch:%s", cases[i].site, cases[i].ch);
        assert_int_equal(n, strlen(want));
        assert_string_equal(out, want);
        /* the channel is in the slot of the site's keys (SPUBLISH runs in the site's call) */
        int kn = snprintf(key, sizeof key, "cd:{s:%s}:site", cases[i].site);
        assert_int_equal(cd_cluster_slot(out, n), cd_cluster_slot(key, (size_t)kn));
    }
    /* too small a buffer: 0, not a cut name */
    assert_int_equal(cd_store_shard_channel("cd:", "site:shop", 9, out, 10), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_match_redis),
        cmocka_unit_test(test_redirects),
        cmocka_unit_test(test_slot_map),
        cmocka_unit_test(test_shard_channels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
