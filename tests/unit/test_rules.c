/* Automation rules: validation and evaluation, table-driven (one row per case), and the
 * planning of a batch (once per event, no loops through rule-caused events, time
 * triggers armed on their anchors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chatdesk/rules.h"

/* A conversation snapshot as rules.lua builds it. */
static const char *CONV =
    "{\"id\":\"c_1\",\"site\":\"s1\",\"status\":\"open\",\"priority\":\"high\",\"category\":\"Server failure\","
    "\"team\":\"infra\",\"assignee\":\"a_1\",\"subject\":\"Database down since 9am\",\"tags\":[\"vip\",\"beta\"],"
    "\"created_at\":1000,\"first_response_at\":null,\"visitor\":{\"id\":\"v_1\",\"name\":\"李雷\","
    "\"email\":\"li@example.cn\",\"user_id\":null,\"attributes\":{\"plan\":\"enterprise\",\"seats\":42,"
    "\"country\":\"中国\"}}}";

/* 09:00-18:00 on two days (ms) */
static const char *HOURS = "32400000,64800000,118800000,151200000";
#define IN_HOURS 40000000LL
#define OFF_HOURS 70000000LL

typedef struct row {
    const char *name;
    const char *match;      /* "all" / "any" */
    const char *conditions; /* JSON array */
    const char *event;      /* event JSON or NULL (time trigger) */
    int64_t now;
    int want;
} row;

#define MSG(body, kind)                                                                                          \
    "{\"t\":\"message.created\",\"ts\":5,\"by\":\"x\",\"d\":{\"body\":\"" body "\",\"author\":{\"kind\":\"" kind \
    "\"},\"private\":false}}"
#define CREATED "{\"t\":\"conversation.created\",\"ts\":1000,\"d\":{}}"
/* conversation.created as the rules consumer hands it over: with the first message's body */
#define CREATED_MSG(body) "{\"t\":\"conversation.created\",\"ts\":1000,\"d\":{\"body\":\"" body "\"}}"

