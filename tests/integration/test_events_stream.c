/* test_events_stream.c: the site event stream that events/ consumes, against a real
 * redis-server: each state change appends its business event in the same call, in
 * order, saying who caused it (docs/keyspace.md "Events").
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

#include "chatdesk/base.h"
#include "it_support.h"
#include "scripts_support.h"

/* The event stream (docs/keyspace.md "Events"): each state change appends its business
 * event in the same script, in order, saying who caused it. */
typedef struct stream_ev {
    char type[48], site[32], cid[80], by[96];
    json_t *d;
} stream_ev;

static size_t read_events(fx *f, stream_ev *out, size_t max)
{
    redisReply *rep = rx(f, "XRANGE %s{s:%s}:events - +", f->prefix, SITE1);
    size_t n = 0;
    for (size_t i = 0; i < rep->elements && n < max; i++) {
        redisReply *fields = rep->element[i]->element[1];
        stream_ev *e = &out[n++];
        memset(e, 0, sizeof *e);
        for (size_t k = 0; k + 1 < fields->elements; k += 2) {
            const char *name = fields->element[k]->str, *v = fields->element[k + 1]->str;
            if (strcmp(name, "t") == 0)
                snprintf(e->type, sizeof e->type, "%s", v);
            else if (strcmp(name, "s") == 0)
                snprintf(e->site, sizeof e->site, "%s", v);
            else if (strcmp(name, "c") == 0)
                snprintf(e->cid, sizeof e->cid, "%s", v);
            else if (strcmp(name, "by") == 0)
                snprintf(e->by, sizeof e->by, "%s", v);
            else if (strcmp(name, "d") == 0)
                e->d = json_loads(v, 0, NULL);
        }
        assert_non_null(e->d);
    }
    freeReplyObject(rep);
    return n;
}

static void test_event_stream(void **state)
{
    fx *f = *state;
    res r = {0};
    char vid[80], cid[80], by[96];
    stream_ev evs[32];
    new_visitor(f, SITE1, vid);
    new_conv(f, SITE1, vid, "my printer is on fire", cid, NULL);
    op_accept(f, &r, &AG1, cid);
    expect_ok(&r);
    op_send(f, &r, &AG1, cid, "a1", "hello", false);
    expect_ok(&r);
    size_t n = read_events(f, evs, 32);
    /* created, the visitor's message, the acknowledgement, a ticket (nobody online) and its
     * message, then the accept and the reply */
    const char *want[] = {"conversation.created",  "message.created", "message.created",
                          "ticket.created",        "message.created", "conversation.status_changed",
                          "conversation.assigned", "message.created", "conversation.status_changed"};
    assert_int_equal(n, CD_ARRAY_LEN(want));
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(evs[i].type, want[i]);
        assert_string_equal(evs[i].site, SITE1);
        assert_string_equal(evs[i].cid, cid);
    }
    snprintf(by, sizeof by, "visitor:%s", vid);
    assert_string_equal(evs[0].by, by);
    assert_string_equal(jstr(jget(evs[0].d, "visitor"), "id"), vid);
    assert_string_equal(jstr(evs[0].d, "priority"), "normal");
    /* a message event carries ids, not the body (consumers read it by seq: event_data) */
    assert_null(json_object_get(evs[1].d, "body"));
    assert_int_equal(json_integer_value(jget(evs[1].d, "seq")), 1);
    assert_string_equal(jstr(jget(evs[1].d, "author"), "kind"), "visitor");
    assert_string_equal(jstr(jget(evs[2].d, "author"), "kind"), "system");
    assert_int_equal(json_integer_value(jget(evs[3].d, "number")), 1000);
    assert_string_equal(evs[5].by, "agent:ag_one");
    assert_string_equal(jstr(evs[5].d, "from"), "queued");
    assert_string_equal(jstr(evs[5].d, "to"), "open");
    assert_string_equal(jstr(evs[6].d, "agent"), "ag_one");
    assert_true(json_is_integer(jget(evs[6].d, "wait_ms")) && json_integer_value(jget(evs[6].d, "wait_ms")) >= 0);
    assert_string_equal(jstr(jget(evs[7].d, "author"), "id"), "ag_one");
    assert_false(json_is_true(jget(evs[7].d, "private")));
    assert_string_equal(jstr(evs[8].d, "to"), "pending");
    for (size_t i = 0; i < n; i++)
        json_decref(evs[i].d);
    res_clear(&r);
}

int main(void)
{
    if (!it_redis_from_env(&redis_url, &redis_path))
        return 0;

    const struct CMUnitTest tests[] = {
        T(test_event_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
