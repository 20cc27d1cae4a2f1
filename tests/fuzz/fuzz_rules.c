/* libFuzzer target: automation rules (server/rules/rules.c) on arbitrary bytes. The input
 * is a rule as an admin would send it: it is validated (whole and as a PATCH); a rule
 * that validates is stored as jansson re-serialises it (as the API does), and that text
 * must then evaluate against a fixed conversation and event without answering "not
 * valid" (-1). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "chatdesk/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char snapshot[] =
    "{\"id\":\"c_1\",\"site\":\"s\",\"status\":\"open\",\"priority\":\"high\",\"category\":\"server failure\","
    "\"team\":\"infra\",\"assignee\":null,\"subject\":\"服务器宕机\",\"tags\":[\"vip\"],\"created_at\":1000,"
    "\"first_response_at\":null,\"ticket\":1001,\"visitor\":{\"id\":\"v_1\",\"name\":\"Li\","
    "\"email\":\"li@example.com\",\"user_id\":null,\"attributes\":{\"plan\":\"pro\",\"seats\":12}}}";
static const char event[] = "{\"t\":\"message.created\",\"ts\":2000,\"by\":\"visitor:v_1\","
                            "\"d\":{\"author\":{\"kind\":\"visitor\",\"id\":\"v_1\"},\"body\":\"help, server down\"}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    const char *json = (const char *)data;
    bool whole = cd_rules_validate(json, size, false, err, sizeof err) == 0;
    (void)cd_rules_validate(json, size, true, err, sizeof err);
    if (whole) {
        json_t *v = json_loadb(json, size, JSON_REJECT_DUPLICATES, NULL);
        char *rule = v ? json_dumps(v, JSON_COMPACT) : NULL;
        json_decref(v);
        if (!rule)
            abort(); /* validated, yet not JSON */
        int r1 = cd_rules_match(rule, event, snapshot, 5000, "*");
        int r2 = cd_rules_match(rule, NULL, snapshot, 5000, "0,3000,4000,6000");
        free(rule);
        if (r1 < 0 || r2 < 0)
            abort(); /* validated, yet not evaluable */
    }
    return 0;
}
