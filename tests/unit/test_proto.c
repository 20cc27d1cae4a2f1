/* test_proto.c: unit tests for the proto codec (server/proto/).
 *
 * The decoder rules are data-driven: tests/unit/cases/proto/decode.json holds
 * one case per line, {name, in | in_hex, err, msg?, limits?, expect?}. "in" is
 * either the raw frame text (a JSON string, so invalid JSON can be expressed)
 * or a JSON value that is serialised compactly; "in_hex" gives raw bytes (for
 * invalid UTF-8). For a successful case the decoded request, turned into JSON
 * by req_to_json(), must equal a zeroed request overlaid with "expect", so a
 * field set by mistake fails the case too. For a failing case the keys listed
 * in "expect" (typically rid and type) are compared. The runner reads the
 * directory from $CD_TEST_CASES (set by ctest) and fails if it cannot.
 *
 * The C tests cover what does not fit a table: limits at their default sizes
 * (64 KiB frame, 8 KiB body, 64 members, 100 items), cleanup safety, the UTF-8
 * validator, the depth pre-scan, and the frame encoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "chatdesk/proto.h"

/* ---- helpers ---- */

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *prio_or_null(cd_priority p)
{
    return p == CD_PRIO_NONE ? json_null() : json_string(cd_proto_priority_name(p));
}

/* Every field of a cd_req as JSON, named like the struct members. */
static json_t *req_to_json(const cd_req *r)
{
    json_t *o = json_object();
    json_t *res = json_null(), *tags = json_null();

    if (r->resume || r->n_resume) {
        res = json_array();
        for (size_t i = 0; i < r->n_resume; i++)
            json_array_append_new(res, json_pack("{s:o,s:I,s:o}", "conversation_id",
                                                 str_or_null(r->resume[i].conversation_id), "after_seq",
                                                 (json_int_t)r->resume[i].after_seq, "epoch",
                                                 str_or_null(r->resume[i].epoch)));
    }
    if (r->has_tags) {
        tags = json_array();
        for (size_t i = 0; i < r->n_tags; i++)
            json_array_append_new(tags, str_or_null(r->tags[i]));
    }
    json_object_set_new(o, "type", r->type == CD_FRAME_NONE ? json_null() : json_string(cd_proto_frame_name(r->type)));
    json_object_set_new(o, "rid", str_or_null(r->rid));
    json_object_set_new(o, "site", str_or_null(r->site));
    json_object_set_new(o, "token", str_or_null(r->token));
    json_object_set_new(o, "has_user", json_boolean(r->has_user));
    json_object_set_new(o, "user_id", str_or_null(r->user_id));
    json_object_set_new(o, "user_name", str_or_null(r->user_name));
    json_object_set_new(o, "user_email", str_or_null(r->user_email));
    json_object_set_new(o, "user_hash", str_or_null(r->user_hash));
    json_object_set_new(o, "page_url", str_or_null(r->page_url));
    json_object_set_new(o, "page_title", str_or_null(r->page_title));
    json_object_set_new(o, "page_referrer", str_or_null(r->page_referrer));
    json_object_set_new(o, "attributes_json", str_or_null(r->attributes_json));
    json_object_set_new(o, "resume", res);
    json_object_set_new(o, "form_name", str_or_null(r->form_name));
    json_object_set_new(o, "form_email", str_or_null(r->form_email));
    json_object_set_new(o, "form_category", str_or_null(r->form_category));
    json_object_set_new(o, "form_subject", str_or_null(r->form_subject));
    json_object_set_new(o, "form_message", str_or_null(r->form_message));
    json_object_set_new(o, "form_locale", str_or_null(r->form_locale));
    json_object_set_new(o, "form_client_msg_id", str_or_null(r->form_client_msg_id));
    json_object_set_new(o, "form_priority", prio_or_null(r->form_priority));
    json_object_set_new(o, "conversation_id", str_or_null(r->conversation_id));
    json_object_set_new(o, "client_msg_id", str_or_null(r->client_msg_id));
    json_object_set_new(o, "body", r->body ? json_stringn(r->body, r->body_len) : json_null());
    json_object_set_new(o, "body_len", json_integer((json_int_t)r->body_len));
    json_object_set_new(o, "is_private", json_boolean(r->is_private));
    json_object_set_new(o, "has_before_seq", json_boolean(r->has_before_seq));
    json_object_set_new(o, "before_seq", json_integer(r->before_seq));
    json_object_set_new(o, "limit", json_integer(r->limit));
    json_object_set_new(o, "state", json_boolean(r->state));
    json_object_set_new(o, "writing", str_or_null(r->writing));
    json_object_set_new(o, "seq", json_integer(r->seq));
    json_object_set_new(o, "score", json_integer(r->score));
    json_object_set_new(o, "comment", str_or_null(r->comment));
    json_object_set_new(o, "nps", r->has_nps ? json_integer(r->nps) : json_null());
    json_object_set_new(o, "ces", r->has_ces ? json_integer(r->ces) : json_null());
    json_object_set_new(o, "status", str_or_null(r->status));
    json_object_set_new(o, "priority", prio_or_null(r->priority));
    json_object_set_new(o, "category", str_or_null(r->category));
    json_object_set_new(o, "has_tags", json_boolean(r->has_tags));
    json_object_set_new(o, "tags", tags);
    json_object_set_new(o, "agent_id", str_or_null(r->agent_id));
    json_object_set_new(o, "team", str_or_null(r->team));
    json_object_set_new(o, "note", str_or_null(r->note));
    return o;
}

