/* Business-hours calendars: parsing, open intervals in UTC, and arithmetic. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chatdesk/ticket.h"

static const char *const day_names[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static int parse_hhmm(const char *s)
{
    int h, m;
    char tail;
    if (!s || sscanf(s, "%2d:%2d%c", &h, &m, &tail) != 2 || h < 0 || h > 24 || m < 0 || m > 59 || (h == 24 && m))
        return -1;
    return h * 60 + m;
}

static bool valid_tz(const char *tz)
{
    if (!tz[0] || strcmp(tz, "UTC") == 0)
        return true;
    if (strstr(tz, "..") || tz[0] == '/')
        return false;
    char path[160];
    snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", tz);
    return access(path, R_OK) == 0;
}

int cd_sla_calendar_parse(const char *json, cd_sla_calendar *cal, char *err, size_t errsz)
{
    memset(cal, 0, sizeof *cal);
    cal->always_open = true;
    if (!json || !json[0])
        return 0;
    json_error_t e;
    json_t *root = json_loads(json, 0, &e);
    int rc = -1;
    if (!json_is_object(root)) {
        snprintf(err, errsz, "calendar must be a JSON object");
        goto out;
    }
    json_t *tz = json_object_get(root, "tz");
    if (tz) {
        if (!json_is_string(tz) || json_string_length(tz) >= sizeof cal->tz || !valid_tz(json_string_value(tz))) {
            snprintf(err, errsz, "calendar.tz must be a known time zone like Asia/Shanghai");
            goto out;
        }
        cd_strlcpy(cal->tz, json_string_value(tz), sizeof cal->tz);
    }
    json_t *hours = json_object_get(root, "hours");
    if (hours) {
        if (!json_is_object(hours)) {
            snprintf(err, errsz, "calendar.hours must be an object of weekdays");
            goto out;
        }
        cal->always_open = false;
        const char *k;
        json_t *ranges;
        json_object_foreach(hours, k, ranges)
        {
            int d = -1;
            for (int i = 0; i < 7; i++)
                if (strcmp(k, day_names[i]) == 0)
                    d = i;
            if (d < 0 || !json_is_array(ranges) || json_array_size(ranges) > CD_SLA_MAX_RANGES) {
                snprintf(err, errsz, "calendar.hours: bad day '%.8s' (mon..sun, at most %d ranges)", k,
                         CD_SLA_MAX_RANGES);
                goto out;
            }
            size_t i;
            json_t *r;
            json_array_foreach(ranges, i, r)
            {
                int o = parse_hhmm(json_string_value(json_array_get(r, 0)));
                int c = parse_hhmm(json_string_value(json_array_get(r, 1)));
                if (!json_is_array(r) || json_array_size(r) != 2 || o < 0 || c <= o) {
                    snprintf(err, errsz, "calendar.hours.%s: ranges are [\"HH:MM\",\"HH:MM\"] with open < close",
                             day_names[d]);
                    goto out;
                }
                int n = cal->day[d].n++;
                cal->day[d].open[n] = o;
                cal->day[d].close[n] = c;
            }
        }
    }
    json_t *hol = json_object_get(root, "holidays");
    if (hol) {
        if (!json_is_array(hol) || json_array_size(hol) > CD_SLA_MAX_HOLIDAYS) {
            snprintf(err, errsz, "calendar.holidays must be an array of at most %d dates", CD_SLA_MAX_HOLIDAYS);
            goto out;
        }
        size_t i;
        json_t *h;
        json_array_foreach(hol, i, h)
        {
            int y, m, d;
            char tail;
            if (!json_is_string(h) || sscanf(json_string_value(h), "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || m < 1 ||
                m > 12 || d < 1 || d > 31) {
                snprintf(err, errsz, "calendar.holidays: dates are YYYY-MM-DD");
                goto out;
            }
            cal->holidays[cal->nholidays++] = y * 10000 + m * 100 + d;
        }
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* Local wall time -> UTC ms in the zone currently set with tzset(). */
static int64_t local_to_ms(int y, int mon, int mday, int minutes)
{
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mon;
    tm.tm_mday = mday;
    tm.tm_hour = minutes / 60;
    tm.tm_min = minutes % 60;
    tm.tm_isdst = -1;
    return (int64_t)mktime(&tm) * 1000;
}

