/* The function library: the Lua scripts of store/lua/ as one Redis 7 function library,
 * built once from the embedded sources. Its own file because two callers load it: the
 * node's store (async, at every connect) and the admin CLI (a blocking connection), so
 * both call the very same functions (ARCHITECTURE "one implementation"). */
#include <stdio.h>
#include <string.h>

#include "chatdesk/log.h"
#include "chatdesk/store.h"

/* Each script's function: <library>_<script>, setting the per-call values first. A script
 * that only reads is registered with the no-writes flag, so Redis runs it even when it is
 * full (maxmemory with noeviction refuses every other function with OOM) and on replicas. */
#define LIB_WRAP                                                                                                \
    "\nredis.register_function{function_name='%s_%s', flags={%s}, callback=function(KEYS, ARGV)\nP = ARGV[1]\n" \
    "CSITE = key_site(KEYS[1])\nevent_by = 'system'\nev_armed = nil\n"
#define LIB_WRAP_END "\nend}\n"

/* The key guard (_guard.lua, CMake -DCD_KEY_GUARD=ON): the library opens with it and
 * each function first tells it the keys the call declared. */
#ifdef CD_KEY_GUARD
#define GUARD_ON 1
#define GUARD_BEGIN "guard_begin('%s', KEYS)\n"
#else
#define GUARD_ON 0
#define GUARD_BEGIN ""
#endif

/* Scripts that never write: no-writes. The HTTP API's scripts (api*) also get a read-only
 * twin <name>_ro, which GET routes call (docs/ops.md "Redis full"). */
static const char *const ro_scripts[] = {"agent_get",   "agent_sync",    "history",  "sites_get",  "sites_list",
                                         "metrics_ops", "agent_welcome", "file_get", "site_online"};

static bool is_ro(const char *name)
{
    for (size_t i = 0; i < CD_ARRAY_LEN(ro_scripts); i++)
        if (strcmp(ro_scripts[i], name) == 0)
            return true;
    return false;
}

/* One function of the library: <library>_<name><suffix> with the script's body. */
static void add_function(cd_store_lib *out, cd_buf *lib, const cd_store_lua_source *s, const cd_store_lua_source *api,
                         const char *suffix, bool ro)
{
    if (out->nfn >= CD_STORE_LIB_MAX)
        return;
    cd_store_lib_fn *fn = &out->fn[out->nfn++];
    snprintf(fn->name, sizeof fn->name, "%s%s", s->name, suffix);
    fn->ro = ro;
    cd_buf_printf(lib, LIB_WRAP, out->name, fn->name, ro ? "'no-writes'" : "");
#ifdef CD_KEY_GUARD
    cd_buf_printf(lib, GUARD_BEGIN, s->name);
#endif
    if (strncmp(s->name, "api", 3) == 0)
        cd_buf_append(lib, api->src, api->len);
    if (strcmp(s->name, "events") == 0) /* its consumers: _ev_*.lua */
        for (size_t i = 0; i < cd_store_lua_count; i++)
            if (strncmp(cd_store_lua_sources[i].name, "_ev_", 4) == 0)
                cd_buf_append(lib, cd_store_lua_sources[i].src, cd_store_lua_sources[i].len);
    cd_buf_append(lib, s->src, s->len);
    cd_buf_append_str(lib, LIB_WRAP_END);
}

static const cd_store_lua_source *source(const char *name)
{
    for (size_t i = 0; i < cd_store_lua_count; i++)
        if (strcmp(cd_store_lua_sources[i].name, name) == 0)
            return &cd_store_lua_sources[i];
    return NULL;
}

/* _common.lua's top level up to `until` (or to its end), with SHARDED_PUB true when
 * sharded (Redis Cluster: a site's channels are shard channels, publish() there). */
static void append_common(cd_buf *lib, const char *from, const char *until, bool sharded)
{
    static const char off[] = "local SHARDED_PUB = false\n", on[] = "local SHARDED_PUB = true\n";
    const char *at = strstr(from, off);
    if (sharded && at && at < until) {
        cd_buf_append(lib, from, (size_t)(at - from));
        cd_buf_append_str(lib, on);
        from = at + sizeof off - 1;
    }
    cd_buf_append(lib, from, (size_t)(until - from));
}

/* _common.lua and _audit.lua at the library's top level (P becomes a per-call upvalue), then one
 * function per script whose body is [_api.lua +] the script (events: the _ev_*.lua
 * consumers + the script). */
int cd_store_lib_build(cd_store_lib *out, bool sharded)
{
    static const char p_line[] = "local P = ARGV[1]\n";
    memset(out, 0, sizeof *out);
    const cd_store_lua_source *common = source("_common"), *api = source("_api"), *guard = source("_guard"),
                              *audit = source("_audit");
    const char *pl = common ? strstr(common->src, p_line) : NULL;
    if (!pl || !api || !audit || (GUARD_ON && !guard) || !strstr(common->src, "local SHARDED_PUB = false\n")) {
        cd_log_error("store/lua: _common.lua must declare \"%.*s\" and SHARDED_PUB; _api.lua and _audit.lua must exist",
                     (int)sizeof p_line - 2, p_line);
        return -1;
    }
    /* The name is a hash of everything the text is made of, so it is known before the
     * text is built; functions are named <library>_<script>. */
    uint32_t h =
        cd_fnv1a(CD_FNV1A_INIT, LIB_WRAP GUARD_BEGIN LIB_WRAP_END, sizeof LIB_WRAP GUARD_BEGIN LIB_WRAP_END - 1);
    for (size_t i = 0; i < cd_store_lua_count; i++) {
        h = cd_fnv1a(h, cd_store_lua_sources[i].name, strlen(cd_store_lua_sources[i].name) + 1);
        h = cd_fnv1a(h, cd_store_lua_sources[i].src, cd_store_lua_sources[i].len);
    }
    h = cd_fnv1a(h, sharded ? "s" : "p", 1);
    snprintf(out->name, sizeof out->name, "cd_%08x", (unsigned)h);
    cd_buf lib;
    cd_buf_init(&lib);
    cd_buf_printf(&lib, "#!lua name=%s\n", out->name);
    if (GUARD_ON)
        cd_buf_append(&lib, guard->src, guard->len);
    append_common(&lib, common->src, pl, sharded);
    cd_buf_append_str(&lib, "local P\n");
    append_common(&lib, pl + sizeof p_line - 1, common->src + common->len, sharded);
    cd_buf_append(&lib, audit->src, audit->len);
    for (size_t i = 0; i < cd_store_lua_count; i++) {
        const cd_store_lua_source *s = &cd_store_lua_sources[i];
        if (s->name[0] == '_')
            continue;
        add_function(out, &lib, s, api, "", is_ro(s->name));
        if (strncmp(s->name, "api", 3) == 0)
            add_function(out, &lib, s, api, "_ro", true);
    }
    out->text = lib.data; /* cd_buf keeps it NUL-terminated */
    out->len = lib.len;
    return 0;
}

void cd_store_lib_free(cd_store_lib *lib)
{
    cd_free(lib->text);
    lib->text = NULL;
    lib->len = 0;
}
