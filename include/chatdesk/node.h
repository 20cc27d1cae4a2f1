/* node: what every connection on this node shares and reads from Redis, and the node's
 * one repeating timer.
 * - The keyring (keys.c): the token signing keys, from token_secret or else from Redis
 *   (keys_init.lua creates one key the first time), loaded until it is ready; no hello
 *   or API call is served before.
 * - The site cache (sites.c): every site's origins, identity secret and SLA calendar
 *   with its business intervals (cached for a day ahead), and the agent dashboard's
 *   origins. Loaded on every store connect, on a "sites" bus notice and every
 *   site_cache_refresh_s; the loads are coalesced, so a burst of notices costs one or two.
 * - The gauges (gauges.c): queue depths, backlog, timer lag and event stream length for
 *   /metrics, one metrics_ops call per cached site every few seconds (never per scrape).
 * - The cron (cron.c): one uv timer; each module's tick is registered with its period
 *   and called from it (Redis serverCron's run_with_period), so no module starts
 *   repeating timers of its own.
 * Nothing here knows a session or a connection. */
#ifndef CHATDESK_NODE_H
#define CHATDESK_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatdesk/auth.h"
#include "chatdesk/config.h"
#include "chatdesk/store.h"
#include "chatdesk/ticket.h"

struct uv_loop_s;

/* ---- the site cache ---- */

typedef struct cd_site {
    char *key;
    char **origins;
    size_t n_origins;
    char *secret;             /* "" when identity verification is off */
    bool require_2fa;         /* its agents must use two-factor login (api_totp.lua) */
    cd_sla_calendar calendar; /* business hours of the site's SLA (24x7 when unset) */
    char *intervals;          /* cached business intervals, or NULL */
    int64_t file_max_bytes;   /* the site's own attachment size limit (0: the node's) */
    char *file_types;         /* its allowed attachment categories ("image,pdf"; "-" none; NULL: the node's) */
    int64_t intervals_from, intervals_to;
} cd_site;

typedef struct cd_node_sites cd_node_sites;
/* After each load: every site (borrowed for the call). */
typedef void (*cd_node_sites_cb)(void *ud, const cd_site *sites, size_t n);

/* agent_origins comes from cfg. Loads nothing until cd_node_sites_load. */
cd_node_sites *cd_node_sites_create(cd_store *st, const cd_config *cfg, cd_node_sites_cb on_load, void *ud);
/* Pending loads finish into nothing; the memory goes with the last of them. */
void cd_node_sites_destroy(cd_node_sites *ns);
/* (Re)load every site; a load already running is followed by one more. */
void cd_node_sites_load(cd_node_sites *ns);
/* The cron tick: reload once site_cache_refresh_s has passed (store up only). */
void cd_node_sites_tick(cd_node_sites *ns, uint64_t now);
/* The store went down: a load in flight is forgotten (its reply still comes). */
void cd_node_sites_on_store(cd_node_sites *ns, bool up);
/* Borrowed until the next load, or NULL for an unknown site. */
const cd_site *cd_node_sites_get(cd_node_sites *ns, const char *key);
/* The key of the i-th cached site, NULL past the last (the order of the last load). */
const char *cd_node_sites_key_at(cd_node_sites *ns, size_t i);
/* The site's business intervals for SLA scripts ("*" for 24x7 or an unknown site). */
const char *cd_node_sites_intervals(cd_node_sites *ns, const char *key);
/* Exact-origin check for the upgrade of /ws/visitor (site_key NULL: any site). */
bool cd_node_sites_origin_allowed(cd_node_sites *ns, const char *origin, const char *site_key);
/* The Origin check for /ws/agent (agent_origins): "*" allows any Origin; a list allows
 * exactly those; empty allows the node's own origin, http:// or https:// followed by the
 * request's Host. Without "*" an upgrade without Origin is refused. */
bool cd_node_sites_agent_origin_allowed(cd_node_sites *ns, const char *origin, const char *host);

/* ---- the keyring ---- */

typedef struct cd_node_keyring cd_node_keyring;
/* NULL (logged) when token_secret is set but not 64 hex characters. */
cd_node_keyring *cd_node_keyring_create(cd_store *st, const cd_config *cfg);
void cd_node_keyring_destroy(cd_node_keyring *k);
/* Load from Redis unless ready or loading (store up only). */
void cd_node_keyring_load(cd_node_keyring *k);
/* The cron tick: cd_node_keyring_load while not ready. */
void cd_node_keyring_tick(cd_node_keyring *k, uint64_t now);
void cd_node_keyring_on_store(cd_node_keyring *k, bool up);
bool cd_node_keyring_ready(const cd_node_keyring *k);
const cd_auth_keyring *cd_node_keyring_get(const cd_node_keyring *k);

/* ---- the operational gauges (gauges.c) ---- */

/* Queue depths, backlog, timer lag and event stream length for /metrics: one metrics_ops
 * call per site of the site cache every few seconds, merged into Prometheus text. */
typedef struct cd_node_gauges cd_node_gauges;
cd_node_gauges *cd_node_gauges_create(cd_store *st);
/* A round still in flight finishes without it. */
void cd_node_gauges_destroy(cd_node_gauges *g);
/* The sites to read (the site cache's, at each load). */
void cd_node_gauges_set_sites(cd_node_gauges *g, const char *const *keys, size_t n);
/* The cron tick: a round of calls every 5 s while the store is up and none is in flight. */
void cd_node_gauges_tick(cd_node_gauges *g, uint64_t now);
/* The last complete round's text (NULL before the first). */
const char *cd_node_gauges_text(const cd_node_gauges *g);

/* ---- the cron ---- */

typedef struct cd_node_cron cd_node_cron;
typedef void (*cd_node_tick_fn)(void *ud, uint64_t now);

/* One uv timer every period_ms (mono clock). */
cd_node_cron *cd_node_cron_create(struct uv_loop_s *loop, uint64_t period_ms);
/* fn(ud, now) runs every every_ms (0: every period), in the order added. */
void cd_node_cron_add(cd_node_cron *c, uint64_t every_ms, cd_node_tick_fn fn, void *ud);
/* Stops the timer; done(ud) (may be NULL) runs once the loop has closed it, after which
 * the memory is gone. */
void cd_node_cron_destroy(cd_node_cron *c, void (*done)(void *ud), void *ud);

#endif
