/* kb: the knowledge base's full-text tokenizer, used both when an article is indexed
 * and when a query is searched (so both sides agree on what a term is). Pure: no I/O.
 *
 * - Text is UTF-8; invalid bytes are skipped. Full-width ASCII (U+FF01..U+FF5E) and the
 *   ideographic space are folded to their half-width forms first.
 * - Latin letters and digits form words: lowercased, words on a small English stop-word
 *   list dropped, then a light suffix stemmer (plural -s/-es/-ies, -ing, -ed).
 *   Latin-1 letters (é, ü, ...) stay inside words (lowercased).
 * - CJK ideographs, kana and Hangul (no spaces between words) give every single
 *   character plus every overlapping pair of neighbours (bigrams), so a query "退款"
 *   matches a text "如何申请退款" through the bigram and "退" alone through the unigram.
 * - Everything else (punctuation, symbols, emoji) separates tokens. */
#ifndef CHATDESK_KB_H
#define CHATDESK_KB_H

#include <stddef.h>

#define CD_KB_TOKEN_MAX 48 /* bytes; longer words are cut to this (at a character boundary) */

/* Called once per token occurrence, in text order (a CJK run yields c1, c1c2, c2, c2c3,
 * c3 ...). tok is NUL-terminated and only valid during the call. Return non-zero to stop. */
typedef int (*cd_kb_token_fn)(void *ud, const char *tok, size_t len);

/* Tokenize text[0..len). Returns the number of tokens delivered. */
size_t cd_kb_tokenize(const char *text, size_t len, cd_kb_token_fn fn, void *ud);

/* The tokens of text joined by single spaces into out (truncated at outsz, always
 * NUL-terminated); returns the number of tokens. For tests and debugging. */
size_t cd_kb_tokens_join(const char *text, char *out, size_t outsz);

#endif
