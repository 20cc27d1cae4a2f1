/* cd_session: one connection's protocol state: lifetime (a refcount held by the connection
 * and by each request in flight, so a reply never finds a freed session), the bounded
 * outbound queue (over outq_max_frames/bytes: close 4008), subscriptions with ordered,
 * gapless delivery (a seq gap starts a backfill from history; a replay larger than half
 * the queue goes page by page as it drains), resume, and the dispatch of each frame
 * through the frame table (proto.h CD_PROTO_FRAMES: roles and handler; the handlers are
 * in handlers_*.c). Every frame after hello costs a rate-limit token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"
#include "chatdesk/presence.h"
#include "session_int.h"

/* ---------- lifetime ---------- */

static void continue_paging(cd_session *s);

/* s->npaging counts the subs with a replay in pages: most pops have none to look at */
static void set_paging(sess_sub *sub, bool on)
{
    if (sub->paging != on)
        sub->s->npaging += on ? 1 : -1;
    sub->paging = on;
}

static void sub_free_all(cd_session *s)
{
    sess_sub *sub = s->subs;
    while (sub) {
        sess_sub *next = sub->next;
        cd_hub_leave(s->node->hub, &sub->hub);
        cd_free(sub->page_epoch);
        cd_free(sub);
        sub = next;
    }
    s->subs = NULL;
}

static void outq_clear(cd_session *s)
{
    outq_item *it = s->qhead;
    while (it) {
        outq_item *next = it->next;
        cd_frame_unref(it->f);
        cd_free(it);
        it = next;
    }
    s->qhead = s->qtail = NULL;
    s->qcount = s->qbytes = 0;
}

static void sess_free(cd_session *s)
{
    sub_free_all(s);
    outq_clear(s);
    for (size_t i = 0; i < s->n_sites; i++)
        cd_free(s->sites[i]);
    cd_free(s->sites);
    cd_free(s->origin);
    cd_free(s->profile);
    cd_free(s->viewing);
    cd_free(s->sites_joined);
    cd_free(s->name);
    cd_free(s);
}

void cd_session__unref(cd_session *s)
{
    if (--s->refs == 0)
        sess_free(s);
}

cd_session *cd_session_create(cd_node *n, cd_session_role role, const char *origin, const char *site_hint, void *conn)
{
    cd_session *s = cd_calloc(1, sizeof *s);
    s->node = n;
    s->conn = conn;
    s->role = role;
    s->state = SESS_AWAIT_HELLO;
    s->refs = 1;
    s->hello_deadline = cd_mono_ms() + (uint64_t)n->cfg->hello_timeout_ms;
    s->probe_ok_ms = cd_mono_ms();
    s->origin = cd_strdup(origin ? origin : "");
    cd_strlcpy(s->site_hint, site_hint ? site_hint : "", sizeof s->site_hint);
    if (role == CD_SESSION_VISITOR)
        cd_ratelimit_init(&s->rl, (double)n->cfg->visitor_rate, (double)n->cfg->visitor_burst, cd_mono_ms());
    else
        cd_ratelimit_init(&s->rl, (double)n->cfg->agent_rate, (double)n->cfg->agent_burst, cd_mono_ms());
    s->next = n->sessions;
    if (n->sessions)
        n->sessions->prev = s;
    n->sessions = s;
    n->nsessions++;
    n->stats.sessions_total++;
    return s;
}

void cd_session_detach(cd_session *s)
{
    cd_node *n = s->node;
    if (s->prev)
        s->prev->next = s->next;
    else
        n->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    n->nsessions--;
    if (s->presence_counted) {
        s->presence_counted = false;
        cd_presence_agent_down(n->presence, s->id);
    }
    cd_session__viewing_end(s);
    s->conn = NULL;
    s->state = SESS_CLOSING;
    sub_free_all(s); /* no more events for a dead connection */
    outq_clear(s);
    cd_session__unref(s);
}

/* ---------- output ---------- */

