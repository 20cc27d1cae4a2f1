/* token.c: signing keys, and signed login/visitor tokens (RELIABILITY.md 4.3).
 *
 * A token is "v1.<kid>.<b64url(payload JSON)>.<b64url(HMAC-SHA256(key[kid], "v1.<kid>.<payload b64>"))>",
 * payload {"r":"v"|"a"|"c"|"e","sub":..,"site":..,"iat":..,"exp":..,"jti":..} with times in unix ms, plus
 * "ep" (the agent's token epoch) in agent, challenge and enrolment tokens.
 *
 * Verification order matters: the shape of the token (4 parts, known kid, canonical
 * base64url, MAC length) is checked first, then the MAC in constant time, and only
 * then is the payload decoded and parsed as JSON, so no client-chosen JSON is ever
 * parsed without a valid signature. Every failure is the same CD_ERR_UNAUTHORIZED,
 * so the answer tells an attacker nothing about which check failed.
 *
 * The payload is parsed strictly even though it is signed: exactly the six fields
 * with the right JSON types, a valid role, lengths that fit cd_auth_claims, no NUL
 * bytes, 0 <= iat <= exp. Expiry allows CD_AUTH__LEEWAY_MS of clock skew between
 * nodes. Keys rotate by kid: keys[0] signs, any key whose kid matches verifies.
 * Revocation (the agent's token epoch and the jti deny-list in Redis) is the caller's
 * business, not this file's.
 */
#include "chatdesk/auth.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "auth_int.h"

#define CD_AUTH__LEEWAY_MS 60000
#define TOKEN_VERSION "v1"
#define JTI_RANDOM_BYTES 16
#define PAYLOAD_JSON_MAX CD_AUTH_TOKEN_MAX /* decoded payload is shorter than the token text */

/* ---- keyring ---- */

void cd_auth_keyring_init(cd_auth_keyring *kr)
{
    OPENSSL_cleanse(kr, sizeof *kr);
}

