/* API family: a site's audit log for its admins (store/lua/api_audit.lua, docs/api.md
 * "Audit log"): one page of entries as JSON, or with format=csv every match as CSV,
 * rendered by the reports' CSV writer (formula text quoted). */
#include "api_int.h"

#include "chatdesk/base.h"

static const cd_api_route audit_routes[] = {
    {"GET", "admin/sites/:/audit", "admin_audit_list", {"site_key"}, false, 0},
};

const cd_api_family cd_http__api_audit = {
    "api_audit",
    NULL,
    audit_routes,
    CD_ARRAY_LEN(audit_routes),
    cd_http__api_csv_prepare,
    NULL,
    cd_http__api_csv_reply,
    CD_API_GATHER_ONE,
};