void cd_session_close(cd_session *s, int code, const char *reason, bool flush)
{
    if (!s->conn || s->close_code)
        return;
    s->close_code = code;
    cd_strlcpy(s->close_reason, reason, sizeof s->close_reason);
    s->close_flush = flush;
    if (!flush)
        outq_clear(s);
    s->state = SESS_CLOSING;
    s->node->io.close(s->conn);
}

int cd_session_close_code(const cd_session *s, const char **reason, bool *flush)
{
    *reason = s->close_reason;
    *flush = s->close_flush;
    return s->close_code;
}

/* Delivery pings (RELIABILITY F8): a reader that stops reading is not seen by the outbound
 * queue while the kernel buffers on both ends take its frames (hundreds of KiB each on
 * loopback or a fast link), so the queue cap alone cuts it only after minutes. While
 * frames go out, a WebSocket ping every third of slow_reader_s asks for a pong, which a
 * client sends only once it has read everything before the ping; none within
 * slow_reader_s: close 4008, and the client resumes from its last seq when it reads again.
 * A quiet connection is never probed here (the idle ping/hang-up policy covers it). */
/* The ping's payload: the low 32 bits of its time in hex, text because lws checks a
 * pong's payload as UTF-8 (with the node's UTF-8 validation on, binary ones close 1007). */
static void probe_payload(uint64_t t, unsigned char out[8])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)hex[(t >> (4 * (7 - i))) & 0xf];
}

int cd_session_delivery_check(cd_session *s, uint64_t now_ms, unsigned char payload[8])
{
    uint64_t limit = (uint64_t)s->node->cfg->slow_reader_s * 1000;
    if (limit == 0 || s->close_code)
        return 0;
    if (s->probe_sent_ms) {
        if (now_ms - s->probe_sent_ms < limit)
            return 0;
        s->node->stats.slow_consumer_closes++;
        cd_log_info("slow consumer closed id=%s (delivery ping unanswered %llu ms)", s->id,
                    (unsigned long long)(now_ms - s->probe_sent_ms));
        cd_session_close(s, 4008, "slow consumer: not reading", false);
        return 0;
    }
    if (now_ms - s->probe_ok_ms < limit / 3)
        return 0;
    s->probe_sent_ms = now_ms;
    probe_payload(now_ms, payload);
    return 1;
}

void cd_session_delivery_pong(cd_session *s, const void *payload, size_t len)
{
    unsigned char want[8];
    if (!s->probe_sent_ms || len != 8)
        return;
    probe_payload(s->probe_sent_ms, want);
    if (memcmp(payload, want, 8) != 0)
        return;
    s->probe_ok_ms = s->probe_sent_ms;
    s->probe_sent_ms = 0;
}

void cd_session__enqueue(cd_session *s, cd_frame *f)
{
    if (!s->conn || (s->close_code && !s->close_flush)) {
        cd_frame_unref(f);
        return;
    }
    const cd_config *cfg = s->node->cfg;
    if (s->qcount + 1 > (size_t)cfg->outq_max_frames || s->qbytes + f->len > (size_t)cfg->outq_max_bytes) {
        cd_frame_unref(f);
        s->node->stats.slow_consumer_closes++;
        cd_log_info("slow consumer closed id=%s queued=%zu bytes=%zu", s->id, s->qcount, s->qbytes);
        cd_session_close(s, 4008, "outbound queue overflow", false);
        return;
    }
    outq_item *it = cd_malloc(sizeof *it);
    it->f = f;
    it->next = NULL;
    if (s->qtail)
        s->qtail->next = it;
    else
        s->qhead = it;
    s->qtail = it;
    s->qcount++;
    s->qbytes += f->len;
    s->node->stats.frames_out++;
    if (s->qcount == 1)
        s->node->io.wake(s->conn);
}

