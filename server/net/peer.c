/* The client's address of a connection: lws's peer address in its IPv4 form, or, when
 * the peer is one of trusted_proxies, the last X-Forwarded-For entry (the address the
 * proxy saw). Per-address limits (connections, upgrades, logins, the public API) and the
 * front door all count by this address, so it is computed in one place. */
#include <libwebsockets.h>
#include <string.h>

#include "chatdesk/net.h"

static bool in_list(const char *list, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        if ((size_t)(e - p) == n && n && memcmp(p, item, n) == 0)
            return true;
        p = e;
    }
    return false;
}

bool cd_net_trusted_proxy(const cd_config *cfg, const char *ip)
{
    return cfg->trusted_proxies[0] && ip[0] && in_list(cfg->trusted_proxies, ip);
}

static void peer_ip(struct lws *wsi, char *out, size_t outsz)
{
    out[0] = '\0';
    lws_get_peer_simple(wsi, out, outsz);
    /* an IPv4 client of a dual-stack socket reads "::ffff:a.b.c.d": use the IPv4 form */
    if (strncmp(out, "::ffff:", 7) == 0 && strchr(out + 7, '.'))
        memmove(out, out + 7, strlen(out + 7) + 1);
}

bool cd_net_peer_is_proxy(struct lws *wsi, const cd_config *cfg)
{
    char ip[64];
    peer_ip(wsi, ip, sizeof ip);
    return cd_net_trusted_proxy(cfg, ip);
}

void cd_net_client_ip(struct lws *wsi, const cd_config *cfg, char *out, size_t outsz)
{
    peer_ip(wsi, out, outsz);
    if (!cd_net_trusted_proxy(cfg, out))
        return;
    char xff[512];
    int n = lws_hdr_copy(wsi, xff, sizeof xff, WSI_TOKEN_X_FORWARDED_FOR);
    if (n <= 0)
        return;
    char *last = strrchr(xff, ',');
    last = last ? last + 1 : xff;
    while (*last == ' ')
        last++;
    size_t len = strcspn(last, " ");
    if (len == 0 || len >= outsz)
        return;
    memcpy(out, last, len);
    out[len] = '\0';
}
