/* apitoken.c: the secrets of long-lived per-site API tokens (docs/api.md "API tokens").
 *
 * A token as a client sends it is "cdt.<site>.<id>.<secret>": the site key and the
 * token's id say where its record is (P{s:<site>}:apitoken:<id>, so the check runs in the
 * site's slot), the secret is 32 bytes of OpenSSL RAND as unpadded base64url (43
 * characters, 256 bits). Redis keeps only hex(SHA-256(secret)): a high-entropy secret
 * needs no slow hash, and a copy of the database does not hold a usable token. The
 * secret is shown once, when the token is made; nothing here keeps it.
 *
 * Parsing is strict, as on every token path: the prefix, a site key of 1-64
 * [A-Za-z0-9_-], an id of 1-64 base64url characters, and exactly 43 characters of
 * canonical base64url. Anything else is refused before any lookup. Whether the token
 * exists, matches, has the scope and is within its rate is the function library's
 * business (store/lua/api_tokens.lua), checked on every call, so a revocation holds at
 * once on every node.
 */
#include "chatdesk/auth.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "auth_int.h"

#define SECRET_BYTES 32
_Static_assert(CD_AUTH_API_SECRET_LEN == (SECRET_BYTES * 4 + 2) / 3, "43 base64url characters carry 32 bytes");

int cd_auth_api_secret_new(char out[CD_AUTH_API_SECRET_LEN + 1])
{
    unsigned char rnd[SECRET_BYTES];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return -1;
    cd_auth__b64url_encode(rnd, sizeof rnd, out);
    OPENSSL_cleanse(rnd, sizeof rnd);
    return 0;
}

/* The length of the run of s made of the characters in set, at most max + 1. */
static size_t span(const char *s, const char *set, size_t max)
{
    size_t n = 0;
    while (n <= max && s[n] && strchr(set, s[n]))
        n++;
    return n;
}

bool cd_auth_api_token_parse(const char *token, cd_auth_api_token *out)
{
    static const char key_set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    memset(out, 0, sizeof *out);
    if (!token || strncmp(token, CD_AUTH_API_PREFIX, sizeof CD_AUTH_API_PREFIX - 1) != 0)
        return false;
    const char *p = token + sizeof CD_AUTH_API_PREFIX - 1;
    size_t site_len = span(p, key_set, CD_AUTH_API_FIELD_MAX);
    if (site_len == 0 || site_len > CD_AUTH_API_FIELD_MAX || p[site_len] != '.')
        return false;
    memcpy(out->site, p, site_len);
    p += site_len + 1;
    size_t id_len = span(p, key_set, CD_AUTH_API_FIELD_MAX);
    if (id_len == 0 || id_len > CD_AUTH_API_FIELD_MAX || p[id_len] != '.')
        return false;
    memcpy(out->id, p, id_len);
    p += id_len + 1;
    unsigned char raw[SECRET_BYTES + 1];
    size_t secret_len = strlen(p);
    bool ok = secret_len == CD_AUTH_API_SECRET_LEN &&
              cd_auth__b64url_decode(p, secret_len, raw, sizeof raw) == SECRET_BYTES &&
              cd_auth_sha256_hex(p, strlen(p), out->hash) == 0;
    OPENSSL_cleanse(raw, sizeof raw);
    if (!ok)
        memset(out, 0, sizeof *out);
    return ok;
}
