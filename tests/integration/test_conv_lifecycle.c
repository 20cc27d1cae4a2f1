/* test_conv_lifecycle.c: conv/'s conversation state changes against a real redis-server:
 * conv_start (queued, indexed, published), conv_accept (first agent wins), conv_update
 * (queue and priority), csat; and the atomicity of every conv/ call (plus presence.set):
 * a refused call writes and publishes nothing.
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

/* ---- conv_start ---- */

static void test_start_queued_indexed_published(void **state)
{
    fx *f = *state;
    res r = {0};
    evlist evs = {0};
    char vid[80], cid[80], cid2[80], chan[128], buf[128], want[32];
    new_visitor(f, SITE1, vid);
    redisContext *sub = sub_open(f);

    op_start(f, &r, SITE1, vid, "first words", CD_PRIO_NONE);
    expect_ok(&r);
    snprintf(cid, sizeof cid, "%s", jstr(r.conv, "id"));
    assert_true(strncmp(cid, "c_", 2) == 0);
    assert_string_equal(jstr(r.conv, "status"), "queued");
    assert_string_equal(jstr(r.conv, "site"), SITE1);
    assert_string_equal(jstr(r.conv, "priority"), "normal");
    assert_string_equal(jstr(r.conv, "subject"), "Need help");
    assert_string_equal(jstr(jget(r.conv, "visitor"), "id"), vid);
    assert_true(json_is_null(jget(r.conv, "assignee")));
    assert_true(strlen(jstr(r.conv, "epoch")) > 0);
    assert_string_equal(r.epoch, jstr(r.conv, "epoch"));
    /* the form message is seq 1 */
    assert_non_null(r.msg);
    assert_int_equal(r.seq, 1);
    assert_int_equal(jint(r.msg, "seq"), 1);
    assert_string_equal(jstr(r.msg, "body"), "first words");
    assert_true(strncmp(jstr(r.msg, "id"), "m_", 2) == 0);
    assert_false(json_is_true(jget(r.msg, "private")));
    assert_string_equal(jstr(jget(r.msg, "author"), "kind"), "visitor");
    assert_string_equal(jstr(jget(r.msg, "author"), "id"), vid);
    /* then the auto-acknowledgement (author kind system) at seq 2 (and, with nobody online, the
     * ticket notice) */
    const long long last = jint(r.conv, "last_seq");
    assert_true(last >= 2);
    assert_int_equal(r.last_seq, last);

    /* stored: last_seq entries 0-1..0-last, the epoch */
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s last_seq", f->prefix, cd_key_cid_site(cid), cid));
    assert_int_equal(atoll(buf), last);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s epoch", f->prefix, cd_key_cid_site(cid), cid));
    assert_string_equal(buf, r.epoch);
    redisReply *x = rx(f, "XRANGE %s{s:%s}:conv:%s:msgs - +", f->prefix, cd_key_cid_site(cid), cid);
    assert_int_equal(x->elements, last);
    for (size_t j = 0; j < x->elements; j++) {
        snprintf(want, sizeof want, "0-%zu", j + 1);
        assert_string_equal(x->element[j]->element[0]->str, want);
    }
    freeReplyObject(x);
    /* indexed */
    assert_true(r_str(f, buf, sizeof buf, "ZSCORE %s{s:%s}:visitor:%s:convs %s", f->prefix, SITE1, vid, cid));
    assert_true(r_str(f, buf, sizeof buf, "ZSCORE %s{s:%s}:convs %s", f->prefix, SITE1, cid));
    assert_true(r_str(f, buf, sizeof buf, "ZSCORE " QUEUE " %s", f->prefix, SITE1, cid));

    /* published: each message on the conversation, in seq order; the queued conversation to
     * the site's agents; the new conversation to the visitor's connections */
    sub_collect(f, sub, &evs);
    snprintf(chan, sizeof chan, "conv:%s", cid);
    assert_int_equal(ev_count(&evs, chan, "message.created"), last);
    const ev *e = ev_find(&evs, chan, "message.created");
    expect_header(e, 1, "*", "-");
    assert_string_equal(jstr(e->frame, "conversation_id"), cid);
    assert_int_equal(jint(jget(e->frame, "message"), "seq"), 1);
    assert_string_equal(jstr(jget(e->frame, "message"), "body"), "first words");
    long long next = 1;
    for (size_t i = 0; i < evs.n; i++)
        if (strcmp(evs.e[i].chan, chan) == 0 && strcmp(ev_type(&evs.e[i]), "message.created") == 0) {
            assert_int_equal(evs.e[i].seq, next);
            assert_int_equal(jint(jget(evs.e[i].frame, "message"), "seq"), next);
            next++;
        }
    assert_int_equal(ev_count(&evs, "site:" SITE1, "conversation.queued"), 1);
    e = ev_find(&evs, "site:" SITE1, "conversation.queued");
    expect_header(e, 0, "a", "-");
    assert_string_equal(jstr(jget(e->frame, "conversation"), "id"), cid);
    assert_string_equal(jstr(jget(e->frame, "conversation"), "status"), "queued");
    snprintf(chan, sizeof chan, "visitor:%s", vid);
    assert_int_equal(ev_count(&evs, chan, "conversation.updated"), 1);
    expect_header(ev_find(&evs, chan, "conversation.updated"), 0, "*", "-");
    assert_int_equal(ev_count(&evs, "site:" SITE2, NULL), 0);
    snprintf(chan, sizeof chan, "conv:%s", cid);
    json_t *ack = jget(ev_nth(&evs, chan, "message.created", 1)->frame, "message");
    assert_int_equal(jint(ack, "seq"), 2);
    assert_string_equal(jstr(jget(ack, "author"), "kind"), "system");
    assert_false(json_is_true(jget(ack, "private")));
    assert_true(strlen(jstr(ack, "body")) > 0);
    /* the waiting visitor learns its position */
    e = ev_find(&evs, chan, "conversation.queue");
    expect_header(e, 0, "*", "-");
    assert_int_equal(jint(e->frame, "position"), 1);
    assert_int_equal(jint(e->frame, "size"), 1);
    ev_clear(&evs);

    /* without a form message: no message, and nothing in the stream from the visitor */
    op_start(f, &r, SITE1, vid, NULL, CD_PRIO_URGENT);
    expect_ok(&r);
    snprintf(cid2, sizeof cid2, "%s", jstr(r.conv, "id"));
    assert_string_equal(jstr(r.conv, "priority"), "urgent");
    assert_null(r.msg);
    const long long last2 = jint(r.conv, "last_seq");
    assert_true(last2 >= 1); /* the acknowledgement is seq 1 */
    assert_int_equal(r_int(f, "XLEN %s{s:%s}:conv:%s:msgs", f->prefix, cd_key_cid_site(cid2), cid2), last2);
    assert_int_equal(r_int(f, "ZCARD " QUEUE, f->prefix, SITE1), 2);
    assert_int_equal(r_int(f, "ZCARD %s{s:%s}:visitor:%s:convs", f->prefix, SITE1, vid), 2);
    /* urgent waits ahead of the older normal conversation */
    redisReply *q = rx(f, "ZRANGE " QUEUE " 0 -1", f->prefix, SITE1);
    assert_int_equal(q->elements, 2);
    assert_string_equal(q->element[0]->str, cid2);
    assert_string_equal(q->element[1]->str, cid);
    freeReplyObject(q);
    sub_collect(f, sub, &evs);
    snprintf(chan, sizeof chan, "conv:%s", cid2);
    assert_int_equal(ev_count(&evs, chan, "message.created"), last2);
    for (size_t i = 0; i < evs.n; i++)
        if (strcmp(evs.e[i].chan, chan) == 0 && strcmp(ev_type(&evs.e[i]), "message.created") == 0)
            assert_string_equal(jstr(jget(jget(evs.e[i].frame, "message"), "author"), "kind"), "system");
    ack = jget(ev_nth(&evs, chan, "message.created", 0)->frame, "message");
    assert_int_equal(jint(ack, "seq"), 1);
    assert_int_equal(ev_count(&evs, "site:" SITE1, "conversation.queued"), 1);
    /* the urgent one moved in front */
    assert_int_equal(jint(ev_find(&evs, chan, "conversation.queue")->frame, "position"), 1);
    snprintf(chan, sizeof chan, "conv:%s", cid);
    assert_int_equal(jint(ev_find(&evs, chan, "conversation.queue")->frame, "position"), 2);
    assert_int_equal(jint(ev_find(&evs, chan, "conversation.queue")->frame, "size"), 2);
    ev_clear(&evs);
    redisFree(sub);
    res_clear(&r);
}

