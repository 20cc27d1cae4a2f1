/* chatdesk-load: epoll loop and a small WebSocket client (RFC 6455, client side).
 *
 * Why hand-written on epoll rather than the libwebsockets client on libuv:
 * - the generator shares 2 cores with the nodes and Redis, so every microsecond it
 *   spends per frame is taken from the system under test: here a frame costs one
 *   read() shared by all frames in the buffer, a bounded memchr-based field scan and
 *   no allocation; a send is one masked write();
 * - a held idle connection costs the generator a ~100-byte struct and a socket, no
 *   per-connection library state, so one process holds its full 20,000-fd budget;
 * - it binds each socket to a chosen 127.0.0.x source address
 *   (IP_BIND_ADDRESS_NO_PORT) to spread connections over addresses and ports, and can
 *   drop connections with an RST (SO_LINGER 0) for the storm scenario;
 * - the client side of the protocol we need is small: one upgrade request, masked
 *   text frames out, unmasked text/ping/close frames in (no extensions: the server
 *   keeps permessage-deflate off, so we never offer it).
 * It is a load tool, not a conforming client: it trusts the server's frames.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "load.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define SCRATCH (256 * 1024)
#define MAX_EVENTS 512

uint32_t ld_rand(ld_loop *l)
{
    /* xorshift32 */
    uint32_t x = l->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    l->rng = x;
    return x;
}

int ld_loop_init(ld_loop *l, const ld_target *t, int nt, const char *origin, const ld_callbacks *cb, void *ud)
{
    memset(l, 0, sizeof *l);
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (l->ep < 0 || l->tfd < 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, l->tfd, &ev) != 0)
        return -1;
    memcpy(l->targets, t, sizeof(ld_target) * (size_t)nt);
    l->ntargets = nt;
    snprintf(l->origin, sizeof l->origin, "%s", origin);
    l->cb = *cb;
    l->ud = ud;
    l->scratch_n = SCRATCH;
    l->scratch = malloc(SCRATCH);
    l->rng = (uint32_t)(ld_now_ns() ^ ((uint64_t)getpid() << 16)) | 1u;
    return l->scratch ? 0 : -1;
}

void ld_loop_free(ld_loop *l)
{
    if (l->ep >= 0)
        close(l->ep);
    if (l->tfd >= 0)
        close(l->tfd);
    free(l->scratch);
    l->scratch = NULL;
}

void ld_loop_wake_at(ld_loop *l, uint64_t t)
{
    if (!l->next_wake || t < l->next_wake)
        l->next_wake = t;
}

static void arm_out(ld_loop *l, ld_conn *c, bool on)
{
    if ((bool)c->want_out == on || c->fd < 0)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.ptr = c};
    epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

static void conn_reset(ld_conn *c)
{
    free(c->rbuf);
    free(c->wbuf);
    c->rbuf = c->wbuf = NULL;
    c->rlen = c->rcap = c->wlen = c->wcap = c->woff = 0;
    c->fd = -1;
    c->state = LD_C_IDLE;
    c->closing = 0;
    c->want_out = 0;
}

/* Closes the socket; tells the scenario once. */
static void conn_drop(ld_loop *l, ld_conn *c, int code, const char *why, bool rst)
{
    if (c->fd < 0)
        return;
    if (rst) {
        struct linger lg = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    epoll_ctl(l->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    int was_open = c->state == LD_C_OPEN;
    conn_reset(c);
    c->close_code = (uint16_t)code;
    (void)was_open;
    if (l->cb.on_close)
        l->cb.on_close(l, c, code, why);
}

int ld_conn_start(ld_loop *l, ld_conn *c, int node, uint32_t src, const char *path)
{
    conn_reset(c);
    c->node = node;
    c->src = src;
    c->close_code = 0;
    const ld_target *t = &l->targets[node];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        l->connect_errors++;
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (src) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in la;
        memset(&la, 0, sizeof la);
        la.sin_family = AF_INET;
        la.sin_addr.s_addr = htonl(0x7f000000u | (src & 0xffffffu));
        if (bind(fd, (struct sockaddr *)&la, sizeof la) != 0) {
            close(fd);
            l->connect_errors++;
            return -1;
        }
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)t->port);
    inet_pton(AF_INET, t->host, &sa.sin_addr);
    c->t_connect = ld_now_ns();
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        close(fd);
        l->connect_errors++;
        return -1;
    }
    c->fd = fd;
    c->state = LD_C_CONNECTING;
    /* the upgrade request is written once the connect completes */
    char req[768], own[300];
    /* agents come from the node's own origin (its default agent_origins), visitors from the site's */
    snprintf(own, sizeof own, "http://%s:%d", t->host, t->port);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: Y2hhdGRlc2stbG9hZC1rZXk=\r\nSec-WebSocket-Version: 13\r\n"
                     "Origin: %s\r\n\r\n",
                     path, t->host, t->port, strcmp(path, "/ws/agent") == 0 ? own : l->origin);
    c->wbuf = malloc((size_t)n);
    memcpy(c->wbuf, req, (size_t)n);
    c->wlen = c->wcap = (uint32_t)n;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->want_out = 1;
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        conn_reset(c);
        l->connect_errors++;
        return -1;
    }
    return 0;
}

