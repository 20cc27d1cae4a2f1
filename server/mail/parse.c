/* parse.c: one inbound RFC 5322 message as chatdesk keeps it (include/chatdesk/mail.h
 * cd_mail_in), read with GMime. GMime does the hard parts: MIME structure, RFC 2047
 * words, transfer encodings and charset conversion to UTF-8 (iconv: GBK/GB2312, Big5,
 * ISO-8859-x…). This file picks what a conversation needs: the sender, the subject, the
 * threading ids, the reply token of a plus-addressed recipient, whether the mail was sent
 * by a machine (no auto-reply loops), and the text of the body, with the quoted history
 * cut off so the conversation does not repeat itself.
 *
 * Input is hostile: every field is bounded, text is valid UTF-8 (invalid bytes replaced),
 * control characters are dropped, and nothing here asserts on input. A libFuzzer target
 * (tests/fuzz/fuzz_mail.c) runs it on arbitrary bytes. Pure: no loop, no Redis. */
#include "chatdesk/mail.h"

#include <gmime/gmime.h>
#include <stdio.h>
#include <string.h>

#include "chatdesk/base.h"

static void parse_init(void)
{
    static bool done;
    if (!done) {
        g_mime_init();
        done = true;
    }
}

/* s (NUL-terminated) into out (size outsz): valid UTF-8, no control characters, cut at a
 * character boundary. */
static void clean_copy(char *out, size_t outsz, const char *s)
{
    out[0] = '\0';
    if (!s)
        return;
    gchar *v = g_utf8_make_valid(s, -1);
    size_t o = 0;
    for (const char *p = v; *p && o + 1 < outsz;) {
        const char *next = g_utf8_next_char(p);
        size_t n = (size_t)(next - p);
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            if (o > 0 && out[o - 1] != ' ')
                out[o++] = ' ';
        } else if (o + n < outsz) {
            memcpy(out + o, p, n);
            o += n;
        } else {
            break;
        }
        p = next;
    }
    out[o] = '\0';
    g_free(v);
}

/* ---- addresses, ids, the reply token ---- */

static const char *first_mailbox(InternetAddressList *l, const char **name)
{
    for (int i = 0; l && i < internet_address_list_length(l); i++) {
        InternetAddress *ia = internet_address_list_get_address(l, i);
        if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
            *name = internet_address_get_name(ia);
            return internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
        }
    }
    return NULL;
}

/* The token of address a when its local part is local+<20 lower-case hex>. */
static bool token_of(const char *a, char *tok, size_t toksz)
{
    const char *plus = a ? strchr(a, '+') : NULL, *at = a ? strchr(a, '@') : NULL;
    if (!plus || !at || plus > at || at - plus - 1 != 20 || toksz < 21)
        return false;
    for (const char *p = plus + 1; p < at; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')))
            return false;
    for (int i = 0; i < 20; i++)
        tok[i] = (char)(plus[1 + i] >= 'A' && plus[1 + i] <= 'F' ? plus[1 + i] + 32 : plus[1 + i]);
    tok[20] = '\0';
    return true;
}

static void token_from_list(InternetAddressList *l, char *tok, size_t toksz)
{
    for (int i = 0; l && !tok[0] && i < internet_address_list_length(l); i++) {
        InternetAddress *ia = internet_address_list_get_address(l, i);
        if (INTERNET_ADDRESS_IS_MAILBOX(ia))
            token_of(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia)), tok, toksz);
    }
}

/* A header that holds addresses (Delivered-To, X-Original-To) searched for a token. */
static void token_from_header(GMimeObject *o, const char *h, char *tok, size_t toksz)
{
    const char *v = g_mime_object_get_header(o, h);
    if (tok[0] || !v)
        return;
    InternetAddressList *l = internet_address_list_parse(NULL, v);
    token_from_list(l, tok, toksz);
    if (l)
        g_object_unref(l);
}

/* A message id as RFC 5322 has it (without brackets): 1-240 printable ASCII characters,
 * no brackets, with an '@'. Anything else is not one of ours and is not kept. */
static bool msgid_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 240 || !strchr(id, '@'))
        return false;
    for (const char *p = id; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == '<' || *p == '>')
            return false;
    return true;
}

