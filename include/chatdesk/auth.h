/* auth: login and visitor tokens, identity-verification HMAC, password hashing. Pure
 * and kept apart so that the only module that includes <openssl/...> (and Argon2) can be
 * tested on its own and fuzzed. */
#ifndef CHATDESK_AUTH_H
#define CHATDESK_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatdesk/base.h"

#define CD_AUTH_KEY_LEN 32
#define CD_AUTH_MAX_KEYS 4
#define CD_AUTH_KID_MAX 16
#define CD_AUTH_TOKEN_MAX 512

/* Signing keys, newest first; tokens are signed with keys[0] and verified
 * against any key whose kid matches. */
typedef struct cd_auth_keyring {
    size_t n;
    struct {
        char kid[CD_AUTH_KID_MAX + 1];
        unsigned char key[CD_AUTH_KEY_LEN];
    } keys[CD_AUTH_MAX_KEYS];
} cd_auth_keyring;

void cd_auth_keyring_init(cd_auth_keyring *kr);
/* Add a key given as 64 hex chars; returns 0, or -1 for a bad kid/hex or a full ring. */
int cd_auth_keyring_add_hex(cd_auth_keyring *kr, const char *kid, const char *hex);

/* CHALLENGE ("c"): the password was right and the agent has two-factor login on; the token
 * may only finish the login with a code (POST /api/v1/login/totp). ENROL ("e"): the password
 * was right but a site of the agent requires two-factor login, which the agent has not set
 * up; the token may only enrol (/api/v1/me/totp*). Both carry the agent's epoch ("ep"). */
typedef enum cd_auth_role {
    CD_AUTH_ROLE_VISITOR = 1,
    CD_AUTH_ROLE_AGENT = 2,
    CD_AUTH_ROLE_CHALLENGE = 3,
    CD_AUTH_ROLE_ENROL = 4
} cd_auth_role;

typedef struct cd_auth_claims {
    cd_auth_role role;
    char sub[80];  /* visitor id or agent id */
    char site[80]; /* visitor tokens: the site key; agent tokens: "" */
    int64_t iat;   /* unix ms */
    int64_t exp;   /* unix ms */
    char jti[40];
    int64_t epoch; /* agent tokens: the agent's token epoch when issued ("ep"; 0 when absent) */
} cd_auth_claims;

/* Token format: "v1.<kid>.<b64url(payload JSON)>.<b64url(HMAC-SHA256(key, "v1.<kid>.<payload b64>"))>".
 * payload: {"r":"v"|"a"|"c"|"e","sub":..,"site":..,"iat":..,"exp":..,"jti":..[,"ep":..]} ("ep": all but visitor
 * tokens). sign: fills jti if empty; returns 0 or -1 (no key / buffer too small). */
int cd_auth_token_sign(const cd_auth_keyring *kr, cd_auth_claims *c, char *out, size_t outsz);
/* verify: CD_ERR_OK, or CD_ERR_UNAUTHORIZED for any malformed, unknown-kid,
 * bad-MAC (constant-time compare) or expired token (60 s leeway). */
cd_err cd_auth_token_verify(const cd_auth_keyring *kr, const char *token, int64_t now_ms, cd_auth_claims *out);

/* hex(HMAC-SHA256(secret, msg)) into out (65 bytes). */
void cd_auth_hmac_hex(const char *secret, size_t secret_len, const char *msg, size_t msg_len, char out[65]);
/* Constant-time check of a hex HMAC-SHA256 (case-insensitive hex). */
bool cd_auth_hmac_verify(const char *secret, size_t secret_len, const char *msg, size_t msg_len, const char *hex);
/* hex(SHA-256(data[0..len))) into out (lowercase). 0 or -1 (out ""). */
int cd_auth_sha256_hex(const void *data, size_t len, char out[65]);
/* Constant-time equality of two byte strings of possibly different lengths. */
bool cd_auth_const_eq(const void *a, size_t alen, const void *b, size_t blen);

/* Argon2id, OWASP parameters m=19456 KiB, t=2, p=1, 16-byte salt; PHC string into out (>= 128 bytes).
 * Password 1..CD_AUTH_PASSWORD_MAX bytes. Returns 0 or -1. Slow (~0.1 s): call off the loop. */
#define CD_AUTH_PASSWORD_MAX 128
/* Shortest password accepted for a new or changed password (logins accept older, shorter ones). */
#define CD_AUTH_PASSWORD_MIN 12
/* The rule for a new or changed password and its error, one for the admin API (http.c)
 * and the admin CLI; the function library says the same when no hash reaches it. */
#define CD_AUTH_PASSWORD_RULE "password must be 12 to 128 bytes"
_Static_assert(CD_AUTH_PASSWORD_MIN == 12 && CD_AUTH_PASSWORD_MAX == 128, "CD_AUTH_PASSWORD_RULE names the bounds");
static inline bool cd_auth_password_len_ok(size_t n)
{
    return n >= CD_AUTH_PASSWORD_MIN && n <= CD_AUTH_PASSWORD_MAX;
}
int cd_auth_password_hash(const char *password, char *out, size_t outsz);
/* true when password matches the PHC string. Slow: call off the loop. */
bool cd_auth_password_verify(const char *encoded, const char *password);

