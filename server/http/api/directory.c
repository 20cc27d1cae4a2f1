/* API family: the directory an admin keeps: sites (with their teams and SLA document)
 * and agents (store/lua/api.lua). The SLA calendar is checked here, where the time zone
 * database is, and reaches the script both parsed and as its text. */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

#include "chatdesk/base.h"
#include "chatdesk/ticket.h"

static const cd_api_route site_routes[] = {
    {"GET", "admin/sites", "admin_sites_list", {0}, false, CD_API_SITES_ORDER},
    {"POST", "admin/sites", "admin_site_create", {0}, true, CD_API_NEW_SITE},
    {"PATCH", "admin/sites/:", "admin_site_patch", {"site_key"}, true, CD_API_SITE},
    {"GET", "admin/sites/:/teams", "admin_teams_list", {"site_key"}, false, CD_API_SITE},
    {"POST", "admin/sites/:/teams", "admin_team_create", {"site_key"}, true, CD_API_SITE},
    {"GET", "admin/sites/:/sla", "admin_sla_get", {"site_key"}, false, CD_API_SITE},
    {"PUT", "admin/sites/:/sla", "admin_sla_put", {"site_key"}, true, CD_API_SITE},
};

/* admin_sla_put: the whole body is the SLA document; it goes as {"sla":…,"raw_sla":"…"}. */
static int site_prepare(cd_api_op *a, const cd_api_call *call, const cd_api_route *r, json_t **params, char *err,
                        size_t errsz)
{
    (void)a;
    (void)call;
    if (strcmp(r->op, "admin_sla_put") != 0)
        return 0;
    json_t *cal = json_object_get(*params, "calendar");
    char *caltext = cal ? json_dumps(cal, JSON_COMPACT) : NULL;
    cd_sla_calendar c;
    int bad = cal && cd_sla_calendar_parse(caltext, &c, err, errsz) != 0;
    free(caltext);
    if (bad)
        return -1;
    char *raw = json_dumps(*params, JSON_COMPACT);
    json_t *wrap = json_object();
    json_object_set_new(wrap, "sla", *params);
    json_object_set_new(wrap, "raw_sla", json_string(raw));
    free(raw);
    *params = wrap;
    return 0;
}

const cd_api_family cd_http__api_sites = {
    "api", NULL, site_routes, CD_ARRAY_LEN(site_routes), site_prepare, NULL, NULL, CD_API_CALLER,
};

static const cd_api_route agent_routes[] = {
    {"GET", "agents", "agents_list", {0}, false, CD_API_SITES_ORDER},
    {"GET", "teams", "teams_list", {0}, false, CD_API_SITES_ORDER},
    {"GET", "admin/agents", "admin_agents_list", {0}, false, CD_API_GATHER},
    {"POST", "admin/agents", "admin_agent_create", {0}, true, CD_API_GATHER},
    {"PATCH", "admin/agents/:", "admin_agent_patch", {"agent_id"}, true, CD_API_GATHER},
};

const cd_api_family cd_http__api_agents = {
    "api", "a", agent_routes, CD_ARRAY_LEN(agent_routes), NULL, NULL, NULL, CD_API_CALLER,
};