/* ---- atomicity: a refused call writes and publishes nothing ---- */

static void test_refused_calls_write_nothing(void **state)
{
    fx *f = *state;
    res r = {0};
    evlist evs = {0};
    char vid[80], v2[80], cid[80];
    const char *missing = "c_doesnotexist0000000000";
    new_visitor(f, SITE1, vid);
    new_visitor(f, SITE2, v2);
    char cid2[80];
    new_conv(f, SITE2, v2, "start", cid2, NULL); /* v2 has a record: a visitor of site2 */
    new_conv(f, SITE1, vid, "start", cid, NULL);
    const cd_conv_author vis = {"visitor", vid, "", NULL};
    char *before = keys_snapshot(f);
    redisContext *sub = sub_open(f);

    op_send(f, &r, &vis, missing, "m-1", "into the void", false);
    expect_err(&r, CD_ERR_NOT_FOUND);
    op_send(f, &r, &AG1, missing, "m-2", "into the void", true);
    expect_err(&r, CD_ERR_NOT_FOUND);
    assert_int_equal(r_int(f, "EXISTS %s{s:}:conv:%s %s{s:}:conv:%s:msgs %s{s:}:conv:%s:dd0", f->prefix, missing,
                           f->prefix, missing, f->prefix, missing),
                     0);

    /* (a visitor id with no record is an anonymous visitor's first conversation: the id
     * comes from a token the node signed; test_hello_creates_then_returns_same_visitor) */
    /* (a visitor of site2 at site1 is refused by the node: its token names site2; visitor
     * records are per site, so site1's scripts cannot see site2's) */
    op_start(f, &r, "no-such-site", vid, "hello", CD_PRIO_NONE);
    expect_err(&r, CD_ERR_NOT_FOUND);

    op_history(f, &r, &vis, missing, 0, 10);
    expect_err(&r, CD_ERR_NOT_FOUND);
    op_resume(f, &r, &vis, missing, 3, "");
    expect_err(&r, CD_ERR_NOT_FOUND);
    op_read(f, &r, &vis, missing, 3);
    expect_err(&r, CD_ERR_NOT_FOUND);
    op_typing(f, &r, &vis, missing, true);
    expect_err(&r, CD_ERR_NOT_FOUND);
    op_csat(f, &r, vid, missing, 3, "");
    expect_err(&r, CD_ERR_NOT_FOUND);
    op_accept(f, &r, &AG1, missing);
    expect_err(&r, CD_ERR_NOT_FOUND);
    op_update(f, &r, &AG1, missing, "closed", CD_PRIO_NONE);
    expect_err(&r, CD_ERR_NOT_FOUND);
    op_presence(f, &r, "ag_nobody", "online");
    expect_err(&r, CD_ERR_NOT_FOUND);

    char *after = keys_snapshot(f);
    assert_string_equal(after, before);
    assert_int_equal(r_int(f, "ZCARD %s{s:%s}:convs", f->prefix, SITE1), 1);
    assert_int_equal(r_int(f, "ZCARD " QUEUE, f->prefix, SITE1), 1);
    assert_int_equal(r_int(f, "EXISTS %s{s:%s}:visitor:v_nobody00000000000000:convs", f->prefix, SITE1), 0);
    sub_collect(f, sub, &evs);
    assert_int_equal(evs.n, 0);
    free(before);
    free(after);
    redisFree(sub);
    res_clear(&r);
}

