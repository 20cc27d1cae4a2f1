/* ticket: tickets and their SLA clocks. An unanswered conversation becomes a ticket
 * (ticket_convert.lua, an "unanswered" timer), a ticket's first-response and resolution
 * clocks follow its state (sla_sync.lua) and warn or breach when due (sla_fire.lua,
 * "slawarn"/"slabreach" timers); those are the Redis calls below. The pure half (sla.c):
 * SLA policies and business-hours calendars. The calendar turns into the business
 * intervals (UTC milliseconds) that the SLA scripts count in; the arithmetic over
 * intervals is here too (and mirrored in store/lua/_common.lua, where the atomic scripts
 * use it), so both are tested against each other. */
#ifndef CHATDESK_TICKET_H
#define CHATDESK_TICKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatdesk/base.h"
#include "chatdesk/config.h"
#include "chatdesk/store.h"
#include "chatdesk/timers.h"

#define CD_SLA_MAX_RANGES 4 /* opening ranges per weekday */
#define CD_SLA_MAX_HOLIDAYS 64

typedef struct cd_sla_calendar {
    char tz[64];      /* IANA zone, "" = UTC */
    bool always_open; /* no hours given: 24x7 */
    /* per weekday (0 = Sunday, as struct tm), ranges in minutes since local midnight */
    struct {
        int n;
        int open[CD_SLA_MAX_RANGES], close[CD_SLA_MAX_RANGES];
    } day[7];
    int nholidays;
    int holidays[CD_SLA_MAX_HOLIDAYS]; /* yyyymmdd */
} cd_sla_calendar;

/* Parse {"tz":"Asia/Shanghai","hours":{"mon":[["09:00","18:00"]],...},"holidays":["2026-12-25"]}
 * (NULL or "" -> 24x7 UTC). Returns 0, or -1 with a message in err. An unknown time zone
 * is an error. */
int cd_sla_calendar_parse(const char *json, cd_sla_calendar *cal, char *err, size_t errsz);

/* The calendar's open intervals that overlap [from_ms, to_ms), in UTC ms, written to out
 * as "s1,e1,s2,e2,..." ("*" for 24x7). DST is handled by the system time zone database. */
void cd_sla_intervals(const cd_sla_calendar *cal, int64_t from_ms, int64_t to_ms, cd_buf *out);

/* Business arithmetic over an interval string from cd_sla_intervals:
 * add: the instant when `business_ms` of open time have passed after start;
 * between: open time in [a, b). Beyond the last interval time counts as open. */
int64_t cd_sla_add(const char *intervals, int64_t start_ms, int64_t business_ms);
int64_t cd_sla_between(const char *intervals, int64_t a_ms, int64_t b_ms);

/* ---- Redis calls (ticket.c) ---- */

/* A ticket call's outcome: err, and the script's error text (or NULL), valid during cb. */
typedef void (*cd_ticket_cb)(void *ud, cd_err err, const char *message);

/* Each call: 0 and cb (may be NULL) fires once, or -1 when Redis is unavailable (cb never
 * fires). intervals: the site's business intervals (cd_sla_intervals), NULL for 24x7. */
/* The site's business intervals for the SLA scripts ("*" for 24x7 or an unknown site). */
typedef const char *(*cd_ticket_intervals_fn)(void *ud, const char *site);
/* Registers the ticket timer kinds: "unanswered|<site>|<cid>" (cd_ticket_convert),
 * "slawarn|<cid>|<clock>" and "slabreach|<cid>|<clock>" (cd_ticket_sla_fire). */
void cd_ticket_timers_register(cd_timers *t, cd_store *st, const cd_config *cfg, cd_ticket_intervals_fn intervals,
                               void *iv_ud);
/* Timer "unanswered": the conversation nobody answered becomes a ticket. */
int cd_ticket_convert(cd_store *st, const cd_config *cfg, const char *site, const char *cid, const char *intervals,
                      cd_ticket_cb cb, void *ud);
/* Re-align a ticket's SLA clocks with its state (pause while pending, next response...). */
int cd_ticket_sla_sync(cd_store *st, const char *site, const char *cid, const char *intervals, cd_ticket_cb cb,
                       void *ud);
/* Timers "slawarn"/"slabreach": kind is the clock ("first_response", "resolution"),
 * level "warn" or "breach". */
int cd_ticket_sla_fire(cd_store *st, const cd_config *cfg, const char *site, const char *cid, const char *kind,
                       const char *level, cd_ticket_cb cb, void *ud);

#endif
