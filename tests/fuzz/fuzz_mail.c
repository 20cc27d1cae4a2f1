/* libFuzzer target: the inbound mail parser (server/mail/parse.c, GMime underneath) on
 * arbitrary bytes, as `chatdeskd mail-in` reads them from an MTA. It must never crash,
 * and what it hands on must keep the contract the store relies on: the sender an address
 * cd_mail_addr_ok accepts, every text valid UTF-8 within its bound, no control character
 * in the one-line fields (no header can be smuggled into our mail), Message-ID and refs
 * only "<id>" forms, a token of 20 lower-case hex characters or none. */
#include <glib.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/mail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one_line(const char *s)
{
    if (!g_utf8_validate(s, -1, NULL))
        abort();
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cd_mail_in m;
    char err[160];
    size_t max = 1 + (size % 997);
    if (cd_mail_parse((const char *)data, size, max, &m, err, sizeof err) != 0) {
        if (!err[0])
            abort();
        return 0;
    }
    if (!cd_mail_addr_ok(m.from))
        abort();
    one_line(m.from_name);
    one_line(m.subject);
    one_line(m.message_id);
    one_line(m.refs);
    if (m.message_id[0] && (m.message_id[0] != '<' || m.message_id[strlen(m.message_id) - 1] != '>'))
        abort();
    size_t tl = strlen(m.token);
    if (tl != 0 && (tl != 20 || strspn(m.token, "0123456789abcdef") != 20))
        abort();
    if (!m.text || m.text_len > max || strlen(m.text) != m.text_len ||
        !g_utf8_validate(m.text, (gssize)m.text_len, NULL))
        abort();
    for (size_t i = 0; i < m.text_len; i++)
        if ((unsigned char)m.text[i] < 0x20 && m.text[i] != '\n' && m.text[i] != '\t')
            abort();
    cd_mail_in_cleanup(&m);
    return 0;
}