/* ---- accept / update ---- */

static void test_accept_first_agent_wins(void **state)
{
    fx *f = *state;
    res r = {0};
    evlist evs = {0};
    char vid[80], cid[80], chan[128], excl[128], join[128], buf[64];
    new_visitor(f, SITE1, vid);
    const long long last = new_conv(f, SITE1, vid, "help", cid, NULL);
    redisContext *sub = sub_open(f);

    op_accept(f, &r, &AG1, cid);
    expect_ok(&r);
    assert_string_equal(jstr(r.conv, "status"), "open");
    assert_string_equal(jstr(jget(r.conv, "assignee"), "id"), AG1.id);
    assert_string_equal(jstr(jget(r.conv, "assignee"), "name"), AG1.name);
    assert_false(r_str(f, buf, sizeof buf, "ZSCORE " QUEUE " %s", f->prefix, SITE1, cid));
    assert_int_equal(r_int(f, "SISMEMBER %s{s:%s}:agent:%s:convs %s", f->prefix, SITE1, AG1.id, cid), 1);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s assignee", f->prefix, cd_key_cid_site(cid), cid));
    assert_string_equal(buf, AG1.id);
    sub_collect(f, sub, &evs);
    snprintf(chan, sizeof chan, "conv:%s", cid);
    snprintf(excl, sizeof excl, "conv:%s", cid);
    snprintf(join, sizeof join, "join:%s:%lld", cid, last);
    const ev *e = ev_find(&evs, chan, "conversation.updated");
    expect_header(e, 0, "*", "-");
    assert_string_equal(jstr(jget(jget(e->frame, "conversation"), "assignee"), "id"), AG1.id);
    expect_header(ev_find(&evs, "site:" SITE1, "conversation.updated"), 0, "a", excl);
    assert_int_equal(ev_count(&evs, "agent:ag_one", "conversation.assigned"), 1);
    e = ev_find(&evs, "agent:ag_one", "conversation.assigned");
    expect_header(e, 0, "a", join);
    assert_string_equal(jstr(jget(e->frame, "conversation"), "id"), cid);
    ev_clear(&evs);

    /* the second agent loses, and nothing changes */
    op_accept(f, &r, &AG2, cid);
    expect_err(&r, CD_ERR_CONFLICT);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s assignee", f->prefix, cd_key_cid_site(cid), cid));
    assert_string_equal(buf, AG1.id);
    assert_int_equal(r_int(f, "EXISTS %s{s:%s}:agent:%s:convs", f->prefix, SITE1, AG2.id), 0);
    /* accepting again is a no-op for the holder */
    op_accept(f, &r, &AG1, cid);
    expect_ok(&r);
    assert_string_equal(jstr(jget(r.conv, "assignee"), "id"), AG1.id);
    sub_collect(f, sub, &evs);
    assert_int_equal(evs.n, 0);

    op_agent_get(f, &r, AG1.id);
    expect_ok(&r);
    assert_int_equal(json_array_size(r.convs), 1);
    assert_string_equal(jstr(json_array_get(r.convs, 0), "id"), cid);

    /* closing removes it from the agent's open set; closed cannot be taken or reopened */
    op_update(f, &r, &AG1, cid, "closed", CD_PRIO_NONE);
    expect_ok(&r);
    assert_string_equal(jstr(r.conv, "status"), "closed");
    assert_int_equal(r_int(f, "SISMEMBER %s{s:%s}:agent:%s:convs %s", f->prefix, SITE1, AG1.id, cid), 0);
    assert_false(r_str(f, buf, sizeof buf, "ZSCORE " QUEUE " %s", f->prefix, SITE1, cid));
    sub_collect(f, sub, &evs);
    assert_string_equal(jstr(jget(ev_find(&evs, chan, "conversation.updated")->frame, "conversation"), "status"),
                        "closed");
    expect_header(ev_find(&evs, "site:" SITE1, "conversation.updated"), 0, "a", excl);
    ev_clear(&evs);
    op_agent_get(f, &r, AG1.id);
    expect_ok(&r);
    assert_int_equal(json_array_size(r.convs), 0);
    op_accept(f, &r, &AG2, cid);
    expect_err(&r, CD_ERR_CONFLICT);
    op_update(f, &r, &AG1, cid, "open", CD_PRIO_NONE);
    expect_err(&r, CD_ERR_CONFLICT);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s status", f->prefix, cd_key_cid_site(cid), cid));
    assert_string_equal(buf, "closed");
    redisFree(sub);
    res_clear(&r);
}

