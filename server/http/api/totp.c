/* API family: two-factor login (store/lua/api_totp.lua, docs/api.md "Two-factor login").
 * The node does the cryptography (auth: RFC 6238 codes, OpenSSL RAND secrets, hashed
 * recovery codes); the script keeps the state. A call that takes a code runs in two
 * steps: totp_check reads the secret and counts the attempt on the account's login
 * counter, the code is checked here (refused: the attempt stays counted; too many in the
 * window: 429), then the function that makes the change runs with the time step or the
 * recovery code's hash that matched, and refuses a step already used. */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/base.h"
#include "chatdesk/clock.h"
#include "chatdesk/log.h"

static const cd_api_route totp_routes[] = {
    {"GET", "me/totp", "totp_status", {0}, false, 0},
    {"POST", "me/totp/enroll", "totp_enroll", {0}, true, 0},
    {"POST", "me/totp/confirm", "totp_enable", {0}, true, 0},
    {"POST", "me/totp/disable", "totp_disable", {0}, true, 0},
    {"POST", "me/totp/recovery-codes", "totp_recovery_set", {0}, true, 0},
    {"POST", "login/totp", "totp_login", {0}, true, 0},
    {"POST", "admin/agents/:/totp/reset", "totp_reset", {"agent_id"}, false, 0},
};

bool cd_http__api_role_allowed(const cd_api_call *call, cd_auth_role role)
{
    const cd_api_family *f = NULL;
    const cd_api_route *r = cd_http__api_route(call, &f);
    bool login = r && strcmp(r->op, "totp_login") == 0;
    switch (role) {
    case CD_AUTH_ROLE_AGENT:
        return !login;
    case CD_AUTH_ROLE_CHALLENGE:
        return login;
    case CD_AUTH_ROLE_ENROL:
        return r && (strcmp(r->op, "totp_status") == 0 || strcmp(r->op, "totp_enroll") == 0 ||
                     strcmp(r->op, "totp_enable") == 0);
    default:
        return false;
    }
}

/* The body's "code" (6 digits) or, where allowed, "recovery_code" into the op. */
static int take_code(cd_api_op *a, json_t *params, bool recovery_ok, char *err, size_t errsz)
{
    const char *code = json_string_value(json_object_get(params, "code"));
    const char *rc = json_string_value(json_object_get(params, "recovery_code"));
    char hash[65];
    if (code && strlen(code) == CD_AUTH_TOTP_DIGITS && strspn(code, "0123456789") == CD_AUTH_TOTP_DIGITS) {
        cd_strlcpy(a->code, code, sizeof a->code);
        return 0;
    }
    if (recovery_ok && !code && rc && cd_auth_recovery_hash(rc, hash) == 0) {
        cd_strlcpy(a->code, hash, sizeof a->code);
        a->recovery = true;
        return 0;
    }
    snprintf(err, errsz, "%s",
             recovery_ok
                 ? "code must be the 6 digits of the authenticator app, or recovery_code one of the recovery codes"
                 : "code must be the 6 digits of the authenticator app");
    return -1;
}

/* The secret as Redis keeps it: sealed under secrets_key_file when the node has one
 * (auth/seal.c, bound to the agent), else as is. "" when sealing fails. */
static void stored_form(const char *agent_id, const char *plain, char *out, size_t outsz)
{
    if (!cd_auth_seal_on())
        cd_strlcpy(out, plain, outsz);
    else if (cd_auth_seal(agent_id, plain, out, outsz) != 0)
        out[0] = '\0';
}

/* enroll: the node makes the secret (kept in a->code for the answer); the calls with a
 * code first read it (totp_check). */