static int flush_out(ld_loop *l, ld_conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
        if (n > 0) {
            c->woff += (uint32_t)n;
            l->bytes_out += (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            arm_out(l, c, true);
            return 0;
        }
        return -1;
    }
    c->woff = c->wlen = 0;
    if (c->wcap > 65536) {
        free(c->wbuf);
        c->wbuf = NULL;
        c->wcap = 0;
    }
    arm_out(l, c, false);
    return 0;
}

static int queue_out(ld_conn *c, const void *p, size_t n)
{
    if (c->woff && c->woff == c->wlen)
        c->woff = c->wlen = 0;
    if (c->wlen + n > c->wcap) {
        if (c->woff) {
            memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
            c->wlen -= c->woff;
            c->woff = 0;
        }
        if (c->wlen + n > c->wcap) {
            uint32_t cap = c->wcap ? c->wcap : 256;
            while (cap < c->wlen + n)
                cap *= 2;
            char *nb = realloc(c->wbuf, cap);
            if (!nb)
                return -1;
            c->wbuf = nb;
            c->wcap = cap;
        }
    }
    memcpy(c->wbuf + c->wlen, p, n);
    c->wlen += (uint32_t)n;
    return 0;
}

static int send_frame(ld_loop *l, ld_conn *c, int opcode, const char *p, size_t n)
{
    unsigned char stackbuf[4096];
    size_t hl = n < 126 ? 2 : (n < 65536 ? 4 : 10);
    size_t total = hl + 4 + n;
    unsigned char *f = total <= sizeof stackbuf ? stackbuf : malloc(total);
    if (!f)
        return -1;
    f[0] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        f[1] = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        f[1] = 0x80 | 126;
        f[2] = (unsigned char)(n >> 8);
        f[3] = (unsigned char)n;
    } else {
        f[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            f[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    }
    uint32_t mask = ld_rand(l);
    unsigned char mk[4];
    memcpy(mk, &mask, 4);
    memcpy(f + hl, mk, 4);
    unsigned char *d = f + hl + 4;
    for (size_t i = 0; i < n; i++)
        d[i] = (unsigned char)p[i] ^ mk[i & 3];
    int rc = 0;
    if (c->wlen > c->woff) {
        rc = queue_out(c, f, total); /* keep order behind what is pending */
    } else {
        ssize_t w = write(c->fd, f, total);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            rc = -1;
        } else {
            size_t done = w > 0 ? (size_t)w : 0;
            l->bytes_out += done;
            if (done < total) {
                rc = queue_out(c, f + done, total - done);
                if (rc == 0)
                    arm_out(l, c, true);
            }
        }
    }
    if (f != stackbuf)
        free(f);
    l->frames_out++;
    return rc;
}

int ld_send_text(ld_loop *l, ld_conn *c, const char *p, size_t n)
{
    if (c->fd < 0 || c->state != LD_C_OPEN || c->closing)
        return -1;
    if (send_frame(l, c, 1, p, n) != 0) {
        l->io_errors++;
        conn_drop(l, c, 1006, "write failed", false);
        return -1;
    }
    return 0;
}

void ld_conn_close(ld_loop *l, ld_conn *c, int code, bool abort_rst)
{
    if (c->fd < 0)
        return;
    if (abort_rst || c->state != LD_C_OPEN) {
        conn_drop(l, c, code, "closed by us", abort_rst);
        return;
    }
    if (!c->closing) {
        unsigned char b[2] = {(unsigned char)(code >> 8), (unsigned char)code};
        send_frame(l, c, 8, (const char *)b, 2);
        c->closing = 1;
    }
}

