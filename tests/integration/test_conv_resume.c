/* test_conv_resume.c: conv/'s resume against a real redis-server: missing frames
 * recovered, a new epoch after lost data, trimmed history, the resume maximum.
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

/* ---- resume ---- */

static void test_resume_recovers_missing_frames(void **state)
{
    fx *f = *state;
    res r = {0};
    char vid[80], cid[80], ep[80], list[256], want[256], buf[80];
    int64_t p;
    new_visitor(f, SITE1, vid);
    const int64_t last = make_conv(f, vid, cid, ep, &p);
    const cd_conv_author vis = {"visitor", vid, "", NULL};

    op_resume(f, &r, &vis, cid, p, ep);
    expect_ok(&r);
    assert_true(r.recovered);
    assert_int_equal(r.last_seq, last);
    assert_string_equal(r.epoch, ep);
    seq_list(r.frames, true, list, sizeof list);
    range_list(want, sizeof want, p + 1, last, NULL, 0);
    assert_string_equal(list, want);
    assert_string_equal(jstr(json_array_get(r.frames, 0), "conversation_id"), cid);

    op_resume(f, &r, &AG1, cid, p - 2, ep); /* agents get the private note */
    expect_ok(&r);
    assert_true(r.recovered);
    seq_list(r.frames, true, list, sizeof list);
    range_list(want, sizeof want, p - 1, last, NULL, 0);
    assert_string_equal(list, want);
    assert_int_equal(count_private(r.frames, true), 1);

    op_resume(f, &r, &vis, cid, p - 2, ep); /* visitors do not */
    expect_ok(&r);
    assert_true(r.recovered);
    seq_list(r.frames, true, list, sizeof list);
    range_list(want, sizeof want, p - 1, last, &p, 1);
    assert_string_equal(list, want);

    op_resume(f, &r, &vis, cid, last, ep); /* up to date */
    expect_ok(&r);
    assert_true(r.recovered);
    assert_int_equal(json_array_size(r.frames), 0);

    op_resume(f, &r, &vis, cid, 0, ""); /* epoch unknown: everything */
    expect_ok(&r);
    assert_true(r.recovered);
    seq_list(r.frames, true, list, sizeof list);
    range_list(want, sizeof want, 1, last, &p, 1);
    assert_string_equal(list, want);

    /* another epoch: not recovered, nothing replayed, the epoch stays */
    op_resume(f, &r, &vis, cid, p, "0123456789abcdef");
    expect_ok(&r);
    assert_false(r.recovered);
    assert_int_equal(json_array_size(r.frames), 0);
    assert_string_equal(r.epoch, ep);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s epoch", f->prefix, cd_key_cid_site(cid), cid));
    assert_string_equal(buf, ep);
    res_clear(&r);
}

static void test_resume_after_lost_data_new_epoch(void **state)
{
    fx *f = *state;
    res r = {0};
    evlist evs = {0};
    char vid[80], cid[80], ep[80], ep2[80], list[256], want[256], buf[80], chan[128];
    int64_t p;
    new_visitor(f, SITE1, vid);
    const int64_t last = make_conv(f, vid, cid, ep, &p);
    const cd_conv_author vis = {"visitor", vid, "", NULL};
    redisContext *sub = sub_open(f);

    /* the store lost the last 3 messages, which the client saw */
    r_do(f, "XDEL %s{s:%s}:conv:%s:msgs 0-%lld 0-%lld 0-%lld", f->prefix, cd_key_cid_site(cid), cid,
         (long long)last - 2, (long long)last - 1, (long long)last);
    r_do(f, "HSET %s{s:%s}:conv:%s last_seq %lld", f->prefix, cd_key_cid_site(cid), cid, (long long)last - 3);

    op_resume(f, &r, &vis, cid, last, ep);
    expect_ok(&r);
    assert_false(r.recovered);
    assert_int_equal(json_array_size(r.frames), 0);
    assert_int_equal(r.last_seq, last - 3);
    assert_true(strlen(r.epoch) > 0);
    assert_string_not_equal(r.epoch, ep);
    snprintf(ep2, sizeof ep2, "%s", r.epoch);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s epoch", f->prefix, cd_key_cid_site(cid), cid));
    assert_string_equal(buf, ep2);

    /* every participant learns the new epoch */
    sub_collect(f, sub, &evs);
    snprintf(chan, sizeof chan, "conv:%s", cid);
    const ev *e = ev_find(&evs, chan, "conversation.updated");
    expect_header(e, 0, "*", "-");
    assert_string_equal(jstr(jget(e->frame, "conversation"), "epoch"), ep2);
    assert_int_equal(jint(jget(e->frame, "conversation"), "last_seq"), last - 3);
    ev_clear(&evs);

    /* the old epoch no longer resumes; the new one does */
    op_resume(f, &r, &vis, cid, p - 1, ep);
    expect_ok(&r);
    assert_false(r.recovered);
    assert_int_equal(json_array_size(r.frames), 0);
    op_resume(f, &r, &vis, cid, p - 1, ep2);
    expect_ok(&r);
    assert_true(r.recovered);
    seq_list(r.frames, true, list, sizeof list);
    range_list(want, sizeof want, p, last - 3, &p, 1);
    assert_string_equal(list, want);
    redisFree(sub);
    res_clear(&r);
}

