/* The timer poller and the kind -> handler registry (include/chatdesk/timers.h). The
 * registry is a map from kind to handler: a member is dispatched by one lookup of the
 * text before its first '|'. Per site it keeps when its timers next need a poll:
 * 0 = unknown (poll at the next tick), INT64_MAX = none set, else the due time (ms). */
#include "chatdesk/timers.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"

#define TIMER_BATCH 50

typedef struct kind_entry {
    cd_timers_handler fn;
    void *ud;
} kind_entry;

typedef struct site_entry {
    char *key;
    int64_t next_ms;
    /* bumped by each notice: a claim's reply that a notice overtook does not say when the
     * next timer is (it may have run before that timer was set), so the site is polled
     * again instead of sleeping on it */
    uint64_t gen;
} site_entry;

struct cd_timers {
    const cd_config *cfg;
    cd_store *st;
    cd_map kinds;    /* kind -> kind_entry */
    void **contexts; /* cd_timers_context blocks */
    size_t n_contexts;
    site_entry *sites;
    size_t n_sites;
    uint64_t last_poll;
    int polls; /* timers_claim calls in flight (one per site) */
    int refs;  /* the owner + each claim in flight (a claim's reply may outlive destroy) */
};

cd_timers *cd_timers_create(const cd_config *cfg, cd_store *st)
{
    cd_timers *t = cd_calloc(1, sizeof *t);
    t->cfg = cfg;
    t->st = st;
    t->refs = 1;
    cd_map_init(&t->kinds);
    return t;
}

static void free_sites(cd_timers *t)
{
    for (size_t i = 0; i < t->n_sites; i++)
        cd_free(t->sites[i].key);
    cd_free(t->sites);
    t->sites = NULL;
    t->n_sites = 0;
}

static void unref(cd_timers *t)
{
    if (--t->refs > 0)
        return;
    size_t it;
    for (cd_map_entry *e = cd_map_first(&t->kinds, &it); e; e = cd_map_next(&t->kinds, e, &it))
        cd_free(e->value);
    cd_map_cleanup(&t->kinds);
    for (size_t i = 0; i < t->n_contexts; i++)
        cd_free(t->contexts[i]);
    cd_free(t->contexts);
    free_sites(t);
    cd_free(t);
}

void cd_timers_destroy(cd_timers *t)
{
    if (t)
        unref(t);
}

void cd_timers_register(cd_timers *t, const char *kind, cd_timers_handler fn, void *ud)
{
    kind_entry *k = cd_map_get(&t->kinds, kind, strlen(kind));
    if (!k) {
        k = cd_malloc(sizeof *k);
        cd_map_put(&t->kinds, kind, strlen(kind), k);
    }
    k->fn = fn;
    k->ud = ud;
}

void *cd_timers_context(cd_timers *t, size_t size)
{
    t->contexts = cd_realloc(t->contexts, (t->n_contexts + 1) * sizeof *t->contexts);
    return t->contexts[t->n_contexts++] = cd_calloc(1, size);
}

/* the entry for key[0..len) */
static site_entry *site_of(cd_timers *t, const char *key, size_t len)
{
    for (size_t i = 0; i < t->n_sites; i++)
        if (strncmp(t->sites[i].key, key, len) == 0 && t->sites[i].key[len] == '\0')
            return &t->sites[i];
    return NULL;
}

/* Every site is polled at the next tick; a site kept from the old list keeps its notice
 * generation, so a claim in flight across the reload is still judged against it. */
void cd_timers_set_sites(cd_timers *t, const char *const *sites, size_t n)
{
    site_entry *fresh = cd_calloc(n + 1, sizeof *fresh);
    for (size_t i = 0; i < n; i++) {
        site_entry *old = site_of(t, sites[i], strlen(sites[i]));
        fresh[i].key = cd_strdup(sites[i]);
        fresh[i].gen = old ? old->gen : 0;
    }
    free_sites(t);
    t->sites = fresh;
    t->n_sites = n;
}

