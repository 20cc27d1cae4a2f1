/* proto: the pure protocol v1 codec. Bytes -> validated cd_req, or a cd_err.
 * Replies and events -> refcounted cd_frame with CD_FRAME_HEADROOM bytes in front.
 * No I/O, no Redis, no lws. See docs/protocol.md. */
#ifndef CHATDESK_PROTO_H
#define CHATDESK_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatdesk/base.h"

/* Every client frame type, once: X(ENUM, "wire name", roles, handler).
 * - roles: who may send it after hello (CD_PROTO_VISITOR, CD_PROTO_AGENT or
 *   CD_PROTO_ANY); another role gets forbidden. The session checks it from this table.
 * - handler: the session's handler, cd_session__h_<handler> (server/session/handlers_*.c).
 * The decoder (decode.c) reads each type's fields; docs/protocol.md documents them. */
#define CD_PROTO_VISITOR 1
#define CD_PROTO_AGENT 2
#define CD_PROTO_ANY 3
/* clang-format off */
#define CD_PROTO_FRAMES(X)                                                        \
    X(HELLO,         "hello",                 CD_PROTO_ANY,     hello_again)      \
    X(RESUME,        "resume",                CD_PROTO_ANY,     resume)           \
    X(CONV_START,    "conversation.start",    CD_PROTO_VISITOR, conv_start)       \
    X(MSG_SEND,      "message.send",          CD_PROTO_ANY,     msg_send)         \
    X(HISTORY,       "history",               CD_PROTO_ANY,     history)          \
    X(TYPING,        "typing",                CD_PROTO_ANY,     typing)           \
    X(VIEWING,       "viewing",               CD_PROTO_AGENT,   viewing)          \
    X(READ,          "read",                  CD_PROTO_ANY,     read)             \
    X(CSAT,          "csat",                  CD_PROTO_VISITOR, csat)             \
    X(PRESENCE_SET,  "presence.set",          CD_PROTO_AGENT,   presence_set)     \
    X(CONV_ACCEPT,   "conversation.accept",   CD_PROTO_AGENT,   conv_accept)      \
    X(CONV_TRANSFER, "conversation.transfer", CD_PROTO_AGENT,   conv_transfer)    \
    X(CONV_UPDATE,   "conversation.update",   CD_PROTO_AGENT,   conv_update)      \
    X(CONV_CONFIRM,  "conversation.confirm",  CD_PROTO_VISITOR, conv_confirm)     \
    X(AVAILABILITY,  "availability",          CD_PROTO_VISITOR, availability)     \
    X(PING,          "ping",                  CD_PROTO_ANY,     ping)
/* clang-format on */

typedef enum cd_frame_type {
    CD_FRAME_NONE = 0,
#define CD_FRAME_ENUM(e, s, roles, h) CD_FRAME_##e,
    CD_PROTO_FRAMES(CD_FRAME_ENUM)
#undef CD_FRAME_ENUM
        CD_FRAME__COUNT
} cd_frame_type;

const char *cd_proto_frame_name(cd_frame_type t);

/* Limits the decoder enforces (the server fills them from config). */
typedef struct cd_proto_limits {
    size_t max_frame;       /* whole frame bytes (default 65536) -> CD_ERR_TOO_LARGE */
    size_t max_body;        /* message body bytes after trimming (default 8192) -> TOO_LARGE */
    int max_depth;          /* JSON nesting depth, checked by a pre-scan before parsing (default 8) */
    size_t max_rid;         /* rid bytes (default 64) */
    size_t max_id;          /* client_msg_id, conversation ids, site keys, agent ids (default 64) */
    size_t max_field;       /* form fields, names, subjects, comments, notes (default 1024) */
    size_t max_resume;      /* resume entries (default 100) */
    size_t max_tags;        /* tags in conversation.update (default 20) */
    int max_history;        /* history limit cap (default 100) */
    size_t max_attachments; /* attachments of one message (default 5) */
} cd_proto_limits;
/* A conversation id names its site ("c_<random>.<site key>", docs/keyspace.md), so it may
 * be a site key (at most 64 bytes) and a dot longer than other ids. */
#define CD_PROTO_CID_MAX(lim) ((lim)->max_id + 65)

void cd_proto_limits_default(cd_proto_limits *lim);

typedef struct cd_resume_item {
    const char *conversation_id;
    int64_t after_seq; /* >= 0 */
    const char *epoch; /* NULL when absent */
} cd_resume_item;

