/* test_scripts.c: the store/lua scripts against a real redis-server (ctest -L integration).
 *
 * Every operation goes through the production path: cd_conv_* -> cd_store_fcall (FCALL of
 * the script's function in the store's library) on a libuv loop. Fixtures (sites, agents) are written and state is
 * checked with a second, synchronous hiredis connection, exactly as docs/keyspace.md lays
 * the keys out; published events are read from a third connection that PSUBSCRIBEs to the
 * test's channels before the operation. Each test has its own key prefix ("it<pid>_<n>:"),
 * so nothing is shared between tests and no FLUSHALL is needed. Every wait is bounded.
 */
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
#include "chatdesk/config.h"
#include "chatdesk/conv.h"
#include "chatdesk/log.h"
#include "chatdesk/presence.h"
#include "chatdesk/proto.h"
#include "chatdesk/store.h"
#include "it_support.h"

#define WAIT_MS 5000
#define SITE1 "site1"
#define SITE2 "site2"
#define N_CHILDREN 4
#define PER_CHILD 250
#define MAX_EVENTS 64
/* The site's waiting conversations without a team (routing: site:<key>:queue:<team>). */
#define QUEUE "%s{s:%s}:queue:_"

#define FMT(a, b) __attribute__((format(printf, a, b)))

static const char *redis_url;  /* CD_TEST_REDIS, "unix:/path" */
static const char *redis_path; /* the socket path in it */

/* Agents seeded for every test: two of site1, one of site2 only, one of both sites. */
static const cd_conv_author AG1 = {"agent", "ag_one", "Agent One", NULL};
static const cd_conv_author AG2 = {"agent", "ag_two", "Agent Two", NULL};
static const cd_conv_author AGX = {"agent", "ag_x", "Agent X", NULL};
static const cd_conv_author AGB = {"agent", "ag_both", "Agent Both", NULL};

typedef struct fx {
    uv_loop_t loop;
    cd_config cfg;
    cd_store *st;
    redisContext *rc; /* synchronous: fixtures and checks */
    char prefix[64];
} fx;

/* ---- the loop: run until a condition holds or a deadline passes ---- */

static bool flag_is_set(const void *arg)
{
    return *(const bool *)arg;
}

static bool store_is_up(const void *arg)
{
    return cd_store_up(arg);
}

static bool count_is_zero(const void *arg)
{
    return *(const int *)arg <= 0;
}

/* ---- results of cd_conv_* calls ---- */

typedef struct res {
    bool done, bad_json;
    cd_err err;
    char *message;
    json_t *conv, *msg, *visitor, *convs, *msgs, *frames, *agent;
    char visitor_id[80];
    int64_t seq, last_seq;
    char epoch[80];
    bool recovered, duplicate, agents_online;
} res;

/* The result a callback writes to; orphaned (r = NULL) when the wait timed out, so a late
 * callback (e.g. from cd_store_stop in teardown) never writes to a dead stack frame. */
typedef struct token {
    res *r;
} token;

static void res_clear(res *r)
{
    free(r->message);
    json_decref(r->conv);
    json_decref(r->msg);
    json_decref(r->visitor);
    json_decref(r->convs);
    json_decref(r->msgs);
    json_decref(r->frames);
    json_decref(r->agent);
    memset(r, 0, sizeof *r);
}

static json_t *parse_raw(res *r, const char *s)
{
    if (!s)
        return NULL;
    json_t *v = json_loads(s, JSON_DECODE_ANY, NULL);
    if (!v)
        r->bad_json = true;
    return v;
}

