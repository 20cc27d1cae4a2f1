/* conv: conversations and messages, and the visitors and agents who take part in them:
 * hello, start, send (dedupe by client_msg_id), history, resume pages, typing, read,
 * csat, accept, update, transfer, confirm, autoclose. Each state change is one Redis
 * function (store/lua/) declaring the conversation's key; replies come back as a
 * cd_conv_result whose raw_* members are ready-to-splice JSON texts, and message.send
 * has its own small reply (cd_conv_sent) on the hot path. Never sees a connection;
 * presence, routing, tickets, timers and the site cache have their own modules. */
#ifndef CHATDESK_CONV_H
#define CHATDESK_CONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatdesk/base.h"
#include "chatdesk/config.h"
#include "chatdesk/proto.h"
#include "chatdesk/store.h"
#include "chatdesk/ticket.h"
#include "chatdesk/timers.h"

typedef struct cd_conv_ref {
    char id[160];
    char site[80];
    int64_t last_seq;
    char epoch[80];
} cd_conv_ref;

typedef struct cd_conv_result {
    cd_err err;
    char *message;           /* error text from the script, or NULL */
    char *raw_conversation;  /* "conversation" object */
    char *raw_message;       /* "message" object, or NULL */
    char *raw_visitor;       /* "visitor" object */
    char *raw_agent;         /* "agent" object */
    char *raw_conversations; /* "conversations" array */
    char *raw_messages;      /* "messages" array */
    char *raw_queue;         /* agent_get: "queue" array of waiting conversations */
    char *raw_site_config;   /* visitor_hello: what the widget shows */
    cd_conv_ref *convs;      /* ids in "conversations" (or the one "conversation") */
    size_t n_convs;
    char visitor_id[80];
    char agent_id[80];
    char agent_name[256];
    char agent_role[16];
    char **agent_sites;
    size_t n_agent_sites;
    bool totp; /* agent_get: two-factor login is on (api_totp.lua) */
    int64_t seq, last_seq;
    char epoch[80];
    bool recovered, duplicate, agents_online;
    bool visitor_stored; /* visitor_hello: the visitor has a record (false: anonymous, none yet) */
    bool more;           /* resume: another page follows after page_last */
    int64_t page_last;   /* resume: the last seq this page covered */
    bool sla;            /* a ticket's SLA clocks need cd_ticket_sla_sync */
    char site[80];       /* msg_send: the conversation's site */
    char **frames;       /* resume: message.created frames */
    size_t n_frames;
    char *raw_viewers;  /* viewing: "viewers" array */
    int64_t refresh_ms; /* viewing: send it again this often while the conversation stays open */
} cd_conv_result;

typedef void (*cd_conv_cb)(void *ud, cd_conv_result *res);

typedef struct cd_conv_author {
    const char *kind; /* "visitor" | "agent" */
    const char *id;
    const char *name;
    /* The site the call runs in when the conversation id does not name one (an id of the
     * previous release): the visitor's site, or the agent's first site. */
    const char *site;
} cd_conv_author;

/* Each call: 0 and cb fires once later (res is freed after cb returns), or -1 when
 * Redis is unavailable (cb never fires). */
/* vid: from a verified token or ""; user_id: verified identity or ""; profile fields
 * (user name/email, page, attributes) come from the hello request. */
int cd_conv_visitor_hello(cd_store *st, const cd_config *cfg, const char *site, const char *vid, const char *user_id,
                          const cd_req *hello, cd_conv_cb cb, void *ud);
/* The profile an anonymous visitor's hello gave (name, email, page, attributes) as a
 * compact JSON object the node keeps until the visitor's first conversation writes its
 * record (no Redis key before that); NULL when the hello gave none. Free with cd_free. */
char *cd_conv_visitor_profile(const cd_req *hello);
/* intervals: the site's business intervals (cd_sla_intervals) for a ticket made at once.
 * profile: from cd_conv_visitor_profile while the visitor has no record, else NULL. */
int cd_conv_start(cd_store *st, const cd_config *cfg, const char *site, const char *vid, const cd_req *req,
                  const char *intervals, const char *profile, cd_conv_cb cb, void *ud);
