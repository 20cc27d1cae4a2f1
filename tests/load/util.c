/* chatdesk-load helpers: clock, histogram, JSON scanning, /proc, blocking setup I/O. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "load.h"

extern char **environ;

uint64_t ld_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t ld_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

uint64_t ld_self_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000ull;
}

/* ---------- histogram ---------- */

static unsigned hist_index(uint64_t v)
{
    if (v < LD_HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v); /* >= 7 */
    unsigned shift = msb - 6u;                         /* keep 7 significant bits: 64..127 */
    unsigned pow = msb - 6u;                           /* 1.. */
    unsigned idx = pow * (LD_HIST_SUB / 2) + LD_HIST_SUB / 2 + (unsigned)((v >> shift) - (LD_HIST_SUB / 2));
    unsigned maxi = LD_HIST_POW * LD_HIST_SUB - 1;
    return idx > maxi ? maxi : idx;
}

static uint64_t hist_value(unsigned idx)
{
    if (idx < LD_HIST_SUB)
        return idx;
    unsigned pow = (idx - LD_HIST_SUB / 2) / (LD_HIST_SUB / 2);
    unsigned sub = (idx - LD_HIST_SUB / 2) % (LD_HIST_SUB / 2) + LD_HIST_SUB / 2;
    /* the middle of the bucket */
    return ((uint64_t)sub << pow) + (((uint64_t)1 << pow) >> 1);
}

void ld_hist_add(ld_hist *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

void ld_hist_merge(ld_hist *dst, const ld_hist *src)
{
    for (size_t i = 0; i < sizeof dst->b / sizeof dst->b[0]; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t ld_hist_pct(const ld_hist *h, double pct)
{
    if (!h->count)
        return 0;
    uint64_t want = (uint64_t)((double)h->count * pct / 100.0 + 0.5);
    if (want < 1)
        want = 1;
    if (want > h->count)
        want = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < sizeof h->b / sizeof h->b[0]; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t v = hist_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ---------- JSON scanning ---------- */

const char *ld_memmem(const char *h, size_t hl, const char *n, size_t nl)
{
    return memmem(h, hl, n, nl);
}

static const char *find_key(const char *p, size_t len, const char *key, size_t *rest)
{
    char pat[80];
    int k = snprintf(pat, sizeof pat, "\"%s\":", key);
    if (k <= 0 || (size_t)k >= sizeof pat)
        return NULL;
    const char *f = memmem(p, len, pat, (size_t)k);
    if (!f)
        return NULL;
    f += k;
    *rest = len - (size_t)(f - p);
    return f;
}

int ld_json_str(const char *p, size_t len, const char *key, char *out, size_t n)
{
    size_t rest;
    const char *f = find_key(p, len, key, &rest);
    if (!f || rest < 2 || *f != '"')
        return -1;
    f++;
    rest--;
    const char *e = memchr(f, '"', rest);
    if (!e)
        return -1;
    size_t l = (size_t)(e - f);
    if (n) {
        size_t c = l < n - 1 ? l : n - 1;
        memcpy(out, f, c);
        out[c] = '\0';
    }
    return (int)l;
}

int ld_json_int(const char *p, size_t len, const char *key, int64_t *out)
{
    size_t rest;
    const char *f = find_key(p, len, key, &rest);
    if (!f || !rest)
        return -1;
    int neg = 0;
    if (*f == '-') {
        neg = 1;
        f++;
        rest--;
    }
    if (!rest || *f < '0' || *f > '9')
        return -1;
    int64_t v = 0;
    while (rest && *f >= '0' && *f <= '9') {
        v = v * 10 + (*f - '0');
        f++;
        rest--;
    }
    *out = neg ? -v : v;
    return 0;
}

int ld_frame_type(const char *p, size_t len, char *out, size_t n)
{
    static const char pre[] = "{\"type\":\"";
    if (len > sizeof pre && memcmp(p, pre, sizeof pre - 1) == 0) {
        const char *f = p + sizeof pre - 1;
        const char *e = memchr(f, '"', len - (sizeof pre - 1));
        if (!e)
            return -1;
        size_t l = (size_t)(e - f);
        size_t c = l < n - 1 ? l : n - 1;
        memcpy(out, f, c);
        out[c] = '\0';
        return (int)l;
    }
    return ld_json_str(p, len, "type", out, n);
}

/* ---------- /proc ---------- */

long ld_proc_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

long ld_proc_cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* the command name may hold spaces: fields count from the last ')' */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p += 2; /* field 3 (state) */
    long utime = 0, stime = 0;
    for (int field = 3; field <= 15 && p; field++) {
        if (field == 14)
            utime = strtol(p, NULL, 10);
        if (field == 15)
            stime = strtol(p, NULL, 10);
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    return utime + stime;
}

int ld_machine_ticks(long long *busy, long long *total)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    long long v[10] = {0};
    int n = fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7], &v[8], &v[9]);
    fclose(f);
    if (n < 8)
        return -1;
    long long t = 0;
    for (int i = 0; i < 8; i++) /* guest time is already in user */
        t += v[i];
    *total = t;
    *busy = t - v[3] - v[4];
    return 0;
}

long ld_ticks_per_sec(void)
{
    long t = sysconf(_SC_CLK_TCK);
    return t > 0 ? t : 100;
}

/* ---------- setup helpers ---------- */

int ld_run(char *const argv[], char *out, size_t outn, int timeout_s)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        errno = rc;
        return -1;
    }
    size_t got = 0;
    uint64_t deadline = ld_now_ns() + (uint64_t)timeout_s * 1000000000ull;
    for (;;) {
        uint64_t now = ld_now_ns();
        if (now >= deadline) {
            kill(pid, SIGKILL);
            break;
        }
        struct pollfd p = {pfd[0], POLLIN, 0};
        int pr = poll(&p, 1, (int)((deadline - now) / 1000000ull) + 1);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        char tmp[4096];
        ssize_t n = read(pfd[0], tmp, sizeof tmp);
        if (n <= 0)
            break;
        size_t c = (size_t)n;
        if (outn && got + c > outn - 1)
            c = outn - 1 - got;
        if (outn && c) {
            memcpy(out + got, tmp, c);
            got += c;
        }
    }
    close(pfd[0]);
    if (outn)
        out[got] = '\0';
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return -1;
}

