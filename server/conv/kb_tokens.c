/* The knowledge base's tokens for the HTTP API: the scripts cannot tokenize Chinese
 * themselves, so the API layer adds the tokenizer's output to the params of the
 * api_kb.lua operations (docs/kb.md). */
#include <string.h>

#include "chatdesk/kb.h"
#include "kb_int.h"

#define MAX_QUERY_TOKENS 32
#define MAX_DOC_TOKENS 8000 /* distinct tokens indexed per field */

bool cd_conv_kb_op(const char *op)
{
    return strncmp(op, "kb_", 3) == 0 || strncmp(op, "public_kb_", 10) == 0;
}

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

void cd_conv_kb_query_tokens(json_t *params, const char *text, size_t len)
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

void cd_conv_kb_tokens(json_t *params)
{
    json_object_del(params, "q_tokens");
    json_object_del(params, "title_tokens");
    json_object_del(params, "body_tokens");
    json_t *q = json_object_get(params, "q");
    if (json_is_string(q))
        cd_conv_kb_query_tokens(params, json_string_value(q), json_string_length(q));
    doc_tokens(params, "title", "title_tokens");
    doc_tokens(params, "body", "body_tokens");
}
