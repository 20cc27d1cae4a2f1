/* cd_buf: growable, always NUL-terminated byte buffer. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chatdesk/base.h"

void cd_buf_init(cd_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void cd_buf_cleanup(cd_buf *b)
{
    cd_free(b->data);
    cd_buf_init(b);
}

void cd_buf_reset(cd_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void cd_buf_reserve(cd_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = cd_realloc(b->data, cap);
    b->cap = cap;
}

void cd_buf_append(cd_buf *b, const void *p, size_t n)
{
    cd_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void cd_buf_append_str(cd_buf *b, const char *s)
{
    cd_buf_append(b, s, strlen(s));
}

void cd_buf_printf(cd_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        cd_buf_append(b, small, (size_t)n);
        return;
    }
    cd_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}
