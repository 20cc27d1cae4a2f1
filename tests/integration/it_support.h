/* it_support: what the integration tests (tests/integration/test_*.c) share: the
 * redis-server the CTest fixture started, a bounded wait on a uv loop, and the cleanup of
 * a test's own key prefix. Linked into every integration test program. */
#ifndef CHATDESK_IT_SUPPORT_H
#define CHATDESK_IT_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct redisContext;
struct uv_loop_s;

/* CD_TEST_REDIS ("unix:/path[?...]"): the URL for cd_config.redis and the socket path for
 * hiredis; also quiets the log to errors. false, after printing why the test program
 * skips, when it is not set. */
bool it_redis_from_env(const char **url, const char **path);

/* A test's own world: a new loop, a default config for the fixture's Redis and a key
 * prefix of its own, "<tag><pid>_<n>:" (n counts the calls). */
struct cd_config;
void it_world_init(struct uv_loop_s *loop, struct cd_config *cfg, char *prefix, size_t n, const char *tag);

/* Run the loop until done(arg) holds or ms pass; returns done(arg). done is checked
 * before each turn of the loop, so it may also do work between turns. */
typedef bool (*it_cond_fn)(const void *arg);
bool it_run_until(struct uv_loop_s *loop, it_cond_fn done, const void *arg, uint64_t ms);

/* Replace a cd_config string setting. */
void it_set_str(char **field, const char *value);

/* DEL every key under prefix (each test has its own prefix instead of FLUSHALL). */
void it_drop_prefix(struct redisContext *rc, const char *prefix);

/* Turn the loop until its closing handles are gone, then close it: 0, or the
 * uv_loop_close error when handles are left. */
int it_loop_finish(struct uv_loop_s *loop);

#endif
