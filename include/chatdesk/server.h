/* server: the node's process: owns the uv loop and the lws context, creates every module
 * in start-up order (store, bus, hub, node and the modules' timer kinds, webhooks, the
 * front door) and shuts them down in reverse on SIGINT/SIGTERM after draining. The only
 * place that knows all modules, so none of them needs to know another's construction. */
#ifndef CHATDESK_SERVER_H
#define CHATDESK_SERVER_H

#include "chatdesk/config.h"

/* Runs a node until SIGINT/SIGTERM; returns the process exit code. */
int cd_server_run(cd_config *cfg);

#endif
