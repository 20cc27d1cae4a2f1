/* test_conv_messages.c: conv/'s message functions against a real redis-server: msg_send
 * (concurrent senders without gaps, dedupe, events and status, permissions), history
 * (paging, private notes), read (stores the max) and typing (published, not stored).
 *
 * The harness (fixture, operations, checks) is scripts_support.h; ctest -L integration
 * runs this program against the fixture's redis-server. */
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <uv.h>

#include "chatdesk/clock.h"
#include "chatdesk/conv.h"
#include "it_support.h"
#include "scripts_support.h"

#define N_CHILDREN 4
#define PER_CHILD 250

/* ---- msg_send ---- */

/* One child process: its own loop and store, PER_CHILD pipelined sends after the go signal.
 * Returns an exit code (0: every reply OK and in order). No cmocka in here. */
static int child_run(const char *prefix, const char *cid, const cd_conv_author *a, int idx, int ready_fd, int go_fd)
{
    uv_loop_t loop;
    cd_config cfg;
    batch b = {0};
    int code = 0;
    char c = 'r';
    if (uv_loop_init(&loop) != 0)
        return 10;
    cd_config_init(&cfg);
    it_set_str(&cfg.redis, redis_url);
    it_set_str(&cfg.prefix, prefix);
    cd_store *st = cd_store_create(&loop, &cfg);
    if (!st)
        return 11;
    cd_store_start(st);
    if (!it_run_until(&loop, store_is_up, st, 10000))
        code = 12;
    if (!code && write(ready_fd, &c, 1) != 1)
        code = 13;
    if (!code && read(go_fd, &c, 1) != 1)
        code = 14;
    for (int i = 0; !code && i < PER_CHILD; i++) {
        char cmid[32], body[64];
        cd_req req;
        snprintf(cmid, sizeof cmid, "k%d-%d", idx, i);
        snprintf(body, sizeof body, "child %d message %d", idx, i);
        fill_send(&req, cid, cmid, body, false);
        if (cd_conv_send(st, &cfg, a, sites_of(a), NULL, &req, on_batch_reply, &b) != 0)
            code = 15;
        else
            b.pending++;
    }
    if (!code && !it_run_until(&loop, count_is_zero, &b.pending, 30000))
        code = 16;
    if (!code && b.failed)
        code = 17;
    cd_store_stop(st);
    cd_store_destroy(st);
    it_loop_finish(&loop);
    cd_config_cleanup(&cfg);
    return code;
}