/* Parses the HTTP answer to the upgrade; returns bytes consumed, 0 if incomplete, -1 if refused. */
static int parse_upgrade(ld_loop *l, ld_conn *c, const char *p, size_t n)
{
    const char *end = ld_memmem(p, n, "\r\n\r\n", 4);
    if (!end)
        return n > 8192 ? -1 : 0;
    if (n < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0) {
        int st = n >= 12 ? atoi(p + 9) : 0;
        if (st >= 400 && st < 600)
            l->status_seen[st / 100]++;
        c->close_code = (uint16_t)st;
        return -1;
    }
    return (int)(end + 4 - p);
}

/* Handles complete frames in p[0..n); returns bytes consumed or -1 to drop. */
static long parse_frames(ld_loop *l, ld_conn *c, char *p, size_t n, uint64_t now)
{
    size_t off = 0;
    while (n - off >= 2) {
        unsigned char b0 = (unsigned char)p[off], b1 = (unsigned char)p[off + 1];
        size_t hl = 2;
        uint64_t len = b1 & 0x7f;
        if (len == 126) {
            if (n - off < 4)
                break;
            len = ((uint64_t)(unsigned char)p[off + 2] << 8) | (unsigned char)p[off + 3];
            hl = 4;
        } else if (len == 127) {
            if (n - off < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | (unsigned char)p[off + 2 + (size_t)i];
            hl = 10;
        }
        if (b1 & 0x80)
            hl += 4; /* a server must not mask; tolerate it */
        if (len > 64u * 1024 * 1024)
            return -1;
        if (n - off < hl + len)
            break;
        char *payload = p + off + hl;
        if (b1 & 0x80) {
            unsigned char *mk = (unsigned char *)p + off + hl - 4;
            for (uint64_t i = 0; i < len; i++)
                payload[i] = (char)((unsigned char)payload[i] ^ mk[i & 3]);
        }
        int op = b0 & 0x0f;
        off += hl + (size_t)len;
        l->frames_in++;
        switch (op) {
        case 1:
        case 0: /* the server sends whole messages; a continuation is treated as its own text */
        case 2:
            if (l->cb.on_frame && c->state == LD_C_OPEN) {
                char save = payload[len]; /* NUL-terminate in place for the scanners */
                if (off < n)
                    payload[len] = '\0';
                l->cb.on_frame(l, c, payload, (size_t)len, now);
                if (off < n)
                    payload[len] = save;
                if (c->fd < 0)
                    return -2; /* the scenario dropped the connection */
            }
            break;
        case 8: {
            int code = len >= 2 ? (((unsigned char)payload[0] << 8) | (unsigned char)payload[1]) : 1005;
            if (!c->closing) {
                unsigned char b[2] = {(unsigned char)(code >> 8), (unsigned char)code};
                send_frame(l, c, 8, (const char *)b, 2);
            }
            char why[128];
            size_t wl = len > 2 ? (size_t)len - 2 : 0;
            if (wl >= sizeof why)
                wl = sizeof why - 1;
            memcpy(why, payload + 2, wl);
            why[wl] = '\0';
            conn_drop(l, c, code, why, false);
            return -2;
        }
        case 9:
            l->pings_in++;
            send_frame(l, c, 10, payload, (size_t)len);
            break;
        default:
            break;
        }
    }
    return (long)off;
}

static void on_readable(ld_loop *l, ld_conn *c)
{
    for (int rounds = 0; rounds < 4; rounds++) {
        char *buf;
        size_t have = 0;
        /* append to what is pending, in the scratch buffer */
        buf = l->scratch;
        if (c->rlen) {
            if (c->rlen > l->scratch_n / 2) {
                /* a large frame: grow the connection's own buffer */
                if (c->rcap < c->rlen + 65536) {
                    char *nb = realloc(c->rbuf, c->rlen + 65536);
                    if (!nb) {
                        conn_drop(l, c, 1006, "oom", false);
                        return;
                    }
                    c->rbuf = nb;
                    c->rcap = c->rlen + 65536;
                }
                buf = c->rbuf;
                have = c->rlen;
            } else {
                memcpy(buf, c->rbuf, c->rlen);
                have = c->rlen;
            }
        }
        size_t cap = buf == l->scratch ? l->scratch_n - 1 : c->rcap - 1;
        ssize_t n = read(c->fd, buf + have, cap - have);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            l->io_errors++;
            conn_drop(l, c, 1006, "read error", false);
            return;
        }
        if (n == 0) {
            conn_drop(l, c, 1006, "eof", false);
            return;
        }
        l->bytes_in += (uint64_t)n;
        size_t total = have + (size_t)n;
        buf[total] = '\0';
        uint64_t now = ld_now_ns();
        size_t off = 0;
        if (c->state == LD_C_UPGRADING) {
            int u = parse_upgrade(l, c, buf, total);
            if (u < 0) {
                l->upgrade_errors++;
                conn_drop(l, c, c->close_code ? c->close_code : 1002, "upgrade refused", false);
                return;
            }
            if (u == 0) {
                goto keep;
            }
            off = (size_t)u;
            c->state = LD_C_OPEN;
            if (l->cb.on_open)
                l->cb.on_open(l, c);
            if (c->fd < 0)
                return;
        }
        {
            long used = parse_frames(l, c, buf + off, total - off, now);
            if (used == -2)
                return;
            if (used < 0) {
                l->io_errors++;
                conn_drop(l, c, 1002, "bad frame", false);
                return;
            }
            off += (size_t)used;
        }
    keep:
        /* keep the unparsed tail */
        {
            size_t rest = total - off;
            if (rest == 0) {
                if (c->rbuf && c->rcap > 4096) {
                    free(c->rbuf);
                    c->rbuf = NULL;
                    c->rcap = 0;
                }
                c->rlen = 0;
            } else {
                if (buf == c->rbuf) {
                    memmove(c->rbuf, c->rbuf + off, rest);
                } else {
                    if (c->rcap < rest) {
                        char *nb = realloc(c->rbuf, rest + 1024);
                        if (!nb) {
                            conn_drop(l, c, 1006, "oom", false);
                            return;
                        }
                        c->rbuf = nb;
                        c->rcap = (uint32_t)rest + 1024;
                    }
                    memcpy(c->rbuf, buf + off, rest);
                }
                c->rlen = (uint32_t)rest;
            }
        }
        if ((size_t)n < cap - have)
            return; /* drained the socket */
    }
}

