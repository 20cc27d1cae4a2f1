/* The front door: the node's own listening socket. lws 4.1 gives every accepted
 * connection a header slot from one shared pool and lets it hold the slot while it sends
 * its headers as slowly as it likes (10 s); about 256 half-open requests from one address
 * made /healthz and new upgrades wait for a slot (security finding 3). So the node reads
 * each new connection's request head itself, with
 *   - a deadline (header_timeout_s; then 408 and closed),
 *   - a size limit (max_header_bytes, and at most MAX_HEAD_LINES header lines and
 *     MAX_URI_ARGS query arguments, which lws could not store; then 431 with a JSON body),
 *   - a request target without NUL or control characters (lws drops those silently; 400),
 *   - a cap per client address of connections still sending their head
 *     (max_pending_per_ip; more are answered 429 at once; trusted_proxies are exempt: the
 *     proxy sends whole heads and has its own header timeouts),
 * and hands the socket to lws (lws_adopt_socket_vhost) only once the complete head waits in
 * it. The door never reads a byte of a request it hands over: it peeks (MSG_PEEK) and sets
 * SO_RCVLOWAT one byte above what it saw, so the socket turns readable again only when more
 * arrives; lws then reads the socket as one it accepted itself. (Handing lws 4.1 bytes
 * already read, lws_adopt_socket_vhost_readbuf, left a request with a body spinning in
 * HTTP_BODY_COMPLETION on the libuv loop.) A refused connection gets its answer, then our
 * side of the socket is shut and its input read and dropped for up to LINGER_MS, so that
 * the client reads the answer instead of a reset. A direct client's connection carries one
 * request (server/http/http.c answers `connection: close`), so each of its heads passes
 * here; only a trusted proxy's connections are kept alive, with lws reading their later heads.
 *
 * With native TLS (tls_cert) the head is encrypted: the door then waits, with the same
 * deadline and per-address cap, only for the client's first TLS record (its ClientHello)
 * and hands it over; lws does the handshake and reads the head (header_timeout_s as its
 * deadline, http_header_slots). Refusals get no plain-text answer there: the connection is
 * just shut. */
#include "server_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"

#define ACCEPTS_PER_TURN 256
#define SWEEP_MS 100
#define LINGER_MS 1000
#define MAX_HEAD_LINES 48 /* lws 4.1 keeps 95 header fragments per request */
#define MAX_URI_ARGS 32
#define TLS_HANDSHAKE 0x16                /* content type of a TLS handshake record */
#define TLS_RECORD_MAX (5 + 16384 + 2048) /* header + the largest record (with padding) */

typedef struct pending pending;

struct pending {
    uv_poll_t poll;
    pending *prev, *next;
    cd_door *door;
    int fd;
    bool head;    /* still reading the head (else lingering after an answer) */
    bool counted; /* holds one of its address's max_pending_per_ip */
    uint64_t deadline;
    char ip[64];
};

struct cd_door {
    uv_loop_t *loop;
    const cd_config *cfg;
    cd_net_ctx *cx;
    cd_door_adopt_fn adopt;
    void *ud;
    int lfd;
    int port;
    uv_poll_t lpoll;
    uv_timer_t sweep;
    bool paused; /* accept stopped for a moment (out of file descriptors) */
    bool closing;
    int handles; /* open uv handles (listener, sweep timer, connections) */
    pending *list;
    cd_map per_ip; /* client address -> connections still sending their head */
    char *peek;    /* peek_cap bytes, for the head being looked at */
    size_t peek_cap;
    bool tls; /* native TLS: wait for the first TLS record instead of the head */
};

static void door_unref(cd_door *d)
{
    if (--d->handles == 0 && d->closing) {
        cd_map_cleanup(&d->per_ip);
        cd_free(d->peek);
        cd_free(d);
    }
}

static void on_pending_closed(uv_handle_t *h)
{
    pending *p = h->data;
    cd_door *d = p->door;
    cd_free(p);
    door_unref(d);
}

static void uncount(pending *p)
{
    if (p->counted) {
        cd_map_count(&p->door->per_ip, p->ip, strlen(p->ip), -1);
        p->counted = false;
    }
}

/* Ends our part: the poll handle is closed first (libuv drops the descriptor from epoll
 * right then), so the descriptor can be given to lws or closed. */
static void finish(pending *p, bool adopt)
{
    cd_door *d = p->door;
    uncount(p);
    if (p->prev)
        p->prev->next = p->next;
    else
        d->list = p->next;
    if (p->next)
        p->next->prev = p->prev;
    uv_close((uv_handle_t *)&p->poll, on_pending_closed);
    if (adopt)
        d->adopt(d->ud, p->fd);
    else
        close(p->fd);
}

static void set_lowat(int fd, int n)
{
    if (setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &n, sizeof n) != 0)
        cd_log_debug("door: SO_RCVLOWAT: %s", strerror(errno));
}