cd_frame *cd_session_pop(cd_session *s)
{
    outq_item *it = s->qhead;
    if (!it)
        return NULL;
    s->qhead = it->next;
    if (!s->qhead)
        s->qtail = NULL;
    s->qcount--;
    s->qbytes -= it->f->len;
    cd_frame *f = it->f;
    cd_free(it);
    if (s->qcount == 0)
        continue_paging(s);
    return f;
}

bool cd_session_has_output(const cd_session *s)
{
    return s->qhead != NULL;
}

void cd_session__send_error(cd_session *s, const char *rid, cd_err code, const char *msg)
{
    s->node->stats.errors_out++;
    cd_session__enqueue(s, cd_proto_encode_error(rid, code, msg));
}

void cd_session__send_ok(cd_session *s, const char *rid, size_t n, const char *const *keys, const char *const *raws)
{
    cd_session__enqueue(s, cd_proto_encode_ok(rid, n, keys, raws));
}

/* ---------- subscriptions and ordered delivery ---------- */

/* exclude is an author ("visitor:v_1": typing) or a conversation ("conv:c_1": a site
 * copy of a conversation event, skipped by sessions that follow the conversation). */
static bool excluded(cd_session *s, const cd_hub_event *ev)
{
    if (!ev->exclude)
        return false;
    if (ev->exclude_len > 5 && memcmp(ev->exclude, "join:", 5) == 0)
        return false;
    if (ev->exclude_len > 5 && memcmp(ev->exclude, "conv:", 5) == 0) {
        char cid[160];
        size_t n = ev->exclude_len - 5;
        if (n >= sizeof cid)
            return false;
        memcpy(cid, ev->exclude + 5, n);
        cid[n] = '\0';
        return cd_session__find_conv(s, cid) != NULL;
    }
    return ev->exclude_len == strlen(s->author_key) && memcmp(ev->exclude, s->author_key, ev->exclude_len) == 0;
}

/* The meta part of an exclude field as a C string; false when it does not fit. */
static bool meta_str(char *buf, size_t bufsz, const char *meta, size_t len)
{
    if (len >= bufsz)
        return false;
    memcpy(buf, meta, len);
    buf[len] = '\0';
    return true;
}

/* "join:<cid>:<last_seq>" on an agent channel event (conversation.assigned): the agent's
 * sessions start following the conversation from that seq. false when they already did. */
static bool follow(cd_session *s, const char *meta, size_t len)
{
    char buf[100];
    if (!meta_str(buf, sizeof buf, meta, len))
        return true;
    char *colon = strrchr(buf, ':');
    if (!colon)
        return true;
    *colon = '\0';
    if (cd_session__find_conv(s, buf))
        return false;
    /* the same script may have added messages after the assignment (the chat's
     * auto-acknowledgement): fetch whatever follows the seq the event names */
    cd_session__backfill(cd_session__join_conv(s, buf, strtoll(colon + 1, NULL, 10)));
    return true;
}

/* "revoke:<epoch>" (the agent's password, role, sites or disabled flag changed),
 * "revoke:jti:<jti>" (that token logged out) or "revoke:2fa" (a site of the agent now
 * requires two-factor login) on the agent's channel: a session whose token is no longer
 * good, or whose agent does not use two-factor login, gets the session.revoked event and
 * closes with 4401, on every node. */
static bool revoked(cd_session *s, const char *meta, size_t len)
{
    char buf[64];
    if (!meta_str(buf, sizeof buf, meta, len))
        return false;
    if (strncmp(buf, "jti:", 4) == 0)
        return strcmp(buf + 4, s->jti) == 0;
    if (strcmp(buf, "2fa") == 0)
        return !s->totp;
    return strtoll(buf, NULL, 10) > s->token_epoch;
}

