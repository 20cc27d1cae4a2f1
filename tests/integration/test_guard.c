/* test_guard.c: the key guard (server/store/lua/_guard.lua) against a real redis-server
 * (ctest -L integration). The guard's text opens a small function library of test
 * functions, exactly as store.c opens the real library with it in CD_KEY_GUARD builds;
 * each function starts with guard_begin(<name>, KEYS). Checked: declared keys pass,
 * keys with a declared key's hash tag pass, anything else fails the call with a
 * "key guard:" error (also for multi-key commands, pcall, and commands the guard has no
 * key positions for), and commands without keys (PUBLISH) pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "chatdesk/base.h"
#include "chatdesk/store.h"

static const char lib_functions[] =
    "local function fn(name, body)\n"
    "  redis.register_function(name, function(KEYS, ARGV) guard_begin(name, KEYS) return body(KEYS, ARGV) end)\n"
    "end\n"
    /* SET each ARGV key */
    "fn('g_set', function(KEYS, ARGV)\n"
    "  for _, k in ipairs(ARGV) do redis.call('SET', k, '1') end\n"
    "  return 'ok'\n"
    "end)\n"
    "fn('g_del', function(KEYS, ARGV) return redis.call('DEL', unpack(ARGV)) end)\n"
    "fn('g_pcall', function(KEYS, ARGV) redis.pcall('GET', ARGV[1]) return 'ok' end)\n"
    "fn('g_pub', function(KEYS, ARGV) redis.call('PUBLISH', ARGV[1], 'x') return 'ok' end)\n"
    "fn('g_unknown', function(KEYS, ARGV) redis.call('SUNIONSTORE', ARGV[1], ARGV[2]) return 'ok' end)\n";

static redisContext *rc;

static int setup(void **state)
{
    (void)state;
    const char *url = getenv("CD_TEST_REDIS");
    if (!url || strncmp(url, "unix:", 5) != 0)
        return -1;
    rc = redisConnectUnix(url + 5);
    if (!rc || rc->err)
        return -1;
    const cd_store_lua_source *guard = NULL;
    for (size_t i = 0; i < cd_store_lua_count; i++)
        if (strcmp(cd_store_lua_sources[i].name, "_guard") == 0)
            guard = &cd_store_lua_sources[i];
    if (!guard)
        return -1;
    cd_buf lib;
    cd_buf_init(&lib);
    cd_buf_append_str(&lib, "#!lua name=guardtest\n");
    cd_buf_append(&lib, guard->src, guard->len);
    cd_buf_append_str(&lib, lib_functions);
    redisReply *r = redisCommand(rc, "FUNCTION LOAD REPLACE %s", lib.data);
    int ok = r && r->type == REDIS_REPLY_STRING;
    if (!ok)
        fprintf(stderr, "FUNCTION LOAD: %s\n", r && r->str ? r->str : "?");
    freeReplyObject(r);
    cd_free(lib.data);
    return ok ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    freeReplyObject(redisCommand(rc, "FUNCTION DELETE guardtest"));
    redisFree(rc);
    return 0;
}

/* FCALL fn with keys and args (NULL-terminated lists); returns the reply. */
static redisReply *fcall(const char *fn, const char *const *keys, const char *const *args)
{
    const char *argv[32];
    char nk[16];
    int n = 0, k = 0;
    argv[n++] = "FCALL";
    argv[n++] = fn;
    while (keys[k])
        k++;
    snprintf(nk, sizeof nk, "%d", k);
    argv[n++] = nk;
    for (int i = 0; keys[i]; i++)
        argv[n++] = keys[i];
    for (int i = 0; args[i]; i++)
        argv[n++] = args[i];
    return redisCommandArgv(rc, n, argv, NULL);
}

static void expect_ok(const char *fn, const char *const *keys, const char *const *args)
{
    redisReply *r = fcall(fn, keys, args);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("%s: unexpected error %s", fn, r->str);
    freeReplyObject(r);
}

static void expect_guard_error(const char *fn, const char *const *keys, const char *const *args, const char *names)
{
    redisReply *r = fcall(fn, keys, args);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->str, "key guard: "));
    assert_non_null(strstr(r->str, names));
    freeReplyObject(r);
}