/* A kid is 1..CD_AUTH_KID_MAX characters of [A-Za-z0-9_-], so it can never contain the '.' separator. */
static bool kid_valid(const char *kid, size_t len)
{
    if (len == 0 || len > CD_AUTH_KID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = kid[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* Keys are appended, so add the newest (signing) key first. A kid already in the ring is refused:
 * two keys under one kid would make verification depend on order. */
int cd_auth_keyring_add_hex(cd_auth_keyring *kr, const char *kid, const char *hex)
{
    size_t kidlen;
    unsigned char key[CD_AUTH_KEY_LEN];

    if (kr == NULL || kid == NULL || hex == NULL || kr->n >= CD_AUTH_MAX_KEYS)
        return -1;
    kidlen = strnlen(kid, CD_AUTH_KID_MAX + 1);
    if (!kid_valid(kid, kidlen))
        return -1;
    for (size_t i = 0; i < kr->n; i++)
        if (strcmp(kr->keys[i].kid, kid) == 0)
            return -1;
    if (cd_auth__hex_decode(hex, strnlen(hex, 2 * CD_AUTH_KEY_LEN + 1), key, sizeof key) != 0)
        return -1;
    memcpy(kr->keys[kr->n].kid, kid, kidlen + 1);
    memcpy(kr->keys[kr->n].key, key, sizeof key);
    OPENSSL_cleanse(key, sizeof key);
    kr->n++;
    return 0;
}

/* The key whose kid is kid[0..len), or NULL. */
static const unsigned char *keyring_find(const cd_auth_keyring *kr, const char *kid, size_t len)
{
    for (size_t i = 0; i < kr->n && i < CD_AUTH_MAX_KEYS; i++)
        if (strlen(kr->keys[i].kid) == len && memcmp(kr->keys[i].kid, kid, len) == 0)
            return kr->keys[i].key;
    return NULL;
}

/* ---- sign ---- */

static const char *role_code(cd_auth_role role)
{
    switch (role) {
    case CD_AUTH_ROLE_VISITOR:
        return "v";
    case CD_AUTH_ROLE_AGENT:
        return "a";
    case CD_AUTH_ROLE_CHALLENGE:
        return "c";
    case CD_AUTH_ROLE_ENROL:
        return "e";
    }
    return NULL;
}

/* true when s is NUL-terminated within a field of size sz (so it fits the claims struct). */
static bool field_fits(const char *s, size_t sz)
{
    return strnlen(s, sz) < sz;
}

/* Appends to out at *pos; false (and nothing written) if it would not leave room for the NUL. */
static bool out_append(char *out, size_t outsz, size_t *pos, const char *s, size_t n)
{
    if (n >= outsz - *pos)
        return false;
    memcpy(out + *pos, s, n);
    *pos += n;
    out[*pos] = '\0';
    return true;
}

/* Signs c with kr->keys[0]. The jti is filled with 16 random bytes (base64url) when empty,
 * so the caller can record it. On failure out is "" and -1 is returned: no key, an invalid
 * role, fields that would not verify (empty sub, visitor without site, exp < iat, unterminated
 * strings), JSON encoding failure (e.g. invalid UTF-8) or a too-small buffer. */
int cd_auth_token_sign(const cd_auth_keyring *kr, cd_auth_claims *c, char *out, size_t outsz)
{
    const char *role;
    json_t *obj = NULL;
    char *payload = NULL;
    unsigned char mac[CD_AUTH__MAC_LEN];
    char mac64[64];
    size_t pos = 0, plen, kidlen;
    int rc = -1;

    if (out == NULL || outsz == 0)
        return -1;
    out[0] = '\0';
    if (kr == NULL || c == NULL || kr->n == 0)
        return -1;
    role = role_code(c->role);
    if (role == NULL || !field_fits(c->sub, sizeof c->sub) || !field_fits(c->site, sizeof c->site) ||
        !field_fits(c->jti, sizeof c->jti) || c->sub[0] == '\0' || c->iat < 0 || c->exp < c->iat ||
        (c->role == CD_AUTH_ROLE_VISITOR && c->site[0] == '\0'))
        return -1;
    if (c->jti[0] == '\0') {
        unsigned char rnd[JTI_RANDOM_BYTES];
        _Static_assert(((JTI_RANDOM_BYTES + 2) / 3) * 4 < sizeof c->jti, "jti field too small");
        cd_random_bytes(rnd, sizeof rnd);
        cd_auth__b64url_encode(rnd, sizeof rnd, c->jti);
    }

    obj = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "r", role, "sub", c->sub, "site", c->site, "iat",
                    (json_int_t)c->iat, "exp", (json_int_t)c->exp, "jti", c->jti);
    if (obj == NULL)
        goto out;
    /* an agent token names the token epoch it was issued in (revocation: the agent's
     * epoch moves on when its password, role, sites or disabled flag change) */
    if (c->role != CD_AUTH_ROLE_VISITOR && json_object_set_new(obj, "ep", json_integer((json_int_t)c->epoch)) != 0)
        goto out;
    payload = json_dumps(obj, JSON_COMPACT);
    if (payload == NULL)
        goto out;
    plen = strlen(payload);

    kidlen = strlen(kr->keys[0].kid);
    if (!out_append(out, outsz, &pos, TOKEN_VERSION ".", 3) || !out_append(out, outsz, &pos, kr->keys[0].kid, kidlen) ||
        !out_append(out, outsz, &pos, ".", 1))
        goto out;
    if (cd_auth__b64url_len(plen) >= outsz - pos)
        goto out;
    pos += cd_auth__b64url_encode(payload, plen, out + pos);

    if (cd_auth__hmac_sha256(kr->keys[0].key, CD_AUTH_KEY_LEN, out, pos, mac) != 0)
        goto out;
    cd_auth__b64url_encode(mac, sizeof mac, mac64);
    if (!out_append(out, outsz, &pos, ".", 1) || !out_append(out, outsz, &pos, mac64, strlen(mac64)))
        goto out;
    rc = 0;
out:
    if (rc != 0)
        out[0] = '\0';
    free(payload);
    json_decref(obj);
    return rc;
}

/* ---- verify ---- */

/* Copies a JSON string into a claims field: no embedded NUL, and it must fit with its terminator. */
static bool copy_field(char *dst, size_t dstsz, const char *s, size_t len)
{
    if (len >= dstsz || memchr(s, '\0', len) != NULL)
        return false;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return true;
}

/* Parses and checks a MAC-verified payload into c. Returns true when every field is well-formed. */
static bool parse_payload(const unsigned char *json, size_t len, cd_auth_claims *c)
{
    json_t *root;
    json_error_t jerr;
    const char *r, *sub, *site, *jti;
    size_t rlen, sublen, sitelen, jtilen;
    json_int_t iat, exp, ep = 0;
    bool ok = false;

    root = json_loadb((const char *)json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return false;
    if (!json_is_object(root))
        goto out;
    /* JSON_STRICT: every key of the object must be one of these six (and the optional "ep"),
     * and "I" only takes JSON integers. */
    if (json_unpack_ex(root, &jerr, JSON_STRICT, "{s:s%, s:s%, s:s%, s:I, s:I, s:s%, s?I}", "r", &r, &rlen, "sub", &sub,
                       &sublen, "site", &site, &sitelen, "iat", &iat, "exp", &exp, "jti", &jti, &jtilen, "ep",
                       &ep) != 0)
        goto out;
    if (rlen == 1 && r[0] == 'v')
        c->role = CD_AUTH_ROLE_VISITOR;
    else if (rlen == 1 && r[0] == 'a')
        c->role = CD_AUTH_ROLE_AGENT;
    else if (rlen == 1 && r[0] == 'c')
        c->role = CD_AUTH_ROLE_CHALLENGE;
    else if (rlen == 1 && r[0] == 'e')
        c->role = CD_AUTH_ROLE_ENROL;
    else
        goto out;
    if (!copy_field(c->sub, sizeof c->sub, sub, sublen) || !copy_field(c->site, sizeof c->site, site, sitelen) ||
        !copy_field(c->jti, sizeof c->jti, jti, jtilen))
        goto out;
    if (sublen == 0 || jtilen == 0 || (c->role == CD_AUTH_ROLE_VISITOR && sitelen == 0))
        goto out;
    if (iat < 0 || exp < iat || ep < 0 || (ep != 0 && c->role == CD_AUTH_ROLE_VISITOR))
        goto out;
    c->epoch = (int64_t)ep;
    c->iat = (int64_t)iat;
    c->exp = (int64_t)exp;
    ok = true;
out:
    json_decref(root);
    return ok;
}

cd_err cd_auth_token_verify(const cd_auth_keyring *kr, const char *token, int64_t now_ms, cd_auth_claims *out)
{
    const char *dot[3];
    const char *kid, *p64, *m64;
    size_t len, kidlen, p64len, m64len, ndots = 0;
    const unsigned char *key;
    unsigned char want[CD_AUTH__MAC_LEN];
    unsigned char got[CD_AUTH__MAC_LEN + 3];
    unsigned char payload[PAYLOAD_JSON_MAX];
    long plen;
    bool mac_ok;
    cd_auth_claims c;

    if (kr == NULL || token == NULL)
        return CD_ERR_UNAUTHORIZED;
    len = strnlen(token, CD_AUTH_TOKEN_MAX + 1);
    if (len > CD_AUTH_TOKEN_MAX)
        return CD_ERR_UNAUTHORIZED;

    /* Exactly four non-empty parts. */
    for (size_t i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (ndots == 3)
                return CD_ERR_UNAUTHORIZED;
            dot[ndots++] = token + i;
        }
    }
    if (ndots != 3)
        return CD_ERR_UNAUTHORIZED;
    if ((size_t)(dot[0] - token) != strlen(TOKEN_VERSION) || memcmp(token, TOKEN_VERSION, strlen(TOKEN_VERSION)) != 0)
        return CD_ERR_UNAUTHORIZED;
    kid = dot[0] + 1;
    kidlen = (size_t)(dot[1] - kid);
    p64 = dot[1] + 1;
    p64len = (size_t)(dot[2] - p64);
    m64 = dot[2] + 1;
    m64len = (size_t)(token + len - m64);
    if (kidlen == 0 || p64len == 0 || m64len == 0)
        return CD_ERR_UNAUTHORIZED;

    key = keyring_find(kr, kid, kidlen);
    if (key == NULL)
        return CD_ERR_UNAUTHORIZED;
    if (cd_auth__b64url_decode(m64, m64len, got, sizeof got) != CD_AUTH__MAC_LEN)
        return CD_ERR_UNAUTHORIZED;
    if (cd_auth__hmac_sha256(key, CD_AUTH_KEY_LEN, token, (size_t)(dot[2] - token), want) != 0)
        return CD_ERR_UNAUTHORIZED;
    mac_ok = CRYPTO_memcmp(want, got, CD_AUTH__MAC_LEN) == 0;
    OPENSSL_cleanse(want, sizeof want);
    if (!mac_ok)
        return CD_ERR_UNAUTHORIZED;

    /* Signed by us from here on; still parsed strictly. */
    plen = cd_auth__b64url_decode(p64, p64len, payload, sizeof payload);
    if (plen <= 0)
        return CD_ERR_UNAUTHORIZED;
    memset(&c, 0, sizeof c);
    if (!parse_payload(payload, (size_t)plen, &c))
        return CD_ERR_UNAUTHORIZED;
    /* Expired when now > exp + leeway; written so it cannot overflow (exp >= 0 here). */
    if (now_ms > c.exp && now_ms - c.exp > CD_AUTH__LEEWAY_MS)
        return CD_ERR_UNAUTHORIZED;
    if (out != NULL)
        *out = c;
    return CD_ERR_OK;
}
