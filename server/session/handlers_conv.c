/* The conversation family's handlers (rows of CD_PROTO_FRAMES): conversation.start,
 * history, typing, viewing, read, csat, conversation.accept, .update, .transfer, .confirm. Each
 * is one conv/ call (one Redis function) and a reply callback that writes the ok (or the
 * error) and starts following the conversation where the frame implies it. A reply
 * that says a ticket's SLA clocks must follow (an id of the previous release, whose site
 * the call could not know) starts that sync here. */
#include <string.h>

#include "chatdesk/log.h"
#include "chatdesk/ticket.h"
#include "session_int.h"

static void on_sla_synced(void *ud, cd_err err, const char *message)
{
    (void)ud;
    (void)message;
    if (err != CD_ERR_OK && err != CD_ERR_UNAVAILABLE)
        cd_log_warn("sla sync failed: %s", cd_err_name(err));
}

void cd_session__sla_sync(cd_session *s, const char *site, const char *cid)
{
    cd_ticket_sla_sync(s->node->st, site, cid, cd_node_sites_intervals(s->node->sites, site), on_sla_synced, NULL);
}

/* Common start of a reply: SLA clocks, then false (op done) when there is nothing to
 * answer (the connection is gone, or the error was sent). */
static bool reply_begin(sess_op *o, cd_conv_result *r)
{
    cd_session *s = o->s;
    /* a ticket's SLA clocks follow its state (pause while pending, next response...) */
    if (r->err == CD_ERR_OK && r->sla && r->site[0])
        cd_session__sla_sync(s, r->site, o->cid);
    if (!s->conn || cd_session__reply_failed(o, r)) {
        cd_session__op_done(o);
        return false;
    }
    return true;
}

/* typing, read: a plain ok when the frame had a rid. */
static void on_plain(void *ud, cd_conv_result *r)
{
    sess_op *o = ud;
    if (!reply_begin(o, r))
        return;
    if (o->has_rid)
        cd_session__send_ok(o->s, RID(o), 0, NULL, NULL);
    cd_session__op_done(o);
}

/* accept, update, transfer, confirm, csat: the ok carries the conversation; an agent who
 * accepted follows it from now on. */
static void on_conversation(void *ud, cd_conv_result *r)
{
    sess_op *o = ud;
    cd_session *s = o->s;
    if (!reply_begin(o, r))
        return;
    if (o->type == CD_FRAME_CONV_ACCEPT && !cd_session__find_conv(s, o->cid))
        cd_session__join_conv(s, o->cid, r->last_seq);
    const char *keys[] = {"conversation"};
    const char *raws[] = {r->raw_conversation};
    cd_session__send_ok(s, RID(o), 1, keys, raws);
    cd_session__op_done(o);
}

