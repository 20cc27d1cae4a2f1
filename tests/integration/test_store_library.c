/* test_store_library.c: store/'s function library against a real redis-server: flushed
 * away, the next call loads it again.
 *
 * The harness (fixture, operations, checks) is scripts_support.h; ctest -L integration
 * runs this program against the fixture's redis-server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <uv.h>

#include "it_support.h"
#include "scripts_support.h"

/* The scripts are a Redis function library: flushed away (FUNCTION FLUSH, a promoted
 * replica without it), the next call loads it again and succeeds. */
static void test_library_reloaded_after_flush(void **state)
{
    fx *f = *state;
    char vid[80], cid[80];
    new_visitor(f, SITE1, vid);
    r_do(f, "FUNCTION FLUSH SYNC");
    redisReply *rep = rx(f, "FUNCTION LIST");
    assert_int_equal(rep->elements, 0);
    freeReplyObject(rep);
    new_conv(f, SITE1, vid, "after a flush", cid, NULL);
    rep = rx(f, "FUNCTION LIST");
    assert_int_equal(rep->elements, 1);
    freeReplyObject(rep);
}

int main(void)
{
    if (!it_redis_from_env(&redis_url, &redis_path))
        return 0;

    const struct CMUnitTest tests[] = {
        T(test_library_reloaded_after_flush),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
