/* events: the node's side of the sites' event consumers (reports, customer health,
 * webhooks, automation rules). Each site has its own event stream in its Redis slot
 * (docs/keyspace.md "Events"); one `events` function call reads a batch once and applies
 * it for every consumer, so a site's events cost one read however many consumers want
 * them. A site is polled only when it has work: the first event after the consumers
 * caught up publishes "E <site>" on the events channel, and the node runs the site's
 * pass event_poll_ms later, so events that arrive meanwhile share the pass. Rules need
 * C between reading and applying (server/rules plans): a pass with rules is two calls.
 * Any node may run any site: a lease in Redis keeps the nodes that got the same notice
 * from reading the same batch, and every apply is exactly once (cursors move in the
 * same atomic call that applies). */
#ifndef CHATDESK_EVENTS_H
#define CHATDESK_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "chatdesk/config.h"
#include "chatdesk/hub.h"
#include "chatdesk/store.h"

struct uv_loop_s;
typedef struct cd_events cd_events;

/* A site's business intervals for the rules planner ("*" for 24x7 or unknown). */
typedef const char *(*cd_events_intervals_fn)(void *ud, const char *site);

cd_events *cd_events_create(struct uv_loop_s *loop, const cd_config *cfg, cd_store *st, cd_hub *hub, const char *owner,
                            cd_events_intervals_fn intervals, void *ud);
/* Stops the timer and frees everything once libuv has closed it. */
void cd_events_destroy(cd_events *ev);
/* The node's cron tick: the passes that are due. */
void cd_events_tick(cd_events *ev, uint64_t now_ms);
/* Run the site's consumers soon (event_poll_ms), e.g. for every site after a site cache
 * reload: the safety net for a notice lost while the bus was down. */
void cd_events_poll(cd_events *ev, const char *site);
/* The store went down (passes in flight are forgotten) or came back. */
void cd_events_on_store(cd_events *ev, bool up);
/* Draining: start no new pass. */
void cd_events_set_draining(cd_events *ev);
/* A due "rule|<site>|<rule id>|<cid>" timer (rule_and_cid = "<rule id>|<cid>"). */
void cd_events_rule_timer(cd_events *ev, const char *site, const char *rule_and_cid);

typedef struct cd_events_stats {
    uint64_t passes;  /* events calls that read a batch (run) */
    uint64_t applied; /* events they applied */
    uint64_t busy;    /* passes another node held */
    size_t pending;   /* sites this node will run */
    uint64_t lag_ms;  /* age of the oldest notice this node has not yet caught up with */
} cd_events_stats;
void cd_events_get_stats(const cd_events *ev, cd_events_stats *out);

#endif