static void on_res(void *ud, cd_conv_result *cr)
{
    token *t = ud;
    res *r = t->r;
    free(t);
    if (!r)
        return;
    r->err = cr->err;
    r->message = cr->message ? strdup(cr->message) : NULL;
    r->conv = parse_raw(r, cr->raw_conversation);
    r->msg = parse_raw(r, cr->raw_message);
    r->visitor = parse_raw(r, cr->raw_visitor);
    r->convs = parse_raw(r, cr->raw_conversations);
    r->msgs = parse_raw(r, cr->raw_messages);
    r->agent = parse_raw(r, cr->raw_agent);
    r->frames = json_array();
    for (size_t i = 0; i < cr->n_frames; i++) {
        json_t *fr = parse_raw(r, cr->frames[i]);
        if (fr)
            json_array_append_new(r->frames, fr);
    }
    cd_strlcpy(r->visitor_id, cr->visitor_id, sizeof r->visitor_id);
    cd_strlcpy(r->epoch, cr->epoch, sizeof r->epoch);
    r->seq = cr->seq;
    r->last_seq = cr->last_seq;
    r->recovered = cr->recovered;
    r->duplicate = cr->duplicate;
    r->agents_online = cr->agents_online;
    r->done = true;
}

/* A presence call's reply: its error (the syncs it started are route/'s). */
static void on_pres(void *ud, const cd_route_result *pr)
{
    token *t = ud;
    res *r = t->r;
    free(t);
    if (!r)
        return;
    r->err = pr->err;
    r->message = pr->message ? strdup(pr->message) : NULL;
    r->done = true;
}

static token *tok(res *r)
{
    res_clear(r);
    token *t = malloc(sizeof *t);
    assert_non_null(t);
    t->r = r;
    return t;
}

static void await(fx *f, res *r, token *t, int rc)
{
    if (rc != 0) {
        free(t);
        fail_msg("cd_conv_* refused the call (store down?)");
    }
    if (!it_run_until(&f->loop, flag_is_set, &r->done, WAIT_MS)) {
        t->r = NULL;
        fail_msg("no reply within %d ms", WAIT_MS);
    }
    if (r->bad_json)
        fail_msg("a raw_* member of the result is not valid JSON");
}

static void expect_err(const res *r, cd_err want)
{
    if (r->err != want)
        fail_msg("got %s (%s), want %s", cd_err_name(r->err), r->message ? r->message : "-", cd_err_name(want));
}

static void expect_ok(const res *r)
{
    expect_err(r, CD_ERR_OK);
}

/* ---- operations (one call, one reply) ---- */

static void op_hello(fx *f, res *r, const char *site, const char *vid, const char *uid)
{
    cd_req hello;
    memset(&hello, 0, sizeof hello);
    hello.type = CD_FRAME_HELLO;
    hello.site = site;
    hello.has_user = uid != NULL;
    hello.user_id = uid;
    token *t = tok(r);
    await(f, r, t, cd_conv_visitor_hello(f->st, &f->cfg, site, vid, uid, &hello, on_res, t));
}

static void op_start(fx *f, res *r, const char *site, const char *vid, const char *message, cd_priority prio)
{
    cd_req req;
    memset(&req, 0, sizeof req);
    req.type = CD_FRAME_CONV_START;
    req.form_subject = "Need help";
    req.form_message = message;
    req.form_priority = prio;
    token *t = tok(r);
    await(f, r, t, cd_conv_start(f->st, &f->cfg, site, vid, &req, "*", NULL, on_res, t));
}

static void fill_send(cd_req *req, const char *cid, const char *cmid, const char *body, bool priv)
{
    memset(req, 0, sizeof *req);
    req->type = CD_FRAME_MSG_SEND;
    req->conversation_id = cid;
    req->client_msg_id = cmid;
    req->body = body;
    req->body_len = strlen(body);
    req->is_private = priv;
}

/* An agent's sites as a session hands them to msg_send (as seed_agent wrote them). */
static const char *sites_of(const cd_conv_author *a)
{
    if (strcmp(a->kind, "agent") != 0)
        return "";
    if (strcmp(a->id, AGX.id) == 0)
        return " " SITE2 " ";
    if (strcmp(a->id, AGB.id) == 0)
        return " " SITE1 " " SITE2 " ";
    if (strcmp(a->id, AG1.id) == 0 || strcmp(a->id, AG2.id) == 0)
        return " " SITE1 " ";
    return ""; /* no session exists for an unknown agent: it has no sites */
}

