/* test_auth.c: tokens, HMAC and password hashing (server/auth).
 *
 * Tokens are checked two ways: round trips through cd_auth_token_sign, and tokens
 * built here by hand with an independent base64url encoder and cd_auth_hmac_hex over
 * the raw key bytes. The hand-built ones pin the wire format in auth.h and let us
 * sign payloads that cd_auth_token_sign would never produce, so the strict payload
 * checks are reached behind a valid MAC. HMAC is pinned to RFC 4231 test case 2.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <argon2.h>
#include <cmocka.h>

#include "chatdesk/auth.h"

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"
#define T0 1700000000000LL /* a fixed "now" in unix ms */
#define HOUR_MS 3600000LL

/* ---- helpers: an independent token builder ---- */

static void hex_to_bytes(const char *hex, unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned int v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (unsigned char)v;
    }
}

static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    unsigned int acc = 0;
    int bits = 0;

    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = a[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = a[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

/* "<ver>.<kid>.<b64url(payload)>.<b64url(HMAC(key, "<ver>.<kid>.<p64>"))>" built without the code under test's
 * encoder; ver is "v1" for real tokens. */
static void make_token_v(const char *ver, const char *kid, const char *keyhex, const char *payload, char *out,
                         size_t outsz)
{
    unsigned char key[CD_AUTH_KEY_LEN], mac[32];
    char p64[1024], m64[64], machex[65], signing[1200];

    hex_to_bytes(keyhex, key, sizeof key);
    b64url((const unsigned char *)payload, strlen(payload), p64);
    snprintf(signing, sizeof signing, "%s.%s.%s", ver, kid, p64);
    cd_auth_hmac_hex((const char *)key, sizeof key, signing, strlen(signing), machex);
    hex_to_bytes(machex, mac, sizeof mac);
    b64url(mac, sizeof mac, m64);
    snprintf(out, outsz, "%s.%s", signing, m64);
}

static void make_token(const char *kid, const char *keyhex, const char *payload, char *out, size_t outsz)
{
    make_token_v("v1", kid, keyhex, payload, out, outsz);
}

static void ring_one(cd_auth_keyring *kr, const char *kid, const char *hex)
{
    cd_auth_keyring_init(kr);
    assert_int_equal(cd_auth_keyring_add_hex(kr, kid, hex), 0);
}

static void visitor_claims(cd_auth_claims *c)
{
    memset(c, 0, sizeof *c);
    c->role = CD_AUTH_ROLE_VISITOR;
    strcpy(c->sub, "vis_123");
    strcpy(c->site, "site_abc");
    c->iat = T0;
    c->exp = T0 + HOUR_MS;
}

static cd_err verify_payload(const char *payload)
{
    cd_auth_keyring kr;
    char tok[2048];
    cd_auth_claims out;

    ring_one(&kr, "k1", KEY_A);
    make_token("k1", KEY_A, payload, tok, sizeof tok);
    return cd_auth_token_verify(&kr, tok, T0, &out);
}

/* Index of the n-th '.' in s (n from 0). */
static size_t dot_pos(const char *s, int n)
{
    const char *p = s;
    for (int i = 0; i <= n; i++) {
        p = strchr(i == 0 ? p : p + 1, '.');
        assert_non_null(p);
    }
    return (size_t)(p - s);
}

/* ---- keyring ---- */

static void test_keyring_add(void **state)
{
    cd_auth_keyring kr;
    (void)state;

    cd_auth_keyring_init(&kr);
    assert_int_equal(kr.n, 0);
    assert_int_equal(cd_auth_keyring_add_hex(&kr, "k1", KEY_A), 0);
    assert_string_equal(kr.keys[0].kid, "k1");
    assert_int_equal(kr.keys[0].key[1], 0x01);
    assert_int_equal(kr.keys[0].key[31], 0x1f);

    /* Bad hex: short, long, non-hex. */
    assert_int_equal(cd_auth_keyring_add_hex(&kr, "k2", "0011"), -1);
    assert_int_equal(cd_auth_keyring_add_hex(&kr, "k2", KEY_A "00"), -1);
    assert_int_equal(
        cd_auth_keyring_add_hex(&kr, "k2", "g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"), -1);
    /* Bad kid: empty, contains the separator, too long; duplicate. */
    assert_int_equal(cd_auth_keyring_add_hex(&kr, "", KEY_B), -1);
    assert_int_equal(cd_auth_keyring_add_hex(&kr, "a.b", KEY_B), -1);
    assert_int_equal(cd_auth_keyring_add_hex(&kr, "abcdefghijklmnopq", KEY_B), -1);
    assert_int_equal(cd_auth_keyring_add_hex(&kr, "k1", KEY_B), -1);
    assert_int_equal(kr.n, 1);

    /* Upper-case hex is fine; the ring holds CD_AUTH_MAX_KEYS keys and no more. */
    assert_int_equal(
        cd_auth_keyring_add_hex(&kr, "K-2_x", "F0E1D2C3B4A5968778695A4B3C2D1E0FF0E1D2C3B4A5968778695A4B3C2D1E0F"), 0);
    assert_int_equal(kr.keys[1].key[0], 0xf0);
    assert_int_equal(cd_auth_keyring_add_hex(&kr, "k3", KEY_A), 0);
    assert_int_equal(cd_auth_keyring_add_hex(&kr, "abcdefghijklmnop", KEY_A), 0);
    assert_int_equal(kr.n, CD_AUTH_MAX_KEYS);
    assert_int_equal(cd_auth_keyring_add_hex(&kr, "k5", KEY_A), -1);
}

/* ---- sign / verify ---- */

static void test_roundtrip_visitor(void **state)
{
    cd_auth_keyring kr;
    cd_auth_claims c, out;
    char tok[CD_AUTH_TOKEN_MAX];
    (void)state;

    ring_one(&kr, "k1", KEY_A);
    visitor_claims(&c);
    assert_int_equal(cd_auth_token_sign(&kr, &c, tok, sizeof tok), 0);
    assert_int_equal(strncmp(tok, "v1.k1.", 6), 0);
    assert_int_equal(strlen(c.jti), 22); /* 16 random bytes, base64url */

    memset(&out, 0, sizeof out);
    assert_int_equal(cd_auth_token_verify(&kr, tok, T0, &out), CD_ERR_OK);
    assert_int_equal(out.role, CD_AUTH_ROLE_VISITOR);
    assert_string_equal(out.sub, "vis_123");
    assert_string_equal(out.site, "site_abc");
    assert_true(out.iat == T0);
    assert_true(out.exp == T0 + HOUR_MS);
    assert_string_equal(out.jti, c.jti);

    /* A second token gets a different jti. */
    {
        cd_auth_claims c2;
        char tok2[CD_AUTH_TOKEN_MAX];
        visitor_claims(&c2);
        assert_int_equal(cd_auth_token_sign(&kr, &c2, tok2, sizeof tok2), 0);
        assert_string_not_equal(c.jti, c2.jti);
        assert_string_not_equal(tok, tok2);
    }
}

static void test_roundtrip_agent(void **state)
{
    cd_auth_keyring kr;
    cd_auth_claims c, out;
    char tok[CD_AUTH_TOKEN_MAX];
    (void)state;

    ring_one(&kr, "k1", KEY_A);
    memset(&c, 0, sizeof c);
    c.role = CD_AUTH_ROLE_AGENT;
    strcpy(c.sub, "agent_7");
    strcpy(c.jti, "given-jti");
    c.iat = T0;
    c.exp = T0 + 12 * HOUR_MS;
    assert_int_equal(cd_auth_token_sign(&kr, &c, tok, sizeof tok), 0);
    assert_string_equal(c.jti, "given-jti"); /* kept when set */
    assert_int_equal(cd_auth_token_verify(&kr, tok, T0 + 11 * HOUR_MS, &out), CD_ERR_OK);
    assert_int_equal(out.role, CD_AUTH_ROLE_AGENT);
    assert_string_equal(out.sub, "agent_7");
    assert_string_equal(out.site, "");
    assert_string_equal(out.jti, "given-jti");
}

static void test_sign_rejects(void **state)
{
    cd_auth_keyring kr, empty;
    cd_auth_claims c;
    char tok[CD_AUTH_TOKEN_MAX];
    size_t len;
    (void)state;

    ring_one(&kr, "k1", KEY_A);
    cd_auth_keyring_init(&empty);
    visitor_claims(&c);
    strcpy(tok, "x");
    assert_int_equal(cd_auth_token_sign(&empty, &c, tok, sizeof tok), -1);
    assert_string_equal(tok, "");

    /* The buffer must hold the token and its NUL: exactly enough works, one byte less fails. */
    strcpy(c.jti, "fixed");
    assert_int_equal(cd_auth_token_sign(&kr, &c, tok, sizeof tok), 0);
    len = strlen(tok);
    {
        char *exact = malloc(len + 1);
        char again[CD_AUTH_TOKEN_MAX];
        assert_non_null(exact);
        assert_int_equal(cd_auth_token_sign(&kr, &c, exact, len + 1), 0);
        assert_string_equal(exact, tok);
        assert_int_equal(cd_auth_token_sign(&kr, &c, exact, len), -1);
        assert_string_equal(exact, "");
        assert_int_equal(cd_auth_token_sign(&kr, &c, again, 10), -1);
        free(exact);
    }

    visitor_claims(&c);
    c.role = (cd_auth_role)7;
    assert_int_equal(cd_auth_token_sign(&kr, &c, tok, sizeof tok), -1);
    visitor_claims(&c);
    c.site[0] = '\0'; /* a visitor token needs its site */
    assert_int_equal(cd_auth_token_sign(&kr, &c, tok, sizeof tok), -1);
    visitor_claims(&c);
    c.sub[0] = '\0';
    assert_int_equal(cd_auth_token_sign(&kr, &c, tok, sizeof tok), -1);
    visitor_claims(&c);
    c.exp = c.iat - 1;
    assert_int_equal(cd_auth_token_sign(&kr, &c, tok, sizeof tok), -1);
    visitor_claims(&c);
    memset(c.sub, 'x', sizeof c.sub); /* not NUL-terminated */
    assert_int_equal(cd_auth_token_sign(&kr, &c, tok, sizeof tok), -1);
}

static void test_expiry(void **state)
{
    cd_auth_keyring kr;
    cd_auth_claims c, out;
    char tok[CD_AUTH_TOKEN_MAX];
    (void)state;

    ring_one(&kr, "k1", KEY_A);
    visitor_claims(&c);
    assert_int_equal(cd_auth_token_sign(&kr, &c, tok, sizeof tok), 0);
    assert_int_equal(cd_auth_token_verify(&kr, tok, c.exp - 1, &out), CD_ERR_OK);
    assert_int_equal(cd_auth_token_verify(&kr, tok, c.exp, &out), CD_ERR_OK);
    /* Past exp but inside the 60 s leeway. */
    assert_int_equal(cd_auth_token_verify(&kr, tok, c.exp + 1, &out), CD_ERR_OK);
    assert_int_equal(cd_auth_token_verify(&kr, tok, c.exp + 60000, &out), CD_ERR_OK);
    /* Beyond the leeway. */
    assert_int_equal(cd_auth_token_verify(&kr, tok, c.exp + 60001, &out), CD_ERR_UNAUTHORIZED);
    assert_int_equal(cd_auth_token_verify(&kr, tok, c.exp + 24 * HOUR_MS, &out), CD_ERR_UNAUTHORIZED);
    assert_int_equal(cd_auth_token_verify(&kr, tok, INT64_MAX, &out), CD_ERR_UNAUTHORIZED);
}

static void test_tampered_payload(void **state)
{
    cd_auth_keyring kr;
    cd_auth_claims c, out;
    char tok[CD_AUTH_TOKEN_MAX], forged[2048], other[2048];
    size_t d1, d2;
    (void)state;

    ring_one(&kr, "k1", KEY_A);
    visitor_claims(&c);
    assert_int_equal(cd_auth_token_sign(&kr, &c, tok, sizeof tok), 0);
    d1 = dot_pos(tok, 1);
    d2 = dot_pos(tok, 2);

    /* One character of the payload changed (to another valid base64url character). */
    strcpy(forged, tok);
    forged[d1 + 5] = forged[d1 + 5] == 'A' ? 'B' : 'A';
    assert_int_equal(cd_auth_token_verify(&kr, forged, T0, &out), CD_ERR_UNAUTHORIZED);

    /* A whole different, well-formed payload spliced in front of the original MAC. */
    make_token(
        "k1", KEY_A,
        "{\"r\":\"a\",\"sub\":\"agent_1\",\"site\":\"\",\"iat\":1700000000000,\"exp\":1700003600000,\"jti\":\"j\"}",
        other, sizeof other);
    assert_int_equal(cd_auth_token_verify(&kr, other, T0, &out), CD_ERR_OK); /* control: valid as built */
    snprintf(forged, sizeof forged, "%.*s%s", (int)dot_pos(other, 2), other, tok + d2);
    assert_int_equal(cd_auth_token_verify(&kr, forged, T0, &out), CD_ERR_UNAUTHORIZED);

    /* The same payload signed with a different key under the right kid. */
    make_token(
        "k1", KEY_B,
        "{\"r\":\"a\",\"sub\":\"agent_1\",\"site\":\"\",\"iat\":1700000000000,\"exp\":1700003600000,\"jti\":\"j\"}",
        forged, sizeof forged);
    assert_int_equal(cd_auth_token_verify(&kr, forged, T0, &out), CD_ERR_UNAUTHORIZED);
}

static void test_tampered_mac(void **state)
{
    cd_auth_keyring kr;
    cd_auth_claims c, out;
    char tok[CD_AUTH_TOKEN_MAX], bad[CD_AUTH_TOKEN_MAX + 8];
    size_t len;
    (void)state;

    ring_one(&kr, "k1", KEY_A);
    visitor_claims(&c);
    assert_int_equal(cd_auth_token_sign(&kr, &c, tok, sizeof tok), 0);
    len = strlen(tok);
    assert_int_equal(len - dot_pos(tok, 2) - 1, 43); /* 32 bytes, unpadded */

    /* Claims are left alone on failure. */
    memset(&out, 0x5a, sizeof out);

    strcpy(bad, tok);
    bad[dot_pos(tok, 2) + 1] = bad[dot_pos(tok, 2) + 1] == 'A' ? 'B' : 'A'; /* first MAC character */
    assert_int_equal(cd_auth_token_verify(&kr, bad, T0, &out), CD_ERR_UNAUTHORIZED);
    assert_int_equal(out.sub[0], 0x5a);

    /* Last character: 43 characters carry 258 bits for 256, so its 2 low bits are unused. Setting
     * one gives the same MAC bytes in a non-canonical spelling, which must be refused. */
    {
        static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        size_t v = (size_t)(strchr(a, tok[len - 1]) - a);
        assert_int_equal(v & 3, 0);
        strcpy(bad, tok);
        bad[len - 1] = a[v | 1];
        assert_int_equal(cd_auth_token_verify(&kr, bad, T0, &out), CD_ERR_UNAUTHORIZED);
    }

    /* Truncated, extended, padded MACs. */
    strcpy(bad, tok);
    bad[len - 1] = '\0';
    assert_int_equal(cd_auth_token_verify(&kr, bad, T0, &out), CD_ERR_UNAUTHORIZED);
    snprintf(bad, sizeof bad, "%sA", tok);
    assert_int_equal(cd_auth_token_verify(&kr, bad, T0, &out), CD_ERR_UNAUTHORIZED);
    snprintf(bad, sizeof bad, "%s=", tok);
    assert_int_equal(cd_auth_token_verify(&kr, bad, T0, &out), CD_ERR_UNAUTHORIZED);
    /* No MAC at all. */
    snprintf(bad, sizeof bad, "%.*s.", (int)dot_pos(tok, 2), tok);
    assert_int_equal(cd_auth_token_verify(&kr, bad, T0, &out), CD_ERR_UNAUTHORIZED);
    assert_int_equal(out.sub[0], 0x5a);

    /* Control: the untouched token still verifies. */
    assert_int_equal(cd_auth_token_verify(&kr, tok, T0, &out), CD_ERR_OK);
}

static void test_unknown_kid(void **state)
{
    cd_auth_keyring kr1, kr2, same_key_other_kid;
    cd_auth_claims c, out;
    char tok[CD_AUTH_TOKEN_MAX];
    (void)state;

    ring_one(&kr1, "k1", KEY_A);
    ring_one(&kr2, "k2", KEY_B);
    ring_one(&same_key_other_kid, "k9", KEY_A);
    visitor_claims(&c);
    assert_int_equal(cd_auth_token_sign(&kr1, &c, tok, sizeof tok), 0);
    assert_int_equal(cd_auth_token_verify(&kr1, tok, T0, &out), CD_ERR_OK);
    assert_int_equal(cd_auth_token_verify(&kr2, tok, T0, &out), CD_ERR_UNAUTHORIZED);
    assert_int_equal(cd_auth_token_verify(&same_key_other_kid, tok, T0, &out), CD_ERR_UNAUTHORIZED);
}

static void test_key_rotation(void **state)
{
    cd_auth_keyring old_ring, new_ring, only_new;
    cd_auth_claims c, out;
    char old_tok[CD_AUTH_TOKEN_MAX], new_tok[CD_AUTH_TOKEN_MAX];
    (void)state;

    ring_one(&old_ring, "k1", KEY_A);
    visitor_claims(&c);
    assert_int_equal(cd_auth_token_sign(&old_ring, &c, old_tok, sizeof old_tok), 0);

    /* Rotation: the new key is added first (it signs), the old one stays for verification. */
    cd_auth_keyring_init(&new_ring);
    assert_int_equal(cd_auth_keyring_add_hex(&new_ring, "k2", KEY_B), 0);
    assert_int_equal(cd_auth_keyring_add_hex(&new_ring, "k1", KEY_A), 0);
    assert_int_equal(cd_auth_token_verify(&new_ring, old_tok, T0, &out), CD_ERR_OK);
    assert_string_equal(out.sub, "vis_123");

    visitor_claims(&c);
    assert_int_equal(cd_auth_token_sign(&new_ring, &c, new_tok, sizeof new_tok), 0);
    assert_int_equal(strncmp(new_tok, "v1.k2.", 6), 0);
    assert_int_equal(cd_auth_token_verify(&new_ring, new_tok, T0, &out), CD_ERR_OK);
    assert_int_equal(cd_auth_token_verify(&old_ring, new_tok, T0, &out), CD_ERR_UNAUTHORIZED);

    /* Once the old key is retired, its tokens stop verifying. */
    ring_one(&only_new, "k2", KEY_B);
    assert_int_equal(cd_auth_token_verify(&only_new, old_tok, T0, &out), CD_ERR_UNAUTHORIZED);
    assert_int_equal(cd_auth_token_verify(&only_new, new_tok, T0, &out), CD_ERR_OK);
}

static void test_wrong_parts(void **state)
{
    cd_auth_keyring kr;
    cd_auth_claims c, out;
    char tok[CD_AUTH_TOKEN_MAX], bad[CD_AUTH_TOKEN_MAX + 16];
    size_t d0, d1, d2;
    (void)state;

    ring_one(&kr, "k1", KEY_A);
    visitor_claims(&c);
    assert_int_equal(cd_auth_token_sign(&kr, &c, tok, sizeof tok), 0);
    d0 = dot_pos(tok, 0);
    d1 = dot_pos(tok, 1);
    d2 = dot_pos(tok, 2);
    (void)d0;

    /* Three parts: the MAC dropped. */
    snprintf(bad, sizeof bad, "%.*s", (int)d2, tok);
    assert_int_equal(cd_auth_token_verify(&kr, bad, T0, &out), CD_ERR_UNAUTHORIZED);
    /* Five parts. */
    snprintf(bad, sizeof bad, "%s.x", tok);
    assert_int_equal(cd_auth_token_verify(&kr, bad, T0, &out), CD_ERR_UNAUTHORIZED);
    snprintf(bad, sizeof bad, "%s.", tok);
    assert_int_equal(cd_auth_token_verify(&kr, bad, T0, &out), CD_ERR_UNAUTHORIZED);
    /* Version part missing or different. */
    assert_int_equal(cd_auth_token_verify(&kr, tok + 3, T0, &out), CD_ERR_UNAUTHORIZED);
    strcpy(bad, tok);
    bad[1] = '2';
    assert_int_equal(cd_auth_token_verify(&kr, bad, T0, &out), CD_ERR_UNAUTHORIZED);
    /* Empty payload. */
    snprintf(bad, sizeof bad, "%.*s%s", (int)d1 + 1, tok, tok + d2);
    assert_int_equal(cd_auth_token_verify(&kr, bad, T0, &out), CD_ERR_UNAUTHORIZED);
    /* Other versions, even with a valid MAC over them. */
    {
        static const char *const versions[] = {"v2", "V1", "v1x", "v", "1"};
        const char *payload =
            "{\"r\":\"a\",\"sub\":\"a1\",\"site\":\"\",\"iat\":1,\"exp\":1700000000000,\"jti\":\"j\"}";
        make_token_v("v1", "k1", KEY_A, payload, bad, sizeof bad);
        assert_int_equal(cd_auth_token_verify(&kr, bad, T0, &out), CD_ERR_OK); /* control */
        for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
            make_token_v(versions[i], "k1", KEY_A, payload, bad, sizeof bad);
            assert_int_equal(cd_auth_token_verify(&kr, bad, T0, &out), CD_ERR_UNAUTHORIZED);
        }
    }
    /* Two parts and one part. */
    assert_int_equal(cd_auth_token_verify(&kr, "v1.k1", T0, &out), CD_ERR_UNAUTHORIZED);
    assert_int_equal(cd_auth_token_verify(&kr, "v1", T0, &out), CD_ERR_UNAUTHORIZED);
    assert_int_equal(cd_auth_token_verify(&kr, "...", T0, &out), CD_ERR_UNAUTHORIZED);
    /* Control. */
    assert_int_equal(cd_auth_token_verify(&kr, tok, T0, &out), CD_ERR_OK);
}

static void test_garbage(void **state)
{
    cd_auth_keyring kr;
    cd_auth_claims c, out;
    char tok[CD_AUTH_TOKEN_MAX], bad[2048];
    (void)state;

    ring_one(&kr, "k1", KEY_A);
    assert_int_equal(cd_auth_token_verify(&kr, NULL, T0, &out), CD_ERR_UNAUTHORIZED);
    assert_int_equal(cd_auth_token_verify(&kr, "", T0, &out), CD_ERR_UNAUTHORIZED);
    assert_int_equal(cd_auth_token_verify(&kr, "garbage", T0, &out), CD_ERR_UNAUTHORIZED);
    assert_int_equal(cd_auth_token_verify(&kr, "v1.k1.!!!!.????", T0, &out), CD_ERR_UNAUTHORIZED);
    assert_int_equal(cd_auth_token_verify(&kr, "Bearer v1.k1.a.b", T0, &out), CD_ERR_UNAUTHORIZED);
    memset(bad, 'A', 1500);
    bad[1500] = '\0';
    memcpy(bad, "v1.k1.", 6);
    bad[1000] = '.';
    assert_int_equal(cd_auth_token_verify(&kr, bad, T0, &out), CD_ERR_UNAUTHORIZED);

    visitor_claims(&c);
    assert_int_equal(cd_auth_token_sign(&kr, &c, tok, sizeof tok), 0);
    snprintf(bad, sizeof bad, "%s\n", tok);
    assert_int_equal(cd_auth_token_verify(&kr, bad, T0, &out), CD_ERR_UNAUTHORIZED);
    snprintf(bad, sizeof bad, " %s", tok);
    assert_int_equal(cd_auth_token_verify(&kr, bad, T0, &out), CD_ERR_UNAUTHORIZED);
    /* A validly signed token longer than CD_AUTH_TOKEN_MAX is refused, one just under it is not. */
    {
        cd_auth_keyring kr16;
        char payload[1024];
        ring_one(&kr16, "abcdefghijklmnop", KEY_A);
        snprintf(payload, sizeof payload,
                 "{\"r\":\"v\",\"sub\":\"s\",\"site\":\"x\",\"iat\":1,\"exp\":9999999999999,\"jti\":\"j\"%*s}", 240,
                 "");
        make_token("abcdefghijklmnop", KEY_A, payload, bad, sizeof bad);
        assert_in_range(strlen(bad), 400, CD_AUTH_TOKEN_MAX);
        assert_int_equal(cd_auth_token_verify(&kr16, bad, T0, &out), CD_ERR_OK);
        snprintf(payload, sizeof payload,
                 "{\"r\":\"v\",\"sub\":\"s\",\"site\":\"x\",\"iat\":1,\"exp\":9999999999999,\"jti\":\"j\"%*s}", 300,
                 "");
        make_token("abcdefghijklmnop", KEY_A, payload, bad, sizeof bad);
        assert_in_range(strlen(bad), CD_AUTH_TOKEN_MAX + 1, CD_AUTH_TOKEN_MAX + 80);
        assert_int_equal(cd_auth_token_verify(&kr16, bad, T0, &out), CD_ERR_UNAUTHORIZED);
    }
}

/* Payloads that carry a valid MAC but break the format. */
static void test_strict_payload(void **state)
{
    char sub79[80], sub80[81], payload[512];
    (void)state;

    /* Controls: the format as documented in auth.h verifies, for both roles. */
    assert_int_equal(
        verify_payload("{\"r\":\"v\",\"sub\":\"v1\",\"site\":\"s\",\"iat\":1,\"exp\":1700000000000,\"jti\":\"j\"}"),
        CD_ERR_OK);
    assert_int_equal(
        verify_payload("{\"r\":\"a\",\"sub\":\"a1\",\"site\":\"\",\"iat\":1,\"exp\":1700000000000,\"jti\":\"j\"}"),
        CD_ERR_OK);

    /* Role. */
    assert_int_equal(
        verify_payload("{\"r\":\"x\",\"sub\":\"v1\",\"site\":\"s\",\"iat\":1,\"exp\":1700000000000,\"jti\":\"j\"}"),
        CD_ERR_UNAUTHORIZED);
    assert_int_equal(
        verify_payload(
            "{\"r\":\"visitor\",\"sub\":\"v1\",\"site\":\"s\",\"iat\":1,\"exp\":1700000000000,\"jti\":\"j\"}"),
        CD_ERR_UNAUTHORIZED);
    assert_int_equal(
        verify_payload("{\"r\":1,\"sub\":\"v1\",\"site\":\"s\",\"iat\":1,\"exp\":1700000000000,\"jti\":\"j\"}"),
        CD_ERR_UNAUTHORIZED);
    /* Types. */
    assert_int_equal(
        verify_payload("{\"r\":\"v\",\"sub\":\"v1\",\"site\":\"s\",\"iat\":\"1\",\"exp\":1700000000000,\"jti\":\"j\"}"),
        CD_ERR_UNAUTHORIZED);
    assert_int_equal(
        verify_payload("{\"r\":\"v\",\"sub\":\"v1\",\"site\":\"s\",\"iat\":1,\"exp\":1.7e12,\"jti\":\"j\"}"),
        CD_ERR_UNAUTHORIZED);
    assert_int_equal(
        verify_payload("{\"r\":\"v\",\"sub\":7,\"site\":\"s\",\"iat\":1,\"exp\":1700000000000,\"jti\":\"j\"}"),
        CD_ERR_UNAUTHORIZED);
    /* Missing and extra fields; duplicate keys. */
    assert_int_equal(verify_payload("{\"r\":\"v\",\"sub\":\"v1\",\"site\":\"s\",\"iat\":1,\"exp\":1700000000000}"),
                     CD_ERR_UNAUTHORIZED);
    assert_int_equal(verify_payload("{\"r\":\"v\",\"sub\":\"v1\",\"site\":\"s\",\"iat\":1,\"exp\":1700000000000,"
                                    "\"jti\":\"j\",\"admin\":true}"),
                     CD_ERR_UNAUTHORIZED);
    assert_int_equal(verify_payload("{\"r\":\"v\",\"r\":\"a\",\"sub\":\"v1\",\"site\":\"s\",\"iat\":1,"
                                    "\"exp\":1700000000000,\"jti\":\"j\"}"),
                     CD_ERR_UNAUTHORIZED);
    /* Empty required strings; a visitor without a site. */
    assert_int_equal(
        verify_payload("{\"r\":\"v\",\"sub\":\"\",\"site\":\"s\",\"iat\":1,\"exp\":1700000000000,\"jti\":\"j\"}"),
        CD_ERR_UNAUTHORIZED);
    assert_int_equal(
        verify_payload("{\"r\":\"v\",\"sub\":\"v1\",\"site\":\"\",\"iat\":1,\"exp\":1700000000000,\"jti\":\"j\"}"),
        CD_ERR_UNAUTHORIZED);
    assert_int_equal(
        verify_payload("{\"r\":\"a\",\"sub\":\"a1\",\"site\":\"\",\"iat\":1,\"exp\":1700000000000,\"jti\":\"\"}"),
        CD_ERR_UNAUTHORIZED);
    /* Times: exp before iat, negative iat. */
    assert_int_equal(
        verify_payload(
            "{\"r\":\"v\",\"sub\":\"v1\",\"site\":\"s\",\"iat\":1700000000001,\"exp\":1700000000000,\"jti\":\"j\"}"),
        CD_ERR_UNAUTHORIZED);
    assert_int_equal(
        verify_payload("{\"r\":\"v\",\"sub\":\"v1\",\"site\":\"s\",\"iat\":-1,\"exp\":1700000000000,\"jti\":\"j\"}"),
        CD_ERR_UNAUTHORIZED);
    /* An embedded NUL. */
    assert_int_equal(
        verify_payload(
            "{\"r\":\"v\",\"sub\":\"v\\u0000x\",\"site\":\"s\",\"iat\":1,\"exp\":1700000000000,\"jti\":\"j\"}"),
        CD_ERR_UNAUTHORIZED);
    /* Not an object, not JSON. */
    assert_int_equal(verify_payload("[\"v\",\"v1\"]"), CD_ERR_UNAUTHORIZED);
    assert_int_equal(verify_payload("{\"r\":\"v\""), CD_ERR_UNAUTHORIZED);
    assert_int_equal(verify_payload("null"), CD_ERR_UNAUTHORIZED);

    /* Lengths: sub fills cd_auth_claims.sub[80] with 79 bytes, one more does not fit. */
    memset(sub79, 'a', 79);
    sub79[79] = '\0';
    memset(sub80, 'a', 80);
    sub80[80] = '\0';
    snprintf(payload, sizeof payload,
             "{\"r\":\"a\",\"sub\":\"%s\",\"site\":\"\",\"iat\":1,\"exp\":1700000000000,\"jti\":\"j\"}", sub79);
    assert_int_equal(verify_payload(payload), CD_ERR_OK);
    snprintf(payload, sizeof payload,
             "{\"r\":\"a\",\"sub\":\"%s\",\"site\":\"\",\"iat\":1,\"exp\":1700000000000,\"jti\":\"j\"}", sub80);
    assert_int_equal(verify_payload(payload), CD_ERR_UNAUTHORIZED);
    snprintf(payload, sizeof payload,
             "{\"r\":\"a\",\"sub\":\"a\",\"site\":\"\",\"iat\":1,\"exp\":1700000000000,\"jti\":\"%.40s\"}", sub80);
    assert_int_equal(verify_payload(payload), CD_ERR_UNAUTHORIZED); /* jti[40] holds 39 */
}

/* ---- HMAC ---- */

/* RFC 4231, test case 2. */
#define RFC_KEY "Jefe"
#define RFC_MSG "what do ya want for nothing?"
#define RFC_MAC "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"

static void test_hmac_hex(void **state)
{
    char hex[65];
    (void)state;

    cd_auth_hmac_hex(RFC_KEY, 4, RFC_MSG, strlen(RFC_MSG), hex);
    assert_string_equal(hex, RFC_MAC);

    assert_true(cd_auth_hmac_verify(RFC_KEY, 4, RFC_MSG, strlen(RFC_MSG), RFC_MAC));
    assert_true(cd_auth_hmac_verify(RFC_KEY, 4, RFC_MSG, strlen(RFC_MSG),
                                    "5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843"));
    /* Wrong message, wrong secret, one digit changed. */
    assert_false(cd_auth_hmac_verify(RFC_KEY, 4, "what do ya want for nothing!", strlen(RFC_MSG), RFC_MAC));
    assert_false(cd_auth_hmac_verify("Jeff", 4, RFC_MSG, strlen(RFC_MSG), RFC_MAC));
    assert_false(cd_auth_hmac_verify(RFC_KEY, 4, RFC_MSG, strlen(RFC_MSG),
                                     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3844"));
    /* Wrong lengths and non-hex. */
    assert_false(cd_auth_hmac_verify(RFC_KEY, 4, RFC_MSG, strlen(RFC_MSG),
                                     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec384"));
    assert_false(cd_auth_hmac_verify(RFC_KEY, 4, RFC_MSG, strlen(RFC_MSG), RFC_MAC "0"));
    assert_false(cd_auth_hmac_verify(RFC_KEY, 4, RFC_MSG, strlen(RFC_MSG), ""));
    assert_false(cd_auth_hmac_verify(RFC_KEY, 4, RFC_MSG, strlen(RFC_MSG), NULL));
    assert_false(cd_auth_hmac_verify(RFC_KEY, 4, RFC_MSG, strlen(RFC_MSG),
                                     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec384g"));

    /* An empty message and secret still give a 64-digit MAC that verifies. */
    cd_auth_hmac_hex("", 0, "", 0, hex);
    assert_int_equal(strlen(hex), 64);
    assert_true(cd_auth_hmac_verify("", 0, "", 0, hex));
    assert_false(cd_auth_hmac_verify("x", 1, "", 0, hex));
}

static void test_const_eq(void **state)
{
    (void)state;
    assert_true(cd_auth_const_eq("abc", 3, "abc", 3));
    assert_false(cd_auth_const_eq("abc", 3, "abd", 3));
    assert_false(cd_auth_const_eq("abc", 3, "abcd", 4));
    assert_false(cd_auth_const_eq("abcd", 4, "abc", 3));
    assert_true(cd_auth_const_eq("", 0, "", 0));
    assert_false(cd_auth_const_eq("", 0, "a", 1));
    /* A longer a whose extra byte equals b's terminator must still differ. */
    assert_false(cd_auth_const_eq("abc", 4, "abc", 3));
    assert_false(cd_auth_const_eq("abc", 3, "abc", 4));
    assert_true(cd_auth_const_eq("a\0b", 3, "a\0b", 3));
    assert_false(cd_auth_const_eq("a\0b", 3, "a\0c", 3));
}

/* ---- passwords ---- */

#define PHC_PREFIX "$argon2id$v=19$m=19456,t=2,p=1$"

static void test_password(void **state)
{
    char h1[128], h2[128], bad[160];
    (void)state;

    assert_int_equal(cd_auth_password_hash("correct horse battery staple", h1, sizeof h1), 0);
    assert_int_equal(strncmp(h1, PHC_PREFIX, strlen(PHC_PREFIX)), 0);
    assert_true(cd_auth_password_verify(h1, "correct horse battery staple"));
    assert_false(cd_auth_password_verify(h1, "correct horse battery stapl"));
    assert_false(cd_auth_password_verify(h1, "Correct horse battery staple"));

    /* A fresh salt each time. */
    assert_int_equal(cd_auth_password_hash("correct horse battery staple", h2, sizeof h2), 0);
    assert_string_not_equal(h1, h2);
    assert_true(cd_auth_password_verify(h2, "correct horse battery staple"));

    /* Tampered hash, garbage, other parameters beyond the caps. */
    strcpy(bad, h1);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    assert_false(cd_auth_password_verify(bad, "correct horse battery staple"));
    assert_false(cd_auth_password_verify("not a hash", "correct horse battery staple"));
    assert_false(cd_auth_password_verify("", "correct horse battery staple"));
    assert_false(cd_auth_password_verify(NULL, "correct horse battery staple"));
    snprintf(bad, sizeof bad, "$argon2id$v=19$m=4194304,t=2,p=1$%s", h1 + strlen(PHC_PREFIX));
    assert_false(cd_auth_password_verify(bad, "correct horse battery staple"));
    snprintf(bad, sizeof bad, "$argon2i$v=19$m=19456,t=2,p=1$%s", h1 + strlen(PHC_PREFIX));
    assert_false(cd_auth_password_verify(bad, "correct horse battery staple"));

    /* Genuine Argon2id hashes with parameters beyond the verification caps (t <= 16, p <= 8) are refused;
     * the same password under parameters inside the caps verifies. Cheap: m is tiny. */
    {
        unsigned char salt[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
        char enc[160];
        assert_int_equal(argon2id_hash_encoded(16, 64, 8, "pw-cap-test", 11, salt, sizeof salt, 32, enc, sizeof enc),
                         ARGON2_OK);
        assert_true(cd_auth_password_verify(enc, "pw-cap-test"));
        assert_int_equal(argon2id_hash_encoded(17, 64, 1, "pw-cap-test", 11, salt, sizeof salt, 32, enc, sizeof enc),
                         ARGON2_OK);
        assert_false(cd_auth_password_verify(enc, "pw-cap-test"));
        assert_int_equal(argon2id_hash_encoded(1, 72, 9, "pw-cap-test", 11, salt, sizeof salt, 32, enc, sizeof enc),
                         ARGON2_OK);
        assert_false(cd_auth_password_verify(enc, "pw-cap-test"));
    }

    /* Output buffer too small. */
    assert_int_equal(cd_auth_password_hash("correct horse battery staple", h2, 40), -1);
}

static void test_password_lengths(void **state)
{
    char max[CD_AUTH_PASSWORD_MAX + 2], h[128];
    (void)state;

    assert_int_equal(cd_auth_password_hash("", h, sizeof h), -1);
    assert_int_equal(cd_auth_password_hash(NULL, h, sizeof h), -1);

    /* Exactly CD_AUTH_PASSWORD_MAX bytes is accepted. */
    memset(max, 'p', CD_AUTH_PASSWORD_MAX);
    max[CD_AUTH_PASSWORD_MAX] = '\0';
    assert_int_equal(cd_auth_password_hash(max, h, sizeof h), 0);
    assert_true(cd_auth_password_verify(h, max));
    assert_false(cd_auth_password_verify(h, ""));

    /* One byte more is refused, never truncated to the stored password. */
    max[CD_AUTH_PASSWORD_MAX] = 'p';
    max[CD_AUTH_PASSWORD_MAX + 1] = '\0';
    assert_int_equal(cd_auth_password_hash(max, h, sizeof h), -1);
    assert_string_equal(h, "");
    max[CD_AUTH_PASSWORD_MAX] = '\0';
    assert_int_equal(cd_auth_password_hash(max, h, sizeof h), 0);
    max[CD_AUTH_PASSWORD_MAX] = 'p';
    assert_false(cd_auth_password_verify(h, max));
}

/* RFC 6238 appendix B, SHA-1 (secret "12345678901234567890" = base32 GEZDGNBVGY3TQOJQ...):
 * the 8-digit codes there, of which TOTP with 6 digits is the last six. */
static void test_totp_rfc6238(void **state)
{
    static const char secret[] = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    static const struct {
        int64_t t;
        const char *code;
    } v[] = {{59, "287082"},         {1111111109, "081804"}, {1111111111, "050471"},
             {1234567890, "005924"}, {2000000000, "279037"}, {20000000000, "353130"}};
    char code[CD_AUTH_TOTP_DIGITS + 1];
    (void)state;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        assert_int_equal(cd_auth_totp_code(secret, v[i].t / 30, code), 0);
        assert_string_equal(code, v[i].code);
    }
    /* lowercase base32 is the same secret; anything else is refused */
    assert_int_equal(cd_auth_totp_code("gezdgnbvgy3tqojqgezdgnbvgy3tqojq", 59 / 30, code), 0);
    assert_string_equal(code, "287082");
    assert_int_equal(cd_auth_totp_code("GEZDGNBV!", 1, code), -1);
    assert_int_equal(cd_auth_totp_code("", 1, code), -1);
}

/* The window is one step either way, and a step at or before the last used one is refused. */
static void test_totp_window_and_replay(void **state)
{
    static const char secret[] = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    const int64_t now_ms = 1111111111000LL, step = 1111111111 / 30;
    char prev[8], cur[8], next[8], far[8];
    (void)state;
    assert_int_equal(cd_auth_totp_code(secret, step - 1, prev), 0);
    assert_int_equal(cd_auth_totp_code(secret, step, cur), 0);
    assert_int_equal(cd_auth_totp_code(secret, step + 1, next), 0);
    assert_int_equal(cd_auth_totp_code(secret, step + 2, far), 0);
    assert_int_equal(cd_auth_totp_match(secret, cur, now_ms, 0), step);
    assert_int_equal(cd_auth_totp_match(secret, prev, now_ms, 0), step - 1);
    assert_int_equal(cd_auth_totp_match(secret, next, now_ms, 0), step + 1);
    assert_int_equal(cd_auth_totp_match(secret, far, now_ms, 0), -1);
    /* replay: the step was used */
    assert_int_equal(cd_auth_totp_match(secret, cur, now_ms, step), -1);
    assert_int_equal(cd_auth_totp_match(secret, prev, now_ms, step - 1), -1);
    assert_int_equal(cd_auth_totp_match(secret, next, now_ms, step), step + 1);
    assert_int_equal(cd_auth_totp_match(secret, "12345", now_ms, 0), -1);
    assert_int_equal(cd_auth_totp_match(secret, "1234567", now_ms, 0), -1);
}

static void test_totp_secret_and_recovery(void **state)
{
    char s1[40], s2[40], code[8], h1[65], h2[65];
    char codes[CD_AUTH_RECOVERY_N][CD_AUTH_RECOVERY_LEN + 1];
    (void)state;
    assert_int_equal(cd_auth_totp_secret_new(s1, sizeof s1), 0);
    assert_int_equal(cd_auth_totp_secret_new(s2, sizeof s2), 0);
    assert_int_equal(strlen(s1), CD_AUTH_TOTP_SECRET_LEN);
    assert_string_not_equal(s1, s2);
    assert_int_equal(cd_auth_totp_code(s1, 1, code), 0);
    assert_int_equal(cd_auth_totp_secret_new(s1, 32), -1);

    assert_int_equal(cd_auth_recovery_codes_new(codes), 0);
    for (size_t i = 0; i < CD_AUTH_RECOVERY_N; i++) {
        assert_int_equal(strlen(codes[i]), CD_AUTH_RECOVERY_LEN);
        assert_int_equal(codes[i][5], '-');
        for (size_t k = i + 1; k < CD_AUTH_RECOVERY_N; k++)
            assert_string_not_equal(codes[i], codes[k]);
    }
    /* as typed: case, '-' and spaces do not matter; another code hashes apart */
    char typed[32];
    snprintf(typed, sizeof typed, " %.5s %.5s", codes[0], codes[0] + 6);
    for (char *c = typed; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    assert_int_equal(cd_auth_recovery_hash(codes[0], h1), 0);
    assert_int_equal(cd_auth_recovery_hash(typed, h2), 0);
    assert_string_equal(h1, h2);
    assert_int_equal(cd_auth_recovery_hash(codes[1], h2), 0);
    assert_string_not_equal(h1, h2);
    assert_int_equal(cd_auth_recovery_hash("abc", h2), -1);
    assert_int_equal(cd_auth_recovery_hash("abcde-fghij-k", h2), -1);
    assert_int_equal(cd_auth_recovery_hash("abcde/fghij", h2), -1);
}

static void test_challenge_roles(void **state)
{
    cd_auth_keyring kr;
    cd_auth_claims c, out;
    char tok[CD_AUTH_TOKEN_MAX];
    (void)state;
    cd_auth_keyring_init(&kr);
    assert_int_equal(
        cd_auth_keyring_add_hex(&kr, "k1", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"), 0);
    for (int role = CD_AUTH_ROLE_CHALLENGE; role <= CD_AUTH_ROLE_ENROL; role++) {
        memset(&c, 0, sizeof c);
        c.role = (cd_auth_role)role;
        strcpy(c.sub, "a_1");
        c.iat = 1000;
        c.exp = 2000;
        c.epoch = 3;
        assert_int_equal(cd_auth_token_sign(&kr, &c, tok, sizeof tok), 0);
        assert_int_equal(cd_auth_token_verify(&kr, tok, 1500, &out), CD_ERR_OK);
        assert_int_equal(out.role, role);
        assert_int_equal(out.epoch, 3);
    }
}

/* Sealed secrets (seal.c): a round trip, bound to the owner and the key; tampering, another
 * key, another owner and malformed text are refused; unsealed text passes through. */
static void test_seal(void **state)
{
    (void)state;
    char sealed[CD_AUTH_SEALED_MAX], again[CD_AUTH_SEALED_MAX], plain[CD_AUTH_SEAL_PLAIN_MAX + 1];
    const char *secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    cd_auth_seal_key_clear();
    assert_false(cd_auth_seal_on());
    assert_int_equal(cd_auth_seal("ag1", secret, sealed, sizeof sealed), -1); /* no key */
    assert_int_equal(cd_auth_seal_key_set_hex("00", 2), -1);
    const char *k1 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    const char *k2 = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    assert_int_equal(cd_auth_seal_key_set_hex(k1, strlen(k1)), 0);
    assert_true(cd_auth_seal_on());
    assert_int_equal(cd_auth_seal("ag1", secret, sealed, sizeof sealed), 0);
    assert_int_equal(strncmp(sealed, "s1.", 3), 0);
    assert_null(strstr(sealed, secret));
    assert_int_equal(cd_auth_seal("ag1", secret, again, sizeof again), 0);
    assert_string_not_equal(sealed, again); /* a fresh nonce each time */
    assert_int_equal(cd_auth_unseal("ag1", sealed, plain, sizeof plain), CD_AUTH_UNSEAL_OK);
    assert_string_equal(plain, secret);
    /* another owner */
    assert_int_equal(cd_auth_unseal("ag2", sealed, plain, sizeof plain), CD_AUTH_UNSEAL_BAD);
    /* each byte of the payload flipped */
    size_t body = strrchr(sealed, '.') - sealed + 1;
    for (size_t i = body; i < strlen(sealed); i++) {
        char t[CD_AUTH_SEALED_MAX];
        cd_strlcpy(t, sealed, sizeof t);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        assert_true(cd_auth_unseal("ag1", t, plain, sizeof plain) < 0);
    }
    /* truncated, empty, bad kid, too small an output */
    char t[CD_AUTH_SEALED_MAX];
    cd_strlcpy(t, sealed, sizeof t);
    t[strlen(t) - 5] = '\0';
    assert_true(cd_auth_unseal("ag1", t, plain, sizeof plain) < 0);
    assert_int_equal(cd_auth_unseal("ag1", "s1.", plain, sizeof plain), CD_AUTH_UNSEAL_BAD);
    assert_int_equal(cd_auth_unseal("ag1", "s1.0011.AAAA", plain, sizeof plain), CD_AUTH_UNSEAL_BAD);
    assert_int_equal(cd_auth_unseal("ag1", sealed, plain, 8), CD_AUTH_UNSEAL_BAD);
    /* another key: said so, not opened */
    assert_int_equal(cd_auth_seal_key_set_hex(k2, strlen(k2)), 0);
    assert_int_equal(cd_auth_unseal("ag1", sealed, plain, sizeof plain), CD_AUTH_UNSEAL_OTHER_KEY);
    cd_auth_seal_key_clear();
    assert_int_equal(cd_auth_unseal("ag1", sealed, plain, sizeof plain), CD_AUTH_UNSEAL_OTHER_KEY);
    /* stored before sealing: passed through */
    assert_int_equal(cd_auth_unseal("ag1", secret, plain, sizeof plain), CD_AUTH_UNSEAL_PLAIN);
    assert_string_equal(plain, secret);
}

/* API tokens: a new secret is 43 base64url characters, its hash the SHA-256 a client's
 * copy gives; the parser takes exactly "cdt.<site>.<id>.<secret>" and nothing near it. */
static void test_api_token(void **state)
{
    (void)state;
    char s1[CD_AUTH_API_SECRET_LEN + 1], s2[CD_AUTH_API_SECRET_LEN + 1], h[65];
    assert_int_equal(cd_auth_api_secret_new(s1), 0);
    assert_int_equal(cd_auth_api_secret_new(s2), 0);
    assert_int_equal(strlen(s1), CD_AUTH_API_SECRET_LEN);
    assert_string_not_equal(s1, s2);
    /* SHA-256("abc") */
    assert_int_equal(cd_auth_sha256_hex("abc", 3, h), 0);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    char tok[256];
    cd_auth_api_token t;
    snprintf(tok, sizeof tok, "cdt.site_1-a.k_AbC-d_9.%s", s1);
    assert_true(cd_auth_api_token_parse(tok, &t));
    assert_string_equal(t.site, "site_1-a");
    assert_string_equal(t.id, "k_AbC-d_9");
    assert_int_equal(cd_auth_sha256_hex(s1, strlen(s1), h), 0);
    assert_string_equal(t.hash, h);
    char long_site[80];
    memset(long_site, 'a', 65);
    long_site[65] = '\0';
    const char *bad[] = {"",   "cdt.", "cdt.site.k.", "cdt..k_1.x", "v1.site.k_1.x", "CDT.site.k_1.x", NULL,
                         NULL, NULL,   NULL,          NULL};
    char b1[256], b2[256], b3[256], b4[256], b5[256];
    snprintf(b1, sizeof b1, "cdt.site.k_1.%sx", s1);         /* 44 characters */
    snprintf(b2, sizeof b2, "cdt.site.k_1.%.42s", s1);       /* 42 */
    snprintf(b3, sizeof b3, "cdt.si.te.k_1.%s", s1);         /* a dot in the site */
    snprintf(b4, sizeof b4, "cdt.%s.k_1.%s", long_site, s1); /* site of 65 */
    snprintf(b5, sizeof b5, "cdt.site.k_1.%.42s=", s1);      /* not base64url */
    bad[6] = b1, bad[7] = b2, bad[8] = b3, bad[9] = b4, bad[10] = b5;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(cd_auth_api_token_parse(bad[i], &t));
        assert_string_equal(t.site, "");
        assert_string_equal(t.hash, "");
    }
    assert_false(cd_auth_api_token_parse(NULL, &t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyring_add),
        cmocka_unit_test(test_roundtrip_visitor),
        cmocka_unit_test(test_roundtrip_agent),
        cmocka_unit_test(test_sign_rejects),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_tampered_payload),
        cmocka_unit_test(test_tampered_mac),
        cmocka_unit_test(test_unknown_kid),
        cmocka_unit_test(test_key_rotation),
        cmocka_unit_test(test_wrong_parts),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_strict_payload),
        cmocka_unit_test(test_hmac_hex),
        cmocka_unit_test(test_const_eq),
        cmocka_unit_test(test_password),
        cmocka_unit_test(test_password_lengths),
        cmocka_unit_test(test_totp_rfc6238),
        cmocka_unit_test(test_totp_window_and_replay),
        cmocka_unit_test(test_totp_secret_and_recovery),
        cmocka_unit_test(test_challenge_roles),
        cmocka_unit_test(test_seal),
        cmocka_unit_test(test_api_token),
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
