/* test_session.c: the session core (server/session) driven through its public interface
 * against a real redis-server (ctest -L integration).
 *
 * Each test builds what chatdeskd builds on one uv loop (cd_store, cd_bus, cd_hub,
 * cd_node) with a fake connection (cd_session_io that records wake and close calls).
 * Sessions are driven only by cd_session_on_frame with JSON frames; what they would send
 * is read with cd_session_pop. Live conversation events are fed to the hub with
 * cd_hub_dispatch exactly as the bus delivers them, so their order can be chosen; the bus
 * itself is started only where the test needs the real subscription (hub reference
 * counts). The site is added with the admin CLI's site-add, conversations and messages
 * through the production scripts (cd_conv_*); a synchronous hiredis connection asks Redis
 * for its subscriber counts. Each test has its own key prefix and every wait is bounded;
 * the asan layer runs these tests too, which is what catches a session freed too early
 * or never.
 */
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

#include "chatdesk/admin.h"
#include "chatdesk/auth.h"
#include "chatdesk/bus.h"
#include "chatdesk/clock.h"
#include "chatdesk/config.h"
#include "chatdesk/conv.h"
#include "chatdesk/hub.h"
#include "chatdesk/log.h"
#include "chatdesk/proto.h"
#include "chatdesk/session.h"
#include "chatdesk/store.h"
#include "it_support.h"

#define WAIT_MS 5000
#define SITE "site1"
#define ORIGIN "https://example.test"
#define SECRET "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define NODE_ID "node-t"
#define MAX_CONNS 8
#define FRAME_MAX 16384

static const char *redis_url;  /* CD_TEST_REDIS, "unix:/path" */
static const char *redis_path; /* the socket path in it */

typedef struct fx fx;

/* One fake connection: what the session asked of it, and every frame popped from it. */
typedef struct conn {
    fx *f;
    cd_session *s;
    int wakes, closes;
    bool detached; /* no io call may come after cd_session_detach */
    bool popping;  /* wait_for() pops its frames as a writeable connection would */
    json_t *got;   /* the frames popped so far, in order */
    size_t batch_max;
} conn;

struct fx {
    uv_loop_t loop;
    cd_config cfg;
    cd_store *st;
    cd_bus *bus;
    cd_hub *hub;
    cd_node *node;
    redisContext *rc; /* synchronous: fixtures and checks */
    char prefix[64];
    conn conns[MAX_CONNS];
    size_t nconns;
    int io_after_detach;
    /* the test's conversation and its visitor */
    char vid[80], cid[80], epoch[80], token[CD_AUTH_TOKEN_MAX];
    int64_t last; /* highest seq a script reported */
    /* cd_conv_* calls in flight (their callbacks write here: fx outlives the store) */
    int pending, prep_errors, msg_counter;
    int barriers_sent, barriers_done;
};

/* ---- the fake connection ---- */

static void io_wake(void *p)
{
    conn *c = p;
    c->wakes++;
    if (c->detached)
        c->f->io_after_detach++;
}

static void io_close(void *p)
{
    conn *c = p;
    c->closes++;
    if (c->detached)
        c->f->io_after_detach++;
}

static const cd_session_io fake_io = {io_wake, io_close};

/* Pop every queued frame into c->got (unparsable frames become a marker string). */
static void drain(conn *c)
{
    size_t n = 0;
    cd_frame *fr;
    while ((fr = cd_session_pop(c->s))) {
        json_t *v = json_loadb(fr->data, fr->len, 0, NULL);
        cd_frame_unref(fr);
        json_array_append_new(c->got, v ? v : json_string("<unparsable frame>"));
        n++;
    }
    if (n > c->batch_max)
        c->batch_max = n;
}

/* ---- the loop: run until a condition holds or a deadline passes ---- */

typedef bool (*pred_fn)(fx *f, const void *arg);

typedef struct wait_arg {
    fx *f;
    pred_fn done;
    const void *arg;
} wait_arg;

/* Between turns of the loop, the popping connections write everything queued (nothing
 * in here may fail_msg(): it_run_until's timer lives in its frame). */
static bool drained_and(const void *p)
{
    const wait_arg *w = p;
    for (size_t i = 0; i < w->f->nconns; i++)
        if (w->f->conns[i].popping && !w->f->conns[i].detached)
            drain(&w->f->conns[i]);
    return w->done(w->f, w->arg);
}

static bool wait_for(fx *f, pred_fn done, const void *arg, uint64_t ms)
{
    wait_arg w = {f, done, arg};
    return it_run_until(&f->loop, drained_and, &w, ms);
}

static bool store_ready(fx *f, const void *arg)
{
    (void)arg;
    return cd_store_up(f->st) && cd_node_origin_allowed(f->node, ORIGIN, SITE);
}

