/* store module internals. */
#ifndef CHATDESK_STORE_INT_H
#define CHATDESK_STORE_INT_H

#include "chatdesk/store.h"

void cd_store__rconn_stats(const cd_rconn *rc, unsigned long long *reconnects, unsigned long long *ping_failures);
/* Round trip of the last answered PING, in microseconds (0 before the first). */
unsigned long long cd_store__rconn_rtt_us(const cd_rconn *rc);

#endif