static void on_event(cd_hub_sub *hs, const cd_hub_event *ev)
{
    sess_sub *sub = (sess_sub *)hs;
    cd_session *s = sub->s;
    if (!s->conn || s->state != SESS_ACTIVE)
        return;
    if (!sub->is_conv && ev->exclude_len > 7 && memcmp(ev->exclude, "revoke:", 7) == 0) {
        if (s->role == CD_SESSION_AGENT && revoked(s, ev->exclude + 7, ev->exclude_len - 7)) {
            cd_log_info("session revoked agent=%s", s->id);
            cd_session__enqueue(s, cd_frame_ref(ev->frame));
            cd_session_close(s, 4401, "token revoked", true);
        }
        return;
    }
    if (ev->seq > 0 && sub->is_conv) {
        /* message.created: in seq order, each at most once, gaps backfilled */
        if (ev->seq <= sub->last_seq)
            return;
        if (sub->backfilling) {
            if (ev->seq > sub->pending_max)
                sub->pending_max = ev->seq;
            return;
        }
        if (ev->seq > sub->last_seq + 1) {
            sub->pending_max = ev->seq;
            cd_session__backfill(sub);
            return;
        }
        sub->last_seq = ev->seq;
    }
    if (ev->agents_only && s->role == CD_SESSION_VISITOR)
        return;
    if (excluded(s, ev))
        return;
    if (!sub->is_conv && ev->exclude_len > 5 && memcmp(ev->exclude, "join:", 5) == 0) {
        /* conversation.assigned: once per session (the node may have handed it over) */
        if (!follow(s, ev->exclude + 5, ev->exclude_len - 5))
            return;
    }
    cd_session__enqueue(s, cd_frame_ref(ev->frame));
}

void cd_session__handover(cd_node *n, const cd_route_assigned *as)
{
    for (cd_session *s = n->sessions; s; s = s->next) {
        if (s->role != CD_SESSION_AGENT || s->state != SESS_ACTIVE || strcmp(s->id, as->agent_id) != 0 ||
            cd_session__find_conv(s, as->cid))
            continue;
        cd_session__backfill(cd_session__join_conv(s, as->cid, as->last_seq));
        cd_session__enqueue(s, cd_proto_encode_assigned(as->raw));
    }
}

sess_sub *cd_session__find_conv(cd_session *s, const char *cid)
{
    for (sess_sub *sub = s->subs; sub; sub = sub->next)
        if (sub->is_conv && strcmp(sub->id, cid) == 0)
            return sub;
    return NULL;
}

sess_sub *cd_session__join(cd_session *s, const char *topic, bool is_conv, const char *cid, int64_t last_seq)
{
    if (is_conv) {
        sess_sub *old = cd_session__find_conv(s, cid);
        if (old)
            return old;
    }
    sess_sub *sub = cd_calloc(1, sizeof *sub);
    sub->s = s;
    sub->is_conv = is_conv;
    sub->last_seq = last_seq;
    cd_strlcpy(sub->id, cid ? cid : topic, sizeof sub->id);
    sub->next = s->subs;
    s->subs = sub;
    cd_hub_join(s->node->hub, &sub->hub, topic, on_event);
    return sub;
}

sess_sub *cd_session__join_conv(cd_session *s, const char *cid, int64_t last_seq)
{
    char topic[200];
    snprintf(topic, sizeof topic, "conv:%s", cid);
    return cd_session__join(s, topic, true, cid, last_seq);
}

/* ---------- request plumbing ---------- */

sess_op *cd_session__op_new(cd_session *s, const cd_req *req)
{
    sess_op *o = cd_calloc(1, sizeof *o);
    o->s = s;
    s->refs++;
    if (req) {
        o->type = req->type;
        if (req->rid) {
            cd_strlcpy(o->rid, req->rid, sizeof o->rid);
            o->has_rid = true;
        }
        if (req->conversation_id)
            cd_strlcpy(o->cid, req->conversation_id, sizeof o->cid);
    }
    return o;
}

void cd_session__op_done(sess_op *o)
{
    cd_session *s = o->s;
    cd_free(o);
    if (s->close_when_idle && s->refs == 2 && s->conn)
        cd_session_close(s, 1001, "node shutting down", true);
    cd_session__unref(s);
}