static const row ROWS[] = {
    {"no conditions fire", "all", "[]", CREATED, 0, 1},
    {"eq string", "all", "[{\"field\":\"status\",\"op\":\"eq\",\"value\":\"open\"}]", CREATED, 0, 1},
    {"eq is case-insensitive", "all", "[{\"field\":\"category\",\"op\":\"eq\",\"value\":\"server FAILURE\"}]", CREATED,
     0, 1},
    {"eq mismatch", "all", "[{\"field\":\"status\",\"op\":\"eq\",\"value\":\"pending\"}]", CREATED, 0, 0},
    {"neq", "all", "[{\"field\":\"team\",\"op\":\"neq\",\"value\":\"sales\"}]", CREATED, 0, 1},
    {"neq same", "all", "[{\"field\":\"team\",\"op\":\"neq\",\"value\":\"infra\"}]", CREATED, 0, 0},
    {"in", "all", "[{\"field\":\"priority\",\"op\":\"in\",\"value\":[\"high\",\"urgent\"]}]", CREATED, 0, 1},
    {"in miss", "all", "[{\"field\":\"priority\",\"op\":\"in\",\"value\":[\"low\"]}]", CREATED, 0, 0},
    {"not_in", "all", "[{\"field\":\"priority\",\"op\":\"not_in\",\"value\":[\"low\",\"normal\"]}]", CREATED, 0, 1},
    {"priority gte high", "all", "[{\"field\":\"priority\",\"op\":\"gte\",\"value\":\"high\"}]", CREATED, 0, 1},
    {"priority gt high", "all", "[{\"field\":\"priority\",\"op\":\"gt\",\"value\":\"high\"}]", CREATED, 0, 0},
    {"priority lt urgent", "all", "[{\"field\":\"priority\",\"op\":\"lt\",\"value\":\"urgent\"}]", CREATED, 0, 1},
    {"tags contains", "all", "[{\"field\":\"tags\",\"op\":\"contains\",\"value\":\"VIP\"}]", CREATED, 0, 1},
    {"tags contains miss", "all", "[{\"field\":\"tags\",\"op\":\"contains\",\"value\":\"vi\"}]", CREATED, 0, 0},
    {"tags eq element", "all", "[{\"field\":\"tags\",\"op\":\"eq\",\"value\":\"beta\"}]", CREATED, 0, 1},
    {"tags not_contains", "all", "[{\"field\":\"tags\",\"op\":\"not_contains\",\"value\":\"spam\"}]", CREATED, 0, 1},
    {"tags in", "all", "[{\"field\":\"tags\",\"op\":\"in\",\"value\":[\"x\",\"beta\"]}]", CREATED, 0, 1},
    {"text of message, case-insensitive", "all", "[{\"field\":\"text\",\"op\":\"contains\",\"value\":\"REFUND\"}]",
     MSG("I want a refund please", "visitor"), 0, 1},
    {"text Chinese", "all", "[{\"field\":\"text\",\"op\":\"contains\",\"value\":\"退款\"}]",
     MSG("我想申请退款，谢谢", "visitor"), 0, 1},
    {"text Chinese miss", "all", "[{\"field\":\"text\",\"op\":\"contains\",\"value\":\"退货\"}]",
     MSG("我想申请退款，谢谢", "visitor"), 0, 0},
    {"text on conversation.created = its first message", "all",
     "[{\"field\":\"text\",\"op\":\"contains\",\"value\":\"cannot log in\"}]", CREATED_MSG("I cannot log in"), 0, 1},
    {"text on conversation.created is not the subject", "all",
     "[{\"field\":\"text\",\"op\":\"contains\",\"value\":\"database down\"}]", CREATED_MSG("I cannot log in"), 0, 0},
    {"text on a time trigger = subject", "all",
     "[{\"field\":\"text\",\"op\":\"contains\",\"value\":\"database down\"}]", NULL, 0, 1},
    {"text starts_with", "all", "[{\"field\":\"subject\",\"op\":\"starts_with\",\"value\":\"data\"}]", CREATED, 0, 1},
    {"not_contains text", "all", "[{\"field\":\"text\",\"op\":\"not_contains\",\"value\":\"refund\"}]",
     MSG("hello", "visitor"), 0, 1},
    {"event path author", "all", "[{\"field\":\"event.author.kind\",\"op\":\"eq\",\"value\":\"agent\"}]",
     MSG("hi", "agent"), 0, 1},
    {"event path author visitor", "all", "[{\"field\":\"event.author.kind\",\"op\":\"eq\",\"value\":\"agent\"}]",
     MSG("hi", "visitor"), 0, 0},
    {"event boolean", "all", "[{\"field\":\"event.private\",\"op\":\"eq\",\"value\":false}]", MSG("hi", "agent"), 0, 1},
    {"attribute eq", "all", "[{\"field\":\"attributes.plan\",\"op\":\"eq\",\"value\":\"Enterprise\"}]", CREATED, 0, 1},
    {"attribute number gt", "all", "[{\"field\":\"attributes.seats\",\"op\":\"gt\",\"value\":40}]", CREATED, 0, 1},
    {"attribute number lte", "all", "[{\"field\":\"attributes.seats\",\"op\":\"lte\",\"value\":41}]", CREATED, 0, 0},
    {"attribute number eq", "all", "[{\"field\":\"attributes.seats\",\"op\":\"eq\",\"value\":42}]", CREATED, 0, 1},
    {"attribute Chinese", "all", "[{\"field\":\"attributes.country\",\"op\":\"eq\",\"value\":\"中国\"}]", CREATED, 0,
     1},
    {"visitor name contains", "all", "[{\"field\":\"visitor.name\",\"op\":\"contains\",\"value\":\"李\"}]", CREATED, 0,
     1},
    {"visitor email", "all", "[{\"field\":\"visitor.email\",\"op\":\"contains\",\"value\":\".cn\"}]", CREATED, 0, 1},
    {"missing attribute eq", "all", "[{\"field\":\"attributes.nope\",\"op\":\"eq\",\"value\":\"x\"}]", CREATED, 0, 0},
    {"missing attribute neq", "all", "[{\"field\":\"attributes.nope\",\"op\":\"neq\",\"value\":\"x\"}]", CREATED, 0, 1},
    {"missing not_in", "all", "[{\"field\":\"visitor.user_id\",\"op\":\"not_in\",\"value\":[\"u\"]}]", CREATED, 0, 1},
    {"missing gt", "all", "[{\"field\":\"attributes.nope\",\"op\":\"gt\",\"value\":1}]", CREATED, 0, 0},
    {"missing eq null", "all", "[{\"field\":\"visitor.user_id\",\"op\":\"eq\",\"value\":null}]", CREATED, 0, 1},
    {"exists", "all", "[{\"field\":\"assignee\",\"op\":\"exists\"}]", CREATED, 0, 1},
    {"not_exists", "all", "[{\"field\":\"visitor.user_id\",\"op\":\"not_exists\"}]", CREATED, 0, 1},
    {"exists missing", "all", "[{\"field\":\"event.nope\",\"op\":\"exists\"}]", CREATED, 0, 0},
    {"responded false", "all", "[{\"field\":\"responded\",\"op\":\"eq\",\"value\":false}]", NULL, 0, 1},
    {"responded true", "all", "[{\"field\":\"responded\",\"op\":\"eq\",\"value\":true}]", NULL, 0, 0},
    {"business hours in", "all", "[{\"field\":\"business_hours\",\"op\":\"eq\",\"value\":true}]", NULL, IN_HOURS, 1},
    {"business hours out", "all", "[{\"field\":\"business_hours\",\"op\":\"eq\",\"value\":true}]", NULL, OFF_HOURS, 0},
    {"after the last interval counts as open", "all", "[{\"field\":\"business_hours\",\"op\":\"eq\",\"value\":true}]",
     NULL, 160000000, 1},
    {"before hours", "all", "[{\"field\":\"business_hours\",\"op\":\"eq\",\"value\":false}]", NULL, 1000, 1},
    {"outside hours neq", "all", "[{\"field\":\"business_hours\",\"op\":\"neq\",\"value\":true}]", NULL, 1000, 1},
    {"all: one fails", "all",
     "[{\"field\":\"status\",\"op\":\"eq\",\"value\":\"open\"},{\"field\":\"team\",\"op\":\"eq\",\"value\":\"x\"}]",
     CREATED, 0, 0},
    {"any: one holds", "any",
     "[{\"field\":\"status\",\"op\":\"eq\",\"value\":\"open\"},{\"field\":\"team\",\"op\":\"eq\",\"value\":\"x\"}]",
     CREATED, 0, 1},
    {"any: none holds", "any",
     "[{\"field\":\"status\",\"op\":\"eq\",\"value\":\"closed\"},{\"field\":\"team\",\"op\":\"eq\",\"value\":\"x\"}]",
     CREATED, 0, 0},
    {"issue example: server failure + high", "all",
     "[{\"field\":\"category\",\"op\":\"eq\",\"value\":\"server failure\"},"
     "{\"field\":\"priority\",\"op\":\"gte\",\"value\":\"high\"}]",
     CREATED, 0, 1},
};