static bool bus_ready(fx *f, const void *arg)
{
    (void)arg;
    return cd_bus_up(f->bus);
}

static bool prep_done(fx *f, const void *arg)
{
    (void)arg;
    return f->pending == 0;
}

static bool barrier_done(fx *f, const void *arg)
{
    (void)arg;
    return f->barriers_done == f->barriers_sent;
}

/* ---- cd_conv_* calls that prepare Redis ---- */

static void on_prep_sent(void *ud, const cd_conv_sent *r)
{
    fx *f = ud;
    f->pending--;
    if (r->err != CD_ERR_OK) {
        f->prep_errors++;
        return;
    }
    if (r->msg.seq > f->last)
        f->last = r->msg.seq;
}

static void on_prep(void *ud, cd_conv_result *r)
{
    fx *f = ud;
    f->pending--;
    if (r->err != CD_ERR_OK) {
        f->prep_errors++;
        return;
    }
    if (r->visitor_id[0])
        cd_strlcpy(f->vid, r->visitor_id, sizeof f->vid);
    if (r->n_convs) {
        cd_strlcpy(f->cid, r->convs[0].id, sizeof f->cid);
        cd_strlcpy(f->epoch, r->convs[0].epoch, sizeof f->epoch);
    }
    if (r->seq > f->last)
        f->last = r->seq;
    if (r->last_seq > f->last)
        f->last = r->last_seq;
}

static void prep_started(fx *f, int rc)
{
    assert_int_equal(rc, 0);
    f->pending++;
}

static void prep_wait(fx *f)
{
    assert_true(wait_for(f, prep_done, NULL, WAIT_MS));
    assert_int_equal(f->prep_errors, 0);
}

/* Every reply on the command connection before this one has been handled once it
 * returns: replies come in order. */
static void on_barrier(void *ud, cd_err err, const char *json, size_t len)
{
    fx *f = ud;
    (void)err;
    (void)json;
    (void)len;
    f->barriers_done++;
}

static void barrier(fx *f)
{
    cd_key k;
    const char *keys[] = {cd_key_global(&k, cd_store_prefix(f->st), "sites")};
    assert_int_equal(cd_store_fcall(f->st, "sites_get", 1, keys, 0, NULL, NULL, on_barrier, f), 0);
    f->barriers_sent++;
    assert_true(wait_for(f, barrier_done, NULL, WAIT_MS));
}

/* n messages from the visitor, pipelined (prep_wait() waits for them); body_len 0: short. */
static void send_msgs(fx *f, int n, size_t body_len)
{
    char cmid[32], *body = malloc(body_len + 32);
    assert_non_null(body);
    cd_conv_author a = {"visitor", f->vid, "", NULL};
    for (int i = 0; i < n; i++) {
        snprintf(cmid, sizeof cmid, "cm%d", ++f->msg_counter);
        if (body_len) {
            memset(body, 'b', body_len);
            body[body_len] = '\0';
        } else {
            snprintf(body, 32, "message %d", f->msg_counter);
        }
        cd_req req;
        memset(&req, 0, sizeof req);
        req.type = CD_FRAME_MSG_SEND;
        req.conversation_id = f->cid;
        req.client_msg_id = cmid;
        req.body = body;
        req.body_len = strlen(body);
        prep_started(f, cd_conv_send(f->st, &f->cfg, &a, "", NULL, &req, on_prep_sent, f));
    }
    free(body);
}

/* The visitor and its conversation (the form message is seq 1), and a token for it. */
static void make_conversation(fx *f)
{
    cd_req req;
    memset(&req, 0, sizeof req);
    req.type = CD_FRAME_HELLO;
    req.site = SITE;
    prep_started(f, cd_conv_visitor_hello(f->st, &f->cfg, SITE, "", "", &req, on_prep, f));
    prep_wait(f);
    memset(&req, 0, sizeof req);
    req.type = CD_FRAME_CONV_START;
    req.form_subject = "Need help";
    req.form_message = "first";
    prep_started(f, cd_conv_start(f->st, &f->cfg, SITE, f->vid, &req, "*", NULL, on_prep, f));
    prep_wait(f);
    assert_true(f->cid[0] && f->epoch[0] && f->last >= 1);

    cd_auth_keyring kr;
    cd_auth_keyring_init(&kr);
    assert_int_equal(cd_auth_keyring_add_hex(&kr, "cfg", SECRET), 0);
    cd_auth_claims c;
    memset(&c, 0, sizeof c);
    c.role = CD_AUTH_ROLE_VISITOR;
    cd_strlcpy(c.sub, f->vid, sizeof c.sub);
    cd_strlcpy(c.site, SITE, sizeof c.site);
    c.iat = (int64_t)cd_now_ms();
    c.exp = c.iat + 3600 * 1000;
    assert_int_equal(cd_auth_token_sign(&kr, &c, f->token, sizeof f->token), 0);
}

