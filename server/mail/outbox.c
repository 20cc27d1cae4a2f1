/* outbox.c: the node's side of the outbox (include/chatdesk/mail.h). The timer "mail|<id>"
 * of a site fires here (claimed with the timer lease, once across nodes); mail_take.lua
 * answers the mail and stretches the lease over the SMTP transaction (smtp_timeout_ms
 * plus 10 s), the message is built with GMime (mime.c) and sent with libcurl's SMTP on
 * the loop (cd_curluv: curl's threaded resolver, a uv_poll per socket), and
 * mail_result.lua records the outcome: sent, due again after a backoff, or failed (a 5xx
 * answer is permanent; so is a mail whose addresses do not pass cd_mail_addr_ok).
 *
 * What it does not do: decide what is mailed (the events pass and the API queue it) or
 * know presence (a reply the customer read in the widget is dropped by mail_take.lua).
 * Nothing blocks: the only waits are curl's and Redis's, both on the loop. */
#include "chatdesk/mail.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "chatdesk/base.h"
#include "chatdesk/clock.h"
#include "chatdesk/curluv.h"
#include "chatdesk/log.h"

typedef struct job job;

struct cd_mail {
    const cd_config *cfg;
    cd_store *st;
    cd_curluv *curl;
    CURLM *multi;
    bool stopping;
    int pending; /* Redis calls in flight (their callbacks still come after destroy) */
    job *jobs;   /* SMTP transactions in flight */
};

struct job {
    cd_mail *m;
    job *prev, *next;
    char site[128], id[64];
    int attempt;
    CURL *easy;
    struct curl_slist *rcpt;
    char *data; /* the message */
    size_t len, off;
    char errbuf[CURL_ERROR_SIZE];
};

static void maybe_free(cd_mail *m)
{
    if (m->stopping && m->pending == 0 && !m->jobs) {
        cd_free(m);
        curl_global_cleanup();
    }
}

static void job_free(job *j)
{
    cd_mail *m = j->m;
    if (j->easy) {
        if (j->prev)
            j->prev->next = j->next;
        else
            m->jobs = j->next;
        if (j->next)
            j->next->prev = j->prev;
        curl_multi_remove_handle(m->multi, j->easy);
        curl_easy_cleanup(j->easy);
    }
    curl_slist_free_all(j->rcpt);
    cd_free(j->data);
    cd_free(j);
}

static int mail_call(cd_mail *m, const char *script, const char *site, const char *id, int nargs,
                     const char *const *args, cd_store_reply_cb cb, void *ud)
{
    cd_key k;
    char suffix[96];
    snprintf(suffix, sizeof suffix, "mail:%s", id);
    const char *keys[] = {cd_key_tagged(&k, cd_store_prefix(m->st), site, suffix)};
    if (m->stopping || cd_store_fcall(m->st, script, 1, keys, nargs, args, NULL, cb, ud) != 0)
        return -1;
    m->pending++;
    return 0;
}

/* ---------- the outcome ---------- */

static void on_result(void *ud, cd_err err, const char *json, size_t len)
{
    cd_mail *m = ud;
    (void)len;
    m->pending--;
    if (err != CD_ERR_OK && err != CD_ERR_UNAVAILABLE)
        cd_log_warn("mail_result: %s %s", cd_err_name(err), json ? json : "");
    maybe_free(m);
}

/* Records attempt j->attempt of the mail. Not recorded (Redis down, stopping): the lease
 * runs out and the mail goes again, the same message. */
static void record(job *j, bool ok, bool permanent, const char *error)
{
    cd_mail *m = j->m;
    char now[24], attempt[16], retry_at[24], max[16];
    uint64_t t = cd_now_ms();
    uint32_t rnd;
    cd_random_bytes(&rnd, sizeof rnd);
    snprintf(now, sizeof now, "%llu", (unsigned long long)t);
    snprintf(attempt, sizeof attempt, "%d", j->attempt);
    snprintf(retry_at, sizeof retry_at, "%llu",
             (unsigned long long)(t + cd_mail_backoff_ms((uint64_t)m->cfg->mail_retry_base_ms, j->attempt,
                                                         rnd / 4294967296.0)));
    snprintf(max, sizeof max, "%lld", (long long)m->cfg->mail_max_attempts);
    const char *args[] = {now,      j->id, attempt, ok ? "1" : "0", permanent ? "1" : "0", error ? error : "",
                          retry_at, max};
    if (ok)
        cd_log_info("mail %s of site %s sent (attempt %d)", j->id, j->site, j->attempt);
    else
        cd_log_warn("mail %s of site %s, attempt %d: %s%s", j->id, j->site, j->attempt, error ? error : "",
                    permanent ? " (permanent)" : "");
    mail_call(m, "mail_result", j->site, j->id, 8, args, on_result, m);
}

