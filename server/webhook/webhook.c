/* webhook.c: the delivery worker. libcurl's multi interface on the node's libuv loop
 * (curl_multi_socket_action with one uv_poll per socket and one uv_timer, the pattern of
 * curl's docs/examples/multi-uv.c): DNS runs in curl's resolver thread, so the loop never
 * blocks; HTTPS uses OpenSSL. Why libcurl: a maintained HTTP/1.1 client with TLS,
 * async DNS, timeouts and an open-socket hook (SSRF check on the resolved address).
 *
 * The multi runs on cd_curluv (the loop glue the S3 attachment store shares).
 *
 * Flow: every event_poll_ms, while fewer than webhook_concurrency requests are in
 * flight, webhooks_claim.lua leases due deliveries, site after site of the node's site
 * cache (a site's deliveries are in its slot), but only the sites with a delivery that
 * may be due: each claim answers when the site's next one is, a delivery queued or
 * rescheduled anywhere is announced ("W <site> <due>", cd_webhook_notice), and every
 * site is claimed once per site_cache_refresh_s as a safety net; so idle sites cost
 * nothing per poll. Each delivery is POSTed once; its outcome goes to
 * webhooks_result.lua (delivered / retry at a time computed here / failed). */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "chatdesk/auth.h"
#include "chatdesk/clock.h"
#include "chatdesk/curluv.h"
#include "chatdesk/log.h"
#include "chatdesk/webhook.h"

#define RESPONSE_KEEP 200

typedef struct xfer xfer;

struct cd_webhook {
    uv_loop_t *loop;
    const cd_config *cfg;
    cd_store *st;
    cd_curluv *curl;       /* libcurl multi on the loop */
    CURLM *multi;          /* its CURLM */
    uv_timer_t poll_timer; /* claim due deliveries */
    int handles;           /* open uv handles; freed when 0 after destroy */
    bool claiming, draining, stopping;
    cd_webhook_site_at site_at;
    void *sites_ctx;
    size_t next_site;     /* the sweep's next site */
    char claim_site[128]; /* the site of the claim in flight */
    int64_t claim_max;    /* what that claim could lease at most */
    /* site -> int64_t *: when a delivery of the site may be due next (ms; INT64_MAX: none).
     * A site not in it is claimed at the next sweep. Emptied every site_cache_refresh_s
     * (every site is claimed once then: the safety net for a notice lost while the bus
     * was down, and for the lease of a node that died). */
    cd_map due;
    uint64_t due_reset_at;
    int inflight;
    xfer *xfers; /* transfers in flight (for destroy) */
};

struct xfer {
    cd_webhook *w;
    xfer *prev, *next;
    CURL *easy;
    struct curl_slist *hdrs;
    char *id, *body, *url, *site;
    int attempt;
    bool allowed;      /* the URL's host is in webhook_allow_hosts */
    char blocked[160]; /* why the open-socket hook refused an address */
    char response[RESPONSE_KEEP + 1];
    size_t response_len;
    uint64_t started;
    char errbuf[CURL_ERROR_SIZE];
};

static void handle_closed(uv_handle_t *h);

static void due_clear(cd_webhook *w)
{
    size_t it;
    for (cd_map_entry *e = cd_map_first(&w->due, &it); e; e = cd_map_next(&w->due, e, &it))
        cd_free(e->value);
    cd_map_cleanup(&w->due);
    cd_map_init(&w->due);
}

/* at becomes the site's next due time; lower_only: only if earlier (a notice), and not
 * for a site not known yet (it is claimed at the next sweep anyway). */
static void due_set(cd_webhook *w, const char *site, size_t len, int64_t at, bool lower_only)
{
    int64_t *v = cd_map_get(&w->due, site, len);
    if (!v) {
        if (lower_only)
            return;
        v = cd_malloc(sizeof *v);
        *v = at;
        cd_map_put(&w->due, site, len, v);
    } else if (!lower_only || at < *v) {
        *v = at;
    }
}

static void maybe_free(cd_webhook *w)
{
    if (w->stopping && w->handles == 0 && w->inflight == 0) {
        due_clear(w);
        cd_map_cleanup(&w->due);
        cd_free(w);
        curl_global_cleanup();
    }
}

static void handle_closed(uv_handle_t *h)
{
    cd_webhook *w = h->data;
    w->handles--;
    maybe_free(w);
}

/* ---------- recording the outcome ---------- */

typedef struct result_op {
    cd_webhook *w;
} result_op;

