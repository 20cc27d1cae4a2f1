/* password.c: agent password hashing with Argon2id (RELIABILITY.md 4.6).
 *
 * Parameters are OWASP's minimum for Argon2id: m=19456 KiB, t=2, p=1, a 16-byte
 * salt from cd_random_bytes and a 32-byte hash, stored as the PHC string
 * "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>". One hash costs about 0.1 s and
 * 20 MiB, so both functions must run off the event loop (bounded worker pool).
 *
 * Passwords are 1..CD_AUTH_PASSWORD_MAX bytes; anything else is refused before
 * any work is done. Verification accepts other Argon2id parameters (so they can be
 * raised later and old hashes still verify) but caps them, so a corrupted or
 * hostile stored string cannot make one login allocate gigabytes.
 */
#include "chatdesk/auth.h"

#include <stdio.h>
#include <string.h>

#include <argon2.h>

#define PW_T_COST 2
#define PW_M_COST 19456 /* KiB */
#define PW_PARALLELISM 1
#define PW_SALT_LEN 16
#define PW_HASH_LEN 32

/* Upper bounds accepted when verifying a stored hash. */
#define PW_VERIFY_M_MAX (256u * 1024u) /* KiB: 256 MiB */
#define PW_VERIFY_T_MAX 16u
#define PW_VERIFY_P_MAX 8u
#define PW_ENCODED_MAX 256

/* Length of a usable password, or 0 when it is NULL, empty or too long. */
static size_t password_len(const char *password)
{
    size_t n;

    if (password == NULL)
        return 0;
    n = strnlen(password, CD_AUTH_PASSWORD_MAX + 1);
    return n > CD_AUTH_PASSWORD_MAX ? 0 : n;
}

int cd_auth_password_hash(const char *password, char *out, size_t outsz)
{
    unsigned char salt[PW_SALT_LEN];
    size_t pwlen = password_len(password);
    size_t need = argon2_encodedlen(PW_T_COST, PW_M_COST, PW_PARALLELISM, PW_SALT_LEN, PW_HASH_LEN, Argon2_id);
    int rc;

    if (out != NULL && outsz > 0)
        out[0] = '\0';
    if (pwlen == 0 || out == NULL || outsz < need)
        return -1;
    cd_random_bytes(salt, sizeof salt);
    rc = argon2id_hash_encoded(PW_T_COST, PW_M_COST, PW_PARALLELISM, password, pwlen, salt, sizeof salt, PW_HASH_LEN,
                               out, outsz);
    if (rc != ARGON2_OK) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

/* Check the parameter section of an Argon2id PHC string against the caps above. */
static bool encoded_params_ok(const char *encoded)
{
    unsigned int m = 0, t = 0, p = 0;
    int used = 0;

    if (sscanf(encoded, "$argon2id$v=19$m=%u,t=%u,p=%u$%n", &m, &t, &p, &used) != 3 || used == 0)
        return false;
    return m >= 8 && m <= PW_VERIFY_M_MAX && t >= 1 && t <= PW_VERIFY_T_MAX && p >= 1 && p <= PW_VERIFY_P_MAX;
}

bool cd_auth_password_verify(const char *encoded, const char *password)
{
    size_t pwlen = password_len(password);

    if (pwlen == 0 || encoded == NULL || strnlen(encoded, PW_ENCODED_MAX + 1) > PW_ENCODED_MAX)
        return false;
    if (!encoded_params_ok(encoded))
        return false;
    return argon2id_verify(encoded, password, pwlen) == ARGON2_OK;
}