/* msg_send's own reply, in the shape the other calls' replies take here */
static void on_sent_res(void *ud, const cd_conv_sent *cs)
{
    token *t = ud;
    res *r = t->r;
    free(t);
    if (!r)
        return;
    r->err = cs->err;
    r->message = cs->error ? strdup(cs->error) : NULL;
    if (cs->err == CD_ERR_OK && cs->duplicate) {
        r->msg = parse_raw(r, cs->raw_message);
    } else if (cs->err == CD_ERR_OK) {
        cd_frame *fr = cd_frame_create(256);
        cd_proto_append_message(fr, &cs->msg);
        char *txt = strndup(fr->data, fr->len);
        r->msg = parse_raw(r, txt);
        free(txt);
        cd_frame_unref(fr);
    }
    r->frames = json_array();
    r->seq = cs->msg.seq;
    r->duplicate = cs->duplicate;
    r->done = true;
}

static void op_send(fx *f, res *r, const cd_conv_author *a, const char *cid, const char *cmid, const char *body,
                    bool priv)
{
    cd_req req;
    fill_send(&req, cid, cmid, body, priv);
    token *t = tok(r);
    await(f, r, t, cd_conv_send(f->st, &f->cfg, a, sites_of(a), NULL, &req, on_sent_res, t));
}

static void op_history(fx *f, res *r, const cd_conv_author *a, const char *cid, int64_t before, int limit)
{
    token *t = tok(r);
    await(f, r, t, cd_conv_history(f->st, a, cid, before, limit, on_res, t));
}

static void op_resume(fx *f, res *r, const cd_conv_author *a, const char *cid, int64_t after, const char *epoch)
{
    token *t = tok(r);
    await(f, r, t, cd_conv_resume(f->st, &f->cfg, a, cid, after, epoch, on_res, t));
}

static void op_typing(fx *f, res *r, const cd_conv_author *a, const char *cid, bool state)
{
    token *t = tok(r);
    await(f, r, t, cd_conv_typing(f->st, a, cid, state, on_res, t));
}

static void op_read(fx *f, res *r, const cd_conv_author *a, const char *cid, int64_t seq)
{
    token *t = tok(r);
    await(f, r, t, cd_conv_read(f->st, a, cid, seq, on_res, t));
}

static void op_csat(fx *f, res *r, const char *vid, const char *cid, int score, const char *comment)
{
    cd_req req;
    memset(&req, 0, sizeof req);
    req.type = CD_FRAME_CSAT;
    req.conversation_id = cid;
    req.score = score;
    req.comment = comment;
    token *t = tok(r);
    await(f, r, t, cd_conv_csat(f->st, NULL, vid, &req, on_res, t));
}

static void op_presence(fx *f, res *r, const char *aid, const char *status)
{
    token *t = tok(r);
    await(f, r, t, cd_presence_set(f->st, aid, status, on_pres, t));
}

static void op_accept(fx *f, res *r, const cd_conv_author *a, const char *cid)
{
    token *t = tok(r);
    await(f, r, t, cd_conv_accept(f->st, a, cid, on_res, t));
}

static void op_update(fx *f, res *r, const cd_conv_author *a, const char *cid, const char *status, cd_priority prio)
{
    cd_req req;
    memset(&req, 0, sizeof req);
    req.type = CD_FRAME_CONV_UPDATE;
    req.conversation_id = cid;
    req.status = status;
    req.priority = prio;
    token *t = tok(r);
    await(f, r, t, cd_conv_update(f->st, a, &req, NULL, on_res, t));
}

static void op_touch(fx *f, res *r, const char *node, const char *aid)
{
    const char *ids[] = {aid};
    token *t = tok(r);
    await(f, r, t, cd_presence_touch(f->st, node, (int64_t)cd_now_ms() + 60000, ids, 1, on_pres, t));
}

static void op_sweep(fx *f, res *r, const char *node, const char *aid)
{
    token *t = tok(r);
    await(f, r, t, cd_presence_sweep(f->st, node, aid, on_pres, t));
}

static void op_agent_get(fx *f, res *r, const char *aid)
{
    token *t = tok(r);
    await(f, r, t, cd_conv_agent_get(f->st, "id", aid, true, 0, NULL, on_res, t));
}