cd_conv_author cd_session__author(cd_session *s)
{
    const char *site = s->role == CD_SESSION_VISITOR ? s->site : s->n_sites > 0 ? s->sites[0] : "";
    cd_conv_author a = {s->role == CD_SESSION_VISITOR ? "visitor" : "agent", s->id, s->name ? s->name : "", site};
    return a;
}

/* An error from a domain call, or unavailable when the call could not start. */
bool cd_session__start_failed(cd_session *s, sess_op *o, int rc)
{
    if (rc == 0)
        return false;
    cd_session__send_error(s, RID(o), CD_ERR_UNAVAILABLE, "storage unavailable, retry");
    cd_session__op_done(o);
    return true;
}

bool cd_session__reply_failed(sess_op *o, cd_conv_result *r)
{
    cd_session *s = o->s;
    if (r->err == CD_ERR_OK)
        return false;
    if (s->conn)
        cd_session__send_error(s, RID(o), r->err, r->message ? r->message : cd_err_name(r->err));
    return true;
}

/* ---------- resume and backfill ---------- */

static void send_resumed(cd_session *s, const char *cid, int64_t last_seq, const char *epoch, bool recovered)
{
    cd_session__enqueue(s, cd_proto_encode_resumed(cid, last_seq, epoch, recovered));
}

static void send_entry_error(cd_session *s, const char *cid, cd_err code, const char *message)
{
    cd_session__enqueue(s, cd_proto_encode_entry_error(cid, code, message));
}

static void on_resume(void *ud, cd_conv_result *r)
{
    sess_op *o = ud;
    cd_session *s = o->s;
    sess_sub *sub = s->conn ? cd_session__find_conv(s, o->cid) : NULL;
    if (!s->conn) {
        cd_session__op_done(o);
        return;
    }
    if (r->err != CD_ERR_OK) {
        if (sub)
            sub->backfilling = false;
        if (o->kind == OP_RESUME)
            send_entry_error(s, o->cid, r->err, r->message ? r->message : cd_err_name(r->err));
        /* a failed backfill is retried on the next bus/store recovery */
        cd_session__op_done(o);
        return;
    }
    if (r->recovered) {
        for (size_t i = 0; i < r->n_frames; i++)
            cd_session__enqueue(s, cd_proto_frame_from(r->frames[i], strlen(r->frames[i])));
    }
    if (!sub)
        sub = cd_session__join_conv(s, o->cid, r->last_seq);
    sub->page_inflight = false;
    if (r->recovered && r->more && s->conn && !s->close_code) {
        /* more than one page: the rest follows as the queue drains (cd_session_pop) */
        sub->backfilling = true;
        set_paging(sub, true);
        sub->page_kind = o->kind;
        sub->page_after = r->page_last;
        cd_free(sub->page_epoch);
        sub->page_epoch = cd_strdup(r->epoch);
        cd_session__op_done(o);
        continue_paging(s);
        return;
    }
    set_paging(sub, false);
    if (r->recovered)
        s->node->stats.resume_recovered++;
    else
        s->node->stats.resume_reset++;
    if (r->last_seq > sub->last_seq || o->kind == OP_RESUME)
        sub->last_seq = r->last_seq;
    sub->backfilling = false;
    if (o->kind == OP_RESUME || !r->recovered)
        send_resumed(s, o->cid, r->last_seq, r->epoch, r->recovered);
    if (sub->pending_max > sub->last_seq)
        cd_session__backfill(sub);
    cd_session__op_done(o);
}

