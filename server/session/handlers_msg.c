/* The message family's handler: message.send, the hot path. One msg_send call (dedupe by
 * client_msg_id, append, fan-out, SLA clocks in the same atomic step when the site is
 * known), batched with the other sends of the site that the loop pass received; the ok is
 * written here from the stored message (cd_proto_encode_ok_message), so Redis builds no
 * JSON for a new message. */
#include "chatdesk/log.h"
#include "session_int.h"

static void on_sent(void *ud, const cd_conv_sent *r)
{
    sess_op *o = ud;
    cd_session *s = o->s;
    if (r->err == CD_ERR_OK && r->sla && r->site[0])
        cd_session__sla_sync(s, r->site, o->cid);
    if (!s->conn) {
        cd_session__op_done(o);
        return;
    }
    if (r->err != CD_ERR_OK) {
        cd_session__send_error(s, RID(o), r->err, r->error ? r->error : cd_err_name(r->err));
        cd_session__op_done(o);
        return;
    }
    s->node->stats.acks++;
    if (r->duplicate)
        s->node->stats.dedupe_hits++;
    if (!cd_session__find_conv(s, o->cid))
        cd_session__join_conv(s, o->cid, r->msg.seq);
    if (r->duplicate) {
        const char *keys[] = {"message"};
        const char *raws[] = {r->raw_message};
        cd_session__send_ok(s, RID(o), 1, keys, raws);
    } else {
        cd_session__enqueue(s, cd_proto_encode_ok_message(RID(o), &r->msg));
    }
    cd_session__op_done(o);
}

void cd_session__h_msg_send(cd_session *s, const cd_req *req)
{
    cd_node *n = s->node;
    cd_conv_author a = cd_session__author(s);
    /* the conversation's site: named in its id (c_<random>.<site>), else a visitor's own */
    const char *csite = cd_key_cid_site(req->conversation_id);
    if (!csite && s->role == CD_SESSION_VISITOR)
        csite = s->site;
    sess_op *o = cd_session__op_new(s, req);
    cd_session__start_failed(s, o,
                             cd_conv_send(n->st, n->cfg, &a, s->sites_joined ? s->sites_joined : "",
                                          csite ? cd_node_sites_intervals(n->sites, csite) : NULL, req, on_sent, o));
}