typedef enum cd_priority { CD_PRIO_NONE = 0, CD_PRIO_LOW, CD_PRIO_NORMAL, CD_PRIO_HIGH, CD_PRIO_URGENT } cd_priority;

/* A decoded, validated request. String pointers point into memory owned by the
 * request (freed by cd_proto_req_cleanup); NULL means "absent". Strings are
 * valid UTF-8 with no NUL bytes. */
typedef struct cd_req {
    cd_frame_type type;
    const char *rid;

    /* hello */
    const char *site;
    const char *token;
    bool has_user;
    const char *user_id, *user_name, *user_email, *user_hash;

    /* hello extensions: the page the widget runs on, and custom attributes as
     * compact JSON (a flat object, validated) */
    const char *page_url, *page_title, *page_referrer;
    const char *attributes_json;

    /* hello "resume" and resume "conversations" */
    cd_resume_item *resume;
    size_t n_resume;

    /* conversation.start "form" (every field optional) */
    const char *form_name, *form_email, *form_category, *form_subject, *form_message;
    cd_priority form_priority;      /* CD_PRIO_NONE when absent */
    const char *form_locale;        /* extension: the visitor's language for system messages */
    const char *form_client_msg_id; /* extension: a retried start returns the same conversation */

    /* most conversation frames */
    const char *conversation_id;

    /* message.send */
    const char *client_msg_id;
    const char *body; /* trimmed of leading/trailing whitespace, 1..max_body bytes (0.. with attachments) */
    size_t body_len;
    bool is_private;
    /* message.send "attachments" and conversation.start "form.attachments": upload ids
     * joined by spaces (each checked as an id, no repeats), NULL when absent or empty */
    const char *attachments;
    size_t n_attachments;

    /* history */
    bool has_before_seq;
    int64_t before_seq;
    int limit; /* 1..max_history, default 50 */

    /* typing, viewing */
    bool state;
    /* viewing: what the agent is writing, "reply" or "note"; NULL when neither */
    const char *writing;
    /* read */
    int64_t seq;
    /* csat */
    int score; /* 1..5 */
    const char *comment;
    bool has_nps; /* extension: optional NPS 0..10 and CES 1..7 (reports) */
    int nps;
    bool has_ces;
    int ces;

    /* presence.set: "online|away|offline"; conversation.update: status too */
    const char *status;
    /* conversation.update */
    cd_priority priority; /* CD_PRIO_NONE when absent */
    const char *category;
    bool has_tags;
    const char **tags;
    size_t n_tags;

    /* conversation.transfer */
    const char *agent_id;
    const char *team;
    const char *note;

    void *priv_; /* owned parse state */
} cd_req;

/* Decode one text frame. On success returns CD_ERR_OK and fills *out (call
 * cd_proto_req_cleanup later). On failure returns the protocol error code
 * (BAD_REQUEST or TOO_LARGE), sets *errmsg to a static human-readable message,
 * and still sets out->rid when a valid rid could be read (so the error can
 * echo it); cleanup must be called in both cases.
 * Checks: size, UTF-8, depth pre-scan, valid JSON object, no duplicate keys,
 * no \u0000, "type" known, rid string <= max_rid, per-type field types,
 * required fields, lengths, enums. Unknown extra fields are ignored. */
cd_err cd_proto_decode(const char *buf, size_t len, const cd_proto_limits *lim, cd_req *out, const char **errmsg);
void cd_proto_req_cleanup(cd_req *req);

/* Valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF)? */
bool cd_proto_utf8_valid(const char *s, size_t len);
/* Max nesting depth of a JSON text by a pre-scan that respects strings;
 * stops early and returns limit+1 once it exceeds limit. */
int cd_proto_json_depth(const char *s, size_t len, int limit);

const char *cd_proto_priority_name(cd_priority p); /* "normal" for NONE */

/* ---- outgoing frames ---- */

#define CD_FRAME_HEADROOM 16 /* >= LWS_PRE; ws.c asserts it */

typedef struct cd_frame {
    int refs;
    size_t len; /* payload bytes, starting at data */
    size_t cap; /* payload capacity */
    char *data; /* = storage + CD_FRAME_HEADROOM */
    char *storage;
} cd_frame;

