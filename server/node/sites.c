/* The site cache: what a hello and an upgrade check need about every site (origins,
 * identity secret, SLA calendar), read with one sites_get.lua call and replaced whole.
 * Loads are coalesced: a load asked for while one runs is done once after it. Business
 * intervals are computed per site on first use and kept for a day (a window from a day
 * back to 60 days ahead), so the SLA scripts get them without C work per message. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"
#include "chatdesk/node.h"

struct cd_node_sites {
    cd_store *st;
    const cd_config *cfg;
    cd_node_sites_cb on_load;
    void *ud;
    cd_site *sites;
    size_t n_sites;
    bool loading, again;
    uint64_t loaded_at;
    char **agent_origins;
    size_t n_agent_origins;
    int refs; /* the owner + a load in flight */
};

static void free_strs(char **a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cd_free(a[i]);
    cd_free(a);
}

static void free_sites(cd_site *sites, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cd_free(sites[i].key);
        cd_free(sites[i].secret);
        cd_free(sites[i].intervals);
        cd_free(sites[i].file_types);
        free_strs(sites[i].origins, sites[i].n_origins);
    }
    cd_free(sites);
}

static char **split_csv(const char *s, size_t *n)
{
    *n = 0;
    char **out = cd_calloc(strlen(s) / 2 + 2, sizeof *out);
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && (*p == ' ')) {
            p++;
            len--;
        }
        while (len && p[len - 1] == ' ')
            len--;
        if (len)
            out[(*n)++] = cd_strndup(p, len);
        if (!e)
            break;
        p = e + 1;
    }
    return out;
}

cd_node_sites *cd_node_sites_create(cd_store *st, const cd_config *cfg, cd_node_sites_cb on_load, void *ud)
{
    cd_node_sites *ns = cd_calloc(1, sizeof *ns);
    ns->st = st;
    ns->cfg = cfg;
    ns->on_load = on_load;
    ns->ud = ud;
    ns->refs = 1;
    ns->agent_origins = split_csv(cfg->agent_origins, &ns->n_agent_origins);
    return ns;
}

static void unref(cd_node_sites *ns)
{
    if (--ns->refs > 0)
        return;
    free_sites(ns->sites, ns->n_sites);
    free_strs(ns->agent_origins, ns->n_agent_origins);
    cd_free(ns);
}

void cd_node_sites_destroy(cd_node_sites *ns)
{
    if (!ns)
        return;
    ns->on_load = NULL;
    unref(ns);
}

static char **str_array(json_t *a, size_t *n)
{
    *n = 0;
    char **out = cd_calloc(json_array_size(a) + 1, sizeof *out);
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (json_is_string(v))
            out[(*n)++] = cd_strdup(json_string_value(v));
    }
    return out;
}

/* The calendar of a site's SLA document (a JSON text), 24x7 when it has none or a bad one. */
static void site_calendar(cd_site *site, json_t *sla)
{
    char err[160];
    if (!json_is_string(sla) || json_string_length(sla) == 0) {
        cd_sla_calendar_parse(NULL, &site->calendar, err, sizeof err);
        return;
    }
    json_t *cfgj = json_loads(json_string_value(sla), 0, NULL);
    json_t *cal = json_object_get(cfgj, "calendar");
    char *caltext = cal ? json_dumps(cal, JSON_COMPACT) : NULL;
    if (cd_sla_calendar_parse(caltext, &site->calendar, err, sizeof err) != 0) {
        cd_log_warn("site %s: bad SLA calendar (%s); counting 24x7", site->key, err);
        cd_sla_calendar_parse(NULL, &site->calendar, err, sizeof err);
    }
    free(caltext);
    json_decref(cfgj);
}

/* sites_get.lua, one site each, gathered: [{"key":…,"identity_secret":…,"origins":[…],"sla":"<json>"},…] */
static size_t parse_sites(json_t *arr, cd_site **out)
{
    size_t n = 0, i;
    json_t *s;
    *out = cd_calloc(json_array_size(arr) + 1, sizeof **out);
    json_array_foreach(arr, i, s)
    {
        if (!json_is_string(json_object_get(s, "key")))
            continue;
        cd_site *site = &(*out)[n++];
        site->key = cd_strdup(json_string_value(json_object_get(s, "key")));
        json_t *sec = json_object_get(s, "identity_secret");
        site->secret = cd_strdup(json_is_string(sec) ? json_string_value(sec) : "");
        site->origins = str_array(json_object_get(s, "origins"), &site->n_origins);
        site->require_2fa = json_is_true(json_object_get(s, "require_2fa"));
        site->file_max_bytes = (int64_t)json_integer_value(json_object_get(s, "file_max_bytes"));
        json_t *ft = json_object_get(s, "file_types");
        site->file_types = json_is_string(ft) && json_string_length(ft) > 0 ? cd_strdup(json_string_value(ft)) : NULL;
        site_calendar(site, json_object_get(s, "sla"));
    }
    return n;
}

static void sites_loaded(cd_node_sites *ns, cd_err err, json_t *arr)
{
    ns->loading = false;
    if (err == CD_ERR_OK && ns->refs > 1) {
        free_sites(ns->sites, ns->n_sites);
        ns->n_sites = parse_sites(arr, &ns->sites);
        ns->loaded_at = cd_mono_ms();
        cd_log_debug("site cache loaded sites=%zu", ns->n_sites);
        if (ns->on_load)
            ns->on_load(ns->ud, ns->sites, ns->n_sites);
    }
    if (ns->again && ns->refs > 1) {
        ns->again = false;
        cd_node_sites_load(ns);
    }
    unref(ns);
}

/* The sites set is state of its own (P{g}:sites): one call reads it (sites_list), then one
 * call per site reads that site's record in its slot (sites_get), and the answers are
 * gathered here into the one list the cache is made of (ARCHITECTURE invariant 4). */