/* ---- JSON checks ---- */

static json_t *jget(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        fail_msg("JSON has no \"%s\"", key);
    return v;
}

static long long jint(json_t *o, const char *key)
{
    json_t *v = jget(o, key);
    if (!json_is_integer(v))
        fail_msg("\"%s\" is not an integer", key);
    return json_integer_value(v);
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = jget(o, key);
    if (!json_is_string(v))
        fail_msg("\"%s\" is not a string", key);
    return json_string_value(v);
}

/* "1,2,3": the seqs of a messages array, or of the messages in a frames array. */
static void seq_list(json_t *arr, bool frames, char *out, size_t n)
{
    size_t i, len = 0;
    json_t *v;
    out[0] = '\0';
    if (!json_is_array(arr))
        fail_msg("not an array");
    json_array_foreach(arr, i, v)
    {
        json_t *m = frames ? jget(v, "message") : v;
        if (frames) {
            assert_string_equal(jstr(v, "type"), "message.created");
        }
        int k = snprintf(out + len, n - len, "%s%lld", i ? "," : "", jint(m, "seq"));
        assert_true(k > 0 && (size_t)k < n - len);
        len += (size_t)k;
    }
}

/* "from,...,to" ascending, without the seqs in skip. */
static void range_list(char *out, size_t n, int64_t from, int64_t to, const int64_t *skip, size_t nskip)
{
    size_t len = 0;
    out[0] = '\0';
    for (int64_t s = from; s <= to; s++) {
        bool skipped = false;
        for (size_t i = 0; i < nskip; i++)
            skipped = skipped || skip[i] == s;
        if (skipped)
            continue;
        int k = snprintf(out + len, n - len, "%s%lld", len ? "," : "", (long long)s);
        assert_true(k > 0 && (size_t)k < n - len);
        len += (size_t)k;
    }
}

static size_t count_private(json_t *arr, bool frames)
{
    size_t i, n = 0;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (json_is_true(jget(frames ? jget(v, "message") : v, "private")))
            n++;
    }
    return n;
}

/* ---- synchronous Redis ---- */

static redisReply *rv(fx *f, const char *fmt, va_list ap)
{
    redisReply *rep = redisvCommand(f->rc, fmt, ap);
    if (!rep)
        fail_msg("redis: %s", f->rc->errstr);
    if (rep->type == REDIS_REPLY_ERROR) {
        char m[256];
        snprintf(m, sizeof m, "%s", rep->str);
        freeReplyObject(rep);
        fail_msg("redis error: %s", m);
    }
    return rep;
}

static FMT(2, 3) redisReply *rx(fx *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = rv(f, fmt, ap);
    va_end(ap);
    return rep;
}

static FMT(2, 3) void r_do(fx *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    freeReplyObject(rv(f, fmt, ap));
    va_end(ap);
}

static FMT(2, 3) long long r_int(fx *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = rv(f, fmt, ap);
    va_end(ap);
    if (rep->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(rep);
        fail_msg("expected an integer reply");
    }
    long long v = rep->integer;
    freeReplyObject(rep);
    return v;
}

/* A bulk string into out ("" with false for nil). */
static FMT(4, 5) bool r_str(fx *f, char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = rv(f, fmt, ap);
    va_end(ap);
    out[0] = '\0';
    bool found = rep->type == REDIS_REPLY_STRING;
    if (found)
        snprintf(out, n, "%s", rep->str);
    else if (rep->type != REDIS_REPLY_NIL) {
        freeReplyObject(rep);
        fail_msg("expected a string or nil reply");
    }
    freeReplyObject(rep);
    return found;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The elements of an array reply (string elements), sorted and joined by '\n'. */
static char *joined_sorted(redisReply *rep, size_t step)
{
    size_t n = rep->elements / step, len = 1;
    char **items = calloc(n + 1, sizeof *items);
    assert_non_null(items);
    for (size_t i = 0; i < n; i++) {
        size_t need = 2;
        for (size_t k = 0; k < step; k++)
            need += rep->element[i * step + k]->len + 1;
        items[i] = malloc(need);
        assert_non_null(items[i]);
        items[i][0] = '\0';
        for (size_t k = 0; k < step; k++) {
            strcat(items[i], k ? "=" : "");
            strcat(items[i], rep->element[i * step + k]->str);
        }
        len += strlen(items[i]) + 1;
    }
    qsort(items, n, sizeof *items, cmp_str);
    char *out = malloc(len);
    assert_non_null(out);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strcat(out, items[i]);
        strcat(out, "\n");
        free(items[i]);
    }
    free(items);
    return out;
}