cd_frame *cd_frame_create(size_t cap_hint);
cd_frame *cd_frame_ref(cd_frame *f);
void cd_frame_unref(cd_frame *f);
void cd_frame_append(cd_frame *f, const void *p, size_t n);
void cd_frame_append_str(cd_frame *f, const char *s);
/* Appends s as a JSON string literal (quotes + escapes). NULL -> null. */
void cd_frame_append_json_str(cd_frame *f, const char *s);
void cd_frame_append_json_strn(cd_frame *f, const char *s, size_t n);
void cd_frame_append_int(cd_frame *f, int64_t v);

/* {"type":"error","rid":rid,"code":"...","message":"..."}; rid NULL -> omitted. */
cd_frame *cd_proto_encode_error(const char *rid, cd_err code, const char *message);
/* {"type":"ok","rid":rid} + for each (key, raw JSON value) pair: ,"key":raw ; raw values are
 * already-encoded JSON. keys/raws arrays of n entries. */
cd_frame *cd_proto_encode_ok(const char *rid, size_t n, const char *const *keys, const char *const *raws);
/* ---- the session family (encode_session.c) ---- */

/* {"type":"welcome","rid","visitor","token","conversations","site"?,"agents_online"} */
typedef struct cd_proto_welcome_visitor {
    const char *rid;                                               /* NULL: omitted */
    const char *raw_visitor, *raw_conversations, *raw_site_config; /* site_config NULL: omitted */
    const char *token;
    bool agents_online;
} cd_proto_welcome_visitor;
cd_frame *cd_proto_encode_welcome_visitor(const cd_proto_welcome_visitor *w);
/* {"type":"welcome","rid","agent","conversations","queue"} */
cd_frame *cd_proto_encode_welcome_agent(const char *rid, const char *raw_agent, const char *raw_conversations,
                                        const char *raw_queue);
/* {"type":"resumed","conversation_id","last_seq","epoch","recovered"} */
cd_frame *cd_proto_encode_resumed(const char *cid, int64_t last_seq, const char *epoch, bool recovered);
/* An error about one resume entry names its conversation instead of a rid:
 * {"type":"error","code","message","conversation_id"} */
cd_frame *cd_proto_encode_entry_error(const char *cid, cd_err code, const char *message);
/* {"type":"conversation.assigned","conversation":raw} (a conversation handed over locally) */
cd_frame *cd_proto_encode_assigned(const char *raw_conversation);

/* Copy of raw bytes as a frame (events arriving from the bus). */
cd_frame *cd_proto_frame_from(const char *p, size_t n);

/* One stored message, as the message object of message.created, history and the ok of
 * message.send (docs/protocol.md): the one place a message object is written in C. */
typedef struct cd_proto_msg {
    int64_t seq, ts;
    const char *cid; /* conversation id (message.created) */
    size_t cid_len;
    const char *id, *kind, *author; /* message id, author kind, author id */
    size_t id_len, kind_len, author_len;
    const char *cmid, *name, *body; /* client_msg_id, author name ("" -> null), body */
    size_t cmid_len, name_len, body_len;
    const char *att; /* the attachments' JSON array as stored; att_len 0: none */
    size_t att_len;
    bool priv;
} cd_proto_msg;
/* Appends {"seq","id","client_msg_id","author":{"kind","id","name"},"body","private"
 * [,"attachments"],"ts"}. */
void cd_proto_append_message(cd_frame *f, const cd_proto_msg *m);
/* {"type":"message.created","conversation_id":cid,"message":{...}} */
cd_frame *cd_proto_encode_message_created(const cd_proto_msg *m);
/* {"type":"ok","rid":rid,"message":{...}} (rid NULL -> omitted) */
cd_frame *cd_proto_encode_ok_message(const char *rid, const cd_proto_msg *m);
/* The compact bus form of message.created that the store publishes (store/lua
 * _common.lua pub_msg): "M <cid> <id> <kind> <author> <ts> <0|1> <#cmid> <#name>
 * <#body>[ <#att>]\n<cmid><name><body>[<att>]". m points into p (seq comes from the bus
 * header).
 * Returns 0, or -1 when p is not that form. */
int cd_proto_parse_bus_message(const char *p, size_t n, cd_proto_msg *m);

/* POST /api/v1/login body {"email","password"}: BAD_REQUEST unless an object with
 * both strings (email <= 254 bytes, password 1..128 bytes). Copies into the buffers. */
cd_err cd_proto_decode_login(const char *buf, size_t len, char *email, size_t email_sz, char *password,
                             size_t password_sz, const char **errmsg);

#endif
