/* cd_server_run: one libuv loop running lws (foreign loop), the store and bus
 * connections and every timer. Start-up and shutdown order live here. */
#include <errno.h>
#include <libwebsockets.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "server_int.h"

#include "chatdesk/auth.h"
#include "chatdesk/bus.h"
#include "chatdesk/conv.h"
#include "chatdesk/files.h"
#include "chatdesk/http.h"
#include "chatdesk/hub.h"
#include "chatdesk/log.h"
#include "chatdesk/mail.h"
#include "chatdesk/net.h"
#include "chatdesk/server.h"
#include "chatdesk/session.h"
#include "chatdesk/store.h"
#include "chatdesk/ticket.h"
#include "chatdesk/webhook.h"
#include "chatdesk/ws.h"

typedef struct server {
    uv_loop_t loop;
    cd_config *cfg;
    char node_id[128];
    char static_dir[1024];
    cd_store *st;
    cd_bus *bus;
    cd_hub *hub;
    cd_node *node;
    cd_webhook *webhook;
    cd_mail *mail;         /* outgoing mail (timer kind "mail") */
    cd_files_s3 *files_s3; /* files_store s3 */
    struct lws_context *lws;
    struct lws_vhost *vhost;
    cd_door *door;
    cd_net_ctx wsctx;
    uv_signal_t sigint, sigterm;
    uv_timer_t stop_timer;
    int stopping;
    bool closing_all;
    uint64_t stop_deadline;
} server;

static void on_store_state(void *ud, bool up)
{
    server *sv = ud;
    cd_node_on_store(sv->node, up);
}

static void on_bus_message(void *ud, const char *channel, size_t chlen, const char *payload, size_t len)
{
    server *sv = ud;
    cd_hub_dispatch(sv->hub, channel, chlen, payload, len);
}

static void on_bus_state(void *ud, bool up)
{
    server *sv = ud;
    if (sv->node)
        cd_node_on_bus(sv->node, up);
}

static void lws_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    cd_log(level == LLL_ERR ? CD_LOG_ERROR : CD_LOG_WARN, "lws: %.*s", (int)n, line);
}

static void on_stop_timer(uv_timer_t *t)
{
    server *sv = t->data;
    uint64_t now = uv_now(&sv->loop);
    /* Until the deadline connections keep working and /healthz answers "draining" (load
     * balancers take the node out; new upgrades get 503). Then every connection gets
     * 1001 once its in-flight acknowledgements are out, and the node waits up to 1 s more
     * for the closes to complete. */
    if (now < sv->stop_deadline)
        return;
    if (!sv->closing_all) {
        sv->closing_all = true;
        cd_node_close_all(sv->node);
    }
    if (cd_node_session_count(sv->node) > 0 && now < sv->stop_deadline + 1000)
        return;
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    uv_close((uv_handle_t *)&sv->sigint, NULL);
    uv_close((uv_handle_t *)&sv->sigterm, NULL);
    cd_door__destroy(sv->door);
    sv->door = NULL;
    lws_context_destroy(sv->lws);
    sv->lws = NULL;
    cd_node_destroy(sv->node); /* its timers first: they call the mail sender */
    cd_mail_destroy(sv->mail);
    cd_webhook_destroy(sv->webhook);
    cd_files_s3_destroy(sv->files_s3);
    cd_bus_destroy(sv->bus);
    cd_store_destroy(sv->st);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    server *sv = sig->data;
    if (sv->stopping++) {
        cd_log_warn("second signal: exiting now");
        _exit(1);
    }
    cd_log_info("signal %d: draining for %llds", signum, (long long)sv->cfg->drain_timeout_s);
    cd_node_set_draining(sv->node);
    cd_webhook_set_draining(sv->webhook);
    sv->stop_deadline = uv_now(&sv->loop) + (uint64_t)sv->cfg->drain_timeout_s * 1000;
    uv_timer_init(&sv->loop, &sv->stop_timer);
    sv->stop_timer.data = sv;
    uv_timer_start(&sv->stop_timer, on_stop_timer, 50, 50);
}

/* The front door hands over a connection whose request head is waiting in the socket. */
static void adopt(void *ud, int fd)
{
    server *sv = ud;
    /* NULL: lws could not take it and closed it */
    lws_adopt_socket_vhost(sv->vhost, fd);
}

/* static_dir, else <exe dir>/../web, else ./web (built by widget/). Start-up only. */
static const char *find_static_dir(const cd_config *cfg, char *buf, size_t n)
{
    if (cfg->static_dir[0])
        return cfg->static_dir;
    char exe[900];
    size_t len = sizeof exe;
    if (uv_exepath(exe, &len) == 0) {
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(buf, n, "%s/../web", exe);
            if (access(buf, R_OK) == 0)
                return buf;
        }
    }
    if (access("web", R_OK) == 0) {
        cd_strlcpy(buf, "web", n);
        return buf;
    }
    return NULL;
}

