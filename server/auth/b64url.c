/* b64url.c: unpadded base64url (RFC 4648 section 5) and hex decoding for tokens and HMACs.
 *
 * The decoder is deliberately strict: no padding, no whitespace, no length that
 * is 1 mod 4, and the unused low bits of the last character must be zero. That
 * makes the encoding canonical, so a token cannot be re-spelt into a second
 * string that verifies (which would defeat jti deny-lists keyed by token text).
 * These functions handle public data only; they are not constant-time.
 */
#include "auth_int.h"

#include <limits.h>
#include <stdint.h>

static const char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t cd_auth__b64url_len(size_t n)
{
    return (n / 3) * 4 + ((n % 3) ? (n % 3) + 1 : 0);
}

size_t cd_auth__b64url_encode(const void *in, size_t n, char *out)
{
    const unsigned char *p = in;
    size_t o = 0;
    size_t i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8) | p[i + 2];
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8);
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

/* Value of one base64url character, or -1. */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long cd_auth__b64url_decode(const char *in, size_t inlen, unsigned char *out, size_t outsz)
{
    size_t rem = inlen % 4;
    size_t need = (inlen / 4) * 3 + (rem ? rem - 1 : 0);
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;

    if (rem == 1 || need > outsz || need > (size_t)LONG_MAX)
        return -1;
    for (size_t i = 0; i < inlen; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Canonical form: the bits left over after the last full byte must be zero. */
    if (acc != 0)
        return -1;
    return (long)o;
}

/* Value of one hex digit (either case), or -1. */
static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int cd_auth__hex_decode(const char *hex, size_t hexlen, unsigned char *out, size_t n)
{
    if (hex == NULL || hexlen != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value((unsigned char)hex[2 * i]);
        int lo = hex_value((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)((hi << 4) | lo);
    }
    return 0;
}
