/* The agent family's handler: presence.set. The status change and the agent's record in
 * each of its sites (which may assign it waiting conversations) are presence/'s and
 * route/'s; the agent hears a plain ok once they are written. */
#include "chatdesk/presence.h"
#include "session_int.h"

static void on_presence_set(void *ud, const cd_route_result *r)
{
    sess_op *o = ud;
    cd_session *s = o->s;
    if (s->conn && r->err != CD_ERR_OK)
        cd_session__send_error(s, RID(o), r->err, r->message ? r->message : cd_err_name(r->err));
    else if (s->conn && o->has_rid)
        cd_session__send_ok(s, RID(o), 0, NULL, NULL);
    cd_session__op_done(o);
}

void cd_session__h_presence_set(cd_session *s, const cd_req *req)
{
    sess_op *o = cd_session__op_new(s, req);
    cd_session__start_failed(s, o, cd_presence_set(s->node->st, s->id, req->status, on_presence_set, o));
}