static char *rule_for(const row *r)
{
    static char buf[4096];
    const char *trigger = r->event ? "{\"event\":\"" : "{\"time\":{\"after_s\":60,\"since\":\"created\"}}";
    char t[128] = "";
    if (r->event) {
        const char *p = strstr(r->event, "\"t\":\"") + 5;
        snprintf(t, sizeof t, "%s%.*s\"}", trigger, (int)(strchr(p, '"') - p), p);
    } else {
        snprintf(t, sizeof t, "%s", trigger);
    }
    snprintf(buf, sizeof buf,
             "{\"id\":\"r1\",\"name\":\"n\",\"match\":\"%s\",\"trigger\":%s,\"conditions\":%s,"
             "\"actions\":[{\"type\":\"add_tags\",\"tags\":[\"t\"]}]}",
             r->match, t, r->conditions);
    return buf;
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof ROWS / sizeof ROWS[0]; i++) {
        const row *r = &ROWS[i];
        char *rule = rule_for(r);
        char err[256] = "";
        if (cd_rules_validate(rule, strlen(rule), false, err, sizeof err) != 0)
            fail_msg("row %zu (%s): rule does not validate: %s", i, r->name, err);
        int got = cd_rules_match(rule, r->event, CONV, r->now, HOURS);
        if (got != r->want)
            fail_msg("row %zu (%s): got %d, want %d", i, r->name, got, r->want);
    }
}

