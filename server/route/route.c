/* Routing calls: an agent's record in each of its sites (agent_sync.lua reads the global
 * record, agent_site.lua writes one site's copy and drains that site's queues) and the
 * queue drain (route_drain.lua). Calls that belong together run as a group whose
 * callback fires once, after the last of them, with every conversation they assigned. */
#include "chatdesk/route.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"

#define I64(buf, v) (snprintf(buf, sizeof buf, "%lld", (long long)(v)), buf)

struct cd_route_group {
    cd_store *st;
    cd_route_cb cb;
    void *ud;
    int pending;
    cd_err err;
    char *message;
    cd_route_assigned *assigned;
    size_t n_assigned;
};

cd_route_group *cd_route_group_create(cd_store *st, cd_route_cb cb, void *ud)
{
    cd_route_group *g = cd_calloc(1, sizeof *g);
    g->st = st;
    g->cb = cb;
    g->ud = ud;
    g->pending = 1;
    return g;
}

void cd_route_group_fail(cd_route_group *g, cd_err err, const char *message)
{
    g->err = err;
    cd_free(g->message);
    g->message = message ? cd_strdup(message) : NULL;
}

void cd_route_group_release(cd_route_group *g)
{
    if (--g->pending > 0)
        return;
    if (g->cb) {
        cd_route_result r = {g->err, g->message, g->assigned, g->n_assigned};
        g->cb(g->ud, &r);
    }
    for (size_t i = 0; i < g->n_assigned; i++)
        free(g->assigned[i].raw);
    cd_free(g->assigned);
    cd_free(g->message);
    cd_free(g);
}

void cd_route_group_cancel(cd_route_group *g)
{
    g->cb = NULL;
    cd_route_group_release(g);
}

static void take_str(char *dst, size_t n, json_t *v)
{
    if (json_is_string(v))
        cd_strlcpy(dst, json_string_value(v), n);
}

/* {"assigned":[{"agent":…,"conversation":{…}}…]} of agent_site.lua joins the group's. */
static void take_assigned(cd_route_group *g, json_t *root)
{
    json_t *v = json_object_get(root, "assigned");
    if (!json_is_array(v) || json_array_size(v) == 0)
        return;
    g->assigned = cd_realloc(g->assigned, (g->n_assigned + json_array_size(v)) * sizeof *g->assigned);
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        json_t *c = json_object_get(x, "conversation");
        if (!json_is_object(c))
            continue;
        cd_route_assigned *as = &g->assigned[g->n_assigned++];
        memset(as, 0, sizeof *as);
        take_str(as->agent_id, sizeof as->agent_id, json_object_get(x, "agent"));
        take_str(as->cid, sizeof as->cid, json_object_get(c, "id"));
        take_str(as->site, sizeof as->site, json_object_get(c, "site"));
        as->last_seq = json_integer_value(json_object_get(c, "last_seq"));
        as->raw = json_dumps(c, JSON_COMPACT);
    }
}

static void on_site_synced(void *ud, cd_err err, const char *json, size_t len)
{
    cd_route_group *g = ud;
    json_t *root = json ? json_loadb(json, len, 0, NULL) : NULL;
    if (err != CD_ERR_OK && err != CD_ERR_UNAVAILABLE)
        cd_log_warn("agent_site failed: %s %s", cd_err_name(err),
                    json_is_string(json_object_get(root, "message"))
                        ? json_string_value(json_object_get(root, "message"))
                        : "");
    if (err == CD_ERR_OK)
        take_assigned(g, root);
    json_decref(root);
    cd_route_group_release(g);
}

static const char *jtext(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

static void agent_site(cd_route_group *g, json_t *a, const char *site)
{
    char sv[24], now[24];
    const char *aid = jtext(a, "id");
    const char *args[] = {site,
                          aid,
                          I64(sv, json_integer_value(json_object_get(a, "sv"))),
                          jtext(a, "status"),
                          jtext(a, "name"),
                          jtext(a, "teams"),
                          jtext(a, "max_chats"),
                          jtext(a, "disabled"),
                          I64(now, cd_now_ms()),
                          jtext(a, "role")};
    cd_key k;
    const char *keys[] = {cd_key_site_agent(&k, cd_store_prefix(g->st), site, aid)};
    g->pending++;
    if (cd_store_fcall(g->st, "agent_site", 1, keys, 10, args, NULL, on_site_synced, g) != 0)
        g->pending--;
}

/* agent_sync.lua answered {"agent":{…,"sites":[…]}}: one agent_site call per site. */
static void on_agent_read(void *ud, cd_err err, const char *json, size_t len)
{
    cd_route_group *g = ud;
    json_t *root = err == CD_ERR_OK && json ? json_loadb(json, len, 0, NULL) : NULL;
    json_t *a = json_object_get(root, "agent");
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(a, "sites"), i, s)
    {
        if (json_is_string(s))
            agent_site(g, a, json_string_value(s));
    }
    json_decref(root);
    cd_route_group_release(g);
}

