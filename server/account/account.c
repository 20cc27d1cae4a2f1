/* The login's Redis calls (include/chatdesk/account.h says what each is). */
#include "chatdesk/account.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"

typedef struct {
    cd_account_cb cb;
    void *ud;
} call;

static char *copy_str(json_t *v)
{
    return json_is_string(v) ? cd_strdup(json_string_value(v)) : NULL;
}

static void parse(cd_account *a, json_t *root)
{
    a->fails = json_integer_value(json_object_get(root, "fails"));
    a->retry_ms = json_integer_value(json_object_get(root, "retry_ms"));
    json_t *ag = json_object_get(root, "agent");
    if (!json_is_object(ag))
        return;
    a->found = true;
    a->raw_agent = json_dumps(ag, JSON_COMPACT);
    const char *id = json_string_value(json_object_get(ag, "id"));
    cd_strlcpy(a->id, id ? id : "", sizeof a->id);
    json_t *sites = json_object_get(ag, "sites");
    size_t n = json_array_size(sites), i;
    a->sites = cd_calloc(n ? n : 1, sizeof *a->sites);
    json_t *s;
    json_array_foreach(sites, i, s)
    {
        if (json_is_string(s))
            a->sites[a->n_sites++] = cd_strdup(json_string_value(s));
    }
    a->pw = copy_str(json_object_get(root, "pw"));
    a->token_epoch = json_integer_value(json_object_get(root, "token_epoch"));
    a->totp = json_is_true(json_object_get(root, "totp"));
}

static void on_reply(void *ud, cd_err err, const char *json, size_t len)
{
    call *c = ud;
    cd_account a;
    memset(&a, 0, sizeof a);
    a.err = err;
    json_t *root = err == CD_ERR_OK && json ? json_loadb(json, len, 0, NULL) : NULL;
    if (err == CD_ERR_OK && !json_is_object(root)) {
        cd_log_error("account reply is not a JSON object");
        a.err = CD_ERR_INTERNAL;
    } else if (root) {
        parse(&a, root);
    }
    json_decref(root);
    c->cb(c->ud, &a);
    free(a.raw_agent);
    for (size_t i = 0; i < a.n_sites; i++)
        cd_free(a.sites[i]);
    cd_free(a.sites);
    if (a.pw)
        explicit_bzero(a.pw, strlen(a.pw));
    cd_free(a.pw);
    cd_free(c);
}

static int run(cd_store *st, const char *fn, int nkeys, const char *const *keys, int nargs, const char *const *args,
               cd_account_cb cb, void *ud)
{
    call *c = cd_malloc(sizeof *c);
    c->cb = cb;
    c->ud = ud;
    if (cd_store_fcall(st, fn, nkeys, keys, nargs, args, NULL, on_reply, c) != 0) {
        cd_free(c);
        return -1;
    }
    return 0;
}

int cd_account_by_email(cd_store *st, const char *email, cd_account_cb cb, void *ud)
{
    const char *P = cd_store_prefix(st);
    cd_key k, k2;
    const char *keys[] = {cd_key_agent_email(&k, P, email), cd_key_login_fails(&k2, P, email)};
    const char *args[] = {"email", email, "0", "0", ""};
    return run(st, "agent_get", 2, keys, 5, args, cb, ud);
}

int cd_account_by_id(cd_store *st, const char *aid, int64_t epoch, const char *jti, cd_account_cb cb, void *ud)
{
    const char *P = cd_store_prefix(st);
    char ep[24];
    snprintf(ep, sizeof ep, "%lld", (long long)epoch);
    cd_key k, k2;
    const char *keys[] = {cd_key_agent(&k, P, aid), cd_key_agent_revoked(&k2, P, aid)};
    const char *args[] = {"id", aid, "0", ep, jti ? jti : ""};
    return run(st, "agent_get", 2, keys, 5, args, cb, ud);
}

int cd_account_attempt(cd_store *st, const char *email, const char *op, int64_t window_ms, const char *addr,
                       int64_t audit_days, cd_account_cb cb, void *ud)
{
    char window[24], days[24], now[24];
    snprintf(window, sizeof window, "%lld", (long long)window_ms);
    snprintf(days, sizeof days, "%lld", (long long)audit_days);
    snprintf(now, sizeof now, "%llu", (unsigned long long)cd_now_ms());
    const char *args[] = {op, window, email, addr ? addr : "", days, now};
    cd_key k;
    const char *keys[] = {cd_key_login_fails(&k, cd_store_prefix(st), email)};
    return run(st, "login_attempt", 1, keys, 6, args, cb, ud);
}