/* Appends the message ids of header h ("<a> <b>") to refs, each once, while they fit. */
static void add_refs(GMimeObject *o, const char *h, char *refs, size_t refsz)
{
    const char *v = g_mime_object_get_header(o, h);
    GMimeReferences *r = v ? g_mime_references_parse(NULL, v) : NULL;
    for (int i = 0; r && i < g_mime_references_length(r); i++) {
        char id[250];
        const char *one = g_mime_references_get_message_id(r, i);
        if (!msgid_ok(one))
            continue;
        snprintf(id, sizeof id, "<%s>", one);
        if (strstr(refs, id))
            continue;
        size_t n = strlen(refs), k = strlen(id);
        if (n + k + 2 > refsz)
            break;
        if (n)
            refs[n++] = ' ';
        memcpy(refs + n, id, k + 1);
    }
    if (r)
        g_mime_references_free(r);
}

static bool header_is(GMimeObject *o, const char *h, const char *const *values)
{
    const char *v = g_mime_object_get_header(o, h);
    if (!v)
        return false;
    while (*v == ' ' || *v == '\t')
        v++;
    for (; *values; values++)
        if (g_ascii_strncasecmp(v, *values, strlen(*values)) == 0)
            return true;
    return false;
}

/* Sent by a machine (RFC 3834 and the customs before it): never answered, never a ticket. */
static bool automatic(GMimeMessage *msg, GMimeObject *o)
{
    static const char *const bulk[] = {"bulk", "list", "junk", "auto_reply", NULL};
    static const char *const empty[] = {"<>", NULL};
    const char *as = g_mime_object_get_header(o, "Auto-Submitted");
    if (as) {
        while (*as == ' ' || *as == '\t')
            as++;
        if (g_ascii_strncasecmp(as, "no", 2) != 0)
            return true;
    }
    GMimeObject *body = g_mime_message_get_mime_part(msg);
    GMimeContentType *ct = body ? g_mime_object_get_content_type(body) : NULL;
    return header_is(o, "Precedence", bulk) || g_mime_object_get_header(o, "List-Id") ||
           g_mime_object_get_header(o, "X-Autoreply") || g_mime_object_get_header(o, "X-Autorespond") ||
           header_is(o, "Return-Path", empty) || (ct && g_mime_content_type_is_type(ct, "multipart", "report"));
}

/* ---- the body ---- */

/* The first text/plain part that is not an attachment, else the first text/html one
 * (*html set); forwarded messages (message/rfc822) are not looked into. */
static GMimeTextPart *find_text(GMimeObject *o, bool *html)
{
    if (GMIME_IS_MULTIPART(o)) {
        GMimeTextPart *found = NULL;
        bool found_html = false;
        GMimeMultipart *mp = GMIME_MULTIPART(o);
        for (int i = 0; i < g_mime_multipart_get_count(mp); i++) {
            bool h = false;
            GMimeTextPart *t = find_text(g_mime_multipart_get_part(mp, i), &h);
            if (t && !h) {
                *html = false;
                return t;
            }
            if (t && !found) {
                found = t;
                found_html = h;
            }
        }
        *html = found_html;
        return found;
    }
    if (!GMIME_IS_TEXT_PART(o) || g_mime_part_is_attachment(GMIME_PART(o)))
        return NULL;
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    if (g_mime_content_type_is_type(ct, "text", "plain")) {
        *html = false;
        return GMIME_TEXT_PART(o);
    }
    if (g_mime_content_type_is_type(ct, "text", "html")) {
        *html = true;
        return GMIME_TEXT_PART(o);
    }
    return NULL;
}