void cd_route_group_sync(cd_route_group *g, const char *aid)
{
    const char *args[] = {aid};
    cd_key k;
    const char *keys[] = {cd_key_agent(&k, cd_store_prefix(g->st), aid)};
    g->pending++;
    if (cd_store_fcall(g->st, "agent_sync", 1, keys, 1, args, NULL, on_agent_read, g) != 0)
        g->pending--;
}

int cd_route_agent_sync(cd_store *st, const char *aid, cd_route_cb cb, void *ud)
{
    cd_route_group *g = cd_route_group_create(st, cb, ud);
    cd_route_group_sync(g, aid);
    cd_route_group_release(g);
    return 0;
}

bool cd_route_agent_notice(cd_store *st, const char *frame, size_t len)
{
    json_t *o = json_loadb(frame, len, 0, NULL);
    json_t *t = json_object_get(o, "type"), *id = json_object_get(o, "id");
    bool agent = json_is_string(t) && strcmp(json_string_value(t), "agent.changed") == 0 && json_is_string(id);
    if (agent)
        cd_route_agent_sync(st, json_string_value(id), NULL, NULL);
    json_decref(o);
    return agent;
}

static void on_drained(void *ud, cd_err err, const char *json, size_t len)
{
    cd_route_group *g = ud;
    json_t *root = json ? json_loadb(json, len, 0, NULL) : NULL;
    if (err != CD_ERR_OK)
        cd_route_group_fail(g, err, json_string_value(json_object_get(root, "message")));
    json_decref(root);
    cd_route_group_release(g);
}

/* One route_drain call for the site, in its slot, counted in g. -1 when Redis is down. */
static int drain_one(cd_route_group *g, const char *site)
{
    char now[24];
    const char *args[] = {site, I64(now, cd_now_ms())};
    cd_key k;
    const char *keys[] = {cd_key_site(&k, cd_store_prefix(g->st), site, "")};
    g->pending++;
    if (cd_store_fcall(g->st, "route_drain", 1, keys, 2, args, NULL, on_drained, g) != 0) {
        g->pending--;
        return -1;
    }
    return 0;
}

/* Every site: the sites set is read alone (sites_list, {g}), then each site drains in a
 * call of its own, in its slot (ARCHITECTURE invariant 4). */
static void on_drain_list(void *ud, cd_err err, const char *json, size_t len)
{
    cd_route_group *g = ud;
    json_t *root = err == CD_ERR_OK && json ? json_loadb(json, len, 0, NULL) : NULL, *key;
    size_t i;
    if (err != CD_ERR_OK)
        cd_route_group_fail(g, err, NULL);
    json_array_foreach(json_object_get(root, "site_keys"), i, key)
    {
        if (json_is_string(key) && drain_one(g, json_string_value(key)) != 0)
            cd_route_group_fail(g, CD_ERR_UNAVAILABLE, NULL);
    }
    json_decref(root);
    cd_route_group_release(g);
}

int cd_route_drain(cd_store *st, const char *site, cd_route_cb cb, void *ud)
{
    cd_route_group *g = cd_route_group_create(st, cb, ud);
    int rc = 0;
    if (site && *site) {
        rc = drain_one(g, site);
    } else {
        cd_key k;
        const char *keys[] = {cd_key_global(&k, cd_store_prefix(st), "sites")};
        g->pending++;
        if (cd_store_fcall(st, "sites_list", 1, keys, 0, NULL, NULL, on_drain_list, g) != 0) {
            g->pending--;
            rc = -1;
        }
    }
    if (rc != 0) {
        cd_route_group_cancel(g);
        return -1;
    }
    cd_route_group_release(g);
    return 0;
}
