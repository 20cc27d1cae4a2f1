/* depth.c: the nesting-depth pre-scan run before the JSON parser.
 *
 * jansson parses recursively and would happily build a 2048-deep tree from a
 * 4 KiB frame of '['. The limit (max_depth, default 8) is enforced here on the
 * raw bytes, before any allocation, in one linear pass that stops as soon as
 * the limit is exceeded. Brackets inside string literals do not count, and a
 * backslash escapes the next byte (so "\"" does not end a string). The scan
 * does not validate JSON; the parser does that afterwards. */
#include <limits.h>
#include <stddef.h>

#include "chatdesk/proto.h"

/* Returns the maximum nesting depth of the JSON text (0 for a scalar, 1 for
 * {} or []), or limit + 1 as soon as the depth exceeds limit. Unbalanced
 * closing brackets never push the depth below zero. */
int cd_proto_json_depth(const char *s, size_t len, int limit)
{
    int depth = 0, max = 0;
    int in_str = 0;

    if (!s)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++; /* skip the escaped byte, whatever it is */
            else if (c == '"')
                in_str = 0;
            continue;
        }
        switch (c) {
        case '"':
            in_str = 1;
            break;
        case '{':
        case '[':
            if (++depth > max) {
                max = depth;
                if (max > limit)
                    return limit < INT_MAX ? limit + 1 : INT_MAX;
            }
            break;
        case '}':
        case ']':
            if (depth > 0)
                depth--;
            break;
        default:
            break;
        }
    }
    return max;
}
