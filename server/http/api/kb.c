/* API family: the knowledge base (store/lua/api_kb.lua, docs/kb.md): articles,
 * categories, search, suggestions for a conversation, and the public search the widget
 * uses. The scripts cannot tokenize Chinese themselves, so this family adds the
 * tokenizer's output (include/chatdesk/kb.h) to the params: "q" -> "q_tokens" (distinct
 * tokens, in order), "title"/"body" -> "title_tokens"/"body_tokens" (token ->
 * occurrences), replacing any token lists a caller sent. kb_suggest runs in two calls:
 * kb_suggest_text reads the conversation's text, which is tokenized here, then
 * kb_suggest searches with those tokens. */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

#include "chatdesk/kb.h"

#define MAX_QUERY_TOKENS 32
#define MAX_DOC_TOKENS 8000 /* distinct tokens indexed per field */

static int add_query(void *ud, const char *tok, size_t len)
{
    (void)len;
    json_t *arr = json_array_get(ud, 0), *seen = json_array_get(ud, 1);
    if (!json_object_get(seen, tok)) {
        json_object_set_new(seen, tok, json_true());
        json_array_append_new(arr, json_string(tok));
    }
    return json_array_size(arr) >= MAX_QUERY_TOKENS;
}

static void query_tokens(json_t *params, const char *text, size_t len)
{
    json_t *arr = json_array(), *seen = json_object();
    json_t *pair = json_pack("[oo]", arr, seen);
    cd_kb_tokenize(text, len, add_query, pair);
    json_object_set(params, "q_tokens", arr);
    json_decref(pair);
}

static int add_doc(void *ud, const char *tok, size_t len)
{
    (void)len;
    json_t *obj = ud;
    json_t *n = json_object_get(obj, tok);
    if (n)
        json_integer_set(n, json_integer_value(n) + 1);
    else if (json_object_size(obj) < MAX_DOC_TOKENS)
        json_object_set_new(obj, tok, json_integer(1));
    return 0;
}

static void doc_tokens(json_t *params, const char *field, const char *out)
{
    json_t *v = json_object_get(params, field);
    if (!json_is_string(v))
        return;
    json_t *obj = json_object();
    cd_kb_tokenize(json_string_value(v), json_string_length(v), add_doc, obj);
    json_object_set_new(params, out, obj);
}

/* Every param in place: the tokens replace whatever lists the caller sent. */
static void kb_complete(cd_api_op *a, json_t *params)
{
    (void)a;
    json_object_del(params, "q_tokens");
    json_object_del(params, "title_tokens");
    json_object_del(params, "body_tokens");
    json_t *q = json_object_get(params, "q");
    if (json_is_string(q))
        query_tokens(params, json_string_value(q), json_string_length(q));
    doc_tokens(params, "title", "title_tokens");
    doc_tokens(params, "body", "body_tokens");
}

/* kb_suggest first runs as kb_suggest_text, with its arguments kept for the second call. */
static int kb_prepare(cd_api_op *a, const cd_api_call *call, const cd_api_route *r, json_t **params, char *err,
                      size_t errsz)
{
    (void)call;
    (void)params;
    (void)err;
    (void)errsz;
    if (strcmp(r->op, "kb_suggest") == 0) {
        cd_strlcpy(a->op, "kb_suggest_text", sizeof a->op);
        a->keep_args = true;
    }
    return 0;
}

/* kb_suggest_text answered {"text":…}: tokenize it and run kb_suggest. */
static bool kb_suggest_next(cd_api_op *a, const char *body, size_t blen)
{
    json_t *b = json_loadb(body, blen, 0, NULL);
    json_t *text = json_object_get(b, "text");
    json_t *params = json_loads(a->args[2], 0, NULL);
    bool ok = json_is_string(text) && json_is_object(params);
    if (ok) {
        query_tokens(params, json_string_value(text), json_string_length(text));
        cd_free(a->args[0]);
        a->args[0] = cd_strdup("kb_suggest");
        char *ptext = json_dumps(params, JSON_COMPACT);
        cd_free(a->args[2]);
        a->args[2] = cd_strdup(ptext);
        free(ptext);
        cd_strlcpy(a->op, "kb_suggest", sizeof a->op);
        ok = cd_http__api_call_again(a) == 0;
    }
    json_decref(params);
    json_decref(b);
    return ok;
}

static bool kb_reply(cd_api_op *a, const char *body, size_t len)
{
    if (strcmp(a->op, "kb_suggest_text") != 0)
        return false;
    if (!kb_suggest_next(a, body, len)) {
        cd_http__api_error(a->cb, a->ud, CD_ERR_UNAVAILABLE, "storage unavailable, retry");
        cd_http__api_op_free(a);
    }
    return true;
}

static const cd_api_route kb_routes[] = {
    {"GET", "kb/sites/:/articles", "kb_list", {"site"}, false, 0},
    {"POST", "kb/sites/:/articles", "kb_create", {"site"}, true, 0},
    {"GET", "kb/sites/:/articles/:", "kb_get", {"site", "id"}, false, 0},
    {"PATCH", "kb/sites/:/articles/:", "kb_patch", {"site", "id"}, true, 0},
    {"DELETE", "kb/sites/:/articles/:", "kb_delete", {"site", "id"}, false, 0},
    {"GET", "kb/sites/:/categories", "kb_categories", {"site"}, false, 0},
    {"GET", "kb/sites/:/search", "kb_search", {"site"}, false, 0},
    {"GET", "kb/suggest", "kb_suggest", {0}, false, 0},
    /* Routes under "public/" need no token (agent id ""): read-only, for the widget. */
    {"GET", "public/sites/:/kb/search", "public_kb_search", {"site"}, false, 0},
    {"GET", "public/sites/:/kb/articles/:", "public_kb_get", {"site", "id"}, false, 0},
};

const cd_api_family cd_http__api_kb = {
    "api_kb", NULL, kb_routes, CD_ARRAY_LEN(kb_routes), kb_prepare, kb_complete, kb_reply, CD_API_SITE,
};