/* Every key under the test's prefix, sorted. */
static char *keys_snapshot(fx *f)
{
    redisReply *rep = rx(f, "KEYS %s*", f->prefix);
    char *s = joined_sorted(rep, 1);
    freeReplyObject(rep);
    return s;
}

/* A hash as sorted "field=value" lines. */
static char *hash_snapshot(fx *f, const char *cid)
{
    redisReply *rep = rx(f, "HGETALL %s{s:%s}:conv:%s", f->prefix, cd_key_cid_site(cid), cid);
    char *s = joined_sorted(rep, 2);
    freeReplyObject(rep);
    return s;
}

/* ---- published events ---- */

typedef struct ev {
    char chan[160]; /* without prefix and "ch:" */
    long long seq;
    char aud[8];
    char excl[160];
    json_t *frame;
} ev;

typedef struct evlist {
    ev e[MAX_EVENTS];
    size_t n;
} evlist;

static redisContext *sub_open(fx *f)
{
    redisContext *c = redisConnectUnix(redis_path);
    if (!c || c->err)
        fail_msg("subscriber connect: %s", c ? c->errstr : "oom");
    redisReply *rep = redisCommand(c, "PSUBSCRIBE %sch:*", f->prefix);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    freeReplyObject(rep);
    struct timeval tv = {3, 0};
    assert_int_equal(redisSetTimeout(c, tv), REDIS_OK);
    return c;
}

/* "<seq> <aud> <excl>\n{json}" -> ev; fails on any other shape. */
static void parse_event(const char *chan, const char *p, size_t len, ev *e)
{
    memset(e, 0, sizeof *e);
    snprintf(e->chan, sizeof e->chan, "%s", chan);
    const char *nl = memchr(p, '\n', len);
    if (!nl)
        fail_msg("event on %s has no header line: %.*s", chan, (int)len, p);
    char head[256], check[256];
    size_t hl = (size_t)(nl - p);
    if (hl >= sizeof head)
        fail_msg("event header on %s too long", chan);
    memcpy(head, p, hl);
    head[hl] = '\0';
    if (sscanf(head, "%lld %7s %159s", &e->seq, e->aud, e->excl) != 3)
        fail_msg("bad event header \"%s\" on %s", head, chan);
    snprintf(check, sizeof check, "%lld %s %s", e->seq, e->aud, e->excl);
    if (strcmp(check, head) != 0 || e->seq < 0)
        fail_msg("bad event header \"%s\" on %s", head, chan);
    if (strcmp(e->aud, "*") != 0 && strcmp(e->aud, "a") != 0)
        fail_msg("bad audience \"%s\" on %s", e->aud, chan);
    json_error_t je;
    cd_proto_msg m;
    if (cd_proto_parse_bus_message(nl + 1, len - hl - 1, &m) == 0) {
        /* message.created in its compact bus form: the frame a node's hub makes of it */
        m.seq = e->seq;
        cd_frame *fr = cd_proto_encode_message_created(&m);
        e->frame = json_loadb(fr->data, fr->len, 0, &je);
        cd_frame_unref(fr);
    } else if (strcmp(chan, "timers") == 0) {
        /* "T <site> <due>": a timer was set (nodes poll that site by then) */
        char site[128];
        long long due;
        if (len - hl - 1 >= sizeof site || sscanf(nl + 1, "T %127s %lld", site, &due) != 2)
            fail_msg("bad timer notice on %s", chan);
        e->frame = json_pack("{s:s, s:s, s:I}", "type", "timer.set", "site", site, "due", (json_int_t)due);
    } else if (strcmp(chan, "events") == 0) {
        /* "E <site>": the site has events to apply (the first since its consumers caught up) */
        char site[128];
        if (len - hl - 1 >= sizeof site || sscanf(nl + 1, "E %127s", site) != 1)
            fail_msg("bad events notice on %s", chan);
        e->frame = json_pack("{s:s, s:s}", "type", "events.notice", "site", site);
    } else {
        e->frame = json_loadb(nl + 1, len - hl - 1, 0, &je);
    }
    if (!json_is_object(e->frame) || !json_is_string(json_object_get(e->frame, "type")))
        fail_msg("event frame on %s is not a JSON object with a type: %s", chan, je.text);
}