/* ---- synchronous Redis ---- */

/* Subscribers of the conversation's bus channel, as Redis counts them. */
static long long numsub(fx *f)
{
    redisReply *rep = redisCommand(f->rc, "PUBSUB NUMSUB %sch:conv:%s", f->prefix, f->cid);
    long long n = -1;
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && rep->element[1]->type == REDIS_REPLY_INTEGER)
        n = rep->element[1]->integer;
    freeReplyObject(rep);
    return n;
}

static bool numsub_is(fx *f, const void *arg)
{
    return numsub(f) == *(const long long *)arg;
}

/* ---- sessions ---- */

static conn *session_new(fx *f)
{
    assert_true(f->nconns < MAX_CONNS);
    conn *c = &f->conns[f->nconns++];
    memset(c, 0, sizeof *c);
    c->f = f;
    c->got = json_array();
    c->popping = true;
    c->s = cd_session_create(f->node, CD_SESSION_VISITOR, ORIGIN, SITE, c);
    assert_non_null(c->s);
    return c;
}

#define FMT(a, b) __attribute__((format(printf, a, b)))

static FMT(2, 3) void send_frame(conn *c, const char *fmt, ...)
{
    char buf[FRAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    cd_session_on_frame(c->s, buf, (size_t)n);
}

static void detach(conn *c)
{
    cd_session_detach(c->s);
    c->detached = true;
}

static const char *ftype(json_t *v)
{
    const char *t = json_string_value(json_object_get(v, "type"));
    return t ? t : "";
}

/* Index of the first popped frame of a type (and rid, if given), or -1. */
static long find_frame(const conn *c, const char *type, const char *rid)
{
    size_t i;
    json_t *v;
    json_array_foreach(c->got, i, v)
    {
        const char *r = json_string_value(json_object_get(v, "rid"));
        if (strcmp(ftype(v), type) == 0 && (!rid || (r && strcmp(r, rid) == 0)))
            return (long)i;
    }
    return -1;
}

typedef struct want_frame {
    const conn *c;
    const char *type, *rid;
} want_frame;

static bool got_frame(fx *f, const void *arg)
{
    const want_frame *w = arg;
    (void)f;
    return find_frame(w->c, w->type, w->rid) >= 0;
}

static void wait_frame(conn *c, const char *type, const char *rid)
{
    want_frame w = {c, type, rid};
    if (!wait_for(c->f, got_frame, &w, WAIT_MS))
        fail_msg("no %s frame (rid %s) within %d ms", type, rid ? rid : "-", WAIT_MS);
}

static size_t count_type(const conn *c, const char *type)
{
    size_t i, n = 0;
    json_t *v;
    json_array_foreach(c->got, i, v)
    {
        if (strcmp(ftype(v), type) == 0)
            n++;
    }
    return n;
}

typedef struct want_count {
    const conn *c;
    size_t n;
} want_count;

static bool got_messages(fx *f, const void *arg)
{
    const want_count *w = arg;
    (void)f;
    return count_type(w->c, "message.created") >= w->n;
}

static void wait_messages(conn *c, size_t n)
{
    want_count w = {c, n};
    if (!wait_for(c->f, got_messages, &w, WAIT_MS))
        fail_msg("%zu message.created frames within %d ms, want %zu", count_type(c, "message.created"), WAIT_MS, n);
}

static int close_code(const conn *c, const char **reason, bool *flush)
{
    const char *r;
    bool fl;
    int code = cd_session_close_code(c->s, &r, &fl);
    if (reason)
        *reason = r;
    if (flush)
        *flush = fl;
    return code;
}

/* A visitor session of the test's visitor after its welcome (resume: the hello's "resume"
 * array, or NULL). The welcome follows the visitor's conversations. */
static conn *open_visitor(fx *f, const char *resume)
{
    conn *c = session_new(f);
    send_frame(c, "{\"type\":\"hello\",\"rid\":\"h\",\"site\":\"%s\",\"token\":\"%s\"%s%s}", SITE, f->token,
               resume ? ",\"resume\":" : "", resume ? resume : "");
    wait_frame(c, "welcome", "h");
    assert_int_equal(close_code(c, NULL, NULL), 0);
    return c;
}

/* The seqs of the message.created frames popped so far: "4,5,6". */
static void seq_list(const conn *c, char *out, size_t n)
{
    size_t i, len = 0;
    json_t *v;
    out[0] = '\0';
    json_array_foreach(c->got, i, v)
    {
        if (strcmp(ftype(v), "message.created") != 0)
            continue;
        json_t *seq = json_object_get(json_object_get(v, "message"), "seq");
        assert_true(json_is_integer(seq));
        int k = snprintf(out + len, n - len, "%s%lld", len ? "," : "", (long long)json_integer_value(seq));
        assert_true(k > 0 && (size_t)k < n - len);
        len += (size_t)k;
    }
}

/* "from,...,to" */
static void range_list(char *out, size_t n, int64_t from, int64_t to)
{
    size_t len = 0;
    out[0] = '\0';
    for (int64_t s = from; s <= to; s++) {
        int k = snprintf(out + len, n - len, "%s%lld", len ? "," : "", (long long)s);
        assert_true(k > 0 && (size_t)k < n - len);
        len += (size_t)k;
    }
}

static void expect_seqs(const conn *c, int64_t from, int64_t to)
{
    char got[4096], want[4096];
    seq_list(c, got, sizeof got);
    range_list(want, sizeof want, from, to);
    assert_string_equal(got, want);
}

/* A live message.created event as the bus delivers it ("<seq> * -\n<frame>"), with a
 * body of body_len bytes. Returns the frame's length (what the outbound queue counts). */
static size_t feed(fx *f, int64_t seq, size_t body_len)
{
    char *p = malloc(body_len + 512);
    assert_non_null(p);
    int h = snprintf(p, 512, "%lld * -\n", (long long)seq);
    int n = snprintf(p + h, 512 - (size_t)h,
                     "{\"type\":\"message.created\",\"conversation_id\":\"%s\",\"message\":{\"seq\":%lld,\"body\":\"",
                     f->cid, (long long)seq);
    size_t len = (size_t)h + (size_t)n;
    memset(p + len, 'x', body_len);
    len += body_len;
    memcpy(p + len, "\"}}", 3);
    len += 3;
    char ch[128];
    int chl = snprintf(ch, sizeof ch, "conv:%s", f->cid);
    cd_hub_dispatch(f->hub, ch, (size_t)chl, p, len);
    free(p);
    return len - (size_t)h;
}

static cd_node_stats stats(fx *f)
{
    cd_node_stats st;
    cd_node_get_stats(f->node, &st);
    return st;
}

/* ---- fixture: store, bus, hub and node as chatdeskd builds them ---- */

static void on_store_state(void *ud, bool up)
{
    fx *f = ud;
    cd_node_on_store(f->node, up);
}

static void on_bus_message(void *ud, const char *channel, size_t chlen, const char *payload, size_t len)
{
    fx *f = ud;
    cd_hub_dispatch(f->hub, channel, chlen, payload, len);
}

static void on_bus_state(void *ud, bool up)
{
    fx *f = ud;
    cd_node_on_bus(f->node, up);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    *state = f;
    it_world_init(&f->loop, &f->cfg, f->prefix, sizeof f->prefix, "ss");
    it_set_str(&f->cfg.token_secret, SECRET);
    f->rc = redisConnectUnix(redis_path);
    if (!f->rc || f->rc->err) {
        print_error("redisConnectUnix %s failed\n", redis_path);
        return -1;
    }
    char *site_add[] = {"site-add", "--key", SITE, "--name", "Site one", "--origin", ORIGIN};
    if (cd_admin_main(&f->cfg, (int)CD_ARRAY_LEN(site_add), site_add) != 0) {
        print_error("admin site-add failed\n");
        return -1;
    }
    f->st = cd_store_create(&f->loop, &f->cfg);
    f->bus = cd_bus_create(&f->loop, &f->cfg, f->st, NODE_ID, on_bus_message, on_bus_state, f);
    f->hub = cd_hub_create(f->bus);
    f->node = cd_node_create(&f->loop, &f->cfg, NODE_ID, f->st, f->hub, &fake_io);
    if (!f->st || !f->bus || !f->node) {
        print_error("store, bus or node not created\n");
        return -1;
    }
    cd_store_on_state(f->st, on_store_state, f);
    cd_store_start(f->st);
    if (!wait_for(f, store_ready, NULL, WAIT_MS)) {
        print_error("store up and sites loaded: not within %d ms (redis %s)\n", WAIT_MS, redis_url);
        return -1;
    }
    make_conversation(f);
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    if (!f)
        return 0;
    for (size_t i = 0; i < f->nconns; i++) {
        if (!f->conns[i].detached)
            cd_session_detach(f->conns[i].s);
        json_decref(f->conns[i].got);
    }
    /* chatdeskd's order: node, bus, store (pending replies come back as failures) */
    if (f->node)
        cd_node_destroy(f->node);
    if (f->bus)
        cd_bus_destroy(f->bus);
    if (f->st) {
        cd_store_stop(f->st);
        cd_store_destroy(f->st);
    }
    int rc = it_loop_finish(&f->loop);
    cd_hub_destroy(f->hub);
    if (f->rc) {
        it_drop_prefix(f->rc, f->prefix);
        redisFree(f->rc);
    }
    cd_config_cleanup(&f->cfg);
    free(f);
    if (rc != 0) {
        print_error("the uv loop still has handles after teardown\n");
        return -1;
    }
    return 0;
}

/* ---- 1. seq ordering ---- */

/* Live events out of order and duplicated: each seq reaches the session once, in order;
 * one gap makes one backfill however many events show it. */
static void test_seq_order_despite_reordered_and_duplicate_events(void **state)
{
    fx *f = *state;
    conn *c = open_visitor(f, NULL);
    int64_t L = f->last;
    send_msgs(f, 6, 0); /* L+1..L+6 stored; the bus is not started, nothing arrives live */
    prep_wait(f);
    assert_int_equal(f->last, L + 6);
    cd_node_stats st0 = stats(f);

    feed(f, L + 1, 0); /* next expected: delivered at once */
    feed(f, L + 1, 0); /* duplicate */
    feed(f, L + 3, 0); /* before L+2: a gap, backfilled from history */
    feed(f, L + 2, 0); /* the late one, while the backfill is in flight */
    feed(f, L + 3, 0); /* duplicate of the gap event */
    drain(c);
    expect_seqs(c, L + 1, L + 1); /* nothing newer before the backfill */

    wait_messages(c, 6);
    expect_seqs(c, L + 1, L + 6);
    send_msgs(f, 1, 0); /* L+7 */
    prep_wait(f);
    feed(f, L + 4, 0); /* stale duplicates after the backfill */
    feed(f, L + 6, 0);
    feed(f, L + 7, 0); /* the next one is live again */
    barrier(f);
    drain(c);
    expect_seqs(c, L + 1, L + 7);
    assert_int_equal(stats(f).backfills - st0.backfills, 1);
    assert_int_equal(count_type(c, "resumed"), 0);
    assert_int_equal(close_code(c, NULL, NULL), 0);
}

/* ---- 2. gap backfill ---- */

/* A gap backfills from history; an event seen while that backfill is in flight and newer
 * than what it read starts another one; every seq ends up there once, in order. */
static void test_gap_backfill_then_newer_event_backfills_again(void **state)
{
    fx *f = *state;
    conn *c = open_visitor(f, NULL);
    int64_t L = f->last;
    send_msgs(f, 3, 0);
    prep_wait(f);
    cd_node_stats st0 = stats(f);

    feed(f, L + 3, 0);  /* L+1 and L+2 missed: the backfill reads up to L+3 */
    send_msgs(f, 3, 0); /* written after that read (replies come in order): L+4..L+6 */
    feed(f, L + 6, 0);  /* arrives while the backfill is in flight */
    drain(c);
    assert_int_equal(count_type(c, "message.created"), 0);

    wait_messages(c, 6);
    prep_wait(f);
    barrier(f);
    drain(c);
    assert_int_equal(f->last, L + 6);
    expect_seqs(c, L + 1, L + 6);
    assert_int_equal(stats(f).backfills - st0.backfills, 2);
    assert_int_equal(stats(f).resume_reset - st0.resume_reset, 0);
    assert_int_equal(count_type(c, "resumed"), 0); /* a recovered backfill says nothing */
}

/* A gap larger than resume_max cannot be backfilled: the session says so with
 * resumed recovered:false and replays nothing; later events continue from there. */
static void test_gap_beyond_resume_max_reports_loss(void **state)
{
    fx *f = *state;
    f->cfg.resume_max = 2;
    conn *c = open_visitor(f, NULL);
    int64_t L = f->last;
    send_msgs(f, 4, 0);
    prep_wait(f);
    cd_node_stats st0 = stats(f);

    feed(f, L + 4, 0);
    wait_frame(c, "resumed", NULL);
    json_t *r = json_array_get(c->got, (size_t)find_frame(c, "resumed", NULL));
    assert_string_equal(json_string_value(json_object_get(r, "conversation_id")), f->cid);
    assert_int_equal(json_integer_value(json_object_get(r, "last_seq")), L + 4);
    assert_string_equal(json_string_value(json_object_get(r, "epoch")), f->epoch);
    assert_true(json_is_false(json_object_get(r, "recovered")));
    assert_int_equal(count_type(c, "message.created"), 0);
    assert_int_equal(stats(f).resume_reset - st0.resume_reset, 1);

    feed(f, L + 4, 0); /* already reported */
    feed(f, L + 5, 0); /* the next one after the reported last_seq */
    drain(c);
    expect_seqs(c, L + 5, L + 5);
}

/* A gap wider than a page is backfilled page by page through a small queue: complete,
 * in order, without a resumed frame or an overflow. */
static void test_gap_backfill_pages_through_small_queue(void **state)
{
    fx *f = *state;
    f->cfg.outq_max_frames = 8; /* pages of 4 */
    conn *c = open_visitor(f, NULL);
    int64_t L = f->last;
    send_msgs(f, 22, 0);
    prep_wait(f);
    cd_node_stats st0 = stats(f);
    c->batch_max = 0;

    feed(f, L + 22, 0);
    wait_messages(c, 22);
    barrier(f);
    drain(c);
    expect_seqs(c, L + 1, L + 22);
    assert_true(c->batch_max <= 4);
    assert_int_equal(count_type(c, "resumed"), 0);
    assert_int_equal(close_code(c, NULL, NULL), 0);
    assert_int_equal(stats(f).backfills - st0.backfills, 1);
}

/* A sentinel event published after everything else: once each session has it, every
 * earlier bus message has been delivered (Redis keeps publish order per subscriber). */
static bool all_got_sentinel(fx *f, const void *arg)
{
    (void)arg;
    for (size_t i = 0; i < f->nconns; i++)
        if (!f->conns[i].detached && find_frame(&f->conns[i], "sentinel", NULL) < 0)
            return false;
    return true;
}

static void bus_sentinel(fx *f)
{
    redisReply *rep =
        redisCommand(f->rc, "PUBLISH %sch:conv:%s %s", f->prefix, f->cid, "0 * -\n{\"type\":\"sentinel\"}");
    assert_non_null(rep);
    freeReplyObject(rep);
    assert_true(wait_for(f, all_got_sentinel, NULL, WAIT_MS));
}

static void start_bus(fx *f)
{
    cd_bus_start(f->bus);
    assert_true(wait_for(f, bus_ready, NULL, WAIT_MS));
}

/* The real bus delivers every message while an injected gap event makes the sessions
 * backfill at the same time: each session still sees each seq once, in order, and never
 * the gap event itself (only stored messages). */
static void test_seq_order_live_bus_with_injected_gap(void **state)
{
    fx *f = *state;
    start_bus(f);
    conn *c[2] = {open_visitor(f, NULL), open_visitor(f, NULL)};
    long long one = 1;
    assert_true(wait_for(f, numsub_is, &one, WAIT_MS));
    int64_t L = f->last;

    send_msgs(f, 10, 0);
    feed(f, L + 12, 0); /* both backfill, reading after the first 10 sends */
    send_msgs(f, 20, 0);
    prep_wait(f);
    assert_int_equal(f->last, L + 30);
    for (int i = 0; i < 2; i++)
        wait_messages(c[i], 30);
    barrier(f);
    bus_sentinel(f);
    for (int i = 0; i < 2; i++) {
        expect_seqs(c[i], L + 1, L + 30);
        size_t k;
        json_t *v;
        json_array_foreach(c[i]->got, k, v)
        {
            if (strcmp(ftype(v), "message.created") == 0)
                assert_true(strncmp(json_string_value(json_object_get(json_object_get(v, "message"), "body")),
                                    "message ", 8) == 0);
        }
    }
}

/* ---- 3. paging of resumes ---- */

/* A resume far behind goes page by page, each page (half the outbound queue) read only
 * when the connection has written the previous one: the queue never overflows, and the
 * replay is complete and in order, then resumed recovered:true. */
static void test_resume_pages_through_small_queue(void **state)
{
    fx *f = *state;
    f->cfg.outq_max_frames = 8; /* pages of 4 */
    f->cfg.resume_max = 30;
    send_msgs(f, 40, 0);
    prep_wait(f);
    int64_t L = f->last, after = L - 28;
    conn *c = open_visitor(f, NULL);
    json_array_clear(c->got);
    c->batch_max = 0;
    cd_node_stats st0 = stats(f);

    c->popping = false; /* a connection that writes nothing yet */
    send_frame(c,
               "{\"type\":\"resume\",\"rid\":\"r1\",\"conversations\":[{\"conversation_id\":\"%s\",\"after_seq\":%lld,"
               "\"epoch\":\"%s\"}]}",
               f->cid, (long long)after, f->epoch);
    barrier(f); /* the first page is in */
    barrier(f); /* and no second one comes while nothing is written */
    assert_int_equal(close_code(c, NULL, NULL), 0);
    drain(c); /* the ok at once, then only the first page */
    assert_int_equal(json_array_size(c->got), 5);
    assert_string_equal(ftype(json_array_get(c->got, 0)), "ok");
    assert_string_equal(json_string_value(json_object_get(json_array_get(c->got, 0), "rid")), "r1");
    expect_seqs(c, after + 1, after + 4);

    c->popping = true;
    wait_frame(c, "resumed", NULL);
    barrier(f);
    drain(c);
    expect_seqs(c, after + 1, L);
    json_t *last = json_array_get(c->got, json_array_size(c->got) - 1);
    assert_string_equal(ftype(last), "resumed");
    assert_string_equal(json_string_value(json_object_get(last, "conversation_id")), f->cid);
    assert_int_equal(json_integer_value(json_object_get(last, "last_seq")), L);
    assert_string_equal(json_string_value(json_object_get(last, "epoch")), f->epoch);
    assert_true(json_is_true(json_object_get(last, "recovered")));
    assert_true(c->batch_max <= 5); /* a page and at most the resumed frame at a time */
    assert_int_equal(close_code(c, NULL, NULL), 0);
    cd_node_stats st1 = stats(f);
    assert_int_equal(st1.resume_recovered - st0.resume_recovered, 1);
    assert_int_equal(st1.slow_consumer_closes - st0.slow_consumer_closes, 0);
}

/* A hello's resume beyond resume_max: welcome, then resumed recovered:false, no replay. */
static void test_resume_beyond_resume_max_not_recovered(void **state)
{
    fx *f = *state;
    f->cfg.outq_max_frames = 8;
    f->cfg.resume_max = 30;
    send_msgs(f, 40, 0);
    prep_wait(f);
    int64_t L = f->last;
    char resume[256];
    snprintf(resume, sizeof resume, "[{\"conversation_id\":\"%s\",\"after_seq\":%lld,\"epoch\":\"%s\"}]", f->cid,
             (long long)(L - 31), f->epoch);
    conn *c = open_visitor(f, resume);
    wait_frame(c, "resumed", NULL);
    barrier(f);
    drain(c);
    assert_int_equal(json_array_size(c->got), 2);
    assert_string_equal(ftype(json_array_get(c->got, 0)), "welcome");
    json_t *r = json_array_get(c->got, 1);
    assert_int_equal(json_integer_value(json_object_get(r, "last_seq")), L);
    assert_true(json_is_false(json_object_get(r, "recovered")));
    assert_int_equal(close_code(c, NULL, NULL), 0);
}

/* ---- 4. outbound queue bounds ---- */

static void expect_slow_reader_closed(conn *c, int closes_before)
{
    const char *reason;
    bool flush = true;
    assert_int_equal(close_code(c, &reason, &flush), 4008);
    assert_string_equal(reason, "outbound queue overflow");
    assert_false(flush);                       /* the queued frames are dropped... */
    assert_false(cd_session_has_output(c->s)); /* ...and released at once */
    assert_null(cd_session_pop(c->s));
    assert_int_equal(c->closes, closes_before + 1);
}

/* A reader that never writes while events pour in is closed with 4008 when the queue
 * would exceed outq_max_frames; later events are not queued again. */
static void test_slow_reader_closed_at_frame_limit(void **state)
{
    fx *f = *state;
    f->cfg.outq_max_frames = 8;
    conn *c = open_visitor(f, NULL);
    c->popping = false;
    int64_t L = f->last;
    int wakes = c->wakes, closes = c->closes;
    cd_node_stats st0 = stats(f);
    for (int i = 1; i <= 8; i++) {
        feed(f, L + i, 0);
        assert_int_equal(close_code(c, NULL, NULL), 0);
    }
    assert_int_equal(c->wakes, wakes + 1); /* once, when the queue stopped being empty */
    feed(f, L + 9, 0);
    expect_slow_reader_closed(c, closes);
    assert_int_equal(stats(f).slow_consumer_closes - st0.slow_consumer_closes, 1);

    for (int i = 10; i <= 20; i++)
        feed(f, L + i, 0);
    send_frame(c, "{\"type\":\"ping\",\"rid\":\"p\"}"); /* frames after the close are ignored */
    assert_false(cd_session_has_output(c->s));
    assert_int_equal(c->wakes, wakes + 1);
    assert_int_equal(c->closes, closes + 1);
    assert_int_equal(stats(f).slow_consumer_closes - st0.slow_consumer_closes, 1);
}

/* The same with outq_max_bytes: closed at the frame that would pass the byte limit. */
static void test_slow_reader_closed_at_byte_limit(void **state)
{
    fx *f = *state;
    f->cfg.outq_max_frames = 1000;
    f->cfg.outq_max_bytes = 65536;
    conn *c = open_visitor(f, NULL);
    c->popping = false;
    int64_t seq = f->last;
    int closes = c->closes;
    size_t queued = 0, len = 0;
    for (int i = 0; i < 100; i++) {
        len = feed(f, ++seq, 6000);
        if (close_code(c, NULL, NULL))
            break;
        queued += len;
    }
    assert_true(queued <= 65536);
    assert_true(queued + len > 65536);
    expect_slow_reader_closed(c, closes);
}

/* ---- 5. hub reference counts ---- */

static void expect_refs(fx *f, size_t topics, size_t channels)
{
    assert_int_equal(cd_hub_topic_count(f->hub), topics);
    assert_int_equal(cd_bus_channel_count(f->bus), channels);
}

/* N sessions following one conversation: one topic and one bus subscription (one Redis
 * subscriber), kept until the last of them leaves. */
static void test_hub_one_subscription_per_conversation(void **state)
{
    fx *f = *state;
    start_bus(f);
    size_t topics = cd_hub_topic_count(f->hub), channels = cd_bus_channel_count(f->bus);
    long long zero = 0, one = 1;
    assert_int_equal(numsub(f), 0);

    conn *c[3];
    char resume[256];
    snprintf(resume, sizeof resume, "[{\"conversation_id\":\"%s\",\"after_seq\":%lld}]", f->cid, (long long)f->last);
    for (int i = 0; i < 3; i++) {
        c[i] = open_visitor(f, i == 0 ? resume : NULL); /* the first also resumes it: joined once */
        expect_refs(f, topics + 1, channels + 1);
    }
    wait_frame(c[0], "resumed", NULL);
    assert_true(wait_for(f, numsub_is, &one, WAIT_MS));

    int64_t L = f->last;
    unsigned long long delivered = cd_hub_delivered(f->hub);
    send_msgs(f, 1, 0); /* through Redis pub/sub this time */
    prep_wait(f);
    for (int i = 0; i < 3; i++)
        wait_messages(c[i], 1);
    assert_true(cd_hub_delivered(f->hub) - delivered >= 3);

    detach(c[0]);
    expect_refs(f, topics + 1, channels + 1);
    detach(c[1]);
    expect_refs(f, topics + 1, channels + 1);
    send_msgs(f, 1, 0); /* the one left still gets events */
    prep_wait(f);
    wait_messages(c[2], 2);
    expect_seqs(c[2], L + 1, L + 2);
    assert_int_equal(numsub(f), 1);

    detach(c[2]);
    expect_refs(f, topics, channels);
    assert_true(wait_for(f, numsub_is, &zero, WAIT_MS));
    assert_int_equal(f->io_after_detach, 0);
}

/* ---- 6. detach with requests in flight ---- */

/* A connection that goes away while its requests are in flight: the session stays until
 * the replies are in, then goes without touching the connection (the asan layer catches a
 * use after free or a leak here). */
static void test_detach_with_requests_in_flight(void **state)
{
    fx *f = *state;
    f->cfg.outq_max_frames = 8;
    send_msgs(f, 20, 0);
    prep_wait(f);
    int64_t L = f->last;

    conn *h = session_new(f); /* hello in flight */
    send_frame(h, "{\"type\":\"hello\",\"rid\":\"h\",\"site\":\"%s\",\"token\":\"%s\"}", SITE, f->token);
    detach(h);

    conn *m = open_visitor(f, NULL); /* message.send in flight */
    send_frame(m,
               "{\"type\":\"message.send\",\"rid\":\"m\",\"conversation_id\":\"%s\",\"client_msg_id\":\"inflight\","
               "\"body\":\"sent then gone\"}",
               f->cid);
    detach(m);

    conn *p = open_visitor(f, NULL); /* the second page of a resume in flight */
    p->popping = false;
    send_frame(p,
               "{\"type\":\"resume\",\"rid\":\"r\",\"conversations\":[{\"conversation_id\":\"%s\",\"after_seq\":0}]}",
               f->cid);
    barrier(f);
    drain(p); /* the first page written: the next one is asked for */
    assert_int_equal(count_type(p, "message.created"), 4);
    detach(p);

    conn *b = open_visitor(f, NULL); /* a gap backfill in flight */
    feed(f, L + 3, 0);
    detach(b);

    cd_node_stats st0 = stats(f);
    barrier(f);
    cd_node_stats st1 = stats(f);
    assert_int_equal(st1.frames_out, st0.frames_out); /* nothing queued for a gone connection */
    assert_int_equal(f->io_after_detach, 0);
    assert_int_equal(cd_node_session_count(f->node), 0);
    /* the request itself was carried out: the conversation has the message */
    cd_conv_author a = {"visitor", f->vid, "", NULL};
    prep_started(f, cd_conv_history(f->st, &a, f->cid, 0, 1, on_prep, f));
    prep_wait(f);
    assert_int_equal(f->last, L + 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    if (!it_redis_from_env(&redis_url, &redis_path))
        return 0;

    const struct CMUnitTest tests[] = {
        T(test_seq_order_despite_reordered_and_duplicate_events),
        T(test_gap_backfill_then_newer_event_backfills_again),
        T(test_gap_beyond_resume_max_reports_loss),
        T(test_gap_backfill_pages_through_small_queue),
        T(test_seq_order_live_bus_with_injected_gap),
        T(test_resume_pages_through_small_queue),
        T(test_resume_beyond_resume_max_not_recovered),
        T(test_slow_reader_closed_at_frame_limit),
        T(test_slow_reader_closed_at_byte_limit),
        T(test_hub_one_subscription_per_conversation),
        T(test_detach_with_requests_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
