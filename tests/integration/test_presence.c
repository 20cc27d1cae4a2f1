/* test_presence.c: presence/'s functions against a real redis-server: presence.set,
 * touch and sweep, each reaching every site of the agent.
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

static void test_presence_to_each_site(void **state)
{
    fx *f = *state;
    res r = {0};
    evlist evs = {0};
    char buf[32];
    const char *sites[] = {"site:" SITE1, "site:" SITE2};
    redisContext *sub = sub_open(f);

    op_hello(f, &r, SITE2, "", NULL);
    expect_ok(&r);
    assert_false(r.agents_online);

    /* no node vouches for the agent yet: the choice is kept, the agent stays offline */
    op_presence(f, &r, AGB.id, "online");
    expect_ok(&r);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{a}:agent:%s status", f->prefix, AGB.id));
    assert_string_equal(buf, "offline");
    sub_collect(f, sub, &evs);
    assert_int_equal(evs.n, 0);

    /* a node vouches: online, announced on each of the agent's sites */
    op_touch(f, &r, "node-a", AGB.id);
    expect_ok(&r);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{a}:agent:%s status", f->prefix, AGB.id));
    assert_string_equal(buf, "online");
    sub_collect(f, sub, &evs);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(ev_count(&evs, sites[i], "presence.updated"), 1);
        const ev *e = ev_find(&evs, sites[i], "presence.updated");
        expect_header(e, 0, "a", "-");
        assert_string_equal(jstr(e->frame, "agent_id"), AGB.id);
        assert_string_equal(jstr(e->frame, "status"), "online");
    }
    ev_clear(&evs);
    op_hello(f, &r, SITE2, "", NULL);
    expect_ok(&r);
    assert_true(r.agents_online);

    /* presence.set: presence.updated to each site of the agent */
    op_presence(f, &r, AGB.id, "away");
    expect_ok(&r);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{a}:agent:%s status", f->prefix, AGB.id));
    assert_string_equal(buf, "away");
    sub_collect(f, sub, &evs);
    assert_int_equal(evs.n, 2);
    for (size_t i = 0; i < 2; i++) {
        const ev *e = ev_find(&evs, sites[i], "presence.updated");
        expect_header(e, 0, "a", "-");
        assert_string_equal(jstr(e->frame, "agent_id"), AGB.id);
        assert_string_equal(jstr(e->frame, "status"), "away");
    }
    ev_clear(&evs);
    op_presence(f, &r, AGB.id, "away"); /* no change, no event */
    expect_ok(&r);
    sub_collect(f, sub, &evs);
    assert_int_equal(evs.n, 0);
    op_hello(f, &r, SITE2, "", NULL);
    expect_ok(&r);
    assert_false(r.agents_online); /* away is not online */

    /* the node's last connection of the agent closed: offline everywhere */
    op_sweep(f, &r, "node-a", AGB.id);
    expect_ok(&r);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{a}:agent:%s status", f->prefix, AGB.id));
    assert_string_equal(buf, "offline");
    sub_collect(f, sub, &evs);
    for (size_t i = 0; i < 2; i++)
        assert_string_equal(jstr(ev_find(&evs, sites[i], "presence.updated")->frame, "status"), "offline");
    ev_clear(&evs);
    redisFree(sub);
    res_clear(&r);
}

int main(void)
{
    if (!it_redis_from_env(&redis_url, &redis_path))
        return 0;

    const struct CMUnitTest tests[] = {
        T(test_presence_to_each_site),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