static void test_send_concurrent_senders_gapless(void **state)
{
    fx *f = *state;
    char vid[80], cid[80];
    new_visitor(f, SITE1, vid);
    const long long base = new_conv(f, SITE1, vid, "start", cid, NULL);
    redisContext *sub = sub_open(f);
    const cd_conv_author vis = {"visitor", vid, "", NULL};
    const cd_conv_author *authors[N_CHILDREN] = {&vis, &vis, &AG1, &AG2};
    int ready[2], go[2];
    pid_t pids[N_CHILDREN];
    int status[N_CHILDREN];
    bool reaped[N_CHILDREN] = {false};
    for (int i = 0; i < N_CHILDREN; i++)
        status[i] = -1; /* not an exit status: a child never reaped fails */
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    fflush(stdout);
    fflush(stderr);
    for (int i = 0; i < N_CHILDREN; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(ready[0]);
            close(go[1]);
            alarm(60);
            _exit(child_run(f->prefix, cid, authors[i], i, ready[1], go[0]));
        }
    }
    close(ready[1]);
    close(go[0]);

    /* every child connected, then go at once; our own store keeps being serviced */
    int n_ready = 0;
    uint64_t deadline = cd_mono_ms() + 15000;
    while (n_ready < N_CHILDREN && cd_mono_ms() < deadline) {
        struct pollfd p = {ready[0], POLLIN, 0};
        char c;
        if (poll(&p, 1, 10) > 0) {
            if (read(ready[0], &c, 1) != 1)
                break;
            n_ready++;
        }
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    if (n_ready == N_CHILDREN) {
        const char gos[N_CHILDREN] = {'g', 'g', 'g', 'g'};
        assert_int_equal(write(go[1], gos, N_CHILDREN), N_CHILDREN);
    }
    close(go[1]); /* children still waiting get EOF */
    close(ready[0]);

    int left = N_CHILDREN;
    deadline = cd_mono_ms() + 60000;
    while (left > 0 && cd_mono_ms() < deadline) {
        for (int i = 0; i < N_CHILDREN; i++)
            if (!reaped[i] && waitpid(pids[i], &status[i], WNOHANG) == pids[i]) {
                reaped[i] = true;
                left--;
            }
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
    for (int i = 0; i < N_CHILDREN; i++)
        if (!reaped[i]) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], &status[i], 0);
        }
    assert_int_equal(n_ready, N_CHILDREN);
    for (int i = 0; i < N_CHILDREN; i++) {
        if (!WIFEXITED(status[i]) || WEXITSTATUS(status[i]) != 0)
            fail_msg("sender %d failed: %s %d", i, WIFEXITED(status[i]) ? "exit" : "signal",
                     WIFEXITED(status[i]) ? WEXITSTATUS(status[i]) : WTERMSIG(status[i]));
    }

    /* exactly base + 4*250 entries, ids 0-1..0-N, each sender's messages once and in its order */
    const long long total = base + N_CHILDREN * PER_CHILD;
    char buf[64];
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s last_seq", f->prefix, cd_key_cid_site(cid), cid));
    assert_int_equal(atoll(buf), total);
    assert_int_equal(r_int(f, "XLEN %s{s:%s}:conv:%s:msgs", f->prefix, cd_key_cid_site(cid), cid), total);
    /* the dedupe generations hold the newest 128 to 256 of them, nothing older */
    long long kept = r_int(f, "HLEN %s{s:%s}:conv:%s:dd0", f->prefix, cd_key_cid_site(cid), cid) +
                     r_int(f, "HLEN %s{s:%s}:conv:%s:dd1", f->prefix, cd_key_cid_site(cid), cid);
    assert_true(kept >= 128 && kept <= 256);
    redisReply *x = rx(f, "XRANGE %s{s:%s}:conv:%s:msgs - +", f->prefix, cd_key_cid_site(cid), cid);
    assert_int_equal(x->elements, total);
    int next[N_CHILDREN] = {0};
    for (size_t j = 0; j < x->elements; j++) {
        redisReply *entry = x->element[j];
        char want[32];
        snprintf(want, sizeof want, "0-%zu", j + 1);
        assert_string_equal(entry->element[0]->str, want);
        const char *cmid = NULL;
        for (size_t k = 0; k + 1 < entry->element[1]->elements; k += 2)
            if (strcmp(entry->element[1]->element[k]->str, "cmid") == 0)
                cmid = entry->element[1]->element[k + 1]->str;
        assert_non_null(cmid);
        if ((long long)j < base) { /* written by conversation.start */
            assert_string_equal(cmid, "");
            continue;
        }
        int who = -1, i = -1;
        if (sscanf(cmid, "k%d-%d", &who, &i) != 2 || who < 0 || who >= N_CHILDREN)
            fail_msg("unexpected client_msg_id \"%s\" at seq %zu", cmid, j + 1);
        if (i != next[who])
            fail_msg("seq %zu: sender %d message %d, expected its message %d (duplicate or reordered)", j + 1, who, i,
                     next[who]);
        next[who]++;
    }
    freeReplyObject(x);
    for (int i = 0; i < N_CHILDREN; i++)
        assert_int_equal(next[i], PER_CHILD);

    /* the conversation channel carried every message.created once, in seq order */
    size_t plen = strlen(f->prefix);
    long long expect_seq = base + 1;
    r_do(f, "PUBLISH %sch:~end end", f->prefix);
    for (;;) {
        redisReply *rep = NULL;
        if (redisGetReply(sub, (void **)&rep) != REDIS_OK || !rep)
            fail_msg("subscriber: nothing within 3 s (%s)", sub->errstr);
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4)
            fail_msg("subscriber: unexpected reply");
        const char *chan = rep->element[2]->str + plen + 3;
        if (strcmp(chan, "~end") == 0) {
            freeReplyObject(rep);
            break;
        }
        ev e;
        parse_event(chan, rep->element[3]->str, rep->element[3]->len, &e);
        freeReplyObject(rep);
        if (strncmp(e.chan, "conv:", 5) == 0 && strcmp(ev_type(&e), "message.created") == 0) {
            if (e.seq != expect_seq || jint(jget(e.frame, "message"), "seq") != expect_seq)
                fail_msg("message.created %lld published where %lld was due", e.seq, expect_seq);
            expect_seq++;
        }
        json_decref(e.frame);
    }
    assert_int_equal(expect_seq, total + 1);
    redisFree(sub);
}

