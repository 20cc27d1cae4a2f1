/* proto_int.h: helpers shared by the files of the proto module only.
 * Never included from outside server/proto/ (scripts/check-includes.sh). */
#ifndef CHATDESK_PROTO_INT_H
#define CHATDESK_PROTO_INT_H

#include <stddef.h>

/* Length (1..4) of the well-formed UTF-8 sequence starting at s (n bytes
 * available), or 0 when the bytes there are not one: overlong forms,
 * surrogates (U+D800..U+DFFF), code points above U+10FFFF, stray continuation
 * bytes and truncated sequences are all rejected. n must be >= 1. */
size_t cd_proto__utf8_seq(const unsigned char *s, size_t n);

#endif