/* Everything published on the test's channels since sub_open (or the last collect): a
 * sentinel published now marks the end, so nothing is waited for beyond it. */
static void sub_collect(fx *f, redisContext *sub, evlist *out)
{
    size_t plen = strlen(f->prefix);
    r_do(f, "PUBLISH %sch:~end end", f->prefix);
    out->n = 0;
    for (;;) {
        redisReply *rep = NULL;
        if (redisGetReply(sub, (void **)&rep) != REDIS_OK || !rep)
            fail_msg("subscriber: nothing within 3 s (%s)", sub->errstr);
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4 || strcmp(rep->element[0]->str, "pmessage") != 0)
            fail_msg("subscriber: unexpected reply");
        const char *chan = rep->element[2]->str + plen + 3;
        if (strcmp(chan, "~end") == 0) {
            freeReplyObject(rep);
            break;
        }
        if (out->n == MAX_EVENTS)
            fail_msg("more than %d events", MAX_EVENTS);
        parse_event(chan, rep->element[3]->str, rep->element[3]->len, &out->e[out->n++]);
        freeReplyObject(rep);
    }
}

static void ev_clear(evlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        json_decref(l->e[i].frame);
    l->n = 0;
}

static const char *ev_type(const ev *e)
{
    return json_string_value(json_object_get(e->frame, "type"));
}

/* type NULL: any type. */
static size_t ev_count(const evlist *l, const char *chan, const char *type)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->e[i].chan, chan) == 0 && (!type || strcmp(ev_type(&l->e[i]), type) == 0))
            n++;
    return n;
}

/* The nth (from 0) event of a type on a channel. */
static const ev *ev_nth(const evlist *l, const char *chan, const char *type, size_t nth)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->e[i].chan, chan) == 0 && strcmp(ev_type(&l->e[i]), type) == 0 && nth-- == 0)
            return &l->e[i];
    fail_msg("no %s event on %s", type, chan);
    return NULL;
}

static const ev *ev_find(const evlist *l, const char *chan, const char *type)
{
    return ev_nth(l, chan, type, 0);
}

static void expect_header(const ev *e, long long seq, const char *aud, const char *excl)
{
    if (e->seq != seq || strcmp(e->aud, aud) != 0 || strcmp(e->excl, excl) != 0)
        fail_msg("%s on %s: header \"%lld %s %s\", want \"%lld %s %s\"", ev_type(e), e->chan, e->seq, e->aud, e->excl,
                 seq, aud, excl);
}

/* ---- fixtures ---- */

static void seed_site(fx *f, const char *key)
{
    r_do(f, "HSET %s{s:%s}:site key %s name %s origins %s identity_secret %s created_at %s", f->prefix, key, key, key,
         "[\"https://example.test\"]", "", "1700000000000");
    r_do(f, "SADD %s{g}:sites %s", f->prefix, key);
}

