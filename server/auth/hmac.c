/* hmac.c: HMAC-SHA256, SHA-256 in hex and constant-time comparison.
 *
 * Used for token MACs (token.c) and for identity verification of identified
 * visitors (RELIABILITY.md 4.8): the customer's server sends
 * identifier_hash = hex(HMAC-SHA256(site secret, identifier)) and we compare it
 * with CRYPTO_memcmp, so the time taken does not reveal how many bytes matched.
 * Every failure path here fails closed: an OpenSSL error yields "no match".
 */
#include "chatdesk/auth.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "auth_int.h"

int cd_auth_sha256_hex(const void *data, size_t len, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char d[SHA256_DIGEST_LENGTH];
    out[0] = '\0';
    if (!SHA256(data, len, d))
        return -1;
    for (size_t i = 0; i < sizeof d; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[64] = '\0';
    OPENSSL_cleanse(d, sizeof d);
    return 0;
}

int cd_auth__hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                         unsigned char out[CD_AUTH__MAC_LEN])
{
    /* OpenSSL 3 rejects a NULL key even with length 0; an empty secret is a valid (weak) key. */
    static const unsigned char empty[1] = {0};
    unsigned int outlen = 0;

    if (keylen > INT_MAX)
        return -1;
    if (key == NULL || keylen == 0)
        key = empty;
    if (msg == NULL)
        msg = empty;
    if (HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, out, &outlen) == NULL || outlen != CD_AUTH__MAC_LEN)
        return -1;
    return 0;
}

void cd_auth_hmac_hex(const char *secret, size_t secret_len, const char *msg, size_t msg_len, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char mac[CD_AUTH__MAC_LEN];

    if (cd_auth__hmac_sha256(secret, secret_len, msg, msg_len, mac) != 0) {
        out[0] = '\0';
        return;
    }
    for (size_t i = 0; i < CD_AUTH__MAC_LEN; i++) {
        out[2 * i] = digits[mac[i] >> 4];
        out[2 * i + 1] = digits[mac[i] & 15];
    }
    out[64] = '\0';
}

/* The presented hex is decoded first (its length and alphabet are not secret), then
 * the 32 bytes are compared in constant time. Anything but exactly 64 hex digits is false. */
bool cd_auth_hmac_verify(const char *secret, size_t secret_len, const char *msg, size_t msg_len, const char *hex)
{
    unsigned char want[CD_AUTH__MAC_LEN];
    unsigned char got[CD_AUTH__MAC_LEN];
    bool ok;

    if (hex == NULL || strnlen(hex, 65) != 64)
        return false;
    if (cd_auth__hex_decode(hex, 64, got, sizeof got) != 0)
        return false;
    if (cd_auth__hmac_sha256(secret, secret_len, msg, msg_len, want) != 0)
        return false;
    ok = CRYPTO_memcmp(want, got, sizeof want) == 0;
    OPENSSL_cleanse(want, sizeof want);
    return ok;
}

/* Lengths are not treated as secret (they are fixed for MACs and hashes); when they
 * differ we still run one comparison so both outcomes cost about the same. */
bool cd_auth_const_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen) {
        (void)CRYPTO_memcmp(a, a, alen);
        return false;
    }
    if (alen == 0)
        return true;
    return CRYPTO_memcmp(a, b, alen) == 0;
}
