/* The HTTP API: routes (method + path) to operations of store/lua/api.lua; query and
 * body become one JSON params object. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/clock.h"
#include "chatdesk/conv.h"
#include "chatdesk/log.h"
#include "chatdesk/rules.h"
#include "kb_int.h"

typedef struct route {
    const char *method;
    const char *pattern; /* segments after /api/v1/, ":x" binds a parameter */
    const char *op;
    const char *params[2]; /* names bound by ":" segments, in order */
    bool body;
    const char *script; /* store/lua/<script>.lua; NULL: "api" */
} route;

static const route routes[] = {
    {"GET", "me", "me", {0}, false, NULL},
    {"POST", "logout", "logout", {0}, false, NULL},
    {"GET", "tickets", "tickets_list", {0}, false, NULL},
    {"GET", "conversations", "conversations_list", {0}, false, NULL},
    {"GET", "agents", "agents_list", {0}, false, NULL},
    {"GET", "tickets/:", "ticket_get", {"number"}, false, NULL},
    {"PATCH", "tickets/:", "ticket_patch", {"number"}, true, NULL},
    {"GET", "visitors/:", "visitor_get", {"id"}, false, NULL},
    {"GET", "supervisor", "supervisor", {0}, false, NULL},
    {"GET", "canned", "canned_list", {0}, false, NULL},
    {"POST", "canned", "canned_create", {0}, true, NULL},
    {"PATCH", "canned/:", "canned_patch", {"id"}, true, NULL},
    {"DELETE", "canned/:", "canned_delete", {"id"}, false, NULL},
    {"GET", "admin/sites", "admin_sites_list", {0}, false, NULL},
    {"POST", "admin/sites", "admin_site_create", {0}, true, NULL},
    {"PATCH", "admin/sites/:", "admin_site_patch", {"site_key"}, true, NULL},
    {"GET", "admin/sites/:/teams", "admin_teams_list", {"site_key"}, false, NULL},
    {"POST", "admin/sites/:/teams", "admin_team_create", {"site_key"}, true, NULL},
    {"GET", "admin/sites/:/sla", "admin_sla_get", {"site_key"}, false, NULL},
    {"PUT", "admin/sites/:/sla", "admin_sla_put", {"site_key"}, true, NULL},
    {"GET", "admin/agents", "admin_agents_list", {0}, false, NULL},
    {"POST", "admin/agents", "admin_agent_create", {0}, true, NULL},
    {"PATCH", "admin/agents/:", "admin_agent_patch", {"agent_id"}, true, NULL},
    /* Routes under "public/" need no token (agent id ""): read-only, for the widget. */
    /* ---- automation rules (api_rules.lua) ---- */
    {"GET", "admin/sites/:/rules", "rules_list", {"site_key"}, false, "api_rules"},
    {"POST", "admin/sites/:/rules", "rules_create", {"site_key"}, true, "api_rules"},
    {"POST", "admin/sites/:/rules/dry-run", "rules_dry_run", {"site_key"}, true, "api_rules"},
    {"POST", "admin/sites/:/rules/reorder", "rules_reorder", {"site_key"}, true, "api_rules"},
    {"PATCH", "admin/sites/:/rules/:", "rules_patch", {"site_key", "rule_id"}, true, "api_rules"},
    {"DELETE", "admin/sites/:/rules/:", "rules_delete", {"site_key", "rule_id"}, false, "api_rules"},
    {"PATCH", "admin/sites/:/teams/:", "team_patch", {"site_key", "team"}, true, "api_rules"},
    /* ---- webhooks (api_webhooks.lua) ---- */
    {"GET", "admin/sites/:/webhooks", "admin_webhooks_list", {"site_key"}, false, "api_webhooks"},
    {"POST", "admin/sites/:/webhooks", "admin_webhook_create", {"site_key"}, true, "api_webhooks"},
    {"GET", "admin/sites/:/webhooks/:", "admin_webhook_get", {"site_key", "webhook_id"}, false, "api_webhooks"},
    {"PATCH", "admin/sites/:/webhooks/:", "admin_webhook_patch", {"site_key", "webhook_id"}, true, "api_webhooks"},
    {"DELETE", "admin/sites/:/webhooks/:", "admin_webhook_delete", {"site_key", "webhook_id"}, false, "api_webhooks"},
    {"GET",
     "admin/sites/:/webhooks/:/deliveries",
     "admin_webhook_deliveries",
     {"site_key", "webhook_id"},
     false,
     "api_webhooks"},
    {"POST", "admin/sites/:/webhooks/:/test", "admin_webhook_test", {"site_key", "webhook_id"}, false, "api_webhooks"},
    {"POST",
     "admin/sites/:/deliveries/:/redeliver",
     "admin_delivery_redeliver",
     {"site_key", "delivery_id"},
     false,
     "api_webhooks"},
    /* ---- customer health alerts, notices (api_health.lua) ---- */
    {"GET", "alerts", "alerts_list", {0}, false, "api_health"},
    {"GET", "notices", "notices_list", {0}, false, "api_health"},
    /* ---- knowledge base (api_kb.lua) ---- */
    {"GET", "kb/sites/:/articles", "kb_list", {"site"}, false, "api_kb"},
    {"POST", "kb/sites/:/articles", "kb_create", {"site"}, true, "api_kb"},
    {"GET", "kb/sites/:/articles/:", "kb_get", {"site", "id"}, false, "api_kb"},
    {"PATCH", "kb/sites/:/articles/:", "kb_patch", {"site", "id"}, true, "api_kb"},
    {"DELETE", "kb/sites/:/articles/:", "kb_delete", {"site", "id"}, false, "api_kb"},
    {"GET", "kb/sites/:/categories", "kb_categories", {"site"}, false, "api_kb"},
    {"GET", "kb/sites/:/search", "kb_search", {"site"}, false, "api_kb"},
    {"GET", "kb/suggest", "kb_suggest", {0}, false, "api_kb"},
    {"GET", "public/sites/:/kb/search", "public_kb_search", {"site"}, false, "api_kb"},
    {"GET", "public/sites/:/kb/articles/:", "public_kb_get", {"site", "id"}, false, "api_kb"},
    /* ---- reports (api_reports.lua) ---- */
    {"GET", "reports/summary", "reports_summary", {0}, false, "api_reports"},
    {"GET", "reports/daily", "reports_daily", {0}, false, "api_reports"},
    {"GET", "reports/agents", "reports_agents", {0}, false, "api_reports"},
    {"GET", "reports/teams", "reports_teams", {0}, false, "api_reports"},
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

static const route *find_route(const cd_api_call *call, char *vals_buf, size_t vbsz, const char **vals, int *nvals,
                               bool *path_known)
{
    static const char prefix[] = "/api/v1/";
    *path_known = false;
    if (strncmp(call->path, prefix, sizeof prefix - 1) != 0)
        return NULL;
    for (size_t i = 0; i < CD_ARRAY_LEN(routes); i++) {
        cd_strlcpy(vals_buf, call->path + sizeof prefix - 1, vbsz);
        if (match(routes[i].pattern, vals_buf, vals, nvals)) {
            *path_known = true;
            if (strcmp(routes[i].method, call->method) == 0)
                return &routes[i];
        }
    }
    return NULL;
}

typedef struct api_op {
    cd_api_cb cb;
    void *ud;
    char op[32];
    bool csv; /* format=csv: render the reply's columns/rows as CSV */
    /* knowledge base: kb_suggest runs as kb_suggest_text, then (text tokenized here)
     * as kb_suggest with the same arguments */
    cd_store *st;
    char *args[9];
    cd_key key;     /* the key the call declares: the caller's agent record (public routes: the site) */
    cd_key revoked; /* and the caller's token deny-list (not on public routes) */
    char event[48]; /* rules_dry_run: the event type to pretend, "" = none */
} api_op;

static void api_op_free(api_op *a)
{
    for (size_t i = 0; i < CD_ARRAY_LEN(a->args); i++)
        cd_free(a->args[i]);
    cd_free(a);
}

static void on_api_reply(void *ud, cd_err err, const char *json, size_t len);

/* kb_suggest_text answered {"text":…}: tokenize it and run kb_suggest. */
static bool kb_suggest_next(api_op *a, const char *body, size_t blen)
{
    json_t *b = json_loadb(body, blen, 0, NULL);
    json_t *text = json_object_get(b, "text");
    json_t *params = json_loads(a->args[2], 0, NULL);
    bool ok = json_is_string(text) && json_is_object(params);
    if (ok) {
        cd_conv_kb_query_tokens(params, json_string_value(text), json_string_length(text));
        cd_free(a->args[0]);
        a->args[0] = cd_strdup("kb_suggest");
        char *ptext = json_dumps(params, JSON_COMPACT);
        cd_free(a->args[2]);
        a->args[2] = cd_strdup(ptext);
        free(ptext);
        cd_strlcpy(a->op, "kb_suggest", sizeof a->op);
        const char *keys[] = {a->key.s, a->revoked.s};
        ok = cd_store_fcall(a->st, "api_kb_ro", a->revoked.s[0] ? 2 : 1, keys, 9, (const char *const *)a->args, NULL,
                            on_api_reply, a) == 0;
    }
    json_decref(params);
    json_decref(b);
    return ok;
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

static void respond_error(cd_api_cb cb, void *ud, cd_err code, const char *message)
{
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", cd_err_name(code), "message", message);
    char *s = json_dumps(o, JSON_COMPACT);
    cb(ud, status_of(code), s, strlen(s), NULL, NULL, NULL);
    free(s);
    json_decref(o);
}

/* ---- reports as CSV (RFC 4180): the reply's "columns" name the fields of "rows" ---- */

static void csv_field(cd_buf *b, json_t *v)
{
    if (json_is_integer(v)) {
        cd_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        cd_buf_printf(b, "%.10g", json_real_value(v));
    } else if (json_is_true(v) || json_is_false(v)) {
        cd_buf_append_str(b, json_is_true(v) ? "true" : "false");
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        /* a text starting like a formula is not run by spreadsheets: prefix a quote */
        bool formula = strchr("=+-@\t\r", s[0]) && s[0];
        cd_buf_append(b, "\"", 1);
        if (formula)
            cd_buf_append(b, "'", 1);
        for (; *s; s++) {
            if (*s == '"')
                cd_buf_append(b, "\"", 1);
            cd_buf_append(b, s, 1);
        }
        cd_buf_append(b, "\"", 1);
    } /* null: empty field */
}

/* The CSV of a reports reply body, or NULL if it has no columns/rows. Caller frees. */
static char *reports_csv(const char *body, size_t len, size_t *outlen)
{
    json_t *o = json_loadb(body, len, 0, NULL);
    json_t *cols = json_object_get(o, "columns"), *rows = json_object_get(o, "rows");
    if (!json_is_array(cols) || !json_is_array(rows)) {
        json_decref(o);
        return NULL;
    }
    cd_buf b;
    cd_buf_init(&b);
    size_t i, j;
    json_t *c, *r;
    json_array_foreach(cols, i, c)
    {
        if (i)
            cd_buf_append(&b, ",", 1);
        csv_field(&b, c);
    }
    cd_buf_append(&b, "\r\n", 2);
    json_array_foreach(rows, j, r)
    {
        json_array_foreach(cols, i, c)
        {
            if (i)
                cd_buf_append(&b, ",", 1);
            csv_field(&b, json_object_get(r, json_string_value(c)));
        }
        cd_buf_append(&b, "\r\n", 2);
    }
    json_decref(o);
    *outlen = b.len;
    char *out = cd_strndup(b.data ? b.data : "", b.len);
    cd_buf_cleanup(&b);
    return out;
}

/* ---- automation rules: dry run evaluated here, over the site's business hours ---- */
static void rules_dry_run_reply(api_op *a, const char *body, size_t blen)
{
    json_t *b = json_loadb(body, blen, 0, NULL);
    json_t *sla = json_loads(
        json_string_value(json_object_get(b, "sla")) ? json_string_value(json_object_get(b, "sla")) : "null", 0, NULL);
    json_t *calj = json_object_get(sla, "calendar");
    char *caltext = calj ? json_dumps(calj, JSON_COMPACT) : NULL;
    cd_sla_calendar cal;
    char err[200];
    if (cd_sla_calendar_parse(caltext, &cal, err, sizeof err) != 0)
        cd_sla_calendar_parse(NULL, &cal, err, sizeof err);
    free(caltext);
    json_decref(sla);
    json_decref(b);
    int64_t now = (int64_t)cd_now_ms();
    cd_buf iv;
    cd_buf_init(&iv);
    cd_sla_intervals(&cal, now - 86400000, now + 86400000, &iv);
    char *out = cd_rules_dry_run(body, blen, a->event[0] ? a->event : NULL, now, iv.data ? iv.data : "*");
    cd_buf_cleanup(&iv);
    if (out)
        a->cb(a->ud, 200, out, strlen(out), NULL, NULL, NULL);
    else
        respond_error(a->cb, a->ud, CD_ERR_INTERNAL, "bad reply");
    cd_free(out);
    api_op_free(a);
}

/* Rules are validated here (server/rules) and reach api_rules.lua with their parts as
 * JSON text. Returns 0, or -1 after answering 400. */
static int rules_prepare(const cd_api_call *call, const route *r, json_t *params, api_op *a, cd_api_cb cb, void *ud)
{
    char err[512];
    if (strcmp(r->op, "rules_dry_run") == 0) {
        json_t *ev = json_object_get(params, "event");
        if (ev && !json_is_null(ev) && !cd_rules_event_type_ok(json_string_value(ev))) {
            respond_error(cb, ud, CD_ERR_BAD_REQUEST, "event must be an event type rules trigger on");
            return -1;
        }
        cd_strlcpy(a->event, json_is_string(ev) ? json_string_value(ev) : "", sizeof a->event);
        return 0;
    }
    if (strcmp(r->op, "rules_create") != 0 && strcmp(r->op, "rules_patch") != 0)
        return 0;
    if (cd_rules_validate(call->body ? call->body : "{}", call->body ? call->body_len : 2,
                          strcmp(r->op, "rules_patch") == 0, err, sizeof err) != 0) {
        respond_error(cb, ud, CD_ERR_BAD_REQUEST, err);
        return -1;
    }
    static const char *const parts[] = {"trigger", "conditions", "actions"};
    for (size_t i = 0; i < CD_ARRAY_LEN(parts); i++) {
        json_t *v = json_object_get(params, parts[i]);
        if (!v)
            continue;
        char key[32], *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(key, sizeof key, "raw_%s", parts[i]);
        json_object_set_new(params, key, json_string(text));
        free(text);
    }
    return 0;
}

static void on_api_reply(void *ud, cd_err err, const char *json, size_t len)
{
    api_op *a = ud;
    if (err != CD_ERR_OK) {
        /* json: {"err":..,"message":..} from the script, or a short text */
        json_t *m = json ? json_loadb(json, len, 0, NULL) : NULL;
        const char *msg = json_string_value(json_object_get(m, "message"));
        respond_error(a->cb, a->ud, err, msg ? msg : cd_err_name(err));
        json_decref(m);
        api_op_free(a);
        return;
    }
    /* {"status":NNN,"body":<json>} */
    static const char head[] = "{\"status\":";
    int status = 500;
    const char *body = NULL;
    if (len > sizeof head && memcmp(json, head, sizeof head - 1) == 0) {
        status = atoi(json + sizeof head - 1);
        body = strstr(json, ",\"body\":");
    }
    if (!body || json[len - 1] != '}') {
        respond_error(a->cb, a->ud, CD_ERR_INTERNAL, "bad reply");
        api_op_free(a);
        return;
    }
    body += 8;
    size_t blen = (size_t)(json + len - 1 - body);
    if (status == 200 && strcmp(a->op, "kb_suggest_text") == 0) {
        if (!kb_suggest_next(a, body, blen)) {
            respond_error(a->cb, a->ud, CD_ERR_UNAVAILABLE, "storage unavailable, retry");
            api_op_free(a);
        }
        return;
    }
    if (strcmp(a->op, "rules_dry_run") == 0 && status == 200) {
        rules_dry_run_reply(a, body, blen);
        return;
    }
    char *copy = cd_strndup(body, blen);
    char sync_cid[160] = "", sync_site[80] = "";
    if (strcmp(a->op, "ticket_patch") == 0) {
        json_t *b = json_loadb(copy, blen, 0, NULL);
        json_t *t = json_object_get(b, "ticket");
        const char *id = json_string_value(json_object_get(t, "id"));
        const char *site = json_string_value(json_object_get(t, "site"));
        if (id && site) {
            cd_strlcpy(sync_cid, id, sizeof sync_cid);
            cd_strlcpy(sync_site, site, sizeof sync_site);
        }
        json_decref(b);
    }
    size_t csvlen = 0;
    char *csv = a->csv && status == 200 ? reports_csv(copy, blen, &csvlen) : NULL;
    if (csv)
        a->cb(a->ud, status, csv, csvlen, NULL, NULL, "text/csv; charset=utf-8");
    else
        a->cb(a->ud, status, copy, blen, sync_cid[0] ? sync_cid : NULL, sync_site[0] ? sync_site : NULL, NULL);
    cd_free(csv);
    cd_free(copy);
    api_op_free(a);
}

bool cd_conv_api_is_public(const char *path)
{
    return strncmp(path, "/api/v1/public/", 15) == 0;
}

bool cd_conv_api_wants_password(const cd_api_call *call)
{
    char buf[256];
    const char *vals[4];
    int n;
    bool known;
    const route *r = find_route(call, buf, sizeof buf, vals, &n, &known);
    return r && (strcmp(r->op, "admin_agent_create") == 0 || strcmp(r->op, "admin_agent_patch") == 0);
}

bool cd_conv_api_webhook_url(const cd_api_call *call, char *url, size_t urlsz)
{
    char buf[256];
    const char *vals[4];
    int n;
    bool known;
    const route *r = find_route(call, buf, sizeof buf, vals, &n, &known);
    if (!r || (strcmp(r->op, "admin_webhook_create") != 0 && strcmp(r->op, "admin_webhook_patch") != 0))
        return false;
    json_t *o = call->body ? json_loadb(call->body, call->body_len, 0, NULL) : NULL;
    json_t *u = json_object_get(o, "url");
    bool ok = json_is_string(u) && json_string_length(u) < urlsz;
    if (ok)
        memcpy(url, json_string_value(u), json_string_length(u) + 1);
    json_decref(o);
    return ok;
}

int cd_conv_api_password(const char *body, size_t len, size_t min, char *out, size_t outsz)
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

void cd_conv_api(cd_store *st, const cd_config *cfg, const cd_api_call *call, cd_api_cb cb, void *ud)
{
    char buf[256];
    const char *vals[4];
    int nvals = 0;
    bool known;
    if (strlen(call->path) >= sizeof buf) {
        respond_error(cb, ud, CD_ERR_NOT_FOUND, "no such resource");
        return;
    }
    const route *r = find_route(call, buf, sizeof buf, vals, &nvals, &known);
    if (!r) {
        respond_error(cb, ud, known ? CD_ERR_BAD_REQUEST : CD_ERR_NOT_FOUND,
                      known ? "method not allowed" : "no such resource");
        return;
    }
    json_t *params;
    if (r->body) {
        json_error_t e;
        params = call->body && call->body_len ? json_loadb(call->body, call->body_len, JSON_REJECT_DUPLICATES, &e)
                                              : json_object();
        if (!json_is_object(params) && !(r->op && strcmp(r->op, "admin_sla_put") == 0 && params)) {
            json_decref(params);
            respond_error(cb, ud, CD_ERR_BAD_REQUEST, "body must be a JSON object");
            return;
        }
    } else {
        params = json_object();
    }
    if (strcmp(r->op, "admin_sla_put") == 0) {
        /* the whole body is the SLA document; the calendar is checked here, where the
         * time zone database is */
        char err[200];
        json_t *cal = json_object_get(params, "calendar");
        char *caltext = cal ? json_dumps(cal, JSON_COMPACT) : NULL;
        cd_sla_calendar c;
        int bad = cal && cd_sla_calendar_parse(caltext, &c, err, sizeof err) != 0;
        free(caltext);
        if (bad) {
            json_decref(params);
            respond_error(cb, ud, CD_ERR_BAD_REQUEST, err);
            return;
        }
        char *raw = json_dumps(params, JSON_COMPACT);
        json_t *wrap = json_object();
        json_object_set_new(wrap, "sla", params);
        json_object_set_new(wrap, "raw_sla", json_string(raw));
        free(raw);
        params = wrap;
    }
    api_op *a = cd_calloc(1, sizeof *a);
    if (strncmp(r->op, "rules_", 6) == 0 && rules_prepare(call, r, params, a, cb, ud) != 0) {
        json_decref(params);
        api_op_free(a);
        return;
    }
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
    /* the stored hash is made here from "password", never taken from a client (body or query) */
    json_object_del(params, "pw_hash");
    if (cd_conv_kb_op(r->op))
        cd_conv_kb_tokens(params);
    if (call->pw_hash)
        json_object_set_new(params, "pw_hash", json_string(call->pw_hash));
    const char *site = json_string_value(json_object_get(params, "site"));
    if (call->agent_id[0]) {
        cd_key_agent(&a->key, cd_store_prefix(st), call->agent_id);
        cd_key_agent_revoked(&a->revoked, cd_store_prefix(st), call->agent_id);
    } else
        cd_key_site(&a->key, cd_store_prefix(st), site ? site : "", "");
    char *ptext = json_dumps(params, JSON_COMPACT);
    json_decref(params);
    if (!ptext) {
        api_op_free(a);
        respond_error(cb, ud, CD_ERR_BAD_REQUEST, "parameters are not valid UTF-8");
        return;
    }
    char now[24], fresh[64], retain[24], epoch[24], exp[24];
    snprintf(now, sizeof now, "%llu", (unsigned long long)cd_now_ms());
    cd_id_new(strncmp(r->op, "admin_agent", 11) == 0 ? "a"
              : strncmp(r->op, "canned", 6) == 0     ? "r"
                                                     : "m",
              fresh, sizeof fresh);
    snprintf(retain, sizeof retain, "%lld", (long long)cfg->history_retain);
    snprintf(epoch, sizeof epoch, "%lld", (long long)call->token_epoch);
    snprintf(exp, sizeof exp, "%lld", (long long)call->token_exp);
    const char *args[] = {r->op, call->agent_id, ptext, now, fresh, retain, epoch, call->jti ? call->jti : "", exp};
    a->cb = cb;
    a->ud = ud;
    cd_strlcpy(a->op, r->op, sizeof a->op);
    for (size_t i = 0; i < call->nargs && strncmp(r->op, "reports_", 8) == 0; i++)
        if (strcmp(call->args[i], "format=csv") == 0)
            a->csv = true;
    if (strcmp(r->op, "kb_suggest") == 0) {
        args[0] = "kb_suggest_text";
        cd_strlcpy(a->op, args[0], sizeof a->op);
        a->st = st;
        for (size_t i = 0; i < CD_ARRAY_LEN(a->args); i++)
            a->args[i] = cd_strdup(args[i]);
    }
    const char *keys[] = {a->key.s, a->revoked.s};
    /* a GET only reads: the script's no-writes twin, which a full Redis still runs */
    char script[48];
    snprintf(script, sizeof script, "%s%s", r->script ? r->script : "api", strcmp(r->method, "GET") == 0 ? "_ro" : "");
    if (cd_store_fcall(st, script, a->revoked.s[0] ? 2 : 1, keys, 9, args, NULL, on_api_reply, a) != 0) {
        api_op_free(a);
        respond_error(cb, ud, CD_ERR_UNAVAILABLE, "storage unavailable, retry");
    }
    free(ptext);
}