static void check_str(const char *what, const char *s)
{
    if (!s)
        return;
    if (!cd_proto_utf8_valid(s, strlen(s)))
        fail_msg("%s is not valid UTF-8", what);
}

/* Invariants of every successful decode, whatever the frame. */
static void check_ok_invariants(const cd_req *r)
{
    assert_true(r->type > CD_FRAME_NONE && r->type < CD_FRAME__COUNT);
    check_str("rid", r->rid);
    check_str("site", r->site);
    check_str("token", r->token);
    check_str("user_id", r->user_id);
    check_str("form_message", r->form_message);
    check_str("conversation_id", r->conversation_id);
    check_str("body", r->body);
    if (r->body) {
        assert_int_equal(strlen(r->body), r->body_len);
        assert_true(r->body_len >= 1);
    }
    for (size_t i = 0; i < r->n_resume; i++)
        assert_non_null(r->resume[i].conversation_id);
    for (size_t i = 0; i < r->n_tags; i++)
        assert_non_null(r->tags[i]);
    if (r->type == CD_FRAME_HISTORY)
        assert_true(r->limit >= 1);
}

static const char *err_str(cd_err e)
{
    return cd_err_name(e);
}

static void limits_from_json(cd_proto_limits *lim, json_t *o)
{
    const char *k;
    json_t *v;

    cd_proto_limits_default(lim);
    json_object_foreach(o, k, v)
    {
        json_int_t x = json_integer_value(v);
        if (!json_is_integer(v))
            fail_msg("limit %s is not an integer", k);
        if (!strcmp(k, "max_frame"))
            lim->max_frame = (size_t)x;
        else if (!strcmp(k, "max_body"))
            lim->max_body = (size_t)x;
        else if (!strcmp(k, "max_depth"))
            lim->max_depth = (int)x;
        else if (!strcmp(k, "max_rid"))
            lim->max_rid = (size_t)x;
        else if (!strcmp(k, "max_id"))
            lim->max_id = (size_t)x;
        else if (!strcmp(k, "max_field"))
            lim->max_field = (size_t)x;
        else if (!strcmp(k, "max_resume"))
            lim->max_resume = (size_t)x;
        else if (!strcmp(k, "max_tags"))
            lim->max_tags = (size_t)x;
        else if (!strcmp(k, "max_history"))
            lim->max_history = (int)x;
        else
            fail_msg("unknown limit %s", k);
    }
}

static char *hex_decode(const char *hex, size_t *n)
{
    size_t len = strlen(hex);
    char *out = malloc(len / 2 + 1);
    assert_true(len % 2 == 0);
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (char)v;
    }
    *n = len / 2;
    return out;
}

/* Runs one case; returns 0 when it passed, else prints why and returns 1. */
static int run_case(json_t *c)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    json_t *in = json_object_get(c, "in");
    json_t *in_hex = json_object_get(c, "in_hex");
    const char *want_err = json_string_value(json_object_get(c, "err"));
    const char *want_msg = json_string_value(json_object_get(c, "msg"));
    json_t *expect = json_object_get(c, "expect");
    cd_proto_limits lim;
    cd_req req;
    const char *errmsg = "unset";
    char *buf;
    size_t len;
    int failed = 0;

    if (!name || !want_err || (!in && !in_hex)) {
        fprintf(stderr, "malformed case: %s\n", name ? name : "(no name)");
        return 1;
    }
    limits_from_json(&lim, json_object_get(c, "limits"));
    if (in_hex) {
        buf = hex_decode(json_string_value(in_hex), &len);
    } else if (json_is_string(in)) {
        len = json_string_length(in);
        buf = malloc(len + 1);
        memcpy(buf, json_string_value(in), len);
    } else {
        buf = json_dumps(in, JSON_COMPACT | JSON_PRESERVE_ORDER);
        len = strlen(buf);
    }

    cd_err e = cd_proto_decode(buf, len, &lim, &req, &errmsg);
    if (strcmp(err_str(e), want_err) != 0) {
        fprintf(stderr, "[%s] got %s (%s), want %s\n", name, err_str(e), errmsg ? errmsg : "-", want_err);
        failed = 1;
    }
    if (e != CD_ERR_OK) {
        if (!errmsg || !*errmsg || strlen(errmsg) > 60) {
            fprintf(stderr, "[%s] bad errmsg\n", name);
            failed = 1;
        } else if (want_msg && strcmp(errmsg, want_msg) != 0) {
            fprintf(stderr, "[%s] message \"%s\", want \"%s\"\n", name, errmsg, want_msg);
            failed = 1;
        }
    } else if (errmsg) {
        fprintf(stderr, "[%s] errmsg set on success\n", name);
        failed = 1;
    }

    json_t *got = req_to_json(&req);
    if (e == CD_ERR_OK && !failed) {
        /* The whole request must equal a zeroed one overlaid with "expect". */
        cd_req zero;
        memset(&zero, 0, sizeof(zero));
        json_t *want = req_to_json(&zero);
        const char *k;
        json_t *v;
        json_object_foreach(expect, k, v)
        {
            if (!json_object_get(want, k)) {
                fprintf(stderr, "[%s] expect names unknown field %s\n", name, k);
                failed = 1;
            }
            json_object_set(want, k, v);
        }
        if (!json_equal(want, got)) {
            char *a = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
            char *b = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
            fprintf(stderr, "[%s] decoded\n  got  %s\n  want %s\n", name, a, b);
            free(a);
            free(b);
            failed = 1;
        }
        json_decref(want);
        check_ok_invariants(&req);
    } else if (expect && !failed) {
        const char *k;
        json_t *v;
        json_object_foreach(expect, k, v)
        {
            json_t *g = json_object_get(got, k);
            if (!g || !json_equal(g, v)) {
                char *a = g ? json_dumps(g, JSON_ENCODE_ANY) : NULL;
                fprintf(stderr, "[%s] field %s: got %s\n", name, k, a ? a : "(unknown field)");
                free(a);
                failed = 1;
            }
        }
    }
    json_decref(got);
    cd_proto_req_cleanup(&req);
    cd_proto_req_cleanup(&req); /* twice is harmless */
    free(buf);
    return failed;
}