static void on_result(void *ud, cd_err err, const char *json, size_t len)
{
    result_op *r = ud;
    cd_webhook *w = r->w;
    (void)len;
    if (err != CD_ERR_OK && err != CD_ERR_UNAVAILABLE)
        cd_log_warn("webhook result: %s %s", cd_err_name(err), json ? json : "");
    w->inflight--;
    cd_free(r);
    maybe_free(w);
}

static void xfer_free(xfer *x)
{
    cd_webhook *w = x->w;
    if (x->prev)
        x->prev->next = x->next;
    else
        w->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    if (x->easy) {
        curl_multi_remove_handle(w->multi, x->easy);
        curl_easy_cleanup(x->easy);
    }
    curl_slist_free_all(x->hdrs);
    cd_free(x->id);
    cd_free(x->body);
    cd_free(x->url);
    cd_free(x->site);
    cd_free(x);
}

static void record(xfer *x, bool ok, long status, const char *error)
{
    cd_webhook *w = x->w;
    char now[24], attempt[16], code[16], dur[24], retry_at[24], max[16];
    uint64_t t = cd_now_ms();
    snprintf(now, sizeof now, "%llu", (unsigned long long)t);
    snprintf(attempt, sizeof attempt, "%d", x->attempt);
    snprintf(code, sizeof code, "%ld", status);
    snprintf(dur, sizeof dur, "%llu", (unsigned long long)(cd_mono_ms() - x->started));
    uint32_t rnd;
    cd_random_bytes(&rnd, sizeof rnd);
    uint64_t delay = cd_webhook_backoff_ms((uint64_t)w->cfg->webhook_retry_base_ms, x->attempt, rnd / 4294967296.0);
    snprintf(retry_at, sizeof retry_at, "%llu", (unsigned long long)(t + delay));
    snprintf(max, sizeof max, "%lld", (long long)w->cfg->webhook_max_attempts);
    x->response[x->response_len] = '\0';
    const char *args[] = {now, x->id,    attempt, ok ? "1" : "0", code, error ? error : "",
                          dur, retry_at, max,     x->response};
    cd_log_debug("webhook delivery %s attempt %d: %s %ld %s", x->id, x->attempt, ok ? "ok" : "failed", status,
                 error ? error : "");
    result_op *r = cd_calloc(1, sizeof *r);
    r->w = w;
    cd_key k;
    char suffix[300];
    snprintf(suffix, sizeof suffix, "whd:%s", x->id);
    const char *keys[] = {cd_key_tagged(&k, cd_store_prefix(w->st), x->site, suffix)};
    if (w->stopping || cd_store_fcall(w->st, "webhooks_result", 1, keys, 10, args, NULL, on_result, r) != 0) {
        /* not recorded: the lease runs out and the delivery is tried again (at-least-once) */
        cd_free(r);
        w->inflight--;
    }
}

/* A delivery's transfer ended (cd_curluv): its outcome is recorded. */
static void on_done(void *ud, void *easy, int result)
{
    (void)ud;
    char *pv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &pv);
    xfer *x = (xfer *)(void *)pv;
    CURLcode rc = (CURLcode)result;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    char err[300];
    bool ok = false;
    if (rc == CURLE_OK) {
        ok = status >= 200 && status < 300;
        snprintf(err, sizeof err, "%s", ok ? "" : "HTTP status not 2xx");
    } else if (x->blocked[0]) {
        snprintf(err, sizeof err, "%s", x->blocked);
    } else {
        snprintf(err, sizeof err, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
    }
    record(x, ok, rc == CURLE_OK ? status : 0, err);
    xfer_free(x);
}

/* SSRF check when curl opens a connection: on the address it is about to connect to,
 * after DNS (so a name that re-resolves to an internal address is caught too). */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    xfer *x = clientp;
    (void)purpose;
    const char *why = cd_webhook_addr_blocked(&a->addr);
    if (why && !x->allowed) {
        char ip[64] = "?";
        if (a->family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)&a->addr)->sin_addr, ip, sizeof ip);
        else if (a->family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)&a->addr)->sin6_addr, ip, sizeof ip);
        snprintf(x->blocked, sizeof x->blocked,
                 "refused: %s is a %s address (allow the host in webhook_allow_hosts to reach it)", ip, why);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t n = size * nmemb;
    size_t room = RESPONSE_KEEP - x->response_len;
    size_t k = n < room ? n : room;
    memcpy(x->response + x->response_len, data, k);
    x->response_len += k;
    return n; /* the rest is read and dropped (the total timeout bounds it) */
}

