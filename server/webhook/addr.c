/* addr.c: which addresses a webhook may reach (SSRF protection), the allow list and the
 * retry schedule. Pure functions, unit-tested in tests/unit/test_webhook.c. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chatdesk/base.h"
#include "chatdesk/webhook.h"

/* IPv4 address in host byte order */
static const char *v4_blocked(uint32_t a)
{
    static const struct {
        uint32_t net;
        int bits;
        const char *why;
    } nets[] = {
        {0x00000000u, 8, "unspecified"},    /* 0.0.0.0/8 "this network" */
        {0x0A000000u, 8, "private"},        /* 10/8 */
        {0x64400000u, 10, "shared"},        /* 100.64/10 carrier-grade NAT */
        {0x7F000000u, 8, "loopback"},       /* 127/8 */
        {0xA9FE0000u, 16, "link-local"},    /* 169.254/16 (cloud metadata) */
        {0xAC100000u, 12, "private"},       /* 172.16/12 */
        {0xC0000000u, 24, "reserved"},      /* 192.0.0/24 IETF protocol assignments */
        {0xC0000200u, 24, "documentation"}, /* 192.0.2/24 TEST-NET-1 */
        {0xC0A80000u, 16, "private"},       /* 192.168/16 */
        {0xC6120000u, 15, "reserved"},      /* 198.18/15 benchmarking */
        {0xC6336400u, 24, "documentation"}, /* 198.51.100/24 TEST-NET-2 */
        {0xCB007100u, 24, "documentation"}, /* 203.0.113/24 TEST-NET-3 */
        {0xE0000000u, 4, "multicast"},      /* 224/4 */
        {0xFFFFFFFFu, 32, "broadcast"},     /* 255.255.255.255 */
        {0xF0000000u, 4, "reserved"},       /* 240/4 */
    };
    for (size_t i = 0; i < CD_ARRAY_LEN(nets); i++) {
        uint32_t mask = nets[i].bits == 0 ? 0 : 0xFFFFFFFFu << (32 - nets[i].bits);
        if ((a & mask) == nets[i].net)
            return nets[i].why;
    }
    return NULL;
}

static const char *v6_blocked(const unsigned char b[16])
{
    static const unsigned char zero[16];
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(b, zero, 15) == 0)
        return b[15] == 1 ? "loopback" : b[15] == 0 ? "unspecified" : "reserved"; /* ::1, ::, ::a.b.c.d */
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, zero, 12) == 0) {                 /* ::ffff:a.b.c.d, ::a.b.c.d */
        uint32_t a = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
        return v4_blocked(a);
    }
    /* 64:ff9b::/96 NAT64 embeds an IPv4 address */
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (memcmp(b, nat64, 12) == 0) {
        uint32_t a = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
        return v4_blocked(a);
    }
    if ((b[0] & 0xfe) == 0xfc)
        return "private"; /* fc00::/7 unique local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return "link-local"; /* fe80::/10 */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        return "private"; /* fec0::/10 site-local (deprecated) */
    if (b[0] == 0xff)
        return "multicast";
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
        return "documentation";         /* 2001:db8::/32 */
    if (b[0] == 0x20 && b[1] == 0x02) { /* 6to4 2002:AABB:CCDD::/48 embeds an IPv4 address */
        uint32_t a = (uint32_t)b[2] << 24 | (uint32_t)b[3] << 16 | (uint32_t)b[4] << 8 | b[5];
        return v4_blocked(a);
    }
    if (b[0] == 0x01 && b[1] == 0x00 && memcmp(b + 2, zero, 6) == 0)
        return "reserved"; /* 100::/64 discard */
    return NULL;
}

const char *cd_webhook_addr_blocked(const struct sockaddr *sa)
{
    if (!sa)
        return "invalid";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return v4_blocked(ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        return v6_blocked(in6->sin6_addr.s6_addr);
    }
    return "not an IP address";
}

const char *cd_webhook_ip_blocked(const char *text)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, text, &a4) == 1)
        return v4_blocked(ntohl(a4.s_addr));
    if (inet_pton(AF_INET6, text, &a6) == 1)
        return v6_blocked(a6.s6_addr);
    return "invalid";
}

/* one entry of the allow list against host/port */
static bool entry_matches(const char *e, size_t n, const char *host, long port)
{
    size_t hl = strlen(host);
    const char *h = e;
    size_t hn = n;
    long eport = -1;
    if (n && e[0] == '[') { /* [v6] or [v6]:port */
        const char *close = memchr(e, ']', n);
        if (!close)
            return false;
        h = e + 1;
        hn = (size_t)(close - h);
        if ((size_t)(close + 1 - e) < n) {
            if (close[1] != ':')
                return false;
            eport = strtol(close + 2, NULL, 10);
        }
    } else {
        const char *colon = memchr(e, ':', n);
        if (colon && !memchr(colon + 1, ':', n - (size_t)(colon + 1 - e))) { /* host:port (not bare v6) */
            hn = (size_t)(colon - e);
            eport = strtol(colon + 1, NULL, 10);
        }
    }
    if (hn != hl || strncasecmp(h, host, hl) != 0)
        return false;
    return eport < 0 || eport == port;
}

bool cd_webhook_host_allowed(const char *allow_csv, const char *host, long port)
{
    if (!allow_csv || !host || !*host)
        return false;
    const char *p = allow_csv;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        if (e > p && entry_matches(p, (size_t)(e - p), host, port))
            return true;
        p = e;
    }
    return false;
}

uint64_t cd_webhook_backoff_ms(uint64_t base_ms, int attempt, double r)
{
    static const unsigned mult[] = {1, 3, 12, 60, 360};
    if (attempt < 1)
        attempt = 1;
    size_t i = (size_t)attempt - 1;
    if (i >= CD_ARRAY_LEN(mult))
        i = CD_ARRAY_LEN(mult) - 1;
    if (r < 0 || r >= 1)
        r = 0.5;
    return (uint64_t)((double)base_ms * mult[i] * (0.8 + 0.4 * r));
}
