/* test_store_cluster.c: store/'s Redis Cluster mode (server/store/cluster.c and the
 * per-primary connections of store.c) against a real three-primary Cluster that this
 * program starts on loopback (redis-server --cluster-enabled, redis-cli --cluster create)
 * and stops by PID. Each primary's INFO commandstats shows where a call ran:
 *   - a call goes to the primary of its declared key's slot, and only there;
 *   - after a slot moved (CLUSTER SETSLOT … NODE), the first call is answered MOVED by
 *     the old primary and followed to the new one, and the next goes there directly (the
 *     map was updated);
 *   - while a slot is migrating and its key is not on the source any more, the call is
 *     answered ASK and sent with ASKING to the importing primary.
 * The CTest fixture's single Redis is not used: the program skips when redis-server or
 * redis-cli is missing. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "chatdesk/config.h"
#include "chatdesk/store.h"
#include "it_support.h"
#include "scripts_support.h"

extern char **environ;

#define N_PRIMARIES 3
#define CLUSTER_WAIT_MS 20000

typedef struct {
    int port;
    pid_t pid;
    redisContext *rc;
    char id[64];
} primary;

typedef struct {
    char dir[256];
    primary p[N_PRIMARIES];
    uv_loop_t loop;
    cd_config cfg;
    char prefix[64];
    cd_store *st;
} world;

static world W;

static bool port_free(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0;
    if (s >= 0)
        close(s);
    return ok;
}

/* A free port whose Cluster bus port (+10000) is free too and below 65536: redis-server
 * refuses cluster mode on a port above 55535. */
static int free_port(void)
{
    for (int tries = 0; tries < 1000; tries++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t n = sizeof a;
        int port = -1;
        if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(s, (struct sockaddr *)&a, &n) == 0)
            port = ntohs(a.sin_port);
        if (s >= 0)
            close(s);
        if (port > 0 && port <= 55535 && port_free(port + 10000))
            return port;
    }
    return -1;
}

static pid_t spawn(char *const argv[])
{
    pid_t pid;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    return rc == 0 ? pid : -1;
}

static redisReply *cmd(redisContext *rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    return r;
}

/* A field of INFO's text ("cmdstat_fcall:calls=12,…" → the number after key). */
static long long info_num(primary *p, const char *section, const char *key)
{
    redisReply *r = cmd(p->rc, "INFO %s", section);
    long long v = 0;
    const char *at = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, key) : NULL;
    if (at)
        v = strtoll(at + strlen(key), NULL, 10);
    freeReplyObject(r);
    return v;
}
static long long fcalls(primary *p)
{
    return info_num(p, "commandstats", "cmdstat_fcall:calls=");
}
/* FCALLs the primary refused before running them (MOVED, ASK). */
static long long fcalls_redirected(primary *p)
{
    redisReply *r = cmd(p->rc, "INFO commandstats");
    const char *at = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "cmdstat_fcall:") : NULL;
    const char *eol = at ? strchr(at, '\n') : NULL;
    const char *rej = at ? strstr(at, "rejected_calls=") : NULL;
    long long v = rej && (!eol || rej < eol) ? strtoll(rej + strlen("rejected_calls="), NULL, 10) : 0;
    freeReplyObject(r);
    return v;
}
static long long askings(primary *p)
{
    return info_num(p, "commandstats", "cmdstat_asking:calls=");
}

static bool cluster_whole(void)
{
    for (int i = 0; i < N_PRIMARIES; i++) {
        redisReply *r = cmd(W.p[i].rc, "CLUSTER INFO");
        bool ok = r && r->str && strstr(r->str, "cluster_state:ok") && strstr(r->str, "cluster_known_nodes:3") &&
                  strstr(r->str, "cluster_slots_ok:16384");
        freeReplyObject(r);
        if (!ok)
            return false;
    }
    return true;
}

