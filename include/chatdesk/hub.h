/* hub: node-local fan-out. topic ("conv:c_1", "site:demo", "agent:a_1", "visitor:v_1")
 * -> intrusive list of subscribers. The first subscriber of a topic subscribes the
 * bus channel, the last one to leave unsubscribes it. Each bus message is turned
 * into one cd_frame (encoded once) and offered to every subscriber. */
#ifndef CHATDESK_HUB_H
#define CHATDESK_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatdesk/bus.h"
#include "chatdesk/proto.h"

typedef struct cd_hub cd_hub;
typedef struct cd_hub_sub cd_hub_sub;
typedef struct cd_hub_topic cd_hub_topic;

typedef struct cd_hub_event {
    const char *topic;   /* "conv:c_1" */
    int64_t seq;         /* message seq, 0 for other events */
    bool agents_only;    /* private note: visitors only advance their seq */
    const char *exclude; /* "<kind>:<id>" of an author who should not get it, or NULL */
    size_t exclude_len;
    cd_frame *frame; /* the client frame; cd_frame_ref() it to keep it */
} cd_hub_event;

typedef void (*cd_hub_deliver_cb)(cd_hub_sub *sub, const cd_hub_event *ev);

/* Embedded by subscribers; zero it before the first join. */
struct cd_hub_sub {
    cd_hub_sub *next, *prev;
    cd_hub_topic *topic;
    cd_hub_deliver_cb deliver;
};

cd_hub *cd_hub_create(cd_bus *bus);
void cd_hub_destroy(cd_hub *hub);
/* Join a topic (no-op if sub is already on it). */
void cd_hub_join(cd_hub *hub, cd_hub_sub *sub, const char *topic, cd_hub_deliver_cb deliver);
void cd_hub_leave(cd_hub *hub, cd_hub_sub *sub);
bool cd_hub_joined(const cd_hub_sub *sub);
const char *cd_hub_sub_topic(const cd_hub_sub *sub);
/* Feed one bus message ("<seq> <aud> <excl>\n<json>"). */
void cd_hub_dispatch(cd_hub *hub, const char *channel, size_t chlen, const char *payload, size_t len);
size_t cd_hub_topic_count(const cd_hub *hub);
unsigned long long cd_hub_delivered(const cd_hub *hub);

#endif
