/* API family: conversations and tickets as the dashboard lists and edits them, the
 * visitor profile, the supervisor's view, canned replies, the caller itself (me,
 * logout), and the customer-health alerts, notices and mentions (store/lua/api.lua,
 * api_health.lua). A ticket edit re-aligns the ticket's SLA clocks in the same call. */
#include "api_int.h"

#include <string.h>

#include "chatdesk/base.h"

static const cd_api_route conversation_routes[] = {
    {"GET", "me", "me", {0}, false, CD_API_GATHER},
    {"POST", "logout", "logout", {0}, false, 0},
    {"GET", "tickets", "tickets_list", {0}, false, CD_API_SITES},
    {"GET", "conversations", "conversations_list", {0}, false, CD_API_SITES},
    {"GET", "tickets/:", "ticket_get", {"number"}, false, CD_API_FIRST},
    {"PATCH", "tickets/:", "ticket_patch", {"number"}, true, CD_API_FIRST},
    {"GET", "visitors/:", "visitor_get", {"id"}, false, CD_API_FIRST},
    {"GET", "supervisor", "supervisor", {0}, false, CD_API_GATHER_ONE},
};

const cd_api_family cd_http__api_conversations = {
    "api", NULL, conversation_routes, CD_ARRAY_LEN(conversation_routes), NULL, NULL, NULL, CD_API_CALLER,
};

static const cd_api_route canned_routes[] = {
    {"GET", "canned", "canned_list", {0}, false, CD_API_SITES},
    {"POST", "canned", "canned_create", {0}, true, CD_API_SITE},
    {"PATCH", "canned/:", "canned_patch", {"id"}, true, CD_API_FIRST},
    {"DELETE", "canned/:", "canned_delete", {"id"}, false, CD_API_FIRST},
};

const cd_api_family cd_http__api_canned = {
    "api", "r", canned_routes, CD_ARRAY_LEN(canned_routes), NULL, NULL, NULL, CD_API_CALLER,
};

static const cd_api_route health_routes[] = {
    {"GET", "alerts", "alerts_list", {0}, false, CD_API_SITES},
    {"GET", "notices", "notices_list", {0}, false, CD_API_SITES},
    {"GET", "mentions", "mentions_list", {0}, false, CD_API_SITES},
    {"POST", "mentions/read", "mentions_read", {0}, true, CD_API_SITE},
};

const cd_api_family cd_http__api_health = {
    "api_health", NULL, health_routes, CD_ARRAY_LEN(health_routes), NULL, NULL, NULL, CD_API_CALLER,
};
