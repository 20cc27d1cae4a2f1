/* scripts_support: the harness the Redis function tests share (scripts_support.h). */
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

#include "chatdesk/clock.h"
#include "chatdesk/config.h"
#include "chatdesk/conv.h"
#include "chatdesk/log.h"
#include "chatdesk/presence.h"
#include "chatdesk/proto.h"
#include "chatdesk/store.h"
#include "it_support.h"
#include "scripts_support.h"

const char *redis_url;
const char *redis_path;

const cd_conv_author AG1 = {"agent", "ag_one", "Agent One", NULL};
const cd_conv_author AG2 = {"agent", "ag_two", "Agent Two", NULL};
const cd_conv_author AGX = {"agent", "ag_x", "Agent X", NULL};
const cd_conv_author AGB = {"agent", "ag_both", "Agent Both", NULL};

/* ---- the loop: run until a condition holds or a deadline passes ---- */

bool flag_is_set(const void *arg)
{
    return *(const bool *)arg;
}

bool store_is_up(const void *arg)
{
    return cd_store_up(arg);
}

bool count_is_zero(const void *arg)
{
    return *(const int *)arg <= 0;
}

/* ---- results of cd_conv_* calls ---- */

void res_clear(res *r)
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

void on_res(void *ud, cd_conv_result *cr)
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

token *tok(res *r)
{
    res_clear(r);
    token *t = malloc(sizeof *t);
    assert_non_null(t);
    t->r = r;
    return t;
}

void await(fx *f, res *r, token *t, int rc)
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

void expect_err(const res *r, cd_err want)
{
    if (r->err != want)
        fail_msg("got %s (%s), want %s", cd_err_name(r->err), r->message ? r->message : "-", cd_err_name(want));
}

void expect_ok(const res *r)
{
    expect_err(r, CD_ERR_OK);
}

/* ---- operations (one call, one reply) ---- */

void op_hello(fx *f, res *r, const char *site, const char *vid, const char *uid)
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

void op_start(fx *f, res *r, const char *site, const char *vid, const char *message, cd_priority prio)
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

void fill_send(cd_req *req, const char *cid, const char *cmid, const char *body, bool priv)
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
const char *sites_of(const cd_conv_author *a)
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
void on_sent_res(void *ud, const cd_conv_sent *cs)
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

void op_send(fx *f, res *r, const cd_conv_author *a, const char *cid, const char *cmid, const char *body, bool priv)
{
    cd_req req;
    fill_send(&req, cid, cmid, body, priv);
    token *t = tok(r);
    await(f, r, t, cd_conv_send(f->st, &f->cfg, a, sites_of(a), NULL, &req, on_sent_res, t));
}

void op_history(fx *f, res *r, const cd_conv_author *a, const char *cid, int64_t before, int limit)
{
    token *t = tok(r);
    await(f, r, t, cd_conv_history(f->st, a, cid, before, limit, on_res, t));
}

void op_resume(fx *f, res *r, const cd_conv_author *a, const char *cid, int64_t after, const char *epoch)
{
    token *t = tok(r);
    await(f, r, t, cd_conv_resume(f->st, &f->cfg, a, cid, after, epoch, on_res, t));
}

void op_typing(fx *f, res *r, const cd_conv_author *a, const char *cid, bool state)
{
    token *t = tok(r);
    await(f, r, t, cd_conv_typing(f->st, a, cid, state, on_res, t));
}

void op_read(fx *f, res *r, const cd_conv_author *a, const char *cid, int64_t seq)
{
    token *t = tok(r);
    await(f, r, t, cd_conv_read(f->st, a, cid, seq, on_res, t));
}

void op_csat(fx *f, res *r, const char *vid, const char *cid, int score, const char *comment)
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

void op_presence(fx *f, res *r, const char *aid, const char *status)
{
    token *t = tok(r);
    await(f, r, t, cd_presence_set(f->st, aid, status, on_pres, t));
}

void op_accept(fx *f, res *r, const cd_conv_author *a, const char *cid)
{
    token *t = tok(r);
    await(f, r, t, cd_conv_accept(f->st, a, cid, on_res, t));
}

void op_update(fx *f, res *r, const cd_conv_author *a, const char *cid, const char *status, cd_priority prio)
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

void op_touch(fx *f, res *r, const char *node, const char *aid)
{
    const char *ids[] = {aid};
    token *t = tok(r);
    await(f, r, t, cd_presence_touch(f->st, node, (int64_t)cd_now_ms() + 60000, ids, 1, on_pres, t));
}

