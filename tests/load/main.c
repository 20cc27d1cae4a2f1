/* chatdesk-load: a bounded load generator for chatdesk (protocol v1), loopback only.
 *
 *   chatdesk-load SCENARIO --node 127.0.0.1:PORT [--node ...] --redis URL --chatdeskd PATH
 *                 [--pid NODE_PID ...] [--redis-pid PID] [options]
 *
 * Scenarios: idle, chat, fanout, storm (see usage() and docs/performance.md).
 *
 * The parent sets up what the run needs through the admin CLI (sites, agents) and the
 * HTTP login, forks --procs worker processes (each an epoll loop with its share of the
 * connections, see net.c for why not libwebsockets), releases them together, samples
 * the nodes' and Redis's /proc counters over the measured window, and prints a table
 * and one JSON line. Every run is bounded: workers stop by themselves and the parent
 * kills what is left at --timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "load.h"

#define NS 1000000000ull
#define MS 1000000ull

static ld_opts O;
static ld_shared *SH;
static size_t SH_SIZE;
static pid_t workers[LD_MAX_PROCS];
static int nworkers;
static int metric_ports[LD_MAX_NODES];
static int n_metric_ports;
static char metric_host[64] = "127.0.0.1";

static void usage(FILE *f)
{
    fputs("usage: chatdesk-load idle|chat|fanout|storm --node HOST:PORT [--node ...] --redis URL\n"
          "                     --chatdeskd PATH [options]\n"
          "\n"
          "targets and measurement\n"
          "  --node HOST:PORT      a node (or the load balancer); repeat for several (127.0.0.1 only)\n"
          "  --pid PID             a node's PID, same order as --node: RSS and CPU from /proc\n"
          "  --redis-pid PID       Redis's PID: its CPU over the measured window\n"
          "  --metrics HOST:PORT   read /metrics here (default: every --node)\n"
          "  --redis URL           Redis URL for the admin CLI (sites, agents)\n"
          "  --chatdeskd PATH      the chatdeskd binary (for 'admin')\n"
          "  --origin URL          Origin of the load sites (default http://127.0.0.1:3000)\n"
          "shape\n"
          "  --procs N             worker processes (default: by scenario and size)\n"
          "  --src-ips N           spread connections over 127.0.0.2 .. 127.0.0.(N+1) (default by size)\n"
          "  --conns N             idle, storm: visitor connections (default 1000)\n"
          "  --visitors N          chat: visitors (one conversation each); fanout: senders (default 200 / 4)\n"
          "  --agents N            chat: agent accounts; fanout: agent accounts (default 4 / 10)\n"
          "  --agent-conns N       fanout: connections per agent account (default 10)\n"
          "  --rate R              chat: messages/s in total; fanout: conversation starts/s (default 1000 / 50)\n"
          "  --duration S          measured window (idle: hold; storm: limit to get back) (default 10)\n"
          "  --warmup S            chat, fanout: sending before the window (default 2)\n"
          "  --drain S             wait for what is still owed after sending stops (default 5)\n"
          "  --window N            handshakes in flight per process (default 256)\n"
          "  --jitter MS           storm: reconnect delay U(0, MS) (default 2000)\n"
          "  --no-storm-send       storm: do not send an unacked message right before the drop\n"
          "  --body N              chat: message body bytes (default 64)\n"
          "  --features            chat: every feature on: each site gets automation rules on\n"
          "                        conversation.created and message.created (reports always run)\n"
          "  --webhook URL         with --features: each site also posts message.created to URL\n"
          "  --timeout S           hard limit for the whole run (default: computed)\n"
          "  --tag TEXT            a label copied into the JSON line\n"
          "  --quiet               only the JSON line\n"
          "Exit status: 0 all good; 1 lost, duplicated, out-of-order or missing deliveries, errors,\n"
          "or a failed run; 2 usage.\n",
          f);
}

static int parse_target(const char *s, ld_target *t)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof t->host)
        return -1;
    memcpy(t->host, s, (size_t)(colon - s));
    t->host[colon - s] = '\0';
    t->port = atoi(colon + 1);
    struct in_addr a;
    if (t->port <= 0 || t->port > 65535 || inet_pton(AF_INET, t->host, &a) != 1)
        return -1;
    if ((ntohl(a.s_addr) >> 24) != 127)
        return -1; /* loopback only */
    return 0;
}

ld_fan_ev *ld_fan_table(ld_shared *sh, int receiver)
{
    char *base = (char *)(sh + 1);
    size_t per = (size_t)sh->nworkers * sh->fan_max_events;
    return (ld_fan_ev *)(void *)(base + (size_t)receiver * per * sizeof(ld_fan_ev));
}

/* ---------- setup ---------- */

static int admin(char *out, size_t outn, const char *a0, ...) __attribute__((sentinel));
static int admin(char *out, size_t outn, const char *a0, ...)
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)O.chatdeskd;
    argv[n++] = (char *)"--redis";
    argv[n++] = (char *)O.redis_url;
    argv[n++] = (char *)"admin";
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && n < 31; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    char tmp[4096];
    int rc = ld_run(argv, out ? out : tmp, out ? outn : sizeof tmp, 60);
    return rc;
}

static int add_site(const char *key, bool manual)
{
    char out[4096];
    int rc = admin(out, sizeof out, "site-add", "--key", key, "--name", key, "--origin", O.origin, (char *)NULL);
    if (rc != 0) {
        fprintf(stderr, "chatdesk-load: admin site-add %s failed (exit %d): %s\n", key, rc, out);
        return -1;
    }
    if (manual) {
        rc = admin(out, sizeof out, "site-set", "--key", key, "--auto-assign", "off", (char *)NULL);
        if (rc != 0) {
            fprintf(stderr, "chatdesk-load: admin site-set %s failed (exit %d): %s\n", key, rc, out);
            return -1;
        }
    }
    return 0;
}

static void agent_email(int j, char *buf, size_t n)
{
    snprintf(buf, n, "%s-%d@load.test", O.run_id, j);
}

static const char *PASSWORD = "load-test-password-1";

/* agent-add for agents [from, to) with their sites; runs in a helper process */
static int add_agents(const ld_account *acc, int first, int from, int to, int max_chats)
{
    char mc[16];
    snprintf(mc, sizeof mc, "%d", max_chats);
    for (int j = from; j < to; j++) {
        char email[128], name[64], out[4096];
        agent_email(j, email, sizeof email);
        snprintf(name, sizeof name, "Load agent %d", j);
        int rc = admin(out, sizeof out, "agent-add", "--email", email, "--password", PASSWORD, "--name", name, "--site",
                       acc[first + j].site, "--max-chats", mc, (char *)NULL);
        if (rc != 0) {
            fprintf(stderr, "chatdesk-load: admin agent-add %s failed (exit %d): %s\n", email, rc, out);
            return -1;
        }
    }
    return 0;
}