static void test_declared_keys_pass(void **state)
{
    (void)state;
    expect_ok("g_set", (const char *[]){"gt:a", NULL}, (const char *[]){"gt:a", NULL});
    expect_ok("g_del", (const char *[]){"gt:a", NULL}, (const char *[]){"gt:a", NULL});
    /* keys of one tag may be declared together */
    const char *two[] = {"gt:{a}:x", "gt:{a}:y", NULL};
    expect_ok("g_set", two, (const char *[]){"gt:{a}:x", "gt:{a}:y", NULL});
    expect_ok("g_del", two, (const char *[]){"gt:{a}:x", "gt:{a}:y", NULL});
}

static void test_declared_keys_of_two_slots_fail(void **state)
{
    (void)state;
    /* one call, one slot: two sites, a site and the agent slot, two untagged keys */
    expect_guard_error("g_set", (const char *[]){"gt:{s:one}:site", "gt:{s:two}:site", NULL},
                       (const char *[]){"gt:{s:one}:x", NULL}, "declared keys of more than one slot");
    expect_guard_error("g_set", (const char *[]){"gt:{s:one}:site", "gt:{a}:agent:x", NULL},
                       (const char *[]){"gt:{s:one}:x", NULL}, "gt:{s:one}:site and gt:{a}:agent:x");
    expect_guard_error("g_set", (const char *[]){"gt:a", "gt:b", NULL}, (const char *[]){"gt:a", NULL},
                       "declared keys of more than one slot");
}

static void test_same_tag_passes(void **state)
{
    (void)state;
    /* one declared key of the site: every key with its tag is on the same slot */
    const char *keys[] = {"gt:{s:demo}:site", NULL};
    expect_ok("g_set", keys, (const char *[]){"gt:{s:demo}:conv:c1", "gt:{s:demo}:queue:_", NULL});
    expect_ok("g_del", keys, (const char *[]){"gt:{s:demo}:conv:c1", "gt:{s:demo}:queue:_", NULL});
}

static void test_undeclared_key_fails(void **state)
{
    (void)state;
    const char *keys[] = {"gt:{s:demo}:site", NULL};
    /* another site's tag, a key without a tag, a prefix of the tag */
    expect_guard_error("g_set", keys, (const char *[]){"gt:{s:other}:conv:c1", NULL}, "gt:{s:other}:conv:c1");
    expect_guard_error("g_set", keys, (const char *[]){"gt:agents", NULL}, "g_set touched undeclared key gt:agents");
    expect_guard_error("g_set", keys, (const char *[]){"gt:{s:dem}:x", NULL}, "gt:{s:dem}:x");
    /* an empty tag {} hashes the whole key: it matches no declared tag */
    expect_guard_error("g_set", (const char *[]){"gt:{}:a", NULL}, (const char *[]){"gt:{}:b", NULL}, "gt:{}:b");
    /* every key of a multi-key command is checked; a call stops at the first bad key (what
     * it wrote before stays: Redis does not roll back a failed script) */
    expect_guard_error("g_del", keys, (const char *[]){"gt:{s:demo}:a", "gt:nope", NULL}, "gt:nope");
    expect_guard_error("g_set", keys, (const char *[]){"gt:{s:demo}:first", "gt:nope", NULL}, "gt:nope");
    redisReply *r = redisCommand(rc, "EXISTS gt:{s:demo}:first");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    freeReplyObject(redisCommand(rc, "DEL gt:{s:demo}:first"));
    /* pcall is checked too: the guard's error is not the command's, it is not caught */
    expect_guard_error("g_pcall", keys, (const char *[]){"gt:nope", NULL}, "GET");
}

static void test_unknown_command_and_no_keys(void **state)
{
    (void)state;
    const char *keys[] = {"gt:{s:demo}:site", NULL};
    expect_guard_error("g_unknown", keys, (const char *[]){"gt:{s:demo}:a", "gt:{s:demo}:b", NULL},
                       "SUNIONSTORE, whose key positions");
    expect_ok("g_pub", keys, (const char *[]){"gt:ch:anything", NULL});
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_declared_keys_pass),
        cmocka_unit_test(test_declared_keys_of_two_slots_fail),
        cmocka_unit_test(test_same_tag_passes),
        cmocka_unit_test(test_undeclared_key_fails),
        cmocka_unit_test(test_unknown_command_and_no_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
