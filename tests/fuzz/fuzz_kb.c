/* libFuzzer target: the knowledge-base tokenizer (server/kb/tokenize.c) on arbitrary
 * bytes. Every token must be non-empty, NUL-free, valid UTF-8 and at most
 * CD_KB_TOKEN_MAX bytes; the token count is the number of callbacks. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/kb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check(void *ud, const char *tok, size_t len)
{
    size_t *n = ud;
    ++*n;
    if (len == 0 || len > CD_KB_TOKEN_MAX || strlen(tok) != len)
        abort();
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)tok[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (k == 0 || i + k > len)
            abort();
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)tok[i + j] & 0xC0) != 0x80)
                abort();
        i += k;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = 0;
    if (cd_kb_tokenize((const char *)data, size, check, &n) != n)
        abort();
    return 0;
}