int ld_loop_run_once(ld_loop *l, uint64_t max_wait_ns)
{
    uint64_t now = ld_now_ns();
    uint64_t until = now + max_wait_ns;
    if (l->next_wake && l->next_wake < until)
        until = l->next_wake;
    l->next_wake = 0;
    int timeout_ms = 0;
    if (until > now) {
        uint64_t d = until - now;
        if (d >= 2000000ull) {
            timeout_ms = (int)(d / 1000000ull);
        } else {
            /* sub-2 ms waits go through the timerfd (ns precision) */
            struct itimerspec its;
            memset(&its, 0, sizeof its);
            its.it_value.tv_sec = (time_t)(until / 1000000000ull);
            its.it_value.tv_nsec = (long)(until % 1000000000ull);
            timerfd_settime(l->tfd, TFD_TIMER_ABSTIME, &its, NULL);
            timeout_ms = 3;
        }
    }
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(l->ep, evs, MAX_EVENTS, timeout_ms);
    for (int i = 0; i < n; i++) {
        ld_conn *c = evs[i].data.ptr;
        if (!c) {
            uint64_t exp;
            if (read(l->tfd, &exp, sizeof exp) < 0) {
                /* nothing to read: fine */
            }
            continue;
        }
        if (c->fd < 0)
            continue;
        uint32_t e = evs[i].events;
        if (c->state == LD_C_CONNECTING) {
            if (e & (EPOLLERR | EPOLLHUP)) {
                l->connect_errors++;
                conn_drop(l, c, 1006, "connect failed", false);
                continue;
            }
            if (e & EPOLLOUT) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    l->connect_errors++;
                    conn_drop(l, c, 1006, "connect failed", false);
                    continue;
                }
                c->state = LD_C_UPGRADING;
            }
        }
        if (e & EPOLLOUT) {
            if (flush_out(l, c) != 0) {
                l->io_errors++;
                conn_drop(l, c, 1006, "write failed", false);
                continue;
            }
        }
        if (e & (EPOLLIN | EPOLLERR | EPOLLHUP))
            on_readable(l, c);
    }
    if (l->cb.on_tick)
        l->cb.on_tick(l, ld_now_ns());
    return n;
}