static const struct {
    const char *name;
    const char *text;
} ENTITIES[] = {{"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}, {"#39", "'"}, {"nbsp", " "}};

/* HTML as text: tags dropped (a line break for br, and between blocks: p, div, li, tr,
 * blockquote, h1-h6),
 * script and style dropped with their content, a few entities decoded. */
static void html_to_text(const char *h, cd_buf *b)
{
    const char *p = h;
    while (*p) {
        if (*p == '<') {
            const char *end = strchr(p, '>');
            if (!end)
                break;
            const char *t = p + 1 + (p[1] == '/');
            size_t tl = strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
            if (p[1] != '/' && ((tl == 6 && g_ascii_strncasecmp(t, "script", 6) == 0) ||
                                (tl == 5 && g_ascii_strncasecmp(t, "style", 5) == 0))) {
                char close[10];
                snprintf(close, sizeof close, "</%.*s", (int)tl, t);
                const char *c = g_strstr_len(end, -1, close);
                for (const char *q = end; !c && *q; q++)
                    if (g_ascii_strncasecmp(q, close, strlen(close)) == 0)
                        c = q;
                end = c ? strchr(c, '>') : NULL;
                if (!end)
                    break;
            } else {
                static const char *const blocks[] = {"p",  "div", "li", "tr", "blockquote", "h1",
                                                     "h2", "h3",  "h4", "h5", "h6",         NULL};
                bool nl = b->len && b->data[b->len - 1] != '\n';
                if (tl == 2 && g_ascii_strncasecmp(t, "br", 2) == 0)
                    cd_buf_append(b, "\n", 1);
                for (const char *const *x = blocks; nl && *x; x++)
                    if (tl == strlen(*x) && g_ascii_strncasecmp(t, *x, tl) == 0)
                        cd_buf_append(b, "\n", 1);
            }
            p = end + 1;
        } else if (*p == '&') {
            size_t i;
            for (i = 0; i < CD_ARRAY_LEN(ENTITIES); i++) {
                size_t n = strlen(ENTITIES[i].name);
                if (strncmp(p + 1, ENTITIES[i].name, n) == 0 && p[1 + n] == ';') {
                    cd_buf_append_str(b, ENTITIES[i].text);
                    p += n + 2;
                    break;
                }
            }
            if (i == CD_ARRAY_LEN(ENTITIES))
                cd_buf_append(b, p++, 1);
        } else if (*p == '\r' || *p == '\n' || *p == '\t') {
            cd_buf_append(b, " ", 1);
            p++;
        } else {
            cd_buf_append(b, p++, 1);
        }
    }
}

static bool starts_with_ci(const char *s, size_t n, const char *w)
{
    size_t k = strlen(w);
    return n >= k && g_ascii_strncasecmp(s, w, k) == 0;
}

static bool ends_with(const char *s, size_t n, const char *w)
{
    size_t k = strlen(w);
    return n >= k && memcmp(s + n - k, w, k) == 0;
}

/* Where the quoted history starts in text (its length when there is none): an attribution
 * line ("On … wrote:", possibly over two lines; "… 写道："), a separator ("-----Original
 * Message-----", "-----原始邮件-----"), or the "> " lines that run to the end. */
static size_t quote_start(const char *text, size_t len)
{
    size_t prev = len; /* the start of the line before, if it began "On " */
    size_t trailing = len;
    bool only_quotes = false;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && text[e] != '\n')
            e++;
        const char *l = text + i;
        size_t n = e - i;
        while (n && (l[n - 1] == ' ' || l[n - 1] == '\r' || l[n - 1] == '\t'))
            n--;
        size_t lead = 0;
        while (lead < n && (l[lead] == ' ' || l[lead] == '\t'))
            lead++;
        const char *t = l + lead;
        size_t tn = n - lead;
        if ((starts_with_ci(t, tn, "-----Original Message") || starts_with_ci(t, tn, "-----原始邮件") ||
             starts_with_ci(t, tn, "----- Original Message")))
            return i;
        if (ends_with(t, tn, "wrote:") || ends_with(t, tn, "写道：") || ends_with(t, tn, "写道:")) {
            if (starts_with_ci(t, tn, "On ") || ends_with(t, tn, "写道：") || ends_with(t, tn, "写道:"))
                return i;
            if (prev < len)
                return prev;
        }
        prev = starts_with_ci(t, tn, "On ") ? i : len;
        if (tn && t[0] == '>') {
            if (!only_quotes) {
                trailing = i;
                only_quotes = true;
            }
        } else if (tn) {
            only_quotes = false;
            trailing = len;
        }
        i = e < len ? e + 1 : len;
    }
    return trailing;
}

