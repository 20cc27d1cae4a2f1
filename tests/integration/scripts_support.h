/* scripts_support: what the Redis function tests (tests/integration/test_conv_*.c,
 * test_presence.c, test_events_stream.c, test_store_library.c) share, so each module's
 * functions get their own test program without a copy of the harness.
 *
 * Every operation goes through the production path: cd_conv_* / cd_presence_* ->
 * cd_store_fcall (FCALL of the function in the store's library) on a libuv loop. Fixtures
 * (sites, agents) are written and state is checked with a second, synchronous hiredis
 * connection, exactly as docs/keyspace.md lays the keys out; published events are read from
 * a third connection that PSUBSCRIBEs to the test's channels before the operation. Each
 * test has its own key prefix ("it<pid>_<n>:"), so nothing is shared between tests and no
 * FLUSHALL is needed. Every wait is bounded.
 *
 * A test program: `if (!it_redis_from_env(&redis_url, &redis_path)) return 0;` in main,
 * then its tests as T(test_fn) entries (setup seeds SITE1, SITE2 and the agents below).
 *
 * Which program a test of a Redis function goes in (by the module that owns the function,
 * docs/architecture.md; these were one test_scripts.c before):
 *   visitor_hello                                  test_conv_hello.c
 *   conv_start, conv_accept, conv_update, csat,
 *   a refused call writing nothing                 test_conv_lifecycle.c
 *   msg_send, history, read, typing                test_conv_messages.c
 *   resume                                         test_conv_resume.c
 *   presence set, touch, sweep                     test_presence.c
 *   the site event stream (events/ consumes it)    test_events_stream.c
 *   the function library itself                    test_store_library.c
 *   the timer poller (timers/)                     test_timers_poll.c
 * A module without a program yet gets its own test_<module>[_<part>].c (CMake finds it). */
#ifndef CHATDESK_SCRIPTS_SUPPORT_H
#define CHATDESK_SCRIPTS_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <uv.h>

#include "chatdesk/config.h"
#include "chatdesk/conv.h"
#include "chatdesk/proto.h"
#include "chatdesk/store.h"

#define WAIT_MS 5000
#define SITE1 "site1"
#define SITE2 "site2"
#define MAX_EVENTS 64
/* The site's waiting conversations without a team (routing: site:<key>:queue:<team>). */
#define QUEUE "%s{s:%s}:queue:_"

#define FMT(a, b) __attribute__((format(printf, a, b)))

/* A test with the shared fixture (cmocka_unit_test_setup_teardown). */
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

extern const char *redis_url;  /* CD_TEST_REDIS, "unix:/path" */
extern const char *redis_path; /* the socket path in it */

/* Agents seeded for every test: two of site1, one of site2 only, one of both sites. */
extern const cd_conv_author AG1, AG2, AGX, AGB;

typedef struct fx {
    uv_loop_t loop;
    cd_config cfg;
    cd_store *st;
    redisContext *rc; /* synchronous: fixtures and checks */
    char prefix[64];
} fx;

int setup(void **state);
int teardown(void **state);

/* ---- the loop (it_run_until conditions) ---- */

bool store_is_up(const void *arg);   /* arg: a cd_store */
bool count_is_zero(const void *arg); /* arg: an int counting down */
bool flag_is_set(const void *arg);   /* arg: a bool */

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

void res_clear(res *r);
void on_res(void *ud, cd_conv_result *cr);          /* ud: a token from tok() */
void on_sent_res(void *ud, const cd_conv_sent *cs); /* msg_send's reply; ud: a token from tok() */
token *tok(res *r);
void await(fx *f, res *r, token *t, int rc);
void expect_err(const res *r, cd_err want);
void expect_ok(const res *r);

/* ---- operations (one call, one reply) ---- */

void op_hello(fx *f, res *r, const char *site, const char *vid, const char *uid);
void op_start(fx *f, res *r, const char *site, const char *vid, const char *message, cd_priority prio);
void fill_send(cd_req *req, const char *cid, const char *cmid, const char *body, bool priv);
const char *sites_of(const cd_conv_author *a);
void op_send(fx *f, res *r, const cd_conv_author *a, const char *cid, const char *cmid, const char *body, bool priv);
void op_history(fx *f, res *r, const cd_conv_author *a, const char *cid, int64_t before, int limit);
void op_resume(fx *f, res *r, const cd_conv_author *a, const char *cid, int64_t after, const char *epoch);
void op_typing(fx *f, res *r, const cd_conv_author *a, const char *cid, bool state);
void op_read(fx *f, res *r, const cd_conv_author *a, const char *cid, int64_t seq);
void op_csat(fx *f, res *r, const char *vid, const char *cid, int score, const char *comment);
void op_presence(fx *f, res *r, const char *aid, const char *status);
void op_accept(fx *f, res *r, const cd_conv_author *a, const char *cid);
void op_update(fx *f, res *r, const cd_conv_author *a, const char *cid, const char *status, cd_priority prio);
void op_touch(fx *f, res *r, const char *node, const char *aid);
void op_sweep(fx *f, res *r, const char *node, const char *aid);
void op_agent_get(fx *f, res *r, const char *aid);

/* ---- JSON checks ---- */

json_t *jget(json_t *o, const char *key);
long long jint(json_t *o, const char *key);
const char *jstr(json_t *o, const char *key);
void seq_list(json_t *arr, bool frames, char *out, size_t n);
void range_list(char *out, size_t n, int64_t from, int64_t to, const int64_t *skip, size_t nskip);
size_t count_private(json_t *arr, bool frames);

/* ---- synchronous Redis (an error reply fails the test) ---- */

FMT(2, 3) redisReply *rx(fx *f, const char *fmt, ...);
FMT(2, 3) void r_do(fx *f, const char *fmt, ...);
FMT(2, 3) long long r_int(fx *f, const char *fmt, ...);
FMT(4, 5) bool r_str(fx *f, char *out, size_t n, const char *fmt, ...);
char *keys_snapshot(fx *f);
char *hash_snapshot(fx *f, const char *cid);

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

redisContext *sub_open(fx *f);
void parse_event(const char *chan, const char *p, size_t len, ev *e);
void sub_collect(fx *f, redisContext *sub, evlist *out);
void ev_clear(evlist *l);
const char *ev_type(const ev *e);
size_t ev_count(const evlist *l, const char *chan, const char *type);
const ev *ev_nth(const evlist *l, const char *chan, const char *type, size_t nth);
const ev *ev_find(const evlist *l, const char *chan, const char *type);
void expect_header(const ev *e, long long seq, const char *aud, const char *excl);

/* ---- building blocks ---- */

void new_visitor(fx *f, const char *site, char *vid);
int64_t new_conv(fx *f, const char *site, const char *vid, const char *message, char *cid, char *epoch);
int64_t send_ok(fx *f, const cd_conv_author *a, const char *cid, const char *cmid, const char *body, bool priv);
int64_t make_conv(fx *f, const char *vid, char *cid, char *epoch, int64_t *priv_seq);

/* Pipelined sends: replies counted down in pending, any not OK, a duplicate or out of
 * order counted in failed (on_batch_reply's ud is a batch). */
typedef struct batch {
    int pending;
    int failed;
    long long last_seq;
} batch;

void on_batch_reply(void *ud, const cd_conv_sent *cr);
void send_many(fx *f, const cd_conv_author *a, const char *cid, const char *tag, int n);

#endif
