/* Signed download URLs. A link to a file is handed only to a caller who may see it (its
 * conversation's visitor, an agent of its site: file_get.lua), and it lives
 * file_url_ttl_s: the URL carries its expiry and a MAC of "file|<id>|<expiry>" under the
 * token keyring's newest key (named by kid, so a link survives a key being added), so any
 * node checks it without Redis and nobody can widen it to another file or a later time. */
#include "chatdesk/files.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int mac_input(const char *id, const char *e, char *out, size_t outsz)
{
    int n = snprintf(out, outsz, "file|%s|%s", id, e);
    return n > 0 && (size_t)n < outsz ? n : -1;
}

int cd_files_url_sign(const cd_auth_keyring *kr, const char *id, int64_t exp_ms, char *out, size_t outsz)
{
    char e[24], msg[256], mac[65];
    if (!kr || kr->n == 0)
        return -1;
    snprintf(e, sizeof e, "%" PRId64, exp_ms);
    int n = mac_input(id, e, msg, sizeof msg);
    if (n < 0)
        return -1;
    cd_auth_hmac_hex((const char *)kr->keys[0].key, CD_AUTH_KEY_LEN, msg, (size_t)n, mac);
    if (!mac[0])
        return -1;
    int m = snprintf(out, outsz, "/files/%s?e=%s&k=%s&s=%s", id, e, kr->keys[0].kid, mac);
    return m > 0 && (size_t)m < outsz ? 0 : -1;
}

bool cd_files_url_verify(const cd_auth_keyring *kr, const char *id, const char *e, const char *k, const char *s,
                         int64_t now_ms)
{
    char msg[256];
    if (!kr || !id || !e || !k || !s || !e[0] || strspn(e, "0123456789") != strlen(e) || strlen(e) > 18)
        return false;
    if (strtoll(e, NULL, 10) < now_ms)
        return false;
    int n = mac_input(id, e, msg, sizeof msg);
    if (n < 0)
        return false;
    for (size_t i = 0; i < kr->n; i++)
        if (strcmp(kr->keys[i].kid, k) == 0)
            return cd_auth_hmac_verify((const char *)kr->keys[i].key, CD_AUTH_KEY_LEN, msg, (size_t)n, s);
    return false;
}
