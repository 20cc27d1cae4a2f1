/* decode.c: bytes of one client text frame -> a validated cd_req.
 *
 * This is the only place where client JSON is interpreted. Everything above
 * proto receives typed, bounded, well-formed fields (STYLE.md B3 rule 3), so
 * the checks here are the server's input validation for the whole protocol.
 *
 * Order of checks, cheapest and most dangerous first:
 *   1. size (max_frame -> too_large) before touching the bytes;
 *   2. UTF-8, then the nesting-depth pre-scan, both linear and allocation-free,
 *      so jansson never recurses deeper than max_depth;
 *   3. json_loadb with JSON_REJECT_DUPLICATES (and without JSON_ALLOW_NUL, so
 *      "\u0000" is refused); the top level must be an object;
 *   4. type and rid, so that a later error can echo a valid rid;
 *   5. a cheap walk that caps object members (64) and array items (100);
 *   6. the per-type fields: JSON type, required/optional, length, range, enum.
 * Fields not listed for a type are ignored (the protocol may grow).
 *
 * Ownership: the parsed json_t root stays alive in req->priv_ and the string
 * fields point into it. Trimmed strings (message body, form message) are
 * copied so they are NUL-terminated. Arrays (resume, tags) are allocated only
 * after their length was checked against a limit. cd_proto_req_cleanup frees
 * everything and zeroes the request, which makes a second call harmless.
 *
 * Every failure returns CD_ERR_BAD_REQUEST or CD_ERR_TOO_LARGE with a short
 * static English message that is safe to send to the client. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chatdesk/proto.h"
#include "proto_int.h"

#define MAX_MEMBERS 64 /* object members, anywhere in a frame */
#define MAX_ITEMS 100  /* array items, anywhere in a frame */
#define MAX_TOKEN 1024 /* hello token bytes */
#define MAX_HASH 128   /* hello user.hash bytes */
#define MAX_EPOCH 64   /* resume entry epoch bytes */
#define MAX_MSG_ID 64  /* client_msg_id bytes (PROTOCOL.md: at most 64) */
#define MAX_TAG 64     /* one tag's bytes */
#define DEFAULT_LIMIT 50
#define MAX_LOCALE 16 /* conversation.start form.locale ("zh-CN", "en") */
#define MAX_PAGE 2048 /* hello page.url/title/referrer bytes */
#define MAX_ATTRS 20  /* hello attributes members */
#define MAX_ATTR_KEY 64
#define MAX_ATTR_VALUE 256

typedef struct priv {
    json_t *root;
    char *body;         /* trimmed message.send body */
    char *form_message; /* trimmed conversation.start form.message */
    char *attributes;   /* hello attributes, compact JSON (jansson-allocated) */
    char *attachments;  /* attachment ids joined by spaces */
} priv;

typedef struct dec {
    const cd_proto_limits *lim;
    cd_req *req;
    const char *msg;
} dec;

#define TRY(x)               \
    do {                     \
        cd_err e_ = (x);     \
        if (e_ != CD_ERR_OK) \
            return e_;       \
    } while (0)

/* ---- tables ---- */

/* clang-format off */
static const char *const frame_names[] = {
    "none",
#define CD_FRAME_NAME(e, s, roles, h) s,
    CD_PROTO_FRAMES(CD_FRAME_NAME)
#undef CD_FRAME_NAME
};
/* clang-format on */

static const char *const prio_names[] = {"low", "normal", "high", "urgent"}; /* CD_PRIO_LOW.. */
static const char *const conv_statuses[] = {"queued", "open", "pending", "resolved", "closed"};
static const char *const presence_statuses[] = {"online", "away", "offline"};
static const char *const writing_kinds[] = {"reply", "note"};

const char *cd_proto_frame_name(cd_frame_type t)
{
    if ((unsigned)t >= CD_FRAME__COUNT)
        return "none";
    return frame_names[t];
}

const char *cd_proto_priority_name(cd_priority p)
{
    if (p < CD_PRIO_LOW || p > CD_PRIO_URGENT)
        return "normal";
    return prio_names[p - CD_PRIO_LOW];
}

#define CID_MAX(lim) CD_PROTO_CID_MAX(lim)

