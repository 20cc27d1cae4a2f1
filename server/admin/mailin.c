/* mailin.c: `chatdeskd mail-in --site KEY` reads one RFC 5322 message on stdin (an MTA's
 * pipe, Postfix `pipe(8)`: docs/email.md "Inbound") and stores it as a customer message of
 * the site. Parsed with the mail module (GMime: mail/parse.c), then, all in the site's
 * slot, three steps that are each safe to run again, so the MTA may redeliver after any
 * failure: mail_in.lua `find` (a duplicate Message-ID, a machine's mail, a loop of our own
 * mail, a sender over the hourly rate: nothing stored; else the conversation the reply
 * token or In-Reply-To/References name, or none), then msg_send.lua as the customer into
 * that conversation, then `mark`; or conv_start.lua for a new one (channel "email": a
 * ticket at once; it marks the Message-ID in the same step). Both are deduplicated by a
 * client_msg_id made from the Message-ID.
 *
 * A short-lived process with blocking hiredis, like the admin CLI (never a node's loop).
 * Exit status for the MTA (sysexits): 0 stored, duplicate or ignored (one JSON line on
 * stdout says which); 64 usage; 65 a mail that cannot be read or is too large (kept aside
 * in Redis, the reason on stderr; the MTA bounces it); 67 no such site; 75 Redis
 * unavailable (the MTA keeps the mail and tries again). */
#include "admin_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/admin.h"
#include "chatdesk/base.h"
#include "chatdesk/clock.h"
#include "chatdesk/mail.h"

#define EX_USAGE 64
#define EX_DATAERR 65
#define EX_NOUSER 67
#define EX_TEMPFAIL 75

/* Reads stdin, at most max + 1 bytes (one more than allowed says "too large"). */
static char *read_all(size_t max, size_t *len)
{
    cd_buf b;
    cd_buf_init(&b);
    char chunk[65536];
    size_t n;
    while (b.len <= max && (n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        cd_buf_append(&b, chunk, n);
    *len = b.len;
    return b.data ? b.data : cd_strdup("");
}

/* One call; its JSON reply (a string reply, or the first of an array) parsed, or NULL:
 * then `refused` says why ("not_found" or "other" when the function refused, "" when
 * Redis failed; the process makes one call at a time). */
static const char *refused = "";
static json_t *call(redisContext *c, const cd_config *cfg, const char *script, int nkeys, const char *const *keys,
                    int nargs, const char *const *args)
{
    refused = "";
    redisReply *r = cd_admin__fcall(c, cfg, script, nkeys, keys, nargs, args);
    if (!r)
        return NULL;
    const redisReply *s = r->type == REDIS_REPLY_ARRAY && r->elements > 0 ? r->element[0] : r;
    json_t *j = s->type == REDIS_REPLY_STRING ? json_loadb(s->str, s->len, 0, NULL) : NULL;
    freeReplyObject(r);
    if (j && json_object_get(j, "err")) {
        const char *code = json_string_value(json_object_get(j, "err"));
        refused = code && strcmp(code, "not_found") == 0 ? "not_found" : "other";
        fprintf(stderr, "mail-in: %s: %s\n", json_string_value(json_object_get(j, "err")),
                json_string_value(json_object_get(j, "message")) ? json_string_value(json_object_get(j, "message"))
                                                                 : "");
        json_decref(j);
        return NULL;
    }
    return j;
}

/* A client_msg_id of the mail (every delivery of it the same): "mail:" + 20 hex of the
 * Message-ID (or of the whole mail when it has none). */
static void mail_cmid(const cd_mail_in *m, const char *raw, size_t len, char *out, size_t outsz)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a, 64 bits, twice with different seeds */
    uint64_t g = 1099511628211ULL;
    const char *s = m->message_id[0] ? m->message_id : raw;
    size_t n = m->message_id[0] ? strlen(m->message_id) : len;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
        g = (g ^ (unsigned char)s[i]) * 1469598103934665603ULL;
    }
    snprintf(out, outsz, "mail:%016llx%04llx", (unsigned long long)h, (unsigned long long)(g & 0xffff));
}

/* "zh-CN" when the text has Chinese characters (CJK Unified Ideographs), else "en": the
 * language of the ticket's acknowledgement and of our mail. */
static const char *guess_locale(const char *a, const char *b)
{
    for (const char *s = a; s; s = s == a ? b : NULL)
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
            if (p[0] >= 0xe4 && p[0] <= 0xe9 && (p[1] & 0xc0) == 0x80)
                return "zh-CN";
    return "en";
}

