/* admin: the `chatdeskd admin <command>` CLI. Writes to Redis directly (blocking
 * hiredis; it is a short-lived command, never part of a node's loop). */
#ifndef CHATDESK_ADMIN_H
#define CHATDESK_ADMIN_H

#include "chatdesk/config.h"

/* argv[0] is the command name ("site-add", ...). Options may include any config
 * flag (--redis, --prefix). Prints results on stdout, errors on stderr.
 * Returns the process exit code: 0 ok, 1 runtime error (Redis, duplicate), 2 usage. */
int cd_admin_main(cd_config *cfg, int argc, char **argv);

/* `chatdeskd mail-in --site KEY`: one RFC 5322 message on stdin stored as the customer's
 * mail (docs/email.md "Inbound"). argv[0] is the first argument after "mail-in". Returns a
 * sysexits status for the MTA: 0 stored (or a duplicate, or ignored), 64 usage, 65 a mail
 * that cannot be read (kept aside), 67 no such site, 75 try again later (Redis). */
int cd_admin_mail_in(const cd_config *cfg, int argc, char **argv);

#endif