void cd_proto_limits_default(cd_proto_limits *lim)
{
    lim->max_frame = 65536;
    lim->max_body = 8192;
    lim->max_depth = 8;
    lim->max_rid = 64;
    lim->max_id = 64;
    lim->max_field = 1024;
    lim->max_resume = 100;
    lim->max_tags = 20;
    lim->max_history = 100;
    lim->max_attachments = 5;
}

static cd_frame_type frame_lookup(const char *s)
{
    for (int t = CD_FRAME_NONE + 1; t < CD_FRAME__COUNT; t++)
        if (strcmp(frame_names[t], s) == 0)
            return (cd_frame_type)t;
    return CD_FRAME_NONE;
}

/* ---- field getters: each returns OK or sets d->msg and returns the error ---- */

static cd_err fail(dec *d, cd_err e, const char *msg)
{
    d->msg = msg;
    return e;
}

static cd_err get_str(dec *d, json_t *obj, const char *key, bool required, size_t min, size_t max, const char **out,
                      const char *missing, const char *invalid)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return required ? fail(d, CD_ERR_BAD_REQUEST, missing) : CD_ERR_OK;
    if (!json_is_string(v))
        return fail(d, CD_ERR_BAD_REQUEST, invalid);
    size_t n = json_string_length(v);
    if (n < min || n > max)
        return fail(d, CD_ERR_BAD_REQUEST, invalid);
    *out = json_string_value(v);
    return CD_ERR_OK;
}

/* The message strings are built from the key literal: "missing conversation_id". */
#define STR(d, o, k, req, lo, hi, dst) get_str(d, o, k, req, lo, hi, dst, "missing " k, "invalid " k)
#define STRN(d, o, k, name, req, lo, hi, dst) get_str(d, o, k, req, lo, hi, dst, "missing " name, "invalid " name)

/* Ids the server made (conversation ids, site keys, agent ids, team keys, epochs) are
 * A-Z a-z 0-9 _ - and '.': anything else is refused before it reaches a Redis key or
 * the bus (security issue, finding 8). */
static cd_err get_id(dec *d, json_t *obj, const char *key, bool required, size_t min, size_t max, const char **out,
                     const char *missing, const char *invalid)
{
    const char *v = NULL;
    cd_err e = get_str(d, obj, key, required, min, max, &v, missing, invalid);
    if (e != CD_ERR_OK || !v)
        return e;
    for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
              *c == '-' || *c == '.'))
            return fail(d, CD_ERR_BAD_REQUEST, invalid);
    }
    *out = v;
    return CD_ERR_OK;
}
#define ID(d, o, k, req, lo, hi, dst) get_id(d, o, k, req, lo, hi, dst, "missing " k, "invalid " k)
#define IDN(d, o, k, name, req, lo, hi, dst) get_id(d, o, k, req, lo, hi, dst, "missing " name, "invalid " name)

static cd_err get_int(dec *d, json_t *obj, const char *key, bool required, int64_t min, int64_t max, int64_t *out,
                      bool *present, const char *missing, const char *invalid)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return required ? fail(d, CD_ERR_BAD_REQUEST, missing) : CD_ERR_OK;
    if (!json_is_integer(v))
        return fail(d, CD_ERR_BAD_REQUEST, invalid);
    json_int_t x = json_integer_value(v);
    if (x < min || x > max)
        return fail(d, CD_ERR_BAD_REQUEST, invalid);
    *out = (int64_t)x;
    if (present)
        *present = true;
    return CD_ERR_OK;
}

#define INT(d, o, k, req, lo, hi, dst, pres) get_int(d, o, k, req, lo, hi, dst, pres, "missing " k, "invalid " k)

static cd_err get_bool(dec *d, json_t *obj, const char *key, bool required, bool *out, const char *missing,
                       const char *invalid)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return required ? fail(d, CD_ERR_BAD_REQUEST, missing) : CD_ERR_OK;
    if (!json_is_boolean(v))
        return fail(d, CD_ERR_BAD_REQUEST, invalid);
    *out = json_is_true(v);
    return CD_ERR_OK;
}

#define BOOL(d, o, k, req, dst) get_bool(d, o, k, req, dst, "missing " k, "invalid " k)

/* A string that must be one of names[0..n-1]; *idx gets its index, *str
 * (optional) the string itself. Absent leaves both untouched. */
