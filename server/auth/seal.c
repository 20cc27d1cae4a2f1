/* Secrets sealed at rest: what the node must keep in Redis but nobody who reads Redis (a
 * dump, a backup, a replica, an ACL user with read access) may use — today the agents'
 * two-factor secrets. The key is not in Redis: it comes from secrets_key_file (64 hex
 * characters), loaded once at start-up, the same on every node.
 *
 * Form: "s1.<kid>.<base64url(nonce[12] | ciphertext | tag[16])>", AES-256-GCM with a
 * random nonce per sealing. kid is the first 8 hex digits of SHA-256(key), so a node with
 * another key says so instead of failing the tag. The additional data binds a sealed
 * value to its owner (the agent id): copied into another record it does not open.
 * Text without the "s1." prefix is a value stored before sealing was on, passed through
 * (callers seal it again at its next use). */
#include "chatdesk/auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth_int.h"

#define NONCE_LEN 12
#define TAG_LEN 16
#define PREFIX "s1."

static struct {
    bool on;
    unsigned char key[CD_AUTH_KEY_LEN];
    char kid[9];
} sealer;

static void kid_of(const unsigned char *key, char out[9])
{
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_Digest(key, CD_AUTH_KEY_LEN, d, &dl, EVP_sha256(), NULL);
    snprintf(out, 9, "%02x%02x%02x%02x", d[0], d[1], d[2], d[3]);
}

int cd_auth_seal_key_set_hex(const char *hex, size_t len)
{
    while (len > 0 && (hex[len - 1] == '\n' || hex[len - 1] == '\r' || hex[len - 1] == ' '))
        len--;
    unsigned char key[CD_AUTH_KEY_LEN];
    if (len != 2 * CD_AUTH_KEY_LEN || cd_auth__hex_decode(hex, len, key, sizeof key) != 0)
        return -1;
    memcpy(sealer.key, key, sizeof key);
    OPENSSL_cleanse(key, sizeof key);
    kid_of(sealer.key, sealer.kid);
    sealer.on = true;
    return 0;
}

int cd_auth_seal_key_load(const char *path, char *err, size_t errsz)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errsz, "secrets_key_file %s: %s", path, strerror(errno));
        return -1;
    }
    char buf[2 * CD_AUTH_KEY_LEN + 8];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    int rc = more ? -1 : cd_auth_seal_key_set_hex(buf, n);
    OPENSSL_cleanse(buf, sizeof buf);
    if (rc != 0)
        snprintf(err, errsz, "secrets_key_file %s: must hold exactly 64 hex characters (openssl rand -hex 32)", path);
    return rc;
}

void cd_auth_seal_key_clear(void)
{
    OPENSSL_cleanse(&sealer, sizeof sealer);
}

bool cd_auth_seal_on(void)
{
    return sealer.on;
}

/* One AES-256-GCM pass: seal (enc) or open; returns the output length or -1. */
static int gcm(bool enc, const unsigned char *nonce, const char *aad, const unsigned char *in, int inlen,
               unsigned char *out, unsigned char *tag)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0, ok = c != NULL;
    ok = ok && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc ? 1 : 0) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1;
    ok = ok && EVP_CipherInit_ex(c, NULL, NULL, sealer.key, nonce, enc ? 1 : 0) == 1;
    ok = ok && EVP_CipherUpdate(c, NULL, &len, (const unsigned char *)aad, (int)strlen(aad)) == 1;
    ok = ok && EVP_CipherUpdate(c, out, &len, in, inlen) == 1;
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1;
    ok = ok && EVP_CipherFinal_ex(c, out + len, &fin) == 1;
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? len + fin : -1;
}

int cd_auth_seal(const char *aad, const char *plain, char *out, size_t outsz)
{
    size_t n = strlen(plain);
    if (!sealer.on || n > CD_AUTH_SEAL_PLAIN_MAX)
        return -1;
    unsigned char raw[NONCE_LEN + CD_AUTH_SEAL_PLAIN_MAX + TAG_LEN];
    cd_random_bytes(raw, NONCE_LEN);
    if (gcm(true, raw, aad, (const unsigned char *)plain, (int)n, raw + NONCE_LEN, raw + NONCE_LEN + n) != (int)n)
        return -1;
    size_t rawlen = NONCE_LEN + n + TAG_LEN;
    size_t head = strlen(PREFIX) + 8 + 1;
    if (outsz < head + cd_auth__b64url_len(rawlen) + 1)
        return -1;
    snprintf(out, outsz, PREFIX "%s.", sealer.kid);
    cd_auth__b64url_encode(raw, rawlen, out + head);
    OPENSSL_cleanse(raw, sizeof raw);
    return 0;
}

int cd_auth_unseal(const char *aad, const char *stored, char *out, size_t outsz)
{
    size_t plen = strlen(PREFIX);
    if (strncmp(stored, PREFIX, plen) != 0) { /* stored before sealing was on */
        if (strlen(stored) >= outsz)
            return CD_AUTH_UNSEAL_BAD;
        memcpy(out, stored, strlen(stored) + 1);
        return CD_AUTH_UNSEAL_PLAIN;
    }
    const char *kid = stored + plen;
    const char *dot = strchr(kid, '.');
    if (!dot || dot - kid != 8)
        return CD_AUTH_UNSEAL_BAD;
    if (!sealer.on || memcmp(kid, sealer.kid, 8) != 0)
        return CD_AUTH_UNSEAL_OTHER_KEY;
    unsigned char raw[NONCE_LEN + CD_AUTH_SEAL_PLAIN_MAX + TAG_LEN];
    long rawlen = cd_auth__b64url_decode(dot + 1, strlen(dot + 1), raw, sizeof raw);
    if (rawlen < NONCE_LEN + TAG_LEN)
        return CD_AUTH_UNSEAL_BAD;
    int n = (int)rawlen - NONCE_LEN - TAG_LEN;
    if ((size_t)n >= outsz)
        return CD_AUTH_UNSEAL_BAD;
    if (gcm(false, raw, aad, raw + NONCE_LEN, n, (unsigned char *)out, raw + NONCE_LEN + n) != n) {
        OPENSSL_cleanse(out, outsz);
        return CD_AUTH_UNSEAL_BAD;
    }
    out[n] = '\0';
    if (memchr(out, '\0', (size_t)n)) {
        OPENSSL_cleanse(out, outsz);
        return CD_AUTH_UNSEAL_BAD;
    }
    return CD_AUTH_UNSEAL_OK;
}
