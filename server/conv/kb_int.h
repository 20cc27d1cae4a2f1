/* conv-internal: the knowledge base's hook in the HTTP API (kb_tokens.c). */
#ifndef CHATDESK_CONV_KB_INT_H
#define CHATDESK_CONV_KB_INT_H

#include <jansson.h>
#include <stdbool.h>

/* Is op one of store/lua/api_kb.lua's operations? */
bool cd_conv_kb_op(const char *op);
/* Replace any caller-supplied token lists in params by the tokenizer's (include/chatdesk/kb.h):
 * "q" -> "q_tokens" (distinct tokens, in order), "title"/"body" -> "title_tokens"/"body_tokens"
 * (token -> occurrences). Non-string fields are left for the script to reject. */
void cd_conv_kb_tokens(json_t *params);
/* Set params "q_tokens" from a text (the conversation text of kb_suggest). */
void cd_conv_kb_query_tokens(json_t *params, const char *text, size_t len);

#endif