static cd_err get_enum(dec *d, json_t *obj, const char *key, bool required, const char *const *names, size_t n,
                       int *idx, const char **str, const char *missing, const char *invalid)
{
    const char *s = NULL;
    TRY(get_str(d, obj, key, required, 1, 16, &s, missing, invalid));
    if (!s)
        return CD_ERR_OK;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], s) == 0) {
            *idx = (int)i;
            if (str)
                *str = s;
            return CD_ERR_OK;
        }
    }
    return fail(d, CD_ERR_BAD_REQUEST, invalid);
}

#define ENUM(d, o, k, req, names, idx, str) \
    get_enum(d, o, k, req, names, CD_ARRAY_LEN(names), idx, str, "missing " k, "invalid " k)

static cd_err get_priority(dec *d, json_t *obj, const char *key, cd_priority *out, const char *invalid)
{
    int i = -1;
    TRY(get_enum(d, obj, key, false, prio_names, CD_ARRAY_LEN(prio_names), &i, NULL, NULL, invalid));
    if (i >= 0)
        *out = (cd_priority)(CD_PRIO_LOW + i);
    return CD_ERR_OK;
}

/* Optional object member: absent -> *out NULL; present but not an object -> error. */
static cd_err get_obj(dec *d, json_t *obj, const char *key, json_t **out, const char *invalid)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v)
        return CD_ERR_OK;
    if (!json_is_object(v))
        return fail(d, CD_ERR_BAD_REQUEST, invalid);
    *out = v;
    return CD_ERR_OK;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Trims ASCII whitespace from both ends of s[0..n) in place of the bounds. */
static void trim(const char **s, size_t *n)
{
    const char *p = *s;
    size_t len = *n;
    while (len && is_space(p[0])) {
        p++;
        len--;
    }
    while (len && is_space(p[len - 1]))
        len--;
    *s = p;
    *n = len;
}

static priv *priv_of(dec *d)
{
    return d->req->priv_;
}

/* ---- structural caps over the whole tree ---- */

/* Recursion is bounded by the depth pre-scan (max_depth) that ran before parsing. */
static cd_err check_tree(dec *d, json_t *v)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        if (json_object_size(v) > MAX_MEMBERS)
            return fail(d, CD_ERR_BAD_REQUEST, "too many object members");
        json_object_foreach(v, k, m) TRY(check_tree(d, m));
    } else if (json_is_array(v)) {
        size_t i;
        json_t *m;
        if (json_array_size(v) > MAX_ITEMS)
            return fail(d, CD_ERR_BAD_REQUEST, "array too long");
        json_array_foreach(v, i, m) TRY(check_tree(d, m));
    }
    return CD_ERR_OK;
}

/* ---- per-type decoders ---- */

/* resume entries: [{conversation_id, after_seq >= 0 (default 0), epoch?}, ...] */
static cd_err dec_resume_list(dec *d, json_t *arr, const char *invalid, const char *too_many)
{
    cd_req *r = d->req;
    size_t i, n;
    json_t *it;

    if (!json_is_array(arr))
        return fail(d, CD_ERR_BAD_REQUEST, invalid);
    n = json_array_size(arr);
    if (n > d->lim->max_resume)
        return fail(d, CD_ERR_BAD_REQUEST, too_many);
    if (n == 0)
        return CD_ERR_OK;
    r->resume = cd_calloc(n, sizeof(*r->resume));
    json_array_foreach(arr, i, it)
    {
        cd_resume_item *ri = &r->resume[i];
        if (!json_is_object(it))
            return fail(d, CD_ERR_BAD_REQUEST, "invalid resume entry");
        TRY(IDN(d, it, "conversation_id", "resume conversation_id", true, 1, CID_MAX(d->lim), &ri->conversation_id));
        TRY(get_int(d, it, "after_seq", false, 0, INT64_MAX, &ri->after_seq, NULL, NULL, "invalid resume after_seq"));
        TRY(IDN(d, it, "epoch", "resume epoch", false, 0, MAX_EPOCH, &ri->epoch));
        r->n_resume = i + 1;
    }
    return CD_ERR_OK;
}

/* hello "attributes" (extension): a flat object of at most MAX_ATTRS members whose
 * values are strings (<= MAX_ATTR_VALUE bytes), numbers, booleans or null. */
