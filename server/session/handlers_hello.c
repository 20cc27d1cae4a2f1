/* hello, the first frame of a connection, and its welcome (docs/protocol.md). A visitor's
 * hello is checked against the site cache (site, origin, identity HMAC, a token of the
 * same site) before visitor_hello runs; an anonymous visitor's profile stays on the node
 * until its first conversation writes its record (nothing in Redis before). An agent's
 * needs a login token whose epoch and jti agent_get checks (revocation). The welcome is
 * written by proto (cd_proto_encode_welcome_*); resume entries of the hello run after
 * it. A failed hello is answered and closes the connection (4401, or 1013 when Redis is
 * unavailable). availability, a visitor's later question of the welcome's agents_online,
 * is answered here too. */
#include <stdio.h>
#include <string.h>

#include "chatdesk/clock.h"
#include "chatdesk/presence.h"
#include "session_int.h"

typedef struct hello_op {
    sess_op base;
    cd_req req;    /* resume entries are needed after the reply */
    char *profile; /* visitor: cd_conv_visitor_profile of the hello, kept if no record exists */
} hello_op;

static void fail_hello(cd_session *s, const char *rid, cd_err code, const char *msg)
{
    cd_session__send_error(s, rid, code, msg);
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
    sess_op *o = &h->base;
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
    char token[CD_AUTH_TOKEN_MAX];
    if (cd_auth_token_sign(cd_node_keyring_get(s->node->keys), &c, token, sizeof token) != 0) {
        fail_hello(s, RID(o), CD_ERR_INTERNAL, "cannot sign token");
        goto done;
    }
    s->state = SESS_ACTIVE;
    for (size_t i = 0; i < r->n_convs; i++)
        cd_session__join_conv(s, r->convs[i].id, r->convs[i].last_seq);
    cd_proto_welcome_visitor w = {RID(o), r->raw_visitor,  r->raw_conversations, r->raw_site_config,
                                  token,  r->agents_online};
    cd_session__enqueue(s, cd_proto_encode_welcome_visitor(&w));
    cd_session__start_resumes(s, &h->req);
done:
    cd_free(h->req.resume);
    cd_free(h->profile);
    cd_session__unref(s);
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
    sess_op *o = &h->base;
    cd_session *s = o->s;
    if (!s->conn)
        goto done;
    if (r->err != CD_ERR_OK) {
        s->state = SESS_AWAIT_HELLO;
        fail_hello(s, RID(o), r->err == CD_ERR_NOT_FOUND ? CD_ERR_UNAUTHORIZED : r->err,
                   r->err == CD_ERR_NOT_FOUND ? "unknown agent" : (r->message ? r->message : cd_err_name(r->err)));
        goto done;
    }
    if (!r->totp && cd_node_requires_2fa(s->node, r->agent_sites, r->n_agent_sites)) {
        /* a login from before a site required it (the login now gives an enrolment token) */
        s->state = SESS_AWAIT_HELLO;
        fail_hello(s, RID(o), CD_ERR_UNAUTHORIZED, "two-factor login required: sign in again to set it up");
        goto done;
    }
    s->totp = r->totp;
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
    cd_session__join(s, topic, false, NULL, 0);
    for (size_t i = 0; i < s->n_sites; i++) {
        snprintf(topic, sizeof topic, "site:%s", s->sites[i]);
        cd_session__join(s, topic, false, NULL, 0);
    }
    for (size_t i = 0; i < r->n_convs; i++)
        cd_session__join_conv(s, r->convs[i].id, r->convs[i].last_seq);
    cd_session__enqueue(s, cd_proto_encode_welcome_agent(RID(o), r->raw_agent, r->raw_conversations, r->raw_queue));
    s->presence_counted = true;
    cd_presence_agent_up(s->node->presence, s->id);
    cd_session__start_resumes(s, &h->req);
done:
    cd_free(h->req.resume);
    cd_session__unref(s);
    cd_free(h);
}

void cd_session__hello(cd_session *s, const cd_req *req)
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
        const cd_site *site = site_key && *site_key ? cd_node_sites_get(n->sites, site_key) : NULL;
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
        rc = cd_conv_agent_get(n->st, claims.sub, claims.epoch, claims.jti, on_agent_hello, h);
    }
    if (rc == 0)
        return;
    s->state = SESS_AWAIT_HELLO;
    fail_hello(s, req->rid, CD_ERR_UNAVAILABLE, "storage unavailable, retry");
fail:
    cd_free(h->req.resume);
    cd_free(h->profile);
    cd_session__unref(s);
    cd_free(h);
}

/* availability (visitors): whether an agent of the site is online now, so that a widget
 * showing its pre-chat form can switch between the chat form and the offline form without
 * a reload (docs/protocol.md). One read-only call; an idle widget never sends it. */
static void on_availability(void *ud, cd_err err, bool online)
{
    sess_op *o = ud;
    cd_session *s = o->s;
    if (s->conn) {
        if (err != CD_ERR_OK) {
            cd_session__send_error(s, RID(o), CD_ERR_UNAVAILABLE, "storage unavailable, retry");
        } else {
            const char *keys[] = {"agents_online"};
            const char *raws[] = {online ? "true" : "false"};
            cd_session__send_ok(s, RID(o), 1, keys, raws);
        }
    }
    cd_session__op_done(o);
}

void cd_session__h_availability(cd_session *s, const cd_req *req)
{
    sess_op *o = cd_session__op_new(s, req);
    cd_session__start_failed(s, o, cd_presence_site_online(s->node->st, s->site, on_availability, o));
}

/* hello after welcome (the table's row for HELLO) */
void cd_session__h_hello_again(cd_session *s, const cd_req *req)
{
    cd_session__send_error(s, req->rid, CD_ERR_BAD_REQUEST, "hello was already sent");
}
