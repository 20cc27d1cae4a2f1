/* cd_session: one connection's protocol state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"
#include "chatdesk/presence.h"
#include "chatdesk/ticket.h"
#include "session_int.h"

/* ---------- lifetime ---------- */

static void sess_unref(cd_session *s);
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
    cd_free(s->sites_joined);
    cd_free(s->name);
    cd_free(s);
}

static void sess_unref(cd_session *s)
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
    s->conn = NULL;
    s->state = SESS_CLOSING;
    sub_free_all(s); /* no more events for a dead connection */
    outq_clear(s);
    sess_unref(s);
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

static void enqueue(cd_session *s, cd_frame *f)
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
        cd_session_close(s, 4429, "outbound queue overflow", false);
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

static void send_error(cd_session *s, const char *rid, cd_err code, const char *msg)
{
    s->node->stats.errors_out++;
    enqueue(s, cd_proto_encode_error(rid, code, msg));
}

static void send_ok(cd_session *s, const char *rid, size_t n, const char *const *keys, const char *const *raws)
{
    enqueue(s, cd_proto_encode_ok(rid, n, keys, raws));
}

/* ---------- subscriptions and ordered delivery ---------- */

static void backfill(sess_sub *sub);

static sess_sub *find_conv(cd_session *s, const char *cid);

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
        return find_conv(s, cid) != NULL;
    }
    return ev->exclude_len == strlen(s->author_key) && memcmp(ev->exclude, s->author_key, ev->exclude_len) == 0;
}

static sess_sub *join_conv(cd_session *s, const char *cid, int64_t last_seq);

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
    if (find_conv(s, buf))
        return false;
    /* the same script may have added messages after the assignment (the chat's
     * auto-acknowledgement): fetch whatever follows the seq the event names */
    backfill(join_conv(s, buf, strtoll(colon + 1, NULL, 10)));
    return true;
}

/* "revoke:<epoch>" (the agent's password, role, sites or disabled flag changed) or
 * "revoke:jti:<jti>" (that token logged out) on the agent's channel: a session whose token
 * is no longer good gets the session.revoked event and closes with 4401, on every node. */
static bool revoked(cd_session *s, const char *meta, size_t len)
{
    char buf[64];
    if (!meta_str(buf, sizeof buf, meta, len))
        return false;
    if (strncmp(buf, "jti:", 4) == 0)
        return strcmp(buf + 4, s->jti) == 0;
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
            enqueue(s, cd_frame_ref(ev->frame));
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
            backfill(sub);
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
    enqueue(s, cd_frame_ref(ev->frame));
}

void cd_session__handover(cd_node *n, const cd_route_assigned *as)
{
    for (cd_session *s = n->sessions; s; s = s->next) {
        if (s->role != CD_SESSION_AGENT || s->state != SESS_ACTIVE || strcmp(s->id, as->agent_id) != 0 ||
            find_conv(s, as->cid))
            continue;
        backfill(join_conv(s, as->cid, as->last_seq));
        cd_frame *f = cd_frame_create(strlen(as->raw) + 48);
        cd_frame_append_str(f, "{\"type\":\"conversation.assigned\",\"conversation\":");
        cd_frame_append_str(f, as->raw);
        cd_frame_append_str(f, "}");
        enqueue(s, f);
    }
}

static sess_sub *find_conv(cd_session *s, const char *cid)
{
    for (sess_sub *sub = s->subs; sub; sub = sub->next)
        if (sub->is_conv && strcmp(sub->id, cid) == 0)
            return sub;
    return NULL;
}