static cd_err dec_attributes(dec *d, json_t *attrs)
{
    const char *k;
    json_t *v;
    if (json_object_size(attrs) > MAX_ATTRS)
        return fail(d, CD_ERR_BAD_REQUEST, "too many attributes");
    json_object_foreach(attrs, k, v)
    {
        size_t kl = strlen(k);
        if (kl == 0 || kl > MAX_ATTR_KEY)
            return fail(d, CD_ERR_BAD_REQUEST, "invalid attribute name");
        if (json_is_string(v) ? json_string_length(v) > MAX_ATTR_VALUE
                              : !(json_is_number(v) || json_is_boolean(v) || json_is_null(v)))
            return fail(d, CD_ERR_BAD_REQUEST, "invalid attribute value");
    }
    priv_of(d)->attributes = json_dumps(attrs, JSON_COMPACT | JSON_SORT_KEYS);
    if (!priv_of(d)->attributes)
        return fail(d, CD_ERR_BAD_REQUEST, "invalid attributes");
    d->req->attributes_json = priv_of(d)->attributes;
    return CD_ERR_OK;
}

static cd_err dec_hello(dec *d, json_t *o)
{
    cd_req *r = d->req;
    const cd_proto_limits *lim = d->lim;
    json_t *user, *res;

    TRY(ID(d, o, "site", false, 0, lim->max_id, &r->site));
    TRY(STR(d, o, "token", false, 0, MAX_TOKEN, &r->token));
    TRY(get_obj(d, o, "user", &user, "invalid user"));
    if (user) {
        r->has_user = true;
        TRY(STRN(d, user, "id", "user.id", true, 1, lim->max_id, &r->user_id));
        TRY(STRN(d, user, "name", "user.name", false, 0, lim->max_field, &r->user_name));
        TRY(STRN(d, user, "email", "user.email", false, 0, lim->max_field, &r->user_email));
        TRY(STRN(d, user, "hash", "user.hash", false, 0, MAX_HASH, &r->user_hash));
    }
    json_t *page, *attrs;
    TRY(get_obj(d, o, "page", &page, "invalid page"));
    if (page) {
        TRY(STRN(d, page, "url", "page.url", false, 0, MAX_PAGE, &r->page_url));
        TRY(STRN(d, page, "title", "page.title", false, 0, MAX_PAGE, &r->page_title));
        TRY(STRN(d, page, "referrer", "page.referrer", false, 0, MAX_PAGE, &r->page_referrer));
    }
    TRY(get_obj(d, o, "attributes", &attrs, "invalid attributes"));
    if (attrs)
        TRY(dec_attributes(d, attrs));
    res = json_object_get(o, "resume");
    if (res)
        TRY(dec_resume_list(d, res, "invalid resume", "too many resume entries"));
    return CD_ERR_OK;
}

static cd_err dec_resume(dec *d, json_t *o)
{
    json_t *res = json_object_get(o, "conversations");
    if (!res)
        return fail(d, CD_ERR_BAD_REQUEST, "missing conversations");
    return dec_resume_list(d, res, "invalid conversations", "too many conversations");
}

/* "attachments": an array of at most max_attachments distinct upload ids, joined by
 * spaces into the request (absent or [] leaves it NULL). */
static cd_err dec_attachments(dec *d, json_t *o)
{
    json_t *arr = json_object_get(o, "attachments");
    size_t i, n;
    json_t *v;
    if (!arr)
        return CD_ERR_OK;
    if (!json_is_array(arr))
        return fail(d, CD_ERR_BAD_REQUEST, "invalid attachments");
    n = json_array_size(arr);
    if (n > d->lim->max_attachments)
        return fail(d, CD_ERR_TOO_LARGE, "too many attachments");
    if (n == 0)
        return CD_ERR_OK;
    cd_buf b;
    cd_buf_init(&b);
    json_array_foreach(arr, i, v)
    {
        const char *id = json_string_value(v);
        size_t len = json_is_string(v) ? json_string_length(v) : 0;
        bool ok = len > 0 && len <= CID_MAX(d->lim) && strlen(id) == len;
        for (size_t k = 0; ok && k < len; k++)
            ok = (id[k] >= 'a' && id[k] <= 'z') || (id[k] >= 'A' && id[k] <= 'Z') || (id[k] >= '0' && id[k] <= '9') ||
                 id[k] == '_' || id[k] == '-' || id[k] == '.';
        for (size_t k = 0; ok && k < i; k++)
            ok = !json_equal(json_array_get(arr, k), v);
        if (!ok) {
            cd_buf_cleanup(&b);
            return fail(d, CD_ERR_BAD_REQUEST, "invalid attachments");
        }
        if (b.len)
            cd_buf_append(&b, " ", 1);
        cd_buf_append(&b, id, len);
    }
    priv_of(d)->attachments = b.data;
    d->req->attachments = b.data;
    d->req->n_attachments = n;
    return CD_ERR_OK;
}

