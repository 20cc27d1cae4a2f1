/* mime.c: an outgoing message in RFC 5322 form, built with GMime (why GMime: headers
 * folded and RFC 2047-encoded for any charset, addresses quoted as they must be, body
 * encodings chosen for 7-bit transport; the same library parses inbound mail). Pure: no
 * loop, no Redis; the outbox (outbox.c) hands it a mail as mail_take.lua answered it.
 *
 * The message is multipart/alternative: the text as text/plain and an HTML rendering of
 * it (escaped, lines kept, the quoted history "> …" as a blockquote), both UTF-8. Date and
 * Message-ID come from the queued mail, so every attempt of one mail is the same message.
 * Addresses are checked (cd_mail_addr_ok) before they reach a header or the envelope:
 * a customer's e-mail address is text a visitor typed. */
#include "chatdesk/mail.h"

#include <gmime/gmime.h>
#include <stdio.h>
#include <string.h>

#include "chatdesk/base.h"

static void mime_init(void)
{
    static bool done;
    if (!done) {
        g_mime_init();
        done = true;
    }
}

bool cd_mail_addr_ok(const char *a)
{
    size_t n = a ? strlen(a) : 0;
    const char *at = a ? strchr(a, '@') : NULL;
    if (n < 3 || n > 254 || !at || at == a || at[1] == '\0' || strchr(at + 1, '@'))
        return false;
    for (const char *p = a; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= ' ' || ch >= 0x7f || strchr("<>\"(),;:\\[]", ch))
            return false;
    }
    return at[1] != '.' && a[n - 1] != '.';
}

/* The address inside base ("local@domain" or "Name <local@domain>") into out. */
static bool bare_address(const char *base, char *out, size_t outsz)
{
    const char *lt = base ? strrchr(base, '<') : NULL;
    const char *s = lt ? lt + 1 : base;
    size_t n = s ? (lt ? strcspn(s, ">") : strlen(s)) : 0;
    while (n && s[0] == ' ') {
        s++;
        n--;
    }
    while (n && s[n - 1] == ' ')
        n--;
    if (n == 0 || n >= outsz)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return cd_mail_addr_ok(out);
}

bool cd_mail_plus_address(const char *base, const char *token, char *out, size_t outsz)
{
    char a[256];
    if (!bare_address(base, a, sizeof a))
        return false;
    char *at = strchr(a, '@');
    *at = '\0';
    int n = snprintf(out, outsz, "%s+%s@%s", a, token, at + 1);
    return n > 0 && (size_t)n < outsz && cd_mail_addr_ok(out);
}

uint64_t cd_mail_backoff_ms(uint64_t base_ms, int attempt, double r)
{
    uint64_t d = base_ms;
    for (int i = 1; i < attempt && d < 3600000; i++)
        d *= 2;
    if (d > 3600000)
        d = 3600000;
    return (uint64_t)((double)d * (0.8 + 0.4 * r));
}

/* The HTML alternative of text: escaped, line breaks kept, runs of "> " lines (the quoted
 * history) in a blockquote. */
static char *text_to_html(const char *text)
{
    cd_buf b;
    cd_buf_init(&b);
    cd_buf_append_str(&b, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body>\n<div>");
    bool quoting = false;
    const char *p = text;
    while (*p) {
        size_t n = strcspn(p, "\n");
        bool q = p[0] == '>';
        if (q != quoting) {
            cd_buf_append_str(&b, q ? "</div>\n<blockquote style=\"margin:0 0 0 .8ex;border-left:1px solid #ccc;"
                                      "padding-left:1ex\">"
                                    : "</blockquote>\n<div>");
            quoting = q;
        }
        const char *s = p, *end = p + n;
        if (q) {
            s++;
            if (s < end && *s == ' ')
                s++;
        }
        for (; s < end; s++) {
            switch (*s) {
            case '&':
                cd_buf_append_str(&b, "&amp;");
                break;
            case '<':
                cd_buf_append_str(&b, "&lt;");
                break;
            case '>':
                cd_buf_append_str(&b, "&gt;");
                break;
            case '"':
                cd_buf_append_str(&b, "&quot;");
                break;
            default:
                cd_buf_append(&b, s, 1);
            }
        }
        cd_buf_append_str(&b, "<br>\n");
        p = end;
        if (*p == '\n')
            p++;
    }
    cd_buf_append_str(&b, quoting ? "</blockquote>\n</body></html>\n" : "</div>\n</body></html>\n");
    return b.data; /* the caller owns it (cd_free) */
}

static char *crlf(const char *s, size_t *len);

/* A UTF-8 text part in canonical form (CRLF line ends). */
static GMimeObject *text_part(const char *subtype, const char *text)
{
    size_t n;
    char *canon = crlf(text, &n);
    GMimeTextPart *t = g_mime_text_part_new_with_subtype(subtype);
    g_mime_text_part_set_text(t, canon);
    cd_free(canon);
    g_mime_text_part_set_charset(t, "utf-8");
    return (GMimeObject *)t;
}

static void add_address(GMimeMessage *msg, GMimeAddressType type, const char *name, const char *addr)
{
    InternetAddress *ia = internet_address_mailbox_new(name && name[0] ? name : NULL, addr);
    internet_address_list_add(g_mime_message_get_addresses(msg, type), ia);
    g_object_unref(ia);
}

/* "<id>" -> "id" into out (GMime adds the brackets). */
static bool msgid_inner(const char *id, char *out, size_t outsz)
{
    size_t n = id ? strlen(id) : 0;
    if (n < 3 || id[0] != '<' || id[n - 1] != '>' || n - 2 >= outsz)
        return false;
    memcpy(out, id + 1, n - 2);
    out[n - 2] = '\0';
    for (const char *p = out; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == '<' || *p == '>')
            return false;
    return strchr(out, '@') != NULL;
}

/* In-Reply-To / References: only well-formed "<id>" lists reach the header. */
static bool msgid_list_ok(const char *s)
{
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < ' ' || (unsigned char)*p >= 0x7f)
            return false;
    return strlen(s) < 900;
}