static void seed_agent(fx *f, const cd_conv_author *a, const char *site_a, const char *site_b)
{
    char sites[128], email[128];
    if (site_b)
        snprintf(sites, sizeof sites, "[\"%s\",\"%s\"]", site_a, site_b);
    else
        snprintf(sites, sizeof sites, "[\"%s\"]", site_a);
    snprintf(email, sizeof email, "%s@example.test", a->id);
    r_do(f,
         "HSET %s{a}:agent:%s id %s name %s email %s role %s sites %s teams %s pw %s status %s max_chats %s created_at "
         "%s",
         f->prefix, a->id, a->id, a->name, email, "agent", sites, "[]", "$argon2id$x", "offline", "5", "1700000000000");
    r_do(f, "SADD %s{a}:agents %s", f->prefix, a->id);
    r_do(f, "SET %s{a}:agent:email:%s %s", f->prefix, email, a->id);
    /* as the step that adds an agent to a site writes it (api.lua join_site): the site's
     * calls read the agent's name and role there, never the global record */
    const char *in[] = {site_a, site_b};
    for (size_t i = 0; i < 2 && in[i]; i++) {
        r_do(f, "SADD %s{s:%s}:agents %s", f->prefix, in[i], a->id);
        r_do(f, "HSET %s{s:%s}:agent:%s id %s name %s role agent status offline", f->prefix, in[i], a->id, a->id,
             a->name);
    }
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    it_world_init(&f->loop, &f->cfg, f->prefix, sizeof f->prefix, "it");
    f->st = cd_store_create(&f->loop, &f->cfg);
    if (!f->st) {
        print_error("cd_store_create failed for %s\n", redis_url);
        return -1;
    }
    cd_store_start(f->st);
    if (!it_run_until(&f->loop, store_is_up, f->st, WAIT_MS)) {
        print_error("store not up within %d ms (redis %s)\n", WAIT_MS, redis_url);
        return -1;
    }
    f->rc = redisConnectUnix(redis_path);
    if (!f->rc || f->rc->err) {
        print_error("redisConnectUnix %s failed\n", redis_path);
        return -1;
    }
    seed_site(f, SITE1);
    seed_site(f, SITE2);
    seed_agent(f, &AG1, SITE1, NULL);
    seed_agent(f, &AG2, SITE1, NULL);
    seed_agent(f, &AGX, SITE2, NULL);
    seed_agent(f, &AGB, SITE1, SITE2);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    if (!f)
        return 0;
    cd_store_stop(f->st);
    cd_store_destroy(f->st);
    int rc = it_loop_finish(&f->loop);
    it_drop_prefix(f->rc, f->prefix);
    redisFree(f->rc);
    cd_config_cleanup(&f->cfg);
    free(f);
    if (rc != 0) {
        print_error("the uv loop still has handles after cd_store_destroy\n");
        return -1;
    }
    return 0;
}

/* ---- building blocks ---- */

static void new_visitor(fx *f, const char *site, char *vid)
{
    res r = {0};
    op_hello(f, &r, site, "", NULL);
    expect_ok(&r);
    assert_true(strlen(r.visitor_id) > 2);
    snprintf(vid, 80, "%s", r.visitor_id);
    res_clear(&r);
}

/* A conversation; returns its last_seq after conversation.start (the form message, plus
 * whatever the start itself appends). epoch may be NULL. */
static int64_t new_conv(fx *f, const char *site, const char *vid, const char *message, char *cid, char *epoch)
{
    res r = {0};
    op_start(f, &r, site, vid, message, CD_PRIO_NONE);
    expect_ok(&r);
    snprintf(cid, 80, "%s", jstr(r.conv, "id"));
    if (epoch)
        snprintf(epoch, 80, "%s", jstr(r.conv, "epoch"));
    int64_t last = jint(r.conv, "last_seq");
    assert_true(last >= (message ? 1 : 0));
    res_clear(&r);
    return last;
}

static int64_t send_ok(fx *f, const cd_conv_author *a, const char *cid, const char *cmid, const char *body, bool priv)
{
    res r = {0};
    op_send(f, &r, a, cid, cmid, body, priv);
    expect_ok(&r);
    assert_false(r.duplicate);
    int64_t seq = r.seq;
    res_clear(&r);
    return seq;
}

/* A conversation with 8 messages after its start, the 4th of them a private note.
 * Returns last_seq; *priv_seq is the note's seq. */