static int start_cluster(void)
{
    snprintf(W.dir, sizeof W.dir, "/tmp/cd-it-cluster-%d", (int)getpid());
    mkdir(W.dir, 0700);
    char addrs[N_PRIMARIES][32];
    for (int i = 0; i < N_PRIMARIES; i++) {
        primary *p = &W.p[i];
        p->port = free_port();
        char port[16], conf[320];
        snprintf(port, sizeof port, "%d", p->port);
        snprintf(conf, sizeof conf, "%s/nodes-%d.conf", W.dir, p->port);
        char *argv[] = {"redis-server",
                        "--port",
                        port,
                        "--bind",
                        "127.0.0.1",
                        "--dir",
                        W.dir,
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        conf,
                        "--cluster-node-timeout",
                        "5000",
                        NULL};
        if ((p->pid = spawn(argv)) < 0)
            return -1;
        for (int t = 0; t < 100 && !p->rc; t++) {
            usleep(50000);
            redisContext *c = redisConnect("127.0.0.1", p->port);
            if (c && !c->err)
                p->rc = c;
            else if (c)
                redisFree(c);
        }
        if (!p->rc)
            return -1;
        redisReply *r = cmd(p->rc, "CLUSTER MYID");
        if (!r || r->type != REDIS_REPLY_STRING)
            return -1;
        snprintf(p->id, sizeof p->id, "%s", r->str);
        freeReplyObject(r);
        snprintf(addrs[i], sizeof addrs[i], "127.0.0.1:%d", p->port);
    }
    char *argv[] = {"redis-cli", "--cluster",          "create", addrs[0],        addrs[1],
                    addrs[2],    "--cluster-replicas", "0",      "--cluster-yes", NULL};
    pid_t pid = spawn(argv);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    for (int t = 0; t < 300 && !cluster_whole(); t++)
        usleep(100000);
    return cluster_whole() ? 0 : -1;
}

static int cluster_setup(void **state)
{
    (void)state;
    if (start_cluster() != 0) {
        print_error("could not start a three-primary cluster on loopback\n");
        return -1;
    }
    it_world_init(&W.loop, &W.cfg, W.prefix, sizeof W.prefix, "cl");
    char url[160];
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d,127.0.0.1:%d", W.p[0].port, W.p[1].port);
    it_set_str(&W.cfg.redis, url);
    W.st = cd_store_create(&W.loop, &W.cfg);
    if (!W.st)
        return -1;
    cd_store_start(W.st);
    if (!it_run_until(&W.loop, store_is_up, W.st, CLUSTER_WAIT_MS)) {
        print_error("the store did not come up on %s\n", url);
        return -1;
    }
    return 0;
}

static int cluster_teardown(void **state)
{
    (void)state;
    if (W.st) {
        cd_store_stop(W.st);
        cd_store_destroy(W.st);
        it_loop_finish(&W.loop);
    }
    cd_config_cleanup(&W.cfg);
    for (int i = 0; i < N_PRIMARIES; i++) {
        if (W.p[i].rc)
            redisFree(W.p[i].rc);
        if (W.p[i].pid > 0) {
            kill(W.p[i].pid, SIGTERM);
            waitpid(W.p[i].pid, NULL, 0);
        }
    }
    char rm[300];
    snprintf(rm, sizeof rm, "rm -rf %s", W.dir);
    return system(rm) == 0 ? 0 : -1;
}

/* ---- calls ---- */

typedef struct {
    bool done;
    cd_err err;
} result;

static void on_reply(void *ud, cd_err err, const char *json, size_t len)
{
    (void)json;
    (void)len;
    result *r = ud;
    r->err = err;
    r->done = true;
}

/* probe.lua (writes nothing) with the site's key declared: it runs where that key lives. */
static cd_err call_site(const char *site)
{
    char key[200];
    snprintf(key, sizeof key, "%s{s:%s}:site", W.prefix, site);
    const char *keys[] = {key};
    result r = {0};
    assert_int_equal(cd_store_fcall(W.st, "probe", 1, keys, 0, NULL, NULL, on_reply, &r), 0);
    assert_true(it_run_until(&W.loop, flag_is_set, &r.done, CLUSTER_WAIT_MS));
    return r.err;
}

static int slot_of(const char *site)
{
    redisReply *r = cmd(W.p[0].rc, "CLUSTER KEYSLOT %s{s:%s}:site", W.prefix, site);
    int slot = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
    freeReplyObject(r);
    return slot;
}

/* The primary serving slot now (from its own CLUSTER SLOTS view). */
static int owner_of(int slot)
{
    redisReply *r = cmd(W.p[0].rc, "CLUSTER SLOTS");
    int port = -1;
    for (size_t i = 0; r && i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (slot >= e->element[0]->integer && slot <= e->element[1]->integer)
            port = (int)e->element[2]->element[1]->integer;
    }
    freeReplyObject(r);
    for (int i = 0; i < N_PRIMARIES; i++)
        if (W.p[i].port == port)
            return i;
    return -1;
}