static int wait_fd(int fd, short ev, uint64_t deadline)
{
    for (;;) {
        uint64_t now = ld_now_ns();
        if (now >= deadline)
            return -1;
        struct pollfd p = {fd, ev, 0};
        int r = poll(&p, 1, (int)((deadline - now) / 1000000ull) + 1);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

int ld_http(const char *host, int port, const char *method, const char *path, const char *body, char *out, size_t outn,
            int timeout_ms)
{
    return ld_http_auth(host, port, method, path, NULL, body, out, outn, timeout_ms);
}

int ld_http_auth(const char *host, int port, const char *method, const char *path, const char *token, const char *body,
                 char *out, size_t outn, int timeout_ms)
{
    uint64_t deadline = ld_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        close(fd);
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    if (wait_fd(fd, POLLOUT, deadline) != 0) {
        close(fd);
        return -1;
    }
    char req[8192];
    size_t bl = body ? strlen(body) : 0;
    int rl = snprintf(req, sizeof req,
                      "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\nContent-Type: application/json\r\n"
                      "%s%s%sContent-Length: %zu\r\n\r\n%s",
                      method, path, host, port, token ? "Authorization: Bearer " : "", token ? token : "",
                      token ? "\r\n" : "", bl, body ? body : "");
    if (rl <= 0 || (size_t)rl >= sizeof req) {
        close(fd);
        return -1;
    }
    size_t off = 0;
    while (off < (size_t)rl) {
        ssize_t n = write(fd, req + off, (size_t)rl - off);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, deadline) != 0)
                break;
            continue;
        }
        break;
    }
    char *resp = malloc(65536);
    size_t got = 0;
    while (got < 65535) {
        ssize_t n = read(fd, resp + got, 65535 - got);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        if (errno == EAGAIN || errno == EINTR) {
            if (wait_fd(fd, POLLIN, deadline) != 0)
                break;
            continue;
        }
        break;
    }
    close(fd);
    resp[got] = '\0';
    int status = -1;
    if (got > 12 && strncmp(resp, "HTTP/1.", 7) == 0)
        status = atoi(resp + 9);
    char *b = strstr(resp, "\r\n\r\n");
    if (out && outn) {
        out[0] = '\0';
        if (b) {
            b += 4;
            /* chunked bodies: good enough for our small JSON answers (skip the size line) */
            if (strstr(resp, "ransfer-Encoding: chunked") || strstr(resp, "ransfer-encoding: chunked")) {
                char *nl = strstr(b, "\r\n");
                if (nl)
                    b = nl + 2;
            }
            snprintf(out, outn, "%s", b);
        }
    }
    free(resp);
    return status;
}

long long ld_metric(const char *host, const int *ports, int nports, const char *name)
{
    long long sum = -1;
    size_t nl = strlen(name);
    char *buf = malloc(65536);
    for (int i = 0; i < nports; i++) {
        if (ld_http(host, ports[i], "GET", "/metrics", NULL, buf, 65536, 2000) != 200)
            continue;
        for (char *line = buf; line && *line;) {
            char *next = strchr(line, '\n');
            if (strncmp(line, name, nl) == 0 && line[nl] == ' ') {
                if (sum < 0)
                    sum = 0;
                sum += strtoll(line + nl + 1, NULL, 10);
            }
            line = next ? next + 1 : NULL;
        }
    }
    free(buf);
    return sum;
}