static int add_agents_parallel(const ld_account *acc, int first, int n, int max_chats)
{
    int jobs = O.setup_jobs < 1 ? 1 : O.setup_jobs;
    if (jobs > n)
        jobs = n;
    pid_t kids[16];
    int nk = 0;
    for (int k = 0; k < jobs && k < 16; k++) {
        int from = n * k / jobs, to = n * (k + 1) / jobs;
        pid_t p = fork();
        if (p == 0)
            _exit(add_agents(acc, first, from, to, max_chats) == 0 ? 0 : 1);
        if (p < 0)
            return -1;
        kids[nk++] = p;
    }
    int bad = 0;
    for (int k = 0; k < nk; k++) {
        int st;
        while (waitpid(kids[k], &st, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad = 1;
    }
    return bad ? -1 : 0;
}

static int login(int j, char *token, size_t n)
{
    char email[128], body[512], out[8192];
    agent_email(j, email, sizeof email);
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, PASSWORD);
    for (int attempt = 0; attempt < 5; attempt++) {
        const ld_target *t = &O.targets[(j + attempt) % O.ntargets];
        int st = ld_http(t->host, t->port, "POST", "/api/v1/login", body, out, sizeof out, 15000);
        if (st == 200 && ld_json_str(out, strlen(out), "token", token, n) > 0)
            return 0;
        usleep(200000);
    }
    fprintf(stderr, "chatdesk-load: login of %s failed: %s\n", email, out);
    return -1;
}

/* 101 on GET /ws/visitor?site=KEY from every target = each node knows the site. */
static int probe_site(const char *site)
{
    uint64_t deadline = ld_now_ns() + 15 * NS;
    for (int i = 0; i < O.ntargets; i++) {
        for (;;) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            struct sockaddr_in sa;
            memset(&sa, 0, sizeof sa);
            sa.sin_family = AF_INET;
            sa.sin_port = htons((uint16_t)O.targets[i].port);
            inet_pton(AF_INET, O.targets[i].host, &sa.sin_addr);
            struct timeval tv = {2, 0};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            int ok = 0;
            if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
                char req[1024], resp[512];
                int n = snprintf(req, sizeof req,
                                 "GET /ws/visitor?site=%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                                 "Connection: Upgrade\r\nSec-WebSocket-Key: Y2hhdGRlc2stbG9hZC1rZXk=\r\n"
                                 "Sec-WebSocket-Version: 13\r\nOrigin: %s\r\n\r\n",
                                 site, O.targets[i].host, O.targets[i].port, O.origin);
                if (write(fd, req, (size_t)n) == n) {
                    ssize_t r = read(fd, resp, sizeof resp - 1);
                    if (r >= 12 && memcmp(resp, "HTTP/1.1 101", 12) == 0)
                        ok = 1;
                }
            }
            close(fd);
            if (ok)
                break;
            if (ld_now_ns() > deadline) {
                fprintf(stderr, "chatdesk-load: %s:%d does not accept site %s\n", O.targets[i].host, O.targets[i].port,
                        site);
                return -1;
            }
            usleep(50000);
        }
    }
    return 0;
}

/* POST body to path as the run's admin; 0 when the answer is 201. */
static int admin_post(const char *token, const char *path, const char *body)
{
    char out[8192];
    const ld_target *t = &O.targets[0];
    int st = ld_http_auth(t->host, t->port, "POST", path, token, body, out, sizeof out, 15000);
    if (st == 201)
        return 0;
    fprintf(stderr, "chatdesk-load: POST %s answered %d: %s\n", path, st, out);
    return -1;
}

/* --features: an admin of every site adds two automation rules per site (a new chat gets a
 * tag; a message containing "refund" tags the chat: the rules consumer reads every message
 * event) and, with --webhook, a webhook for message.created, so the measured cost per message
 * includes the event consumers, reports, rules and webhooks. */
static int setup_features(const ld_account *acc, int nsites)
{
    char out[4096], email[128], body[1024], token[1024], path[256];
    snprintf(email, sizeof email, "%s-admin@load.test", O.run_id);
    char *argv[64];
    int n = 0;
    const char *head[] = {O.chatdeskd,  "--redis", O.redis_url, "admin",      "agent-add", "--email", email,
                          "--password", PASSWORD,  "--name",    "Load admin", "--role",    "admin"};
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        argv[n++] = (char *)head[i];
    for (int i = 0; i < nsites && n < 62; i++) {
        argv[n++] = (char *)"--site";
        argv[n++] = (char *)acc[i].site;
    }
    argv[n] = NULL;
    if (ld_run(argv, out, sizeof out, 60) != 0) {
        fprintf(stderr, "chatdesk-load: admin agent-add %s failed: %s\n", email, out);
        return -1;
    }
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, PASSWORD);
    const ld_target *t = &O.targets[0];
    if (ld_http(t->host, t->port, "POST", "/api/v1/login", body, out, sizeof out, 15000) != 200 ||
        ld_json_str(out, strlen(out), "token", token, sizeof token) <= 0) {
        fprintf(stderr, "chatdesk-load: login of %s failed: %s\n", email, out);
        return -1;
    }
    static const char *rules[] = {"{\"name\":\"New chat tagged\",\"trigger\":{\"event\":\"conversation.created\"},"
                                  "\"conditions\":[],\"actions\":[{\"type\":\"add_tags\",\"tags\":[\"load\"]}]}",
                                  "{\"name\":\"Refund requests\",\"trigger\":{\"event\":\"message.created\"},"
                                  "\"conditions\":[{\"field\":\"text\",\"op\":\"contains\",\"value\":\"refund\"}],"
                                  "\"actions\":[{\"type\":\"add_tags\",\"tags\":[\"refund\"]}]}"};
    for (int i = 0; i < nsites; i++) {
        snprintf(path, sizeof path, "/api/v1/admin/sites/%s/rules", acc[i].site);
        for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++)
            if (admin_post(token, path, rules[r]) != 0)
                return -1;
        if (O.webhook_url) {
            snprintf(path, sizeof path, "/api/v1/admin/sites/%s/webhooks", acc[i].site);
            snprintf(body, sizeof body, "{\"url\":\"%s\",\"events\":[\"message.created\"]}", O.webhook_url);
            if (admin_post(token, path, body) != 0)
                return -1;
        }
    }
    return 0;
}

static int share(int total, int P, int w)
{
    return total / P + (w < total % P ? 1 : 0);
}

/* Accounts: [0, P) one site per worker (chat, idle, storm) or [0] the site (fanout),
 * then the agents with their site and login token. */
