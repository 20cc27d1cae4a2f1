/* webhook: outbound webhook deliveries (docs/api.md "Webhooks", docs/keyspace.md).
 * Due deliveries are claimed from Redis with a lease (webhooks_claim.lua), POSTed with
 * libcurl's multi interface driven by the node's libuv loop (never blocking it: curl's
 * threaded resolver, uv_poll per socket, one uv_timer), signed with HMAC-SHA256, and
 * their outcome recorded by webhooks_result.lua (delivered, retry with backoff, failed).
 * Every connection's resolved address is checked when the socket is opened, so a name
 * that resolves (or re-resolves) to loopback, private or link-local space is refused
 * unless its host is in the node's webhook_allow_hosts. */
#ifndef CHATDESK_WEBHOOK_H
#define CHATDESK_WEBHOOK_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "chatdesk/config.h"
#include "chatdesk/store.h"

struct uv_loop_s;

typedef struct cd_webhook cd_webhook;

/* The i-th site whose deliveries this node claims (the node's site cache), NULL past the
 * last: deliveries live in their site's slot, so a claim is one call per site. */
typedef const char *(*cd_webhook_site_at)(void *ctx, size_t i);
/* Starts polling for due deliveries every event_poll_ms. NULL if libcurl cannot start. */
cd_webhook *cd_webhook_create(struct uv_loop_s *loop, const cd_config *cfg, cd_store *st, cd_webhook_site_at sites,
                              void *sites_ctx);
/* A notice on the timers channel (ctx: the cd_webhook): "W <site> <due>" says a delivery
 * of the site is due at <due> (ms), so the site is claimed then; other notices are
 * ignored. */
void cd_webhook_notice(void *ctx, const char *p, size_t len);
/* Draining: claim nothing more (transfers in flight finish). */
void cd_webhook_set_draining(cd_webhook *w);
/* Aborts transfers in flight (their deliveries stay leased and are claimed again after
 * the lease: at-least-once), closes every handle; memory is freed once they are closed.
 * Call before cd_store_destroy. */
void cd_webhook_destroy(cd_webhook *w);

/* Why an address may not be reached without an allow entry: "loopback", "private",
 * "link-local", "shared" (CGNAT 100.64/10), "unspecified", "multicast", "broadcast",
 * "reserved", "documentation"..., or NULL for a public address. IPv4-mapped and
 * IPv4-compatible IPv6 forms are classified as their IPv4 address. */
const char *cd_webhook_addr_blocked(const struct sockaddr *sa);
/* The same for a textual IPv4/IPv6 address; "invalid" when it is not one. */
const char *cd_webhook_ip_blocked(const char *text);
/* Is host (lower case, IPv6 without brackets) with port in the comma-separated allow
 * list? An entry is "host" (any port) or "host:port" ("[v6]:port" for IPv6). */
bool cd_webhook_host_allowed(const char *allow_csv, const char *host, long port);
/* host (lower case, IPv6 without brackets) and port of an http(s) URL; -1 if it is not one. */
int cd_webhook_url_target(const char *url, char *host, size_t hsz, long *port);
/* Delay before the next attempt after `attempt` failed ones (1-based), with jitter
 * r in [0,1): base * {1,3,12,60,360,360…}[attempt-1] * (0.8 + 0.4 r). */
uint64_t cd_webhook_backoff_ms(uint64_t base_ms, int attempt, double r);

#endif