bool cd_timers_fire(cd_timers *t, const char *site, const char *member)
{
    const char *bar = strchr(member, '|');
    kind_entry *k = bar ? cd_map_get(&t->kinds, member, (size_t)(bar - member)) : NULL;
    if (!k) {
        cd_log_warn("timer of unknown kind: %s", member);
        return false;
    }
    k->fn(k->ud, site, bar + 1);
    return true;
}

void cd_timers_notice(cd_timers *t, const char *p, size_t len)
{
    const char *end = p + len;
    if (len < 4 || p[0] != 'T' || p[1] != ' ')
        return;
    const char *site = p + 2, *sp = memchr(site, ' ', (size_t)(end - site));
    if (!sp)
        return;
    site_entry *s = site_of(t, site, (size_t)(sp - site));
    if (!s)
        return;
    s->gen++;
    int64_t due = strtoll(sp + 1, NULL, 10);
    if (s->next_ms != 0 && due < s->next_ms)
        s->next_ms = due;
}

typedef struct claim {
    cd_timers *t;
    uint64_t gen; /* the site's notice generation when the claim was sent */
    char site[];
} claim;

/* timers_claim.lua: {"timers":["kind|arg",…],"next":<ms of the site's next timer or
 * lease expiry, absent when none>}. */
static void on_claimed(void *ud, cd_err err, const char *json, size_t len)
{
    claim *c = ud;
    cd_timers *t = c->t;
    if (t->polls > 0)
        t->polls--;
    json_t *root = err == CD_ERR_OK && json ? json_loadb(json, len, 0, NULL) : NULL;
    json_t *items = json_object_get(root, "timers"), *nx = json_object_get(root, "next");
    size_t i, n = 0;
    json_t *v;
    json_array_foreach(items, i, v)
    {
        if (json_is_string(v)) {
            n++;
            cd_timers_fire(t, c->site, json_string_value(v));
        }
    }
    site_entry *s = site_of(t, c->site, strlen(c->site));
    /* a full batch: more may be due now; a notice came while the claim ran: the reply may
     * predate its timer; else sleep until the next timer or a notice */
    if (s && (err != CD_ERR_OK || n >= TIMER_BATCH || s->gen != c->gen))
        s->next_ms = 0;
    else if (s)
        s->next_ms = json_is_integer(nx) ? json_integer_value(nx) : INT64_MAX;
    json_decref(root);
    cd_free(c);
    unref(t);
}

static int claim_site(cd_timers *t, claim *c)
{
    char now[24], lease[24], mx[24];
    snprintf(now, sizeof now, "%llu", (unsigned long long)cd_now_ms());
    snprintf(lease, sizeof lease, "%lld", (long long)t->cfg->timer_lease_ms);
    snprintf(mx, sizeof mx, "%d", TIMER_BATCH);
    const char *args[] = {now, lease, mx};
    cd_key kt, kl;
    const char *keys[] = {cd_key_tagged(&kt, cd_store_prefix(t->st), c->site, "timers"),
                          cd_key_tagged(&kl, cd_store_prefix(t->st), c->site, "timers:leased")};
    return cd_store_fcall(t->st, "timers_claim", 2, keys, 3, args, NULL, on_claimed, c);
}

void cd_timers_tick(cd_timers *t, uint64_t now)
{
    if (!cd_store_up(t->st) || t->polls != 0 || now - t->last_poll < (uint64_t)t->cfg->timer_poll_ms)
        return;
    t->last_poll = now;
    int64_t wall = (int64_t)cd_now_ms();
    for (size_t i = 0; i < t->n_sites; i++) {
        if (t->sites[i].next_ms != 0 && wall < t->sites[i].next_ms)
            continue;
        size_t l = strlen(t->sites[i].key);
        claim *c = cd_malloc(sizeof *c + l + 1);
        c->t = t;
        c->gen = t->sites[i].gen;
        memcpy(c->site, t->sites[i].key, l + 1);
        if (claim_site(t, c) == 0) {
            t->polls++;
            t->refs++;
        } else {
            cd_free(c);
        }
    }
}

void cd_timers_on_store(cd_timers *t, bool up)
{
    if (!up)
        t->polls = 0;
}
