/* cd_hub: topic -> subscribers, refcounted bus subscriptions, encode-once fan-out. */
#include <stdlib.h>
#include <string.h>

#include "chatdesk/hub.h"
#include "chatdesk/log.h"

struct cd_hub_topic {
    cd_hub_sub head; /* sentinel of a circular list */
    size_t count;
    cd_map_entry *entry; /* its key is the topic name */
};

struct cd_hub {
    cd_bus *bus;
    cd_map topics;
    unsigned long long delivered;
};

cd_hub *cd_hub_create(cd_bus *bus)
{
    cd_hub *hub = cd_calloc(1, sizeof *hub);
    hub->bus = bus;
    cd_map_init(&hub->topics);
    return hub;
}

void cd_hub_destroy(cd_hub *hub)
{
    if (!hub)
        return;
    size_t it;
    for (cd_map_entry *e = cd_map_first(&hub->topics, &it); e; e = cd_map_next(&hub->topics, e, &it))
        cd_free(e->value);
    cd_map_cleanup(&hub->topics);
    cd_free(hub);
}

void cd_hub_join(cd_hub *hub, cd_hub_sub *sub, const char *topic, cd_hub_deliver_cb deliver)
{
    if (sub->topic)
        return;
    size_t n = strlen(topic);
    cd_hub_topic *t = cd_map_get(&hub->topics, topic, n);
    if (!t) {
        t = cd_calloc(1, sizeof *t);
        t->head.next = t->head.prev = &t->head;
        t->entry = cd_map_put(&hub->topics, topic, n, t);
        cd_bus_subscribe(hub->bus, topic);
    }
    sub->deliver = deliver;
    sub->topic = t;
    sub->prev = t->head.prev;
    sub->next = &t->head;
    t->head.prev->next = sub;
    t->head.prev = sub;
    t->count++;
}

void cd_hub_leave(cd_hub *hub, cd_hub_sub *sub)
{
    cd_hub_topic *t = sub->topic;
    if (!t)
        return;
    sub->prev->next = sub->next;
    sub->next->prev = sub->prev;
    sub->next = sub->prev = NULL;
    sub->topic = NULL;
    if (--t->count == 0) {
        cd_bus_unsubscribe(hub->bus, t->entry->key);
        cd_map_del(&hub->topics, t->entry->key, t->entry->klen);
        cd_free(t);
    }
}

bool cd_hub_joined(const cd_hub_sub *sub)
{
    return sub->topic != NULL;
}

const char *cd_hub_sub_topic(const cd_hub_sub *sub)
{
    return sub->topic ? sub->topic->entry->key : NULL;
}

void cd_hub_dispatch(cd_hub *hub, const char *channel, size_t chlen, const char *payload, size_t len)
{
    cd_hub_topic *t = cd_map_get(&hub->topics, channel, chlen);
    if (!t)
        return;
    const char *nl = memchr(payload, '\n', len);
    if (!nl) {
        cd_log_warn("bus message without header on %.*s", (int)chlen, channel);
        return;
    }
    /* header: "<seq> <aud> <excl>" */
    char head[256];
    size_t hl = (size_t)(nl - payload);
    if (hl >= sizeof head)
        return;
    memcpy(head, payload, hl);
    head[hl] = '\0';
    char *sp1 = strchr(head, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2)
        return;
    cd_hub_event ev = {0};
    ev.topic = t->entry->key;
    ev.seq = strtoll(head, NULL, 10);
    ev.agents_only = sp1[1] == 'a';
    if (strcmp(sp2 + 1, "-") != 0) {
        ev.exclude = payload + (sp2 + 1 - head);
        ev.exclude_len = hl - (size_t)(sp2 + 1 - head);
    }
    const char *body = nl + 1;
    size_t blen = len - hl - 1;
    if (blen > 1 && body[0] == 'M' && body[1] == ' ') {
        /* message.created in its compact bus form: the frame is written here, once */
        cd_proto_msg m;
        if (cd_proto_parse_bus_message(body, blen, &m) != 0) {
            cd_log_warn("bad message on %.*s", (int)chlen, channel);
            return;
        }
        m.seq = ev.seq;
        ev.frame = cd_proto_encode_message_created(&m);
    } else {
        ev.frame = cd_proto_frame_from(body, blen);
    }
    /* Save next before each call: a subscriber may leave while being called. */
    cd_hub_sub *s = t->head.next;
    size_t n = t->count;
    while (s != &t->head && n--) {
        cd_hub_sub *next = s->next;
        s->deliver(s, &ev);
        hub->delivered++;
        s = next;
    }
    cd_frame_unref(ev.frame);
}

size_t cd_hub_topic_count(const cd_hub *hub)
{
    return hub->topics.count;
}

unsigned long long cd_hub_delivered(const cd_hub *hub)
{
    return hub->delivered;
}