static void test_business_hours_always_open(void **state)
{
    (void)state;
    const char *rule = "{\"id\":\"r\",\"name\":\"n\",\"trigger\":{\"event\":\"conversation.created\"},"
                       "\"conditions\":[{\"field\":\"business_hours\",\"op\":\"eq\",\"value\":false}],"
                       "\"actions\":[{\"type\":\"notify_admins\"}]}";
    assert_int_equal(cd_rules_match(rule, CREATED, CONV, 5, "*"), 0);
    assert_int_equal(cd_rules_match(rule, CREATED, CONV, 5, "10,20"), 1);
}

static void test_trigger_and_enabled(void **state)
{
    (void)state;
    const char *rule = "{\"id\":\"r\",\"name\":\"n\",\"trigger\":{\"event\":\"message.created\"},"
                       "\"actions\":[{\"type\":\"notify_admins\"}]}";
    assert_int_equal(cd_rules_match(rule, CREATED, CONV, 5, "*"), 0); /* other event type */
    assert_int_equal(cd_rules_match(rule, MSG("x", "agent"), CONV, 5, "*"), 1);
    assert_int_equal(cd_rules_match(rule, NULL, CONV, 5, "*"), 0); /* not a time rule */
    const char *off = "{\"id\":\"r\",\"name\":\"n\",\"enabled\":false,\"trigger\":{\"event\":\"message.created\"},"
                      "\"actions\":[{\"type\":\"notify_admins\"}]}";
    assert_int_equal(cd_rules_match(off, MSG("x", "agent"), CONV, 5, "*"), 0);
    assert_int_equal(cd_rules_match("{\"id\":1}", CREATED, CONV, 5, "*"), -1);
}

typedef struct vrow {
    const char *json;
    bool partial;
    const char *err; /* NULL: valid; else a substring of the message */
} vrow;

#define A1 ",\"actions\":[{\"type\":\"notify_admins\"}]}"
#define EV "{\"id\":\"r\",\"name\":\"n\",\"trigger\":{\"event\":\"conversation.created\"}"

