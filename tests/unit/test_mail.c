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

/* ---- inbound ---- */

static void parse_ok(const char *raw, cd_mail_in *m)
{
    char err[128] = "";
    int rc = cd_mail_parse(raw, strlen(raw), 8192, m, err, sizeof err);
    if (rc != 0)
        fail_msg("parse: %s", err);
}

static void test_parse_reply_plain_utf8(void **state)
{
    (void)state;
    const char *raw = "From: =?UTF-8?B?546L5bCP5piO?= <Wang@Example.CN>\r\n"
                      "To: Shop <help+0123456789ABCDEF0123@shop.example>\r\n"
                      "Subject: Re: =?UTF-8?B?W+W3peWNlSAjMTAwMF0g6K6i5Y2V5rKh5pyJ5Yiw?=\r\n"
                      "Message-ID: <reply-1@example.cn>\r\n"
                      "In-Reply-To: <m3.abc.demo@shop.example>\r\n"
                      "References: <m1.x.demo@shop.example> <m3.abc.demo@shop.example>\r\n"
                      "MIME-Version: 1.0\r\n"
                      "Content-Type: text/plain; charset=utf-8\r\n"
                      "Content-Transfer-Encoding: quoted-printable\r\n"
                      "\r\n"
                      "=E6=94=B6=E5=88=B0=E4=BA=86=EF=BC=8C=E8=B0=A2=E8=B0=A2=EF=BC=81\r\n"
                      "\r\n"
                      "--\r\n"
                      "Wang\r\n"
                      "\r\n"
                      "On Mon, 30 Nov 2026 at 08:53, Help Desk <help@shop.example> wrote:\r\n"
                      "> It left our warehouse today.\r\n"
                      ">\r\n"
                      "> > older\r\n";
    cd_mail_in m;
    parse_ok(raw, &m);
    assert_string_equal(m.from, "wang@example.cn");
    assert_string_equal(m.from_name, "王小明");
    assert_string_equal(m.subject, "Re: [工单 #1000] 订单没有到");
    assert_string_equal(m.message_id, "<reply-1@example.cn>");
    assert_string_equal(m.refs, "<m3.abc.demo@shop.example> <m1.x.demo@shop.example>");
    assert_string_equal(m.token, "0123456789abcdef0123");
    assert_false(m.automatic);
    assert_string_equal(m.text, "收到了，谢谢！\n\n--\nWang");
    cd_mail_in_cleanup(&m);
}

static void test_parse_gbk_base64_html(void **state)
{
    (void)state;
    /* HTML in GBK, base64 (a style element, entities); the subject in GB2312 (RFC 2047 B) */
    const char *raw = "From: li@example.cn\r\n"
                      "To: support@shop.example\r\n"
                      "Subject: =?GB2312?B?tqm1pc7KzOI=?=\r\n"
                      "Message-ID: <gbk-1@example.cn>\r\n"
                      "MIME-Version: 1.0\r\n"
                      "Content-Type: multipart/alternative; boundary=\"b1\"\r\n"
                      "\r\n"
                      "--b1\r\n"
                      "Content-Type: text/html; charset=gbk\r\n"
                      "Content-Transfer-Encoding: base64\r\n"
                      "\r\n"
                      "PHA+xOO6w6OsztK1xLaptaU8L3A+PHN0eWxlPnB7fTwvc3R5bGU+PHA+MSAmbHQ7IDImYW1wOzwvcD4=\r\n"
                      "--b1--\r\n";
    cd_mail_in m;
    parse_ok(raw, &m);
    assert_string_equal(m.subject, "订单问题");
    assert_string_equal(m.token, "");
    assert_string_equal(m.refs, "");
    assert_string_equal(m.text, "你好，我的订单\n1 < 2&");
    cd_mail_in_cleanup(&m);
}

static void test_parse_prefers_plain_and_skips_attachments(void **state)
{
    (void)state;
    const char *raw =
        "From: a@b.example\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=m\r\n\r\n"
        "--m\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=x.txt\r\n\r\nattached\r\n"
        "--m\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n"
        "--a\r\nContent-Type: text/html\r\n\r\n<b>html</b>\r\n"
        "--a\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        "Gr=FC=DFe\r\n\r\n-----Original Message-----\r\nFrom: x\r\n"
        "--a--\r\n--m--\r\n";
    cd_mail_in m;
    parse_ok(raw, &m);
    assert_string_equal(m.text, "Grüße");
    cd_mail_in_cleanup(&m);
}

static void test_parse_automatic_and_refusals(void **state)
{
    (void)state;
    const char *autos[] = {
        "From: a@b.example\r\nAuto-Submitted: auto-replied\r\n\r\nout of office\r\n",
        "From: a@b.example\r\nPrecedence: bulk\r\n\r\nnews\r\n",
        "From: a@b.example\r\nList-Id: <x.lists.example>\r\n\r\nlist\r\n",
        "From: MAILER-DAEMON@b.example\r\nReturn-Path: <>\r\n\r\nbounce\r\n",
    };
    for (size_t i = 0; i < sizeof autos / sizeof autos[0]; i++) {
        cd_mail_in m;
        parse_ok(autos[i], &m);
        assert_true(m.automatic);
        cd_mail_in_cleanup(&m);
    }
    cd_mail_in m;
    parse_ok("From: a@b.example\r\nAuto-Submitted: no\r\n\r\nme\r\n", &m);
    assert_false(m.automatic);
    cd_mail_in_cleanup(&m);
    char err[128];
    assert_int_equal(cd_mail_parse("Subject: x\r\n\r\nno sender\r\n", 24, 100, &m, err, sizeof err), -1);
    assert_string_equal(err, "no usable From address");
    const char *inj = "From: \"x\" <a@b.example\r\nBcc: c@d.example>\r\n\r\nx\r\n";
    if (cd_mail_parse(inj, strlen(inj), 100, &m, err, sizeof err) == 0) {
        assert_true(cd_mail_addr_ok(m.from));
        cd_mail_in_cleanup(&m);
    }
}

static void test_parse_bounds(void **state)
{
    (void)state;
    /* a long body is cut at a character boundary; invalid UTF-8 is replaced */
    cd_buf b;
    cd_buf_init(&b);
    cd_buf_append_str(&b, "From: a@b.example\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\xff\xfe");
    for (int i = 0; i < 3000; i++)
        cd_buf_append_str(&b, "好");
    cd_mail_in m;
    char err[64];
    assert_int_equal(cd_mail_parse(b.data, b.len, 100, &m, err, sizeof err), 0);
    assert_true(m.text_len <= 100);
    assert_true(g_utf8_validate(m.text, (gssize)m.text_len, NULL));
    cd_mail_in_cleanup(&m);
    cd_buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_round_trip),
        cmocka_unit_test(test_same_mail_same_bytes),
        cmocka_unit_test(test_refuses_bad_addresses),
        cmocka_unit_test(test_plus_address),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_parse_reply_plain_utf8),
        cmocka_unit_test(test_parse_gbk_base64_html),
        cmocka_unit_test(test_parse_prefers_plain_and_skips_attachments),
        cmocka_unit_test(test_parse_automatic_and_refusals),
        cmocka_unit_test(test_parse_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
