/* clock: wall-clock milliseconds, cached per loop iteration by the server. */
#ifndef CHATDESK_CLOCK_H
#define CHATDESK_CLOCK_H

#include <stdint.h>

/* Unix milliseconds (CLOCK_REALTIME). */
uint64_t cd_now_ms(void);
/* Monotonic milliseconds. */
uint64_t cd_mono_ms(void);

#endif
