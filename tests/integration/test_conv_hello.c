/* test_conv_hello.c: conv/'s visitor_hello against a real redis-server: a visitor made or
 * found again, unknown sites and other sites' visitors refused, identified users mapped to
 * one visitor (invariant 9: an anonymous hello writes nothing).
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

#include "chatdesk/conv.h"
#include "it_support.h"
#include "scripts_support.h"

/* ---- visitor_hello ---- */

static void test_hello_creates_then_returns_same_visitor(void **state)
{
    fx *f = *state;
    res r = {0};
    char vid[80], cid[80], buf[128];

    /* an anonymous hello writes nothing (invariant 9): no key until a conversation */
    char *before = keys_snapshot(f);
    op_hello(f, &r, SITE1, "", NULL);
    expect_ok(&r);
    snprintf(vid, sizeof vid, "%s", r.visitor_id);
    assert_true(strncmp(vid, "v_", 2) == 0);
    assert_string_equal(jstr(r.visitor, "id"), vid);
    assert_true(json_is_null(jget(r.visitor, "user_id")));
    assert_int_equal(json_array_size(r.convs), 0);
    assert_false(r.agents_online);
    char *after = keys_snapshot(f);
    assert_string_equal(after, before);
    free(before);
    free(after);
    /* the same visitor again (its token's id): still nothing */
    op_hello(f, &r, SITE1, vid, NULL);
    expect_ok(&r);
    assert_string_equal(r.visitor_id, vid);
    assert_false(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:visitor:%s site", f->prefix, SITE1, vid));

    /* the first conversation writes the record */
    int64_t last = new_conv(f, SITE1, vid, "hi there", cid, NULL);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:visitor:%s site", f->prefix, SITE1, vid));
    assert_string_equal(buf, SITE1);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:visitor:%s id", f->prefix, SITE1, vid));
    assert_string_equal(buf, vid);

    op_hello(f, &r, SITE1, vid, NULL);
    expect_ok(&r);
    assert_string_equal(r.visitor_id, vid);
    assert_int_equal(json_array_size(r.convs), 1);
    json_t *c = json_array_get(r.convs, 0);
    assert_string_equal(jstr(c, "id"), cid);
    assert_string_equal(jstr(c, "status"), "queued");
    assert_int_equal(jint(c, "last_seq"), last);

    /* a hello without a token is a new visitor */
    op_hello(f, &r, SITE1, "", NULL);
    expect_ok(&r);
    assert_string_not_equal(r.visitor_id, vid);
    assert_int_equal(json_array_size(r.convs), 0);
    res_clear(&r);
}

static void test_hello_unknown_site_unauthorized(void **state)
{
    fx *f = *state;
    res r = {0};
    char *before = keys_snapshot(f);

    op_hello(f, &r, "no-such-site", "", NULL);
    expect_err(&r, CD_ERR_UNAUTHORIZED);
    op_hello(f, &r, "no-such-site", "", "user-1");
    expect_err(&r, CD_ERR_UNAUTHORIZED);

    char *after = keys_snapshot(f);
    assert_string_equal(after, before);
    free(before);
    free(after);
    res_clear(&r);
}

static void test_hello_vid_of_other_site_unauthorized(void **state)
{
    fx *f = *state;
    res r = {0};
    char vid[80], buf[64], cid[80];
    new_visitor(f, SITE1, vid);
    new_conv(f, SITE1, vid, "a record exists from the first conversation on", cid, NULL);
    char *before = keys_snapshot(f);

    /* visitor records are per site (docs/keyspace.md): site 2 has none for this id, so the
     * hello is an anonymous one that sees nothing of site 1 and writes nothing (the node
     * refuses a token of another site before it gets here) */
    op_hello(f, &r, SITE2, vid, NULL);
    expect_ok(&r);
    assert_int_equal(json_array_size(r.convs), 0);

    char *after = keys_snapshot(f);
    assert_string_equal(after, before);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:visitor:%s site", f->prefix, SITE1, vid));
    assert_string_equal(buf, SITE1);
    free(before);
    free(after);
    res_clear(&r);
}

static void test_hello_identified_user_one_visitor(void **state)
{
    fx *f = *state;
    res r = {0};
    char anon[80], user[80], buf[128], cid[80];
    new_visitor(f, SITE1, anon);

    /* the anonymous token's visitor is never taken over by the user */
    op_hello(f, &r, SITE1, anon, "user-42");
    expect_ok(&r);
    snprintf(user, sizeof user, "%s", r.visitor_id);
    assert_string_not_equal(user, anon);
    assert_string_equal(jstr(r.visitor, "user_id"), "user-42");
    assert_true(r_str(f, buf, sizeof buf, "GET %s{s:%s}:user:user-42", f->prefix, SITE1));
    assert_string_equal(buf, user);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:visitor:%s user_id", f->prefix, SITE1, user));
    assert_string_equal(buf, "user-42");
    r_str(f, buf, sizeof buf, "HGET %s{s:%s}:visitor:%s user_id", f->prefix, SITE1, anon);
    assert_string_equal(buf, "");

    new_conv(f, SITE1, user, "from the user", cid, NULL);

    /* the same user from every token (or none): the same visitor, with its conversations */
    const char *tokens[] = {anon, "", user};
    for (size_t i = 0; i < CD_ARRAY_LEN(tokens); i++) {
        op_hello(f, &r, SITE1, tokens[i], "user-42");
        expect_ok(&r);
        assert_string_equal(r.visitor_id, user);
        assert_int_equal(json_array_size(r.convs), 1);
        assert_string_equal(jstr(json_array_get(r.convs, 0), "id"), cid);
    }

    /* the anonymous token alone is still the anonymous visitor, without the user's conversations */
    op_hello(f, &r, SITE1, anon, NULL);
    expect_ok(&r);
    assert_string_equal(r.visitor_id, anon);
    assert_int_equal(json_array_size(r.convs), 0);

    /* another user on the user's token: another visitor */
    op_hello(f, &r, SITE1, user, "user-43");
    expect_ok(&r);
    assert_string_not_equal(r.visitor_id, user);
    assert_string_not_equal(r.visitor_id, anon);

    /* the same user id on another site: another visitor */
    op_hello(f, &r, SITE2, "", "user-42");
    expect_ok(&r);
    assert_string_not_equal(r.visitor_id, user);
    res_clear(&r);
}

int main(void)
{
    if (!it_redis_from_env(&redis_url, &redis_path))
        return 0;

    const struct CMUnitTest tests[] = {
        T(test_hello_creates_then_returns_same_visitor),
        T(test_hello_unknown_site_unauthorized),
        T(test_hello_vid_of_other_site_unauthorized),
        T(test_hello_identified_user_one_visitor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
