/* API family: a site's API tokens (store/lua/api_tokens.lua, docs/api.md "API tokens"):
 * the admin's list, creation and revocation, and the check every call with such a token
 * makes first. The node makes the secret (auth: 32 bytes of OpenSSL RAND) and hands the
 * function only its SHA-256; the whole token "cdt.<site>.<id>.<secret>" is in the
 * creation's answer and nowhere else. A token is a caller of one site: its check runs
 * in that site's slot (the token's record, its per-minute count and its last use are
 * there), answers the caller record the site calls that follow are made with (api.c
 * on_auth), and refuses a route its scopes do not cover. Nothing is cached on a node, so
 * a revoked token fails its next call on every node. */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/base.h"

static const cd_api_route token_routes[] = {
    {"GET", "admin/sites/:/tokens", "admin_tokens_list", {"site_key"}, false, 0},
    {"POST", "admin/sites/:/tokens", "admin_token_create", {"site_key"}, true, 0},
    {"DELETE", "admin/sites/:/tokens/:", "admin_token_delete", {"site_key", "token_id"}, false, 0},
};

/* The routes an API token may call: those whose calls run in site slots only (a token has
 * no record in {a}, so not the caller's own routes, nor the gathered ones about agents,
 * the supervisor view or the audit log), and never the token routes themselves (a token
 * does not make or revoke tokens: that takes an admin's login). Then admin/… routes need
 * "admin", other reads "read" and other changes "write". */
const char *cd_http__api_token_scope(const cd_api_route *r, char slot)
{
    if (slot != CD_API_SITE && slot != CD_API_SITES && slot != CD_API_SITES_ORDER && slot != CD_API_FIRST)
        return NULL;
    if (strncmp(r->op, "admin_token", 11) == 0)
        return NULL;
    if (strncmp(r->pattern, "admin/", 6) == 0)
        return "admin";
    return strcmp(r->method, "GET") == 0 ? "read" : "write";
}

int cd_http__api_token_auth(cd_api_op *a, const cd_api_call *call, const char *scope, const char *const *args,
                            cd_store_reply_cb cb)
{
    const cd_auth_api_token *t = call->api_token;
    char suffix[CD_AUTH_API_FIELD_MAX + 16];
    cd_key tok;
    snprintf(suffix, sizeof suffix, "apitoken:%s", t->id);
    cd_key_site(&a->key, cd_store_prefix(a->st), t->site, "");
    cd_key_tagged(&tok, cd_store_prefix(a->st), t->site, suffix);
    json_t *params = json_pack("{s:s,s:s,s:s,s:I,s:I}", "id", t->id, "hash", t->hash, "scope", scope, "rate",
                               (json_int_t)a->cfg->api_token_rate_per_min, "window_ms", (json_int_t)60000);
    char *ptext = json_dumps(params, JSON_COMPACT);
    json_decref(params);
    const char *auth_args[CD_API_NARGS];
    memcpy(auth_args, args, sizeof auth_args);
    auth_args[0] = "token_auth";
    auth_args[2] = ptext ? ptext : "{}";
    auth_args[CD_API_ARG_MODE] = "token";
    const char *keys[] = {a->key.s, tok.s};
    int rc = cd_store_fcall(a->st, "api_tokens", 2, keys, CD_API_NARGS, auth_args, NULL, cb, a);
    free(ptext);
    return rc;
}

/* A creation: the secret (kept in the op for the answer) and its hash for the record. */
static int tokens_prepare(cd_api_op *a, const cd_api_call *call, const cd_api_route *r, json_t **params, char *err,
                          size_t errsz)
{
    (void)call;
    if (strcmp(r->op, "admin_token_create") != 0)
        return 0;
    char secret[CD_AUTH_API_SECRET_LEN + 1], hash[65];
    _Static_assert(sizeof secret <= sizeof a->code, "the op keeps the secret for the answer");
    if (cd_auth_api_secret_new(secret) != 0 || cd_auth_sha256_hex(secret, strlen(secret), hash) != 0) {
        snprintf(err, errsz, "cannot make a secret, retry");
        return -1;
    }
    cd_strlcpy(a->code, secret, sizeof a->code);
    explicit_bzero(secret, sizeof secret);
    json_object_set_new(*params, "raw_hash", json_string(hash));
    return 0;
}

/* A creation's 200 ({"token":{…"id","site"…}}) is answered 201 with the whole token in
 * "secret", this once. */
static bool tokens_reply(cd_api_op *a, const char *body, size_t len)
{
    if (strcmp(a->op, "admin_token_create") != 0)
        return false;
    json_t *got = json_loadb(body, len, 0, NULL);
    json_t *t = json_object_get(got, "token");
    const char *id = json_string_value(json_object_get(t, "id"));
    const char *site = json_string_value(json_object_get(t, "site"));
    if (!id || !site || len < 2) {
        json_decref(got);
        cd_http__api_error(a->cb, a->ud, CD_ERR_INTERNAL, "bad reply");
        cd_http__api_op_free(a);
        return true;
    }
    cd_buf out;
    cd_buf_init(&out);
    cd_buf_printf(&out, "{\"secret\":\"%s%s.%s.%s\",", CD_AUTH_API_PREFIX, site, id, a->code);
    cd_buf_append(&out, body + 1, len - 1);
    json_decref(got);
    a->cb(a->ud, 201, out.data, out.len, NULL);
    explicit_bzero(out.data, out.len);
    cd_buf_cleanup(&out);
    cd_http__api_op_free(a); /* clears a->code */
    return true;
}

const cd_api_family cd_http__api_tokens = {
    "api_tokens", "k", token_routes, CD_ARRAY_LEN(token_routes), tokens_prepare, NULL, tokens_reply, CD_API_SITE,
};
