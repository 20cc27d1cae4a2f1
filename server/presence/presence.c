/* Presence calls. Each runs one script whose reply names the agents whose status it
 * changed ({"changed":[…]}); those agents' site records follow through one route/
 * group, so the caller hears once, after all of them. */
#include "chatdesk/presence.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "chatdesk/clock.h"

#define I64(buf, v) (snprintf(buf, sizeof buf, "%lld", (long long)(v)), buf)

static void on_presence(void *ud, cd_err err, const char *json, size_t len)
{
    cd_route_group *g = ud;
    json_t *root = json ? json_loadb(json, len, 0, NULL) : NULL;
    if (err != CD_ERR_OK)
        cd_route_group_fail(g, err, json_string_value(json_object_get(root, "message")));
    size_t i;
    json_t *aid;
    json_array_foreach(err == CD_ERR_OK ? json_object_get(root, "changed") : NULL, i, aid)
    {
        if (json_is_string(aid))
            cd_route_group_sync(g, json_string_value(aid));
    }
    json_decref(root);
    cd_route_group_release(g);
}

static int run(cd_store *st, const char *script, int nkeys, const char *const *keys, int n, const char *const *args,
               cd_route_cb cb, void *ud)
{
    cd_route_group *g = cd_route_group_create(st, cb, ud);
    if (cd_store_fcall(st, script, nkeys, keys, n, args, NULL, on_presence, g) != 0) {
        cd_route_group_cancel(g);
        return -1;
    }
    return 0;
}

int cd_presence_set(cd_store *st, const char *aid, const char *status, cd_route_cb cb, void *ud)
{
    char now[24];
    const char *args[] = {aid, status, I64(now, cd_now_ms())};
    cd_key k;
    const char *keys[] = {cd_key_agent(&k, cd_store_prefix(st), aid)};
    return run(st, "presence", 1, keys, 3, args, cb, ud);
}

typedef struct online_op {
    cd_presence_online_cb cb;
    void *ud;
} online_op;

static void on_site_online(void *ud, cd_err err, const char *json, size_t len)
{
    online_op *o = ud;
    bool online = err == CD_ERR_OK && json && memmem(json, len, "\"agents_online\":true", 20) != NULL;
    o->cb(o->ud, err, online);
    cd_free(o);
}

int cd_presence_site_online(cd_store *st, const char *site, cd_presence_online_cb cb, void *ud)
{
    online_op *o = cd_calloc(1, sizeof *o);
    o->cb = cb;
    o->ud = ud;
    cd_key k;
    const char *keys[] = {cd_key_site(&k, cd_store_prefix(st), site, "")};
    if (cd_store_fcall(st, "site_online", 1, keys, 0, NULL, NULL, on_site_online, o) != 0) {
        cd_free(o);
        return -1;
    }
    return 0;
}

int cd_presence_touch(cd_store *st, const char *node, int64_t expiry_ms, const char *const *agent_ids, size_t n,
                      cd_route_cb cb, void *ud)
{
    char exp[24], now[24];
    const char **args = cd_calloc(n + 3, sizeof *args);
    cd_key *kb = cd_calloc(n + 1, sizeof *kb);
    const char **keys = cd_calloc(n + 1, sizeof *keys);
    keys[0] = cd_key_global(&kb[0], cd_store_prefix(st), "presence");
    args[0] = node;
    args[1] = I64(exp, expiry_ms);
    args[2] = I64(now, cd_now_ms());
    for (size_t i = 0; i < n; i++) {
        args[3 + i] = agent_ids[i];
        keys[1 + i] = cd_key_agent(&kb[1 + i], cd_store_prefix(st), agent_ids[i]);
    }
    int rc = run(st, "presence_touch", (int)(n + 1), keys, (int)(n + 3), args, cb, ud);
    cd_free(keys);
    cd_free(kb);
    cd_free(args);
    return rc;
}

int cd_presence_sweep(cd_store *st, const char *node, const char *agent_id, cd_route_cb cb, void *ud)
{
    char now[24];
    const char *args[] = {I64(now, cd_now_ms()), node ? node : "", agent_id ? agent_id : ""};
    cd_key kp, ka;
    const char *keys[] = {cd_key_global(&kp, cd_store_prefix(st), "presence"),
                          agent_id ? cd_key_agent(&ka, cd_store_prefix(st), agent_id) : NULL};
    return run(st, "presence_sweep", agent_id ? 2 : 1, keys, 3, args, cb, ud);
}
