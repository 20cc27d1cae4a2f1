/* clock: wall-clock and monotonic milliseconds, cached once per loop iteration by the
 * server, so domain code never calls time() or clock_gettime() and tests can drive a
 * fake clock. */
#ifndef CHATDESK_CLOCK_H
#define CHATDESK_CLOCK_H

#include <stdint.h>

/* Unix milliseconds (CLOCK_REALTIME). */
uint64_t cd_now_ms(void);
/* Monotonic milliseconds. */
uint64_t cd_mono_ms(void);

#endif
