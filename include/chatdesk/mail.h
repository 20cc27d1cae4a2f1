/* mail: the e-mail channel (docs/email.md). Outgoing mail is queued in Redis first, in
 * the same atomic step as the change that asks for it (the events pass, _ev_mail.lua, or
 * an admin's test mail): a hash in the site's slot and the timer "mail|<id>". Whichever
 * node claims the timer (with the timer lease, so once across nodes) takes the mail
 * (mail_take.lua: attempt counted, lease stretched over the transaction), builds the
 * message with GMime (mime.c) and sends it over SMTP with libcurl's multi interface on
 * the loop (cd_curluv: the loop never blocks); mail_result.lua records sent, a retry with
 * backoff, or failed. A node killed mid-send leaves the timer leased: another node sends
 * the mail again after the lease with the same Message-ID and Date (at least once, the
 * same message), so a receiver can drop the copy. Serves ARCHITECTURE invariants 1, 2
 * and 7. Inbound mail: the parser (parse.c) that `chatdeskd mail-in` (admin/mailin.c)
 * runs on a message an MTA pipes in; IMAP polling is not here yet (issue 15). */
#ifndef CHATDESK_MAIL_H
#define CHATDESK_MAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatdesk/config.h"
#include "chatdesk/store.h"
#include "chatdesk/timers.h"

struct uv_loop_s;

/* One outgoing message as mime.c builds it. Strings are UTF-8 and NUL-terminated; NULL or
 * "" leaves the header out (to, from and message_id are required). */
typedef struct cd_mail_msg {
    const char *from_name, *from; /* From: the display name (RFC 2047 when not ASCII) and address */
    const char *to_name, *to;
    const char *reply_to;    /* Reply-To address (plus-addressed with the conversation's token) */
    const char *subject;     /* RFC 2047 encoded when not ASCII */
    const char *text;        /* the text/plain body; an HTML alternative is made from it */
    const char *message_id;  /* "<local@domain>" */
    const char *in_reply_to; /* "<id>" */
    const char *references;  /* "<id> <id> …" */
    bool auto_generated;     /* Auto-Submitted: auto-generated (RFC 3834) */
    int64_t date_ms;         /* Date: (ms since the epoch) */
} cd_mail_msg;

/* The RFC 5322 text of m (CRLF line ends, 7-bit: quoted-printable or base64 bodies), built
 * with GMime; *len its length. The caller frees it with cd_free. NULL (and err filled)
 * when a required field is missing or an address is not one a mail may carry. */
char *cd_mail_build(const cd_mail_msg *m, size_t *len, char *err, size_t errsz);
/* Is a an address SMTP may carry in an envelope: local@domain, printable ASCII without
 * spaces, angle brackets, quotes or a second '@', at most 254 bytes? */
bool cd_mail_addr_ok(const char *a);
/* "local+token@domain" of base (local@domain, or "Name <local@domain>") into out; false
 * when base has no address or out is too small. */
bool cd_mail_plus_address(const char *base, const char *token, char *out, size_t outsz);
/* The delay before the next attempt after `attempt` failed ones (1-based), with jitter r in
 * [0,1): base * 2^(attempt-1), at most an hour, times (0.8 + 0.4 r). */
uint64_t cd_mail_backoff_ms(uint64_t base_ms, int attempt, double r);

/* ---- inbound (parse.c) ---- */

/* One inbound message as the parser reads it. Strings are UTF-8, bounded, NUL-terminated. */
typedef struct cd_mail_in {
    char from[256];      /* the sender's address (From:; Reply-To: wins) */
    char from_name[256]; /* its display name, decoded */
    char subject[512];   /* decoded (RFC 2047, any charset), control characters dropped */
    char message_id[256];
    char refs[2048]; /* In-Reply-To then References: "<id> <id> …", each once */
    char token[32];  /* the reply token of a recipient local+<token>@domain (20 hex), or "" */
    bool automatic;  /* Auto-Submitted (not "no"), Precedence bulk/list/junk, List-Id, a bounce */
    char *text;      /* the body as text (text/plain, else HTML made text), quoted history cut */
    size_t text_len;
} cd_mail_in;

/* Parses one RFC 5322 message (data, len) with GMime: multipart, any charset GMime's iconv
 * knows (UTF-8, GBK/GB2312, Big5, ISO-8859-x…), quoted-printable and base64. The text is
 * cut at the quoted history ("On … wrote:", "-----Original Message-----", the trailing
 * "> " lines) and to max_text bytes (at a character boundary); signatures stay. 0, or -1
 * with err ("no From address", "not a message"…). Free with cd_mail_in_cleanup. */
int cd_mail_parse(const char *data, size_t len, size_t max_text, cd_mail_in *out, char *err, size_t errsz);
void cd_mail_in_cleanup(cd_mail_in *m);

typedef struct cd_mail cd_mail;

/* The sender of the node, on loop; NULL when libcurl cannot start. With no smtp_url it
 * sends nothing (a mail's timer is left to its lease, for a node that can). */
cd_mail *cd_mail_create(struct uv_loop_s *loop, const cd_config *cfg, cd_store *st);
/* Registers the timer kind "mail" with t (at start-up). */
void cd_mail_timers_register(cd_mail *m, cd_timers *t);
/* Aborts the transactions in flight (their mails stay leased and go again after the
 * lease, with the same Message-ID) and closes every handle; the memory goes once they are
 * closed. Call before cd_store_destroy. */
void cd_mail_destroy(cd_mail *m);

#endif
