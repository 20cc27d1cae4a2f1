/* admin module internals. */
#ifndef CHATDESK_ADMIN_INT_H
#define CHATDESK_ADMIN_INT_H

#include <hiredis/hiredis.h>

#include "chatdesk/config.h"

/* FCALL <library>_<script> nkeys keys… P args… (admin.c; the keys of one slot): follows a
 * Redis Cluster redirect once, loads the library when Redis lacks it. The reply (not an
 * error reply), or NULL after printing why on stderr. */
redisReply *cd_admin__fcall(redisContext *c, const cd_config *cfg, const char *script, int nkeys,
                            const char *const *keys, int nargs, const char *const *args);
/* Connects as the config says (admin.c); NULL with *rc set after printing why. */
redisContext *cd_admin__redis_open(const cd_config *cfg, int *rc);

/* chatdeskd admin migrate (migrate.c): move the keys of the previous layout under prefix
 * P to this release's names and print what moved as one line of JSON. 0 ok, -1 on a
 * Redis error (what moved before it stays moved; run again to resume). */
int cd_admin__migrate(const char *P, redisContext *c);

#endif