static void test_send_dedupe(void **state)
{
    fx *f = *state;
    res r = {0};
    evlist evs = {0};
    char vid[80], cid[80], cid2[80], mid[80], chan[128], buf[64];
    new_visitor(f, SITE1, vid);
    const long long base = new_conv(f, SITE1, vid, "start", cid, NULL);
    const cd_conv_author vis = {"visitor", vid, "", NULL};
    redisContext *sub = sub_open(f);

    op_send(f, &r, &vis, cid, "dup-1", "original", false);
    expect_ok(&r);
    assert_false(r.duplicate);
    assert_int_equal(r.seq, base + 1);
    assert_string_equal(jstr(r.msg, "client_msg_id"), "dup-1");
    snprintf(mid, sizeof mid, "%s", jstr(r.msg, "id"));

    /* a retry: the same message back, nothing stored, nothing published */
    op_send(f, &r, &vis, cid, "dup-1", "changed body", false);
    expect_ok(&r);
    assert_true(r.duplicate);
    assert_int_equal(r.seq, base + 1);
    assert_string_equal(jstr(r.msg, "id"), mid);
    assert_string_equal(jstr(r.msg, "body"), "original");
    assert_int_equal(r_int(f, "XLEN %s{s:%s}:conv:%s:msgs", f->prefix, cd_key_cid_site(cid), cid), base + 1);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s last_seq", f->prefix, cd_key_cid_site(cid), cid));
    assert_int_equal(atoll(buf), base + 1);
    /* the entry sits in the dedupe generation of its seq (:dd0 or :dd1, 128 seqs each) */
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s:dd%lld visitor:%s:dup-1", f->prefix,
                      cd_key_cid_site(cid), cid, ((base + 1) / 128) % 2, vid));
    assert_int_equal(atoll(buf), base + 1);
    sub_collect(f, sub, &evs);
    snprintf(chan, sizeof chan, "conv:%s", cid);
    assert_int_equal(ev_count(&evs, chan, "message.created"), 1);
    expect_header(ev_find(&evs, chan, "message.created"), base + 1, "*", "-");
    ev_clear(&evs);

    /* the same client_msg_id from other senders: new messages */
    op_send(f, &r, &AG1, cid, "dup-1", "agent", false);
    expect_ok(&r);
    assert_false(r.duplicate);
    assert_int_equal(r.seq, base + 2);
    assert_string_not_equal(jstr(r.msg, "id"), mid);
    op_send(f, &r, &AG1, cid, "dup-1", "agent again", false);
    expect_ok(&r);
    assert_true(r.duplicate);
    assert_int_equal(r.seq, base + 2);
    op_send(f, &r, &AG2, cid, "dup-1", "other agent", false);
    expect_ok(&r);
    assert_false(r.duplicate);
    assert_int_equal(r.seq, base + 3);
    assert_int_equal(r_int(f, "XLEN %s{s:%s}:conv:%s:msgs", f->prefix, cd_key_cid_site(cid), cid), base + 3);
    assert_int_equal(r_int(f, "HLEN %s{s:%s}:conv:%s:dd0", f->prefix, cd_key_cid_site(cid), cid) +
                         r_int(f, "HLEN %s{s:%s}:conv:%s:dd1", f->prefix, cd_key_cid_site(cid), cid),
                     3);

    /* an acknowledged send retried after the conversation closed is still answered */
    op_update(f, &r, &AG1, cid, "closed", CD_PRIO_NONE);
    expect_ok(&r);
    op_send(f, &r, &vis, cid, "dup-1", "late retry", false);
    expect_ok(&r);
    assert_true(r.duplicate);
    assert_int_equal(r.seq, base + 1);
    op_send(f, &r, &vis, cid, "dup-2", "new after close", false);
    expect_err(&r, CD_ERR_CONFLICT);
    assert_int_equal(r_int(f, "XLEN %s{s:%s}:conv:%s:msgs", f->prefix, cd_key_cid_site(cid), cid), base + 3);

    /* dedupe is per conversation */
    const long long base2 = new_conv(f, SITE1, vid, "start 2", cid2, NULL);
    op_send(f, &r, &vis, cid2, "dup-1", "in the second conversation", false);
    expect_ok(&r);
    assert_false(r.duplicate);
    assert_int_equal(r.seq, base2 + 1);
    redisFree(sub);
    res_clear(&r);
}
/* The dedupe window (msg_send.lua DD_GEN, the bound in docs/performance.md): a retry is
 * recognised while its message is among the conversation's last 128, whoever wrote the
 * others, and an entry is gone once 256 messages followed it (nothing grows per message).
 * The conversation's hot fields come first in its hash, as msg_send reads them. */
static void test_send_dedupe_window(void **state)
{
    fx *f = *state;
    res r = {0};
    char vid[80], cid[80], cmid[32], buf[64];
    new_visitor(f, SITE1, vid);
    const long long base = new_conv(f, SITE1, vid, "start", cid, NULL);
    const cd_conv_author vis = {"visitor", vid, "", NULL};
    redisReply *k = rx(f, "HKEYS %s{s:%s}:conv:%s", f->prefix, cd_key_cid_site(cid), cid);
    static const char *const hot[] = {
        "site",          "status",   "visitor", "visitor_name", "first_response_at", "awaiting_reply_since",
        "ticket_number", "last_seq", "assignee"};
    assert_true(k->elements >= CD_ARRAY_LEN(hot));
    for (size_t i = 0; i < CD_ARRAY_LEN(hot); i++)
        assert_string_equal(k->element[i]->str, hot[i]);
    freeReplyObject(k);

    /* for each possible position of the first message in its generation: 127 others after
     * it (from the agent, so the visitor's own count does not matter), then the retry */
    long long seq = base;
    for (int round = 0; round < 3; round++) {
        snprintf(cmid, sizeof cmid, "win-%d", round);
        op_send(f, &r, &vis, cid, cmid, "first", false);
        expect_ok(&r);
        assert_false(r.duplicate);
        const long long first = ++seq;
        assert_int_equal(r.seq, first);
        for (int i = 0; i < 127 + round * 40; i++) {
            snprintf(buf, sizeof buf, "other-%d-%d", round, i);
            op_send(f, &r, &AG1, cid, buf, "reply", false);
            expect_ok(&r);
            seq++;
        }
        op_send(f, &r, &vis, cid, cmid, "retry", false);
        expect_ok(&r);
        if (seq - first <= 127) {
            assert_true(r.duplicate);
            assert_int_equal(r.seq, first);
        } else if (!r.duplicate) {
            seq++; /* past the guaranteed window the retry may be new */
        }
    }
    /* 256 messages after it, an entry is gone: the same client_msg_id stores a new message */
    op_send(f, &r, &vis, cid, "win-old", "first", false);
    expect_ok(&r);
    const long long old = ++seq;
    for (int i = 0; i < 256; i++) {
        snprintf(buf, sizeof buf, "later-%d", i);
        op_send(f, &r, &AG1, cid, buf, "reply", false);
        expect_ok(&r);
        seq++;
    }
    op_send(f, &r, &vis, cid, "win-old", "again", false);
    expect_ok(&r);
    assert_false(r.duplicate);
    assert_int_equal(r.seq, seq + 1);
    assert_true(r.seq > old);
    long long kept = r_int(f, "HLEN %s{s:%s}:conv:%s:dd0", f->prefix, cd_key_cid_site(cid), cid) +
                     r_int(f, "HLEN %s{s:%s}:conv:%s:dd1", f->prefix, cd_key_cid_site(cid), cid);
    assert_true(kept >= 128 && kept <= 256);
    res_clear(&r);
}
/* The sends of one site made in one loop pass share one msg_send call (a batch): messages
 * of one conversation get consecutive seqs in the order they were sent, a retry later in
 * the batch finds the copy stored earlier in it, and a failing send (an error reply, or a
 * runtime error of its own) fails alone. */