static void on_started(void *ud, cd_conv_result *r)
{
    sess_op *o = ud;
    cd_session *s = o->s;
    if (r->err == CD_ERR_OK) {
        cd_free(s->profile); /* the visitor's record exists now */
        s->profile = NULL;
    }
    if (!reply_begin(o, r))
        return;
    /* follow from the visitor's own first message: what the start added after it (the
     * auto-acknowledgement) is replayed from history right away */
    if (r->n_convs) {
        sess_sub *sub = cd_session__join_conv(s, r->convs[0].id, r->seq);
        if (r->last_seq > sub->last_seq)
            cd_session__backfill(sub);
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
    cd_session__send_ok(s, RID(o), n, keys, raws);
    cd_session__op_done(o);
}

static void on_history(void *ud, cd_conv_result *r)
{
    sess_op *o = ud;
    cd_session *s = o->s;
    if (!reply_begin(o, r))
        return;
    if (!cd_session__find_conv(s, o->cid))
        cd_session__join_conv(s, o->cid, r->last_seq);
    const char *keys[] = {"messages"};
    const char *raws[] = {r->raw_messages ? r->raw_messages : "[]"};
    cd_session__send_ok(s, RID(o), 1, keys, raws);
    cd_session__op_done(o);
}

void cd_session__h_conv_start(cd_session *s, const cd_req *req)
{
    cd_node *n = s->node;
    sess_op *o = cd_session__op_new(s, req);
    cd_session__start_failed(s, o,
                             cd_conv_start(n->st, n->cfg, s->site, s->id, req,
                                           cd_node_sites_intervals(n->sites, s->site), s->profile, on_started, o));
}

void cd_session__h_history(cd_session *s, const cd_req *req)
{
    cd_conv_author a = cd_session__author(s);
    sess_op *o = cd_session__op_new(s, req);
    cd_session__start_failed(s, o,
                             cd_conv_history(s->node->st, &a, req->conversation_id,
                                             req->has_before_seq ? req->before_seq : 0, req->limit, on_history, o));
}

void cd_session__h_typing(cd_session *s, const cd_req *req)
{
    cd_conv_author a = cd_session__author(s);
    sess_op *o = cd_session__op_new(s, req);
    cd_session__start_failed(s, o, cd_conv_typing(s->node->st, &a, req->conversation_id, req->state, on_plain, o));
}

/* viewing: the ok carries the conversation's viewers and how often to send it again. */
static void on_viewing(void *ud, cd_conv_result *r)
{
    sess_op *o = ud;
    if (!reply_begin(o, r))
        return;
    char refresh[24];
    snprintf(refresh, sizeof refresh, "%lld", (long long)r->refresh_ms);
    const char *keys[] = {"viewers", "refresh_ms"};
    const char *raws[] = {r->raw_viewers ? r->raw_viewers : "[]", refresh};
    cd_session__send_ok(o->s, RID(o), 2, keys, raws);
    cd_session__op_done(o);
}

void cd_session__h_viewing(cd_session *s, const cd_req *req)
{
    cd_conv_author a = cd_session__author(s);
    sess_op *o = cd_session__op_new(s, req);
    /* one conversation per connection: the one it left is forgotten when it opens another
     * (leaving it is this very call) */
    if (s->viewing && strcmp(s->viewing, req->conversation_id) == 0 && !req->state) {
        cd_free(s->viewing);
        s->viewing = NULL;
    } else if (s->viewing && strcmp(s->viewing, req->conversation_id) != 0) {
        cd_session__viewing_end(s);
    }
    if (req->state && !s->viewing)
        s->viewing = cd_strdup(req->conversation_id);
    cd_session__start_failed(s, o,
                             cd_conv_viewing(s->node->st, &a, req->conversation_id, req->state, req->writing,
                                             s->node->cfg->viewer_ttl_ms, on_viewing, o));
}

static void on_viewing_ended(void *ud, cd_conv_result *r)
{
    (void)ud;
    if (r->err != CD_ERR_OK && r->err != CD_ERR_UNAVAILABLE && r->err != CD_ERR_NOT_FOUND)
        cd_log_warn("viewing end failed: %s", cd_err_name(r->err));
}

void cd_session__viewing_end(cd_session *s)
{
    if (!s->viewing)
        return;
    cd_conv_author a = cd_session__author(s);
    /* Redis down: the entry expires by itself */
    (void)cd_conv_viewing(s->node->st, &a, s->viewing, false, NULL, s->node->cfg->viewer_ttl_ms, on_viewing_ended,
                          NULL);
    cd_free(s->viewing);
    s->viewing = NULL;
}

void cd_session__h_read(cd_session *s, const cd_req *req)
{
    cd_conv_author a = cd_session__author(s);
    sess_op *o = cd_session__op_new(s, req);
    cd_session__start_failed(s, o, cd_conv_read(s->node->st, &a, req->conversation_id, req->seq, on_plain, o));
}

void cd_session__h_csat(cd_session *s, const cd_req *req)
{
    sess_op *o = cd_session__op_new(s, req);
    cd_session__start_failed(s, o, cd_conv_csat(s->node->st, s->site, s->id, req, on_conversation, o));
}

void cd_session__h_conv_accept(cd_session *s, const cd_req *req)
{
    cd_conv_author a = cd_session__author(s);
    sess_op *o = cd_session__op_new(s, req);
    cd_session__start_failed(s, o, cd_conv_accept(s->node->st, &a, req->conversation_id, on_conversation, o));
}

void cd_session__h_conv_update(cd_session *s, const cd_req *req)
{
    cd_conv_author a = cd_session__author(s);
    sess_op *o = cd_session__op_new(s, req);
    /* the site's business intervals go along: a ticket's SLA clocks follow in the same call */
    const char *site = cd_key_cid_site(req->conversation_id);
    const char *iv = site ? cd_node_sites_intervals(s->node->sites, site) : NULL;
    cd_session__start_failed(s, o, cd_conv_update(s->node->st, &a, req, iv, on_conversation, o));
}

void cd_session__h_conv_transfer(cd_session *s, const cd_req *req)
{
    cd_conv_author a = cd_session__author(s);
    sess_op *o = cd_session__op_new(s, req);
    cd_session__start_failed(s, o, cd_conv_transfer(s->node->st, s->node->cfg, &a, req, on_conversation, o));
}

void cd_session__h_conv_confirm(cd_session *s, const cd_req *req)
{
    sess_op *o = cd_session__op_new(s, req);
    cd_session__start_failed(s, o,
                             cd_conv_confirm(s->node->st, s->site, s->id, req->conversation_id,
                                             cd_node_sites_intervals(s->node->sites, s->site), on_conversation, o));
}
