/* presence: whether an agent is online. An agent's status is what it sets (presence.lua)
 * while at least one node vouches for a live connection of it: each node touches the
 * agents it holds every presence_beat_s with an expiry (presence_touch.lua), drops one
 * when its last connection here goes, and any node expires what nobody renewed
 * (presence_sweep.lua), so an agent whose node died goes offline within presence_ttl_s.
 * Every status change is followed by the agent's record in each of its sites (route/),
 * which may assign it waiting conversations; the callback gets them. */
#ifndef CHATDESK_PRESENCE_H
#define CHATDESK_PRESENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatdesk/config.h"

#include "chatdesk/route.h"
#include "chatdesk/store.h"

/* Each call: 0 and cb (may be NULL) fires once, after the syncs of every agent whose
 * status changed, or -1 when Redis is unavailable (cb never fires). */
int cd_presence_set(cd_store *st, const char *aid, const char *status, cd_route_cb cb, void *ud);
/* This node vouches for the agents' live connections until expiry_ms. */
int cd_presence_touch(cd_store *st, const char *node, int64_t expiry_ms, const char *const *agent_ids, size_t n,
                      cd_route_cb cb, void *ud);
/* Expire presence: all due agents (node/agent NULL), or one node's entry for one agent. */
int cd_presence_sweep(cd_store *st, const char *node, const char *agent_id, cd_route_cb cb, void *ud);

/* Whether an agent of the site is online, as routing sees it (site_online.lua, reads
 * only): the widget's pre-chat form follows it ("availability"). 0 and cb fires once with
 * the answer, or -1 when Redis is unavailable (cb never fires). */
typedef void (*cd_presence_online_cb)(void *ud, cd_err err, bool online);
int cd_presence_site_online(cd_store *st, const char *site, cd_presence_online_cb cb, void *ud);

/* ---- this node's agents (presence_local.c) ---- */

/* The agents with a live connection on this node, and the node's vouching for them. */
typedef struct cd_presence_local cd_presence_local;
/* on_assigned (may be NULL) hears every conversation the syncs these calls started gave
 * to an agent, so the node can hand it to the agent's sessions at once. */
cd_presence_local *cd_presence_local_create(cd_store *st, const cd_config *cfg, const char *node_id,
                                            cd_route_cb on_assigned, void *ud);
/* Replies still in flight find it gone; the memory goes with the last of them. */
void cd_presence_local_destroy(cd_presence_local *p);
/* A connection of the agent became active / went away here. The first one touches its
 * presence and syncs its site records; the last one drops this node's entry. */
void cd_presence_agent_up(cd_presence_local *p, const char *aid);
void cd_presence_agent_down(cd_presence_local *p, const char *aid);
/* The cron tick (store up only): touch every local agent each presence_beat_s, and
 * expire what no node renewed every 2 s. */
void cd_presence_tick(cd_presence_local *p, uint64_t now);
/* The store came back: touch at the next tick. */
void cd_presence_on_store(cd_presence_local *p, bool up);

#endif
