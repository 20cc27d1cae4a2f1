/* API family: a site's webhooks and their deliveries (store/lua/api_webhooks.lua,
 * docs/api.md "Webhooks"). A URL a call sets is handed to http.c first, which refuses
 * internal addresses before anything is stored (webhook/addr.c); deliveries are sent by
 * webhook/. */
#include "api_int.h"

#include <string.h>

#include "chatdesk/base.h"

static const cd_api_route webhook_routes[] = {
    {"GET", "admin/sites/:/webhooks", "admin_webhooks_list", {"site_key"}, false, 0},
    {"POST", "admin/sites/:/webhooks", "admin_webhook_create", {"site_key"}, true, 0},
    {"GET", "admin/sites/:/webhooks/:", "admin_webhook_get", {"site_key", "webhook_id"}, false, 0},
    {"PATCH", "admin/sites/:/webhooks/:", "admin_webhook_patch", {"site_key", "webhook_id"}, true, 0},
    {"DELETE", "admin/sites/:/webhooks/:", "admin_webhook_delete", {"site_key", "webhook_id"}, false, 0},
    {"GET", "admin/sites/:/webhooks/:/deliveries", "admin_webhook_deliveries", {"site_key", "webhook_id"}, false, 0},
    {"POST", "admin/sites/:/webhooks/:/test", "admin_webhook_test", {"site_key", "webhook_id"}, false, 0},
    {"POST", "admin/sites/:/deliveries/:/redeliver", "admin_delivery_redeliver", {"site_key", "delivery_id"}, false, 0},
};

const cd_api_family cd_http__api_webhooks = {
    "api_webhooks", NULL, webhook_routes, CD_ARRAY_LEN(webhook_routes), NULL, NULL, NULL, CD_API_SITE,
};

bool cd_http__api_webhook_url(const cd_api_call *call, char *url, size_t urlsz)
{
    const cd_api_family *f;
    const cd_api_route *r = cd_http__api_route(call, &f);
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
