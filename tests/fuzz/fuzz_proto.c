/* fuzz_proto.c: libFuzzer target for the proto codec.
 *
 * Bytes from the wire reach cd_proto_decode unfiltered, so this target feeds
 * it arbitrary input under two limit sets (the defaults, and tiny limits so
 * that every length and count check is reachable with short inputs) and
 * asserts the decoder's contract, not just "no crash":
 *   - the result is OK, BAD_REQUEST or TOO_LARGE, with a message on failure;
 *   - invalid UTF-8, a depth above max_depth or a frame above max_frame never
 *     decode successfully;
 *   - on success every string is valid UTF-8 within its limit, the body is
 *     trimmed, NUL-terminated and 1..max_body bytes, counts are within limits,
 *     and per-type invariants hold (history limit, csat score, transfer target);
 *   - a rid, when set (also on failure), is 1..max_rid bytes of UTF-8;
 *   - cd_proto_req_cleanup frees everything (LeakSanitizer) and may run twice.
 * It also checks the UTF-8 validator against a slow reference decoder, and that
 * the JSON string writer turns any bytes into a JSON string jansson parses back
 * (exactly, when the input was valid UTF-8). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chatdesk/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz_proto: invariant failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* Slow, obviously-correct UTF-8 check: decode each code point and test it. */
static int ref_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i], cp;
        size_t len;
        uint32_t min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

static void check_str(const char *s, size_t min, size_t max)
{
    if (!s)
        return;
    size_t n = strlen(s);
    CHECK(n >= min && n <= max);
    CHECK(cd_proto_utf8_valid(s, n));
}

