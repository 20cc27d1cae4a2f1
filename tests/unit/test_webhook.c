/* Webhook SSRF protection: the address classifier (IPv4, IPv6, IPv4-mapped/-compatible,
 * NAT64 and 6to4 forms), the operator's allow list, and the retry schedule. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chatdesk/webhook.h"

static const struct {
    const char *ip;
    const char *why; /* NULL: public, may be reached */
} CASES[] = {
    {"127.0.0.1", "loopback"},
    {"127.255.255.254", "loopback"},
    {"10.0.0.1", "private"},
    {"10.255.255.255", "private"},
    {"172.16.0.1", "private"},
    {"172.31.255.255", "private"},
    {"172.32.0.1", NULL},
    {"172.15.255.255", NULL},
    {"192.168.1.1", "private"},
    {"169.254.169.254", "link-local"},
    {"100.64.0.1", "shared"},
    {"100.127.255.255", "shared"},
    {"100.128.0.1", NULL},
    {"0.0.0.0", "unspecified"},
    {"0.1.2.3", "unspecified"},
    {"224.0.0.1", "multicast"},
    {"239.255.255.250", "multicast"},
    {"255.255.255.255", "broadcast"},
    {"240.0.0.1", "reserved"},
    {"192.0.2.10", "documentation"},
    {"198.18.0.1", "reserved"},
    {"8.8.8.8", NULL},
    {"1.1.1.1", NULL},
    {"93.184.216.34", NULL},
    {"11.0.0.1", NULL},
    {"::1", "loopback"},
    {"::", "unspecified"},
    {"::ffff:127.0.0.1", "loopback"},
    {"::ffff:10.1.2.3", "private"},
    {"::ffff:169.254.169.254", "link-local"},
    {"::ffff:8.8.8.8", NULL},
    {"::127.0.0.1", "loopback"},
    {"64:ff9b::a9fe:a9fe", "link-local"},
    {"64:ff9b::808:808", NULL},
    {"2002:7f00:1::1", "loopback"},
    {"2002:0808:0808::1", NULL},
    {"fc00::1", "private"},
    {"fd12:3456:789a::1", "private"},
    {"fe80::1", "link-local"},
    {"febf::1", "link-local"},
    {"fec0::1", "private"},
    {"ff02::1", "multicast"},
    {"2001:db8::1", "documentation"},
    {"100::1", "reserved"},
    {"2606:4700:4700::1111", NULL},
    {"2a00:1450:4001:80b::200e", NULL},
};

static void test_classifier_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const char *got = cd_webhook_ip_blocked(CASES[i].ip);
        if (CASES[i].why == NULL) {
            if (got != NULL)
                fail_msg("%s: expected public, got %s", CASES[i].ip, got);
        } else if (got == NULL || strcmp(got, CASES[i].why) != 0) {
            fail_msg("%s: expected %s, got %s", CASES[i].ip, CASES[i].why, got ? got : "public");
        }
    }
    assert_string_equal(cd_webhook_ip_blocked("localhost"), "invalid");
    assert_string_equal(cd_webhook_ip_blocked("1.2.3"), "invalid");
}

static void test_sockaddr(void **state)
{
    (void)state;
    struct sockaddr_in a4;
    memset(&a4, 0, sizeof a4);
    a4.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &a4.sin_addr);
    assert_string_equal(cd_webhook_addr_blocked((struct sockaddr *)&a4), "loopback");
    inet_pton(AF_INET, "8.8.4.4", &a4.sin_addr);
    assert_null(cd_webhook_addr_blocked((struct sockaddr *)&a4));
    struct sockaddr_in6 a6;
    memset(&a6, 0, sizeof a6);
    a6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:192.168.0.1", &a6.sin6_addr);
    assert_string_equal(cd_webhook_addr_blocked((struct sockaddr *)&a6), "private");
    struct sockaddr un = {.sa_family = AF_UNIX};
    assert_non_null(cd_webhook_addr_blocked(&un));
    assert_non_null(cd_webhook_addr_blocked(NULL));
}

static void test_allow_list(void **state)
{
    (void)state;
    const char *list = "hooks.internal, 127.0.0.1:8080,[::1]:9000 ,fd00::5";
    assert_true(cd_webhook_host_allowed(list, "hooks.internal", 443));
    assert_true(cd_webhook_host_allowed(list, "HOOKS.internal", 80));
    assert_true(cd_webhook_host_allowed(list, "127.0.0.1", 8080));
    assert_false(cd_webhook_host_allowed(list, "127.0.0.1", 8081));
    assert_true(cd_webhook_host_allowed(list, "::1", 9000));
    assert_false(cd_webhook_host_allowed(list, "::1", 80));
    assert_true(cd_webhook_host_allowed(list, "fd00::5", 1234));
    assert_false(cd_webhook_host_allowed(list, "localhost", 8080));
    assert_false(cd_webhook_host_allowed(list, "hooks.internal.evil.com", 443));
    assert_false(cd_webhook_host_allowed(list, "internal", 443));
    assert_false(cd_webhook_host_allowed("", "127.0.0.1", 80));
    assert_false(cd_webhook_host_allowed(NULL, "127.0.0.1", 80));
}

static void test_backoff(void **state)
{
    (void)state;
    /* base 10 s: 10 s, 30 s, 2 min, 10 min, 1 h, then 1 h; jitter +-20 % */
    assert_int_equal(cd_webhook_backoff_ms(10000, 1, 0.5), 10000);
    assert_int_equal(cd_webhook_backoff_ms(10000, 2, 0.5), 30000);
    assert_int_equal(cd_webhook_backoff_ms(10000, 3, 0.5), 120000);
    assert_int_equal(cd_webhook_backoff_ms(10000, 4, 0.5), 600000);
    assert_int_equal(cd_webhook_backoff_ms(10000, 5, 0.5), 3600000);
    assert_int_equal(cd_webhook_backoff_ms(10000, 9, 0.5), 3600000);
    assert_int_equal(cd_webhook_backoff_ms(10000, 1, 0.0), 8000);
    assert_true(cd_webhook_backoff_ms(10000, 1, 0.999999) <= 12000);
    assert_int_equal(cd_webhook_backoff_ms(200, 0, 0.5), 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_classifier_table), cmocka_unit_test(test_sockaddr),
                                       cmocka_unit_test(test_allow_list), cmocka_unit_test(test_backoff)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