/* A small complete answer, then linger: shut our side, drop what still arrives. */
static void answer(pending *p, int status, const char *reason, const char *code, const char *message)
{
    char resp[512];
    char body[256];
    int bl = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, message);
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                     "cache-control: no-store\r\nconnection: close\r\n\r\n%s",
                     status, reason, bl, body);
    /* a fresh socket's send buffer takes a few hundred bytes at once; a TLS client
     * could not read plain text */
    if (!p->door->tls && send(p->fd, resp, (size_t)n, MSG_NOSIGNAL) < 0)
        cd_log_debug("door: answer %d not sent: %s", status, strerror(errno));
    shutdown(p->fd, SHUT_WR);
    set_lowat(p->fd, 1);
    uncount(p);
    p->head = false;
    p->deadline = cd_mono_ms() + LINGER_MS;
}

static const char *find_end(const char *buf, size_t len, size_t from)
{
    for (size_t i = from; i + 3 < len; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n')
            return buf + i + 4;
    return NULL;
}

/* Counts that lws could not hold: header lines, and query arguments of the request line. */
static bool head_fits(const char *buf, const char *end)
{
    const char *eol = memchr(buf, '\n', (size_t)(end - buf));
    size_t lines = 0, args = 0;
    for (const char *c = buf; c < eol; c++)
        args += *c == '&' || *c == ';';
    for (const char *c = eol; c && c < end; c++)
        lines += *c == '\n';
    return lines <= MAX_HEAD_LINES + 1 && args < MAX_URI_ARGS;
}

/* The request target may not carry a NUL, raw or percent-encoded, or another control
 * character: lws drops such a request without an answer. */
static bool target_ok(const char *buf, const char *end)
{
    const char *eol = memchr(buf, '\n', (size_t)(end - buf));
    if (eol && eol > buf && eol[-1] == '\r')
        eol--;
    for (const char *c = buf; c < eol; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return false;
        if (*c == '%' && c + 2 < eol && c[1] == '0' && c[2] == '0')
            return false;
    }
    return true;
}

/* TLS: bytes the first record needs (header and body), 0 while its header is incomplete,
 * -1 when it is no TLS handshake (plain HTTP to the TLS port, say). */
static long tls_record_len(const unsigned char *b, size_t n)
{
    if (n >= 1 && b[0] != TLS_HANDSHAKE)
        return -1;
    return n < 5 ? 0 : 5 + ((long)b[3] << 8 | b[4]);
}

/* Looks at what has arrived; hands the connection over once the head is complete. */
static void read_head(pending *p)
{
    cd_door *d = p->door;
    size_t cap = d->peek_cap;
    ssize_t n;
    do
        n = recv(p->fd, d->peek, cap, MSG_PEEK);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        finish(p, false); /* the client went away */
        return;
    }
    if (d->tls) {
        long need = tls_record_len((const unsigned char *)d->peek, (size_t)n);
        if (need < 0 || need > (long)cap) {
            finish(p, false); /* no TLS, or a record no ClientHello needs */
        } else if (need > 0 && (size_t)n >= (size_t)need) {
            set_lowat(p->fd, 1);
            finish(p, true);
        } else {
            set_lowat(p->fd, (int)n + 1);
        }
        return;
    }
    const char *end = find_end(d->peek, (size_t)n, 0);
    if (end && !target_ok(d->peek, end)) {
        d->cx->door_malformed++;
        answer(p, 400, "Bad Request", "bad_request", "the request target has a NUL or control character");
        return;
    }
    if (end && head_fits(d->peek, end)) {
        set_lowat(p->fd, 1);
        finish(p, true);
        return;
    }
    if (end || (size_t)n == cap) {
        d->cx->door_too_large++;
        answer(p, 431, "Request Header Fields Too Large", "too_large", "request head too large");
        return;
    }
    set_lowat(p->fd, (int)n + 1); /* readable again when more has come */
}

/* After an answer: drop what still arrives until the client closes or the linger ends. */
static void drain(pending *p)
{
    char drop[4096];
    for (;;) {
        ssize_t n = recv(p->fd, drop, sizeof drop, 0);
        if (n > 0 || (n < 0 && errno == EINTR))
            continue;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            finish(p, false);
        return;
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    pending *p = h->data;
    if (status < 0 || (events & UV_READABLE)) {
        if (p->head)
            read_head(p);
        else
            drain(p);
    }
}

static void add_pending(cd_door *d, int fd, const char *ip, bool over_cap)
{
    pending *p = cd_calloc(1, sizeof *p);
    p->door = d;
    p->fd = fd;
    p->head = true;
    cd_strlcpy(p->ip, ip, sizeof p->ip);
    p->deadline = cd_mono_ms() + (uint64_t)d->cfg->header_timeout_s * 1000;
    if (uv_poll_init_socket(d->loop, &p->poll, fd) != 0) {
        cd_free(p);
        close(fd);
        return;
    }
    p->poll.data = p;
    d->handles++;
    p->next = d->list;
    if (d->list)
        d->list->prev = p;
    d->list = p;
    if (over_cap) {
        d->cx->door_refused++;
        answer(p, 429, "Too Many Requests", "rate_limited", "too many unfinished requests from this address");
    } else if (!cd_net_trusted_proxy(d->cfg, ip)) {
        p->counted = true;
        cd_map_count(&d->per_ip, ip, strlen(ip), 1);
    }
    uv_poll_start(&p->poll, UV_READABLE, on_poll);
}

static void peer_ip(const struct sockaddr_storage *sa, char *out, size_t n)
{
    out[0] = '\0';
    if (sa->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, (socklen_t)n);
    } else if (sa->ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out, (socklen_t)n);
        /* an IPv4 client of a dual-stack socket: the IPv4 form, as cd_net_client_ip gives */
        if (strncmp(out, "::ffff:", 7) == 0 && strchr(out + 7, '.'))
            memmove(out, out + 7, strlen(out + 7) + 1);
    }
}

