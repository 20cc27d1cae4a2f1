/* server module internals: the front door (door.c). */
#ifndef CHATDESK_SERVER_INT_H
#define CHATDESK_SERVER_INT_H

#include <stddef.h>
#include <uv.h>

#include "chatdesk/config.h"
#include "chatdesk/net.h"

/* Hands a connection to lws once its whole request head waits in the socket (nothing of
 * it has been read: lws reads it as from a connection it accepted). lws owns fd then. */
typedef void (*cd_door_adopt_fn)(void *ud, int fd);

typedef struct cd_door cd_door;

/* Binds and listens on cfg->bind:cfg->port (SO_REUSEPORT with cfg->reuseport). NULL with
 * a log line when the address cannot be used. Counters go to cx (door_* fields). */
cd_door *cd_door__create(uv_loop_t *loop, const cd_config *cfg, cd_net_ctx *cx, cd_door_adopt_fn adopt, void *ud);
/* The port actually bound (cfg->port 0 picks one). */
int cd_door__port(const cd_door *d);
/* Stops listening, closes every connection still in the door; the memory goes once the
 * loop has run the handles' close callbacks. */
void cd_door__destroy(cd_door *d);

#endif