/* message.send, the hot path, with its own small reply (no JSON is built in Redis for a
 * new message: msg is the stored message, made from the request and the reply). */
typedef struct cd_conv_sent {
    cd_err err;
    const char *error; /* the script's error text, or NULL */
    cd_proto_msg msg;  /* the stored message (valid during the callback) */
    bool duplicate;
    const char *raw_message; /* duplicate: the message object as first stored */
    bool sla;                /* a ticket's SLA clocks need cd_ticket_sla_sync */
    char site[80];           /* the conversation's site */
} cd_conv_sent;
typedef void (*cd_conv_sent_cb)(void *ud, const cd_conv_sent *res);
/* sites: an agent's sites as " s1 s2 " (from its verified session), "" for a visitor.
 * intervals: the conversation's site's business intervals, so a ticket's SLA clocks
 * follow the message in the same call; NULL or "" when unknown (res->sla then asks for
 * cd_ticket_sla_sync). */
int cd_conv_send(cd_store *st, const cd_config *cfg, const cd_conv_author *a, const char *sites, const char *intervals,
                 const cd_req *req, cd_conv_sent_cb cb, void *ud);
int cd_conv_history(cd_store *st, const cd_conv_author *a, const char *cid, int64_t before_seq, int limit,
                    cd_conv_cb cb, void *ud);
/* One page of replay after after_seq (sized to half the outbound queue); res->more and
 * res->page_last say where the next page starts. */
int cd_conv_resume(cd_store *st, const cd_config *cfg, const cd_conv_author *a, const char *cid, int64_t after_seq,
                   const char *epoch, cd_conv_cb cb, void *ud);
int cd_conv_typing(cd_store *st, const cd_conv_author *a, const char *cid, bool state, cd_conv_cb cb, void *ud);
/* viewing: the agent a has the conversation open (state) and writes a reply or a note
 * (writing "reply"/"note", NULL: neither), or left it (!state); kept ttl_ms unless sent
 * again (store/lua/viewing.lua). */
int cd_conv_viewing(cd_store *st, const cd_conv_author *a, const char *cid, bool state, const char *writing,
                    int64_t ttl_ms, cd_conv_cb cb, void *ud);
int cd_conv_read(cd_store *st, const cd_conv_author *a, const char *cid, int64_t seq, cd_conv_cb cb, void *ud);
int cd_conv_csat(cd_store *st, const char *site, const char *vid, const cd_req *req, cd_conv_cb cb, void *ud);
int cd_conv_accept(cd_store *st, const cd_conv_author *a, const char *cid, cd_conv_cb cb, void *ud);
/* intervals: the conversation's site's business intervals, so that a ticket's SLA clocks
 * follow a status change in the same call (NULL or "" when unknown: the reply says sla). */
int cd_conv_update(cd_store *st, const cd_conv_author *a, const cd_req *req, const char *intervals, cd_conv_cb cb,
                   void *ud);
/* To req->agent_id, or to req->team (escalation), with req->note kept as a private note. */
int cd_conv_transfer(cd_store *st, const cd_config *cfg, const cd_conv_author *a, const cd_req *req, cd_conv_cb cb,
                     void *ud);
/* Timer "autoclose|<cid>": close a conversation still resolved. */
int cd_conv_autoclose(cd_store *st, const char *site, const char *cid, cd_conv_cb cb, void *ud);
/* Registers the conversation timer kinds ("autoclose"). */
void cd_conv_timers_register(cd_timers *t, cd_store *st);
/* The visitor confirms a resolved conversation: closed. */
int cd_conv_confirm(cd_store *st, const char *site, const char *vid, const char *cid, const char *intervals,
                    cd_conv_cb cb, void *ud);
/* A hello's agent (its welcome): the record by id, with the agent's open conversations
 * and its teams' queues gathered from each of its sites. The token's epoch and jti are
 * checked: unauthorized when revoked. (The login's lookup by e-mail is account's.) */
int cd_conv_agent_get(cd_store *st, const char *aid, int64_t epoch, const char *jti, cd_conv_cb cb, void *ud);

#endif