static ld_account *setup(int *nacc)
{
    int P = O.procs;
    int nsites = O.sc == SC_FANOUT ? 1 : (O.sc == SC_IDLE ? 1 : P);
    int nagents = (O.sc == SC_CHAT || O.sc == SC_FANOUT) ? O.agents : 0;
    int first = O.sc == SC_FANOUT ? 1 : P;
    int n = first + nagents;
    ld_account *acc = calloc((size_t)n + 1, sizeof *acc);
    for (int i = 0; i < nsites; i++) {
        snprintf(acc[i].site, sizeof acc[i].site, "%s-%d", O.run_id, i);
        if (add_site(acc[i].site, O.sc == SC_FANOUT) != 0)
            return NULL;
    }
    for (int i = nsites; i < first; i++)
        memcpy(acc[i].site, acc[0].site, sizeof acc[i].site);
    int max_chats = 5;
    if (O.sc == SC_CHAT) {
        /* agent j belongs to the worker whose share of agents holds j */
        int j = 0;
        for (int w = 0; w < P; w++) {
            int na = share(O.agents, P, w), nv = share(O.visitors, P, w);
            int need = na ? (nv + na - 1) / na + 2 : 0;
            if (need > max_chats)
                max_chats = need;
            for (int k = 0; k < na; k++, j++)
                memcpy(acc[first + j].site, acc[w].site, sizeof acc[w].site);
        }
        if (max_chats > 100)
            max_chats = 100;
    } else {
        for (int j = 0; j < nagents; j++)
            memcpy(acc[first + j].site, acc[0].site, sizeof acc[0].site);
    }
    for (int i = 0; i < nsites; i++)
        if (probe_site(acc[i].site) != 0)
            return NULL;
    if (O.features && O.sc == SC_CHAT && setup_features(acc, nsites) != 0)
        return NULL;
    if (nagents) {
        uint64_t t0 = ld_now_ns();
        if (add_agents_parallel(acc, first, nagents, max_chats) != 0)
            return NULL;
        for (int j = 0; j < nagents; j++)
            if (login(j, acc[first + j].token, sizeof acc[first + j].token) != 0)
                return NULL;
        if (!O.quiet)
            fprintf(stderr, "chatdesk-load: %d agents added and logged in in %.1f s\n", nagents,
                    (double)(ld_now_ns() - t0) / 1e9);
    }
    *nacc = n;
    return acc;
}

/* ---------- measurement ---------- */

typedef struct sample {
    long rss[LD_MAX_PIDS];
    long cpu[LD_MAX_PIDS];
    long redis_cpu;
    long long m_busy, m_total; /* the whole machine */
    uint64_t t;
} sample;

static void take(sample *s)
{
    for (int i = 0; i < O.npids; i++) {
        s->rss[i] = ld_proc_rss_kb(O.pids[i]);
        s->cpu[i] = ld_proc_cpu_ticks(O.pids[i]);
    }
    s->redis_cpu = O.redis_pid ? ld_proc_cpu_ticks(O.redis_pid) : -1;
    if (ld_machine_ticks(&s->m_busy, &s->m_total) != 0)
        s->m_busy = s->m_total = 0;
    s->t = ld_now_ns();
}

static void sleep_until(uint64_t t)
{
    for (;;) {
        uint64_t now = ld_now_ns();
        if (now >= t)
            return;
        uint64_t d = t - now;
        struct timespec ts = {(time_t)(d / NS), (long)(d % NS)};
        nanosleep(&ts, NULL);
    }
}

static const char *METRICS[] = {
    "chatdesk_acks_total",          "chatdesk_dedupe_hits_total",
    "chatdesk_gap_backfills_total", "chatdesk_resume_recovered_total",
    "chatdesk_resume_reset_total",  "chatdesk_slow_consumer_closes_total",
    "chatdesk_rate_limited_total",  "chatdesk_errors_total",
    "chatdesk_frames_out_total",    "chatdesk_redis_commands_total",
    "chatdesk_redis_batches_total", "chatdesk_redis_batched_total",
};
#define NMETRICS (sizeof METRICS / sizeof METRICS[0])

static void read_metrics(long long *v)
{
    for (size_t i = 0; i < NMETRICS; i++)
        v[i] = ld_metric(metric_host, metric_ports, n_metric_ports, METRICS[i]);
}

/* ---------- machine ---------- */

static void machine(char *cpu, size_t n, long *nproc, double *mem_gb)
{
    snprintf(cpu, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    if (f) {
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10) == 0) {
                char *c = strchr(line, ':');
                if (c) {
                    c += 2;
                    c[strcspn(c, "\n")] = '\0';
                    snprintf(cpu, n, "%s", c);
                }
                break;
            }
        }
        fclose(f);
    }
    *nproc = sysconf(_SC_NPROCESSORS_ONLN);
    *mem_gb = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024 * 1024);
}

/* ---------- report ---------- */

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static void kill_workers(int sig)
{
    for (int i = 0; i < nworkers; i++)
        if (workers[i] > 0)
            kill(workers[i], sig);
}

static void on_alarm(int sig)
{
    (void)sig;
    /* the hard limit: the workers by PID, then ourselves */
    kill_workers(SIGKILL);
    static const char msg[] = "chatdesk-load: hard timeout, killed the workers\n";
    if (write(2, msg, sizeof msg - 1) < 0) {
        /* nothing to do */
    }
    _exit(1);
}

static int defaults_and_check(void)
{
    if (O.ntargets == 0) {
        fprintf(stderr, "chatdesk-load: at least one --node is needed\n");
        return -1;
    }
    if (!O.redis_url || !O.chatdeskd) {
        fprintf(stderr, "chatdesk-load: --redis and --chatdeskd are needed (setup uses the admin CLI)\n");
        return -1;
    }
    if (O.npids && O.npids != O.ntargets)
        fprintf(stderr, "chatdesk-load: note: %d --pid for %d --node; per-node RSS pairs them in order\n", O.npids,
                O.ntargets);
    switch (O.sc) {
    case SC_IDLE:
    case SC_STORM:
        if (O.conns <= 0)
            O.conns = 1000;
        if (!O.procs)
            O.procs = O.conns > 15000 ? (O.conns + 14999) / 15000 : (O.conns > 2000 ? 2 : 1);
        break;
    case SC_CHAT:
        if (O.visitors <= 0)
            O.visitors = 200;
        if (O.agents <= 0)
            O.agents = 4;
        if (O.rate <= 0)
            O.rate = 1000;
        if (!O.procs)
            O.procs = O.ntargets >= 2 ? 2 : 1;
        if (O.agents < O.procs)
            O.agents = O.procs;
        break;
    case SC_FANOUT:
        if (O.visitors <= 0)
            O.visitors = 4;
        if (O.agents <= 0)
            O.agents = 10;
        if (O.agent_conns <= 0)
            O.agent_conns = 10;
        if (O.rate <= 0)
            O.rate = 50;
        if (!O.procs)
            O.procs = 2;
        if (O.visitors < O.procs)
            O.visitors = O.procs;
        break;
    }
    if (O.procs < 1 || O.procs > LD_MAX_PROCS) {
        fprintf(stderr, "chatdesk-load: --procs must be 1..%d\n", LD_MAX_PROCS);
        return -1;
    }
    if (O.sc == SC_CHAT) {
        for (int w = 0; w < O.procs; w++) {
            int na = share(O.agents, O.procs, w), nv = share(O.visitors, O.procs, w);
            if (na < 1 || nv > 100 * na) {
                fprintf(stderr,
                        "chatdesk-load: chat needs --agents >= visitors/100 (an agent takes at most 100 chats)\n");
                return -1;
            }
        }
    }
    long total = O.sc == SC_FANOUT ? (long)O.agents * O.agent_conns + O.visitors
                                   : (O.sc == SC_CHAT ? O.visitors + O.agents : O.conns);
    if (total / O.procs > 19000) {
        fprintf(stderr, "chatdesk-load: %ld connections need more --procs (19,000 per process at most)\n", total);
        return -1;
    }
    if (O.src_ips <= 0) {
        long s = total / 150 + 1;
        O.src_ips = s < 4 ? 4 : (s > 250 ? 250 : (int)s);
    }
    if (O.src_ips > 250)
        O.src_ips = 250;
    if (O.duration <= 0)
        O.duration = 10;
    if (O.warmup < 0)
        O.warmup = 0;
    if (O.drain <= 0)
        O.drain = 5;
    if (O.window <= 0)
        O.window = 256;
    if (O.body < 40)
        O.body = 40;
    if (O.timeout_s <= 0)
        O.timeout_s = (int)(O.warmup + O.duration + O.drain) + 60 + (int)(total / 500);
    return 0;
}