static sess_sub *join(cd_session *s, const char *topic, bool is_conv, const char *cid, int64_t last_seq)
{
    if (is_conv) {
        sess_sub *old = find_conv(s, cid);
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

static sess_sub *join_conv(cd_session *s, const char *cid, int64_t last_seq)
{
    char topic[200];
    snprintf(topic, sizeof topic, "conv:%s", cid);
    return join(s, topic, true, cid, last_seq);
}

/* ---------- request plumbing ---------- */

typedef enum op_kind { OP_PLAIN, OP_RESUME, OP_BACKFILL } op_kind;

typedef struct op {
    cd_session *s;
    op_kind kind;
    cd_frame_type type;
    char rid[80];
    bool has_rid;
    char cid[160];
    int64_t after_seq;
} op;

static op *op_new(cd_session *s, const cd_req *req)
{
    op *o = cd_calloc(1, sizeof *o);
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

static void op_done(op *o)
{
    cd_session *s = o->s;
    cd_free(o);
    if (s->close_when_idle && s->refs == 2 && s->conn)
        cd_session_close(s, 1001, "node shutting down", true);
    sess_unref(s);
}

#define RID(o) ((o)->has_rid ? (o)->rid : NULL)

static cd_conv_author author(cd_session *s)
{
    const char *site = s->role == CD_SESSION_VISITOR ? s->site : s->n_sites > 0 ? s->sites[0] : "";
    cd_conv_author a = {s->role == CD_SESSION_VISITOR ? "visitor" : "agent", s->id, s->name ? s->name : "", site};
    return a;
}

/* An error from a domain call, or unavailable when the call could not start. */
static bool start_failed(cd_session *s, op *o, int rc)
{
    if (rc == 0)
        return false;
    send_error(s, RID(o), CD_ERR_UNAVAILABLE, "storage unavailable, retry");
    op_done(o);
    return true;
}

static bool reply_failed(op *o, cd_conv_result *r)
{
    cd_session *s = o->s;
    if (r->err == CD_ERR_OK)
        return false;
    if (s->conn)
        send_error(s, RID(o), r->err, r->message ? r->message : cd_err_name(r->err));
    return true;
}

/* ---------- resume and backfill ---------- */

static void send_resumed(cd_session *s, const char *cid, int64_t last_seq, const char *epoch, bool recovered)
{
    cd_frame *f = cd_frame_create(160);
    cd_frame_append_str(f, "{\"type\":\"resumed\",\"conversation_id\":");
    cd_frame_append_json_str(f, cid);
    cd_frame_append_str(f, ",\"last_seq\":");
    cd_frame_append_int(f, last_seq);
    cd_frame_append_str(f, ",\"epoch\":");
    cd_frame_append_json_str(f, epoch);
    cd_frame_append_str(f, recovered ? ",\"recovered\":true}" : ",\"recovered\":false}");
    enqueue(s, f);
}

/* An error about one resume entry names the conversation instead of echoing a rid:
 * {"type":"error","code":…,"message":…,"conversation_id":"c_1"} */
static void send_entry_error(cd_session *s, const char *cid, cd_err code, const char *message)
{
    cd_frame *f = cd_proto_encode_error(NULL, code, message);
    f->len--; /* drop the closing brace */
    cd_frame_append_str(f, ",\"conversation_id\":");
    cd_frame_append_json_str(f, cid);
    cd_frame_append_str(f, "}");
    enqueue(s, f);
}

static void on_resume(void *ud, cd_conv_result *r)
{
    op *o = ud;
    cd_session *s = o->s;
    sess_sub *sub = s->conn ? find_conv(s, o->cid) : NULL;
    if (!s->conn) {
        op_done(o);
        return;
    }
    if (r->err != CD_ERR_OK) {
        if (sub)
            sub->backfilling = false;
        if (o->kind == OP_RESUME)
            send_entry_error(s, o->cid, r->err, r->message ? r->message : cd_err_name(r->err));
        /* a failed backfill is retried on the next bus/store recovery */
        op_done(o);
        return;
    }
    if (r->recovered) {
        for (size_t i = 0; i < r->n_frames; i++)
            enqueue(s, cd_proto_frame_from(r->frames[i], strlen(r->frames[i])));
    }
    if (!sub)
        sub = join_conv(s, o->cid, r->last_seq);
    sub->page_inflight = false;
    if (r->recovered && r->more && s->conn && !s->close_code) {
        /* more than one page: the rest follows as the queue drains (cd_session_pop) */
        sub->backfilling = true;
        set_paging(sub, true);
        sub->page_kind = o->kind;
        sub->page_after = r->page_last;
        cd_free(sub->page_epoch);
        sub->page_epoch = cd_strdup(r->epoch);
        op_done(o);
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
        backfill(sub);
    op_done(o);
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
        op *o = op_new(s, NULL);
        o->kind = (op_kind)sub->page_kind;
        cd_strlcpy(o->cid, sub->id, sizeof o->cid);
        cd_conv_author a = author(s);
        if (cd_conv_resume(s->node->st, cfg, &a, sub->id, sub->page_after, sub->page_epoch, on_resume, o) != 0) {
            op_done(o); /* Redis is down: the bus recovery resyncs */
            set_paging(sub, false);
            sub->backfilling = false;
            continue;
        }
        sub->page_inflight = true;
    }
}

static void backfill(sess_sub *sub)
{
    cd_session *s = sub->s;
    if (sub->backfilling)
        return;
    op *o = op_new(s, NULL);
    o->kind = OP_BACKFILL;
    cd_strlcpy(o->cid, sub->id, sizeof o->cid);
    cd_conv_author a = author(s);
    sub->backfilling = true;
    s->node->stats.backfills++;
    if (cd_conv_resume(s->node->st, s->node->cfg, &a, sub->id, sub->last_seq, NULL, on_resume, o) != 0) {
        sub->backfilling = false;
        op_done(o);
    }
}

void cd_session__resync(cd_session *s)
{
    if (s->state != SESS_ACTIVE)
        return;
    for (sess_sub *sub = s->subs; sub; sub = sub->next)
        if (sub->is_conv)
            backfill(sub);
}

static void start_resume(cd_session *s, const char *rid, const cd_resume_item *it)
{
    op *o = op_new(s, NULL);
    o->kind = OP_RESUME;
    cd_strlcpy(o->cid, it->conversation_id, sizeof o->cid);
    if (rid) {
        cd_strlcpy(o->rid, rid, sizeof o->rid);
        o->has_rid = false; /* entries report without the rid */
    }
    sess_sub *sub = find_conv(s, it->conversation_id);
    if (sub)
        sub->backfilling = true; /* live events wait for the replay */
    cd_conv_author a = author(s);
    if (cd_conv_resume(s->node->st, s->node->cfg, &a, it->conversation_id, it->after_seq, it->epoch, on_resume, o) !=
        0) {
        if (sub)
            sub->backfilling = false;
        send_entry_error(s, it->conversation_id, CD_ERR_UNAVAILABLE, "storage unavailable, retry");
        op_done(o);
    }
}

static void start_resumes(cd_session *s, const cd_req *req)
{
    for (size_t i = 0; i < req->n_resume; i++)
        start_resume(s, req->rid, &req->resume[i]);
}

/* ---------- hello ---------- */

typedef struct hello_op {
    op base;
    cd_req req;    /* resume entries are needed after the reply */
    char *profile; /* visitor: cd_conv_visitor_profile of the hello, kept if no record exists */
} hello_op;

static void fail_hello(cd_session *s, const char *rid, cd_err code, const char *msg)
{
    send_error(s, rid, code, msg);
    cd_session_close(s, code == CD_ERR_UNAVAILABLE ? 1013 : 4401, msg, true);
}

static char *copy_resume(const cd_req *req, cd_req *dst)
{
    /* Keep what the resume needs after the request is cleaned up: one block. */
    size_t total = 0;
    for (size_t i = 0; i < req->n_resume; i++)
        total +=
            strlen(req->resume[i].conversation_id) + 1 + (req->resume[i].epoch ? strlen(req->resume[i].epoch) + 1 : 0);
    char *block = cd_malloc(total + 1 + req->n_resume * sizeof(cd_resume_item));
    cd_resume_item *items = (cd_resume_item *)(void *)block;
    char *p = block + req->n_resume * sizeof(cd_resume_item);
    for (size_t i = 0; i < req->n_resume; i++) {
        items[i] = req->resume[i];
        size_t l = strlen(req->resume[i].conversation_id) + 1;
        memcpy(p, req->resume[i].conversation_id, l);
        items[i].conversation_id = p;
        p += l;
        if (req->resume[i].epoch) {
            l = strlen(req->resume[i].epoch) + 1;
            memcpy(p, req->resume[i].epoch, l);
            items[i].epoch = p;
            p += l;
        }
    }
    memset(dst, 0, sizeof *dst);
    dst->resume = items;
    dst->n_resume = req->n_resume;
    return block;
}

static void on_visitor_hello(void *ud, cd_conv_result *r)
{
    hello_op *h = ud;
    op *o = &h->base;
    cd_session *s = o->s;
    if (!s->conn) {
        goto done;
    }
    if (r->err != CD_ERR_OK) {
        s->state = SESS_AWAIT_HELLO;
        fail_hello(s, RID(o), r->err, r->message ? r->message : cd_err_name(r->err));
        goto done;
    }
    cd_strlcpy(s->id, r->visitor_id, sizeof s->id);
    snprintf(s->author_key, sizeof s->author_key, "visitor:%s", s->id);
    cd_free(s->profile);
    s->profile = NULL;
    if (!r->visitor_stored) { /* anonymous, no record yet: its first conversation writes it */
        s->profile = h->profile;
        h->profile = NULL;
    }
    /* the visitor's display name, for typing/read events */
    cd_free(s->name);
    s->name = NULL;
    cd_auth_claims c;
    memset(&c, 0, sizeof c);
    c.role = CD_AUTH_ROLE_VISITOR;
    cd_strlcpy(c.sub, s->id, sizeof c.sub);
    cd_strlcpy(c.site, s->site, sizeof c.site);
    c.iat = (int64_t)cd_now_ms();
    c.exp = c.iat + s->node->cfg->visitor_token_ttl_s * 1000;
    char token[CD_AUTH_TOKEN_MAX], tok_json[CD_AUTH_TOKEN_MAX + 8];
    if (cd_auth_token_sign(cd_node_keyring_get(s->node->keys), &c, token, sizeof token) != 0) {
        fail_hello(s, RID(o), CD_ERR_INTERNAL, "cannot sign token");
        goto done;
    }
    snprintf(tok_json, sizeof tok_json, "\"%s\"", token); /* token chars are base64url and dots */
    s->state = SESS_ACTIVE;
    for (size_t i = 0; i < r->n_convs; i++)
        join_conv(s, r->convs[i].id, r->convs[i].last_seq);
    cd_frame *f = cd_frame_create(512);
    cd_frame_append_str(f, "{\"type\":\"welcome\"");
    if (o->has_rid) {
        cd_frame_append_str(f, ",\"rid\":");
        cd_frame_append_json_str(f, o->rid);
    }
    cd_frame_append_str(f, ",\"visitor\":");
    cd_frame_append_str(f, r->raw_visitor);
    cd_frame_append_str(f, ",\"token\":");
    cd_frame_append_str(f, tok_json);
    cd_frame_append_str(f, ",\"conversations\":");
    cd_frame_append_str(f, r->raw_conversations ? r->raw_conversations : "[]");
    if (r->raw_site_config) {
        cd_frame_append_str(f, ",\"site\":");
        cd_frame_append_str(f, r->raw_site_config);
    }
    cd_frame_append_str(f, r->agents_online ? ",\"agents_online\":true}" : ",\"agents_online\":false}");
    enqueue(s, f);
    start_resumes(s, &h->req);
done:
    cd_free(h->req.resume);
    cd_free(h->profile);
    sess_unref(s);
    cd_free(h);
}

/* An agent's sites as " s1 s2 " for msg_send's access check, made once at its hello. */
static char *sites_list(char *const *sites, size_t n)
{
    size_t total = 2;
    for (size_t i = 0; i < n; i++)
        total += strlen(sites[i]) + 1;
    char *buf = cd_malloc(total);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(sites[i]);
        buf[len++] = ' ';
        memcpy(buf + len, sites[i], l);
        len += l;
    }
    if (len)
        buf[len++] = ' ';
    buf[len] = '\0';
    return buf;
}

static void on_agent_hello(void *ud, cd_conv_result *r)
{
    hello_op *h = ud;
    op *o = &h->base;
    cd_session *s = o->s;
    if (!s->conn)
        goto done;
    if (r->err != CD_ERR_OK) {
        s->state = SESS_AWAIT_HELLO;
        fail_hello(s, RID(o), r->err == CD_ERR_NOT_FOUND ? CD_ERR_UNAUTHORIZED : r->err,
                   r->err == CD_ERR_NOT_FOUND ? "unknown agent" : (r->message ? r->message : cd_err_name(r->err)));
        goto done;
    }
    cd_free(s->name);
    s->name = cd_strdup(r->agent_name);
    snprintf(s->author_key, sizeof s->author_key, "agent:%s", s->id);
    s->sites = r->agent_sites;
    s->n_sites = r->n_agent_sites;
    cd_free(s->sites_joined);
    s->sites_joined = sites_list(s->sites, s->n_sites);
    r->agent_sites = NULL;
    r->n_agent_sites = 0;
    s->state = SESS_ACTIVE;
    char topic[128];
    snprintf(topic, sizeof topic, "agent:%s", s->id);
    join(s, topic, false, NULL, 0);
    for (size_t i = 0; i < s->n_sites; i++) {
        snprintf(topic, sizeof topic, "site:%s", s->sites[i]);
        join(s, topic, false, NULL, 0);
    }
    for (size_t i = 0; i < r->n_convs; i++)
        join_conv(s, r->convs[i].id, r->convs[i].last_seq);
    cd_frame *f = cd_frame_create(512);
    cd_frame_append_str(f, "{\"type\":\"welcome\"");
    if (o->has_rid) {
        cd_frame_append_str(f, ",\"rid\":");
        cd_frame_append_json_str(f, o->rid);
    }
    cd_frame_append_str(f, ",\"agent\":");
    cd_frame_append_str(f, r->raw_agent);
    cd_frame_append_str(f, ",\"conversations\":");
    cd_frame_append_str(f, r->raw_conversations ? r->raw_conversations : "[]");
    cd_frame_append_str(f, ",\"queue\":");
    cd_frame_append_str(f, r->raw_queue ? r->raw_queue : "[]");
    cd_frame_append_str(f, "}");
    enqueue(s, f);
    s->presence_counted = true;
    cd_presence_agent_up(s->node->presence, s->id);
    start_resumes(s, &h->req);
done:
    cd_free(h->req.resume);
    sess_unref(s);
    cd_free(h);
}

static void handle_hello(cd_session *s, const cd_req *req)
{
    cd_node *n = s->node;
    if (!cd_node_keyring_ready(n->keys) || !cd_store_up(n->st)) {
        fail_hello(s, req->rid, CD_ERR_UNAVAILABLE, "node not ready, retry");
        return;
    }
    cd_auth_claims claims;
    bool has_token = false;
    if (req->token) {
        if (cd_auth_token_verify(cd_node_keyring_get(n->keys), req->token, (int64_t)cd_now_ms(), &claims) !=
            CD_ERR_OK) {
            fail_hello(s, req->rid, CD_ERR_UNAUTHORIZED, "invalid or expired token");
            return;
        }
        has_token = true;
    }
    hello_op *h = cd_calloc(1, sizeof *h);
    h->base.s = s;
    s->refs++;
    if (req->rid) {
        cd_strlcpy(h->base.rid, req->rid, sizeof h->base.rid);
        h->base.has_rid = true;
    }
    copy_resume(req, &h->req);
    int rc;
    if (s->role == CD_SESSION_VISITOR) {
        const char *site_key = req->site ? req->site : (has_token ? claims.site : s->site_hint);
        const cd_site *site = site_key && *site_key ? cd_session__site(n, site_key) : NULL;
        const char *why = NULL;
        cd_err code = CD_ERR_UNAUTHORIZED;
        if (!site)
            why = "unknown site";
        else if (!cd_node_origin_allowed(n, s->origin, site->key))
            why = "origin not allowed for this site", code = CD_ERR_FORBIDDEN;
        else if (has_token && (claims.role != CD_AUTH_ROLE_VISITOR || strcmp(claims.site, site->key) != 0))
            why = "token of another site";
        else if (req->has_user && site->secret[0] &&
                 (!req->user_hash || !cd_auth_hmac_verify(site->secret, strlen(site->secret), req->user_id,
                                                          strlen(req->user_id), req->user_hash)))
            why = "identity verification failed";
        if (why) {
            fail_hello(s, req->rid, code, why);
            goto fail;
        }
        cd_strlcpy(s->site, site->key, sizeof s->site);
        const char *uid = req->has_user && site->secret[0] ? req->user_id : "";
        s->state = SESS_HELLO_PENDING;
        if (!uid[0])
            h->profile = cd_conv_visitor_profile(req);
        rc =
            cd_conv_visitor_hello(n->st, n->cfg, site->key, has_token ? claims.sub : "", uid, req, on_visitor_hello, h);
    } else {
        if (!has_token || claims.role != CD_AUTH_ROLE_AGENT) {
            fail_hello(s, req->rid, CD_ERR_UNAUTHORIZED, "agent login token required");
            goto fail;
        }
        cd_strlcpy(s->id, claims.sub, sizeof s->id);
        s->token_epoch = claims.epoch;
        cd_strlcpy(s->jti, claims.jti, sizeof s->jti);
        s->state = SESS_HELLO_PENDING;
        rc = cd_conv_agent_get(n->st, "id", claims.sub, true, claims.epoch, claims.jti, on_agent_hello, h);
    }
    if (rc == 0)
        return;
    s->state = SESS_AWAIT_HELLO;
    fail_hello(s, req->rid, CD_ERR_UNAVAILABLE, "storage unavailable, retry");
fail:
    cd_free(h->req.resume);
    cd_free(h->profile);
    sess_unref(s);
    cd_free(h);
}

/* ---------- requests after hello ---------- */

static void on_sla_synced(void *ud, cd_err err, const char *message)
{
    (void)ud;
    (void)message;
    if (err != CD_ERR_OK && err != CD_ERR_UNAVAILABLE)
        cd_log_warn("sla sync failed: %s", cd_err_name(err));
}

/* presence.set: a plain ok once the agent's status and its site records are written. */
static void on_presence_set(void *ud, const cd_route_result *r)
{
    op *o = ud;
    cd_session *s = o->s;
    if (s->conn && r->err != CD_ERR_OK)
        send_error(s, RID(o), r->err, r->message ? r->message : cd_err_name(r->err));
    else if (s->conn && o->has_rid)
        send_ok(s, RID(o), 0, NULL, NULL);
    op_done(o);
}

static void on_plain(void *ud, cd_conv_result *r)
{
    op *o = ud;
    cd_session *s = o->s;
    /* a ticket's SLA clocks follow its state (pause while pending, next response...) */
    if (r->err == CD_ERR_OK && r->sla && r->site[0])
        cd_ticket_sla_sync(s->node->st, r->site, o->cid, cd_session__intervals(s->node, r->site), on_sla_synced, NULL);
    if (r->err == CD_ERR_OK && o->type == CD_FRAME_CONV_START) {
        cd_free(s->profile); /* the visitor's record exists now */
        s->profile = NULL;
    }
    if (!s->conn || reply_failed(o, r)) {
        op_done(o);
        return;
    }
    switch (o->type) {
    case CD_FRAME_CONV_START: {
        /* follow from the visitor's own first message: what the start added after it (the
         * auto-acknowledgement) is replayed from history right away */
        if (r->n_convs) {
            sess_sub *sub = join_conv(s, r->convs[0].id, r->seq);
            if (r->last_seq > sub->last_seq)
                backfill(sub);
        }
        const char *keys[3] = {"conversation"};
        const char *raws[3] = {r->raw_conversation};
        size_t n = 1;
        if (r->raw_message) {
            keys[n] = "message";
            raws[n++] = r->raw_message;
        }
        if (r->raw_queue && strcmp(r->raw_queue, "null") != 0) {
            keys[n] = "queue";
            raws[n++] = r->raw_queue;
        }
        send_ok(s, RID(o), n, keys, raws);
        break;
    }
    case CD_FRAME_HISTORY: {
        if (!find_conv(s, o->cid))
            join_conv(s, o->cid, r->last_seq);
        const char *keys[] = {"messages"};
        const char *raws[] = {r->raw_messages ? r->raw_messages : "[]"};
        send_ok(s, RID(o), 1, keys, raws);
        break;
    }
    case CD_FRAME_CONV_ACCEPT:
    case CD_FRAME_CONV_UPDATE:
    case CD_FRAME_CONV_TRANSFER:
    case CD_FRAME_CONV_CONFIRM:
    case CD_FRAME_CSAT: {
        if (o->type == CD_FRAME_CONV_ACCEPT && !find_conv(s, o->cid))
            join_conv(s, o->cid, r->last_seq);
        const char *keys[] = {"conversation"};
        const char *raws[] = {r->raw_conversation};
        send_ok(s, RID(o), 1, keys, raws);
        break;
    }
    case CD_FRAME_READ:
    case CD_FRAME_TYPING:
    default:
        if (o->has_rid)
            send_ok(s, RID(o), 0, NULL, NULL);
        break;
    }
    op_done(o);
}

/* message.send: the ok is written here from the stored message (no JSON from Redis). */
static void on_sent(void *ud, const cd_conv_sent *r)
{
    op *o = ud;
    cd_session *s = o->s;
    if (r->err == CD_ERR_OK && r->sla && r->site[0])
        cd_ticket_sla_sync(s->node->st, r->site, o->cid, cd_session__intervals(s->node, r->site), on_sla_synced, NULL);
    if (!s->conn) {
        op_done(o);
        return;
    }
    if (r->err != CD_ERR_OK) {
        send_error(s, RID(o), r->err, r->error ? r->error : cd_err_name(r->err));
        op_done(o);
        return;
    }
    s->node->stats.acks++;
    if (r->duplicate)
        s->node->stats.dedupe_hits++;
    if (!find_conv(s, o->cid))
        join_conv(s, o->cid, r->msg.seq);
    if (r->duplicate) {
        const char *keys[] = {"message"};
        const char *raws[] = {r->raw_message};
        send_ok(s, RID(o), 1, keys, raws);
    } else {
        enqueue(s, cd_proto_encode_ok_message(RID(o), &r->msg));
    }
    op_done(o);
}

static void handle_request(cd_session *s, const cd_req *req)
{
    cd_node *n = s->node;
    bool agent = s->role == CD_SESSION_AGENT;
    cd_conv_author a = author(s);
    if (req->type == CD_FRAME_PING) {
        const char *keys[] = {"ts"};
        char ts[24];
        snprintf(ts, sizeof ts, "%llu", (unsigned long long)cd_now_ms());
        const char *raws[] = {ts};
        send_ok(s, req->rid, 1, keys, raws);
        return;
    }
    if (req->type == CD_FRAME_RESUME) {
        /* each entry is a Redis call: entries after the first cost a token each (the frame
         * paid for one), so one frame cannot fan out past the connection's rate */
        for (size_t i = 1; i < req->n_resume; i++) {
            if (!cd_ratelimit_take(&s->rl, cd_mono_ms())) {
                n->stats.rate_limited++;
                send_error(s, req->rid, CD_ERR_RATE_LIMITED, "too many resume entries at once, slow down");
                return;
            }
        }
        n->stats.resume_entries += req->n_resume;
        send_ok(s, req->rid, 0, NULL, NULL);
        start_resumes(s, req);
        return;
    }
    op *o = op_new(s, req);
    int rc = -1;
    switch (req->type) {
    case CD_FRAME_CONV_START:
        if (agent)
            goto forbidden;
        rc = cd_conv_start(n->st, n->cfg, s->site, s->id, req, cd_session__intervals(n, s->site), s->profile, on_plain,
                           o);
        break;
    case CD_FRAME_MSG_SEND: {
        /* the conversation's site: named in its id (c_<random>.<site>), else a visitor's own */
        const char *csite = cd_key_cid_site(req->conversation_id);
        if (!csite && s->role == CD_SESSION_VISITOR)
            csite = s->site;
        rc = cd_conv_send(n->st, n->cfg, &a, s->sites_joined ? s->sites_joined : "",
                          csite ? cd_session__intervals(n, csite) : NULL, req, on_sent, o);
        break;
    }
    case CD_FRAME_HISTORY:
        rc = cd_conv_history(n->st, &a, req->conversation_id, req->has_before_seq ? req->before_seq : 0, req->limit,
                             on_plain, o);
        break;
    case CD_FRAME_TYPING:
        rc = cd_conv_typing(n->st, &a, req->conversation_id, req->state, on_plain, o);
        break;
    case CD_FRAME_READ:
        rc = cd_conv_read(n->st, &a, req->conversation_id, req->seq, on_plain, o);
        break;
    case CD_FRAME_CSAT:
        if (agent)
            goto forbidden;
        rc = cd_conv_csat(n->st, s->site, s->id, req, on_plain, o);
        break;
    case CD_FRAME_PRESENCE_SET:
        if (!agent)
            goto forbidden;
        rc = cd_presence_set(n->st, s->id, req->status, on_presence_set, o);
        break;
    case CD_FRAME_CONV_ACCEPT:
        if (!agent)
            goto forbidden;
        rc = cd_conv_accept(n->st, &a, req->conversation_id, on_plain, o);
        break;
    case CD_FRAME_CONV_UPDATE:
        if (!agent)
            goto forbidden;
        rc = cd_conv_update(n->st, &a, req, on_plain, o);
        break;
    case CD_FRAME_CONV_CONFIRM:
        if (agent)
            goto forbidden;
        rc = cd_conv_confirm(n->st, s->site, s->id, req->conversation_id, on_plain, o);
        break;
    case CD_FRAME_CONV_TRANSFER:
        if (!agent)
            goto forbidden;
        rc = cd_conv_transfer(n->st, n->cfg, &a, req, on_plain, o);
        break;
    case CD_FRAME_HELLO:
        send_error(s, req->rid, CD_ERR_BAD_REQUEST, "hello was already sent");
        op_done(o);
        return;
    default:
        send_error(s, req->rid, CD_ERR_BAD_REQUEST, "unsupported frame");
        op_done(o);
        return;
    }
    start_failed(s, o, rc);
    return;
forbidden:
    send_error(s, req->rid, CD_ERR_FORBIDDEN, agent ? "visitors only" : "agents only");
    op_done(o);
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
        send_error(s, req.rid, CD_ERR_BAD_REQUEST, e != CD_ERR_OK ? msg : "hello must come first");
        cd_session_close(s, 4400, "hello must come first", true);
        cd_proto_req_cleanup(&req);
        return;
    }
    /* Every frame after hello costs a token, valid or not: invalid frames are no free way to
     * make the node parse and answer. */
    if (s->state != SESS_AWAIT_HELLO && !cd_ratelimit_take(&s->rl, cd_mono_ms())) {
        n->stats.rate_limited++;
        send_error(s, req.rid, CD_ERR_RATE_LIMITED, "slow down");
        if (++s->strikes >= n->cfg->rate_strikes)
            cd_session_close(s, 4429, "rate limit", true);
        cd_proto_req_cleanup(&req);
        return;
    }
    if (e != CD_ERR_OK) {
        n->stats.frames_invalid++;
        send_error(s, req.rid, e, msg);
        cd_proto_req_cleanup(&req);
        return;
    }
    if (s->state == SESS_HELLO_PENDING) {
        send_error(s, req.rid, CD_ERR_BAD_REQUEST, "wait for welcome");
        cd_proto_req_cleanup(&req);
        return;
    }
    s->strikes = 0;
    if (req.type == CD_FRAME_HELLO && s->state == SESS_AWAIT_HELLO)
        handle_hello(s, &req);
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
