/* totp.c: time-based one-time passwords for the agents' two-factor login (RFC 6238 over
 * RFC 4226: HMAC-SHA1, 30 s steps, 6 digits) and their recovery codes.
 *
 * The secret is 20 random bytes (RFC 4226's recommended length), kept and shown in
 * base32 (RFC 4648, no padding), the form authenticator apps take from an otpauth:// URI.
 * A code is checked against the step before, the current step and the step after (one
 * step of clock skew either way), and only against steps after the last one the agent
 * used, so a code cannot be replayed; the caller stores the step it matched (in the same
 * Redis call that checks it was not used: store/lua/api_totp.lua). Recovery codes are 10 groups of
 * random base32 characters; only their SHA-256 is stored (they carry 50 bits each, so a
 * fast hash is enough: no guessing run can search that space through the login limits).
 * Every comparison is constant-time; every OpenSSL failure fails closed. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "chatdesk/auth.h"

static const char b32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* Base32 of n bytes, unpadded, into out (>= (n * 8 + 4) / 5 + 1 bytes). */
static void b32_encode(const unsigned char *in, size_t n, char *out)
{
    unsigned buf = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        buf = (buf << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = b32_alphabet[(buf >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = b32_alphabet[(buf << (5 - bits)) & 31];
    out[o] = '\0';
}

/* Base32 (either case, no padding) into out; the length, or -1 for a bad character or size. */
static long b32_decode(const char *in, unsigned char *out, size_t outsz)
{
    unsigned buf = 0;
    int bits = 0;
    size_t o = 0;
    for (; *in; in++) {
        const char *p = strchr(b32_alphabet, toupper((unsigned char)*in));
        if (!p || !*in)
            return -1;
        buf = (buf << 5) | (unsigned)(p - b32_alphabet);
        bits += 5;
        if (bits >= 8) {
            if (o >= outsz)
                return -1;
            out[o++] = (unsigned char)(buf >> (bits - 8));
            bits -= 8;
        }
    }
    return (long)o;
}

int cd_auth_totp_secret_new(char *out, size_t outsz)
{
    unsigned char key[CD_AUTH_TOTP_KEY_BYTES];
    if (outsz < CD_AUTH_TOTP_SECRET_LEN + 1 || RAND_bytes(key, sizeof key) != 1)
        return -1;
    b32_encode(key, sizeof key, out);
    OPENSSL_cleanse(key, sizeof key);
    return 0;
}

int cd_auth_totp_code(const char *secret, int64_t step, char out[CD_AUTH_TOTP_DIGITS + 1])
{
    unsigned char key[64], msg[8], mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    out[0] = '\0';
    long keylen = secret ? b32_decode(secret, key, sizeof key) : -1;
    if (keylen <= 0 || step < 0)
        return -1;
    for (int i = 7; i >= 0; i--) {
        msg[i] = (unsigned char)(step & 0xff);
        step >>= 8;
    }
    unsigned char *ok = HMAC(EVP_sha1(), key, (int)keylen, msg, sizeof msg, mac, &maclen);
    OPENSSL_cleanse(key, sizeof key);
    if (!ok || maclen < 20)
        return -1;
    /* RFC 4226 5.3: dynamic truncation */
    unsigned off = mac[maclen - 1] & 0x0f;
    uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
                   ((uint32_t)mac[off + 2] << 8) | (uint32_t)mac[off + 3];
    snprintf(out, CD_AUTH_TOTP_DIGITS + 1, "%06u", (unsigned)(bin % 1000000u));
    return 0;
}

int64_t cd_auth_totp_match(const char *secret, const char *code, int64_t now_ms, int64_t last_step)
{
    if (!code || strlen(code) != CD_AUTH_TOTP_DIGITS || now_ms < 0)
        return -1;
    int64_t now = now_ms / 1000 / CD_AUTH_TOTP_PERIOD_S, found = -1;
    /* every step of the window is computed and compared, whatever matches, so the time
     * taken does not tell which step (or whether an earlier one) matched */
    for (int64_t step = now - 1; step <= now + 1; step++) {
        char want[CD_AUTH_TOTP_DIGITS + 1];
        if (cd_auth_totp_code(secret, step, want) != 0)
            return -1;
        bool eq = CRYPTO_memcmp(want, code, CD_AUTH_TOTP_DIGITS) == 0;
        if (eq && step > last_step && found < 0)
            found = step;
    }
    return found;
}

/* The canonical form of a recovery code as typed: lowercase, without '-' and spaces. */
static bool recovery_norm(const char *code, char *out, size_t outsz)
{
    size_t o = 0;
    for (; *code; code++) {
        if (*code == '-' || *code == ' ')
            continue;
        if (o + 1 >= outsz || !isalnum((unsigned char)*code))
            return false;
        out[o++] = (char)tolower((unsigned char)*code);
    }
    out[o] = '\0';
    return o == CD_AUTH_RECOVERY_CHARS;
}

int cd_auth_recovery_codes_new(char codes[CD_AUTH_RECOVERY_N][CD_AUTH_RECOVERY_LEN + 1])
{
    unsigned char rnd[CD_AUTH_RECOVERY_N * CD_AUTH_RECOVERY_CHARS];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return -1;
    for (size_t i = 0; i < CD_AUTH_RECOVERY_N; i++) {
        char *c = codes[i];
        for (size_t k = 0, o = 0; k < CD_AUTH_RECOVERY_CHARS; k++) {
            if (k == CD_AUTH_RECOVERY_CHARS / 2)
                c[o++] = '-';
            c[o++] = (char)tolower((unsigned char)b32_alphabet[rnd[i * CD_AUTH_RECOVERY_CHARS + k] & 31]);
            c[o] = '\0';
        }
    }
    OPENSSL_cleanse(rnd, sizeof rnd);
    return 0;
}

int cd_auth_recovery_hash(const char *code, char out[65])
{
    char norm[CD_AUTH_RECOVERY_CHARS + 1];
    out[0] = '\0';
    if (!code || !recovery_norm(code, norm, sizeof norm))
        return -1;
    return cd_auth_sha256_hex(norm, strlen(norm), out);
}
