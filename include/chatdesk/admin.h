/* admin: the `chatdeskd admin <command>` CLI. Writes to Redis directly (blocking
 * hiredis; it is a short-lived command, never part of a node's loop). */
#ifndef CHATDESK_ADMIN_H
#define CHATDESK_ADMIN_H

#include "chatdesk/config.h"

/* argv[0] is the command name ("site-add", ...). Options may include any config
 * flag (--redis, --prefix). Prints results on stdout, errors on stderr.
 * Returns the process exit code: 0 ok, 1 runtime error (Redis, duplicate), 2 usage. */
int cd_admin_main(cd_config *cfg, int argc, char **argv);

#endif