/* Native TLS (tls_cert, tls_key; RELIABILITY 4.1): TLS 1.2 and 1.3 only, forward-secret
 * suites only (ECDHE with AEAD for 1.2; every 1.3 suite is), no compression or
 * renegotiation, HSTS on every HTTP response lws composes (vhost headers). */
#define TLS12_CIPHERS                                                                          \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS13_CIPHERS "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_OPTIONS                                                                                           \
    ((long)(SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 | SSL_OP_NO_COMPRESSION | \
            SSL_OP_NO_RENEGOTIATION))

/* Both files readable, else a line saying which and why (lws only says it failed). */
static bool tls_files_ok(const cd_config *cfg)
{
    const char *what[2] = {"tls_cert", "tls_key"};
    const char *path[2] = {cfg->tls_cert, cfg->tls_key};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(path[i], "r");
        if (!f) {
            cd_log_error("%s: cannot read %s: %s", what[i], path[i], strerror(errno));
            return false;
        }
        fclose(f);
    }
    return true;
}

/* The protocol's callback: ws.c's, and with TLS one check at start-up. lws's own check
 * (SSL_CTX_check_private_key) passes an EC key given with an RSA certificate, as OpenSSL
 * keeps keys of each type apart, and every handshake would then fail: the key must be
 * the certificate's. */
static int on_lws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    if (reason == LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS) {
        X509 *cert = SSL_CTX_get0_certificate(user);
        EVP_PKEY *key = SSL_CTX_get0_privatekey(user);
        if (!cert || !key || X509_check_private_key(cert, key) != 1) {
            cd_log_error("tls_key is not the private key of tls_cert");
            return 1;
        }
        return 0;
    }
    return cd_net_callback(wsi, (int)reason, user, in, len);
}

static void tls_setup(const cd_config *cfg, struct lws_context_creation_info *info)
{
    static const struct lws_protocol_vhost_options hsts = {NULL, NULL,
                                                           "strict-transport-security:", "max-age=63072000"};
    info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info->ssl_cert_filepath = cfg->tls_cert;
    info->ssl_private_key_filepath = cfg->tls_key;
    info->ssl_cipher_list = TLS12_CIPHERS;
    info->tls1_3_plus_cipher_list = TLS13_CIPHERS;
    info->ssl_options_set = TLS_OPTIONS;
    info->headers = &hsts;
    /* HTTP/1.1 only: the request limits (door.c, header slots) and the upgrade to
     * WebSocket are HTTP/1.1's; lws would offer h2 as well */
    info->alpn = "http/1.1";
}

static const char *site_intervals(void *node, const char *site)
{
    return cd_node_intervals(node, site);
}

/* The lws context on the node's loop (no listener of its own: the door hands it
 * connections), with TLS when tls_cert is set. 0, or the exit code. */
static int start_lws(server *sv, bool *tls)
{
    *tls = sv->cfg->tls_cert[0] != '\0';
    static const struct lws_protocols protocols[] = {/* rx buffer 1 KiB: idle connections stay small; larger frames
                                                      * arrive in pieces and are reassembled by ws.c up to max_frame */
                                                     {"chatdesk", on_lws, sizeof(cd_net_pss), 512, 0, NULL, 0},
                                                     {NULL, NULL, 0, 0, 0, NULL, 0}};
    static lws_retry_bo_t retry;
    retry.secs_since_valid_ping = (uint16_t)sv->cfg->ping_interval_s;
    retry.secs_since_valid_hangup = (uint16_t)sv->cfg->idle_timeout_s;
    static void *foreign_loops[1]; /* lws may keep pointers into info's arrays */
    foreign_loops[0] = &sv->loop;

    sv->wsctx.ws_upgrade = cd_ws_confirm_upgrade;
    sv->wsctx.ws = cd_ws_callback;
    sv->wsctx.http = cd_http_callback;
    sv->wsctx.http_error = cd_http_respond_error;
    sv->wsctx.loop = &sv->loop;
    sv->wsctx.cfg = sv->cfg;
    sv->wsctx.st = sv->st;
    sv->wsctx.node = sv->node;
    sv->wsctx.node_id = sv->node_id;
    sv->wsctx.files_s3 = sv->files_s3;
    sv->wsctx.static_dir = find_static_dir(sv->cfg, sv->static_dir, sizeof sv->static_dir);
    cd_map_init(&sv->wsctx.ip_conns);

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    /* Security headers (CSP, nosniff, ...) are set per response by http/. */
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.foreign_loops = foreign_loops;
    /* the node listens itself (door.c) and gives lws connections with complete heads */
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.user = &sv->wsctx;
    info.retry_and_idle_policy = &retry;
    info.timeout_secs = 10;
    /* Later requests of a kept-alive connection are read by lws alone: the same deadline,
     * room for any head the door lets in (lws keeps less than the raw head, plus
     * terminators), and a slot for every request in progress (held until its response). */
    info.timeout_secs_ah_idle = (unsigned)sv->cfg->header_timeout_s;
    info.max_http_header_data = (unsigned short)(sv->cfg->max_header_bytes + 1024);
    info.max_http_header_pool = (unsigned short)sv->cfg->http_header_slots;
    info.server_string = "chatdesk";
    info.pt_serv_buf_size = 32768;
    if (*tls) {
        if (!tls_files_ok(sv->cfg))
            return 2;
        tls_setup(sv->cfg, &info);
    }
    sv->lws = lws_create_context(&info);
    sv->vhost = sv->lws ? lws_get_vhost_by_name(sv->lws, "default") : NULL;
    if (!sv->vhost) {
        cd_log_error(*tls ? "cannot create the lws context: tls_cert and tls_key must be a PEM certificate and its "
                            "private key (see the lws error above)"
                          : "cannot create the lws context");
        return *tls ? 2 : 1;
    }
    return 0;
}

