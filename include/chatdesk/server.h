/* server: owns the uv loop, the lws context, start-up and shutdown order. */
#ifndef CHATDESK_SERVER_H
#define CHATDESK_SERVER_H

#include "chatdesk/config.h"

/* Runs a node until SIGINT/SIGTERM; returns the process exit code. */
int cd_server_run(cd_config *cfg);

#endif