static void test_send_batch_order_dedupe_isolation(void **state)
{
    fx *f = *state;
    char vid[80], cid[80], bad[80], nope[80], buf[64];
    new_visitor(f, SITE1, vid);
    const long long base = new_conv(f, SITE1, vid, "start", cid, NULL);
    const cd_conv_author vis = {"visitor", vid, "", NULL};
    /* a conversation key of the wrong type: HMGET raises WRONGTYPE inside the function */
    snprintf(bad, sizeof bad, "c_wrongtype.%s", SITE1);
    snprintf(nope, sizeof nope, "c_nosuch.%s", SITE1);
    redisReply *rep = redisCommand(f->rc, "SET %s{s:%s}:conv:%s x", f->prefix, SITE1, bad);
    assert_non_null(rep);
    freeReplyObject(rep);
    enum { N = 7 };
    struct {
        const char *cid, *cmid, *body;
        bool priv;
    } in[N] = {{cid, "b-1", "one", false},        {nope, "b-x", "to no one", false},   {cid, "b-2", "two", false},
               {bad, "b-y", "wrong type", false}, {cid, "b-1", "retry of one", false}, {cid, "b-p", "private", true},
               {cid, "b-3", "three", false}};
    res r[N];
    memset(r, 0, sizeof r);
    cd_store_stats before, after;
    cd_store_get_stats(f->st, &before);
    for (int i = 0; i < N; i++) { /* all in this loop pass: one batch */
        cd_req req;
        fill_send(&req, in[i].cid, in[i].cmid, in[i].body, in[i].priv);
        token *t = tok(&r[i]);
        assert_int_equal(cd_conv_send(f->st, &f->cfg, &vis, "", NULL, &req, on_sent_res, t), 0);
    }
    for (int i = 0; i < N; i++)
        assert_true(it_run_until(&f->loop, flag_is_set, &r[i].done, WAIT_MS));
    cd_store_get_stats(f->st, &after);
    assert_int_equal(after.commands - before.commands, 1); /* one FCALL for the seven */
    assert_int_equal(after.batches - before.batches, 1);
    assert_int_equal(after.batched - before.batched, N);

    expect_ok(&r[0]);
    assert_false(r[0].duplicate);
    assert_int_equal(r[0].seq, base + 1);
    expect_err(&r[1], CD_ERR_NOT_FOUND);
    expect_ok(&r[2]);
    assert_int_equal(r[2].seq, base + 2);
    expect_err(&r[3], CD_ERR_INTERNAL);
    expect_ok(&r[4]);
    assert_true(r[4].duplicate);
    assert_int_equal(r[4].seq, base + 1);
    assert_string_equal(jstr(r[4].msg, "body"), "one");
    expect_err(&r[5], CD_ERR_FORBIDDEN);
    expect_ok(&r[6]);
    assert_false(r[6].duplicate);
    assert_int_equal(r[6].seq, base + 3);
    /* stored once each, gapless, in the order sent */
    assert_int_equal(r_int(f, "XLEN %s{s:%s}:conv:%s:msgs", f->prefix, SITE1, cid), base + 3);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s last_seq", f->prefix, SITE1, cid));
    assert_int_equal(atoll(buf), base + 3);
    res h = {0};
    op_history(f, &h, &vis, cid, 0, 3);
    expect_ok(&h);
    assert_int_equal(json_array_size(h.msgs), 3);
    const char *want[] = {"one", "two", "three"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(jint(json_array_get(h.msgs, i), "seq"), base + 1 + (long long)i);
        assert_string_equal(jstr(json_array_get(h.msgs, i), "body"), want[i]);
    }
    res_clear(&h);
    for (int i = 0; i < N; i++)
        res_clear(&r[i]);
}

/* Group commit: while a site's msg_send call is in flight, the site's next sends (made in
 * later loop passes) wait for its reply and then go as one call, in the order they were
 * made; any other command sends them at once, so it reaches Redis after them. Redis is
 * held with CLIENT PAUSE WRITE so that the first call stays in flight. */
static void send_async(fx *f, const cd_conv_author *a, const char *cid, const char *cmid, res *r)
{
    cd_req req;
    fill_send(&req, cid, cmid, cmid, false);
    assert_int_equal(cd_conv_send(f->st, &f->cfg, a, "", NULL, &req, on_sent_res, tok(r)), 0);
}