static void test_resume_trimmed_history(void **state)
{
    fx *f = *state;
    res r = {0};
    char vid[80], cid[80], ep[80], list[256], want[256];
    new_visitor(f, SITE1, vid);
    const cd_conv_author vis = {"visitor", vid, "", NULL};
    f->cfg.history_retain = 5;
    const int64_t base = new_conv(f, SITE1, vid, "m1", cid, ep);
    send_many(f, &vis, cid, "t", 210);
    const int64_t last = base + 210;

    /* XADD MAXLEN ~ 5 trims whole stream nodes: some trimming happened, never below 5 */
    long long len = r_int(f, "XLEN %s{s:%s}:conv:%s:msgs", f->prefix, cd_key_cid_site(cid), cid);
    assert_true(len >= 5);
    assert_true(len < last);
    /* trim exactly: last-4..last remain */
    r_do(f, "XTRIM %s{s:%s}:conv:%s:msgs MAXLEN 5", f->prefix, cd_key_cid_site(cid), cid);
    assert_int_equal(r_int(f, "XLEN %s{s:%s}:conv:%s:msgs", f->prefix, cd_key_cid_site(cid), cid), 5);

    op_resume(f, &r, &vis, cid, 3, ep);
    expect_ok(&r);
    assert_false(r.recovered);
    assert_int_equal(json_array_size(r.frames), 0);
    assert_int_equal(r.last_seq, last);
    op_resume(f, &r, &vis, cid, last - 6, ep); /* last-5 is gone */
    expect_ok(&r);
    assert_false(r.recovered);
    assert_int_equal(json_array_size(r.frames), 0);
    op_resume(f, &r, &vis, cid, last - 5, ep); /* last-4.. are all there */
    expect_ok(&r);
    assert_true(r.recovered);
    seq_list(r.frames, true, list, sizeof list);
    range_list(want, sizeof want, last - 4, last, NULL, 0);
    assert_string_equal(list, want);
    res_clear(&r);
}

static void test_resume_max_exceeded(void **state)
{
    fx *f = *state;
    res r = {0};
    char vid[80], cid[80], ep[80], list[256], want[256];
    new_visitor(f, SITE1, vid);
    const int64_t last = make_conv(f, vid, cid, ep, NULL);
    f->cfg.resume_max = 3;

    op_resume(f, &r, &AG1, cid, last - 4, ep); /* 4 missing > 3 */
    expect_ok(&r);
    assert_false(r.recovered);
    assert_int_equal(json_array_size(r.frames), 0);
    op_resume(f, &r, &AG1, cid, last - 3, ep); /* exactly 3 */
    expect_ok(&r);
    assert_true(r.recovered);
    seq_list(r.frames, true, list, sizeof list);
    range_list(want, sizeof want, last - 2, last, NULL, 0);
    assert_string_equal(list, want);
    res_clear(&r);
}

int main(void)
{
    if (!it_redis_from_env(&redis_url, &redis_path))
        return 0;

    const struct CMUnitTest tests[] = {
        T(test_resume_recovers_missing_frames),
        T(test_resume_after_lost_data_new_epoch),
        T(test_resume_trimmed_history),
        T(test_resume_max_exceeded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