int cd_webhook_url_target(const char *url, char *host, size_t hsz, long *port)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *h = NULL, *pt = NULL;
    int rc = -1;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) &&
        curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &pt, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        size_t n = strlen(h);
        const char *s = h;
        if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
            s = h + 1;
            n -= 2;
        }
        if (n < hsz) {
            for (size_t i = 0; i < n; i++)
                host[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
            host[n] = '\0';
            *port = strtol(pt, NULL, 10);
            rc = 0;
        }
    }
    curl_free(scheme);
    curl_free(h);
    curl_free(pt);
    curl_url_cleanup(u);
    return rc;
}

static void start(cd_webhook *w, const char *site, json_t *d)
{
    const char *id = json_string_value(json_object_get(d, "id"));
    const char *url = json_string_value(json_object_get(d, "url"));
    const char *secret = json_string_value(json_object_get(d, "secret"));
    const char *event = json_string_value(json_object_get(d, "event"));
    const char *body = json_string_value(json_object_get(d, "body"));
    int attempt = (int)json_integer_value(json_object_get(d, "attempt"));
    if (!id || !url || !secret || !event || !body)
        return;
    xfer *x = cd_calloc(1, sizeof *x);
    x->w = w;
    x->id = cd_strdup(id);
    x->body = cd_strdup(body);
    x->url = cd_strdup(url);
    x->site = cd_strdup(site);
    x->attempt = attempt;
    x->started = cd_mono_ms();
    x->next = w->xfers;
    if (w->xfers)
        w->xfers->prev = x;
    w->xfers = x;
    w->inflight++;
    char host[256];
    long port = 0;
    if (cd_webhook_url_target(url, host, sizeof host, &port) != 0) {
        record(x, false, 0, "refused: not an http(s) URL");
        xfer_free(x);
        return;
    }
    x->allowed = cd_webhook_host_allowed(w->cfg->webhook_allow_hosts, host, port);

    /* x-chatdesk-signature: t=<unix>,v1=hex(HMAC-SHA256(secret, t + "." + body)) */
    char ts[24], hex[65];
    snprintf(ts, sizeof ts, "%llu", (unsigned long long)(cd_now_ms() / 1000));
    size_t blen = strlen(body), tl = strlen(ts);
    char *msg = cd_malloc(tl + 1 + blen + 1);
    memcpy(msg, ts, tl);
    msg[tl] = '.';
    memcpy(msg + tl + 1, body, blen + 1);
    cd_auth_hmac_hex(secret, strlen(secret), msg, tl + 1 + blen, hex);
    cd_free(msg);
    char line[512];
    x->hdrs = curl_slist_append(x->hdrs, "content-type: application/json");
    x->hdrs = curl_slist_append(x->hdrs, "user-agent: chatdesk-webhook/1");
    x->hdrs = curl_slist_append(x->hdrs, "expect:");
    snprintf(line, sizeof line, "x-chatdesk-event: %s", event);
    x->hdrs = curl_slist_append(x->hdrs, line);
    snprintf(line, sizeof line, "x-chatdesk-delivery: %s", id);
    x->hdrs = curl_slist_append(x->hdrs, line);
    snprintf(line, sizeof line, "x-chatdesk-attempt: %d", attempt);
    x->hdrs = curl_slist_append(x->hdrs, line);
    snprintf(line, sizeof line, "x-chatdesk-signature: t=%s,v1=%s", ts, hex);
    x->hdrs = curl_slist_append(x->hdrs, line);

    CURL *e = curl_easy_init();
    x->easy = e;
    long total = (long)w->cfg->webhook_timeout_ms;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* no proxy from the environment */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, total < 5000 ? total : 5000L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, total);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)1 << 20);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    if (curl_multi_add_handle(w->multi, e) != CURLM_OK) {
        record(x, false, 0, "cannot start the request");
        xfer_free(x);
    }
}

/* ---------- claiming ---------- */

static void claim_next(cd_webhook *w);

static void on_claim(void *ud, cd_err err, const char *json, size_t len)
{
    cd_webhook *w = ud;
    w->claiming = false;
    if (w->stopping) {
        w->inflight--;
        maybe_free(w);
        return;
    }
    if (err != CD_ERR_OK) {
        if (err != CD_ERR_UNAVAILABLE)
            cd_log_warn("webhooks_claim: %s %s", cd_err_name(err), json ? json : "");
        return;
    }
    json_t *r = json_loadb(json, len, 0, NULL);
    json_t *list = json_object_get(r, "deliveries"), *next = json_object_get(r, "next");
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d) start(w, w->claim_site, d);
    /* a full batch: more may be due now; else the site sleeps until its next due time
     * or a notice */
    if ((int64_t)json_array_size(list) < w->claim_max)
        due_set(w, w->claim_site, strlen(w->claim_site), json_is_integer(next) ? json_integer_value(next) : INT64_MAX,
                false);
    json_decref(r);
    claim_next(w);
}