/* Ask for the next page of every paging replay once the queue is down to a quarter. */
static void continue_paging(cd_session *s)
{
    const cd_config *cfg = s->node->cfg;
    if (!s->npaging || !s->conn || s->close_code || s->qcount > (size_t)cfg->outq_max_frames / 4 ||
        s->qbytes > (size_t)cfg->outq_max_bytes / 4)
        return;
    for (sess_sub *sub = s->subs; sub; sub = sub->next) {
        if (!sub->paging || sub->page_inflight)
            continue;
        sess_op *o = cd_session__op_new(s, NULL);
        o->kind = (sess_op_kind)sub->page_kind;
        cd_strlcpy(o->cid, sub->id, sizeof o->cid);
        cd_conv_author a = cd_session__author(s);
        if (cd_conv_resume(s->node->st, cfg, &a, sub->id, sub->page_after, sub->page_epoch, on_resume, o) != 0) {
            cd_session__op_done(o); /* Redis is down: the bus recovery resyncs */
            set_paging(sub, false);
            sub->backfilling = false;
            continue;
        }
        sub->page_inflight = true;
    }
}

void cd_session__backfill(sess_sub *sub)
{
    cd_session *s = sub->s;
    if (sub->backfilling)
        return;
    sess_op *o = cd_session__op_new(s, NULL);
    o->kind = OP_BACKFILL;
    cd_strlcpy(o->cid, sub->id, sizeof o->cid);
    cd_conv_author a = cd_session__author(s);
    sub->backfilling = true;
    s->node->stats.backfills++;
    if (cd_conv_resume(s->node->st, s->node->cfg, &a, sub->id, sub->last_seq, NULL, on_resume, o) != 0) {
        sub->backfilling = false;
        cd_session__op_done(o);
    }
}

void cd_session__resync(cd_session *s)
{
    if (s->state != SESS_ACTIVE)
        return;
    for (sess_sub *sub = s->subs; sub; sub = sub->next)
        if (sub->is_conv)
            cd_session__backfill(sub);
}

static void start_resume(cd_session *s, const char *rid, const cd_resume_item *it)
{
    sess_op *o = cd_session__op_new(s, NULL);
    o->kind = OP_RESUME;
    cd_strlcpy(o->cid, it->conversation_id, sizeof o->cid);
    if (rid) {
        cd_strlcpy(o->rid, rid, sizeof o->rid);
        o->has_rid = false; /* entries report without the rid */
    }
    sess_sub *sub = cd_session__find_conv(s, it->conversation_id);
    if (sub)
        sub->backfilling = true; /* live events wait for the replay */
    cd_conv_author a = cd_session__author(s);
    if (cd_conv_resume(s->node->st, s->node->cfg, &a, it->conversation_id, it->after_seq, it->epoch, on_resume, o) !=
        0) {
        if (sub)
            sub->backfilling = false;
        send_entry_error(s, it->conversation_id, CD_ERR_UNAVAILABLE, "storage unavailable, retry");
        cd_session__op_done(o);
    }
}

void cd_session__start_resumes(cd_session *s, const cd_req *req)
{
    for (size_t i = 0; i < req->n_resume; i++)
        start_resume(s, req->rid, &req->resume[i]);
}

/* ---------- requests after hello: the frame table ---------- */

/* ping: {"type":"ok","rid","ts"} with the node's clock. */
void cd_session__h_ping(cd_session *s, const cd_req *req)
{
    const char *keys[] = {"ts"};
    char ts[24];
    snprintf(ts, sizeof ts, "%llu", (unsigned long long)cd_now_ms());
    const char *raws[] = {ts};
    cd_session__send_ok(s, req->rid, 1, keys, raws);
}

/* resume: ok at once, then one replay per entry (resumed, or an entry error). */
void cd_session__h_resume(cd_session *s, const cd_req *req)
{
    cd_node *n = s->node;
    /* each entry is a Redis call: entries after the first cost a token each (the frame
     * paid for one), so one frame cannot fan out past the connection's rate */
    for (size_t i = 1; i < req->n_resume; i++) {
        if (!cd_ratelimit_take(&s->rl, cd_mono_ms())) {
            n->stats.rate_limited++;
            cd_session__send_error(s, req->rid, CD_ERR_RATE_LIMITED, "too many resume entries at once, slow down");
            return;
        }
    }
    n->stats.resume_entries += req->n_resume;
    cd_session__send_ok(s, req->rid, 0, NULL, NULL);
    cd_session__start_resumes(s, req);
}

