/* The ticket calls: each is one Redis function on the conversation's key (in the site its
 * id names, else in the site given), answered with an error or nothing the caller needs. */
#include <jansson.h>
#include <stdio.h>

#include <string.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"
#include "chatdesk/ticket.h"

#define I64(buf, v) (snprintf(buf, sizeof buf, "%lld", (long long)(v)), buf)

typedef struct call {
    cd_ticket_cb cb;
    void *ud;
} call;

static void on_reply(void *ud, cd_err err, const char *json, size_t len)
{
    call *c = ud;
    json_t *root = err != CD_ERR_OK && json ? json_loadb(json, len, 0, NULL) : NULL;
    if (c->cb)
        c->cb(c->ud, err, json_string_value(json_object_get(root, "message")));
    json_decref(root);
    cd_free(c);
}

static int run(cd_store *st, const char *script, const char *site, const char *cid, int n, const char *const *args,
               cd_ticket_cb cb, void *ud)
{
    cd_key k;
    const char *keys[] = {cd_key_conv(&k, cd_store_prefix(st), site, cid)};
    call *c = cd_malloc(sizeof *c);
    c->cb = cb;
    c->ud = ud;
    if (cd_store_fcall(st, script, 1, keys, n, args, NULL, on_reply, c) != 0) {
        cd_free(c);
        return -1;
    }
    return 0;
}

int cd_ticket_convert(cd_store *st, const cd_config *cfg, const char *site, const char *cid, const char *intervals,
                      cd_ticket_cb cb, void *ud)
{
    char now[24], msg_id[64], retain[24];
    cd_id_new("m", msg_id, sizeof msg_id);
    const char *args[] = {cid, I64(now, cd_now_ms()), intervals ? intervals : "*", msg_id,
                          I64(retain, cfg->history_retain)};
    return run(st, "ticket_convert", site, cid, 5, args, cb, ud);
}

int cd_ticket_sla_sync(cd_store *st, const char *site, const char *cid, const char *intervals, cd_ticket_cb cb,
                       void *ud)
{
    char now[24];
    const char *args[] = {cid, I64(now, cd_now_ms()), intervals ? intervals : "*"};
    return run(st, "sla_sync", site, cid, 3, args, cb, ud);
}

int cd_ticket_sla_fire(cd_store *st, const cd_config *cfg, const char *site, const char *cid, const char *kind,
                       const char *level, cd_ticket_cb cb, void *ud)
{
    char now[24], note_id[64], retain[24];
    cd_id_new("m", note_id, sizeof note_id);
    const char *args[] = {cid, kind, level, I64(now, cd_now_ms()), "*", note_id, I64(retain, cfg->history_retain)};
    return run(st, "sla_fire", site, cid, 7, args, cb, ud);
}

/* ---- timer handlers ---- */

typedef struct timer_ctx {
    cd_store *st;
    const cd_config *cfg;
    cd_ticket_intervals_fn intervals;
    void *iv_ud;
} timer_ctx;

static void on_fired(void *ud, cd_err err, const char *message)
{
    (void)ud;
    if (err != CD_ERR_OK && err != CD_ERR_UNAVAILABLE)
        cd_log_warn("ticket timer failed: %s %s", cd_err_name(err), message ? message : "");
}

/* arg "<a>|<b>" into a and b (false when it has no '|'). */
static bool split2(const char *arg, char *a, size_t asz, char *b, size_t bsz)
{
    const char *bar = strchr(arg, '|');
    if (!bar || (size_t)(bar - arg) >= asz)
        return false;
    memcpy(a, arg, (size_t)(bar - arg));
    a[bar - arg] = '\0';
    cd_strlcpy(b, bar + 1, bsz);
    return true;
}

/* "unanswered|<site>|<cid>": the site is the member's (the ticket's clocks count in it). */
static void on_unanswered(void *ud, const char *site, const char *arg)
{
    timer_ctx *c = ud;
    char tsite[80], cid[160];
    (void)site;
    if (!split2(arg, tsite, sizeof tsite, cid, sizeof cid)) {
        cd_log_warn("timer of unknown kind: unanswered|%s", arg);
        return;
    }
    cd_ticket_convert(c->st, c->cfg, tsite, cid, c->intervals(c->iv_ud, tsite), on_fired, NULL);
}

static void sla_fire(timer_ctx *c, const char *site, const char *arg, const char *level)
{
    char cid[160], clock[40];
    if (!split2(arg, cid, sizeof cid, clock, sizeof clock)) {
        cd_log_warn("timer of unknown kind: sla %s|%s", level, arg);
        return;
    }
    cd_ticket_sla_fire(c->st, c->cfg, site, cid, clock, level, on_fired, NULL);
}

static void on_slawarn(void *ud, const char *site, const char *arg)
{
    sla_fire(ud, site, arg, "warn");
}

static void on_slabreach(void *ud, const char *site, const char *arg)
{
    sla_fire(ud, site, arg, "breach");
}

void cd_ticket_timers_register(cd_timers *t, cd_store *st, const cd_config *cfg, cd_ticket_intervals_fn intervals,
                               void *iv_ud)
{
    timer_ctx *c = cd_timers_context(t, sizeof *c);
    c->st = st;
    c->cfg = cfg;
    c->intervals = intervals;
    c->iv_ud = iv_ud;
    cd_timers_register(t, "unanswered", on_unanswered, c);
    cd_timers_register(t, "slawarn", on_slawarn, c);
    cd_timers_register(t, "slabreach", on_slabreach, c);
}