static int64_t make_conv(fx *f, const char *vid, char *cid, char *epoch, int64_t *priv_seq)
{
    const cd_conv_author vis = {"visitor", vid, "", NULL};
    int64_t base = new_conv(f, SITE1, vid, "m1", cid, epoch);
    for (int k = 1; k <= 8; k++) {
        char cmid[16];
        snprintf(cmid, sizeof cmid, "r%d", k);
        bool priv = k == 4;
        assert_int_equal(send_ok(f, priv || k % 2 == 0 ? &AG1 : &vis, cid, cmid, "x", priv), base + k);
    }
    if (priv_seq)
        *priv_seq = base + 4;
    return base + 8;
}

typedef struct batch {
    int pending;
    int failed;
    long long last_seq;
} batch;

/* Pipelined: every reply in order, OK, not a duplicate, seq increasing. */
static void on_batch_reply(void *ud, const cd_conv_sent *cr)
{
    batch *b = ud;
    b->pending--;
    if (cr->err != CD_ERR_OK || cr->duplicate || cr->msg.seq <= b->last_seq)
        b->failed++;
    b->last_seq = cr->msg.seq;
}

/* n messages from a, client_msg_ids "<tag>-<i>", all in flight at once. */
static void send_many(fx *f, const cd_conv_author *a, const char *cid, const char *tag, int n)
{
    batch b = {0};
    for (int i = 0; i < n; i++) {
        char cmid[48], body[64];
        cd_req req;
        snprintf(cmid, sizeof cmid, "%s-%d", tag, i);
        snprintf(body, sizeof body, "message %d", i);
        fill_send(&req, cid, cmid, body, false);
        assert_int_equal(cd_conv_send(f->st, &f->cfg, a, sites_of(a), NULL, &req, on_batch_reply, &b), 0);
        b.pending++;
    }
    /* b lives in this frame: it cannot be left while replies are outstanding */
    if (!it_run_until(&f->loop, count_is_zero, &b.pending, 30000)) {
        fprintf(stderr, "send_many: %d replies missing after 30 s\n", b.pending);
        abort();
    }
    assert_int_equal(b.failed, 0);
}

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

/* ---- read, typing, csat, presence ---- */

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

/* The scripts are a Redis function library: flushed away (FUNCTION FLUSH, a promoted
 * replica without it), the next call loads it again and succeeds. */
static void test_library_reloaded_after_flush(void **state)
{
    fx *f = *state;
    char vid[80], cid[80];
    new_visitor(f, SITE1, vid);
    r_do(f, "FUNCTION FLUSH SYNC");
    redisReply *rep = rx(f, "FUNCTION LIST");
    assert_int_equal(rep->elements, 0);
    freeReplyObject(rep);
    new_conv(f, SITE1, vid, "after a flush", cid, NULL);
    rep = rx(f, "FUNCTION LIST");
    assert_int_equal(rep->elements, 1);
    freeReplyObject(rep);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    if (!it_redis_from_env(&redis_url, &redis_path))
        return 0;

    const struct CMUnitTest tests[] = {
        T(test_hello_creates_then_returns_same_visitor),
        T(test_hello_unknown_site_unauthorized),
        T(test_hello_vid_of_other_site_unauthorized),
        T(test_hello_identified_user_one_visitor),
        T(test_start_queued_indexed_published),
        T(test_send_concurrent_senders_gapless),
        T(test_send_dedupe),
        T(test_send_events_and_status),
        T(test_send_permissions),
        T(test_refused_calls_write_nothing),
        T(test_history_paging_and_private_notes),
        T(test_history_visitor_behind_many_private_notes),
        T(test_resume_recovers_missing_frames),
        T(test_resume_after_lost_data_new_epoch),
        T(test_resume_trimmed_history),
        T(test_resume_max_exceeded),
        T(test_accept_first_agent_wins),
        T(test_accept_pipelined_first_wins),
        T(test_update_queue_and_priority),
        T(test_read_stores_max),
        T(test_typing_published_not_stored),
        T(test_csat_after_resolved),
        T(test_presence_to_each_site),
        T(test_event_stream),
        T(test_library_reloaded_after_flush),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