/* The sweep's next site with room left: lease its due deliveries (one call, its slot). */
static void claim_next(cd_webhook *w)
{
    int64_t room = w->cfg->webhook_concurrency - w->inflight;
    if (w->draining || w->stopping || room <= 0 || !cd_store_up(w->st) || !w->site_at)
        return;
    int64_t now_ms = (int64_t)cd_now_ms();
    const char *site;
    for (;;) { /* the next site with a delivery that may be due */
        site = w->site_at(w->sites_ctx, w->next_site);
        if (!site)
            return;
        w->next_site++;
        const int64_t *at = cd_map_get(&w->due, site, strlen(site));
        if (!at || *at <= now_ms)
            break;
    }
    char now[24], lease[24], max[16];
    snprintf(now, sizeof now, "%llu", (unsigned long long)cd_now_ms());
    /* the request ends within the timeout; the lease leaves time to record its result */
    snprintf(lease, sizeof lease, "%lld", (long long)w->cfg->webhook_timeout_ms * 2 + 5000);
    w->claim_max = room < 50 ? room : 50;
    snprintf(max, sizeof max, "%lld", (long long)w->claim_max);
    const char *args[] = {now, lease, max};
    cd_key k;
    cd_strlcpy(w->claim_site, site, sizeof w->claim_site);
    const char *keys[] = {cd_key_tagged(&k, cd_store_prefix(w->st), w->claim_site, "webhooks:due")};
    if (cd_store_fcall(w->st, "webhooks_claim", 1, keys, 3, args, NULL, on_claim, w) == 0)
        w->claiming = true;
}

/* A sweep over the sites, unless the last one is still going. */
static void on_poll_timer(uv_timer_t *t)
{
    cd_webhook *w = t->data;
    if (w->claiming)
        return;
    w->next_site = 0;
    uint64_t now = cd_now_ms();
    if (now >= w->due_reset_at) {
        due_clear(w);
        w->due_reset_at = now + (uint64_t)w->cfg->site_cache_refresh_s * 1000;
    }
    claim_next(w);
}

cd_webhook *cd_webhook_create(uv_loop_t *loop, const cd_config *cfg, cd_store *st, cd_webhook_site_at sites,
                              void *sites_ctx)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cd_log_error("webhooks: libcurl initialisation failed");
        return NULL;
    }
    const curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
    if (!(vi->features & CURL_VERSION_ASYNCHDNS))
        cd_log_warn("webhooks: this libcurl resolves names synchronously (no AsynchDNS): DNS lookups block the loop");
    cd_webhook *w = cd_calloc(1, sizeof *w);
    w->loop = loop;
    w->cfg = cfg;
    w->st = st;
    w->site_at = sites;
    w->sites_ctx = sites_ctx;
    cd_map_init(&w->due);
    w->curl = cd_curluv_create(loop, on_done, w);
    if (!w->curl) {
        cd_map_cleanup(&w->due);
        cd_free(w);
        return NULL;
    }
    w->multi = cd_curluv_multi(w->curl);
    uv_timer_init(loop, &w->poll_timer);
    w->poll_timer.data = w;
    w->handles = 1;
    uint64_t every = (uint64_t)cfg->event_poll_ms;
    uv_timer_start(&w->poll_timer, on_poll_timer, every, every);
    return w;
}

void cd_webhook_notice(void *ctx, const char *p, size_t len)
{
    cd_webhook *w = ctx;
    const char *end = p + len;
    if (!w || len < 4 || p[0] != 'W' || p[1] != ' ')
        return;
    const char *site = p + 2, *sp = memchr(site, ' ', (size_t)(end - site));
    if (sp)
        due_set(w, site, (size_t)(sp - site), strtoll(sp + 1, NULL, 10), true);
}

void cd_webhook_set_draining(cd_webhook *w)
{
    if (w)
        w->draining = true;
}

void cd_webhook_destroy(cd_webhook *w)
{
    if (!w)
        return;
    w->stopping = true;
    /* aborted transfers are not recorded: their lease runs out, another node (or this
     * one after a restart) sends them again with the same delivery id */
    while (w->xfers) {
        w->inflight--;
        xfer_free(w->xfers);
    }
    cd_curluv_destroy(w->curl);
    w->curl = NULL;
    w->multi = NULL;
    uv_timer_stop(&w->poll_timer);
    uv_close((uv_handle_t *)&w->poll_timer, handle_closed);
    if (w->claiming)
        w->inflight++; /* on_claim still comes (the store answers pending calls when it stops) */
}
