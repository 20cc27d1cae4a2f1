/* Business-hours arithmetic: calendars in real time zones (the system tz database),
 * weekends, holidays, lunch breaks, DST, deadlines crossing closing time, pause/resume. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chatdesk/ticket.h"

#define H (3600LL * 1000)
#define M (60LL * 1000)

static const char *WEEKDAYS_SH =
    "{\"tz\":\"Asia/Shanghai\",\"hours\":{\"mon\":[[\"09:00\",\"18:00\"]],\"tue\":[[\"09:00\",\"18:00\"]],"
    "\"wed\":[[\"09:00\",\"18:00\"]],\"thu\":[[\"09:00\",\"18:00\"]],\"fri\":[[\"09:00\",\"18:00\"]]}}";

/* Shanghai (UTC+8), times computed independently with Python's zoneinfo. */
static const int64_t FRI_1700 = 1795770000000LL; /* 2026-11-27 17:00 +08 (Friday) */
static const int64_t SAT_1200 = 1795838400000LL;
static const int64_t MON_0900 = 1796000400000LL; /* 2026-11-30 */
static const int64_t MON_0930 = 1796002200000LL;
static const int64_t MON_1000 = 1796004000000LL;
static const int64_t TUE_1000 = 1796090400000LL;

static char *intervals(const char *json, int64_t from)
{
    cd_sla_calendar cal;
    char err[200];
    assert_int_equal(cd_sla_calendar_parse(json, &cal, err, sizeof err), 0);
    cd_buf b;
    cd_buf_init(&b);
    cd_sla_intervals(&cal, from - 86400000, from + 30 * 86400000LL, &b);
    return b.data;
}

static void test_always_open(void **state)
{
    (void)state;
    char *iv = intervals(NULL, FRI_1700);
    assert_string_equal(iv, "*");
    assert_int_equal(cd_sla_add(iv, FRI_1700, 2 * H), FRI_1700 + 2 * H);
    assert_int_equal(cd_sla_between(iv, FRI_1700, FRI_1700 + 5 * M), 5 * M);
    cd_free(iv);
}

static void test_crossing_closing_time_and_weekend(void **state)
{
    (void)state;
    char *iv = intervals(WEEKDAYS_SH, FRI_1700);
    /* Friday 17:00 + 2 business hours: 1 h on Friday, 1 h on Monday -> Monday 10:00 */
    assert_int_equal(cd_sla_add(iv, FRI_1700, 2 * H), MON_1000);
    /* started on a Saturday: counting begins Monday 09:00 */
    assert_int_equal(cd_sla_add(iv, SAT_1200, 30 * M), MON_0930);
    /* exactly at closing time the next open minute is Monday */
    assert_int_equal(cd_sla_add(iv, FRI_1700, 1 * H), FRI_1700 + H);
    assert_int_equal(cd_sla_add(iv, FRI_1700, 1 * H + 1), MON_0900 + 1);
    /* business time between Friday 17:00 and Monday 10:00 is 2 h */
    assert_int_equal(cd_sla_between(iv, FRI_1700, MON_1000), 2 * H);
    assert_int_equal(cd_sla_between(iv, SAT_1200, MON_0900), 0);
    assert_int_equal(cd_sla_between(iv, MON_1000, FRI_1700), 0); /* reversed */
    cd_free(iv);
}

static void test_holiday(void **state)
{
    (void)state;
    char json[1024];
    snprintf(json, sizeof json, "%.*s,\"holidays\":[\"2026-11-30\"]}", (int)strlen(WEEKDAYS_SH) - 1, WEEKDAYS_SH);
    char *iv = intervals(json, FRI_1700);
    /* Monday is a holiday: the second hour falls on Tuesday */
    assert_int_equal(cd_sla_add(iv, FRI_1700, 2 * H), TUE_1000);
    cd_free(iv);
}

static void test_lunch_break(void **state)
{
    (void)state;
    const char *json = "{\"tz\":\"Asia/Shanghai\",\"hours\":{\"mon\":[[\"09:00\",\"12:00\"],[\"13:00\",\"18:00\"]]}}";
    const int64_t mon_1130 = 1796009400000LL, mon_1330 = 1796016600000LL;
    char *iv = intervals(json, mon_1130);
    assert_int_equal(cd_sla_add(iv, mon_1130, 1 * H), mon_1330);
    assert_int_equal(cd_sla_between(iv, mon_1130, mon_1330), 1 * H);
    cd_free(iv);
}

static void test_dst_berlin(void **state)
{
    (void)state;
    /* Europe/Berlin switches to summer time on Sunday 2026-03-29: Friday 17:00 is UTC+1,
     * Monday 10:00 is UTC+2. Friday 17:00 + 2 h of 09:00-18:00 -> Monday 10:00 local. */
    const char *json = "{\"tz\":\"Europe/Berlin\",\"hours\":{\"mon\":[[\"09:00\",\"18:00\"]],\"fri\":[[\"09:00\","
                       "\"18:00\"]]}}";
    const int64_t fri = 1774627200000LL, mon = 1774857600000LL;
    char *iv = intervals(json, fri);
    assert_int_equal(cd_sla_add(iv, fri, 2 * H), mon);
    cd_free(iv);
}

static void test_pause_and_resume(void **state)
{
    (void)state;
    /* A resolution deadline of Monday 10:00 paused (pending) from Friday 17:00 until
     * Monday 09:30: the business time spent paused (1 h Friday + 30 min Monday) moves it. */
    char *iv = intervals(WEEKDAYS_SH, FRI_1700);
    int64_t due = MON_1000;
    int64_t held = cd_sla_between(iv, FRI_1700, MON_0930);
    assert_int_equal(held, 90 * M);
    assert_int_equal(cd_sla_add(iv, due, held), MON_1000 + 90 * M);
    /* a pause entirely outside business hours moves nothing */
    assert_int_equal(cd_sla_add(iv, due, cd_sla_between(iv, SAT_1200, MON_0900)), due);
    cd_free(iv);
}

static void test_bad_calendars(void **state)
{
    (void)state;
    cd_sla_calendar cal;
    char err[200];
    assert_int_equal(cd_sla_calendar_parse("{\"tz\":\"Mars/Olympus\"}", &cal, err, sizeof err), -1);
    assert_non_null(strstr(err, "time zone"));
    assert_int_equal(cd_sla_calendar_parse("{\"tz\":\"../../etc/passwd\"}", &cal, err, sizeof err), -1);
    assert_int_equal(cd_sla_calendar_parse("{\"hours\":{\"mon\":[[\"18:00\",\"09:00\"]]}}", &cal, err, sizeof err), -1);
    assert_int_equal(cd_sla_calendar_parse("{\"hours\":{\"funday\":[]}}", &cal, err, sizeof err), -1);
    assert_int_equal(cd_sla_calendar_parse("{\"holidays\":[\"25.12.2026\"]}", &cal, err, sizeof err), -1);
    assert_int_equal(cd_sla_calendar_parse("[1]", &cal, err, sizeof err), -1);
    assert_int_equal(cd_sla_calendar_parse("{\"tz\":\"UTC\"}", &cal, err, sizeof err), 0);
    assert_true(cal.always_open);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_always_open),  cmocka_unit_test(test_crossing_closing_time_and_weekend),
        cmocka_unit_test(test_holiday),      cmocka_unit_test(test_lunch_break),
        cmocka_unit_test(test_dst_berlin),   cmocka_unit_test(test_pause_and_resume),
        cmocka_unit_test(test_bad_calendars)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
