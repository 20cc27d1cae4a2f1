/* Operational gauges for /metrics (docs/ops.md): queue depth per site and team, backlog
 * per site, how late the oldest due timer is, the event streams' length. Read from Redis
 * every few seconds, never per scrape: one metrics_ops call per site of the site cache,
 * each in its site's slot (so it runs on Redis Cluster), merged here into the
 * Prometheus text the node appends to /metrics. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/clock.h"
#include "chatdesk/node.h"

#define CD_GAUGES_POLL_MS 15000
#define CD_GAUGES_MAX_SERIES 1000 /* queue series at most (sites × teams) */

typedef struct gauge_round gauge_round;

struct cd_node_gauges {
    cd_store *st;
    char **sites; /* the site cache's keys, sorted */
    size_t n_sites;
    char *text;
    uint64_t last_poll;
    gauge_round *round; /* the round in flight, or NULL */
};

/* One round: a call per site, answered in any order, rendered when the last one is in. */
struct gauge_round {
    cd_node_gauges *g; /* NULL once the gauges are gone */
    size_t pending, n;
    json_t **parts; /* per site (sorted order): its reply, or NULL */
    bool failed;
};

typedef struct {
    gauge_round *r;
    size_t i;
} gauge_call;

cd_node_gauges *cd_node_gauges_create(cd_store *st)
{
    cd_node_gauges *g = cd_calloc(1, sizeof *g);
    g->st = st;
    return g;
}

static void sites_free(cd_node_gauges *g)
{
    for (size_t i = 0; i < g->n_sites; i++)
        cd_free(g->sites[i]);
    cd_free(g->sites);
    g->sites = NULL;
    g->n_sites = 0;
}

void cd_node_gauges_destroy(cd_node_gauges *g)
{
    if (!g)
        return;
    if (g->round)
        g->round->g = NULL;
    sites_free(g);
    cd_free(g->text);
    cd_free(g);
}

static int by_key(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void cd_node_gauges_set_sites(cd_node_gauges *g, const char *const *keys, size_t n)
{
    sites_free(g);
    g->sites = cd_calloc(n ? n : 1, sizeof *g->sites);
    for (size_t i = 0; i < n; i++)
        g->sites[i] = cd_strdup(keys[i]);
    g->n_sites = n;
    qsort(g->sites, n, sizeof *g->sites, by_key);
}

static void help(cd_buf *b, const char *name, const char *text)
{
    cd_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, text, name);
}

/* The sites' parts as the exposition text: queue series up to the cap, whole sites only. */
static void render(cd_node_gauges *g, gauge_round *r)
{
    cd_buf q, bl;
    cd_buf_init(&q);
    cd_buf_init(&bl);
    json_int_t series = 0, evlen = 0;
    double lag = 0;
    for (size_t i = 0; i < r->n; i++) {
        json_t *p = r->parts[i];
        if (!p)
            continue;
        evlen += json_integer_value(json_object_get(p, "ev"));
        double l = json_number_value(json_object_get(p, "lag"));
        lag = l > lag ? l : lag;
        if (series >= CD_GAUGES_MAX_SERIES)
            continue;
        series += json_integer_value(json_object_get(p, "nq"));
        cd_buf_append_str(&q, json_string_value(json_object_get(p, "q")) ?: "");
        cd_buf_append_str(&bl, json_string_value(json_object_get(p, "b")) ?: "");
    }
    cd_buf out;
    cd_buf_init(&out);
    help(&out, "chatdesk_queue_depth", "Conversations waiting in a team's queue (team \"_\": no team).");
    cd_buf_append(&out, q.data, q.len);
    help(&out, "chatdesk_backlog", "Conversations by status (queued, open, pending) per site, from the reports.");
    cd_buf_append(&out, bl.data, bl.len);
    help(&out, "chatdesk_timer_lag_seconds", "How late the oldest due timer is (0 when none is overdue).");
    cd_buf_printf(&out, "chatdesk_timer_lag_seconds %.3f\n", lag / 1000);
    help(&out, "chatdesk_events_stream_length",
         "Entries in the sites' event streams (not yet applied by every consumer, or kept by events_retain_s).");
    cd_buf_printf(&out, "chatdesk_events_stream_length %lld\n", (long long)evlen);
    cd_free(g->text);
    g->text = cd_strndup(out.data, out.len);
    cd_buf_cleanup(&out);
    cd_buf_cleanup(&q);
    cd_buf_cleanup(&bl);
}

static void round_done(gauge_round *r)
{
    if (r->g) {
        r->g->round = NULL;
        if (!r->failed) /* a round that lost a site keeps the previous text */
            render(r->g, r);
    }
    for (size_t i = 0; i < r->n; i++)
        json_decref(r->parts[i]);
    cd_free(r->parts);
    cd_free(r);
}

static void on_site(void *ud, cd_err err, const char *json, size_t len)
{
    gauge_call *c = ud;
    gauge_round *r = c->r;
    json_t *p = err == CD_ERR_OK && json ? json_loadb(json, len, 0, NULL) : NULL;
    if (json_is_object(p))
        r->parts[c->i] = p;
    else {
        json_decref(p);
        r->failed = true;
    }
    cd_free(c);
    if (--r->pending == 0)
        round_done(r);
}

void cd_node_gauges_tick(cd_node_gauges *g, uint64_t now)
{
    if (!cd_store_up(g->st) || g->round || (g->last_poll && now - g->last_poll < CD_GAUGES_POLL_MS))
        return;
    g->last_poll = now;
    gauge_round *r = cd_calloc(1, sizeof *r);
    r->g = g;
    r->n = g->n_sites;
    r->parts = cd_calloc(r->n ? r->n : 1, sizeof *r->parts);
    r->pending = 1; /* held until every call is sent */
    g->round = r;
    char ts[24];
    snprintf(ts, sizeof ts, "%llu", (unsigned long long)cd_now_ms());
    const char *args[] = {ts};
    for (size_t i = 0; i < r->n; i++) {
        cd_key k;
        const char *keys[] = {cd_key_site(&k, cd_store_prefix(g->st), g->sites[i], "")};
        gauge_call *c = cd_calloc(1, sizeof *c);
        *c = (gauge_call){r, i};
        r->pending++;
        if (cd_store_fcall(g->st, "metrics_ops", 1, keys, 1, args, NULL, on_site, c) != 0) {
            r->pending--;
            r->failed = true;
            cd_free(c);
        }
    }
    if (--r->pending == 0)
        round_done(r);
}

const char *cd_node_gauges_text(const cd_node_gauges *g)
{
    return g->text;
}