static const vrow VROWS[] = {
    {EV A1, false, NULL},
    {"{\"id\":\"r\",\"name\":\"n\",\"trigger\":{\"time\":{\"after_s\":7200,\"since\":\"created\"}}" A1, false, NULL},
    {"{\"id\":\"r\",\"name\":\"n\",\"trigger\":{\"time\":{\"after_s\":5,\"since\":\"status:pending\"}}" A1, false,
     NULL},
    {"[]", false, "JSON object"},
    {"{", false, "not valid JSON"},
    {"{\"name\":\"n\",\"trigger\":{\"event\":\"nope\"}" A1, false, "trigger.event"},
    {"{\"name\":\"n\",\"trigger\":{\"time\":{\"after_s\":0,\"since\":\"created\"}}" A1, false, "after_s"},
    {"{\"name\":\"n\",\"trigger\":{\"time\":{\"after_s\":5,\"since\":\"status:gone\"}}" A1, false, "since"},
    {"{\"name\":\"n\",\"trigger\":{\"event\":\"conversation.created\",\"time\":{}}" A1, false, "trigger must"},
    {"{\"trigger\":{\"event\":\"conversation.created\"}" A1, false, "name"},
    {EV ",\"bogus\":1" A1, false, "unknown member"},
    {EV ",\"match\":\"some\"" A1, false, "match"},
    {EV ",\"actions\":[]}", false, "actions must"},
    {EV "}", false, "actions must"},
    {EV ",\"actions\":[{\"type\":\"explode\"}]}", false, "type must"},
    {EV ",\"actions\":[{\"type\":\"set_priority\",\"priority\":\"hot\"}]}", false, "priority"},
    {EV ",\"actions\":[{\"type\":\"set_status\",\"status\":\"queued\"}]}", false, "status must"},
    {EV ",\"actions\":[{\"type\":\"add_tags\",\"tags\":[]}]}", false, "tags"},
    {EV ",\"actions\":[{\"type\":\"add_tags\",\"tags\":[\"a\"],\"x\":1}]}", false, "unknown member"},
    {EV ",\"actions\":[{\"type\":\"assign_team\",\"team\":\"bad team\"}]}", false, "team"},
    {EV ",\"actions\":[{\"type\":\"send_message\",\"body\":\"\"}]}", false, "body"},
    {EV ",\"actions\":[{\"type\":\"webhook\"}]}", false, "webhook"},
    {EV ",\"actions\":[{\"type\":\"notify_team_lead\"},{\"type\":\"webhook\",\"webhook\":\"w1\"}]}", false, NULL},
    {EV ",\"conditions\":[{\"field\":\"colour\",\"op\":\"eq\",\"value\":\"x\"}]" A1, false, "field must"},
    {EV ",\"conditions\":[{\"field\":\"status\",\"op\":\"like\",\"value\":\"x\"}]" A1, false, "op must"},
    {EV ",\"conditions\":[{\"field\":\"status\",\"op\":\"eq\",\"value\":\"gone\"}]" A1, false, "status is"},
    {EV ",\"conditions\":[{\"field\":\"tags\",\"op\":\"in\",\"value\":[]}]" A1, false, "in and not_in"},
    {EV ",\"conditions\":[{\"field\":\"attributes.n\",\"op\":\"gt\",\"value\":\"x\"}]" A1, false, "number"},
    {EV ",\"conditions\":[{\"field\":\"business_hours\",\"op\":\"eq\",\"value\":\"yes\"}]" A1, false, "true/false"},
    {EV ",\"conditions\":[{\"field\":\"status\",\"op\":\"exists\",\"value\":1}]" A1, false, "no value"},
    {EV ",\"conditions\":[{\"field\":\"attributes.\",\"op\":\"exists\"}]" A1, false, "field must"},
    {EV ",\"conditions\":{}" A1, false, "conditions must"},
    {"{\"enabled\":false}", true, NULL},
    {"{\"enabled\":\"no\"}", true, "enabled"},
    {"{\"id\":\"x\"}", true, "id cannot"},
    {"{\"actions\":[{\"type\":\"notify_admins\",\"title\":\"\"}]}", true, "title"},
};

static void test_validation(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof VROWS / sizeof VROWS[0]; i++) {
        const vrow *v = &VROWS[i];
        char err[512] = "";
        int rc = cd_rules_validate(v->json, strlen(v->json), v->partial, err, sizeof err);
        if (!v->err && rc != 0)
            fail_msg("vrow %zu: want valid, got: %s", i, err);
        if (v->err && (rc == 0 || !strstr(err, v->err)))
            fail_msg("vrow %zu: want error containing \"%s\", got rc=%d \"%s\"", i, v->err, rc, err);
    }
}

static const char *iv_fn(void *ud, const char *site)
{
    (void)ud;
    (void)site;
    return "*";
}

