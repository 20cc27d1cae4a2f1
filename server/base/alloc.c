/* Allocation that aborts on out-of-memory (as Redis does): callers never check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/base.h"

static void oom(size_t n)
{
    fprintf(stderr, "chatdesk: out of memory allocating %zu bytes\n", n);
    abort();
}

void *cd_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *cd_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *cd_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *cd_strdup(const char *s)
{
    return cd_strndup(s, strlen(s));
}

char *cd_strndup(const char *s, size_t n)
{
    char *p = cd_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void cd_free(void *p)
{
    free(p);
}

size_t cd_strlcpy(char *dst, const char *src, size_t dstsz)
{
    size_t n = strlen(src);
    if (dstsz) {
        size_t c = n < dstsz - 1 ? n : dstsz - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return n;
}
