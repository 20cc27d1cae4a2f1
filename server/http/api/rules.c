/* API family: automation rules of a site and the team settings they use
 * (store/lua/api_rules.lua, docs/rules.md). Rules are validated here by the pure rules
 * engine (server/rules) and reach the script with their parts as JSON text ("raw_*",
 * which no client can set); a dry run is evaluated here too, over the site's business
 * hours, on the rules and sample events the script read. */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/base.h"
#include "chatdesk/clock.h"
#include "chatdesk/rules.h"
#include "chatdesk/ticket.h"

static const cd_api_route rule_routes[] = {
    {"GET", "admin/sites/:/rules", "rules_list", {"site_key"}, false, 0},
    {"POST", "admin/sites/:/rules", "rules_create", {"site_key"}, true, 0},
    {"POST", "admin/sites/:/rules/dry-run", "rules_dry_run", {"site_key"}, true, 0},
    {"POST", "admin/sites/:/rules/reorder", "rules_reorder", {"site_key"}, true, 0},
    {"PATCH", "admin/sites/:/rules/:", "rules_patch", {"site_key", "rule_id"}, true, 0},
    {"DELETE", "admin/sites/:/rules/:", "rules_delete", {"site_key", "rule_id"}, false, 0},
    {"PATCH", "admin/sites/:/teams/:", "team_patch", {"site_key", "team"}, true, 0},
};

/* Returns 0, or -1 with err (400). */
static int rules_prepare(cd_api_op *a, const cd_api_call *call, const cd_api_route *r, json_t **pp, char *err,
                         size_t errsz)
{
    json_t *params = *pp;
    if (strcmp(r->op, "rules_dry_run") == 0) {
        json_t *ev = json_object_get(params, "event");
        if (ev && !json_is_null(ev) && !cd_rules_event_type_ok(json_string_value(ev))) {
            cd_strlcpy(err, "event must be an event type rules trigger on", errsz);
            return -1;
        }
        cd_strlcpy(a->event, json_is_string(ev) ? json_string_value(ev) : "", sizeof a->event);
        return 0;
    }
    if (strcmp(r->op, "rules_create") != 0 && strcmp(r->op, "rules_patch") != 0)
        return 0;
    if (cd_rules_validate(call->body ? call->body : "{}", call->body ? call->body_len : 2,
                          strcmp(r->op, "rules_patch") == 0, err, errsz) != 0)
        return -1;
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

/* rules_dry_run: the script read the rules, sample events and the site's SLA document. */
static bool rules_reply(cd_api_op *a, const char *body, size_t blen)
{
    if (strcmp(a->op, "rules_dry_run") != 0)
        return false;
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
        a->cb(a->ud, 200, out, strlen(out), NULL);
    else
        cd_http__api_error(a->cb, a->ud, CD_ERR_INTERNAL, "bad reply");
    cd_free(out);
    cd_http__api_op_free(a);
    return true;
}

const cd_api_family cd_http__api_rules = {
    "api_rules", NULL, rule_routes, CD_ARRAY_LEN(rule_routes), rules_prepare, NULL, rules_reply, CD_API_SITE,
};
