/* store module internals. */
#ifndef CHATDESK_STORE_INT_H
#define CHATDESK_STORE_INT_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>

#include "chatdesk/store.h"

void cd_store__rconn_stats(const cd_rconn *rc, unsigned long long *reconnects, unsigned long long *ping_failures);
/* Round trip of the last answered PING, in microseconds (0 before the first). */
unsigned long long cd_store__rconn_rtt_us(const cd_rconn *rc);

/* ---- Redis Cluster (cluster.c): pure helpers for redis+cluster:// ---- */
#define CD_CLUSTER_SLOTS 16384
#define CD_CLUSTER_NO_NODE 0xFFFF
/* The slot of a key: CRC16 of its hash tag ({…}, when not empty), else of the whole key. */
int cd_cluster_slot(const char *key, size_t len);
typedef struct cd_cluster_redir {
    bool ask; /* ASK (this command only) rather than MOVED (the slot moved) */
    int slot;
    char host[256];
    int port;
} cd_cluster_redir;
/* Parses "MOVED <slot> <host>:<port>" or "ASK …"; -1 for any other error text. */
int cd_cluster_redirect(const char *err, cd_cluster_redir *out);
/* CLUSTER SLOTS -> slots[CD_CLUSTER_SLOTS] of node indexes given by add(host, port)
 * (CD_CLUSTER_NO_NODE where no range covers the slot). Returns the slots covered or -1. */
int cd_cluster_parse_slots(const redisReply *r, uint16_t *slots, int (*add)(void *ud, const char *host, int port),
                           void *ud);

#endif