/* ids: A-Z a-z 0-9 _ - . only */
static void check_id(const char *s, size_t min, size_t max)
{
    check_str(s, min, max);
    for (const char *c = s; c && *c; c++)
        CHECK((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
              *c == '-' || *c == '.');
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void check_ok(const cd_req *r, const cd_proto_limits *lim)
{
    CHECK(r->type > CD_FRAME_NONE && r->type < CD_FRAME__COUNT);
    check_str(r->rid, 1, lim->max_rid);
    check_id(r->site, 0, lim->max_id);
    check_str(r->token, 0, 1024);
    check_str(r->user_id, 1, lim->max_id);
    check_str(r->user_name, 0, lim->max_field);
    check_str(r->user_email, 0, lim->max_field);
    check_str(r->user_hash, 0, 128);
    CHECK(!r->user_id == !r->has_user);
    CHECK(r->n_resume <= lim->max_resume);
    CHECK(!r->n_resume || r->resume);
    for (size_t i = 0; i < r->n_resume; i++) {
        CHECK(r->resume[i].conversation_id);
        check_id(r->resume[i].conversation_id, 1, CD_PROTO_CID_MAX(lim));
        check_id(r->resume[i].epoch, 0, 64);
        CHECK(r->resume[i].after_seq >= 0);
    }
    check_str(r->form_name, 0, lim->max_field);
    check_str(r->form_email, 0, lim->max_field);
    check_str(r->form_category, 0, lim->max_field);
    check_str(r->form_subject, 0, lim->max_field);
    check_str(r->form_message, 1, lim->max_body);
    if (r->form_message)
        CHECK(!is_ws(r->form_message[0]) && !is_ws(r->form_message[strlen(r->form_message) - 1]));
    CHECK(r->form_priority >= CD_PRIO_NONE && r->form_priority <= CD_PRIO_URGENT);
    check_id(r->conversation_id, 1, CD_PROTO_CID_MAX(lim));
    check_str(r->client_msg_id, 1, 64);
    if (r->type == CD_FRAME_MSG_SEND) {
        CHECK(r->body && r->conversation_id && r->client_msg_id);
        CHECK(r->body_len >= 1 && r->body_len <= lim->max_body);
        CHECK(strlen(r->body) == r->body_len);
        CHECK(cd_proto_utf8_valid(r->body, r->body_len));
        CHECK(!is_ws(r->body[0]) && !is_ws(r->body[r->body_len - 1]));
    } else {
        CHECK(!r->body && !r->body_len);
    }
    if (r->type == CD_FRAME_HISTORY) {
        CHECK(r->limit >= 1 && r->limit <= lim->max_history);
        CHECK(!r->has_before_seq || r->before_seq >= 1);
    }
    if (r->type == CD_FRAME_READ)
        CHECK(r->seq >= 0);
    if (r->type == CD_FRAME_CSAT)
        CHECK(r->score >= 1 && r->score <= 5);
    check_str(r->comment, 0, lim->max_field);
    check_str(r->status, 1, 16);
    CHECK(r->priority >= CD_PRIO_NONE && r->priority <= CD_PRIO_URGENT);
    check_str(r->category, 0, lim->max_field);
    CHECK(r->n_tags <= lim->max_tags);
    CHECK(r->has_tags || !r->n_tags);
    for (size_t i = 0; i < r->n_tags; i++) {
        CHECK(r->tags[i]);
        check_str(r->tags[i], 1, 64);
    }
    check_id(r->agent_id, 1, lim->max_id);
    check_id(r->team, 1, lim->max_id);
    check_str(r->note, 0, lim->max_field);
    if (r->type == CD_FRAME_CONV_TRANSFER)
        CHECK(!r->agent_id != !r->team);
    if (r->type == CD_FRAME_CONV_UPDATE)
        CHECK(r->status || r->priority || r->category || r->has_tags);
}

static void fuzz_decode(const uint8_t *data, size_t size, const cd_proto_limits *lim)
{
    const char *buf = (const char *)data;
    const char *msg = NULL;
    cd_req req;

    cd_err e = cd_proto_decode(buf, size, lim, &req, &msg);
    CHECK(e == CD_ERR_OK || e == CD_ERR_BAD_REQUEST || e == CD_ERR_TOO_LARGE);
    if (e == CD_ERR_OK) {
        CHECK(msg == NULL);
        CHECK(size <= lim->max_frame);
        CHECK(cd_proto_utf8_valid(buf, size));
        CHECK(cd_proto_json_depth(buf, size, lim->max_depth) <= lim->max_depth);
        check_ok(&req, lim);
    } else {
        CHECK(msg && *msg);
        if (e == CD_ERR_TOO_LARGE)
            CHECK(size > lim->max_frame || req.type == CD_FRAME_MSG_SEND || req.type == CD_FRAME_CONV_START);
        if (size > lim->max_frame)
            CHECK(e == CD_ERR_TOO_LARGE);
    }
    check_str(req.rid, 1, lim->max_rid);

    /* An error reply built from what was decoded is valid JSON echoing the rid. */
    if (e != CD_ERR_OK || req.rid) {
        cd_frame *f = cd_proto_encode_error(req.rid, e, msg ? msg : "ok");
        json_t *v = json_loadb(f->data, f->len, JSON_REJECT_DUPLICATES, NULL);
        CHECK(v && json_is_object(v));
        if (req.rid)
            CHECK(strcmp(json_string_value(json_object_get(v, "rid")), req.rid) == 0);
        json_decref(v);
        cd_frame_unref(f);
    }
    cd_proto_req_cleanup(&req);
    cd_proto_req_cleanup(&req);
}

static void fuzz_json_string(const uint8_t *data, size_t size)
{
    cd_frame *f = cd_frame_create(0);
    cd_frame_append_json_strn(f, (const char *)data, size);
    CHECK(f->data == f->storage + CD_FRAME_HEADROOM);
    CHECK(f->len <= f->cap && f->data[f->len] == '\0');
    CHECK(cd_proto_utf8_valid(f->data, f->len));
    json_error_t jerr;
    json_t *v = json_loadb(f->data, f->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    CHECK(v && json_is_string(v));
    if (cd_proto_utf8_valid((const char *)data, size)) {
        CHECK(json_string_length(v) == size);
        CHECK(size == 0 || memcmp(json_string_value(v), data, size) == 0);
    }
    json_decref(v);
    cd_frame_unref(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cd_proto_limits def, tiny;
    static int init;

    if (!init) {
        cd_proto_limits_default(&def);
        tiny = def;
        tiny.max_frame = 2048;
        tiny.max_body = 8;
        tiny.max_depth = 3;
        tiny.max_rid = 4;
        tiny.max_id = 6;
        tiny.max_field = 5;
        tiny.max_resume = 2;
        tiny.max_tags = 2;
        tiny.max_history = 10;
        init = 1;
    }

    CHECK(cd_proto_utf8_valid((const char *)data, size) == (ref_utf8_valid(data, size) != 0));
    int d = cd_proto_json_depth((const char *)data, size, 8);
    CHECK(d >= 0 && d <= 9);

    fuzz_decode(data, size, &def);
    fuzz_decode(data, size, &tiny);
    fuzz_json_string(data, size);
    return 0;
}