/* A site name whose slot the primary `want` serves, not one of avoid. */
static void site_on(int want, char *out, size_t n, int avoid_slot)
{
    for (int i = 0; i < 10000; i++) {
        snprintf(out, n, "site%d", i);
        int slot = slot_of(out);
        if (slot != avoid_slot && owner_of(slot) == want)
            return;
    }
    fail_msg("no site name lands on primary %d", want);
}

static void setslot_node(int slot, int to)
{
    for (int i = 0; i < N_PRIMARIES; i++)
        freeReplyObject(cmd(W.p[i].rc, "CLUSTER SETSLOT %d NODE %s", slot, W.p[to].id));
}

/* ---- tests ---- */

static void test_call_runs_on_the_primary_of_its_slot(void **state)
{
    (void)state;
    for (int want = 0; want < N_PRIMARIES; want++) {
        char site[32];
        site_on(want, site, sizeof site, -1);
        long long before[N_PRIMARIES];
        for (int i = 0; i < N_PRIMARIES; i++)
            before[i] = fcalls(&W.p[i]);
        assert_int_equal(call_site(site), CD_ERR_OK);
        for (int i = 0; i < N_PRIMARIES; i++)
            assert_int_equal(fcalls(&W.p[i]) - before[i], i == want ? 1 : 0);
    }
}

static void test_moved_is_followed_and_the_map_updated(void **state)
{
    (void)state;
    char site[32];
    site_on(0, site, sizeof site, -1);
    int slot = slot_of(site);
    assert_int_equal(call_site(site), CD_ERR_OK); /* the store's map has slot -> 0 */
    freeReplyObject(cmd(W.p[1].rc, "CLUSTER SETSLOT %d IMPORTING %s", slot, W.p[0].id));
    freeReplyObject(cmd(W.p[0].rc, "CLUSTER SETSLOT %d MIGRATING %s", slot, W.p[1].id));
    setslot_node(slot, 1); /* no key of the slot exists: nothing to MIGRATE */
    long long b1 = fcalls(&W.p[1]), r0 = fcalls_redirected(&W.p[0]);
    assert_int_equal(call_site(site), CD_ERR_OK); /* MOVED by primary 0, run on 1 */
    assert_int_equal(fcalls_redirected(&W.p[0]) - r0, 1);
    assert_int_equal(fcalls(&W.p[1]) - b1, 1);
    assert_int_equal(call_site(site), CD_ERR_OK); /* straight to 1 now */
    assert_int_equal(fcalls(&W.p[1]) - b1, 2);
    assert_int_equal(fcalls_redirected(&W.p[0]) - r0, 1);
}

static void test_ask_is_followed_with_asking(void **state)
{
    (void)state;
    char site[32];
    site_on(2, site, sizeof site, -1);
    int slot = slot_of(site);
    assert_int_equal(call_site(site), CD_ERR_OK);
    freeReplyObject(cmd(W.p[1].rc, "CLUSTER SETSLOT %d IMPORTING %s", slot, W.p[2].id));
    freeReplyObject(cmd(W.p[2].rc, "CLUSTER SETSLOT %d MIGRATING %s", slot, W.p[1].id));
    /* the declared key is not on the migrating source: it answers ASK */
    long long ask1 = askings(&W.p[1]), f1 = fcalls(&W.p[1]), r2 = fcalls_redirected(&W.p[2]);
    assert_int_equal(call_site(site), CD_ERR_OK);
    assert_int_equal(fcalls_redirected(&W.p[2]) - r2, 1);
    assert_int_equal(askings(&W.p[1]) - ask1, 1);
    assert_int_equal(fcalls(&W.p[1]) - f1, 1);
    setslot_node(slot, 1);
}

int main(void)
{
    const char *url, *path;
    if (!it_redis_from_env(&url, &path))
        return 0;
    if (system("command -v redis-server >/dev/null && command -v redis-cli >/dev/null") != 0) {
        printf("# skipped: redis-server or redis-cli not found\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_runs_on_the_primary_of_its_slot),
        cmocka_unit_test(test_moved_is_followed_and_the_map_updated),
        cmocka_unit_test(test_ask_is_followed_with_asking),
    };
    return cmocka_run_group_tests(tests, cluster_setup, cluster_teardown);
}