static int store(redisContext *c, const cd_config *cfg, const char *site, const cd_mail_in *m, const char *raw,
                 size_t raw_len)
{
    char now[24], retain[24];
    snprintf(now, sizeof now, "%llu", (unsigned long long)cd_now_ms());
    snprintf(retain, sizeof retain, "%lld", (long long)cfg->history_retain);
    cd_key ks;
    const char *skeys[] = {cd_key_site(&ks, cfg->prefix, site, "")};
    const char *fargs[] = {now, "find", m->from, m->message_id, m->refs, m->token, m->automatic ? "1" : "0"};
    json_t *f = call(c, cfg, "mail_in", 1, skeys, 7, fargs);
    if (!f) /* no such site: the address is unknown (the MTA bounces); else try again later */
        return strcmp(refused, "not_found") == 0 ? EX_NOUSER : EX_TEMPFAIL;
    int rc = 0;
    json_t *out = NULL;
    const char *cid = json_string_value(json_object_get(f, "thread"));
    const char *vid = json_string_value(json_object_get(f, "visitor"));
    char cmid[48], msg_id[64], newcid[128];
    mail_cmid(m, raw, raw_len, cmid, sizeof cmid);
    cd_id_new("m", msg_id, sizeof msg_id);
    const char *text = m->text && m->text[0] ? m->text : (m->subject[0] ? m->subject : "(no text)");
    if (cid && vid) {
        cd_key kc;
        const char *ckeys[] = {cd_key_conv(&kc, cfg->prefix, site, cid)};
        const char *a[] = {cid, "visitor", vid, m->from_name, cmid, text, "0", msg_id, now, retain, "", "*", ""};
        json_t *r = call(c, cfg, "msg_send", 1, ckeys, 13, a);
        if (!r)
            rc = EX_TEMPFAIL;
        else
            out = json_pack("{s:s,s:s,s:O}", "stored", "thread", "conversation", cid, "reply", r);
        json_decref(r);
    } else if (json_is_true(json_object_get(f, "new")) && vid) {
        char rnd[40], epoch[24], ack[64], tid[64];
        cd_id_new("c", rnd, sizeof rnd);
        snprintf(newcid, sizeof newcid, "%s.%s", rnd, site);
        cd_random_hex(epoch, 8);
        cd_id_new("m", ack, sizeof ack);
        cd_id_new("m", tid, sizeof tid);
        cd_key kc;
        const char *keys2[] = {skeys[0], cd_key_conv(&kc, cfg->prefix, site, newcid)};
        const char *a[] = {
            site, vid,        newcid, epoch,  now,     m->from_name, m->from, "",
            "",   m->subject, text,   msg_id, cmid,    retain,       ack,     guess_locale(m->subject, text),
            "*",  tid,        "",     "",     "email", m->message_id};
        json_t *r = call(c, cfg, "conv_start", 2, keys2, 22, a);
        const char *got = json_string_value(json_object_get(json_object_get(r, "conversation"), "id"));
        if (!got)
            rc = EX_TEMPFAIL;
        else
            out = json_pack("{s:s,s:s,s:O?}", "stored", "new", "conversation", got, "ticket",
                            json_object_get(json_object_get(r, "conversation"), "ticket"));
        cid = got ? json_string_value(json_object_get(out, "conversation")) : NULL;
        json_decref(r);
    } else {
        out = json_incref(f); /* duplicate or ignored */
    }
    if (rc == 0 && cid && m->message_id[0] && !json_is_true(json_object_get(f, "new"))) {
        const char *ma[] = {now, "mark", m->message_id, cid};
        json_t *r = call(c, cfg, "mail_in", 1, skeys, 4, ma);
        rc = r ? 0 : EX_TEMPFAIL;
        json_decref(r);
    }
    if (rc == 0 && out) {
        char *s = json_dumps(out, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
    }
    json_decref(out);
    json_decref(f);
    return rc;
}

int cd_admin_mail_in(const cd_config *cfg, int argc, char **argv)
{
    const char *site = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--site") == 0 && i + 1 < argc)
            site = argv[++i];
        else {
            fprintf(stderr, "usage: chatdeskd [config flags] mail-in --site KEY < message.eml\n");
            return EX_USAGE;
        }
    }
    if (!site || !site[0] || strlen(site) > 64 ||
        strspn(site, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != strlen(site)) {
        fprintf(stderr, "usage: chatdeskd [config flags] mail-in --site KEY < message.eml\n");
        return EX_USAGE;
    }
    size_t len;
    char *raw = read_all((size_t)cfg->mail_max_bytes, &len);
    cd_mail_in m;
    char err[160] = "";
    bool too_large = len > (size_t)cfg->mail_max_bytes;
    if (too_large)
        snprintf(err, sizeof err, "larger than mail_max_bytes (%lld)", (long long)cfg->mail_max_bytes);
    bool ok = !too_large && cd_mail_parse(raw, len, (size_t)cfg->max_body, &m, err, sizeof err) == 0;
    int rc;
    redisContext *c = cd_admin__redis_open(cfg, &rc);
    if (!c) {
        rc = EX_TEMPFAIL;
    } else if (!ok) {
        /* kept aside for the operator, the reason on stderr; the MTA bounces it */
        fprintf(stderr, "mail-in: site %s: mail not stored: %s\n", site, err);
        char now[24];
        snprintf(now, sizeof now, "%llu", (unsigned long long)cd_now_ms());
        cd_key ks;
        const char *keys[] = {cd_key_site(&ks, cfg->prefix, site, "")};
        raw[len < 65536 ? len : 65536] = '\0';
        const char *a[] = {now, "aside", err, raw};
        json_t *r = call(c, cfg, "mail_in", 1, keys, 4, a);
        json_decref(r);
        rc = EX_DATAERR;
    } else {
        rc = store(c, cfg, site, &m, raw, len);
    }
    if (ok)
        cd_mail_in_cleanup(&m);
    if (c)
        redisFree(c);
    cd_free(raw);
    return rc;
}
