/* utf8.c: strict UTF-8 validation for incoming text frames.
 *
 * PROTOCOL.md says invalid UTF-8 closes the connection with 1007 (lws checks
 * that on the wire), and the decoder checks again so that proto stays correct
 * on its own: every string handed to the rest of the server is well-formed
 * UTF-8. "Well-formed" is Unicode's Table 3-7: no overlong forms, no UTF-16
 * surrogates, nothing above U+10FFFF, no truncated sequences. NUL (U+0000) is
 * valid UTF-8; it is rejected later by the JSON parser, not here. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "chatdesk/proto.h"
#include "proto_int.h"

/* Table 3-7 of the Unicode standard, byte by byte. The second byte's range
 * depends on the lead byte; that is what excludes overlongs (E0, F0),
 * surrogates (ED) and code points above U+10FFFF (F4). */
size_t cd_proto__utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;

    if (c < 0x80)
        return 1;
    if (c < 0xC2) /* continuation byte, or overlong 2-byte lead C0/C1 */
        return 0;
    if (c < 0xE0) {
        len = 2;
    } else if (c < 0xF0) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong below U+0800 */
        else if (c == 0xED)
            hi = 0x9F; /* U+D800..U+DFFF */
    } else if (c < 0xF5) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong below U+10000 */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0; /* F5..FF never appear */
    }
    if (n < len)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

bool cd_proto_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    if (len == 0)
        return true;
    if (!s)
        return false;
    while (i < len) {
        /* Chat text is mostly ASCII: skip 8 bytes at a time while no high bit is set. */
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & UINT64_C(0x8080808080808080))
                break;
            i += 8;
        }
        if (i >= len)
            break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = cd_proto__utf8_seq(s + i, len - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}