/* A transaction ended (cd_curluv). The SMTP reply code tells a refusal that will not change
 * (5xx) from one worth a retry (4xx, a dropped connection, a timeout). */
static void on_done(void *ud, void *easy, int result)
{
    cd_mail *m = ud;
    char *pv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &pv);
    job *j = (job *)(void *)pv;
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    CURLcode rc = (CURLcode)result;
    char err[CURL_ERROR_SIZE + 32];
    if (rc != CURLE_OK)
        snprintf(err, sizeof err, "%s (SMTP %ld)", j->errbuf[0] ? j->errbuf : curl_easy_strerror(rc), code);
    record(j, rc == CURLE_OK, rc != CURLE_OK && code >= 500 && code < 600, rc == CURLE_OK ? NULL : err);
    job_free(j);
    maybe_free(m);
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
    job *j = ud;
    size_t room = size * nitems, left = j->len - j->off;
    size_t n = left < room ? left : room;
    memcpy(buf, j->data + j->off, n);
    j->off += n;
    return n;
}

/* ---------- sending ---------- */

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* The message of a taken mail: From is the site's address (mail_from) else the node's;
 * Reply-To plus-addresses the site's reply address (else the node's mail_reply_to, else
 * the From address) with the conversation's token. */
static char *build(cd_mail *m, json_t *r, size_t *len, char *from, size_t fromsz, char *err, size_t errsz)
{
    const char *site_from = str(r, "from"), *base = site_from[0] ? site_from : m->cfg->mail_from;
    char reply[300] = "";
    const char *lt = strrchr(base, '<');
    size_t n = lt ? strcspn(lt + 1, ">") : strlen(base);
    if (n >= fromsz) {
        snprintf(err, errsz, "from address too long");
        return NULL;
    }
    memcpy(from, lt ? lt + 1 : base, n);
    from[n] = '\0';
    /* the display name: the site's, else the name in the node's "Name <addr>", else the site's name */
    char fname[200] = "";
    const char *site_fname = str(r, "from_name");
    if (site_fname[0])
        cd_strlcpy(fname, site_fname, sizeof fname);
    else if (lt && lt > base)
        snprintf(fname, sizeof fname, "%.*s", (int)(lt - base), base);
    else
        cd_strlcpy(fname, str(r, "site_name"), sizeof fname);
    for (size_t i = strlen(fname); i > 0 && (fname[i - 1] == ' ' || fname[i - 1] == '"'); i--)
        fname[i - 1] = '\0';
    const char *token = str(r, "token");
    if (token[0]) {
        const char *rb = str(r, "reply");
        if (!rb[0])
            rb = m->cfg->mail_reply_to[0] ? m->cfg->mail_reply_to : base;
        if (!cd_mail_plus_address(rb, token, reply, sizeof reply))
            reply[0] = '\0';
    }
    cd_mail_msg msg = {
        .from_name = fname[0] == '"' ? fname + 1 : fname,
        .from = from,
        .to_name = str(r, "to_name"),
        .to = str(r, "to"),
        .reply_to = reply,
        .subject = str(r, "subject"),
        .text = str(r, "text"),
        .message_id = str(r, "message_id"),
        .in_reply_to = str(r, "in_reply_to"),
        .references = str(r, "references"),
        .auto_generated = json_is_true(json_object_get(r, "auto")),
        .date_ms = (int64_t)json_integer_value(json_object_get(r, "created_at")),
    };
    return cd_mail_build(&msg, len, err, errsz);
}