void op_sweep(fx *f, res *r, const char *node, const char *aid)
{
    token *t = tok(r);
    await(f, r, t, cd_presence_sweep(f->st, node, aid, on_pres, t));
}

void op_agent_get(fx *f, res *r, const char *aid)
{
    token *t = tok(r);
    await(f, r, t, cd_conv_agent_get(f->st, aid, 0, NULL, on_res, t));
}

/* ---- JSON checks ---- */

json_t *jget(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        fail_msg("JSON has no \"%s\"", key);
    return v;
}

long long jint(json_t *o, const char *key)
{
    json_t *v = jget(o, key);
    if (!json_is_integer(v))
        fail_msg("\"%s\" is not an integer", key);
    return json_integer_value(v);
}

const char *jstr(json_t *o, const char *key)
{
    json_t *v = jget(o, key);
    if (!json_is_string(v))
        fail_msg("\"%s\" is not a string", key);
    return json_string_value(v);
}

/* "1,2,3": the seqs of a messages array, or of the messages in a frames array. */
void seq_list(json_t *arr, bool frames, char *out, size_t n)
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
void range_list(char *out, size_t n, int64_t from, int64_t to, const int64_t *skip, size_t nskip)
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

size_t count_private(json_t *arr, bool frames)
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

redisReply *rx(fx *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = rv(f, fmt, ap);
    va_end(ap);
    return rep;
}

void r_do(fx *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    freeReplyObject(rv(f, fmt, ap));
    va_end(ap);
}

long long r_int(fx *f, const char *fmt, ...)
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
bool r_str(fx *f, char *out, size_t n, const char *fmt, ...)
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
char *keys_snapshot(fx *f)
{
    redisReply *rep = rx(f, "KEYS %s*", f->prefix);
    char *s = joined_sorted(rep, 1);
    freeReplyObject(rep);
    return s;
}

/* A hash as sorted "field=value" lines. */
char *hash_snapshot(fx *f, const char *cid)
{
    redisReply *rep = rx(f, "HGETALL %s{s:%s}:conv:%s", f->prefix, cd_key_cid_site(cid), cid);
    char *s = joined_sorted(rep, 2);
    freeReplyObject(rep);
    return s;
}

/* ---- published events ---- */

redisContext *sub_open(fx *f)
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
void parse_event(const char *chan, const char *p, size_t len, ev *e)
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
void sub_collect(fx *f, redisContext *sub, evlist *out)
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

void ev_clear(evlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        json_decref(l->e[i].frame);
    l->n = 0;
}

const char *ev_type(const ev *e)
{
    return json_string_value(json_object_get(e->frame, "type"));
}

/* type NULL: any type. */
size_t ev_count(const evlist *l, const char *chan, const char *type)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->e[i].chan, chan) == 0 && (!type || strcmp(ev_type(&l->e[i]), type) == 0))
            n++;
    return n;
}

/* The nth (from 0) event of a type on a channel. */
const ev *ev_nth(const evlist *l, const char *chan, const char *type, size_t nth)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->e[i].chan, chan) == 0 && strcmp(ev_type(&l->e[i]), type) == 0 && nth-- == 0)
            return &l->e[i];
    fail_msg("no %s event on %s", type, chan);
    return NULL;
}

const ev *ev_find(const evlist *l, const char *chan, const char *type)
{
    return ev_nth(l, chan, type, 0);
}

void expect_header(const ev *e, long long seq, const char *aud, const char *excl)
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

int setup(void **state)
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

int teardown(void **state)
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

void new_visitor(fx *f, const char *site, char *vid)
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
int64_t new_conv(fx *f, const char *site, const char *vid, const char *message, char *cid, char *epoch)
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

int64_t send_ok(fx *f, const cd_conv_author *a, const char *cid, const char *cmid, const char *body, bool priv)
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
int64_t make_conv(fx *f, const char *vid, char *cid, char *epoch, int64_t *priv_seq)
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

/* Pipelined: every reply in order, OK, not a duplicate, seq increasing. */
void on_batch_reply(void *ud, const cd_conv_sent *cr)
{
    batch *b = ud;
    b->pending--;
    if (cr->err != CD_ERR_OK || cr->duplicate || cr->msg.seq <= b->last_seq)
        b->failed++;
    b->last_seq = cr->msg.seq;
}

/* n messages from a, client_msg_ids "<tag>-<i>", all in flight at once. */
void send_many(fx *f, const cd_conv_author *a, const char *cid, const char *tag, int n)
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
