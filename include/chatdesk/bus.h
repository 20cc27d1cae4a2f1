/* bus: the subscriber connection. Keeps the set of channels this node needs,
 * SUBSCRIBEs them again after every reconnect, proves its own liveness by a
 * ping through Redis, and hands every message to one callback. Channel names are
 * given and delivered without the key prefix ("conv:c_1"). Reference counting
 * per channel is the hub's job: the bus is told the 0<->1 transitions. */
#ifndef CHATDESK_BUS_H
#define CHATDESK_BUS_H

#include <stdbool.h>
#include <stddef.h>

#include "chatdesk/config.h"
#include "chatdesk/store.h"

struct uv_loop_s;
typedef struct cd_bus cd_bus;

typedef void (*cd_bus_message_cb)(void *ud, const char *channel, size_t chlen, const char *payload, size_t len);
/* up=true after (re)subscribing everything: events may have been missed meanwhile,
 * so subscribers resume from history. up=false: the subscription is lost. On Redis
 * Cluster up=true also comes while up already, when shard channels were subscribed
 * again (a primary lost, a slot moved): the same backfill. */
typedef void (*cd_bus_state_cb)(void *ud, bool up);

cd_bus *cd_bus_create(struct uv_loop_s *loop, const cd_config *cfg, cd_store *st, const char *node_id,
                      cd_bus_message_cb on_message, cd_bus_state_cb on_state, void *ud);
void cd_bus_start(cd_bus *bus);
void cd_bus_stop(cd_bus *bus);
void cd_bus_destroy(cd_bus *bus);
bool cd_bus_up(const cd_bus *bus);
void cd_bus_subscribe(cd_bus *bus, const char *channel);
void cd_bus_unsubscribe(cd_bus *bus, const char *channel);
size_t cd_bus_channel_count(const cd_bus *bus);

#endif