static void start(cd_mail *m, job *j, json_t *r)
{
    char from[256], err[300], line[300];
    j->data = build(m, r, &j->len, from, sizeof from, err, sizeof err);
    if (!j->data) {
        record(j, false, true, err);
        job_free(j);
        return;
    }
    CURL *e = curl_easy_init();
    snprintf(line, sizeof line, "<%s>", str(r, "to"));
    j->rcpt = curl_slist_append(NULL, line);
    snprintf(line, sizeof line, "<%s>", from);
    long total = (long)m->cfg->smtp_timeout_ms;
    curl_easy_setopt(e, CURLOPT_URL, m->cfg->smtp_url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USE_SSL, m->cfg->smtp_require_tls ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_TRY);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, total < 10000 ? total : 10000L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, total);
    if (m->cfg->smtp_user[0]) {
        curl_easy_setopt(e, CURLOPT_USERNAME, m->cfg->smtp_user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, m->cfg->smtp_password);
    }
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, line);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, j->rcpt);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)j->len);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(e, CURLOPT_READDATA, j);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    j->easy = e;
    j->next = m->jobs;
    if (m->jobs)
        m->jobs->prev = j;
    m->jobs = j;
    if (curl_multi_add_handle(m->multi, e) != CURLM_OK) {
        record(j, false, false, "cannot start the SMTP transaction");
        job_free(j);
    }
}

static void on_taken(void *ud, cd_err err, const char *json, size_t len)
{
    job *j = ud;
    cd_mail *m = j->m;
    m->pending--;
    json_t *r = err == CD_ERR_OK ? json_loadb(json, len, 0, NULL) : NULL;
    if (err != CD_ERR_OK && err != CD_ERR_UNAVAILABLE)
        cd_log_warn("mail_take %s: %s %s", j->id, cd_err_name(err), json ? json : "");
    if (!m->stopping && json_is_true(json_object_get(r, "send"))) {
        j->attempt = (int)json_integer_value(json_object_get(r, "attempt"));
        start(m, j, r);
    } else {
        job_free(j);
    }
    json_decref(r);
    maybe_free(m);
}

/* The timer "mail|<id>" of site is due (cd_timers). */
static void on_mail_timer(void *ud, const char *site, const char *arg)
{
    cd_mail *m = ud;
    if (m->stopping)
        return;
    if (!m->cfg->smtp_url[0]) {
        cd_log_warn("mail %s of site %s is due but this node has no smtp_url: left to another node", arg, site);
        return;
    }
    job *j = cd_calloc(1, sizeof *j);
    j->m = m;
    cd_strlcpy(j->site, site, sizeof j->site);
    cd_strlcpy(j->id, arg, sizeof j->id);
    char now[24], lease[24];
    snprintf(now, sizeof now, "%llu", (unsigned long long)cd_now_ms());
    snprintf(lease, sizeof lease, "%lld", (long long)m->cfg->smtp_timeout_ms + 10000);
    const char *args[] = {now, j->id, lease};
    if (mail_call(m, "mail_take", j->site, j->id, 3, args, on_taken, j) != 0)
        cd_free(j);
}

cd_mail *cd_mail_create(uv_loop_t *loop, const cd_config *cfg, cd_store *st)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cd_log_error("mail: libcurl initialisation failed");
        return NULL;
    }
    cd_mail *m = cd_calloc(1, sizeof *m);
    m->cfg = cfg;
    m->st = st;
    m->curl = cd_curluv_create(loop, on_done, m);
    if (!m->curl) {
        cd_free(m);
        curl_global_cleanup();
        return NULL;
    }
    m->multi = cd_curluv_multi(m->curl);
    return m;
}

void cd_mail_timers_register(cd_mail *m, cd_timers *t)
{
    cd_timers_register(t, "mail", on_mail_timer, m);
}

void cd_mail_destroy(cd_mail *m)
{
    if (!m)
        return;
    m->stopping = true;
    /* aborted transactions are not recorded: their lease runs out and the mail goes again */
    while (m->jobs)
        job_free(m->jobs);
    cd_curluv_destroy(m->curl);
    m->curl = NULL;
    m->multi = NULL;
    maybe_free(m);
}
