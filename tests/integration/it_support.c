/* it_support: helpers shared by the integration tests (it_support.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "chatdesk/base.h"
#include "chatdesk/config.h"
#include "chatdesk/log.h"
#include "it_support.h"

bool it_redis_from_env(const char **url, const char **path)
{
    static char sock[512];
    const char *u = getenv("CD_TEST_REDIS");
    if (!u || strncmp(u, "unix:", 5) != 0) {
        printf("CD_TEST_REDIS=unix:/path not set: skipping (ctest -L integration starts redis and sets it)\n");
        return false;
    }
    snprintf(sock, sizeof sock, "%s", u + 5);
    char *q = strchr(sock, '?');
    if (q)
        *q = '\0';
    *url = u;
    *path = sock;
    cd_log_set_level(CD_LOG_ERROR);
    return true;
}

void it_world_init(uv_loop_t *loop, cd_config *cfg, char *prefix, size_t n, const char *tag)
{
    static int counter;
    snprintf(prefix, n, "%s%d_%d:", tag, (int)getpid(), ++counter);
    uv_loop_init(loop);
    cd_config_init(cfg);
    it_set_str(&cfg->redis, getenv("CD_TEST_REDIS"));
    it_set_str(&cfg->prefix, prefix);
}

static void on_deadline(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

bool it_run_until(uv_loop_t *loop, it_cond_fn done, const void *arg, uint64_t ms)
{
    bool expired = false;
    uv_timer_t t;
    uv_timer_init(loop, &t);
    t.data = &expired;
    uv_timer_start(&t, on_deadline, ms, 0);
    while (!done(arg) && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_timer_stop(&t);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT); /* completes the close: t lives in this frame */
    return done(arg);
}

void it_set_str(char **field, const char *value)
{
    cd_free(*field);
    *field = cd_strdup(value);
}

void it_drop_prefix(redisContext *rc, const char *prefix)
{
    redisReply *keys = redisCommand(rc, "KEYS %s*", prefix);
    if (keys && keys->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < keys->elements; i++)
            freeReplyObject(redisCommand(rc, "DEL %s", keys->element[i]->str));
    freeReplyObject(keys);
}

int it_loop_finish(uv_loop_t *loop)
{
    for (int i = 0; i < 100 && uv_loop_alive(loop); i++)
        uv_run(loop, UV_RUN_NOWAIT);
    return uv_loop_close(loop);
}