/* The body's text into m->text: UTF-8, CRs and other control characters (not LF or TAB)
 * dropped, the quoted history cut, trailing blank space trimmed, at most max bytes. */
static void body_text(GMimeMessage *msg, size_t max, cd_mail_in *m)
{
    bool html = false;
    GMimeObject *top = g_mime_message_get_mime_part(msg);
    GMimeTextPart *tp = top ? find_text(top, &html) : NULL;
    char *raw = tp ? g_mime_text_part_get_text(tp) : NULL;
    gchar *valid = g_utf8_make_valid(raw ? raw : "", -1);
    g_free(raw);
    cd_buf b;
    cd_buf_init(&b);
    if (html)
        html_to_text(valid, &b);
    else
        cd_buf_append_str(&b, valid);
    g_free(valid);
    cd_buf t;
    cd_buf_init(&t);
    for (size_t i = 0; i < b.len; i++) {
        unsigned char ch = (unsigned char)b.data[i];
        if (ch >= 0x20 || ch == '\n' || ch == '\t')
            cd_buf_append(&t, b.data + i, 1);
    }
    cd_buf_cleanup(&b);
    size_t n = quote_start(t.data ? t.data : "", t.len);
    while (n && (t.data[n - 1] == '\n' || t.data[n - 1] == ' ' || t.data[n - 1] == '\t'))
        n--;
    size_t lead = 0;
    while (lead < n && (t.data[lead] == '\n' || t.data[lead] == ' '))
        lead++;
    if (n - lead > max) {
        n = lead + max;
        while (n > lead && ((unsigned char)t.data[n] & 0xc0) == 0x80)
            n--;
    }
    m->text = cd_strndup(t.data ? t.data + lead : "", n - lead);
    m->text_len = n - lead;
    cd_buf_cleanup(&t);
}

int cd_mail_parse(const char *data, size_t len, size_t max_text, cd_mail_in *out, char *err, size_t errsz)
{
    memset(out, 0, sizeof *out);
    parse_init();
    GMimeStream *st = g_mime_stream_mem_new_with_buffer(data, len);
    GMimeParser *p = g_mime_parser_new_with_stream(st);
    GMimeMessage *msg = g_mime_parser_construct_message(p, NULL);
    g_object_unref(p);
    g_object_unref(st);
    if (!msg) {
        snprintf(err, errsz, "not a message");
        return -1;
    }
    GMimeObject *o = (GMimeObject *)msg;
    int rc = -1;
    const char *name = NULL;
    const char *from = first_mailbox(g_mime_message_get_reply_to(msg), &name);
    if (!from)
        from = first_mailbox(g_mime_message_get_from(msg), &name);
    clean_copy(out->from, sizeof out->from, from);
    if (!cd_mail_addr_ok(out->from)) {
        snprintf(err, errsz, "no usable From address");
        goto out;
    }
    for (char *c = out->from; *c; c++) /* the domain's case does not matter; ours is kept lower */
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c + 32);
    clean_copy(out->from_name, sizeof out->from_name, name);
    clean_copy(out->subject, sizeof out->subject, g_mime_message_get_subject(msg));
    const char *mid = g_mime_message_get_message_id(msg);
    if (msgid_ok(mid))
        snprintf(out->message_id, sizeof out->message_id, "<%s>", mid);
    add_refs(o, "In-Reply-To", out->refs, sizeof out->refs);
    add_refs(o, "References", out->refs, sizeof out->refs);
    token_from_list(g_mime_message_get_addresses(msg, GMIME_ADDRESS_TYPE_TO), out->token, sizeof out->token);
    token_from_list(g_mime_message_get_addresses(msg, GMIME_ADDRESS_TYPE_CC), out->token, sizeof out->token);
    token_from_header(o, "Delivered-To", out->token, sizeof out->token);
    token_from_header(o, "X-Original-To", out->token, sizeof out->token);
    out->automatic = automatic(msg, o);
    body_text(msg, max_text, out);
    rc = 0;
out:
    g_object_unref(msg);
    return rc;
}

void cd_mail_in_cleanup(cd_mail_in *m)
{
    cd_free(m->text);
    m->text = NULL;
}