/* Who may send each frame and its handler, from the one table in proto.h. */
typedef struct frame_row {
    int roles; /* CD_PROTO_VISITOR | CD_PROTO_AGENT bits, as cd_session_role */
    void (*handle)(cd_session *s, const cd_req *req);
} frame_row;

static const frame_row frame_rows[CD_FRAME__COUNT] = {
#define CD_SESSION_ROW(e, name, roles, h) [CD_FRAME_##e] = {roles, cd_session__h_##h},
    CD_PROTO_FRAMES(CD_SESSION_ROW)
#undef CD_SESSION_ROW
};

_Static_assert(CD_PROTO_VISITOR == CD_SESSION_VISITOR && CD_PROTO_AGENT == CD_SESSION_AGENT,
               "the frame table's role bits are the session roles");

static void handle_request(cd_session *s, const cd_req *req)
{
    const frame_row *row = req->type > CD_FRAME_NONE && req->type < CD_FRAME__COUNT ? &frame_rows[req->type] : NULL;
    if (!row || !row->handle) {
        cd_session__send_error(s, req->rid, CD_ERR_BAD_REQUEST, "unsupported frame");
        return;
    }
    if (!(row->roles & (int)s->role)) {
        cd_session__send_error(s, req->rid, CD_ERR_FORBIDDEN,
                               s->role == CD_SESSION_AGENT ? "visitors only" : "agents only");
        return;
    }
    row->handle(s, req);
}

void cd_session_on_frame(cd_session *s, const char *buf, size_t len)
{
    cd_node *n = s->node;
    if (!s->conn || s->close_code)
        return;
    n->stats.frames_in++;
    cd_req req;
    const char *msg = NULL;
    memset(&req, 0, sizeof req);
    cd_err e = cd_proto_decode(buf, len, &n->lim, &req, &msg);
    if (s->state == SESS_AWAIT_HELLO && (e != CD_ERR_OK || req.type != CD_FRAME_HELLO)) {
        cd_session__send_error(s, req.rid, CD_ERR_BAD_REQUEST, e != CD_ERR_OK ? msg : "hello must come first");
        cd_session_close(s, 4400, "hello must come first", true);
        cd_proto_req_cleanup(&req);
        return;
    }
    /* Every frame after hello costs a token, valid or not: invalid frames are no free way to
     * make the node parse and answer. */
    if (s->state != SESS_AWAIT_HELLO && !cd_ratelimit_take(&s->rl, cd_mono_ms())) {
        n->stats.rate_limited++;
        cd_session__send_error(s, req.rid, CD_ERR_RATE_LIMITED, "slow down");
        if (++s->strikes >= n->cfg->rate_strikes)
            cd_session_close(s, 4429, "rate limit", true);
        cd_proto_req_cleanup(&req);
        return;
    }
    if (e != CD_ERR_OK) {
        n->stats.frames_invalid++;
        cd_session__send_error(s, req.rid, e, msg);
        cd_proto_req_cleanup(&req);
        return;
    }
    if (s->state == SESS_HELLO_PENDING) {
        cd_session__send_error(s, req.rid, CD_ERR_BAD_REQUEST, "wait for welcome");
        cd_proto_req_cleanup(&req);
        return;
    }
    s->strikes = 0;
    if (req.type == CD_FRAME_HELLO && s->state == SESS_AWAIT_HELLO)
        cd_session__hello(s, &req);
    else
        handle_request(s, &req);
    cd_proto_req_cleanup(&req);
}

void cd_session__sweep(cd_node *n, uint64_t now)
{
    for (cd_session *s = n->sessions; s; s = s->next) {
        if (s->state == SESS_AWAIT_HELLO && !s->close_code && now >= s->hello_deadline) {
            n->stats.hello_timeouts++;
            cd_session_close(s, 4408, "no hello in time", false);
        }
    }
}
