/* The outgoing message as mime.c builds it with GMime: headers (RFC 2047 for a Chinese
 * subject and name, Message-ID, threading, Auto-Submitted), CRLF line ends and a 7-bit
 * body, a round trip through GMime's parser; the address checks that keep a visitor's
 * text out of the headers and the envelope; plus-addressing; the retry schedule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <gmime/gmime.h>

#include "chatdesk/base.h"
#include "chatdesk/mail.h"

static const cd_mail_msg BASE = {
    .from_name = "示例商店 Support",
    .from = "help@shop.example",
    .to_name = "王小明",
    .to = "wang@example.cn",
    .reply_to = "help+0123456789abcdef0123@shop.example",
    .subject = "[工单 #1000] 订单没有到",
    .text = "您好，包裹已经发出。\n\n-- \nAnn\n\n> 王小明:\n> 我的订单在哪里？\n> . a line with a dot",
    .message_id = "<m3.0123456789abcdef.demo@shop.example>",
    .in_reply_to = "<m2.aaaa.demo@shop.example>",
    .references = "<m1.bbbb.demo@shop.example> <m2.aaaa.demo@shop.example>",
    .auto_generated = true,
    .date_ms = 1796000000000,
};

static GMimeMessage *parse(const char *s, size_t len)
{
    GMimeStream *st = g_mime_stream_mem_new_with_buffer(s, len);
    GMimeParser *p = g_mime_parser_new_with_stream(st);
    GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
    g_object_unref(p);
    g_object_unref(st);
    return m;
}

static void test_build_round_trip(void **state)
{
    (void)state;
    size_t len = 0;
    char err[128];
    char *s = cd_mail_build(&BASE, &len, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(strlen(s), len);
    /* every line ends in CRLF, every byte is 7-bit */
    for (size_t i = 0; i < len; i++) {
        assert_true((unsigned char)s[i] < 0x80);
        if (s[i] == '\n')
            assert_true(i > 0 && s[i - 1] == '\r');
    }
    assert_non_null(strstr(s, "Message-Id: <m3.0123456789abcdef.demo@shop.example>\r\n"));
    assert_non_null(strstr(s, "In-Reply-To: <m2.aaaa.demo@shop.example>\r\n"));
    assert_non_null(strstr(s, "References: <m1.bbbb.demo@shop.example>"));
    assert_non_null(strstr(s, "Auto-Submitted: auto-generated\r\n"));
    assert_non_null(strstr(s, "Subject: =?"));
    assert_non_null(strstr(s, "multipart/alternative"));
    assert_non_null(strstr(s, "Reply-To: help+0123456789abcdef0123@shop.example"));

    GMimeMessage *m = parse(s, len);
    assert_non_null(m);
    assert_string_equal(g_mime_message_get_subject(m), BASE.subject);
    assert_string_equal(g_mime_message_get_message_id(m), "m3.0123456789abcdef.demo@shop.example");
    InternetAddressList *to = g_mime_message_get_to(m);
    InternetAddress *a = internet_address_list_get_address(to, 0);
    assert_string_equal(internet_address_get_name(a), "王小明");
    assert_string_equal(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a)), "wang@example.cn");
    InternetAddress *f = internet_address_list_get_address(g_mime_message_get_from(m), 0);
    assert_string_equal(internet_address_get_name(f), "示例商店 Support");
    /* the text part decodes to the text, the HTML one escapes and quotes */
    GMimeMultipart *alt = GMIME_MULTIPART(g_mime_message_get_mime_part(m));
    assert_int_equal(g_mime_multipart_get_count(alt), 2);
    char *plain = g_mime_text_part_get_text(GMIME_TEXT_PART(g_mime_multipart_get_part(alt, 0)));
    assert_non_null(strstr(plain, "您好，包裹已经发出。"));
    assert_non_null(strstr(plain, "> . a line with a dot"));
    char *html = g_mime_text_part_get_text(GMIME_TEXT_PART(g_mime_multipart_get_part(alt, 1)));
    assert_non_null(strstr(html, "<blockquote"));
    assert_non_null(strstr(html, "我的订单在哪里？"));
    g_free(plain);
    g_free(html);
    g_object_unref(m);
    cd_free(s);
}

static void test_same_mail_same_bytes(void **state)
{
    (void)state;
    size_t a_len, b_len;
    char err[128];
    char *a = cd_mail_build(&BASE, &a_len, err, sizeof err), *b = cd_mail_build(&BASE, &b_len, err, sizeof err);
    /* a retry sends the same message: only the MIME boundary may differ */
    assert_non_null(strstr(a, "Date: "));
    const char *da = strstr(a, "Date: "), *db = strstr(b, "Date: ");
    assert_memory_equal(da, db, strcspn(da, "\r"));
    cd_free(a);
    cd_free(b);
}

static void test_refuses_bad_addresses(void **state)
{
    (void)state;
    const char *bad[] = {"",        "nobody",    "a@b@c",      "x@y.z\r\nBcc: all@evil.example",
                         "<x@y.z>", "a b@c.d",   "@c.d",       "a@",
                         "a@.d",    "\"q\"@c.d", "x@y.z,o@p.q"};
    char err[128];
    size_t len;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(cd_mail_addr_ok(bad[i]));
        cd_mail_msg m = BASE;
        m.to = bad[i];
        assert_null(cd_mail_build(&m, &len, err, sizeof err));
    }
    assert_true(cd_mail_addr_ok("wang.xm+tag@example.cn"));
    cd_mail_msg m = BASE;
    m.message_id = "<a\r\nBcc: x@y.z>";
    assert_null(cd_mail_build(&m, &len, err, sizeof err));
    m = BASE;
    m.in_reply_to = "<a@b>\r\nBcc: x@y.z";
    assert_null(cd_mail_build(&m, &len, err, sizeof err));
}

static void test_plus_address(void **state)
{
    (void)state;
    char out[128];
    assert_true(cd_mail_plus_address("support@shop.example", "abc123", out, sizeof out));
    assert_string_equal(out, "support+abc123@shop.example");
    assert_true(cd_mail_plus_address("Shop Support <support@shop.example>", "abc123", out, sizeof out));
    assert_string_equal(out, "support+abc123@shop.example");
    assert_false(cd_mail_plus_address("no address", "abc", out, sizeof out));
    assert_false(cd_mail_plus_address("support@shop.example", "abc", out, 10));
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(cd_mail_backoff_ms(1000, 1, 0.5), 1000);
    assert_int_equal(cd_mail_backoff_ms(1000, 3, 0.5), 4000);
    assert_int_equal(cd_mail_backoff_ms(1000, 40, 0.5), 3600000);
    assert_int_equal(cd_mail_backoff_ms(1000, 1, 0.0), 800);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_round_trip),
        cmocka_unit_test(test_same_mail_same_bytes),
        cmocka_unit_test(test_refuses_bad_addresses),
        cmocka_unit_test(test_plus_address),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
