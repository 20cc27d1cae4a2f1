/* The knowledge-base tokenizer (include/chatdesk/kb.h). */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "chatdesk/kb.h"

/* Decode one UTF-8 sequence at s (n bytes left); *cp = code point, returns its length,
 * or 0 for an invalid / overlong / surrogate / truncated sequence. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Full-width ASCII and the ideographic space to half-width; ASCII and Latin-1 lowercase. */
static uint32_t normalise(uint32_t cp)
{
    if (cp >= 0xFF01 && cp <= 0xFF5E)
        cp -= 0xFEE0;
    else if (cp == 0x3000)
        cp = ' ';
    if (cp >= 'A' && cp <= 'Z')
        cp += 32;
    else if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)
        cp += 32;
    return cp;
}

static bool is_word(uint32_t cp)
{
    return (cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9') ||
           (cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7);
}

static bool is_cjk(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) ||                 /* CJK unified ideographs */
           (cp >= 0x3400 && cp <= 0x4DBF) ||                 /* extension A */
           (cp >= 0xF900 && cp <= 0xFAFF) ||                 /* compatibility ideographs */
           (cp >= 0x20000 && cp <= 0x2FA1F) ||               /* extensions B.. and compatibility supplement */
           (cp >= 0x3041 && cp <= 0x30FF && cp != 0x30FB) || /* hiragana, katakana (not the middle dot) */
           (cp >= 0xAC00 && cp <= 0xD7AF);                   /* Hangul syllables */
}

static const char *const stop_words[] = {
    "a",     "about", "an",    "and",   "are",   "as",   "at",    "be",    "been", "but", "by",   "can",  "do",
    "does",  "for",   "from",  "had",   "has",   "have", "how",   "i",     "if",   "in",  "into", "is",   "it",
    "its",   "me",    "my",    "no",    "not",   "of",   "on",    "or",    "our",  "so",  "than", "that", "the",
    "their", "them",  "then",  "there", "these", "they", "this",  "those", "to",   "was", "we",   "were", "what",
    "when",  "where", "which", "who",   "will",  "with", "would", "you",   "your",
};

static bool is_stop(const char *w)
{
    for (size_t i = 0; i < sizeof stop_words / sizeof stop_words[0]; i++)
        if (strcmp(w, stop_words[i]) == 0)
            return true;
    return false;
}

static bool ends(const char *w, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n >= k && memcmp(w + n - k, suf, k) == 0;
}

static bool vowel(char c)
{
    return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u' || c == 'y';
}

/* Drop a doubled final consonant left by -ing/-ed ("stopp" -> "stop"), except l, s, z. */
static size_t undouble(char *w, size_t n)
{
    if (n >= 3 && w[n - 1] == w[n - 2] && !vowel(w[n - 1]) && w[n - 1] != 'l' && w[n - 1] != 's' && w[n - 1] != 'z')
        n--;
    return n;
}

static bool has_vowel(const char *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (vowel(w[i]))
            return true;
    return false;
}

/* A light English suffix stemmer for ASCII words; returns the new length. Both indexing
 * and querying use it, so it only has to be consistent, not linguistically complete. */
static size_t stem(char *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)w[i] >= 0x80 || (w[i] >= '0' && w[i] <= '9'))
            return n; /* not a plain English word */
    if (ends(w, n, "ies") && n > 4) {
        n -= 2;
        w[n - 1] = 'y';
    } else if (ends(w, n, "sses")) {
        n -= 2;
    } else if (n > 4 && (ends(w, n, "xes") || ends(w, n, "ches") || ends(w, n, "shes") || ends(w, n, "zes"))) {
        n -= 2;
    } else if (ends(w, n, "s") && n > 3 && !ends(w, n, "ss") && !ends(w, n, "us") && !ends(w, n, "is")) {
        n -= 1;
    }
    if (ends(w, n, "ing") && n > 5 && has_vowel(w, n - 3)) {
        n = undouble(w, n - 3);
    } else if (ends(w, n, "ied") && n > 4) {
        n -= 2;
        w[n - 1] = 'y';
    } else if (ends(w, n, "ed") && n > 4 && !ends(w, n, "eed") && has_vowel(w, n - 2)) {
        n = undouble(w, n - 2);
    }
    w[n] = '\0';
    return n;
}

typedef struct tk {
    cd_kb_token_fn fn;
    void *ud;
    size_t count;
    bool stop;
    char word[CD_KB_TOKEN_MAX + 1];
    size_t wlen;
    char prev[5]; /* previous CJK character of the current run */
    size_t prevlen;
} tk;

static void emit(tk *t, const char *s, size_t n)
{
    if (t->stop || n == 0)
        return;
    char tmp[CD_KB_TOKEN_MAX + 1];
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    t->count++;
    if (t->fn && t->fn(t->ud, tmp, n))
        t->stop = true;
}

static void flush_word(tk *t)
{
    if (t->wlen == 0)
        return;
    t->word[t->wlen] = '\0';
    if (!is_stop(t->word)) {
        size_t n = stem(t->word, t->wlen);
        emit(t, t->word, n);
    }
    t->wlen = 0;
}

size_t cd_kb_tokenize(const char *text, size_t len, cd_kb_token_fn fn, void *ud)
{
    tk t = {.fn = fn, .ud = ud};
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len && !t.stop) {
        uint32_t cp;
        size_t k = utf8_next(s + i, len - i, &cp);
        if (k == 0) { /* invalid byte: a separator */
            flush_word(&t);
            t.prevlen = 0;
            i++;
            continue;
        }
        i += k;
        cp = normalise(cp);
        if (is_word(cp)) {
            t.prevlen = 0;
            char enc[4];
            size_t el = utf8_put(cp, enc);
            if (t.wlen + el <= CD_KB_TOKEN_MAX) { /* else cut: the rest of the word is dropped */
                memcpy(t.word + t.wlen, enc, el);
                t.wlen += el;
            }
        } else if (is_cjk(cp)) {
            flush_word(&t);
            char cur[4];
            size_t cl = utf8_put(cp, cur);
            if (t.prevlen) {
                char pair[8];
                memcpy(pair, t.prev, t.prevlen);
                memcpy(pair + t.prevlen, cur, cl);
                emit(&t, pair, t.prevlen + cl);
            }
            emit(&t, cur, cl);
            memcpy(t.prev, cur, cl);
            t.prevlen = cl;
        } else {
            flush_word(&t);
            t.prevlen = 0;
        }
    }
    flush_word(&t);
    return t.count;
}

typedef struct joiner {
    char *out;
    size_t size, used;
} joiner;

static int join_one(void *ud, const char *tok, size_t len)
{
    joiner *j = ud;
    size_t need = len + (j->used ? 1 : 0);
    if (j->used + need + 1 > j->size)
        return 1;
    if (j->used)
        j->out[j->used++] = ' ';
    memcpy(j->out + j->used, tok, len);
    j->used += len;
    j->out[j->used] = '\0';
    return 0;
}

size_t cd_kb_tokens_join(const char *text, char *out, size_t outsz)
{
    joiner j = {out, outsz, 0};
    if (outsz)
        out[0] = '\0';
    return cd_kb_tokenize(text, strlen(text), join_one, &j);
}