typedef struct sites_read {
    cd_node_sites *ns;
    json_t *sites;
    size_t pending;
    cd_err err;
} sites_read;

static void sites_read_step(sites_read *rd)
{
    if (--rd->pending > 0)
        return;
    sites_loaded(rd->ns, rd->err, rd->sites);
    json_decref(rd->sites);
    cd_free(rd);
}

static void on_site_read(void *ud, cd_err err, const char *json, size_t len)
{
    sites_read *rd = ud;
    json_t *root = err == CD_ERR_OK && json ? json_loadb(json, len, 0, NULL) : NULL;
    if (err != CD_ERR_OK)
        rd->err = err;
    else
        json_array_extend(rd->sites, json_object_get(root, "sites"));
    json_decref(root);
    sites_read_step(rd);
}

static void on_sites_list(void *ud, cd_err err, const char *json, size_t len)
{
    sites_read *rd = ud;
    json_t *root = err == CD_ERR_OK && json ? json_loadb(json, len, 0, NULL) : NULL, *key;
    size_t i;
    if (err != CD_ERR_OK)
        rd->err = err;
    json_array_foreach(json_object_get(root, "site_keys"), i, key)
    {
        cd_key k;
        const char *keys[] = {cd_key_site(&k, cd_store_prefix(rd->ns->st), json_string_value(key), "")};
        rd->pending++;
        if (!json_is_string(key) ||
            cd_store_fcall(rd->ns->st, "sites_get", 1, keys, 0, NULL, NULL, on_site_read, rd) != 0) {
            rd->pending--;
            rd->err = json_is_string(key) ? CD_ERR_UNAVAILABLE : rd->err;
        }
    }
    json_decref(root);
    sites_read_step(rd); /* the list's own share */
}

void cd_node_sites_load(cd_node_sites *ns)
{
    if (ns->loading) {
        ns->again = true;
        return;
    }
    cd_key k;
    const char *keys[] = {cd_key_global(&k, cd_store_prefix(ns->st), "sites")};
    sites_read *rd = cd_calloc(1, sizeof *rd);
    *rd = (sites_read){.ns = ns, .sites = json_array(), .pending = 1};
    if (cd_store_fcall(ns->st, "sites_list", 1, keys, 0, NULL, NULL, on_sites_list, rd) == 0) {
        ns->loading = true;
        ns->refs++;
    } else {
        json_decref(rd->sites);
        cd_free(rd);
    }
}

void cd_node_sites_tick(cd_node_sites *ns, uint64_t now)
{
    if (cd_store_up(ns->st) && now - ns->loaded_at > (uint64_t)ns->cfg->site_cache_refresh_s * 1000)
        cd_node_sites_load(ns);
}

void cd_node_sites_on_store(cd_node_sites *ns, bool up)
{
    if (up)
        cd_node_sites_load(ns);
}

static cd_site *site_of(cd_node_sites *ns, const char *key)
{
    for (size_t i = 0; i < ns->n_sites; i++)
        if (strcmp(ns->sites[i].key, key) == 0)
            return &ns->sites[i];
    return NULL;
}

const cd_site *cd_node_sites_get(cd_node_sites *ns, const char *key)
{
    return site_of(ns, key);
}

const char *cd_node_sites_key_at(cd_node_sites *ns, size_t i)
{
    return i < ns->n_sites ? ns->sites[i].key : NULL;
}

const char *cd_node_sites_intervals(cd_node_sites *ns, const char *key)
{
    cd_site *s = site_of(ns, key);
    if (!s)
        return "*";
    int64_t now = (int64_t)cd_now_ms();
    if (!s->intervals || now - s->intervals_from > 86400000 + 3600000) {
        cd_buf b;
        cd_buf_init(&b);
        s->intervals_from = now - 86400000;
        s->intervals_to = now + 60LL * 86400000;
        cd_sla_intervals(&s->calendar, s->intervals_from, s->intervals_to, &b);
        cd_free(s->intervals);
        s->intervals = b.data;
    }
    return s->intervals;
}

static bool site_has_origin(const cd_site *s, const char *origin)
{
    for (size_t i = 0; i < s->n_origins; i++)
        if (strcmp(s->origins[i], origin) == 0)
            return true;
    return false;
}

bool cd_node_sites_origin_allowed(cd_node_sites *ns, const char *origin, const char *site_key)
{
    if (!origin || !*origin)
        return false;
    if (site_key && *site_key) {
        const cd_site *s = cd_node_sites_get(ns, site_key);
        return s && site_has_origin(s, origin);
    }
    for (size_t i = 0; i < ns->n_sites; i++)
        if (site_has_origin(&ns->sites[i], origin))
            return true;
    return false;
}

/* origin is http://HOST or https://HOST (a browser omits a default port in both). */
static bool own_origin(const char *origin, const char *host)
{
    const char *rest = NULL;
    if (strncmp(origin, "http://", 7) == 0)
        rest = origin + 7;
    else if (strncmp(origin, "https://", 8) == 0)
        rest = origin + 8;
    return rest && host && *host && strcasecmp(rest, host) == 0;
}

bool cd_node_sites_agent_origin_allowed(cd_node_sites *ns, const char *origin, const char *host)
{
    for (size_t i = 0; i < ns->n_agent_origins; i++)
        if (strcmp(ns->agent_origins[i], "*") == 0)
            return true;
    if (!origin || !*origin)
        return false;
    if (ns->n_agent_origins == 0)
        return own_origin(origin, host);
    for (size_t i = 0; i < ns->n_agent_origins; i++)
        if (strcmp(ns->agent_origins[i], origin) == 0)
            return true;
    return false;
}