void cd_sla_intervals(const cd_sla_calendar *cal, int64_t from_ms, int64_t to_ms, cd_buf *out)
{
    cd_buf_reset(out);
    if (cal->always_open) {
        cd_buf_append_str(out, "*");
        return;
    }
    /* The node is single-threaded where this runs: switch the process zone for the
     * computation and put it back. */
    const char *old = getenv("TZ");
    char saved[128] = "";
    bool had = old != NULL;
    if (had)
        cd_strlcpy(saved, old, sizeof saved);
    setenv("TZ", cal->tz[0] ? cal->tz : "UTC", 1);
    tzset();
    time_t t = (time_t)(from_ms / 1000) - 86400;
    struct tm day;
    localtime_r(&t, &day);
    int y = day.tm_year + 1900, mon = day.tm_mon, mday = day.tm_mday;
    bool first = true;
    for (int i = 0; i < 400; i++) {
        /* normalise the date (mktime also gives the weekday) */
        struct tm norm = {0};
        norm.tm_year = y - 1900;
        norm.tm_mon = mon;
        norm.tm_mday = mday + i;
        norm.tm_hour = 12;
        norm.tm_isdst = -1;
        time_t noon = mktime(&norm);
        if ((int64_t)noon * 1000 - 86400000 * 2 > to_ms)
            break;
        int ymd = (norm.tm_year + 1900) * 10000 + (norm.tm_mon + 1) * 100 + norm.tm_mday;
        bool holiday = false;
        for (int h = 0; h < cal->nholidays; h++)
            if (cal->holidays[h] == ymd)
                holiday = true;
        if (holiday)
            continue;
        int wd = norm.tm_wday;
        for (int r = 0; r < cal->day[wd].n; r++) {
            int64_t s = local_to_ms(norm.tm_year + 1900, norm.tm_mon, norm.tm_mday, cal->day[wd].open[r]);
            int64_t e = local_to_ms(norm.tm_year + 1900, norm.tm_mon, norm.tm_mday, cal->day[wd].close[r]);
            if (e <= from_ms || s >= to_ms || e <= s)
                continue;
            cd_buf_printf(out, "%s%lld,%lld", first ? "" : ",", (long long)s, (long long)e);
            first = false;
        }
    }
    if (had)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
}

/* Iterate "s,e,s,e" pairs. */
static bool next_pair(const char **p, int64_t *s, int64_t *e)
{
    char *end;
    if (!**p)
        return false;
    *s = strtoll(*p, &end, 10);
    if (*end != ',')
        return false;
    *e = strtoll(end + 1, &end, 10);
    *p = *end == ',' ? end + 1 : end;
    return true;
}

int64_t cd_sla_add(const char *iv, int64_t start, int64_t business)
{
    if (business <= 0)
        return start;
    if (strcmp(iv, "*") == 0)
        return start + business;
    const char *p = iv;
    int64_t s, e, last = start;
    while (next_pair(&p, &s, &e)) {
        last = e;
        if (e <= start)
            continue;
        if (s < start)
            s = start;
        if (e - s >= business)
            return s + business;
        business -= e - s;
    }
    /* beyond the known intervals: count as open */
    return (last > start ? last : start) + business;
}

int64_t cd_sla_between(const char *iv, int64_t a, int64_t b)
{
    if (b <= a)
        return 0;
    if (strcmp(iv, "*") == 0)
        return b - a;
    const char *p = iv;
    int64_t s, e, total = 0, last = a;
    while (next_pair(&p, &s, &e)) {
        last = e > last ? e : last;
        if (e <= a || s >= b)
            continue;
        total += (e < b ? e : b) - (s > a ? s : a);
    }
    if (last < b)
        total += b - (last > a ? last : a);
    return total;
}