static cd_err dec_conv_start(dec *d, json_t *o)
{
    cd_req *r = d->req;
    const cd_proto_limits *lim = d->lim;
    json_t *form;
    const char *msg = NULL;

    TRY(get_obj(d, o, "form", &form, "invalid form"));
    if (!form)
        return CD_ERR_OK;
    TRY(STRN(d, form, "name", "form.name", false, 0, lim->max_field, &r->form_name));
    TRY(STRN(d, form, "email", "form.email", false, 0, lim->max_field, &r->form_email));
    TRY(STRN(d, form, "category", "form.category", false, 0, lim->max_field, &r->form_category));
    TRY(STRN(d, form, "subject", "form.subject", false, 0, lim->max_field, &r->form_subject));
    TRY(get_priority(d, form, "priority", &r->form_priority, "invalid form.priority"));
    TRY(STRN(d, form, "locale", "form.locale", false, 0, MAX_LOCALE, &r->form_locale));
    TRY(STRN(d, form, "client_msg_id", "form.client_msg_id", false, 1, MAX_MSG_ID, &r->form_client_msg_id));
    /* The first message: like a message body it is trimmed and capped by
     * max_body (too_large), but empty or blank just means "no message". */
    TRY(STRN(d, form, "message", "form.message", false, 0, SIZE_MAX, &msg));
    if (msg) {
        size_t n = json_string_length(json_object_get(form, "message"));
        trim(&msg, &n);
        if (n > lim->max_body)
            return fail(d, CD_ERR_TOO_LARGE, "form.message too long");
        if (n > 0) {
            priv_of(d)->form_message = cd_strndup(msg, n);
            r->form_message = priv_of(d)->form_message;
        }
    }
    /* extension: the intake form's files (docs/attachments.md) */
    return dec_attachments(d, form);
}

static cd_err dec_msg_send(dec *d, json_t *o)
{
    cd_req *r = d->req;
    const char *body = NULL;
    size_t n;

    TRY(ID(d, o, "conversation_id", true, 1, CID_MAX(d->lim), &r->conversation_id));
    TRY(STR(d, o, "client_msg_id", true, 1, MAX_MSG_ID, &r->client_msg_id));
    TRY(STR(d, o, "body", true, 0, SIZE_MAX, &body));
    n = json_string_length(json_object_get(o, "body"));
    trim(&body, &n);
    TRY(dec_attachments(d, o));
    if (n == 0 && !r->attachments)
        return fail(d, CD_ERR_BAD_REQUEST, "empty body");
    if (n > d->lim->max_body)
        return fail(d, CD_ERR_TOO_LARGE, "body too long");
    TRY(BOOL(d, o, "private", false, &r->is_private));
    priv_of(d)->body = cd_strndup(body, n);
    r->body = priv_of(d)->body;
    r->body_len = n;
    return CD_ERR_OK;
}

static cd_err dec_history(dec *d, json_t *o)
{
    cd_req *r = d->req;
    int max = d->lim->max_history;
    int64_t limit = DEFAULT_LIMIT;

    TRY(ID(d, o, "conversation_id", true, 1, CID_MAX(d->lim), &r->conversation_id));
    TRY(INT(d, o, "before_seq", false, 1, INT64_MAX, &r->before_seq, &r->has_before_seq));
    /* Asking for more than the cap is not an error: the client gets the cap. */
    TRY(INT(d, o, "limit", false, 1, INT64_MAX, &limit, NULL));
    if (limit > max)
        limit = max;
    r->limit = (int)limit;
    return CD_ERR_OK;
}

static cd_err dec_typing(dec *d, json_t *o)
{
    TRY(ID(d, o, "conversation_id", true, 1, CID_MAX(d->lim), &d->req->conversation_id));
    return BOOL(d, o, "state", true, &d->req->state);
}

/* viewing (extension, agents): an agent has the conversation open (state true, sent again
 * while it stays open) or left it (false); "typing" says what it writes, if anything. */