static void test_accept_pipelined_first_wins(void **state)
{
    fx *f = *state;
    res r1 = {0}, r2 = {0};
    char vid[80], cid[80], buf[64];
    new_visitor(f, SITE1, vid);
    new_conv(f, SITE1, vid, "help", cid, NULL);

    /* both in flight before either reply: the first to reach Redis wins */
    token *t1 = tok(&r1), *t2 = tok(&r2);
    assert_int_equal(cd_conv_accept(f->st, &AG2, cid, on_res, t2), 0);
    assert_int_equal(cd_conv_accept(f->st, &AG1, cid, on_res, t1), 0);
    await(f, &r2, t2, 0);
    await(f, &r1, t1, 0);
    expect_ok(&r2);
    expect_err(&r1, CD_ERR_CONFLICT);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s assignee", f->prefix, cd_key_cid_site(cid), cid));
    assert_string_equal(buf, AG2.id);
    assert_int_equal(r_int(f, "SISMEMBER %s{s:%s}:agent:%s:convs %s", f->prefix, SITE1, AG2.id, cid), 1);
    assert_int_equal(r_int(f, "EXISTS %s{s:%s}:agent:%s:convs", f->prefix, SITE1, AG1.id), 0);
    res_clear(&r1);
    res_clear(&r2);
}