static int totp_prepare(cd_api_op *a, const cd_api_call *call, const cd_api_route *r, json_t **params, char *err,
                        size_t errsz)
{
    if (strcmp(r->op, "totp_enroll") == 0) {
        char secret[CD_AUTH_TOTP_SECRET_LEN + 1], stored[CD_AUTH_SEALED_MAX];
        _Static_assert(sizeof secret <= sizeof a->code, "the op keeps the secret for the answer");
        if (cd_auth_totp_secret_new(secret, sizeof secret) != 0) {
            snprintf(err, errsz, "cannot make a secret, retry");
            return -1;
        }
        stored_form(call->agent_id, secret, stored, sizeof stored);
        if (!stored[0]) {
            snprintf(err, errsz, "cannot seal the secret, retry");
            return -1;
        }
        cd_strlcpy(a->code, secret, sizeof a->code);
        explicit_bzero(secret, sizeof secret);
        json_object_set_new(*params, "raw_secret", json_string(stored));
        return 0;
    }
    if (strcmp(r->op, "totp_status") == 0 || strcmp(r->op, "totp_reset") == 0)
        return 0;
    bool enable = strcmp(r->op, "totp_enable") == 0;
    if (take_code(a, *params, !enable, err, errsz) != 0)
        return -1;
    json_t *check = json_object();
    json_object_set_new(check, "which", json_string(enable ? "pending" : "active"));
    json_object_set_new(check, "raw_window_ms", json_integer((json_int_t)a->cfg->login_fail_window_s * 1000));
    json_decref(*params);
    *params = check;
    cd_strlcpy(a->then, r->op, sizeof a->then);
    cd_strlcpy(a->op, "totp_check", sizeof a->op);
    a->keep_args = true;
    return 0;
}

static void replace_arg(cd_api_op *a, size_t i, const char *v)
{
    cd_free(a->args[i]);
    a->args[i] = cd_strdup(v);
}

/* totp_check answered: check the code and run the change (true: the op lives on), or
 * answer the refusal (false). */
static bool checked(cd_api_op *a, json_t *got)
{
    const char *stored = json_string_value(json_object_get(got, "secret"));
    json_int_t last = json_integer_value(json_object_get(got, "last_step"));
    json_int_t fails = json_integer_value(json_object_get(got, "fails"));
    bool login = strcmp(a->then, "totp_login") == 0;
    if (!stored) {
        cd_http__api_error(a->cb, a->ud, CD_ERR_INTERNAL, "bad reply");
        return false;
    }
    char secret[CD_AUTH_SEAL_PLAIN_MAX + 1];
    int how = cd_auth_unseal(a->args[1], stored, secret, sizeof secret);
    if (how < 0) {
        cd_log_error("two-factor secret of agent %s cannot be opened: %s", a->args[1],
                     how == CD_AUTH_UNSEAL_OTHER_KEY ? "sealed under another secrets_key_file (or none is set)"
                                                     : "malformed or tampered");
        cd_http__api_error(a->cb, a->ud, CD_ERR_INTERNAL,
                           "the two-factor secret cannot be read on this node (secrets_key_file): ask an admin");
        return false;
    }
    if (fails - 1 >= a->cfg->login_fail_max) { /* the count includes this attempt */
        cd_http__api_error(a->cb, a->ud, CD_ERR_RATE_LIMITED, "too many failed logins for this account, retry later");
        return false;
    }
    json_t *params = json_object();
    json_object_set_new(params, "raw_secret", json_string(stored));
    if (how == CD_AUTH_UNSEAL_PLAIN && cd_auth_seal_on()) { /* stored before sealing was on */
        char sealed[CD_AUTH_SEALED_MAX];
        stored_form(a->args[1], secret, sealed, sizeof sealed);
        if (sealed[0])
            json_object_set_new(params, "raw_reseal", json_string(sealed));
    }
    bool ok;
    if (a->recovery) {
        ok = true; /* whether it is one of the agent's: the script removes it, or refuses */
        json_object_set_new(params, "raw_rc", json_string(a->code));
    } else {
        int64_t step = cd_auth_totp_match(secret, a->code, (int64_t)cd_now_ms(), (int64_t)last);
        ok = step >= 0;
        json_object_set_new(params, "raw_step", json_integer((json_int_t)step));
    }
    if (ok && (strcmp(a->then, "totp_enable") == 0 || strcmp(a->then, "totp_recovery_set") == 0)) {
        json_t *hashes = json_array();
        ok = cd_auth_recovery_codes_new(a->codes) == 0;
        for (size_t i = 0; ok && i < CD_AUTH_RECOVERY_N; i++) {
            char hash[65];
            ok = cd_auth_recovery_hash(a->codes[i], hash) == 0;
            json_array_append_new(hashes, json_string(hash));
        }
        json_object_set_new(params, "raw_rc_hashes", hashes);
    }
    explicit_bzero(secret, sizeof secret);
    if (!ok) {
        json_decref(params);
        cd_http__api_error(a->cb, a->ud, login ? CD_ERR_UNAUTHORIZED : CD_ERR_BAD_REQUEST,
                           a->recovery ? "wrong or used recovery code" : "wrong code");
        return false;
    }
    char *text = json_dumps(params, JSON_COMPACT);
    json_decref(params);
    replace_arg(a, 0, a->then);
    replace_arg(a, 2, text);
    free(text);
    cd_strlcpy(a->op, a->then, sizeof a->op);
    if (cd_http__api_call_again(a) == 0)
        return true;
    cd_http__api_error(a->cb, a->ud, CD_ERR_UNAVAILABLE, "storage unavailable, retry");
    return false;
}

