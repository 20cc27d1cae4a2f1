/* The HTTP API's router: a call's method and path find one route of one resource family
 * (the tables live in the family files), and query, body and bound path segments become
 * one JSON params object for the family's Redis function. Everything a client sends is
 * data in params: the stored password hash is made here from "password" (never taken
 * from a client), "raw_*" fields are set only by a family's prepare from a validated
 * body, and a GET runs the script's read-only twin, which a full Redis still runs. */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"

static const cd_api_family *const families[] = {
    &cd_http__api_conversations, &cd_http__api_canned, &cd_http__api_health, &cd_http__api_sites,
    &cd_http__api_agents,        &cd_http__api_kb,     &cd_http__api_rules,  &cd_http__api_webhooks,
    &cd_http__api_reports,       &cd_http__api_audit,  &cd_http__api_totp,   &cd_http__api_tokens,
    &cd_http__api_mail,
};

/* Match path segments against a pattern; bound values go to vals (pointers into buf). */
static bool match(const char *pattern, char *buf, const char **vals, int *nvals)
{
    char pat[64];
    cd_strlcpy(pat, pattern, sizeof pat);
    char *ps = pat, *bs = buf, *pt, *bt;
    *nvals = 0;
    for (;;) {
        char *pseg = strtok_r(ps, "/", &pt);
        char *bseg = strtok_r(bs, "/", &bt);
        ps = bs = NULL;
        if (!pseg || !bseg)
            return !pseg && !bseg;
        if (strcmp(pseg, ":") == 0) {
            vals[(*nvals)++] = bseg;
        } else if (strcmp(pseg, bseg) != 0) {
            return false;
        }
    }
}

/* Every id a path binds (site keys, conversation, agent, team, rule, webhook, delivery and
 * article ids, ticket numbers) is 1-128 characters of A-Z a-z 0-9 _ . -: anything else is
 * refused before it reaches a key name or a Redis function. */