static void test_send_group_commit(void **state)
{
    fx *f = *state;
    char vid[80], cid[80], cmid[16];
    new_visitor(f, SITE1, vid);
    const long long base = new_conv(f, SITE1, vid, "start", cid, NULL);
    const cd_conv_author vis = {"visitor", vid, "", NULL};
    enum { N = 6 };
    res r[N + 3];
    memset(r, 0, sizeof r);
    cd_store_stats before, after;
    cd_store_get_stats(f->st, &before);
    redisReply *p = redisCommand(f->rc, "CLIENT PAUSE 1000 WRITE");
    assert_non_null(p);
    freeReplyObject(p);
    for (int i = 0; i < N; i++) { /* one send per loop pass */
        snprintf(cmid, sizeof cmid, "g-%d", i);
        send_async(f, &vis, cid, cmid, &r[i]);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    cd_store_get_stats(f->st, &after);
    assert_int_equal(after.batches - before.batches, 1); /* the first: in flight, the rest held */
    for (int i = 0; i < N; i++)
        assert_true(it_run_until(&f->loop, flag_is_set, &r[i].done, WAIT_MS));
    cd_store_get_stats(f->st, &after);
    assert_int_equal(after.batches - before.batches, 2); /* the held five as one call */
    assert_int_equal(after.batched - before.batched, N);
    for (int i = 0; i < N; i++) {
        expect_ok(&r[i]);
        assert_false(r[i].duplicate);
        assert_int_equal(r[i].seq, base + 1 + i);
    }

    /* held sends, then another command of the store: they go first, so a close made after
     * them finds them stored */
    p = redisCommand(f->rc, "CLIENT PAUSE 1000 WRITE");
    assert_non_null(p);
    freeReplyObject(p);
    for (int i = 0; i < 3; i++) {
        snprintf(cmid, sizeof cmid, "h-%d", i);
        send_async(f, &vis, cid, cmid, &r[N + i]);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    res u = {0};
    op_update(f, &u, &AG1, cid, "closed", CD_PRIO_NONE);
    expect_ok(&u);
    for (int i = 0; i < 3; i++) {
        assert_true(it_run_until(&f->loop, flag_is_set, &r[N + i].done, WAIT_MS));
        expect_ok(&r[N + i]);
        assert_int_equal(r[N + i].seq, base + 1 + N + i);
    }
    res_clear(&u);
    for (int i = 0; i < N + 3; i++)
        res_clear(&r[i]);
}

static void test_send_events_and_status(void **state)
{
    fx *f = *state;
    res r = {0};
    evlist evs = {0};
    char vid[80], cid[80], chan[128], site_excl[128], buf[64];
    new_visitor(f, SITE1, vid);
    const long long base = new_conv(f, SITE1, vid, "start", cid, NULL);
    const cd_conv_author vis = {"visitor", vid, "", NULL};
    snprintf(chan, sizeof chan, "conv:%s", cid);
    snprintf(site_excl, sizeof site_excl, "conv:%s", cid);
    op_accept(f, &r, &AG1, cid);
    expect_ok(&r);
    assert_string_equal(jstr(r.conv, "status"), "open");
    redisContext *sub = sub_open(f);

    /* a private note: agents-only audience, no status change */
    op_send(f, &r, &AG1, cid, "n1", "note", true);
    expect_ok(&r);
    assert_int_equal(r.seq, base + 1);
    assert_true(json_is_true(jget(r.msg, "private")));
    sub_collect(f, sub, &evs);
    assert_int_equal(evs.n, 1);
    expect_header(ev_find(&evs, chan, "message.created"), base + 1, "a", "-");
    ev_clear(&evs);
    assert_false(
        r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s first_response_at", f->prefix, cd_key_cid_site(cid), cid) &&
        buf[0]);

    /* the agent's public reply to an open conversation: pending, first_response_at */
    op_send(f, &r, &AG1, cid, "a1", "hello", false);
    expect_ok(&r);
    assert_int_equal(r.seq, base + 2);
    assert_string_equal(jstr(jget(r.msg, "author"), "name"), "Agent One");
    sub_collect(f, sub, &evs);
    expect_header(ev_find(&evs, chan, "message.created"), base + 2, "*", "-");
    const ev *e = ev_find(&evs, chan, "conversation.updated");
    expect_header(e, 0, "*", "-");
    assert_string_equal(jstr(jget(e->frame, "conversation"), "status"), "pending");
    assert_false(json_is_null(jget(jget(e->frame, "conversation"), "first_response_at")));
    expect_header(ev_find(&evs, "site:" SITE1, "conversation.updated"), 0, "a", site_excl);
    ev_clear(&evs);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s status", f->prefix, cd_key_cid_site(cid), cid));
    assert_string_equal(buf, "pending");
    assert_true(
        r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s first_response_at", f->prefix, cd_key_cid_site(cid), cid));
    assert_true(buf[0] != '\0');

    /* the visitor answers: open again */
    op_send(f, &r, &vis, cid, "v1", "thanks", false);
    expect_ok(&r);
    assert_int_equal(r.seq, base + 3);
    sub_collect(f, sub, &evs);
    expect_header(ev_find(&evs, chan, "message.created"), base + 3, "*", "-");
    assert_string_equal(jstr(jget(ev_find(&evs, chan, "conversation.updated")->frame, "conversation"), "status"),
                        "open");
    ev_clear(&evs);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s status", f->prefix, cd_key_cid_site(cid), cid));
    assert_string_equal(buf, "open");
    redisFree(sub);
    res_clear(&r);
}

static void test_send_permissions(void **state)
{
    fx *f = *state;
    res r = {0};
    evlist evs = {0};
    char va[80], vb[80], vc[80], cid[80], buf[32];
    new_visitor(f, SITE1, va);
    new_visitor(f, SITE1, vb);
    new_visitor(f, SITE2, vc);
    const long long base = new_conv(f, SITE1, va, "start", cid, NULL);
    const cd_conv_author vis_a = {"visitor", va, "", NULL};
    const cd_conv_author vis_b = {"visitor", vb, "", NULL};
    const cd_conv_author vis_c = {"visitor", vc, "", NULL};
    const cd_conv_author nobody = {"agent", "ag_nobody", "Nobody", NULL};
    const cd_conv_author bot = {"bot", va, "Bot", NULL};
    char *keys_before = keys_snapshot(f);
    char *conv_before = hash_snapshot(f, cid);
    redisContext *sub = sub_open(f);

    struct {
        const cd_conv_author *a;
        bool priv;
        const char *what;
        cd_err want;
    } denied[] = {
        /* outsiders are told the conversation does not exist, exactly as for a missing one
         * (no probing for ids across visitors and tenants); the visitor's own private
         * note is a plain forbidden */
        {&vis_b, false, "another visitor of the site", CD_ERR_NOT_FOUND},
        {&vis_c, false, "a visitor of another site", CD_ERR_NOT_FOUND},
        {&AGX, false, "an agent of another site", CD_ERR_NOT_FOUND},
        {&nobody, false, "an unknown agent", CD_ERR_NOT_FOUND},
        {&bot, false, "an unknown author kind", CD_ERR_NOT_FOUND},
        {&vis_a, true, "a private note from the visitor", CD_ERR_FORBIDDEN},
    };
    for (size_t i = 0; i < CD_ARRAY_LEN(denied); i++) {
        op_send(f, &r, denied[i].a, cid, "p-1", "sneaky", denied[i].priv);
        if (r.err != denied[i].want)
            fail_msg("%s: got %s, want %s", denied[i].what, cd_err_name(r.err), cd_err_name(denied[i].want));
        if (denied[i].want == CD_ERR_NOT_FOUND && (!r.message || strcmp(r.message, "no such conversation") != 0))
            fail_msg("%s: message \"%s\" differs from a missing conversation's", denied[i].what, r.message);
    }
    /* the other scripts answer the same outsiders alike: not found */
    op_history(f, &r, &vis_b, cid, 0, 10);
    expect_err(&r, CD_ERR_NOT_FOUND);
    op_resume(f, &r, &AGX, cid, 0, "");
    expect_err(&r, CD_ERR_NOT_FOUND);
    op_read(f, &r, &vis_b, cid, 1);
    expect_err(&r, CD_ERR_NOT_FOUND);
    op_typing(f, &r, &AGX, cid, true);
    expect_err(&r, CD_ERR_NOT_FOUND);
    op_csat(f, &r, vb, cid, 5, "x");
    expect_err(&r, CD_ERR_NOT_FOUND);
    op_accept(f, &r, &AGX, cid);
    expect_err(&r, CD_ERR_NOT_FOUND);
    op_update(f, &r, &AGX, cid, "closed", CD_PRIO_NONE);
    expect_err(&r, CD_ERR_NOT_FOUND);

    /* nothing was written or published */
    char *keys_after = keys_snapshot(f);
    char *conv_after = hash_snapshot(f, cid);
    assert_string_equal(keys_after, keys_before);
    assert_string_equal(conv_after, conv_before);
    assert_int_equal(r_int(f, "XLEN %s{s:%s}:conv:%s:msgs", f->prefix, cd_key_cid_site(cid), cid), base);
    sub_collect(f, sub, &evs);
    assert_int_equal(evs.n, 0);

    /* an agent of both sites may write, and agents may write private notes */
    assert_int_equal(send_ok(f, &AGB, cid, "b-1", "from both", false), base + 1);
    assert_int_equal(send_ok(f, &AG1, cid, "p-1", "note", true), base + 2);

    /* closed: conflict for everyone */
    op_update(f, &r, &AG1, cid, "closed", CD_PRIO_NONE);
    expect_ok(&r);
    op_send(f, &r, &vis_a, cid, "c-1", "too late", false);
    expect_err(&r, CD_ERR_CONFLICT);
    op_send(f, &r, &AG1, cid, "c-2", "too late", false);
    expect_err(&r, CD_ERR_CONFLICT);
    assert_int_equal(r_int(f, "XLEN %s{s:%s}:conv:%s:msgs", f->prefix, cd_key_cid_site(cid), cid), base + 2);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s last_seq", f->prefix, cd_key_cid_site(cid), cid));
    assert_int_equal(atoll(buf), base + 2);

    free(keys_before);
    free(keys_after);
    free(conv_before);
    free(conv_after);
    ev_clear(&evs);
    redisFree(sub);
    res_clear(&r);
}

/* ---- history ---- */

static void test_history_paging_and_private_notes(void **state)
{
    fx *f = *state;
    res r = {0};
    char vid[80], cid[80], list[512], want[512];
    new_visitor(f, SITE1, vid);
    const int64_t base = new_conv(f, SITE1, vid, "m1", cid, NULL);
    const cd_conv_author vis = {"visitor", vid, "", NULL};
    /* base+1 .. base+11; base+4 and base+8 are private notes */
    const int64_t last = base + 11, privs[] = {base + 4, base + 8};
    for (int k = 1; k <= 11; k++) {
        char cmid[16], body[32];
        snprintf(cmid, sizeof cmid, "h%d", k);
        snprintf(body, sizeof body, "m%lld", (long long)(base + k));
        bool priv = k == 4 || k == 8;
        assert_int_equal(send_ok(f, priv || k % 2 == 0 ? &AG1 : &vis, cid, cmid, body, priv), base + k);
    }

    /* agents: everything, ascending */
    op_history(f, &r, &AG1, cid, 0, 50);
    expect_ok(&r);
    seq_list(r.msgs, false, list, sizeof list);
    range_list(want, sizeof want, 1, last, NULL, 0);
    assert_string_equal(list, want);
    assert_int_equal(count_private(r.msgs, false), 2);
    assert_int_equal(r.last_seq, last);
    snprintf(want, sizeof want, "m%lld", (long long)privs[0]);
    assert_string_equal(jstr(json_array_get(r.msgs, (size_t)privs[0] - 1), "body"), want);

    op_history(f, &r, &AG1, cid, 0, 3); /* the latest 3 */
    expect_ok(&r);
    seq_list(r.msgs, false, list, sizeof list);
    range_list(want, sizeof want, last - 2, last, NULL, 0);
    assert_string_equal(list, want);
    op_history(f, &r, &AG1, cid, last - 2, 3); /* the 3 before those */
    expect_ok(&r);
    seq_list(r.msgs, false, list, sizeof list);
    range_list(want, sizeof want, last - 5, last - 3, NULL, 0);
    assert_string_equal(list, want);
    op_history(f, &r, &AG1, cid, 2, 5);
    expect_ok(&r);
    seq_list(r.msgs, false, list, sizeof list);
    assert_string_equal(list, "1");
    op_history(f, &r, &AG1, cid, 1, 5);
    expect_ok(&r);
    assert_int_equal(json_array_size(r.msgs), 0);

    /* visitors: never private notes, and pages are still full */
    op_history(f, &r, &vis, cid, 0, 50);
    expect_ok(&r);
    seq_list(r.msgs, false, list, sizeof list);
    range_list(want, sizeof want, 1, last, privs, 2);
    assert_string_equal(list, want);
    assert_int_equal(count_private(r.msgs, false), 0);
    assert_int_equal(r.last_seq, last);
    op_history(f, &r, &vis, cid, base + 9, 3); /* base+8 is private */
    expect_ok(&r);
    seq_list(r.msgs, false, list, sizeof list);
    range_list(want, sizeof want, base + 5, base + 7, NULL, 0);
    assert_string_equal(list, want);
    op_history(f, &r, &vis, cid, base + 5, 2); /* base+4 is private */
    expect_ok(&r);
    seq_list(r.msgs, false, list, sizeof list);
    range_list(want, sizeof want, base + 2, base + 3, NULL, 0);
    assert_string_equal(list, want);

    /* paging back with before_seq = the first seq of each page visits every message once */
    const cd_conv_author *readers[] = {&AG1, &vis};
    for (size_t k = 0; k < 2; k++) {
        int64_t seen[64];
        size_t n_seen = 0;
        int64_t before = 0;
        for (int page = 0; page < 40; page++) {
            op_history(f, &r, readers[k], cid, before, 3);
            expect_ok(&r);
            size_t n = json_array_size(r.msgs);
            if (n == 0)
                break;
            assert_true(n <= 3);
            for (size_t i = n; i-- > 0;) {
                assert_true(n_seen < CD_ARRAY_LEN(seen));
                seen[n_seen++] = jint(json_array_get(r.msgs, i), "seq");
            }
            before = jint(json_array_get(r.msgs, 0), "seq");
        }
        size_t len = 0;
        list[0] = '\0';
        for (size_t i = n_seen; i-- > 0;)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%lld", len ? "," : "", (long long)seen[i]);
        range_list(want, sizeof want, 1, last, privs, k == 0 ? 0 : 2);
        assert_string_equal(list, want);
    }
    res_clear(&r);
}

/* A visitor's history must reach back past any run of private notes: docs/protocol.md has
 * before_seq page back to the start, and an empty page tells the client there is nothing older. */
static void test_history_visitor_behind_many_private_notes(void **state)
{
    fx *f = *state;
    res r = {0};
    char vid[80], cid[80], list[64], want[64];
    new_visitor(f, SITE1, vid);
    const int64_t base = new_conv(f, SITE1, vid, "m1", cid, NULL);
    const cd_conv_author vis = {"visitor", vid, "", NULL};
    for (int k = 1; k <= 12; k++) {
        char cmid[16];
        snprintf(cmid, sizeof cmid, "n%d", k);
        assert_int_equal(send_ok(f, &AG1, cid, cmid, "internal", true), base + k);
    }
    op_history(f, &r, &vis, cid, 0, 1);
    expect_ok(&r);
    seq_list(r.msgs, false, list, sizeof list);
    snprintf(want, sizeof want, "%lld", (long long)base);
    /* history.lua stops after 10 rounds of `limit` entries and answers an empty page, so the
     * visitor's own messages before the notes can no longer be paged to. */
    if (strcmp(list, want) != 0)
        fail_msg("history.lua: a visitor's history (limit 1) behind 12 private notes is [%s], want [%s]: the "
                 "10-round cap answers an empty page, so older messages are unreachable",
                 list, want);
    res_clear(&r);
}

/* ---- read, typing ---- */

static void test_read_stores_max(void **state)
{
    fx *f = *state;
    res r = {0};
    evlist evs = {0};
    char vid[80], cid[80], buf[32], chan[128];
    new_visitor(f, SITE1, vid);
    const int64_t last = make_conv(f, vid, cid, NULL, NULL);
    const cd_conv_author vis = {"visitor", vid, "", NULL};
    redisContext *sub = sub_open(f);

    op_read(f, &r, &vis, cid, 3);
    expect_ok(&r);
    assert_int_equal(r.seq, 3);
    op_read(f, &r, &vis, cid, 2); /* lower: stays 3 */
    expect_ok(&r);
    assert_int_equal(r.seq, 3);
    assert_true(
        r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s:reads visitor:%s", f->prefix, cd_key_cid_site(cid), cid, vid));
    assert_string_equal(buf, "3");
    op_read(f, &r, &vis, cid, last + 50); /* capped at last_seq */
    expect_ok(&r);
    assert_int_equal(r.seq, last);
    assert_true(
        r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s:reads visitor:%s", f->prefix, cd_key_cid_site(cid), cid, vid));
    assert_int_equal(atoll(buf), last);
    op_read(f, &r, &AG1, cid, 4);
    expect_ok(&r);
    assert_int_equal(r.seq, 4);
    assert_true(r_str(f, buf, sizeof buf, "HGET %s{s:%s}:conv:%s:reads agent:%s", f->prefix, cd_key_cid_site(cid), cid,
                      AG1.id));
    assert_string_equal(buf, "4");

    /* a read event for each advance only */
    sub_collect(f, sub, &evs);
    snprintf(chan, sizeof chan, "conv:%s", cid);
    assert_int_equal(ev_count(&evs, chan, "read"), 3);
    assert_int_equal(evs.n, 3);
    expect_header(&evs.e[0], 0, "*", "-");
    assert_int_equal(jint(evs.e[0].frame, "seq"), 3);
    assert_int_equal(jint(evs.e[1].frame, "seq"), last);
    assert_int_equal(jint(evs.e[2].frame, "seq"), 4);
    assert_string_equal(jstr(jget(evs.e[2].frame, "author"), "id"), AG1.id);
    ev_clear(&evs);
    redisFree(sub);
    res_clear(&r);
}

static void test_typing_published_not_stored(void **state)
{
    fx *f = *state;
    res r = {0};
    evlist evs = {0};
    char vid[80], vb[80], cid[80], chan[128], excl[128];
    new_visitor(f, SITE1, vid);
    new_visitor(f, SITE1, vb);
    new_conv(f, SITE1, vid, "hi", cid, NULL);
    const cd_conv_author vis = {"visitor", vid, "", NULL};
    const cd_conv_author vis_b = {"visitor", vb, "", NULL};
    char *before = keys_snapshot(f);
    redisContext *sub = sub_open(f);

    op_typing(f, &r, &vis, cid, true);
    expect_ok(&r);
    op_typing(f, &r, &AG1, cid, false);
    expect_ok(&r);
    op_typing(f, &r, &vis_b, cid, true);
    expect_err(&r, CD_ERR_NOT_FOUND);

    /* to the conversation, not back to the typist's own connections */
    sub_collect(f, sub, &evs);
    snprintf(chan, sizeof chan, "conv:%s", cid);
    assert_int_equal(evs.n, 2);
    assert_int_equal(ev_count(&evs, chan, "typing"), 2);
    snprintf(excl, sizeof excl, "visitor:%s", vid);
    expect_header(&evs.e[0], 0, "*", excl);
    assert_true(json_is_true(jget(evs.e[0].frame, "state")));
    assert_string_equal(jstr(jget(evs.e[0].frame, "author"), "id"), vid);
    expect_header(&evs.e[1], 0, "*", "agent:ag_one");
    assert_true(json_is_false(jget(evs.e[1].frame, "state")));
    ev_clear(&evs);

    char *after = keys_snapshot(f);
    assert_string_equal(after, before);
    free(before);
    free(after);
    redisFree(sub);
    res_clear(&r);
}

int main(void)
{
    if (!it_redis_from_env(&redis_url, &redis_path))
        return 0;

    const struct CMUnitTest tests[] = {
        T(test_send_concurrent_senders_gapless),
        T(test_send_dedupe),
        T(test_send_dedupe_window),
        T(test_send_batch_order_dedupe_isolation),
        T(test_send_group_commit),
        T(test_send_events_and_status),
        T(test_send_permissions),
        T(test_history_paging_and_private_notes),
        T(test_history_visitor_behind_many_private_notes),
        T(test_read_stores_max),
        T(test_typing_published_not_stored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
