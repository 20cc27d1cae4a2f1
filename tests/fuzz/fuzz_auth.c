/* libFuzzer target: what the auth module decodes from outside — login and visitor tokens
 * (cd_auth_token_verify, every byte from a client) and sealed secrets (cd_auth_unseal, the
 * text Redis holds). The first byte picks the decoder. Checks: no crash or sanitizer
 * report; a token that verifies has well-formed claims; a sealed value that opens is
 * NUL-free, fits, and seals and opens again to the same text; text that is not sealed
 * passes through unchanged. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cd_auth_keyring ring;
static int ready;

static void setup(void)
{
    static const char hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    cd_auth_keyring_init(&ring);
    if (cd_auth_keyring_add_hex(&ring, "k1", hex) != 0 || cd_auth_seal_key_set_hex(hex, 64) != 0)
        abort();
    ready = 1;
}

static void tokens(const char *s)
{
    cd_auth_claims c;
    if (cd_auth_token_verify(&ring, s, 1700000000000, &c) != CD_ERR_OK)
        return;
    if (c.sub[0] == '\0' || c.exp < c.iat || memchr(c.jti, '\0', sizeof c.jti) == NULL)
        abort();
}

static void sealed(const char *s)
{
    char plain[CD_AUTH_SEAL_PLAIN_MAX + 1], again[CD_AUTH_SEALED_MAX], back[CD_AUTH_SEAL_PLAIN_MAX + 1];
    int how = cd_auth_unseal("agent-1", s, plain, sizeof plain);
    if (how < 0)
        return;
    size_t n = strlen(plain);
    if (n > CD_AUTH_SEAL_PLAIN_MAX || (how == CD_AUTH_UNSEAL_PLAIN && strcmp(plain, s) != 0))
        abort();
    if (cd_auth_seal("agent-1", plain, again, sizeof again) != 0)
        abort();
    if (cd_auth_unseal("agent-1", again, back, sizeof back) != CD_AUTH_UNSEAL_OK || strcmp(back, plain) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready)
        setup();
    if (size < 1 || size > 4096)
        return 0;
    char *s = malloc(size);
    if (!s)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    if (data[0] & 1)
        sealed(s);
    else
        tokens(s);
    free(s);
    return 0;
}