static void test_update_queue_and_priority(void **state)
{
    fx *f = *state;
    res r = {0};
    char vid[80], c1[80], c2[80];
    new_visitor(f, SITE1, vid);
    new_conv(f, SITE1, vid, "first", c1, NULL);
    new_conv(f, SITE1, vid, "second", c2, NULL);

    op_update(f, &r, &AG1, c2, "", CD_PRIO_HIGH); /* c2 ahead of the older c1 */
    expect_ok(&r);
    assert_string_equal(jstr(r.conv, "priority"), "high");
    assert_string_equal(jstr(r.conv, "status"), "queued");
    redisReply *q = rx(f, "ZRANGE " QUEUE " 0 -1", f->prefix, SITE1);
    assert_int_equal(q->elements, 2);
    assert_string_equal(q->element[0]->str, c2);
    freeReplyObject(q);

    op_accept(f, &r, &AG1, c2);
    expect_ok(&r);
    assert_int_equal(r_int(f, "ZCARD " QUEUE, f->prefix, SITE1), 1);
    op_update(f, &r, &AG1, c2, "queued", CD_PRIO_NONE); /* the agent lets it go: back to the queue */
    expect_ok(&r);
    assert_string_equal(jstr(r.conv, "status"), "queued");
    assert_true(json_is_null(jget(r.conv, "assignee")));
    assert_int_equal(r_int(f, "SISMEMBER %s{s:%s}:agent:%s:convs %s", f->prefix, SITE1, AG1.id, c2), 0);
    q = rx(f, "ZRANGE " QUEUE " 0 -1", f->prefix, SITE1);
    assert_int_equal(q->elements, 2);
    assert_string_equal(q->element[0]->str, c2);
    freeReplyObject(q);
    op_update(f, &r, &AG1, c2, "resolved", CD_PRIO_NONE);
    expect_ok(&r);
    assert_int_equal(r_int(f, "ZCARD " QUEUE, f->prefix, SITE1), 1);
    res_clear(&r);
}

/* ---- csat ---- */

static void test_csat_after_resolved(void **state)
{
    fx *f = *state;
    res r = {0};
    evlist evs = {0};
    char vid[80], vb[80], cid[80], buf[64], chan[128];
    new_visitor(f, SITE1, vid);
    new_visitor(f, SITE1, vb);
    new_conv(f, SITE1, vid, "hi", cid, NULL);

    op_csat(f, &r, vid, cid, 5, "early"); /* queued */
    expect_err(&r, CD_ERR_CONFLICT);
    assert_int_equal(r_int(f, "HEXISTS %s{s:%s}:conv:%s csat_score", f->prefix, cd_key_cid_site(cid), cid), 0);
    op_accept(f, &r, &AG1, cid);
    expect_ok(&r);
    op_csat(f, &r, vid, cid, 5, "still early"); /* open */
    expect_err(&r, CD_ERR_CONFLICT);
    assert_int_equal(r_int(f, "HEXISTS %s{s:%s}:conv:%s csat_score", f->prefix, cd_key_cid_site(cid), cid), 0);

    op_update(f, &r, &AG1, cid, "resolved", CD_PRIO_NONE);
    expect_ok(&r);
    redisContext *sub = sub_open(f);
    op_csat(f, &r, vb, cid, 1, "not mine");
    expect_err(&r, CD_ERR_NOT_FOUND);
    op_csat(f, &r, vid, cid, 4, "great");
    expect_ok(&r);
    assert_int_equal(jint(jget(r.conv, "csat"), "score"), 4);
    assert_string_equal(jstr(jget(r.conv, "csat"), "comment"), "great");
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s csat_score", f->prefix, cd_key_cid_site(cid), cid));
    assert_string_equal(buf, "4");
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s csat_comment", f->prefix, cd_key_cid_site(cid), cid));
    assert_string_equal(buf, "great");
    sub_collect(f, sub, &evs);
    snprintf(chan, sizeof chan, "conv:%s", cid);
    json_t *conv = jget(ev_find(&evs, chan, "conversation.updated")->frame, "conversation");
    assert_int_equal(jint(jget(conv, "csat"), "score"), 4);
    ev_clear(&evs);

    /* closed conversations can be rated too */
    op_update(f, &r, &AG1, cid, "closed", CD_PRIO_NONE);
    expect_ok(&r);
    op_csat(f, &r, vid, cid, 3, "");
    expect_ok(&r);
    assert_int_equal(jint(jget(r.conv, "csat"), "score"), 3);
    redisFree(sub);
    res_clear(&r);
}

int main(void)
{
    if (!it_redis_from_env(&redis_url, &redis_path))
        return 0;

    const struct CMUnitTest tests[] = {
        T(test_start_queued_indexed_published), T(test_refused_calls_write_nothing), T(test_accept_first_agent_wins),
        T(test_accept_pipelined_first_wins),    T(test_update_queue_and_priority),   T(test_csat_after_resolved),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