/* LF -> CRLF where GMime left a bare LF (SMTP wants CRLF line ends). */
static char *crlf(const char *s, size_t *len)
{
    cd_buf b;
    cd_buf_init(&b);
    for (const char *p = s; *p; p++) {
        if (*p == '\n' && (p == s || p[-1] != '\r'))
            cd_buf_append(&b, "\r", 1);
        cd_buf_append(&b, p, 1);
    }
    *len = b.len;
    return b.data; /* the caller owns it (cd_free) */
}

char *cd_mail_build(const cd_mail_msg *m, size_t *len, char *err, size_t errsz)
{
    char mid[256];
    if (!cd_mail_addr_ok(m->to) || !cd_mail_addr_ok(m->from)) {
        snprintf(err, errsz, "not an address: %s", cd_mail_addr_ok(m->to) ? "from" : "to");
        return NULL;
    }
    if (m->reply_to && m->reply_to[0] && !cd_mail_addr_ok(m->reply_to)) {
        snprintf(err, errsz, "not an address: reply-to");
        return NULL;
    }
    if (!msgid_inner(m->message_id, mid, sizeof mid) || (m->in_reply_to && !msgid_list_ok(m->in_reply_to)) ||
        (m->references && !msgid_list_ok(m->references))) {
        snprintf(err, errsz, "bad Message-ID, In-Reply-To or References");
        return NULL;
    }
    mime_init();
    GMimeMessage *msg = g_mime_message_new(TRUE);
    add_address(msg, GMIME_ADDRESS_TYPE_FROM, m->from_name, m->from);
    add_address(msg, GMIME_ADDRESS_TYPE_TO, m->to_name, m->to);
    if (m->reply_to && m->reply_to[0])
        add_address(msg, GMIME_ADDRESS_TYPE_REPLY_TO, NULL, m->reply_to);
    g_mime_message_set_subject(msg, m->subject ? m->subject : "", "utf-8");
    GDateTime *date = g_date_time_new_from_unix_utc(m->date_ms / 1000);
    g_mime_message_set_date(msg, date);
    g_date_time_unref(date);
    g_mime_message_set_message_id(msg, mid);
    if (m->in_reply_to && m->in_reply_to[0])
        g_mime_object_set_header((GMimeObject *)msg, "In-Reply-To", m->in_reply_to, NULL);
    if (m->references && m->references[0])
        g_mime_object_set_header((GMimeObject *)msg, "References", m->references, NULL);
    if (m->auto_generated)
        g_mime_object_set_header((GMimeObject *)msg, "Auto-Submitted", "auto-generated", NULL);

    const char *text = m->text ? m->text : "";
    char *html = text_to_html(text);
    GMimeMultipart *alt = g_mime_multipart_new_with_subtype("alternative");
    GMimeObject *plain = text_part("plain", text), *rich = text_part("html", html);
    g_mime_multipart_add(alt, plain);
    g_mime_multipart_add(alt, rich);
    g_object_unref(plain);
    g_object_unref(rich);
    cd_free(html);
    g_mime_message_set_mime_part(msg, (GMimeObject *)alt);
    g_object_unref(alt);
    g_mime_object_encode((GMimeObject *)msg, GMIME_ENCODING_CONSTRAINT_7BIT);

    GMimeFormatOptions *fo = g_mime_format_options_new();
    g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
    char *s = g_mime_object_to_string((GMimeObject *)msg, fo);
    g_mime_format_options_free(fo);
    g_object_unref(msg);
    char *out = crlf(s, len);
    g_free(s);
    return out;
}