static bool id_ok(const char *v)
{
    size_t n = strlen(v);
    return n >= 1 && n <= 128 && strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

static const cd_api_route *find_route(const cd_api_call *call, char *vals_buf, size_t vbsz, const char **vals,
                                      int *nvals, bool *path_known, const cd_api_family **family)
{
    static const char prefix[] = "/api/v1/";
    *path_known = false;
    if (strncmp(call->path, prefix, sizeof prefix - 1) != 0)
        return NULL;
    for (size_t f = 0; f < CD_ARRAY_LEN(families); f++) {
        for (size_t i = 0; i < families[f]->n_routes; i++) {
            const cd_api_route *r = &families[f]->routes[i];
            cd_strlcpy(vals_buf, call->path + sizeof prefix - 1, vbsz);
            if (!match(r->pattern, vals_buf, vals, nvals))
                continue;
            *path_known = true;
            if (strcmp(r->method, call->method) == 0) {
                *family = families[f];
                return r;
            }
        }
    }
    return NULL;
}

const cd_api_route *cd_http__api_route(const cd_api_call *call, const cd_api_family **family)
{
    char buf[256];
    const char *vals[4];
    int n;
    bool known;
    if (strlen(call->path) >= sizeof buf)
        return NULL;
    return find_route(call, buf, sizeof buf, vals, &n, &known, family);
}

void cd_http__api_op_free(cd_api_op *a)
{
    for (size_t i = 0; i < CD_ARRAY_LEN(a->args); i++)
        cd_free(a->args[i]);
    json_decref(a->sites);
    json_decref(a->rows);
    json_decref(a->last);
    explicit_bzero(a, sizeof *a); /* a two-factor call's code and recovery codes */
    cd_free(a);
}

static int status_of(cd_err e)
{
    switch (e) {
    case CD_ERR_BAD_REQUEST:
        return 400;
    case CD_ERR_UNAUTHORIZED:
        return 401;
    case CD_ERR_FORBIDDEN:
        return 403;
    case CD_ERR_NOT_FOUND:
        return 404;
    case CD_ERR_CONFLICT:
        return 409;
    case CD_ERR_TOO_LARGE:
        return 413;
    case CD_ERR_RATE_LIMITED:
        return 429;
    case CD_ERR_UNAVAILABLE:
        return 503;
    default:
        return 500;
    }
}

void cd_http__api_error(cd_api_cb cb, void *ud, cd_err code, const char *message)
{
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", cd_err_name(code), "message", message);
    char *s = json_dumps(o, JSON_COMPACT);
    cb(ud, status_of(code), s, strlen(s), NULL);
    free(s);
    json_decref(o);
}

static void on_api_reply(void *ud, cd_err err, const char *json, size_t len);
static void on_part(void *ud, cd_err err, const char *json, size_t len);

static int call_script(cd_api_op *a, const char *const *args)
{
    if (a->slot) { /* a site call: the site's record is its key, the caller is in args */
        const char *site_key[] = {a->key.s};
        cd_store_reply_cb cb = a->slot == CD_API_SITE ? on_api_reply : on_part;
        return cd_store_fcall(a->st, a->script, 1, site_key, CD_API_NARGS_SITE, args, NULL, cb, a);
    }
    const char *keys[] = {a->key.s, a->revoked.s};
    return cd_store_fcall(a->st, a->script, a->revoked.s[0] ? 2 : 1, keys, CD_API_NARGS, args, NULL, on_api_reply, a);
}

int cd_http__api_call_again(cd_api_op *a)
{
    return call_script(a, (const char *const *)a->args);
}

/* A failed call answers the error it names (its message when it has one). */
static void fail_op(cd_api_op *a, cd_err err, const char *json, size_t len)
{
    json_t *m = json ? json_loadb(json, len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(m, "message"));
    cd_http__api_error(a->cb, a->ud, err, msg ? msg : cd_err_name(err));
    json_decref(m);
    cd_http__api_op_free(a);
}

/* The script's reply: {"status":NNN,"body":<json>}, or an error {"err":..,"message":..}. */
static void on_api_reply(void *ud, cd_err err, const char *json, size_t len)
{
    cd_api_op *a = ud;
    if (err != CD_ERR_OK) {
        fail_op(a, err, json, len);
        return;
    }
    static const char head[] = "{\"status\":";
    int status = 500;
    const char *body = NULL;
    if (len > sizeof head && memcmp(json, head, sizeof head - 1) == 0) {
        status = atoi(json + sizeof head - 1);
        body = strstr(json, ",\"body\":");
    }
    if (!body || json[len - 1] != '}') {
        cd_http__api_error(a->cb, a->ud, CD_ERR_INTERNAL, "bad reply");
        cd_http__api_op_free(a);
        return;
    }
    body += 8;
    size_t blen = (size_t)(json + len - 1 - body);
    if (status == 200 && a->family->reply && a->family->reply(a, body, blen))
        return;
    char *copy = cd_strndup(body, blen);
    a->cb(a->ud, status, copy, blen, NULL);
    cd_free(copy);
    cd_http__api_op_free(a);
}

bool cd_http__api_is_public(const char *path)
{
    return strncmp(path, "/api/v1/public/", 15) == 0;
}

bool cd_http__api_wants_password(const cd_api_call *call)
{
    const cd_api_family *f;
    const cd_api_route *r = cd_http__api_route(call, &f);
    return r && (strcmp(r->op, "admin_agent_create") == 0 || strcmp(r->op, "admin_agent_patch") == 0);
}

int cd_http__api_password(const char *body, size_t len, size_t min, char *out, size_t outsz)
{
    json_t *o = body ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *pw = json_object_get(o, "password");
    int rc = 0;
    if (pw) {
        size_t n = json_string_length(pw);
        if (!json_is_string(pw) || n < min || n > 128 || n >= outsz || memchr(json_string_value(pw), 0, n))
            rc = -1;
        else {
            memcpy(out, json_string_value(pw), n + 1);
            rc = 1;
        }
    }
    json_decref(o);
    return rc;
}

/* The body as params: a JSON object (or {} without a body), NULL when it is not one. */
static json_t *body_params(const cd_api_call *call, const cd_api_route *r)
{
    if (!r->body)
        return json_object();
    json_error_t e;
    json_t *params = call->body && call->body_len ? json_loadb(call->body, call->body_len, JSON_REJECT_DUPLICATES, &e)
                                                  : json_object();
    /* admin_sla_put takes the whole body as the SLA document (its family checks it) */
    if (!json_is_object(params) && !(params && strcmp(r->op, "admin_sla_put") == 0)) {
        json_decref(params);
        return NULL;
    }
    return params;
}

/* Query fragments "k=v" fill what the body did not set, bound path segments override,
 * and nothing a client sent may pose as a password hash or a validated "raw_*" field. */
static void add_call_params(json_t *params, const cd_api_call *call, const cd_api_route *r, const char *const *vals,
                            int nvals)
{
    for (size_t i = 0; i < call->nargs; i++) {
        const char *eq = strchr(call->args[i], '=');
        if (!eq || eq == call->args[i])
            continue;
        char k[64];
        size_t kl = (size_t)(eq - call->args[i]);
        if (kl >= sizeof k)
            continue;
        memcpy(k, call->args[i], kl);
        k[kl] = '\0';
        if (strncmp(k, "raw_", 4) == 0) /* set here only, from validated bodies */
            continue;
        if (!json_object_get(params, k))
            json_object_set_new(params, k, json_string(eq + 1));
    }
    for (int i = 0; i < nvals && r->params[i]; i++)
        json_object_set_new(params, r->params[i], json_string(vals[i]));
    json_object_del(params, "password");
    json_object_del(params, "pw_hash");
    if (call->pw_hash)
        json_object_set_new(params, "pw_hash", json_string(call->pw_hash));
}

/* ---- site calls (docs/keyspace.md "Calls over several slots") ---- */

static bool site_key_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= 64 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* Calls the script in the next site of a->sites; false when none is left. */
static bool next_site(cd_api_op *a)
{
    if (a->next_site >= json_array_size(a->sites))
        return false;
    const char *site = json_string_value(json_array_get(a->sites, a->next_site++));
    site = site_key_ok(site) ? site : "";
    cd_key_site(&a->key, cd_store_prefix(a->st), site, "");
    const char *iv = site[0] && a->intervals ? a->intervals(a->intervals_ctx, site) : NULL;
    cd_free(a->args[CD_API_ARG_IV]);
    a->args[CD_API_ARG_IV] = cd_strdup(iv ? iv : "");
    if (call_script(a, (const char *const *)a->args) != 0) {
        cd_http__api_error(a->cb, a->ud, CD_ERR_UNAVAILABLE, "storage unavailable, retry");
        cd_http__api_op_free(a);
    }
    return true;
}

/* A merged row, and the order of CD_API_SITES: by the rows' keys, numbers highest first
 * and texts in byte order, then as received. */
typedef struct {
    double num;
    const char *text;
    size_t at;
    json_t *row;
} merged_row;

static int by_key(const void *x, const void *y)
{
    const merged_row *a = x, *b = y;
    int c = a->text && b->text ? strcmp(a->text, b->text) : 0;
    if (c != 0)
        return c;
    if (a->num != b->num)
        return a->num > b->num ? -1 : 1;
    return a->at < b->at ? -1 : a->at > b->at;
}

/* Every site answered its part: the rows, each id once (the first site's), in order,
 * paged as the parts said (page, per_page, total summed) or cut at their limit. */
static void merge_parts(cd_api_op *a, json_int_t total)
{
    size_t n = json_array_size(a->rows), kept = 0;
    merged_row *m = cd_calloc(n ? n : 1, sizeof *m);
    json_t *ids = json_object();
    for (size_t i = 0; i < n; i++) {
        json_t *row = json_array_get(a->rows, i);
        const char *id = json_string_value(json_array_get(row, 1));
        if (id && id[0] && json_object_get(ids, id))
            continue;
        if (id && id[0])
            json_object_set_new(ids, id, json_true());
        json_t *key = json_array_get(row, 0);
        m[kept++] = (merged_row){json_number_value(key), json_string_value(key), i, row};
    }
    json_decref(ids);
    if (a->slot == CD_API_SITES)
        qsort(m, kept, sizeof *m, by_key);
    json_int_t page = json_integer_value(json_object_get(a->last, "page"));
    json_int_t per = json_integer_value(json_object_get(a->last, "per_page"));
    json_int_t limit = json_integer_value(json_object_get(a->last, "limit"));
    size_t from = 0, to = kept;
    if (per > 0) {
        from = (size_t)((page - 1) * per);
        to = (size_t)(page * per);
    } else if (limit > 0) {
        to = (size_t)limit;
    }
    to = to < kept ? to : kept;
    cd_buf out;
    cd_buf_init(&out);
    cd_buf_printf(&out, "{\"%s\":[", json_string_value(json_object_get(a->last, "list")));
    for (size_t i = from; i < to; i++)
        cd_buf_printf(&out, "%s%s", i > from ? "," : "", json_string_value(json_array_get(m[i].row, 2)));
    cd_buf_printf(&out, "]");
    if (per > 0)
        cd_buf_printf(&out, ",\"page\":%lld,\"per_page\":%lld,\"total\":%lld", (long long)page, (long long)per,
                      (long long)(json_object_get(a->last, "total") ? total : (json_int_t)kept));
    cd_buf_printf(&out, "}");
    a->cb(a->ud, 200, out.data, out.len, NULL);
    cd_buf_cleanup(&out);
    cd_free(m);
    cd_http__api_op_free(a);
}

/* The steps in sites a gathered operation's reply names ({"then":{"agent_id","sv",
 * "steps":[{"site","join"}…]}}), one call each, in order; then the answer it kept. */
static void next_step(cd_api_op *a);

static void on_step(void *ud, cd_err err, const char *json, size_t len)
{
    cd_api_op *a = ud;
    if (err != CD_ERR_OK) {
        fail_op(a, err, json, len);
        return;
    }
    next_step(a);
}

static void next_step(cd_api_op *a)
{
    json_t *then = json_object_get(a->last, "then");
    json_t *step = json_array_get(json_object_get(then, "steps"), a->next_site++);
    if (!step) {
        json_t *body = json_object_get(a->last, "answer");
        a->cb(a->ud, (int)json_integer_value(json_object_get(a->last, "status")), json_string_value(body),
              json_string_length(body), NULL);
        cd_http__api_op_free(a);
        return;
    }
    json_t *params = json_pack("{s:O,s:O,s:O,s:O,s:O}", "agent_id", json_object_get(then, "agent_id"), "sv",
                               json_object_get(then, "sv"), "join", json_object_get(step, "join"), "name",
                               json_object_get(then, "name"), "role", json_object_get(then, "role"));
    char *ptext = json_dumps(params, JSON_COMPACT);
    json_decref(params);
    const char *site = json_string_value(json_object_get(step, "site"));
    cd_key_site(&a->key, cd_store_prefix(a->st), site_key_ok(site) ? site : "", "");
    const char *args[CD_API_NARGS_SITE];
    for (size_t i = 0; i < CD_ARRAY_LEN(args); i++)
        args[i] = a->args[i];
    args[0] = "admin_agent_site";
    args[2] = ptext ? ptext : "{}";
    args[CD_API_ARG_MODE] = "as";
    args[CD_API_ARG_PART] = "";
    args[CD_API_ARG_IV] = "";
    const char *keys[] = {a->key.s};
    if (cd_store_fcall(a->st, a->family->script, 1, keys, CD_API_NARGS_SITE, args, NULL, on_step, a) != 0) {
        cd_http__api_error(a->cb, a->ud, CD_ERR_UNAVAILABLE, "storage unavailable, retry");
        cd_http__api_op_free(a);
    }
    free(ptext);
}

/* The reply of a gathered operation's call in {a}: steps in sites first when it names
 * any (the answer waits for them), else the answer. */
static void on_gathered(void *ud, cd_err err, const char *json, size_t len)
{
    cd_api_op *a = ud;
    static const char then[] = ",\"then\":";
    const char *t = err == CD_ERR_OK && len > 16 ? strstr(json, then) : NULL;
    const char *body = t ? strstr(json, ",\"body\":") : NULL;
    if (!t || !body || json[len - 1] != '}') {
        on_api_reply(a, err, json, len);
        return;
    }
    json_t *r = json_loadb(json, len, 0, NULL);
    json_decref(a->last);
    a->last = json_pack("{s:O,s:s%,s:O}", "status", json_object_get(r, "status"), "answer", body + 8,
                        (size_t)(json + len - 1 - (body + 8)), "then", json_object_get(r, "then"));
    json_decref(r);
    a->next_site = 0;
    if (!a->last) {
        cd_http__api_error(a->cb, a->ud, CD_ERR_INTERNAL, "bad reply");
        cd_http__api_op_free(a);
        return;
    }
    next_step(a);
}

/* Every site gave its facts: the operation runs in the caller's slot {a} with them. */
static void gather_done(cd_api_op *a)
{
    char *facts = json_dumps(a->rows ? a->rows : json_array(), JSON_COMPACT);
    const char *args[CD_API_ARG_CALLER + 1];
    for (size_t i = 0; i < CD_API_ARG_CALLER; i++)
        args[i] = a->args[i];
    args[CD_API_ARG_MODE] = "after";
    args[CD_API_ARG_CALLER] = facts ? facts : "[]";
    cd_key_agent(&a->key, cd_store_prefix(a->st), a->args[1]);
    const char *keys[] = {a->key.s, a->revoked.s};
    if (cd_store_fcall(a->st, a->script, 2, keys, CD_ARRAY_LEN(args), args, NULL, on_gathered, a) != 0) {
        cd_http__api_error(a->cb, a->ud, CD_ERR_UNAVAILABLE, "storage unavailable, retry");
        cd_http__api_op_free(a);
    }
    free(facts);
}

/* One site's answer to a call over several sites: a part of a list ({"list":…,"part":
 * [[number, id, JSON], …], …}) waits for the others; CD_API_FIRST asks the next site
 * after a 404; anything else is the answer. */
static void on_part(void *ud, cd_err err, const char *json, size_t len)
{
    cd_api_op *a = ud;
    if (a->slot == CD_API_FIRST && err == CD_ERR_NOT_FOUND && next_site(a))
        return;
    json_t *r = err == CD_ERR_OK ? json_loadb(json, len, 0, NULL) : NULL;
    json_t *body = json_object_get(r, "body");
    json_t *rows = json_object_get(body, "part");
    if (!json_is_array(rows) || json_integer_value(json_object_get(r, "status")) != 200) {
        json_decref(r);
        on_api_reply(a, err, json, len);
        return;
    }
    if (!a->rows)
        a->rows = json_array();
    if (a->slot == CD_API_GATHER || a->slot == CD_API_GATHER_ONE) {
        json_array_append(a->rows, body);
        json_decref(r);
        if (!next_site(a))
            gather_done(a);
        return;
    }
    json_array_extend(a->rows, rows);
    json_int_t total = json_integer_value(json_object_get(a->last, "merged_total")) +
                       json_integer_value(json_object_get(body, "total"));
    json_decref(a->last);
    a->last = json_incref(body);
    json_object_set_new(a->last, "merged_total", json_integer(total));
    json_decref(r);
    if (!next_site(a))
        merge_parts(a, total);
}

/* The sites a route's calls run in: the one the params name, the conversation's, or the
 * caller's (its first, for CD_API_SITE); one "" (no site, which no caller has) when none. */
static json_t *call_sites(const cd_api_op *a, json_t *params, const json_t *caller_sites)
{
    bool one = a->slot == CD_API_SITE || a->slot == CD_API_GATHER_ONE;
    json_t *named = json_object_get(params, one ? "site_key" : "site");
    if (!json_is_string(named) && one)
        named = json_object_get(params, "site");
    const char *conv = json_string_value(json_object_get(params, "conversation"));
    json_t *out = json_array();
    if (json_is_string(named))
        json_array_append(out, named);
    else if (a->slot == CD_API_SITE && conv && cd_key_cid_site(conv))
        json_array_append_new(out, json_string(cd_key_cid_site(conv)));
    else if (one && json_array_size(caller_sites) > 0)
        json_array_append(out, json_array_get(caller_sites, 0));
    else if (!one)
        json_array_extend(out, (json_t *)caller_sites);
    if (json_array_size(out) == 0)
        json_array_append_new(out, json_string(""));
    return out;
}

/* POST admin/sites in three single-slot steps (the admin CLI's order, api.lua "the admin
 * CLI's single-slot steps"): 0 the key joins the sites set ({g}), 1 the site's record with
 * the caller as its first agent (its answer is the call's), 2 the caller's record names
 * the site ({a}). a->next_site counts the steps. */
static void new_site_step(cd_api_op *a);

static void on_new_site(void *ud, cd_err err, const char *json, size_t len)
{
    cd_api_op *a = ud;
    if (err != CD_ERR_OK) {
        fail_op(a, err, json, len);
        return;
    }
    if (a->next_site == 2) { /* the site's answer, given once the caller's record names it */
        const char *body = strstr(json, ",\"body\":");
        json_t *r = json_loadb(json, len, 0, NULL);
        json_decref(a->last);
        a->last = body ? json_pack("{s:O,s:s%}", "status", json_object_get(r, "status"), "answer", body + 8,
                                   (size_t)(json + len - 1 - (body + 8)))
                       : NULL;
        json_decref(r);
    }
    if (a->next_site == 3) {
        json_t *body = json_object_get(a->last, "answer");
        a->cb(a->ud, (int)json_integer_value(json_object_get(a->last, "status")), json_string_value(body),
              json_string_length(body), NULL);
        cd_http__api_op_free(a);
        return;
    }
    new_site_step(a);
}

static void new_site_step(cd_api_op *a)
{
    static const char *const ops[] = {"admin_site_index", "admin_site_create", "admin_site_joined"};
    int step = (int)a->next_site++;
    json_t *params = json_loads(a->args[2], 0, NULL);
    const char *key = json_string_value(json_object_get(params, "key"));
    const char *args[CD_API_NARGS_SITE];
    for (size_t i = 0; i < CD_ARRAY_LEN(args); i++)
        args[i] = a->args[i];
    args[0] = ops[step];
    const char *keys[2] = {a->key.s, a->revoked.s};
    int nkeys = 1, nargs = CD_API_NARGS_SITE;
    if (step == 0)
        cd_key_global(&a->key, cd_store_prefix(a->st), "sites");
    else if (step == 1)
        cd_key_site(&a->key, cd_store_prefix(a->st), site_key_ok(key) ? key : "", "");
    else {
        cd_key_agent(&a->key, cd_store_prefix(a->st), a->args[1]);
        nkeys = 2;
        nargs = CD_API_NARGS;
        args[CD_API_ARG_MODE] = ""; /* the caller's own slot: its token is checked again */
    }
    if (!a->last && step == 2) {
        json_decref(params);
        cd_http__api_error(a->cb, a->ud, CD_ERR_INTERNAL, "bad reply");
        cd_http__api_op_free(a);
        return;
    }
    int rc = cd_store_fcall(a->st, "api", nkeys, keys, nargs, args, NULL, on_new_site, a);
    json_decref(params);
    if (rc != 0) {
        cd_http__api_error(a->cb, a->ud, CD_ERR_UNAVAILABLE, "storage unavailable, retry");
        cd_http__api_op_free(a);
    }
}

/* The caller's record from the auth call ({a}): the site calls follow with it. */
static void on_auth(void *ud, cd_err err, const char *json, size_t len)
{
    cd_api_op *a = ud;
    if (err != CD_ERR_OK) {
        fail_op(a, err, json, len);
        return;
    }
    json_t *r = json_loadb(json, len, 0, NULL);
    json_t *caller = json_object_get(r, "body");
    json_t *params = json_loads(a->args[2], 0, NULL);
    if (!json_is_object(caller) || !json_is_object(params)) {
        json_decref(r);
        json_decref(params);
        cd_http__api_error(a->cb, a->ud, CD_ERR_INTERNAL, "bad reply");
        cd_http__api_op_free(a);
        return;
    }
    const char *st = json_string_value(json_object_get(caller, "sites"));
    json_t *caller_sites = st ? json_loads(st, 0, NULL) : NULL;
    if (!json_is_array(caller_sites)) {
        json_decref(caller_sites);
        caller_sites = json_array();
    }
    a->sites = call_sites(a, params, caller_sites);
    char *ctext = json_dumps(caller, JSON_COMPACT);
    cd_free(a->args[CD_API_ARG_MODE]);
    a->args[CD_API_ARG_MODE] = cd_strdup("as");
    a->args[CD_API_ARG_CALLER] = cd_strdup(ctext ? ctext : "{}");
    a->args[CD_API_ARG_PART] = cd_strdup(a->slot == CD_API_SITE || a->slot == CD_API_NEW_SITE ? "" : "part");
    a->args[CD_API_ARG_IV] = cd_strdup("");
    free(ctext);
    json_decref(caller_sites);
    json_decref(params);
    json_decref(r);
    if (a->slot == CD_API_NEW_SITE)
        new_site_step(a);
    else
        next_site(a);
}

/* Runs the route's script with params (taken). */
static void start(cd_api_op *a, cd_store *st, const cd_config *cfg, const cd_api_call *call, const cd_api_route *r,
                  json_t *params)
{
    const char *site = json_string_value(json_object_get(params, "site"));
    if (call->agent_id[0]) {
        cd_key_agent(&a->key, cd_store_prefix(st), call->agent_id);
        cd_key_agent_revoked(&a->revoked, cd_store_prefix(st), call->agent_id);
    } else
        cd_key_site(&a->key, cd_store_prefix(st), site ? site : "", "");
    char *ptext = json_dumps(params, JSON_COMPACT);
    json_decref(params);
    if (!ptext) {
        cd_http__api_error(a->cb, a->ud, CD_ERR_BAD_REQUEST, "parameters are not valid UTF-8");
        cd_http__api_op_free(a);
        return;
    }
    char now[24], fresh[64], retain[24], epoch[24], exp[24], audit_days[24];
    snprintf(now, sizeof now, "%llu", (unsigned long long)cd_now_ms());
    cd_id_new(a->family->id_prefix ? a->family->id_prefix : "m", fresh, sizeof fresh);
    snprintf(retain, sizeof retain, "%lld", (long long)cfg->history_retain);
    snprintf(epoch, sizeof epoch, "%lld", (long long)call->token_epoch);
    snprintf(exp, sizeof exp, "%lld", (long long)call->token_exp);
    snprintf(audit_days, sizeof audit_days, "%lld", (long long)cfg->audit_retain_days);
    /* the eleventh ("operator") is the admin CLI's only; then the audit log's two */
    const char *args[] = {a->op,
                          call->agent_id,
                          ptext,
                          now,
                          fresh,
                          retain,
                          epoch,
                          call->jti ? call->jti : "",
                          exp,
                          "",
                          call->addr ? call->addr : "",
                          audit_days};
    a->st = st;
    snprintf(a->script, sizeof a->script, "%s%s", a->family->script, strcmp(r->method, "GET") == 0 ? "_ro" : "");
    a->slot = call->agent_id[0] ? (r->slot ? r->slot : a->family->slot) : 0;
    for (size_t i = 0; (a->keep_args || a->slot) && i < CD_ARRAY_LEN(args); i++)
        a->args[i] = cd_strdup(args[i]);
    int rc;
    if (call->api_token) /* an API token: its check in its site's slot first (tokens.c) */
        rc = cd_http__api_token_auth(a, call, cd_http__api_token_scope(r, a->slot), args, on_auth);
    else if (a->slot) { /* the token check in the caller's slot first (on_auth) */
        const char *auth_args[CD_API_NARGS];
        memcpy(auth_args, args, sizeof auth_args);
        auth_args[0] = "auth";
        auth_args[2] = "{}";
        const char *keys[] = {a->key.s, a->revoked.s};
        rc = cd_store_fcall(st, "api_ro", 2, keys, CD_API_NARGS, auth_args, NULL, on_auth, a);
    } else
        rc = call_script(a, args);
    if (rc != 0) {
        cd_http__api_error(a->cb, a->ud, CD_ERR_UNAVAILABLE, "storage unavailable, retry");
        cd_http__api_op_free(a);
    }
    free(ptext);
}

void cd_http__api_run(cd_store *st, const cd_config *cfg, const cd_api_call *call, cd_api_cb cb, void *ud)
{
    char buf[256], err[512];
    const char *vals[4];
    int nvals = 0;
    bool known = false;
    const cd_api_family *family = NULL;
    const cd_api_route *r =
        strlen(call->path) < sizeof buf ? find_route(call, buf, sizeof buf, vals, &nvals, &known, &family) : NULL;
    if (!r) {
        cd_http__api_error(cb, ud, known ? CD_ERR_BAD_REQUEST : CD_ERR_NOT_FOUND,
                           known ? "method not allowed" : "no such resource");
        return;
    }
    for (int i = 0; i < nvals; i++) {
        if (!id_ok(vals[i])) {
            cd_http__api_error(cb, ud, CD_ERR_BAD_REQUEST, "invalid id in path (1-128 of A-Z a-z 0-9 _ . -)");
            return;
        }
    }
    /* an API token's routes (tokens.c) are known before anything is read or checked */
    if (call->api_token && !cd_http__api_token_scope(r, r->slot ? r->slot : family->slot)) {
        cd_http__api_error(cb, ud, CD_ERR_FORBIDDEN, "API tokens cannot call this endpoint: sign in");
        return;
    }
    json_t *params = body_params(call, r);
    if (!params) {
        cd_http__api_error(cb, ud, CD_ERR_BAD_REQUEST, "body must be a JSON object");
        return;
    }
    cd_api_op *a = cd_calloc(1, sizeof *a);
    a->cb = cb;
    a->ud = ud;
    a->family = family;
    a->intervals = call->intervals;
    a->intervals_ctx = call->intervals_ctx;
    a->cfg = cfg;
    cd_strlcpy(a->op, r->op, sizeof a->op);
    if (family->prepare && family->prepare(a, call, r, &params, err, sizeof err) != 0) {
        json_decref(params);
        cd_http__api_error(cb, ud, CD_ERR_BAD_REQUEST, err);
        cd_http__api_op_free(a);
        return;
    }
    add_call_params(params, call, r, vals, nvals);
    if (family->complete)
        family->complete(a, params);
    start(a, st, cfg, call, r, params);
}