static cd_err dec_viewing(dec *d, json_t *o)
{
    int i;
    TRY(ID(d, o, "conversation_id", true, 1, CID_MAX(d->lim), &d->req->conversation_id));
    TRY(BOOL(d, o, "state", true, &d->req->state));
    json_t *w = json_object_get(o, "typing");
    if (w && json_is_null(w))
        return CD_ERR_OK;
    return ENUM(d, o, "typing", false, writing_kinds, &i, &d->req->writing);
}

static cd_err dec_read(dec *d, json_t *o)
{
    TRY(ID(d, o, "conversation_id", true, 1, CID_MAX(d->lim), &d->req->conversation_id));
    return INT(d, o, "seq", true, 0, INT64_MAX, &d->req->seq, NULL);
}

static cd_err dec_csat(dec *d, json_t *o)
{
    cd_req *r = d->req;
    int64_t score = 0;

    TRY(ID(d, o, "conversation_id", true, 1, CID_MAX(d->lim), &r->conversation_id));
    TRY(INT(d, o, "score", true, 1, 5, &score, NULL));
    r->score = (int)score;
    /* extension: the optional survey questions after CSAT (docs/reports.md) */
    TRY(INT(d, o, "nps", false, 0, 10, &score, &r->has_nps));
    r->nps = r->has_nps ? (int)score : 0;
    TRY(INT(d, o, "ces", false, 1, 7, &score, &r->has_ces));
    r->ces = r->has_ces ? (int)score : 0;
    return STR(d, o, "comment", false, 0, d->lim->max_field, &r->comment);
}

static cd_err dec_presence_set(dec *d, json_t *o)
{
    int i;
    return ENUM(d, o, "status", true, presence_statuses, &i, &d->req->status);
}

static cd_err dec_conv_accept(dec *d, json_t *o)
{
    return ID(d, o, "conversation_id", true, 1, CID_MAX(d->lim), &d->req->conversation_id);
}

static cd_err dec_conv_transfer(dec *d, json_t *o)
{
    cd_req *r = d->req;

    TRY(ID(d, o, "conversation_id", true, 1, CID_MAX(d->lim), &r->conversation_id));
    TRY(ID(d, o, "agent_id", false, 1, d->lim->max_id, &r->agent_id));
    TRY(ID(d, o, "team", false, 1, d->lim->max_id, &r->team));
    if ((r->agent_id != NULL) == (r->team != NULL))
        return fail(d, CD_ERR_BAD_REQUEST, "need exactly one of agent_id or team");
    return STR(d, o, "note", false, 0, d->lim->max_field, &r->note);
}

static cd_err dec_conv_update(dec *d, json_t *o)
{
    cd_req *r = d->req;
    json_t *tags;
    int i;

    TRY(ID(d, o, "conversation_id", true, 1, CID_MAX(d->lim), &r->conversation_id));
    TRY(ENUM(d, o, "status", false, conv_statuses, &i, &r->status));
    TRY(get_priority(d, o, "priority", &r->priority, "invalid priority"));
    TRY(STR(d, o, "category", false, 0, d->lim->max_field, &r->category));
    tags = json_object_get(o, "tags");
    if (tags) {
        size_t n, k;
        json_t *t;
        if (!json_is_array(tags))
            return fail(d, CD_ERR_BAD_REQUEST, "invalid tags");
        n = json_array_size(tags);
        if (n > d->lim->max_tags)
            return fail(d, CD_ERR_BAD_REQUEST, "too many tags");
        r->has_tags = true;
        if (n)
            r->tags = cd_calloc(n, sizeof(*r->tags));
        json_array_foreach(tags, k, t)
        {
            size_t len;
            if (!json_is_string(t) || (len = json_string_length(t)) < 1 || len > MAX_TAG)
                return fail(d, CD_ERR_BAD_REQUEST, "invalid tags");
            r->tags[k] = json_string_value(t);
            r->n_tags = k + 1;
        }
    }
    if (!r->status && r->priority == CD_PRIO_NONE && !r->category && !r->has_tags)
        return fail(d, CD_ERR_BAD_REQUEST, "nothing to update");
    return CD_ERR_OK;
}