static void on_accept(uv_poll_t *h, int status, int events)
{
    cd_door *d = h->data;
    if (status < 0 || !(events & UV_READABLE))
        return;
    for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        int fd = accept4(d->lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* the listener stays readable: pause until the next sweep */
                cd_log_warn("door: accept: %s (pausing)", strerror(errno));
                uv_poll_stop(&d->lpoll);
                d->paused = true;
            }
            return;
        }
        /* lws sets this on sockets it accepts, not on the ones it adopts: without it the
         * kernel holds a small frame while an earlier one is unacknowledged, and a client
         * that delays its ACKs (any that has just sent something, a pong for instance)
         * stalls the next frame for up to 40 ms */
        int one = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
            cd_log_debug("door: TCP_NODELAY: %s", strerror(errno));
        char ip[64];
        peer_ip(&sa, ip, sizeof ip);
        size_t n = (size_t)(uintptr_t)cd_map_get(&d->per_ip, ip, strlen(ip));
        add_pending(d, fd, ip, n >= (size_t)d->cfg->max_pending_per_ip);
    }
}

static void on_sweep(uv_timer_t *t)
{
    cd_door *d = t->data;
    uint64_t now = cd_mono_ms();
    for (pending *p = d->list, *next; p; p = next) {
        next = p->next;
        if (now < p->deadline)
            continue;
        if (p->head) {
            d->cx->door_timeouts++;
            answer(p, 408, "Request Timeout", "timeout", "request head not complete in time");
        } else {
            finish(p, false);
        }
    }
    if (d->paused) {
        d->paused = false;
        uv_poll_start(&d->lpoll, UV_READABLE, on_accept);
    }
}

static int listen_socket(const cd_config *cfg, int *port)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%lld", (long long)cfg->port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(cfg->bind, ps, &hints, &res); /* start-up only */
    if (rc != 0) {
        cd_log_error("bind %s: %s", cfg->bind, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (cfg->reuseport)
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (ai->ai_family == AF_INET6) /* "::" takes IPv4 clients too */
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
            cd_log_error("listen %s:%s: %s", cfg->bind, ps, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)(void *)&sa)->sin6_port
                                           : ((struct sockaddr_in *)(void *)&sa)->sin_port);
    return fd;
}

cd_door *cd_door__create(uv_loop_t *loop, const cd_config *cfg, cd_net_ctx *cx, cd_door_adopt_fn adopt, void *ud)
{
    int port = 0;
    int fd = listen_socket(cfg, &port);
    if (fd < 0)
        return NULL;
    cd_door *d = cd_calloc(1, sizeof *d);
    d->loop = loop;
    d->cfg = cfg;
    d->cx = cx;
    d->adopt = adopt;
    d->ud = ud;
    d->lfd = fd;
    d->port = port;
    cd_map_init(&d->per_ip);
    d->tls = cfg->tls_cert[0] != '\0';
    d->peek_cap = d->tls ? TLS_RECORD_MAX : (size_t)cfg->max_header_bytes;
    d->peek = cd_malloc(d->peek_cap);
    uv_poll_init_socket(loop, &d->lpoll, fd);
    d->lpoll.data = d;
    uv_poll_start(&d->lpoll, UV_READABLE, on_accept);
    uv_timer_init(loop, &d->sweep);
    d->sweep.data = d;
    uv_timer_start(&d->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    d->handles = 2;
    return d;
}

int cd_door__port(const cd_door *d)
{
    return d->port;
}

static void on_door_handle_closed(uv_handle_t *h)
{
    door_unref(h->data);
}

void cd_door__destroy(cd_door *d)
{
    if (!d)
        return;
    d->closing = true;
    while (d->list)
        finish(d->list, false);
    uv_close((uv_handle_t *)&d->lpoll, on_door_handle_closed);
    close(d->lfd);
    uv_timer_stop(&d->sweep);
    uv_close((uv_handle_t *)&d->sweep, on_door_handle_closed);
}
