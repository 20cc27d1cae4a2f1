/* This node's agents: a map agent id -> live connections here. The node vouches for them
 * with presence_touch.lua every presence_beat_s (256 agents per call) with an expiry of
 * presence_ttl_s, so they stay online while any node holds a connection, and go offline
 * within presence_ttl_s of the last node that held one dying; each node sweeps expired
 * entries every 2 s. */
#include <string.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"
#include "chatdesk/presence.h"

#define SWEEP_MS 2000

struct cd_presence_local {
    cd_store *st;
    const cd_config *cfg;
    char node_id[128];
    cd_route_cb on_assigned;
    void *ud;
    cd_map agents; /* agent id -> live local connections (uintptr_t) */
    uint64_t last_beat, last_sweep;
    int refs; /* the owner + each call in flight */
    bool gone;
};

cd_presence_local *cd_presence_local_create(cd_store *st, const cd_config *cfg, const char *node_id,
                                            cd_route_cb on_assigned, void *ud)
{
    cd_presence_local *p = cd_calloc(1, sizeof *p);
    p->st = st;
    p->cfg = cfg;
    cd_strlcpy(p->node_id, node_id, sizeof p->node_id);
    p->on_assigned = on_assigned;
    p->ud = ud;
    p->refs = 1;
    cd_map_init(&p->agents);
    return p;
}

static void unref(cd_presence_local *p)
{
    if (--p->refs > 0)
        return;
    cd_map_cleanup(&p->agents);
    cd_free(p);
}

void cd_presence_local_destroy(cd_presence_local *p)
{
    if (!p)
        return;
    p->gone = true;
    unref(p);
}

static void on_touched(void *ud, const cd_route_result *r)
{
    cd_presence_local *p = ud;
    if (!p->gone && r->err == CD_ERR_OK && p->on_assigned)
        p->on_assigned(p->ud, r);
    unref(p);
}

static void on_swept(void *ud, const cd_route_result *r)
{
    (void)ud;
    if (r->err != CD_ERR_OK && r->err != CD_ERR_UNAVAILABLE)
        cd_log_warn("background script failed: %s %s", cd_err_name(r->err), r->message ? r->message : "");
}

static void touch(cd_presence_local *p, const char *const *ids, size_t n)
{
    int64_t expiry = (int64_t)cd_now_ms() + p->cfg->presence_ttl_s * 1000;
    if (cd_presence_touch(p->st, p->node_id, expiry, ids, n, on_touched, p) == 0)
        p->refs++;
}

static void beat(cd_presence_local *p)
{
    const char *ids[256];
    size_t k = 0, it;
    for (cd_map_entry *e = cd_map_first(&p->agents, &it); e; e = cd_map_next(&p->agents, e, &it)) {
        ids[k++] = e->key;
        if (k == CD_ARRAY_LEN(ids)) {
            touch(p, ids, k);
            k = 0;
        }
    }
    if (k)
        touch(p, ids, k);
}

void cd_presence_agent_up(cd_presence_local *p, const char *aid)
{
    size_t kl = strlen(aid);
    uintptr_t c = (uintptr_t)cd_map_get(&p->agents, aid, kl);
    cd_map_put(&p->agents, aid, kl, (void *)(c + 1));
    if (c == 0) {
        const char *ids[] = {aid};
        touch(p, ids, 1);
        /* its record in each of its sites, even when the touch changed no status (a
         * record written before the agent's sites had one, or missed notices) */
        p->refs++;
        cd_route_agent_sync(p->st, aid, on_touched, p);
    }
}

void cd_presence_agent_down(cd_presence_local *p, const char *aid)
{
    size_t kl = strlen(aid);
    uintptr_t c = (uintptr_t)cd_map_get(&p->agents, aid, kl);
    if (c > 1) {
        cd_map_put(&p->agents, aid, kl, (void *)(c - 1));
        return;
    }
    cd_map_del(&p->agents, aid, kl);
    /* its last connection here: this node no longer vouches (offline if no other node does) */
    cd_presence_sweep(p->st, p->node_id, aid, on_swept, NULL);
}

void cd_presence_tick(cd_presence_local *p, uint64_t now)
{
    if (!cd_store_up(p->st))
        return;
    if (now - p->last_beat >= (uint64_t)p->cfg->presence_beat_s * 1000) {
        p->last_beat = now;
        beat(p);
    }
    if (now - p->last_sweep >= SWEEP_MS) {
        p->last_sweep = now;
        cd_presence_sweep(p->st, NULL, NULL, on_swept, NULL);
    }
}

void cd_presence_on_store(cd_presence_local *p, bool up)
{
    if (up)
        p->last_beat = 0; /* vouch for our agents again at once */
}
