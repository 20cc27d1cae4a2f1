/* route: who serves a waiting conversation. An agent's global record (status, name,
 * teams, max_chats, disabled) is copied into its record in each of its sites, and each
 * of those calls drains that site's queues while the agent is online (agent_site.lua);
 * route_drain.lua assigns what waits in a site (or every site) to agents with capacity.
 * Every assignment is one atomic Redis step; the conversations a call gave away come
 * back so the node can hand them to the agent's local sessions at once. Presence changes
 * (presence/) and agent settings (a "sites" bus notice) start these syncs. */
#ifndef CHATDESK_ROUTE_H
#define CHATDESK_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatdesk/base.h"
#include "chatdesk/store.h"

/* A conversation a script gave to an agent. */
typedef struct cd_route_assigned {
    char agent_id[80];
    char cid[160];
    char site[80];
    int64_t last_seq;
    char *raw; /* the conversation object */
} cd_route_assigned;

/* What a routing call (or a group of them) did: the first error, and every conversation
 * the sites gave away. Valid during the callback only. */
typedef struct cd_route_result {
    cd_err err;
    const char *message; /* the script's error text, or NULL */
    const cd_route_assigned *assigned;
    size_t n_assigned;
} cd_route_result;

typedef void (*cd_route_cb)(void *ud, const cd_route_result *r);

/* Bring the agent's record in each of its sites in line with its global record: one
 * read, then one call per site. cb (may be NULL) fires once, after the last of them.
 * Always 0 (a call that cannot start counts as done). */
int cd_route_agent_sync(cd_store *st, const char *aid, cd_route_cb cb, void *ud);
/* A ch:sites notice: true when it is {"type":"agent.changed","id":…} (then the agent is
 * synced as above), false for any other notice. */
bool cd_route_agent_notice(cd_store *st, const char *frame, size_t len);
/* Assign waiting conversations of a site (NULL: every site) to agents with capacity.
 * 0 and cb (may be NULL) fires once, or -1 when Redis is unavailable. */
int cd_route_drain(cd_store *st, const char *site, cd_route_cb cb, void *ud);

/* A group of syncs whose caller waits for all of them (presence/ syncs every agent whose
 * status a presence call changed): cb fires once, after the creator's release and the
 * last sync, with the error set by cd_route_group_fail and every assignment. */
typedef struct cd_route_group cd_route_group;
cd_route_group *cd_route_group_create(cd_store *st, cd_route_cb cb, void *ud);
void cd_route_group_sync(cd_route_group *g, const char *aid);
/* The group's outcome is err (message copied). */
void cd_route_group_fail(cd_route_group *g, cd_err err, const char *message);
/* The creator is done adding syncs; may fire cb and free g. */
void cd_route_group_release(cd_route_group *g);
/* Frees a group that started nothing (its first call could not start): cb never fires. */
void cd_route_group_cancel(cd_route_group *g);

#endif
