/* timers: deadlines kept in Redis, fired once across all nodes. A timer is a member
 * "<kind>|<arg>" of its site's zset P{s:<site>}:timers scored by its due time (set by the
 * scripts that decide it, timer_set in _common.lua, which also publishes "T <site> <due>"
 * on the timers channel). Any node claims due members with a lease (timers_claim.lua,
 * timer_lease_ms) and runs the handler registered for the kind; a member whose handler
 * never finished (the node died) is claimed again when its lease expires, so handlers
 * must be idempotent, and each is one atomic script that removes its timer.
 *
 * Sites are polled only when one may be due: when a notice or the last claim says so,
 * and all of them once after every site cache load (the safety net for a notice lost
 * while the bus was down). Idle sites cost nothing in between.
 *
 * Modules register their kinds at start-up (conv: autoclose; ticket: unanswered,
 * slawarn, slabreach; the rules consumer: rule); a kind nobody registered is logged and
 * left to its lease. */
#ifndef CHATDESK_TIMERS_H
#define CHATDESK_TIMERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatdesk/config.h"
#include "chatdesk/store.h"

typedef struct cd_timers cd_timers;

/* A due timer: site is that of its zset, arg the member after "<kind>|" (a conversation
 * id of the previous release names no site: the zset's is the right one). */
typedef void (*cd_timers_handler)(void *ud, const char *site, const char *arg);

cd_timers *cd_timers_create(const cd_config *cfg, cd_store *st);
void cd_timers_destroy(cd_timers *t);
/* One handler per kind (a second registration replaces the first); kind is copied. */
void cd_timers_register(cd_timers *t, const char *kind, cd_timers_handler fn, void *ud);
/* size zeroed bytes that live as long as t: a place for a handler's ud. */
void *cd_timers_context(cd_timers *t, size_t size);
/* The sites to poll (the site cache was loaded): each is polled at the next tick. */
void cd_timers_set_sites(cd_timers *t, const char *const *sites, size_t n);
/* A "T <site> <due>" notice from the timers channel: poll that site by then. */
void cd_timers_notice(cd_timers *t, const char *data, size_t len);
/* The cron tick (store up only): every timer_poll_ms, one claim per site whose timers may be due. */
void cd_timers_tick(cd_timers *t, uint64_t now);
/* The store went down: the claims in flight are forgotten (their callbacks still come). */
void cd_timers_on_store(cd_timers *t, bool up);
/* Run the handler of member "<kind>|<arg>" of site's zset now (false: unknown kind). */
bool cd_timers_fire(cd_timers *t, const char *site, const char *member);

#endif
