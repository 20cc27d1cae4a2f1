/* The knowledge-base tokenizer: one table of text -> tokens (in order), covering
 * English words, stop words, the suffix stemmer, Chinese runs (unigrams + bigrams),
 * mixed scripts, full-width forms, invalid UTF-8 and long words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chatdesk/kb.h"

static const struct {
    const char *text, *tokens;
} cases[] = {
    /* English: lowercase, punctuation separates, stop words go */
    {"", ""},
    {"   ,,, !!", ""},
    {"Hello, World!", "hello world"},
    {"How do I reset my password?", "reset password"},
    {"The THE the", ""},
    {"e-mail v2.0", "e mail v2 0"},
    /* stemmer: plurals, -ing, -ed, doubled consonants, words it must leave alone */
    {"refunds refunding refunded refund", "refund refund refund refund"},
    {"boxes classes addresses flies", "box class address fly"},
    {"shipping shipped ships", "ship ship ship"},
    {"status bus analysis glass", "status bus analysis glass"},
    {"resetting stopped applied", "reset stop apply"},
    {"agreed need thing sing", "agreed need thing sing"},
    {"2024s abc123s", "2024s abc123s"},
    /* Chinese: every character plus every neighbouring pair, in text order */
    {"退款", "退 退款 款"},
    {"如何申请退款", "如 如何 何 何申 申 申请 请 请退 退 退款 款"},
    {"退款。发货", "退 退款 款 发 发货 货"},
    {"中", "中"},
    /* mixed scripts: a Latin word ends a CJK run and the other way round */
    {"iPhone退货", "iphone 退 退货 货"},
    {"订单ID 12345号", "订 订单 单 id 12345 号"},
    /* full-width letters, digits and space fold to ASCII */
    {"\xEF\xBC\xA1\xEF\xBC\xB0\xEF\xBC\xB0\xE3\x80\x80\xEF\xBC\x91\xEF\xBC\x92", "app 12"},
    /* Latin-1 letters stay in the word and are lowercased */
    {"Café RÉSUMÉ", "caf\xC3\xA9 r\xC3\xA9sum\xC3\xA9"},
    /* kana and Hangul count as CJK */
    {"カタ", "カ カタ タ"},
    {"한국", "한 한국 국"},
    /* emoji and symbols separate */
    {"ok\xF0\x9F\x98\x80ok", "ok ok"},
    /* invalid UTF-8 (stray continuation, overlong, surrogate, truncated) separates */
    {"ab\x80"
     "cd",
     "ab cd"},
    {"ab\xC0\xAF"
     "cd",
     "ab cd"},
    {"ab\xED\xA0\x80"
     "cd",
     "ab cd"},
    {"退\xE6\xAC", "退"},
    /* a very long word is cut at CD_KB_TOKEN_MAX bytes */
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[512];
        cd_kb_tokens_join(cases[i].text, out, sizeof out);
        if (strcmp(out, cases[i].tokens) != 0)
            fail_msg("case %zu \"%s\": got \"%s\", want \"%s\"", i, cases[i].text, out, cases[i].tokens);
    }
}

static int stop_after_two(void *ud, const char *tok, size_t len)
{
    int *n = ud;
    assert_int_equal(strlen(tok), len);
    return ++*n == 2;
}

static void test_callback_can_stop(void **state)
{
    (void)state;
    int n = 0;
    const char *t = "one two three four";
    assert_int_equal(cd_kb_tokenize(t, strlen(t), stop_after_two, &n), 2);
    assert_int_equal(n, 2);
}

static void test_count_without_callback_and_small_buffer(void **state)
{
    (void)state;
    const char *t = "退款 refund";
    assert_int_equal(cd_kb_tokenize(t, strlen(t), NULL, NULL), 4);
    char out[11];
    cd_kb_tokens_join(t, out, sizeof out);
    assert_string_equal(out, "退 退款"); /* what fits, whole tokens only */
    /* embedded NUL: length counts, NUL separates */
    assert_int_equal(cd_kb_tokenize("ab\0cd", 5, NULL, NULL), 2);
}

static bool valid_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (k == 0 || i + k > n)
            return false;
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)s[i + j] & 0xC0) != 0x80)
                return false;
        i += k;
    }
    return true;
}

static int check_token(void *ud, const char *tok, size_t len)
{
    (void)ud;
    assert_true(len > 0 && len <= CD_KB_TOKEN_MAX);
    assert_int_equal(strlen(tok), len);
    assert_true(valid_utf8(tok, len));
    return 0;
}

/* Random bytes (fixed seed, biased towards UTF-8 lead and continuation bytes): every
 * token is non-empty, at most CD_KB_TOKEN_MAX bytes, NUL-free and valid UTF-8. */
static void test_random_bytes(void **state)
{
    (void)state;
    uint32_t x = 12345;
    static const unsigned char pool[] = {'a', 'Z', '1', ' ', 0x80, 0xBF, 0xC3, 0xE4, 0xE9, 0xEF, 0xF0, 0xF4, 0xFF, 0};
    char buf[300];
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + round % sizeof buf;
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            unsigned r = (x >> 16) & 0xFF;
            buf[i] = (char)(r < 128 ? pool[r % sizeof pool] : r);
        }
        cd_kb_tokenize(buf, n, check_token, NULL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_callback_can_stop),
        cmocka_unit_test(test_count_without_callback_and_small_buffer),
        cmocka_unit_test(test_random_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