static void test_decode_cases(void **state)
{
    const char *dir = getenv("CD_TEST_CASES");
    char path[4096];
    json_error_t jerr;
    json_t *cases, *c;
    size_t i;
    int failed = 0;

    (void)state;
    if (!dir)
        fail_msg("CD_TEST_CASES is not set (run through ctest)");
    snprintf(path, sizeof(path), "%s/proto/decode.json", dir);
    cases = json_load_file(path, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
    if (!cases)
        fail_msg("%s:%d: %s", path, jerr.line, jerr.text);
    assert_true(json_is_array(cases));
    assert_true(json_array_size(cases) >= 200); /* the file really was read */
    json_array_foreach(cases, i, c) failed += run_case(c);
    json_decref(cases);
    if (failed)
        fail_msg("%d decode case(s) failed", failed);
}

static cd_err decode_str(const char *s, const cd_proto_limits *lim, cd_req *r, const char **msg)
{
    return cd_proto_decode(s, strlen(s), lim, r, msg);
}

/* ---- decoder tests that need generated input or C-level checks ---- */

static void test_defaults(void **state)
{
    cd_proto_limits lim;
    (void)state;
    memset(&lim, 0xff, sizeof(lim));
    cd_proto_limits_default(&lim);
    assert_int_equal(lim.max_frame, 65536);
    assert_int_equal(lim.max_body, 8192);
    assert_int_equal(lim.max_depth, 8);
    assert_int_equal(lim.max_rid, 64);
    assert_int_equal(lim.max_id, 64);
    assert_int_equal(lim.max_field, 1024);
    assert_int_equal(lim.max_resume, 100);
    assert_int_equal(lim.max_tags, 20);
    assert_int_equal(lim.max_history, 100);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(cd_proto_frame_name(CD_FRAME_HELLO), "hello");
    assert_string_equal(cd_proto_frame_name(CD_FRAME_MSG_SEND), "message.send");
    assert_string_equal(cd_proto_frame_name(CD_FRAME_CONV_UPDATE), "conversation.update");
    assert_string_equal(cd_proto_frame_name(CD_FRAME_PING), "ping");
    assert_non_null(cd_proto_frame_name(CD_FRAME_NONE));
    assert_non_null(cd_proto_frame_name((cd_frame_type)999));
    assert_string_equal(cd_proto_priority_name(CD_PRIO_NONE), "normal");
    assert_string_equal(cd_proto_priority_name(CD_PRIO_LOW), "low");
    assert_string_equal(cd_proto_priority_name(CD_PRIO_NORMAL), "normal");
    assert_string_equal(cd_proto_priority_name(CD_PRIO_HIGH), "high");
    assert_string_equal(cd_proto_priority_name(CD_PRIO_URGENT), "urgent");

    /* Every frame name decodes back to its own type (ping-like frames may fail on
     * missing fields, but the type must still be set). */
    for (int t = CD_FRAME_NONE + 1; t < CD_FRAME__COUNT; t++) {
        char buf[128];
        cd_req r;
        snprintf(buf, sizeof(buf), "{\"type\":\"%s\"}", cd_proto_frame_name((cd_frame_type)t));
        (void)decode_str(buf, NULL, &r, NULL);
        assert_int_equal(r.type, t);
        cd_proto_req_cleanup(&r);
    }
}

static void test_cleanup_safety(void **state)
{
    cd_req r;
    const char *msg;
    (void)state;

    memset(&r, 0, sizeof(r));
    cd_proto_req_cleanup(&r);
    cd_proto_req_cleanup(&r);
    cd_proto_req_cleanup(NULL);

    /* After a failure that already allocated (resume array, then a bad entry). */
    assert_int_equal(
        decode_str("{\"type\":\"hello\",\"rid\":\"x\",\"resume\":[{\"conversation_id\":\"a\"},{}]}", NULL, &r, &msg),
        CD_ERR_BAD_REQUEST);
    assert_string_equal(r.rid, "x");
    cd_proto_req_cleanup(&r);
    assert_null(r.rid);
    assert_null(r.priv_);
    assert_null(r.resume);
    cd_proto_req_cleanup(&r);

    /* After success with every kind of owned memory. */
    assert_int_equal(
        decode_str("{\"type\":\"conversation.update\",\"conversation_id\":\"c\",\"tags\":[\"a\"]}", NULL, &r, &msg),
        CD_ERR_OK);
    cd_proto_req_cleanup(&r);
    cd_proto_req_cleanup(&r);
    assert_int_equal(
        decode_str("{\"type\":\"message.send\",\"conversation_id\":\"c\",\"client_msg_id\":\"m\",\"body\":\" b "
                   "\"}",
                   NULL, &r, &msg),
        CD_ERR_OK);
    assert_string_equal(r.body, "b");
    cd_proto_req_cleanup(&r);
    cd_proto_req_cleanup(&r);

    /* Garbage in *out before decode is ignored (decode zeroes it), and a NULL errmsg is allowed. */
    memset(&r, 0xa5, sizeof(r));
    assert_int_equal(decode_str("{]", NULL, &r, NULL), CD_ERR_BAD_REQUEST);
    assert_null(r.rid);
    assert_null(r.priv_);
    cd_proto_req_cleanup(&r);
}

static void test_body_is_a_nul_terminated_copy(void **state)
{
    const char *f =
        "{\"type\":\"message.send\",\"conversation_id\":\"c\",\"client_msg_id\":\"m\",\"body\":\"  a\\tb  \"}";
    cd_req r;
    (void)state;
    assert_int_equal(decode_str(f, NULL, &r, NULL), CD_ERR_OK);
    assert_int_equal(r.body_len, 3);
    assert_memory_equal(r.body, "a\tb", 4); /* includes the terminating NUL */
    cd_proto_req_cleanup(&r);
}

/* Builds {"type":"message.send",...,"body":"<pad><n x 'x'><pad>"}. */
static char *send_with_body(size_t n, size_t pad)
{
    const char *head = "{\"type\":\"message.send\",\"conversation_id\":\"c\",\"client_msg_id\":\"m\",\"body\":\"";
    size_t hl = strlen(head);
    char *b = malloc(hl + n + 2 * pad + 3);
    size_t o = hl;
    memcpy(b, head, hl);
    memset(b + o, ' ', pad);
    o += pad;
    memset(b + o, 'x', n);
    o += n;
    memset(b + o, ' ', pad);
    o += pad;
    memcpy(b + o, "\"}", 3);
    return b;
}

static void test_default_size_limits(void **state)
{
    cd_req r;
    char *f;
    (void)state;

    f = send_with_body(8192, 0);
    assert_int_equal(decode_str(f, NULL, &r, NULL), CD_ERR_OK);
    assert_int_equal(r.body_len, 8192);
    cd_proto_req_cleanup(&r);
    free(f);

    f = send_with_body(8193, 0);
    assert_int_equal(decode_str(f, NULL, &r, NULL), CD_ERR_TOO_LARGE);
    assert_int_equal(r.type, CD_FRAME_MSG_SEND);
    cd_proto_req_cleanup(&r);
    free(f);

    f = send_with_body(8192, 1000); /* trimmed first, then measured */
    assert_int_equal(decode_str(f, NULL, &r, NULL), CD_ERR_OK);
    assert_int_equal(r.body_len, 8192);
    cd_proto_req_cleanup(&r);
    free(f);

    /* Whole frame: exactly 65536 bytes passes, 65537 is too_large before parsing. */
    char *big = malloc(65537 + 1);
    memset(big, ' ', 65537);
    memcpy(big, "{\"type\":\"ping\"}", 15);
    assert_int_equal(cd_proto_decode(big, 65536, NULL, &r, NULL), CD_ERR_OK);
    cd_proto_req_cleanup(&r);
    const char *msg = NULL;
    assert_int_equal(cd_proto_decode(big, 65537, NULL, &r, &msg), CD_ERR_TOO_LARGE);
    assert_string_equal(msg, "frame too large");
    cd_proto_req_cleanup(&r);
    /* Garbage above the limit is still too_large, not bad_request: size is checked first. */
    memset(big, 0xff, 65537);
    assert_int_equal(cd_proto_decode(big, 65537, NULL, &r, NULL), CD_ERR_TOO_LARGE);
    cd_proto_req_cleanup(&r);
    free(big);
}

/* {"type":"ping","rid":"r","k1":1,...} with `extra` members after type and rid, or
 * the same members inside a nested object "o" when nested. */
static char *object_with_members(size_t extra, int nested)
{
    size_t cap = 64 + extra * 16;
    char *b = malloc(cap);
    size_t o = (size_t)snprintf(b, cap, "{\"type\":\"ping\",\"rid\":\"r\"%s", nested ? ",\"o\":{\"k\":0" : "");
    for (size_t i = 0; i < extra; i++)
        o += (size_t)snprintf(b + o, cap - o, ",\"k%zu\":1", i);
    snprintf(b + o, cap - o, "%s}", nested ? "}" : "");
    return b;
}

static void test_member_cap(void **state)
{
    cd_req r;
    const char *msg;
    char *f;
    (void)state;

    f = object_with_members(62, 0); /* 64 members in all */
    assert_int_equal(decode_str(f, NULL, &r, &msg), CD_ERR_OK);
    cd_proto_req_cleanup(&r);
    free(f);
    f = object_with_members(63, 0); /* 65 */
    assert_int_equal(decode_str(f, NULL, &r, &msg), CD_ERR_BAD_REQUEST);
    assert_string_equal(msg, "too many object members");
    assert_string_equal(r.rid, "r");
    cd_proto_req_cleanup(&r);
    free(f);
    f = object_with_members(63, 1); /* nested object with 64 members */
    assert_int_equal(decode_str(f, NULL, &r, &msg), CD_ERR_OK);
    cd_proto_req_cleanup(&r);
    free(f);
    f = object_with_members(64, 1); /* nested object with 65 */
    assert_int_equal(decode_str(f, NULL, &r, &msg), CD_ERR_BAD_REQUEST);
    assert_string_equal(msg, "too many object members");
    cd_proto_req_cleanup(&r);
    free(f);
}

static char *ping_with_array(size_t items, int nested)
{
    size_t cap = 64 + items * 2;
    char *b = malloc(cap);
    size_t o = (size_t)snprintf(b, cap, "{\"type\":\"ping\",\"a\":%s[", nested ? "{\"b\":[[],[]," : "");
    for (size_t i = 0; i < items; i++)
        o += (size_t)snprintf(b + o, cap - o, "%s1", i ? "," : "");
    snprintf(b + o, cap - o, "]%s}", nested ? "]}" : "");
    return b;
}

static void test_array_cap(void **state)
{
    cd_req r;
    const char *msg;
    char *f;
    (void)state;

    f = ping_with_array(100, 0);
    assert_int_equal(decode_str(f, NULL, &r, &msg), CD_ERR_OK);
    cd_proto_req_cleanup(&r);
    free(f);
    f = ping_with_array(101, 0);
    assert_int_equal(decode_str(f, NULL, &r, &msg), CD_ERR_BAD_REQUEST);
    assert_string_equal(msg, "array too long");
    cd_proto_req_cleanup(&r);
    free(f);
    f = ping_with_array(100, 1);
    assert_int_equal(decode_str(f, NULL, &r, &msg), CD_ERR_OK);
    cd_proto_req_cleanup(&r);
    free(f);
    f = ping_with_array(101, 1);
    assert_int_equal(decode_str(f, NULL, &r, &msg), CD_ERR_BAD_REQUEST);
    assert_string_equal(msg, "array too long");
    cd_proto_req_cleanup(&r);
    free(f);

    /* The 100-item cap also bounds resume lists even when max_resume is larger. */
    cd_proto_limits lim;
    cd_proto_limits_default(&lim);
    lim.max_resume = 500;
    char *h = malloc(101 * 24 + 64);
    size_t o = (size_t)sprintf(h, "{\"type\":\"hello\",\"resume\":[");
    for (int i = 0; i < 101; i++)
        o += (size_t)sprintf(h + o, "%s{\"conversation_id\":\"c\"}", i ? "," : "");
    strcpy(h + o, "]}");
    assert_int_equal(decode_str(h, &lim, &r, &msg), CD_ERR_BAD_REQUEST);
    assert_string_equal(msg, "array too long");
    cd_proto_req_cleanup(&r);
    free(h);
}

static void test_default_depth(void **state)
{
    cd_req r;
    char buf[256];
    (void)state;
    /* Depth 8 (the default limit) is accepted, 9 is not. */
    strcpy(buf, "{\"type\":\"ping\",\"a\":[[[[[[[1]]]]]]]}");
    assert_int_equal(decode_str(buf, NULL, &r, NULL), CD_ERR_OK);
    cd_proto_req_cleanup(&r);
    strcpy(buf, "{\"type\":\"ping\",\"a\":[[[[[[[[1]]]]]]]]}");
    assert_int_equal(decode_str(buf, NULL, &r, NULL), CD_ERR_BAD_REQUEST);
    cd_proto_req_cleanup(&r);
    /* A very deep frame is refused by the pre-scan, cheaply, without parsing. */
    char *deep = malloc(60001);
    memset(deep, '[', 60000);
    deep[60000] = '\0';
    const char *msg;
    assert_int_equal(decode_str(deep, NULL, &r, &msg), CD_ERR_BAD_REQUEST);
    assert_string_equal(msg, "JSON nested too deeply");
    cd_proto_req_cleanup(&r);
    free(deep);
}

static void test_rid_and_type_survive_later_errors(void **state)
{
    cd_req r;
    const char *msg;
    (void)state;
    assert_int_equal(
        decode_str("{\"rid\":\"abc\",\"type\":\"csat\",\"conversation_id\":\"c\",\"score\":9}", NULL, &r, &msg),
        CD_ERR_BAD_REQUEST);
    assert_string_equal(r.rid, "abc");
    assert_int_equal(r.type, CD_FRAME_CSAT);
    assert_string_equal(msg, "invalid score");
    cd_proto_req_cleanup(&r);

    /* An invalid rid is never set. */
    assert_int_equal(decode_str("{\"rid\":\"\",\"type\":\"ping\"}", NULL, &r, &msg), CD_ERR_BAD_REQUEST);
    assert_null(r.rid);
    cd_proto_req_cleanup(&r);

    /* Errors before parsing have no rid to echo. */
    assert_int_equal(decode_str("{\"rid\":\"abc\",\"type\":\"ping\"", NULL, &r, &msg), CD_ERR_BAD_REQUEST);
    assert_null(r.rid);
    cd_proto_req_cleanup(&r);
}

/* ---- UTF-8 ---- */

typedef struct utf8_case {
    const char *bytes;
    size_t len;
    int valid;
} utf8_case;

#define U(s, v)             \
    {                       \
        s, sizeof(s) - 1, v \
    }

static void test_utf8(void **state)
{
    static const utf8_case cases[] = {
        U("", 1),
        U("plain ascii", 1),
        U("\x7f", 1),
        U("nul\0inside", 1),      /* NUL is valid UTF-8; JSON rejects it later */
        U("\xc2\x80", 1),         /* U+0080, smallest 2-byte */
        U("\xdf\xbf", 1),         /* U+07FF */
        U("\xe0\xa0\x80", 1),     /* U+0800, smallest 3-byte */
        U("\xed\x9f\xbf", 1),     /* U+D7FF, just below the surrogates */
        U("\xee\x80\x80", 1),     /* U+E000, just above */
        U("\xef\xbf\xbf", 1),     /* U+FFFF */
        U("\xf0\x90\x80\x80", 1), /* U+10000 */
        U("\xf4\x8f\xbf\xbf", 1), /* U+10FFFF, the largest */
        U("\xe2\x80\xa8", 1),     /* U+2028 */
        U("h\xc3\xa9llo \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80", 1),
        U("\x80", 0), /* lone continuation */
        U("\xbf", 0),
        U("\xc0\x80", 0),                 /* overlong NUL */
        U("\xc0\xaf", 0),                 /* overlong '/' */
        U("\xc1\xbf", 0),                 /* overlong 2-byte */
        U("\xe0\x80\xaf", 0),             /* overlong 3-byte '/' */
        U("\xe0\x9f\xbf", 0),             /* overlong U+07FF */
        U("\xf0\x80\x80\xaf", 0),         /* overlong 4-byte */
        U("\xf0\x8f\xbf\xbf", 0),         /* overlong U+FFFF */
        U("\xed\xa0\x80", 0),             /* U+D800 high surrogate */
        U("\xed\xbf\xbf", 0),             /* U+DFFF low surrogate */
        U("\xed\xa0\xbd\xed\xb8\x80", 0), /* CESU-8 surrogate pair */
        U("\xf4\x90\x80\x80", 0),         /* U+110000 */
        U("\xf5\x80\x80\x80", 0),
        U("\xf7\xbf\xbf\xbf", 0),
        U("\xf8\x88\x80\x80\x80", 0), /* 5-byte form */
        U("\xfe", 0),
        U("\xff", 0),
        U("\xc3", 0),            /* truncated 2-byte */
        U("\xe4\xbd", 0),        /* truncated 3-byte */
        U("\xf0\x9f\x98", 0),    /* truncated 4-byte */
        U("abc\xf0\x9f\x98", 0), /* truncated at the end after ASCII */
        U("\xc3\x28", 0),        /* bad continuation */
        U("\xe2\x28\xa1", 0),
        U("\xe2\x82\x28", 0),
        U("\xf0\x28\x8c\xbc", 0),
        U("\xf0\x90\x28\xbc", 0),
        U("\xf0\x90\x8c\x28", 0),
        U("12345678\x80", 0),             /* invalid byte right after the 8-byte fast path */
        U("1234567890123456\xc3\xa9", 1), /* valid byte after two fast-path words */
        U("1234567\xc3\xa9", 1),          /* a sequence straddling a word boundary */
    };
    (void)state;
    for (size_t i = 0; i < CD_ARRAY_LEN(cases); i++) {
        bool v = cd_proto_utf8_valid(cases[i].bytes, cases[i].len);
        if (v != (cases[i].valid != 0))
            fail_msg("utf8 case %zu: got %d want %d", i, v, cases[i].valid);
    }
    /* A length shorter than the buffer cuts a sequence: only len bytes count. */
    assert_false(cd_proto_utf8_valid("\xc3\xa9", 1));
    assert_true(cd_proto_utf8_valid(NULL, 0));
}

/* ---- depth pre-scan ---- */

typedef struct depth_case {
    const char *s;
    int limit;
    int want;
} depth_case;

static void test_depth(void **state)
{
    static const depth_case cases[] = {
        {"", 8, 0},
        {"1", 8, 0},
        {"\"[[[\"", 8, 0},
        {"{}", 8, 1},
        {"[]", 8, 1},
        {"{\"a\":[1,{\"b\":[]}]}", 8, 4},
        {"[][][]", 8, 1},
        {"[[]][[[]]]", 8, 3},
        {"{\"a\":\"[[[[[[[[[[[[\"}", 8, 1},
        {"{\"a\":\"}}}}\",\"b\":[[1]]}", 8, 3},   /* closers in strings don't lower depth */
        {"{\"a\":\"\\\"[[[[\"}", 8, 1},           /* escaped quote does not end the string */
        {"{\"a\":\"\\\\\",\"b\":[[[1]]]}", 8, 4}, /* escaped backslash then a real end quote */
        {"{\"[[[[\":1}", 8, 1},                   /* brackets in keys */
        {"[\"\\u005b\",[1]]", 8, 2},
        {"]]]]{", 8, 1}, /* unbalanced closers never go below 0 */
        {"[[[[[[[[", 8, 8},
        {"[[[[[[[[[", 8, 9},
        {"[[[[[[[[[[[[[[[[[[[[[[[[[", 8, 9}, /* stops at limit + 1 */
        {"[[[", 0, 1},
        {"{\"a\":\"[[[", 1, 1}, /* unterminated string: the rest is inside it */
    };
    (void)state;
    for (size_t i = 0; i < CD_ARRAY_LEN(cases); i++) {
        int d = cd_proto_json_depth(cases[i].s, strlen(cases[i].s), cases[i].limit);
        if (d != cases[i].want)
            fail_msg("depth case %zu (%s): got %d want %d", i, cases[i].s, d, cases[i].want);
    }
    /* Only len bytes are scanned. */
    assert_int_equal(cd_proto_json_depth("[[[[", 2, 8), 2);
}

/* ---- frames ---- */

static void test_frame_create_and_grow(void **state)
{
    cd_frame *f;
    (void)state;

    f = cd_frame_create(0);
    assert_non_null(f);
    assert_int_equal(f->refs, 1);
    assert_int_equal(f->len, 0);
    assert_true(f->cap > 0);
    assert_ptr_equal(f->data, f->storage + CD_FRAME_HEADROOM);
    assert_int_equal(f->data[0], '\0');

    /* Grow far past the hint, one byte at a time and in chunks. */
    for (int i = 0; i < 1000; i++) {
        char c = (char)('a' + i % 26);
        cd_frame_append(f, &c, 1);
    }
    char chunk[5000];
    memset(chunk, 'z', sizeof(chunk));
    cd_frame_append(f, chunk, sizeof(chunk));
    cd_frame_append(f, NULL, 0);
    cd_frame_append_str(f, "");
    assert_int_equal(f->len, 6000);
    assert_true(f->cap >= f->len);
    assert_ptr_equal(f->data, f->storage + CD_FRAME_HEADROOM);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(f->data[i], 'a' + i % 26);
    assert_int_equal(f->data[5999], 'z');
    assert_int_equal(f->data[6000], '\0');
    /* The headroom is writable without touching the payload (ws.c puts the WS header there). */
    memset(f->storage, 0x55, CD_FRAME_HEADROOM);
    assert_int_equal(f->data[0], 'a');
    cd_frame_unref(f);

    f = cd_frame_create(10000);
    assert_true(f->cap >= 10000);
    cd_frame_unref(f);
}

static void test_frame_refcount(void **state)
{
    cd_frame *f = cd_frame_create(16);
    (void)state;
    cd_frame_append_str(f, "x");
    assert_ptr_equal(cd_frame_ref(f), f);
    assert_ptr_equal(cd_frame_ref(f), f);
    assert_int_equal(f->refs, 3);
    cd_frame_unref(f);
    assert_int_equal(f->refs, 2);
    cd_frame_unref(f);
    assert_int_equal(f->refs, 1);
    assert_string_equal(f->data, "x"); /* still alive and intact */
    cd_frame_unref(f);                 /* freed here; ASan builds check it */
    cd_frame_unref(NULL);
    assert_null(cd_frame_ref(NULL));
}

static char *json_str_of(const char *s, size_t n)
{
    cd_frame *f = cd_frame_create(0);
    cd_frame_append_json_strn(f, s, n);
    char *out = strdup(f->data);
    assert_int_equal(strlen(out), f->len);
    cd_frame_unref(f);
    return out;
}

typedef struct esc_case {
    const char *in;
    size_t len;
    const char *want;
} esc_case;

#define E(s, w)             \
    {                       \
        s, sizeof(s) - 1, w \
    }

static void test_json_escape(void **state)
{
    static const esc_case cases[] = {
        E("", "\"\""),
        E("plain", "\"plain\""),
        E("a\"b", "\"a\\\"b\""),
        E("a\\b", "\"a\\\\b\""),
        E("\n\t\r\b\f", "\"\\n\\t\\r\\b\\f\""),
        E("\x01\x1f", "\"\\u0001\\u001f\""),
        E("\x0b", "\"\\u000b\""),
        E("a\0b", "\"a\\u0000b\""),
        E("\x7f ~", "\"\x7f ~\""),
        E("</script>", "\"</script>\""), /* "</" need not be escaped */
        E("h\xc3\xa9 \xe4\xbd\xa0 \xf0\x9f\x98\x80", "\"h\xc3\xa9 \xe4\xbd\xa0 \xf0\x9f\x98\x80\""),
        E("x\xe2\x80\xa8y\xe2\x80\xa9z", "\"x\\u2028y\\u2029z\""),
        E("\xe2\x80\xa7\xe2\x80\xaa", "\"\xe2\x80\xa7\xe2\x80\xaa\""), /* neighbours pass through */
        E("bad\xff", "\"bad\\ufffd\""),                                /* never emit invalid UTF-8 */
        E("\xc0\xaf", "\"\\ufffd\\ufffd\""),
        E("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""),
        E("trunc\xe2\x80", "\"trunc\\ufffd\\ufffd\""),
    };
    (void)state;
    for (size_t i = 0; i < CD_ARRAY_LEN(cases); i++) {
        char *got = json_str_of(cases[i].in, cases[i].len);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("escape case %zu: got %s want %s", i, got, cases[i].want);
        free(got);
    }

    cd_frame *f = cd_frame_create(0);
    cd_frame_append_json_str(f, NULL);
    cd_frame_append(f, ",", 1);
    cd_frame_append_json_str(f, "q\"");
    cd_frame_append(f, ",", 1);
    cd_frame_append_json_strn(f, NULL, 3);
    cd_frame_append(f, ",", 1);
    cd_frame_append_int(f, 0);
    cd_frame_append(f, ",", 1);
    cd_frame_append_int(f, -42);
    cd_frame_append(f, ",", 1);
    cd_frame_append_int(f, INT64_MAX);
    cd_frame_append(f, ",", 1);
    cd_frame_append_int(f, INT64_MIN);
    assert_string_equal(f->data, "null,\"q\\\"\",null,0,-42,9223372036854775807,-9223372036854775808");
    cd_frame_unref(f);
}

/* Every byte string, valid or not, encodes to a JSON string that parses back;
 * valid UTF-8 without NUL round-trips exactly. Deterministic pseudo-random input. */
static void test_json_escape_roundtrip(void **state)
{
    static const unsigned char alphabet[] = {'a',  '"',  '\\', '\n', 0x01, 0x1f, 0x7f, 0xc3, 0xa9, 0xe2,
                                             0x80, 0xa8, 0xf0, 0x9f, 0x98, 0xff, 0xed, 0xa0, ' ',  '/'};
    uint32_t seed = 12345;
    (void)state;
    for (int round = 0; round < 3000; round++) {
        unsigned char in[32];
        size_t n = (size_t)(round % 32);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = alphabet[(seed >> 16) % sizeof(alphabet)];
        }
        char *enc = json_str_of((const char *)in, n);
        assert_true(cd_proto_utf8_valid(enc, strlen(enc)));
        json_error_t jerr;
        json_t *v = json_loads(enc, JSON_DECODE_ANY, &jerr);
        if (!v || !json_is_string(v))
            fail_msg("round %d: %s does not parse: %s", round, enc, jerr.text);
        if (cd_proto_utf8_valid((const char *)in, n)) {
            assert_int_equal(json_string_length(v), n);
            assert_memory_equal(json_string_value(v), in, n);
        }
        json_decref(v);
        free(enc);
    }
}

static void test_encode_error(void **state)
{
    cd_frame *f;
    (void)state;

    f = cd_proto_encode_error("r1", CD_ERR_BAD_REQUEST, "invalid JSON");
    assert_string_equal(f->data,
                        "{\"type\":\"error\",\"rid\":\"r1\",\"code\":\"bad_request\",\"message\":\"invalid JSON\"}");
    assert_int_equal(f->len, strlen(f->data));
    assert_int_equal(f->refs, 1);
    assert_ptr_equal(f->data, f->storage + CD_FRAME_HEADROOM);
    cd_frame_unref(f);

    f = cd_proto_encode_error(NULL, CD_ERR_TOO_LARGE, "body too long");
    assert_string_equal(f->data, "{\"type\":\"error\",\"code\":\"too_large\",\"message\":\"body too long\"}");
    cd_frame_unref(f);

    f = cd_proto_encode_error("a\"b", CD_ERR_RATE_LIMITED, "say \"hi\"\n");
    assert_string_equal(
        f->data, "{\"type\":\"error\",\"rid\":\"a\\\"b\",\"code\":\"rate_limited\",\"message\":\"say \\\"hi\\\"\\n\"}");
    json_t *v = json_loads(f->data, 0, NULL);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "rid")), "a\"b");
    json_decref(v);
    cd_frame_unref(f);

    /* Each error code is spelled as PROTOCOL.md lists it. */
    static const struct {
        cd_err e;
        const char *name;
    } codes[] = {{CD_ERR_BAD_REQUEST, "bad_request"}, {CD_ERR_UNAUTHORIZED, "unauthorized"},
                 {CD_ERR_FORBIDDEN, "forbidden"},     {CD_ERR_NOT_FOUND, "not_found"},
                 {CD_ERR_CONFLICT, "conflict"},       {CD_ERR_RATE_LIMITED, "rate_limited"},
                 {CD_ERR_TOO_LARGE, "too_large"},     {CD_ERR_UNAVAILABLE, "unavailable"},
                 {CD_ERR_INTERNAL, "internal"}};
    for (size_t i = 0; i < CD_ARRAY_LEN(codes); i++) {
        f = cd_proto_encode_error("x", codes[i].e, "m");
        v = json_loads(f->data, JSON_REJECT_DUPLICATES, NULL);
        assert_non_null(v);
        assert_string_equal(json_string_value(json_object_get(v, "code")), codes[i].name);
        json_decref(v);
        cd_frame_unref(f);
    }
}

