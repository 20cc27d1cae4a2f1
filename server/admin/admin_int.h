/* admin module internals. */
#ifndef CHATDESK_ADMIN_INT_H
#define CHATDESK_ADMIN_INT_H

#include <hiredis/hiredis.h>

/* chatdeskd admin migrate (migrate.c): move the keys of the previous layout under prefix
 * P to this release's names and print what moved as one line of JSON. 0 ok, -1 on a
 * Redis error (what moved before it stays moved; run again to resume). */
int cd_admin__migrate(const char *P, redisContext *c);

#endif