/* ---- two-factor login (totp.c): RFC 6238 TOTP, HMAC-SHA1, 30 s, 6 digits ---- */
#define CD_AUTH_TOTP_PERIOD_S 30
#define CD_AUTH_TOTP_DIGITS 6
#define CD_AUTH_TOTP_KEY_BYTES 20
#define CD_AUTH_TOTP_SECRET_LEN 32 /* base32 of the 20-byte key */
#define CD_AUTH_RECOVERY_N 10      /* recovery codes per set */
#define CD_AUTH_RECOVERY_CHARS 10  /* random base32 characters per code (50 bits) */
#define CD_AUTH_RECOVERY_LEN 11    /* as shown: "abcde-fghij" */
/* A new secret (OpenSSL RAND) in base32, unpadded, into out (>= 33 bytes). 0 or -1. */
int cd_auth_totp_secret_new(char *out, size_t outsz);
/* The code of one time step (unix seconds / 30) for a base32 secret. 0 or -1. */
int cd_auth_totp_code(const char *secret, int64_t step, char out[CD_AUTH_TOTP_DIGITS + 1]);
/* The step among now-1, now, now+1 whose code is code and which is after last_step (a
 * step already used is refused: no replay), or -1. Constant-time per step. */
int64_t cd_auth_totp_match(const char *secret, const char *code, int64_t now_ms, int64_t last_step);
/* A fresh set of recovery codes, shown once ("abcde-fghij", lowercase base32). 0 or -1. */
int cd_auth_recovery_codes_new(char codes[CD_AUTH_RECOVERY_N][CD_AUTH_RECOVERY_LEN + 1]);
/* hex(SHA-256) of a recovery code as typed (case, '-' and spaces do not matter), the form
 * it is stored in. 0, or -1 (out "") for text that is not a recovery code. */
int cd_auth_recovery_hash(const char *code, char out[65]);

/* ---- secrets sealed at rest (seal.c): AES-256-GCM under secrets_key_file's key ---- */
#define CD_AUTH_SEAL_PLAIN_MAX 256
/* Room for a sealed value of up to CD_AUTH_SEAL_PLAIN_MAX bytes. */
#define CD_AUTH_SEALED_MAX (3 + 8 + 1 + ((12 + CD_AUTH_SEAL_PLAIN_MAX + 16) * 4 + 2) / 3 + 1)
/* The process's key, once at start-up: 64 hex characters (from the file at path, a
 * trailing newline allowed). 0, or -1 with the reason in err. */
int cd_auth_seal_key_load(const char *path, char *err, size_t errsz);
int cd_auth_seal_key_set_hex(const char *hex, size_t len);
void cd_auth_seal_key_clear(void);
/* A key is loaded: new secrets are sealed. */
bool cd_auth_seal_on(void);
/* "s1.<kid>.<…>" of plain (≤ CD_AUTH_SEAL_PLAIN_MAX bytes), bound to aad (its owner's id).
 * 0, or -1 (no key, too long, out too small). */
int cd_auth_seal(const char *aad, const char *plain, char *out, size_t outsz);
enum {
    CD_AUTH_UNSEAL_OK = 0,
    CD_AUTH_UNSEAL_PLAIN = 1,      /* not sealed (stored before sealing was on): copied as is */
    CD_AUTH_UNSEAL_OTHER_KEY = -1, /* sealed under a key this node does not have (or none) */
    CD_AUTH_UNSEAL_BAD = -2        /* malformed, tampered, another owner's, or too long */
};
/* The plain text of a stored value into out (NUL-terminated); one of CD_AUTH_UNSEAL_*. */
int cd_auth_unseal(const char *aad, const char *stored, char *out, size_t outsz);

/* ---- API tokens (apitoken.c): long-lived per-site tokens, "cdt.<site>.<id>.<secret>" ---- */
#define CD_AUTH_API_PREFIX "cdt."
#define CD_AUTH_API_SECRET_LEN 43 /* 32 random bytes, unpadded base64url */
#define CD_AUTH_API_FIELD_MAX 64  /* a site key's or a token id's longest */
typedef struct cd_auth_api_token {
    char site[CD_AUTH_API_FIELD_MAX + 1];
    char id[CD_AUTH_API_FIELD_MAX + 1];
    char hash[65]; /* hex(SHA-256(secret)): the form Redis keeps */
} cd_auth_api_token;
/* A new secret (OpenSSL RAND) into out. 0 or -1. */
int cd_auth_api_secret_new(char out[CD_AUTH_API_SECRET_LEN + 1]);
/* A token's site, id and secret hash; false for anything that is not exactly
 * "cdt.<site key>.<id>.<43 base64url characters>" (out zeroed). */
bool cd_auth_api_token_parse(const char *token, cd_auth_api_token *out);

#endif