static void test_plan_batch(void **state)
{
    (void)state;
    const char *in =
        "{\"expect\":\"1-0\",\"last\":\"4-0\",\"events\":["
        "{\"id\":\"2-0\",\"t\":\"conversation.created\",\"s\":\"s1\",\"c\":\"c_1\",\"ts\":1000,\"by\":\"visitor:v\","
        "\"d\":{}},"
        "{\"id\":\"3-0\",\"t\":\"conversation.created\",\"s\":\"s1\",\"c\":\"c_1\",\"ts\":1000,\"by\":\"rule:r1\","
        "\"d\":{}},"
        "{\"id\":\"4-0\",\"t\":\"conversation.status_changed\",\"s\":\"s1\",\"c\":\"c_1\",\"ts\":2000,"
        "\"by\":\"rule:r1\",\"d\":{\"from\":\"open\",\"to\":\"pending\"}}],"
        "\"convs\":{\"c_1\":{\"id\":\"c_1\",\"site\":\"s1\",\"status\":\"open\"}},"
        "\"rules\":{\"s1\":["
        "{\"id\":\"r1\",\"name\":\"a\",\"trigger\":{\"event\":\"conversation.created\"},\"actions\":[{\"type\":"
        "\"notify_admins\"}]},"
        "{\"id\":\"r2\",\"name\":\"b\",\"enabled\":false,\"trigger\":{\"event\":\"conversation.created\"},"
        "\"actions\":[{\"type\":\"notify_admins\"}]},"
        "{\"id\":\"r3\",\"name\":\"c\",\"trigger\":{\"time\":{\"after_s\":60,\"since\":\"status:pending\"}},"
        "\"actions\":[{\"type\":\"notify_admins\"}]}]}}";
    char *plan = cd_rules_plan_batch(in, strlen(in), iv_fn, NULL);
    assert_non_null(plan);
    /* r1 once (the rule-caused copy does not fire it again), r2 disabled, r3 armed by the
     * rule-caused status change */
    assert_non_null(strstr(plan, "\"expect\":\"1-0\""));
    assert_non_null(strstr(plan, "\"cursor\":\"4-0\""));
    assert_non_null(strstr(plan, "\"rule\":\"r1\""));
    assert_null(strstr(strstr(plan, "\"rule\":\"r1\"") + 1, "\"rule\":\"r1\""));
    assert_null(strstr(plan, "\"rule\":\"r2\""));
    assert_non_null(strstr(plan, "{\"member\":\"rule|s1|r3|c_1\",\"due\":62000}"));
    cd_free(plan);
    assert_null(cd_rules_plan_batch("[]", 2, iv_fn, NULL));
}

static void test_plan_timer_and_dry_run(void **state)
{
    (void)state;
    const char *conv = "{\"id\":\"c_1\",\"site\":\"s1\",\"status\":\"open\",\"first_response_at\":null}";
    char in[1024];
    snprintf(in, sizeof in,
             "{\"conv\":%s,\"rule\":{\"id\":\"r\",\"name\":\"n\",\"trigger\":{\"time\":{\"after_s\":60,\"since\":"
             "\"created\"}},\"conditions\":[{\"field\":\"responded\",\"op\":\"eq\",\"value\":false}],\"actions\":[{"
             "\"type\":\"notify_admins\"}]}}",
             conv);
    char *plan = cd_rules_plan_timer(in, strlen(in), 5, "*");
    assert_non_null(strstr(plan, "\"rule\":\"r\""));
    cd_free(plan);
    /* answered meanwhile: nothing fires */
    char *p2 = strstr(in, "null");
    memcpy(p2, "1234", 4);
    plan = cd_rules_plan_timer(in, strlen(in), 5, "*");
    assert_string_equal(plan, "{\"fire\":[]}");
    cd_free(plan);

    const char *dr = "{\"conv\":{\"id\":\"c\",\"status\":\"open\"},\"rules\":["
                     "{\"id\":\"a\",\"name\":\"A\",\"trigger\":{\"event\":\"message.created\"},\"conditions\":[{"
                     "\"field\":\"status\",\"op\":\"eq\",\"value\":\"open\"}],\"actions\":[]},"
                     "{\"id\":\"b\",\"name\":\"B\",\"trigger\":{\"event\":\"conversation.created\"},\"conditions\":[{"
                     "\"field\":\"status\",\"op\":\"eq\",\"value\":\"closed\"}],\"actions\":[]}]}";
    char *out = cd_rules_dry_run(dr, strlen(dr), "message.created", 5, "*");
    assert_non_null(strstr(out, "\"id\":\"a\",\"name\":\"A\",\"enabled\":true"));
    assert_non_null(strstr(out, "\"would_fire\":true"));
    assert_non_null(strstr(out, "\"value\":\"open\",\"result\":true"));
    assert_non_null(strstr(out, "\"value\":\"closed\",\"result\":false"));
    cd_free(out);
    out = cd_rules_dry_run(dr, strlen(dr), NULL, 5, "*");
    assert_non_null(strstr(out, "\"trigger_matches\":true,\"would_fire\":true"));
    cd_free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_business_hours_always_open),
        cmocka_unit_test(test_trigger_and_enabled),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_plan_batch),
        cmocka_unit_test(test_plan_timer_and_dry_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