static cd_err dec_fields(dec *d, json_t *o)
{
    switch (d->req->type) {
    case CD_FRAME_HELLO:
        return dec_hello(d, o);
    case CD_FRAME_RESUME:
        return dec_resume(d, o);
    case CD_FRAME_CONV_START:
        return dec_conv_start(d, o);
    case CD_FRAME_MSG_SEND:
        return dec_msg_send(d, o);
    case CD_FRAME_HISTORY:
        return dec_history(d, o);
    case CD_FRAME_TYPING:
        return dec_typing(d, o);
    case CD_FRAME_VIEWING:
        return dec_viewing(d, o);
    case CD_FRAME_READ:
        return dec_read(d, o);
    case CD_FRAME_CSAT:
        return dec_csat(d, o);
    case CD_FRAME_PRESENCE_SET:
        return dec_presence_set(d, o);
    case CD_FRAME_CONV_ACCEPT:
    case CD_FRAME_CONV_CONFIRM:
        return dec_conv_accept(d, o);
    case CD_FRAME_CONV_TRANSFER:
        return dec_conv_transfer(d, o);
    case CD_FRAME_CONV_UPDATE:
        return dec_conv_update(d, o);
    case CD_FRAME_PING:
    case CD_FRAME_AVAILABILITY:
        return CD_ERR_OK;
    case CD_FRAME_NONE:
    case CD_FRAME__COUNT:
        break;
    }
    return fail(d, CD_ERR_BAD_REQUEST, "unknown type");
}

/* ---- entry points ---- */

static cd_err decode(dec *d, const char *buf, size_t len)
{
    const cd_proto_limits *lim = d->lim;
    cd_req *r = d->req;
    json_error_t jerr;
    json_t *root, *type;
    priv *pv;

    if (len > lim->max_frame)
        return fail(d, CD_ERR_TOO_LARGE, "frame too large");
    if (len == 0 || !buf)
        return fail(d, CD_ERR_BAD_REQUEST, "invalid JSON");
    if (!cd_proto_utf8_valid(buf, len))
        return fail(d, CD_ERR_BAD_REQUEST, "invalid UTF-8");
    if (cd_proto_json_depth(buf, len, lim->max_depth) > lim->max_depth)
        return fail(d, CD_ERR_BAD_REQUEST, "JSON nested too deeply");
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fail(d, CD_ERR_BAD_REQUEST, "invalid JSON");
    pv = cd_calloc(1, sizeof(*pv));
    pv->root = root;
    r->priv_ = pv;
    if (!json_is_object(root))
        return fail(d, CD_ERR_BAD_REQUEST, "frame must be a JSON object");

    /* type and rid first, so that any later error can be attributed and echoed. */
    type = json_object_get(root, "type");
    if (json_is_string(type))
        r->type = frame_lookup(json_string_value(type));
    TRY(STR(d, root, "rid", false, 1, lim->max_rid, &r->rid));
    if (!type)
        return fail(d, CD_ERR_BAD_REQUEST, "missing type");
    if (!json_is_string(type))
        return fail(d, CD_ERR_BAD_REQUEST, "invalid type");
    if (r->type == CD_FRAME_NONE)
        return fail(d, CD_ERR_BAD_REQUEST, "unknown type");
    TRY(check_tree(d, root));
    return dec_fields(d, root);
}

cd_err cd_proto_decode(const char *buf, size_t len, const cd_proto_limits *lim, cd_req *out, const char **errmsg)
{
    cd_proto_limits defaults;
    dec d;
    cd_err e;

    if (!lim) {
        cd_proto_limits_default(&defaults);
        lim = &defaults;
    }
    memset(out, 0, sizeof(*out));
    d.lim = lim;
    d.req = out;
    d.msg = NULL;
    e = decode(&d, buf, len);
    if (errmsg)
        *errmsg = e == CD_ERR_OK ? NULL : (d.msg ? d.msg : "bad request");
    return e;
}

/* Frees what decode allocated and zeroes the request. Safe on a zeroed
 * request, after a failed decode, and when called twice. */
void cd_proto_req_cleanup(cd_req *req)
{
    priv *pv;

    if (!req)
        return;
    pv = req->priv_;
    if (pv) {
        json_decref(pv->root);
        cd_free(pv->body);
        cd_free(pv->form_message);
        free(pv->attributes);
        cd_free(pv->attachments);
        cd_free(pv);
    }
    cd_free(req->resume);
    cd_free(req->tags);
    memset(req, 0, sizeof(*req));
}