static void test_encode_ok(void **state)
{
    cd_frame *f;
    (void)state;

    f = cd_proto_encode_ok("r3", 0, NULL, NULL);
    assert_string_equal(f->data, "{\"type\":\"ok\",\"rid\":\"r3\"}");
    cd_frame_unref(f);

    f = cd_proto_encode_ok(NULL, 0, NULL, NULL);
    assert_string_equal(f->data, "{\"type\":\"ok\"}");
    cd_frame_unref(f);

    const char *keys[] = {"message", "n", "odd\"key"};
    const char *raws[] = {"{\"seq\":5,\"body\":\"hi\"}", "[1,2]", NULL};
    f = cd_proto_encode_ok("r", 3, keys, raws);
    assert_string_equal(
        f->data,
        "{\"type\":\"ok\",\"rid\":\"r\",\"message\":{\"seq\":5,\"body\":\"hi\"},\"n\":[1,2],\"odd\\\"key\":null}");
    json_t *v = json_loads(f->data, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(v);
    json_decref(v);
    cd_frame_unref(f);
}

static void test_frame_from(void **state)
{
    const char raw[] = "{\"type\":\"message.created\"}\0tail";
    cd_frame *f = cd_proto_frame_from(raw, sizeof(raw) - 1);
    (void)state;
    assert_int_equal(f->len, sizeof(raw) - 1);
    assert_memory_equal(f->data, raw, sizeof(raw) - 1);
    assert_int_equal(f->refs, 1);
    assert_ptr_equal(f->data, f->storage + CD_FRAME_HEADROOM);
    cd_frame_unref(f);
    f = cd_proto_frame_from("", 0);
    assert_int_equal(f->len, 0);
    cd_frame_unref(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_cases),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_cleanup_safety),
        cmocka_unit_test(test_body_is_a_nul_terminated_copy),
        cmocka_unit_test(test_default_size_limits),
        cmocka_unit_test(test_member_cap),
        cmocka_unit_test(test_array_cap),
        cmocka_unit_test(test_default_depth),
        cmocka_unit_test(test_rid_and_type_survive_later_errors),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_frame_create_and_grow),
        cmocka_unit_test(test_frame_refcount),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_json_escape_roundtrip),
        cmocka_unit_test(test_encode_error),
        cmocka_unit_test(test_encode_ok),
        cmocka_unit_test(test_frame_from),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
