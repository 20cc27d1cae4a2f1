/* Error names, ids and randomness, token bucket. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "chatdesk/base.h"

static const char *const err_names[] = {
#define CD_ERR_NAME(name, str) str,
    CD_ERR_TABLE(CD_ERR_NAME)
#undef CD_ERR_NAME
};

const char *cd_err_name(cd_err e)
{
    if ((unsigned)e >= CD_ERR__COUNT)
        return "internal";
    return err_names[e];
}

cd_err cd_err_from_name(const char *name)
{
    for (size_t i = 0; i < CD_ERR__COUNT; i++)
        if (strcmp(err_names[i], name) == 0)
            return (cd_err)i;
    return CD_ERR_INTERNAL;
}

void cd_random_bytes(void *out, size_t n)
{
    unsigned char *p = out;
    while (n) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "chatdesk: getrandom failed: %s\n", strerror(errno));
            abort();
        }
        p += r;
        n -= (size_t)r;
    }
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void cd_id_new(const char *prefix, char *out, size_t outsz)
{
    unsigned char r[17];
    char body[24];
    cd_random_bytes(r, 16);
    r[16] = 0;
    /* 16 bytes -> 22 base64url chars (the last one carries 2 bits). */
    size_t j = 0;
    for (size_t i = 0; i < 16; i += 3) {
        unsigned v = (unsigned)r[i] << 16 | (unsigned)r[i + 1] << 8 | (i + 2 < 17 ? r[i + 2] : 0);
        body[j++] = b64url[(v >> 18) & 63];
        body[j++] = b64url[(v >> 12) & 63];
        if (j < 22)
            body[j++] = b64url[(v >> 6) & 63];
        if (j < 22)
            body[j++] = b64url[v & 63];
    }
    body[22] = '\0';
    snprintf(out, outsz, "%s_%s", prefix, body);
}

void cd_random_hex(char *out, size_t nbytes)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[64];
    size_t o = 0;
    while (nbytes) {
        size_t n = nbytes < sizeof b ? nbytes : sizeof b;
        cd_random_bytes(b, n);
        for (size_t i = 0; i < n; i++) {
            out[o++] = hex[b[i] >> 4];
            out[o++] = hex[b[i] & 15];
        }
        nbytes -= n;
    }
    out[o] = '\0';
}

void cd_ratelimit_init(cd_ratelimit *rl, double rate, double burst, uint64_t now_ms)
{
    rl->rate = rate;
    rl->burst = burst;
    rl->tokens = burst;
    rl->last_ms = now_ms;
}

bool cd_ratelimit_peek(cd_ratelimit *rl, uint64_t now_ms)
{
    if (now_ms > rl->last_ms) {
        rl->tokens += (double)(now_ms - rl->last_ms) * rl->rate / 1000.0;
        if (rl->tokens > rl->burst)
            rl->tokens = rl->burst;
        rl->last_ms = now_ms;
    }
    return rl->tokens >= 1.0;
}

bool cd_ratelimit_take(cd_ratelimit *rl, uint64_t now_ms)
{
    if (cd_ratelimit_peek(rl, now_ms)) {
        rl->tokens -= 1.0;
        return true;
    }
    return false;
}