/* A 200: totp_check's goes on to the change; a new set of recovery codes is shown once;
 * the enrolment's secret is shown in clear with its otpauth:// URI (the script has the
 * label, the node the secret, which Redis may keep only sealed). */
static bool totp_reply(cd_api_op *a, const char *body, size_t len)
{
    if (strcmp(a->op, "totp_enroll") == 0) {
        json_t *got = json_loadb(body, len, 0, NULL);
        const char *label = json_string_value(json_object_get(got, "label"));
        cd_buf out;
        cd_buf_init(&out);
        cd_buf_printf(&out,
                      "{\"secret\":\"%s\",\"otpauth_uri\":\"otpauth://totp/%s?secret=%s&issuer=chatdesk&algorithm=SHA1&"
                      "digits=6&period=30\"}",
                      a->code, label ? label : "chatdesk", a->code);
        json_decref(got);
        a->cb(a->ud, 200, out.data, out.len, NULL);
        explicit_bzero(out.data, out.len);
        cd_buf_cleanup(&out);
        explicit_bzero(a->code, sizeof a->code);
        cd_http__api_op_free(a);
        return true;
    }
    if (strcmp(a->op, "totp_check") == 0) {
        json_t *got = json_loadb(body, len, 0, NULL);
        bool again = checked(a, got);
        json_decref(got);
        if (!again)
            cd_http__api_op_free(a);
        return true;
    }
    if (strcmp(a->op, "totp_enable") != 0 && strcmp(a->op, "totp_recovery_set") != 0)
        return false;
    cd_buf out;
    cd_buf_init(&out);
    cd_buf_append_str(&out, "{\"recovery_codes\":[");
    for (size_t i = 0; i < CD_AUTH_RECOVERY_N; i++)
        cd_buf_printf(&out, "%s\"%s\"", i ? "," : "", a->codes[i]);
    cd_buf_append_str(&out, "],");
    cd_buf_append(&out, body + 1, len - 1);
    a->cb(a->ud, 200, out.data, out.len, NULL);
    explicit_bzero(out.data, out.len);
    cd_buf_cleanup(&out);
    cd_http__api_op_free(a);
    return true;
}

const cd_api_family cd_http__api_totp = {
    "api_totp", NULL, totp_routes, CD_ARRAY_LEN(totp_routes), totp_prepare, NULL, totp_reply, CD_API_CALLER,
};