int main(int argc, char **argv)
{
    memset(&O, 0, sizeof O);
    O.warmup = 2;
    O.jitter_ms = 2000;
    O.body = 64;
    O.setup_jobs = 2;
    O.storm_send = true;
    snprintf(O.origin, sizeof O.origin, "http://127.0.0.1:3000");
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    O.sc_name = argv[1];
    if (strcmp(argv[1], "idle") == 0)
        O.sc = SC_IDLE;
    else if (strcmp(argv[1], "chat") == 0)
        O.sc = SC_CHAT;
    else if (strcmp(argv[1], "fanout") == 0)
        O.sc = SC_FANOUT;
    else if (strcmp(argv[1], "storm") == 0)
        O.sc = SC_STORM;
    else {
        fprintf(stderr, "chatdesk-load: unknown scenario '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    enum {
        OPT_NODE = 256,
        OPT_PID,
        OPT_REDIS_PID,
        OPT_REDIS,
        OPT_BIN,
        OPT_ORIGIN,
        OPT_PROCS,
        OPT_SRC,
        OPT_CONNS,
        OPT_VIS,
        OPT_AG,
        OPT_AGC,
        OPT_RATE,
        OPT_DUR,
        OPT_WARM,
        OPT_DRAIN,
        OPT_WIN,
        OPT_JIT,
        OPT_BODY,
        OPT_TMO,
        OPT_TAG,
        OPT_QUIET,
        OPT_METRICS,
        OPT_NOSTORMSEND,
        OPT_FEATURES,
        OPT_WEBHOOK,
        OPT_JOBS
    };
    static const struct option lo[] = {{"node", required_argument, NULL, OPT_NODE},
                                       {"pid", required_argument, NULL, OPT_PID},
                                       {"redis-pid", required_argument, NULL, OPT_REDIS_PID},
                                       {"redis", required_argument, NULL, OPT_REDIS},
                                       {"chatdeskd", required_argument, NULL, OPT_BIN},
                                       {"origin", required_argument, NULL, OPT_ORIGIN},
                                       {"procs", required_argument, NULL, OPT_PROCS},
                                       {"src-ips", required_argument, NULL, OPT_SRC},
                                       {"conns", required_argument, NULL, OPT_CONNS},
                                       {"visitors", required_argument, NULL, OPT_VIS},
                                       {"agents", required_argument, NULL, OPT_AG},
                                       {"agent-conns", required_argument, NULL, OPT_AGC},
                                       {"rate", required_argument, NULL, OPT_RATE},
                                       {"duration", required_argument, NULL, OPT_DUR},
                                       {"warmup", required_argument, NULL, OPT_WARM},
                                       {"drain", required_argument, NULL, OPT_DRAIN},
                                       {"window", required_argument, NULL, OPT_WIN},
                                       {"jitter", required_argument, NULL, OPT_JIT},
                                       {"body", required_argument, NULL, OPT_BODY},
                                       {"timeout", required_argument, NULL, OPT_TMO},
                                       {"tag", required_argument, NULL, OPT_TAG},
                                       {"quiet", no_argument, NULL, OPT_QUIET},
                                       {"metrics", required_argument, NULL, OPT_METRICS},
                                       {"no-storm-send", no_argument, NULL, OPT_NOSTORMSEND},
                                       {"features", no_argument, NULL, OPT_FEATURES},
                                       {"webhook", required_argument, NULL, OPT_WEBHOOK},
                                       {"setup-jobs", required_argument, NULL, OPT_JOBS},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    optind = 2;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case OPT_NODE:
            if (O.ntargets >= LD_MAX_NODES || parse_target(optarg, &O.targets[O.ntargets]) != 0) {
                fprintf(stderr, "chatdesk-load: bad --node '%s' (127.x.x.x:PORT, at most %d)\n", optarg, LD_MAX_NODES);
                return 2;
            }
            O.ntargets++;
            break;
        case OPT_PID:
            if (O.npids >= LD_MAX_PIDS)
                return 2;
            O.pids[O.npids++] = (pid_t)atoi(optarg);
            break;
        case OPT_REDIS_PID:
            O.redis_pid = (pid_t)atoi(optarg);
            break;
        case OPT_REDIS:
            O.redis_url = optarg;
            break;
        case OPT_BIN:
            O.chatdeskd = optarg;
            break;
        case OPT_ORIGIN:
            snprintf(O.origin, sizeof O.origin, "%s", optarg);
            break;
        case OPT_PROCS:
            O.procs = atoi(optarg);
            break;
        case OPT_SRC:
            O.src_ips = atoi(optarg);
            break;
        case OPT_CONNS:
            O.conns = atoi(optarg);
            break;
        case OPT_VIS:
            O.visitors = atoi(optarg);
            break;
        case OPT_AG:
            O.agents = atoi(optarg);
            break;
        case OPT_AGC:
            O.agent_conns = atoi(optarg);
            break;
        case OPT_RATE:
            O.rate = atof(optarg);
            break;
        case OPT_DUR:
            O.duration = atof(optarg);
            break;
        case OPT_WARM:
            O.warmup = atof(optarg);
            break;
        case OPT_DRAIN:
            O.drain = atof(optarg);
            break;
        case OPT_WIN:
            O.window = atoi(optarg);
            break;
        case OPT_JIT:
            O.jitter_ms = atoi(optarg);
            break;
        case OPT_BODY:
            O.body = atoi(optarg);
            break;
        case OPT_TMO:
            O.timeout_s = atoi(optarg);
            break;
        case OPT_TAG:
            O.tag = optarg;
            break;
        case OPT_QUIET:
            O.quiet = true;
            break;
        case OPT_NOSTORMSEND:
            O.storm_send = false;
            break;
        case OPT_FEATURES:
            O.features = true;
            break;
        case OPT_WEBHOOK:
            O.webhook_url = optarg;
            break;
        case OPT_JOBS:
            O.setup_jobs = atoi(optarg);
            break;
        case OPT_METRICS: {
            ld_target t;
            if (n_metric_ports >= LD_MAX_NODES || parse_target(optarg, &t) != 0) {
                fprintf(stderr, "chatdesk-load: bad --metrics '%s'\n", optarg);
                return 2;
            }
            snprintf(metric_host, sizeof metric_host, "%s", t.host);
            metric_ports[n_metric_ports++] = t.port;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "chatdesk-load: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (defaults_and_check() != 0)
        return 2;
    if (!n_metric_ports) {
        for (int i = 0; i < O.ntargets; i++)
            metric_ports[n_metric_ports++] = O.targets[i].port;
        snprintf(metric_host, sizeof metric_host, "%s", O.targets[0].host);
    }
    snprintf(O.run_id, sizeof O.run_id, "ld%06x", (unsigned)((ld_wall_ms() ^ ((uint64_t)getpid() << 20)) & 0xffffff));
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm((unsigned)O.timeout_s + 30);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    uint64_t t_setup = ld_now_ns();
    int nacc = 0;
    ld_account *acc = setup(&nacc);
    if (!acc)
        return 1;
    double setup_s = (double)(ld_now_ns() - t_setup) / 1e9;

    /* shared memory: the results, then the fanout tables */
    int P = O.procs;
    uint32_t fan_max = 0;
    size_t extra = 0;
    if (O.sc == SC_FANOUT) {
        double per = O.rate / P * (O.warmup + O.duration) * 1.1 + 16;
        fan_max = (uint32_t)per;
        extra = (size_t)P * (size_t)P * fan_max * sizeof(ld_fan_ev);
    }
    SH_SIZE = sizeof(ld_shared) + extra;
    SH = mmap(NULL, SH_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (SH == MAP_FAILED) {
        perror("chatdesk-load: mmap");
        return 1;
    }
    SH->nworkers = P;
    SH->fan_max_events = fan_max;

    sample s0, s_ready, s_a, s_b;
    take(&s0);
    fflush(NULL);
    for (int w = 0; w < P; w++) {
        pid_t p = fork();
        if (p < 0) {
            perror("chatdesk-load: fork");
            SH->stop = 1;
            return 1;
        }
        if (p == 0) {
            /* a worker never outlives the parent (killed, Ctrl-C): it would hold sockets */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() == 1)
                _exit(1);
            signal(SIGALRM, SIG_DFL);
            alarm((unsigned)O.timeout_s + 20);
            _exit(ld_worker(&O, SH, w, acc, nacc));
        }
        workers[nworkers++] = p;
    }

    /* prep: wait until every worker is ready (or one fails) */
    uint64_t t_prep = ld_now_ns();
    uint64_t prep_deadline = t_prep + (uint64_t)O.timeout_s * NS;
    int failed = 0;
    for (;;) {
        int ready = 0;
        for (int w = 0; w < P; w++) {
            if (SH->w[w].failed)
                failed = 1;
            ready += __atomic_load_n(&SH->w[w].ready, __ATOMIC_ACQUIRE);
        }
        if (failed || ready == P || ld_now_ns() > prep_deadline)
            break;
        int st;
        for (int w = 0; w < P; w++)
            if (workers[w] > 0 && waitpid(workers[w], &st, WNOHANG) == workers[w]) {
                workers[w] = -1;
                if (!SH->w[w].ready)
                    failed = 1;
            }
        usleep(5000);
    }
    long long m0[NMETRICS], m1[NMETRICS];
    if (!failed) {
        if (O.sc == SC_IDLE)
            usleep(1000000); /* let the allocator settle before reading RSS */
        take(&s_ready);
        read_metrics(m0);
        /* go */
        SH->t_go = ld_now_ns() + 20 * MS;
        __atomic_store_n(&SH->go, 1, __ATOMIC_RELEASE);
        uint64_t w0 = SH->t_go + (uint64_t)(O.warmup * 1e9);
        if (O.sc == SC_CHAT || O.sc == SC_FANOUT) {
            sleep_until(w0);
            take(&s_a);
            sleep_until(w0 + (uint64_t)(O.duration * 1e9));
            take(&s_b);
        } else if (O.sc == SC_IDLE) {
            sleep_until(SH->t_go);
            take(&s_a);
            sleep_until(SH->t_go + (uint64_t)(O.duration * 1e9));
            take(&s_b);
        } else {
            sleep_until(SH->t_go);
            take(&s_a);
        }
    } else {
        SH->stop = 1;
    }
    /* wait for the workers (they stop by themselves; the alarm is the last resort) */
    uint64_t end_deadline = ld_now_ns() + (uint64_t)(O.warmup + O.duration + O.drain + 30) * NS;
    bool storm_sampled = false;
    for (;;) {
        int alive = 0;
        for (int w = 0; w < P; w++) {
            if (workers[w] <= 0)
                continue;
            int st;
            pid_t r = waitpid(workers[w], &st, WNOHANG);
            if (r == workers[w]) {
                workers[w] = -1;
                if (!WIFEXITED(st) || (WEXITSTATUS(st) != 0 && !SH->w[w].failed)) {
                    snprintf(SH->w[w].err, sizeof SH->w[w].err, "worker %d died (status %d)", w, st);
                    SH->w[w].failed = 1;
                }
            } else {
                alive++;
            }
        }
        if (O.sc == SC_STORM && !failed && !storm_sampled) {
            int done = 0;
            for (int w = 0; w < P; w++)
                done += SH->w[w].done || workers[w] <= 0;
            if (done == P) {
                take(&s_b);
                storm_sampled = true;
            }
        }
        if (!alive)
            break;
        if (ld_now_ns() > end_deadline) {
            SH->stop = 1;
            if (ld_now_ns() > end_deadline + 5 * NS) {
                kill_workers(SIGKILL);
            }
        }
        usleep(10000);
    }
    if (O.sc == SC_STORM && !failed && !storm_sampled)
        take(&s_b);
    if (!failed)
        read_metrics(m1);

    /* ---------- aggregate ---------- */
    ld_wres T;
    memset(&T, 0, sizeof T);
    uint64_t t_first = UINT64_MAX, t_all = 0;
    for (int w = 0; w < P; w++) {
        ld_wres *r = &SH->w[w];
        if (r->failed) {
            failed = 1;
            fprintf(stderr, "chatdesk-load: %s\n", r->err);
        }
#define ADD(f) T.f += r->f
        ADD(conns_target);
        ADD(conns_open);
        ADD(connect_errors);
        ADD(upgrade_errors);
        ADD(io_errors);
        ADD(closes);
        ADD(close_codes_other);
        ADD(errors);
        ADD(err_rate_limited);
        ADD(err_unavailable);
        ADD(sent);
        ADD(acked);
        ADD(delivered);
        ADD(echoes);
        ADD(lost);
        ADD(lost_echo);
        ADD(dup);
        ADD(gaps);
        ADD(unacked);
        ADD(sent_window);
        ADD(acked_window);
        ADD(delivered_window);
        ADD(assigned);
        ADD(events);
        ADD(deliveries);
        ADD(deliveries_window);
        ADD(agent_conns);
        ADD(resumed);
        ADD(resume_fail);
        ADD(recovered_false);
        ADD(retries);
        ADD(storm_lost);
        ADD(storm_dup);
        ADD(replayed);
        ADD(acked_in_window);
        ADD(delivered_in_window);
        ADD(bytes_in);
        ADD(bytes_out);
        ADD(frames_in);
        ADD(frames_out);
#undef ADD
        for (int i = 0; i < LD_MAX_NODES; i++)
            T.conns_per_node[i] += r->conns_per_node[i];
        if (r->first_error[0] && !T.first_error[0])
            memcpy(T.first_error, r->first_error, sizeof T.first_error);
        if (r->t_first && r->t_first < t_first)
            t_first = r->t_first;
        if (r->t_all_open > t_all)
            t_all = r->t_all_open;
        if (r->t_last_resumed > T.t_last_resumed)
            T.t_last_resumed = r->t_last_resumed;
        ld_hist_merge(&T.lat, &r->lat);
        ld_hist_merge(&T.ack_lat, &r->ack_lat);
        ld_hist_merge(&T.lag, &r->lag);
    }
    double win = O.duration;
    double tps = (double)ld_ticks_per_sec();
    char cpu_model[128];
    long nproc;
    double mem_gb;
    machine(cpu_model, sizeof cpu_model, &nproc, &mem_gb);

    /* cpu over the window */
    double node_cpu_s = 0, redis_cpu_s = -1, gen_cpu_s = 0, node_cpu_each[LD_MAX_PIDS] = {0};
    const sample *ca = &s_a, *cb = &s_b;
    if (!failed) {
        for (int i = 0; i < O.npids; i++) {
            node_cpu_each[i] = ca->cpu[i] >= 0 && cb->cpu[i] >= 0 ? (double)(cb->cpu[i] - ca->cpu[i]) / tps : 0;
            node_cpu_s += node_cpu_each[i];
        }
        if (O.redis_pid && ca->redis_cpu >= 0 && cb->redis_cpu >= 0)
            redis_cpu_s = (double)(cb->redis_cpu - ca->redis_cpu) / tps;
        /* the generator's own CPU over the same window, as each worker measured it */
        for (int w = 0; w < P; w++) {
            const uint64_t *c = SH->w[w].cpu_us;
            if (O.sc == SC_STORM)
                gen_cpu_s += (double)(c[3] - c[0]) / 1e6;
            else
                gen_cpu_s += (double)(c[2] - c[1]) / 1e6;
        }
    }
    double wall_s = failed ? 0 : (double)(cb->t - ca->t) / 1e9;
    /* what setting the connections up cost (connect, hello, conversation starts...) */
    double prep_node_s = 0, prep_redis_s = 0;
    if (!failed) {
        for (int i = 0; i < O.npids; i++)
            if (s0.cpu[i] >= 0 && s_ready.cpu[i] >= 0)
                prep_node_s += (double)(s_ready.cpu[i] - s0.cpu[i]) / tps;
        if (O.redis_pid && s0.redis_cpu >= 0 && s_ready.redis_cpu >= 0)
            prep_redis_s = (double)(s_ready.redis_cpu - s0.redis_cpu) / tps;
    }
    /* the machine: how busy it was over the window, and how much of that was not us */
    double m_busy_s = -1, other_s = -1;
    if (!failed && cb->m_total > ca->m_total) {
        m_busy_s = (double)(cb->m_busy - ca->m_busy) / tps;
        other_s = m_busy_s - node_cpu_s - (redis_cpu_s > 0 ? redis_cpu_s : 0) - gen_cpu_s;
    }

    /* fanout completion */
    ld_hist comp;
    memset(&comp, 0, sizeof comp);
    uint64_t fan_missing = 0, fan_complete = 0, fan_events = 0;
    if (O.sc == SC_FANOUT && !failed) {
        uint64_t M = T.agent_conns;
        for (int s = 0; s < P; s++) {
            uint64_t ev = SH->w[s].events;
            for (uint64_t j = 0; j < ev && j < fan_max; j++) {
                uint64_t e = (uint64_t)s * fan_max + j;
                uint64_t cnt = 0, mx = 0;
                for (int r = 0; r < P; r++) {
                    ld_fan_ev *f = &ld_fan_table(SH, r)[e];
                    cnt += f->count;
                    if (f->max_us > mx)
                        mx = f->max_us;
                }
                fan_events++;
                if (cnt >= M) {
                    fan_complete++;
                    ld_hist_add(&comp, mx * 1000u);
                } else {
                    fan_missing += M - cnt;
                }
            }
        }
    }

    /* ---------- verdict ---------- */
    int bad = failed;
    uint64_t lost = 0;
    switch (O.sc) {
    case SC_IDLE:
        if (T.conns_open < T.conns_target || T.closes)
            bad = 1;
        break;
    case SC_CHAT:
        lost = T.lost + T.lost_echo;
        if (lost || T.dup || T.gaps || T.unacked || T.errors || T.closes)
            bad = 1;
        break;
    case SC_FANOUT:
        lost = fan_missing;
        if (fan_missing || T.errors || T.closes)
            bad = 1;
        break;
    case SC_STORM:
        lost = T.storm_lost;
        if (T.storm_lost || T.storm_dup || T.resume_fail || T.dup || T.gaps || T.unacked)
            bad = 1;
        break;
    }

    /* ---------- table ---------- */
    double rss_per_conn = -1;
    long rss_delta_kb = 0;
    double node_rss_per_conn[LD_MAX_PIDS];
    for (int i = 0; i < LD_MAX_PIDS; i++)
        node_rss_per_conn[i] = -1;
    if (!failed && O.npids) {
        uint64_t conns = 0;
        for (int i = 0; i < O.npids; i++) {
            long d = s_ready.rss[i] - s0.rss[i];
            rss_delta_kb += d;
            uint64_t c = i < O.ntargets ? T.conns_per_node[i] : 0;
            conns += c;
            if (c)
                node_rss_per_conn[i] = (double)d * 1024.0 / (double)c;
        }
        if (conns)
            rss_per_conn = (double)rss_delta_kb * 1024.0 / (double)conns;
    }
    double connect_s = t_all > t_first && t_first != UINT64_MAX ? (double)(t_all - t_first) / 1e9 : 0;
    double connect_rate = connect_s > 0 ? (double)T.conns_open / connect_s : 0;
    double msgs = (double)T.acked_window;       /* sent in the window, acked (cpu per message) */
    double acks_in = (double)T.acked_in_window; /* acks that arrived in the window (throughput) */
    double storm_s = O.sc == SC_STORM && T.t_last_resumed > SH->t_go ? (double)(T.t_last_resumed - SH->t_go) / 1e9 : -1;

    if (!O.quiet) {
        printf("chatdesk-load %s  run %s  %s\n", O.sc_name, O.run_id, bad ? "FAILED" : "ok");
        printf("  machine        %ld cpu (%s), %.1f GiB\n", nproc, cpu_model, mem_gb);
        printf("  targets        %d node(s), %d process(es), %d source address(es), setup %.1f s\n", O.ntargets, P,
               O.src_ips, setup_s);
        printf("  connections    %" PRIu64 "/%" PRIu64 " open, connect errors %" PRIu64 ", refused upgrades %" PRIu64
               ", retries %" PRIu64 "\n",
               T.conns_open, T.conns_target, T.connect_errors, T.upgrade_errors, T.retries);
        if (O.sc == SC_IDLE || O.sc == SC_STORM)
            printf("  connect rate   %.0f conn/s (%.2f s for all, hello included)\n", connect_rate, connect_s);
        if (!failed && T.conns_open)
            printf("  set-up cpu     nodes %.2f s, redis %.2f s for %" PRIu64 " connections (%.0f + %.0f us each)\n",
                   prep_node_s, prep_redis_s, T.conns_open, prep_node_s * 1e6 / (double)T.conns_open,
                   prep_redis_s * 1e6 / (double)T.conns_open);
        if (O.npids)
            for (int i = 0; i < O.npids; i++)
                printf("  node pid %-6d rss %ld -> %ld KiB (%+ld), %" PRIu64 " conns, %.0f B/conn, cpu %.2f s\n",
                       (int)O.pids[i], s0.rss[i], s_ready.rss[i], s_ready.rss[i] - s0.rss[i],
                       i < O.ntargets ? T.conns_per_node[i] : 0, node_rss_per_conn[i], node_cpu_each[i]);
        if (rss_per_conn >= 0)
            printf("  server RSS     %.0f bytes per connection (all nodes)\n", rss_per_conn);
        if (O.sc == SC_CHAT) {
            printf("  sent/acked     %" PRIu64 " / %" PRIu64 " (window %" PRIu64 " / %" PRIu64 "), unacked %" PRIu64
                   "\n",
                   T.sent, T.acked, T.sent_window, T.acked_window, T.unacked);
            printf("  persisted      %.0f msg/s acked in the window (offered %.0f)\n", acks_in / win, O.rate);
            printf("  delivered      %.0f msg/s to agents in the window (+ %" PRIu64 " echoes to senders in all)\n",
                   (double)T.delivered_in_window / win, T.echoes);
            printf("  latency        visitor->agent p50 %.0f us  p99 %.0f us  p99.9 %.0f us  max %.0f us (n=%" PRIu64
                   ")\n",
                   us(ld_hist_pct(&T.lat, 50)), us(ld_hist_pct(&T.lat, 99)), us(ld_hist_pct(&T.lat, 99.9)),
                   us(T.lat.max), T.lat.count);
            printf("  ack latency    p50 %.0f us  p99 %.0f us  p99.9 %.0f us\n", us(ld_hist_pct(&T.ack_lat, 50)),
                   us(ld_hist_pct(&T.ack_lat, 99)), us(ld_hist_pct(&T.ack_lat, 99.9)));
            printf("  send lag       p99 %.0f us  max %.0f us (open loop: how late the generator sent)\n",
                   us(ld_hist_pct(&T.lag, 99)), us(T.lag.max));
        }
        if (O.sc == SC_FANOUT) {
            printf("  events         %" PRIu64 " conversation starts, %" PRIu64 " agent connections\n", T.events,
                   T.agent_conns);
            printf("  deliveries     %.0f /s (conversation.queued, arrived in the window), %" PRIu64 " missing\n",
                   (double)T.delivered_in_window / win, fan_missing);
            printf("  delivery       p50 %.0f us  p99 %.0f us  p99.9 %.0f us\n", us(ld_hist_pct(&T.lat, 50)),
                   us(ld_hist_pct(&T.lat, 99)), us(ld_hist_pct(&T.lat, 99.9)));
            printf("  completion     p50 %.0f us  p99 %.0f us  max %.0f us (%" PRIu64 "/%" PRIu64 " events complete)\n",
                   us(ld_hist_pct(&comp, 50)), us(ld_hist_pct(&comp, 99)), us(comp.max), fan_complete, fan_events);
        }
        if (O.sc == SC_STORM) {
            printf("  storm          %" PRIu64 " dropped at once, %" PRIu64 " resumed, %" PRIu64 " failed, in %.2f s\n",
                   T.conns_target, T.resumed, T.resume_fail, storm_s);
            printf("  back           p50 %.0f ms  p99 %.0f ms  max %.0f ms after the drop (jitter %d ms)\n",
                   us(ld_hist_pct(&T.lat, 50)) / 1000, us(ld_hist_pct(&T.lat, 99)) / 1000, us(T.lat.max) / 1000,
                   O.jitter_ms);
            printf("  outbox         %" PRIu64 " replayed by resume, lost %" PRIu64 ", stored twice %" PRIu64
                   ", recovered:false %" PRIu64 "\n",
                   T.replayed, T.storm_lost, T.storm_dup, T.recovered_false);
        }
        printf("  integrity      lost %" PRIu64 ", duplicates %" PRIu64 ", gaps %" PRIu64 ", error frames %" PRIu64
               " (rate_limited %" PRIu64 ", unavailable %" PRIu64 "), unexpected closes %" PRIu64 "\n",
               lost, T.dup, T.gaps, T.errors, T.err_rate_limited, T.err_unavailable, T.closes);
        if (T.first_error[0])
            printf("  first error    %s\n", T.first_error);
        if (!failed) {
            printf("  cpu (window)   nodes %.2f s, redis %.2f s, generator %.2f s over %.2f s", node_cpu_s, redis_cpu_s,
                   gen_cpu_s, wall_s);
            if (O.sc == SC_CHAT && msgs > 0)
                printf("; per message: nodes %.1f us, redis %.1f us", node_cpu_s * 1e6 / msgs,
                       redis_cpu_s >= 0 ? redis_cpu_s * 1e6 / msgs : -1.0);
            if (O.sc == SC_FANOUT && T.deliveries_window)
                printf("; per delivery: nodes %.2f us", node_cpu_s * 1e6 / (double)T.deliveries_window);
            printf("\n");
            if (m_busy_s >= 0)
                printf("  machine busy   %.2f of %.2f cpu-s (%.0f%%); not ours: %.2f s\n", m_busy_s,
                       wall_s * (double)nproc, 100.0 * m_busy_s / (wall_s * (double)nproc), other_s);
            printf("  node metrics   acks %+lld, gap backfills %+lld, slow-consumer closes %+lld, rate-limited %+lld, "
                   "resumes %+lld (reset %+lld)\n",
                   m1[0] - m0[0], m1[2] - m0[2], m1[5] - m0[5], m1[6] - m0[6], m1[3] - m0[3], m1[4] - m0[4]);
            if (m0[10] >= 0 && m1[10] > m0[10]) /* nodes that batch message.send (msg_send) */
                printf("  redis calls    %+lld scripts; message.send in %+lld batched calls, %.2f sends each\n",
                       m1[9] - m0[9], m1[10] - m0[10], (double)(m1[11] - m0[11]) / (double)(m1[10] - m0[10]));
        }
    }

    /* ---------- JSON line ---------- */
    printf("{\"scenario\":\"%s\",\"ok\":%s,\"run\":\"%s\",\"tag\":\"%s\",\"machine\":{\"nproc\":%ld,\"cpu\":\"%s\","
           "\"mem_gib\":%.1f},\"nodes\":%d,\"procs\":%d,\"src_ips\":%d",
           O.sc_name, bad ? "false" : "true", O.run_id, O.tag ? O.tag : "", nproc, cpu_model, mem_gb, O.ntargets, P,
           O.src_ips);
    printf(",\"features\":%s,\"webhook\":%s", O.features ? "true" : "false", O.webhook_url ? "true" : "false");
    printf(",\"conns\":%" PRIu64 ",\"conns_open\":%" PRIu64 ",\"connect_errors\":%" PRIu64
           ",\"upgrade_errors\":%" PRIu64 ",\"retries\":%" PRIu64,
           T.conns_target, T.conns_open, T.connect_errors, T.upgrade_errors, T.retries);
    printf(",\"lost\":%" PRIu64 ",\"dup\":%" PRIu64 ",\"gaps\":%" PRIu64 ",\"errors\":%" PRIu64
           ",\"err_rate_limited\":%" PRIu64 ",\"err_unavailable\":%" PRIu64 ",\"closes\":%" PRIu64,
           lost, T.dup, T.gaps, T.errors, T.err_rate_limited, T.err_unavailable, T.closes);
    if (rss_per_conn >= 0)
        printf(",\"rss_bytes_per_conn\":%.0f,\"rss_delta_kib\":%ld", rss_per_conn, rss_delta_kb);
    if (O.sc == SC_IDLE || O.sc == SC_STORM)
        printf(",\"connect_rate\":%.0f,\"connect_s\":%.3f", connect_rate, connect_s);
    if (!failed && T.conns_open)
        printf(",\"setup_cpu_us_per_conn\":{\"nodes\":%.0f,\"redis\":%.0f}", prep_node_s * 1e6 / (double)T.conns_open,
               prep_redis_s * 1e6 / (double)T.conns_open);
    if (O.sc == SC_CHAT)
        printf(",\"visitors\":%d,\"agents\":%d,\"rate\":%.0f,\"duration_s\":%.1f,\"sent\":%" PRIu64
               ",\"acked\":%" PRIu64 ",\"unacked\":%" PRIu64
               ",\"persisted_per_s\":%.0f,\"delivered_per_s\":%.0f,\"lat_us\":{\"p50\":%.0f,"
               "\"p99\":%.0f,\"p999\":%.0f,\"max\":%.0f},\"ack_us\":{\"p50\":%.0f,\"p99\":%.0f,\"p999\":%.0f},"
               "\"lag_us_p99\":%.0f",
               O.visitors, O.agents, O.rate, win, T.sent, T.acked, T.unacked, acks_in / win,
               (double)T.delivered_in_window / win, us(ld_hist_pct(&T.lat, 50)), us(ld_hist_pct(&T.lat, 99)),
               us(ld_hist_pct(&T.lat, 99.9)), us(T.lat.max), us(ld_hist_pct(&T.ack_lat, 50)),
               us(ld_hist_pct(&T.ack_lat, 99)), us(ld_hist_pct(&T.ack_lat, 99.9)), us(ld_hist_pct(&T.lag, 99)));
    if (O.sc == SC_FANOUT)
        printf(",\"agent_conns\":%" PRIu64 ",\"events\":%" PRIu64 ",\"rate\":%.0f,\"deliveries_per_s\":%.0f,"
               "\"missing\":%" PRIu64 ",\"delivery_us\":{\"p50\":%.0f,\"p99\":%.0f},\"completion_us\":{\"p50\":%.0f,"
               "\"p99\":%.0f,\"max\":%.0f}",
               T.agent_conns, T.events, O.rate, (double)T.delivered_in_window / win, fan_missing,
               us(ld_hist_pct(&T.lat, 50)), us(ld_hist_pct(&T.lat, 99)), us(ld_hist_pct(&comp, 50)),
               us(ld_hist_pct(&comp, 99)), us(comp.max));
    if (O.sc == SC_STORM)
        printf(",\"resumed\":%" PRIu64 ",\"resume_fail\":%" PRIu64 ",\"storm_s\":%.3f,\"back_ms\":{\"p50\":%.0f,"
               "\"p99\":%.0f,\"max\":%.0f},\"jitter_ms\":%d,\"replayed\":%" PRIu64 ",\"stored_twice\":%" PRIu64
               ",\"recovered_false\":%" PRIu64,
               T.resumed, T.resume_fail, storm_s, us(ld_hist_pct(&T.lat, 50)) / 1000,
               us(ld_hist_pct(&T.lat, 99)) / 1000, us(T.lat.max) / 1000, O.jitter_ms, T.replayed, T.storm_dup,
               T.recovered_false);
    if (!failed) {
        printf(",\"cpu_s\":{\"nodes\":%.2f,\"redis\":%.2f,\"generator\":%.2f,\"machine_busy\":%.2f,\"not_ours\":%.2f,"
               "\"wall\":%.2f}",
               node_cpu_s, redis_cpu_s, gen_cpu_s, m_busy_s, other_s, wall_s);
        if (O.sc == SC_CHAT && msgs > 0)
            printf(",\"node_cpu_us_per_msg\":%.1f,\"redis_cpu_us_per_msg\":%.1f", node_cpu_s * 1e6 / msgs,
                   redis_cpu_s >= 0 ? redis_cpu_s * 1e6 / msgs : -1.0);
        printf(",\"metrics\":{");
        for (size_t i = 0; i < NMETRICS; i++)
            printf("%s\"%s\":%lld", i ? "," : "", METRICS[i] + 9, m1[i] >= 0 && m0[i] >= 0 ? m1[i] - m0[i] : -1);
        printf("}");
    }
    printf("}\n");
    fflush(stdout);
    munmap(SH, SH_SIZE);
    free(acc);
    return bad ? 1 : 0;
}