int cd_server_run(cd_config *cfg)
{
    static server sv;
    memset(&sv, 0, sizeof sv);
    sv.cfg = cfg;
    int lvl = cd_log_level_parse(cfg->log_level);
    if (lvl < 0) {
        fprintf(stderr, "chatdeskd: log_level must be debug, info, warn or error\n");
        return 2;
    }
    cd_log_set_level((cd_log_level)lvl);
    if (cfg->node_id[0]) {
        cd_strlcpy(sv.node_id, cfg->node_id, sizeof sv.node_id);
    } else {
        char host[64] = "node";
        gethostname(host, sizeof host - 1);
        snprintf(sv.node_id, sizeof sv.node_id, "%s-%d", host, (int)getpid());
    }
    if (cfg->secrets_key_file[0]) { /* sealed secrets (auth/seal.c): the key is never in Redis */
        char err[256];
        if (cd_auth_seal_key_load(cfg->secrets_key_file, err, sizeof err) != 0) {
            cd_log_error("%s", err);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&sv.loop);

    sv.st = cd_store_create(&sv.loop, cfg);
    if (!sv.st)
        return 2;
    cd_store_on_state(sv.st, on_store_state, &sv);
    sv.bus = cd_bus_create(&sv.loop, cfg, sv.st, sv.node_id, on_bus_message, on_bus_state, &sv);
    sv.hub = cd_hub_create(sv.bus);
    sv.node = cd_node_create(&sv.loop, cfg, sv.node_id, sv.st, sv.hub, &cd_ws_io);
    sv.webhook = sv.node ? cd_webhook_create(&sv.loop, cfg, sv.st, cd_node_site_at, sv.node) : NULL;
    if (!sv.bus || !sv.node || !sv.webhook)
        return 2;
    cd_node_on_notice(sv.node, cd_webhook_notice, sv.webhook);
    /* each module's timer kinds (the rules consumer's is the node's own) */
    cd_conv_timers_register(cd_node_timers(sv.node), sv.st);
    if (strcmp(cfg->files_store, "s3") == 0 && !(sv.files_s3 = cd_files_s3_create(&sv.loop, cfg)))
        return 2;
    if (strcmp(cfg->files_store, "s3") != 0 && strcmp(cfg->files_store, "local") != 0) {
        cd_log_error("files_store must be local or s3");
        return 2;
    }
    cd_files_timers_register(cd_node_timers(sv.node), &sv.loop, sv.st, cfg, sv.files_s3);
    cd_ticket_timers_register(cd_node_timers(sv.node), sv.st, cfg, site_intervals, sv.node);
    if (!(sv.mail = cd_mail_create(&sv.loop, cfg, sv.st)))
        return 2;
    cd_mail_timers_register(sv.mail, cd_node_timers(sv.node));

    bool tls;
    int lrc = start_lws(&sv, &tls);
    if (lrc != 0)
        return lrc;
    sv.door = cd_door__create(&sv.loop, cfg, &sv.wsctx, adopt, &sv);
    if (!sv.door) {
        cd_log_error("cannot listen on %s:%lld", cfg->bind, (long long)cfg->port);
        return 1;
    }
    int port = cd_door__port(sv.door);

    uv_signal_init(&sv.loop, &sv.sigint);
    uv_signal_init(&sv.loop, &sv.sigterm);
    sv.sigint.data = sv.sigterm.data = &sv;
    uv_signal_start(&sv.sigint, on_signal, SIGINT);
    uv_signal_start(&sv.sigterm, on_signal, SIGTERM);

    cd_store_start(sv.st);
    cd_bus_start(sv.bus);
    char redis[512];
    cd_config_redact_url(cfg->redis, redis, sizeof redis); /* never print a password */
    printf("chatdeskd listening port=%d node=%s redis=%s tls=%s\n", port, sv.node_id, redis, tls ? "on" : "off");
    fflush(stdout);
    cd_log_info("listening port=%d bind=%s node=%s redis=%s tls=%s", port, cfg->bind, sv.node_id, redis,
                tls ? "on" : "off");

    uv_run(&sv.loop, UV_RUN_DEFAULT);
    cd_hub_destroy(sv.hub);
    cd_map_cleanup(&sv.wsctx.ip_conns);
    int rc = uv_loop_close(&sv.loop);
    if (rc != 0)
        cd_log_debug("loop closed with handles left: %s", uv_strerror(rc));
    cd_log_info("stopped");
    return 0;
}
