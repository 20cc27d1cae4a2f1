/* chatdesk-load worker: one process, one epoll loop, its share of the connections.
 *
 * Every worker of a run goes through the same phases:
 *   prep  connect (at most opts.window handshakes in flight), hello, scenario set-up
 *         (chat: agents first, then visitors start conversations that get assigned);
 *         then ld_wres.ready = 1;
 *   run   after the parent sets shared.go: the scenario (open-loop sends, drops ...);
 *   drain stop sending, wait (bounded) for what is still owed, count what never came;
 *         then ld_wres.done = 1 and exit.
 * Each worker stops by itself at opts.timeout_s whatever happens.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "load.h"

#define NS 1000000000ull
#define MS 1000000ull

typedef struct vst {
    char cid[48];
    char epoch[40];
    char *token;       /* storm: the visitor token to come back with */
    int64_t last_seq;  /* visitor side: highest message.created seq in order */
    int64_t a_last;    /* agent side (chat) */
    int64_t start_seq; /* seq of the first own message */
    int64_t storm_seq; /* storm: seq of the message sent before the drop, as acked */
    uint32_t sent, acked, echo, a_recv;
    uint8_t started, assigned, welcomed, resumed, storm_seen, storm_acked, retries;
    uint64_t t_drop, t_next; /* storm */
} vst;

typedef struct worker {
    const ld_opts *o;
    ld_shared *sh;
    ld_wres *r;
    int w, P;
    ld_loop loop;
    const ld_account *acc;
    int nacc;
    /* connections: [0, nagents) agents, then visitors */
    ld_conn *conns;
    int nconns, nagents, nvisitors;
    vst *vs;
    int *agent_acc; /* agent connection -> account index */
    /* cid -> visitor index */
    char **map_key;
    int *map_val;
    size_t map_cap;
    /* progress */
    int next_connect; /* next connection index to open in prep */
    int inflight;
    int agents_ready, visitors_ready;
    int phase; /* 0 prep agents, 1 prep visitors, 2 ready, 3 run, 4 drain, 5 done */
    uint64_t t_start, deadline, t_go, t_win0, t_win1, t_send_end, t_drain_end;
    double rate_w;
    uint64_t k_next; /* open-loop: next send number */
    int senders;     /* fanout: sender visitors */
    uint32_t fan_max;
    ld_fan_ev *fan;
    const char *site; /* chat/storm/idle: this worker's site; fanout: the shared one */
    char pad[8192];   /* chat: body padding */
    size_t padn;
    int *retry; /* prep: connections to open again */
    int nretry;
    uint64_t retry_at;
    /* storm */
    int storm_pending; /* connections not yet resumed (and re-acked) */
    int reconnect_cursor;
} worker;

static void fail(worker *W, const char *msg)
{
    if (!W->r->failed) {
        snprintf(W->r->err, sizeof W->r->err, "worker %d: %s", W->w, msg);
        W->r->failed = 1;
    }
}

/* ---------- cid map ---------- */

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static void map_put(worker *W, const char *cid, int v)
{
    size_t i = fnv(cid) & (W->map_cap - 1);
    while (W->map_key[i]) {
        if (strcmp(W->map_key[i], cid) == 0) {
            W->map_val[i] = v;
            return;
        }
        i = (i + 1) & (W->map_cap - 1);
    }
    W->map_key[i] = strdup(cid);
    W->map_val[i] = v;
}

static int map_get(worker *W, const char *cid)
{
    size_t i = fnv(cid) & (W->map_cap - 1);
    while (W->map_key[i]) {
        if (strcmp(W->map_key[i], cid) == 0)
            return W->map_val[i];
        i = (i + 1) & (W->map_cap - 1);
    }
    return -1;
}

/* ---------- helpers ---------- */

static int share(int total, int P, int w)
{
    return total / P + (w < total % P ? 1 : 0);
}

static int share_start(int total, int P, int w)
{
    int s = 0;
    for (int i = 0; i < w; i++)
        s += share(total, P, i);
    return s;
}

static uint32_t src_of(const ld_opts *o, int global)
{
    if (o->src_ips <= 0)
        return 0;
    return 2u + (uint32_t)(global % o->src_ips);
}

static bool is_visitor(const worker *W, const ld_conn *c)
{
    return c->role == 'v';
}

static vst *vs_of(worker *W, ld_conn *c)
{
    return &W->vs[c->idx];
}

static int send_json(worker *W, ld_conn *c, const char *buf, int n)
{
    if (n <= 0)
        return -1;
    return ld_send_text(&W->loop, c, buf, (size_t)n);
}

static void visitor_hello(worker *W, ld_conn *c)
{
    vst *v = vs_of(W, c);
    char buf[2048];
    int n;
    if (v->token && v->cid[0]) {
        n = snprintf(
            buf, sizeof buf,
            "{\"type\":\"hello\",\"rid\":\"h\",\"site\":\"%s\",\"token\":\"%s\",\"resume\":[{\"conversation_id\":"
            "\"%s\",\"after_seq\":%" PRId64 ",\"epoch\":\"%s\"}]}",
            W->site, v->token, v->cid, v->last_seq, v->epoch);
    } else {
        n = snprintf(buf, sizeof buf, "{\"type\":\"hello\",\"rid\":\"h\",\"site\":\"%s\"}", W->site);
    }
    send_json(W, c, buf, n);
}

static void agent_hello(worker *W, ld_conn *c)
{
    char buf[1536];
    const ld_account *a = &W->acc[W->agent_acc[c->idx]];
    int n = snprintf(buf, sizeof buf, "{\"type\":\"hello\",\"rid\":\"h\",\"token\":\"%s\"}", a->token);
    send_json(W, c, buf, n);
}

/* The handshake of c is over (welcome, or closed): one less in flight. */
static void settle(worker *W, ld_conn *c)
{
    if (c->pending) {
        c->pending = 0;
        if (W->inflight > 0)
            W->inflight--;
    }
}

static void count_error(worker *W, const char *p, size_t n)
{
    char code[32];
    W->r->errors++;
    if (!W->r->first_error[0]) {
        size_t k = n < sizeof W->r->first_error - 1 ? n : sizeof W->r->first_error - 1;
        memcpy(W->r->first_error, p, k);
        W->r->first_error[k] = '\0';
    }
    if (ld_json_str(p, n, "code", code, sizeof code) > 0) {
        if (strcmp(code, "rate_limited") == 0)
            W->r->err_rate_limited++;
        else if (strcmp(code, "unavailable") == 0)
            W->r->err_unavailable++;
    }
}

/* ---------- sends ---------- */

static void chat_send(worker *W, int vi, uint64_t t_sched, uint64_t now)
{
    ld_conn *c = &W->conns[W->nagents + vi];
    vst *v = &W->vs[vi];
    if (c->state != LD_C_OPEN || !v->cid[0])
        return;
    char buf[9000];
    uint32_t k = v->sent;
    int n = snprintf(buf, sizeof buf,
                     "{\"type\":\"message.send\",\"rid\":\"%u\",\"conversation_id\":\"%s\",\"client_msg_id\":\"%d-%u\","
                     "\"body\":\"t%" PRIu64 " %s\"}",
                     k, v->cid, vi, k, now, W->pad);
    if (send_json(W, c, buf, n) != 0)
        return;
    v->sent++;
    W->r->sent++;
    if (t_sched >= W->t_win0 && t_sched < W->t_win1)
        W->r->sent_window++;
    ld_hist_add(&W->r->lag, now > t_sched ? now - t_sched : 0);
}

static void fan_send(worker *W, int si, uint64_t k, uint64_t t_sched, uint64_t now)
{
    ld_conn *c = &W->conns[W->nagents + si];
    if (c->state != LD_C_OPEN)
        return;
    char buf[512];
    uint64_t e = (uint64_t)W->w * W->fan_max + k;
    int n = snprintf(buf, sizeof buf,
                     "{\"type\":\"conversation.start\",\"rid\":\"e%" PRIu64 "\",\"form\":{\"subject\":\"t%" PRIu64
                     " e%" PRIu64 "\"}}",
                     e, now, e);
    if (send_json(W, c, buf, n) != 0)
        return;
    __atomic_add_fetch(&W->r->events, 1, __ATOMIC_RELAXED);
    W->r->sent++;
    if (t_sched >= W->t_win0 && t_sched < W->t_win1)
        W->r->sent_window++;
    ld_hist_add(&W->r->lag, now > t_sched ? now - t_sched : 0);
}

/* ---------- frames ---------- */

static void on_message_created_visitor(worker *W, ld_conn *c, const char *p, size_t n, uint64_t now)
{
    vst *v = vs_of(W, c);
    int64_t seq;
    if (ld_json_int(p, n, "seq", &seq) != 0)
        return;
    if (seq <= v->last_seq) {
        W->r->dup++; /* a wire duplicate (or out of order) */
        return;
    }
    if (v->last_seq && seq > v->last_seq + 1)
        W->r->gaps++;
    v->last_seq = seq;
    char cmid[48];
    if (ld_json_str(p, n, "client_msg_id", cmid, sizeof cmid) > 0) {
        if (W->o->sc == SC_CHAT) {
            v->echo++;
            W->r->echoes++;
        } else if (W->o->sc == SC_STORM && cmid[0] == 's') {
            if (v->storm_seen) {
                W->r->storm_dup++; /* the same client_msg_id stored twice */
            }
            v->storm_seen = 1;
            if (!v->resumed)
                W->r->replayed++;
        }
    }
    (void)now;
}

static void on_message_created_agent(worker *W, ld_conn *c, const char *p, size_t n, uint64_t now)
{
    char cid[48];
    int64_t seq;
    if (ld_json_str(p, n, "conversation_id", cid, sizeof cid) <= 0 || ld_json_int(p, n, "seq", &seq) != 0)
        return;
    int vi = map_get(W, cid);
    if (vi < 0)
        return; /* not one of ours (another worker's site cannot reach us) */
    vst *v = &W->vs[vi];
    if (seq <= v->a_last) {
        W->r->dup++;
        return;
    }
    if (v->a_last && seq > v->a_last + 1)
        W->r->gaps++;
    v->a_last = seq;
    char kind[16];
    if (ld_json_str(p, n, "kind", kind, sizeof kind) <= 0 || strcmp(kind, "visitor") != 0)
        return;
    char body[32];
    if (ld_json_str(p, n, "body", body, sizeof body) <= 1 || body[0] != 't')
        return;
    uint64_t t = strtoull(body + 1, NULL, 10);
    v->a_recv++;
    W->r->delivered++;
    if (now >= W->t_win0 && now < W->t_win1)
        W->r->delivered_in_window++;
    if (t >= W->t_win0 && t < W->t_win1) {
        W->r->delivered_window++;
        ld_hist_add(&W->r->lat, now > t ? now - t : 0);
    }
    (void)c;
}

static void chat_visitor_frame(worker *W, ld_conn *c, const char *type, const char *p, size_t n, uint64_t now)
{
    vst *v = vs_of(W, c);
    if (strcmp(type, "message.created") == 0) {
        on_message_created_visitor(W, c, p, n, now);
    } else if (strcmp(type, "ok") == 0) {
        char rid[24];
        if (ld_json_str(p, n, "rid", rid, sizeof rid) <= 0)
            return;
        if (rid[0] == 's') { /* conversation.start */
            const char *conv = ld_memmem(p, n, "\"conversation\":", 15);
            if (!conv)
                return;
            size_t rest = n - (size_t)(conv - p);
            ld_json_str(conv, rest, "id", v->cid, sizeof v->cid);
            ld_json_str(conv, rest, "epoch", v->epoch, sizeof v->epoch);
            map_put(W, v->cid, (int)c->idx);
            v->started = 1;
            W->visitors_ready++;
            return;
        }
        /* message.send ack: the body carries the send time */
        char body[32];
        if (ld_json_str(p, n, "body", body, sizeof body) > 1 && body[0] == 't') {
            uint64_t t = strtoull(body + 1, NULL, 10);
            v->acked++;
            W->r->acked++;
            if (now >= W->t_win0 && now < W->t_win1)
                W->r->acked_in_window++;
            if (t >= W->t_win0 && t < W->t_win1) {
                W->r->acked_window++;
                ld_hist_add(&W->r->ack_lat, now > t ? now - t : 0);
            }
        }
    } else if (strcmp(type, "welcome") == 0) {
        v->welcomed = 1;
        settle(W, c);
        char buf[256];
        int k = snprintf(buf, sizeof buf,
                         "{\"type\":\"conversation.start\",\"rid\":\"s\",\"form\":{\"subject\":\"v%u\"}}", c->idx);
        send_json(W, c, buf, k);
    } else if (strcmp(type, "error") == 0) {
        count_error(W, p, n);
    }
}

static void chat_agent_frame(worker *W, ld_conn *c, const char *type, const char *p, size_t n, uint64_t now)
{
    if (strcmp(type, "message.created") == 0) {
        on_message_created_agent(W, c, p, n, now);
    } else if (strcmp(type, "conversation.assigned") == 0) {
        char cid[48], subj[32];
        int64_t last = 0;
        if (ld_json_str(p, n, "id", cid, sizeof cid) <= 0 || ld_json_str(p, n, "subject", subj, sizeof subj) <= 1)
            return;
        if (subj[0] != 'v')
            return;
        int vi = atoi(subj + 1);
        if (vi < 0 || vi >= W->nvisitors)
            return;
        ld_json_int(p, n, "last_seq", &last);
        vst *v = &W->vs[vi];
        map_put(W, cid, vi);
        if (!v->assigned) {
            v->assigned = 1;
            W->r->assigned++;
            if (last > v->a_last)
                v->a_last = last;
        }
    } else if (strcmp(type, "welcome") == 0) {
        settle(W, c);
        W->agents_ready++;
        static const char pres[] = "{\"type\":\"presence.set\",\"status\":\"online\"}";
        send_json(W, c, pres, (int)sizeof pres - 1);
    } else if (strcmp(type, "error") == 0) {
        count_error(W, p, n);
    }
}

static void fan_agent_frame(worker *W, ld_conn *c, const char *type, const char *p, size_t n, uint64_t now)
{
    if (strcmp(type, "conversation.queued") == 0) {
        char subj[64];
        if (ld_json_str(p, n, "subject", subj, sizeof subj) <= 1 || subj[0] != 't')
            return;
        char *sp = strchr(subj, ' ');
        if (!sp || sp[1] != 'e')
            return;
        uint64_t t = strtoull(subj + 1, NULL, 10);
        uint64_t e = strtoull(sp + 2, NULL, 10);
        uint64_t lat = now > t ? now - t : 0;
        W->r->deliveries++;
        if (now >= W->t_win0 && now < W->t_win1)
            W->r->delivered_in_window++;
        if (t >= W->t_win0 && t < W->t_win1) {
            W->r->deliveries_window++;
            ld_hist_add(&W->r->lat, lat);
        }
        if (e < (uint64_t)W->P * W->fan_max) {
            ld_fan_ev *f = &W->fan[e];
            f->count++;
            uint32_t us = (uint32_t)(lat / 1000u);
            if (us > f->max_us)
                f->max_us = us;
        }
    } else if (strcmp(type, "welcome") == 0) {
        settle(W, c);
        W->agents_ready++;
    } else if (strcmp(type, "error") == 0) {
        count_error(W, p, n);
    }
    (void)c;
}

static void fan_visitor_frame(worker *W, ld_conn *c, const char *type, const char *p, size_t n, uint64_t now)
{
    if (strcmp(type, "welcome") == 0) {
        settle(W, c);
        W->visitors_ready++;
        vs_of(W, c)->welcomed = 1;
    } else if (strcmp(type, "error") == 0) {
        count_error(W, p, n);
    }
    (void)now;
}

static void idle_visitor_frame(worker *W, ld_conn *c, const char *type, const char *p, size_t n, uint64_t now)
{
    if (strcmp(type, "welcome") == 0) {
        vst *v = vs_of(W, c);
        if (!v->welcomed) {
            v->welcomed = 1;
            settle(W, c);
            W->visitors_ready++;
            W->r->t_all_open = now;
        }
    } else if (strcmp(type, "error") == 0) {
        count_error(W, p, n);
    }
}

static void storm_done_one(worker *W, vst *v, uint64_t now)
{
    (void)v;
    W->storm_pending--;
    W->r->t_last_resumed = now;
}

static void storm_visitor_frame(worker *W, ld_conn *c, const char *type, const char *p, size_t n, uint64_t now)
{
    vst *v = vs_of(W, c);
    if (strcmp(type, "message.created") == 0) {
        on_message_created_visitor(W, c, p, n, now);
        if (W->phase >= 3 && v->resumed && v->storm_acked && v->storm_seen && v->storm_seq && v->resumed == 1) {
            v->resumed = 2;
            storm_done_one(W, v, now);
        }
    } else if (strcmp(type, "welcome") == 0) {
        char tok[1024];
        if (ld_json_str(p, n, "token", tok, sizeof tok) > 0) {
            free(v->token);
            v->token = strdup(tok);
        }
        if (!v->welcomed) {
            v->welcomed = 1;
            settle(W, c);
            if (W->phase < 3) {
                char buf[256];
                int k = snprintf(buf, sizeof buf,
                                 "{\"type\":\"conversation.start\",\"rid\":\"s\",\"form\":{\"subject\":\"v%u\","
                                 "\"message\":\"hi\"}}",
                                 c->idx);
                send_json(W, c, buf, k);
            }
        }
    } else if (strcmp(type, "ok") == 0) {
        char rid[24];
        if (ld_json_str(p, n, "rid", rid, sizeof rid) <= 0)
            return;
        if (rid[0] == 's') {
            const char *conv = ld_memmem(p, n, "\"conversation\":", 15);
            if (!conv)
                return;
            size_t rest = n - (size_t)(conv - p);
            ld_json_str(conv, rest, "id", v->cid, sizeof v->cid);
            ld_json_str(conv, rest, "epoch", v->epoch, sizeof v->epoch);
            const char *msg = ld_memmem(p, n, "\"message\":{", 11);
            int64_t seq = 0;
            if (msg && ld_json_int(msg, n - (size_t)(msg - p), "seq", &seq) == 0) {
                v->start_seq = seq;
                if (seq > v->last_seq)
                    v->last_seq = seq;
            }
            v->started = 1;
            W->visitors_ready++;
        } else if (rid[0] == 'r') {
            int64_t seq = 0;
            ld_json_int(p, n, "seq", &seq);
            v->storm_seq = seq;
            v->storm_acked = 1;
            if (v->resumed == 1 && v->storm_seen) {
                v->resumed = 2;
                storm_done_one(W, v, now);
            }
        }
    } else if (strcmp(type, "resumed") == 0) {
        if (ld_memmem(p, n, "\"recovered\":false", 17))
            W->r->recovered_false++;
        if (!v->resumed) {
            v->resumed = 1;
            W->r->resumed++;
            ld_hist_add(&W->r->lat, now - v->t_drop);
            if (W->o->storm_send) {
                char buf[256];
                int k =
                    snprintf(buf, sizeof buf,
                             "{\"type\":\"message.send\",\"rid\":\"r\",\"conversation_id\":\"%s\",\"client_msg_id\":"
                             "\"s%u\",\"body\":\"storm\"}",
                             v->cid, c->idx);
                send_json(W, c, buf, k);
            } else {
                v->resumed = 2;
                storm_done_one(W, v, now);
            }
        }
    } else if (strcmp(type, "error") == 0) {
        count_error(W, p, n);
    }
}

static void on_frame(ld_loop *l, ld_conn *c, char *p, size_t n, uint64_t now)
{
    worker *W = l->ud;
    char type[40];
    if (ld_frame_type(p, n, type, sizeof type) <= 0)
        return;
    switch (W->o->sc) {
    case SC_CHAT:
        if (is_visitor(W, c))
            chat_visitor_frame(W, c, type, p, n, now);
        else
            chat_agent_frame(W, c, type, p, n, now);
        break;
    case SC_FANOUT:
        if (is_visitor(W, c))
            fan_visitor_frame(W, c, type, p, n, now);
        else
            fan_agent_frame(W, c, type, p, n, now);
        break;
    case SC_IDLE:
        idle_visitor_frame(W, c, type, p, n, now);
        break;
    case SC_STORM:
        storm_visitor_frame(W, c, type, p, n, now);
        break;
    }
}

static void on_open(ld_loop *l, ld_conn *c)
{
    worker *W = l->ud;
    if (is_visitor(W, c))
        visitor_hello(W, c);
    else
        agent_hello(W, c);
}

static void on_close(ld_loop *l, ld_conn *c, int code, const char *why)
{
    worker *W = l->ud;
    (void)why;
    bool was_pending = c->pending;
    settle(W, c);
    if (W->o->sc == SC_STORM && W->phase >= 3) {
        vst *v = vs_of(W, c);
        if (v->t_next == UINT64_MAX)
            return; /* our own drop */
        if (v->resumed == 2 || W->phase >= 5)
            return;
        /* refused or cut while coming back: retry with capped full jitter */
        W->r->retries++;
        if (v->retries < 255)
            v->retries++;
        v->resumed = 0;
        v->welcomed = 0;
        uint64_t cap = 100 * MS << (v->retries < 5 ? v->retries : 5);
        if (cap > 2000 * MS)
            cap = 2000 * MS;
        v->t_next = ld_now_ns() + (uint64_t)ld_rand(l) % cap;
        return;
    }
    if (W->phase < 2 && was_pending && c->attempts < 5) {
        /* refused or failed while setting up (a node that does not know the site yet,
         * a full backlog): try again a little later */
        W->r->retries++;
        W->retry[W->nretry++] = (int)(c - W->conns);
        return;
    }
    if (W->phase < 5) {
        W->r->closes++;
        if (code != 1000 && code != 1001)
            W->r->close_codes_other++;
    }
}

/* ---------- phases ---------- */

static void open_conn(worker *W, ld_conn *c, uint64_t now)
{
    const char *path = c->role == 'v' ? "/ws/visitor" : "/ws/agent";
    if (!W->r->t_first)
        W->r->t_first = now;
    c->attempts++;
    if (ld_conn_start(&W->loop, c, c->node, c->src, path) == 0) {
        c->pending = 1;
        W->inflight++;
    } else if (c->attempts < 5) {
        W->retry[W->nretry++] = (int)(c - W->conns);
    }
}

static void prep_connect(worker *W, uint64_t now)
{
    /* agents first (so conversations get assigned at start), then visitors */
    int limit = W->phase == 0 ? W->nagents : W->nconns;
    if (W->nretry && W->inflight < W->o->window) {
        if (!W->retry_at) {
            W->retry_at = now + 200 * MS;
        } else if (now >= W->retry_at) {
            W->retry_at = 0;
            int n = W->nretry;
            W->nretry = 0;
            for (int i = 0; i < n; i++)
                open_conn(W, &W->conns[W->retry[i]], now);
        }
        ld_loop_wake_at(&W->loop, now + 200 * MS);
    }
    while (W->next_connect < limit && W->inflight < W->o->window)
        open_conn(W, &W->conns[W->next_connect++], now);
}

static int connected_open(worker *W)
{
    int n = 0;
    for (int i = 0; i < W->nconns; i++)
        if (W->conns[i].state == LD_C_OPEN)
            n++;
    return n;
}

static void prep_tick(worker *W, uint64_t now)
{
    if (W->phase == 0) {
        prep_connect(W, now);
        if (W->agents_ready >= W->nagents)
            W->phase = 1;
        else
            return;
    }
    if (W->phase == 1) {
        prep_connect(W, now);
        bool done = W->visitors_ready >= W->nvisitors && W->next_connect >= W->nconns;
        if (done && W->o->sc == SC_CHAT)
            done = W->r->assigned >= (uint64_t)W->nvisitors;
        if (done && W->o->sc == SC_STORM) {
            for (int i = 0; i < W->nvisitors && done; i++)
                if (W->vs[i].last_seq < 2)
                    done = false; /* the auto-acknowledgement has not arrived yet */
        }
        if (done) {
            W->phase = 2;
            W->r->conns_open = (uint64_t)connected_open(W);
            for (int i = 0; i < W->nconns; i++)
                if (W->conns[i].state == LD_C_OPEN)
                    W->r->conns_per_node[W->conns[i].node]++;
            if (!W->r->t_all_open || W->o->sc != SC_IDLE)
                W->r->t_all_open = now;
            __atomic_store_n(&W->r->ready, 1, __ATOMIC_RELEASE);
        }
    }
}

static void storm_drop_all(worker *W, uint64_t now)
{
    for (int i = 0; i < W->nvisitors; i++) {
        ld_conn *c = &W->conns[W->nagents + i];
        vst *v = &W->vs[i];
        if (W->o->storm_send && c->state == LD_C_OPEN) {
            char buf[256];
            int k = snprintf(buf, sizeof buf,
                             "{\"type\":\"message.send\",\"rid\":\"x\",\"conversation_id\":\"%s\",\"client_msg_id\":"
                             "\"s%d\",\"body\":\"storm\"}",
                             v->cid, i);
            send_json(W, c, buf, k);
        }
    }
    for (int i = 0; i < W->nvisitors; i++) {
        ld_conn *c = &W->conns[W->nagents + i];
        vst *v = &W->vs[i];
        v->t_next = UINT64_MAX; /* marks our own drop for on_close */
        ld_conn_close(&W->loop, c, 1006, true);
        v->t_drop = now;
        v->resumed = 0;
        v->welcomed = 0;
        uint64_t j = W->o->jitter_ms > 0 ? (uint64_t)ld_rand(&W->loop) % ((uint64_t)W->o->jitter_ms * MS) : 0;
        v->t_next = now + j;
    }
    W->inflight = 0;
    W->storm_pending = W->nvisitors;
}

static void storm_tick(worker *W, uint64_t now)
{
    /* start reconnects whose time has come, keeping at most window handshakes in flight */
    int scanned = 0;
    while (W->inflight < W->o->window && scanned < W->nvisitors) {
        int i = W->reconnect_cursor;
        W->reconnect_cursor = (W->reconnect_cursor + 1) % W->nvisitors;
        scanned++;
        ld_conn *c = &W->conns[W->nagents + i];
        vst *v = &W->vs[i];
        if (c->fd >= 0 || v->resumed == 2 || v->t_next == UINT64_MAX || v->t_next > now)
            continue;
        /* like a client behind a load balancer: the next attempt may land on another node */
        int node = (c->node + (v->retries ? 1 : 0)) % W->loop.ntargets;
        if (ld_conn_start(&W->loop, c, node, c->src, "/ws/visitor") == 0) {
            c->pending = 1;
            W->inflight++;
            v->t_next = UINT64_MAX - 1; /* in progress */
        } else {
            v->t_next = now + 50 * MS;
        }
    }
    uint64_t soonest = UINT64_MAX;
    if (W->inflight < W->o->window)
        for (int i = 0; i < W->nvisitors; i++)
            if (W->vs[i].t_next < soonest && W->conns[W->nagents + i].fd < 0)
                soonest = W->vs[i].t_next;
    if (soonest != UINT64_MAX)
        ld_loop_wake_at(&W->loop, soonest > now ? soonest : now);
}

static void run_tick(worker *W, uint64_t now)
{
    switch (W->o->sc) {
    case SC_IDLE:
        if (now >= W->t_send_end)
            W->phase = 5;
        break;
    case SC_CHAT:
    case SC_FANOUT: {
        if (now >= W->t_send_end) {
            W->phase = 4;
            break;
        }
        int nsend = W->o->sc == SC_CHAT ? W->nvisitors : W->senders;
        if (nsend <= 0 || W->rate_w <= 0) {
            W->phase = 4;
            break;
        }
        for (int burst = 0; burst < 4096; burst++) {
            uint64_t t_sched = W->t_go + (uint64_t)((double)W->k_next * 1e9 / W->rate_w);
            if (t_sched > now) {
                ld_loop_wake_at(&W->loop, t_sched);
                break;
            }
            if (t_sched >= W->t_send_end) {
                W->phase = 4;
                break;
            }
            uint64_t k = W->k_next++;
            uint64_t t = ld_now_ns();
            if (W->o->sc == SC_CHAT) {
                chat_send(W, (int)(k % (uint64_t)nsend), t_sched, t);
            } else {
                if (k >= W->fan_max) {
                    W->phase = 4;
                    break;
                }
                fan_send(W, (int)(k % (uint64_t)nsend), k, t_sched, t);
            }
        }
        break;
    }
    case SC_STORM:
        storm_tick(W, now);
        if (W->storm_pending <= 0)
            W->phase = 5;
        break;
    }
}

static bool drained(worker *W)
{
    if (W->o->sc == SC_CHAT) {
        for (int i = 0; i < W->nvisitors; i++) {
            vst *v = &W->vs[i];
            if (v->acked < v->sent || v->a_recv < v->acked || v->echo < v->acked)
                return false;
        }
        return true;
    }
    if (W->o->sc == SC_FANOUT) {
        uint64_t total = 0;
        for (int i = 0; i < W->P; i++) {
            if (!__atomic_load_n(&W->sh->w[i].sent_done, __ATOMIC_ACQUIRE) && !W->sh->w[i].failed)
                return false; /* someone may still start events */
            total += __atomic_load_n(&W->sh->w[i].events, __ATOMIC_RELAXED);
        }
        return W->r->deliveries >= total * (uint64_t)W->nagents;
    }
    return true;
}

static void finish(worker *W)
{
    ld_wres *r = W->r;
    if (W->o->sc == SC_CHAT) {
        for (int i = 0; i < W->nvisitors; i++) {
            vst *v = &W->vs[i];
            if (v->sent > v->acked)
                r->unacked += v->sent - v->acked;
            if (v->acked > v->a_recv)
                r->lost += v->acked - v->a_recv;
            if (v->acked > v->echo)
                r->lost_echo += v->acked - v->echo;
        }
    } else if (W->o->sc == SC_STORM) {
        for (int i = 0; i < W->nvisitors; i++) {
            vst *v = &W->vs[i];
            if (!v->resumed)
                r->resume_fail++;
            else if (W->o->storm_send && v->storm_acked && !v->storm_seen)
                r->storm_lost++;
            else if (W->o->storm_send && !v->storm_acked)
                r->unacked++;
        }
    }
    r->connect_errors = W->loop.connect_errors;
    r->upgrade_errors = W->loop.upgrade_errors;
    r->io_errors = W->loop.io_errors;
    r->bytes_in = W->loop.bytes_in;
    r->bytes_out = W->loop.bytes_out;
    r->frames_in = W->loop.frames_in;
    r->frames_out = W->loop.frames_out;
}

static void on_tick(ld_loop *l, uint64_t now)
{
    worker *W = l->ud;
    if (W->phase >= 3) {
        if (!W->r->cpu_us[1] && now >= W->t_win0)
            W->r->cpu_us[1] = ld_self_cpu_us();
        if (!W->r->cpu_us[2] && now >= W->t_win1)
            W->r->cpu_us[2] = ld_self_cpu_us();
    }
    if (now >= W->deadline && W->phase < 5) {
        char msg[160];
        snprintf(msg, sizeof msg, "timed out in phase %d (agents %d/%d, visitors %d/%d, assigned %" PRIu64 ")",
                 W->phase, W->agents_ready, W->nagents, W->visitors_ready, W->nvisitors, W->r->assigned);
        if (W->phase < 3)
            fail(W, msg);
        W->phase = 5;
        return;
    }
    if (__atomic_load_n(&W->sh->stop, __ATOMIC_ACQUIRE) && W->phase < 5) {
        if (W->phase < 3)
            fail(W, "stopped by the parent before the run");
        W->phase = 5;
        return;
    }
    switch (W->phase) {
    case 0:
    case 1:
        prep_tick(W, now);
        break;
    case 2:
        if (__atomic_load_n(&W->sh->go, __ATOMIC_ACQUIRE)) {
            W->t_go = W->sh->t_go;
            W->t_win0 = W->t_go + (uint64_t)(W->o->warmup * 1e9);
            W->t_win1 = W->t_win0 + (uint64_t)(W->o->duration * 1e9);
            W->t_send_end = W->t_win1;
            W->t_drain_end = W->t_send_end + (uint64_t)(W->o->drain * 1e9);
            W->phase = 3;
            W->r->cpu_us[0] = ld_self_cpu_us();
            if (W->o->sc == SC_STORM) {
                storm_drop_all(W, now);
                W->t_drain_end = now + (uint64_t)(W->o->duration * 1e9) + (uint64_t)(W->o->drain * 1e9);
            }
        }
        break;
    case 3:
        run_tick(W, now);
        if (W->o->sc == SC_STORM && now >= W->t_drain_end)
            W->phase = 5;
        break;
    case 4:
        if (!W->r->sent_done)
            __atomic_store_n(&W->r->sent_done, 1, __ATOMIC_RELEASE);
        if (drained(W) || now >= W->t_drain_end)
            W->phase = 5;
        break;
    default:
        break;
    }
}

static int setup(worker *W)
{
    const ld_opts *o = W->o;
    int P = W->P, w = W->w;
    int nt = o->ntargets;
    int na = 0, nv = 0;
    int a0 = 0; /* first global agent connection index of this worker */
    int v0 = 0;
    switch (o->sc) {
    case SC_IDLE:
    case SC_STORM:
        nv = share(o->conns, P, w);
        v0 = share_start(o->conns, P, w);
        break;
    case SC_CHAT:
        na = share(o->agents, P, w);
        nv = share(o->visitors, P, w);
        v0 = share_start(o->visitors, P, w);
        a0 = share_start(o->agents, P, w);
        break;
    case SC_FANOUT: {
        int acc_n = share(o->agents, P, w);
        na = acc_n * o->agent_conns;
        a0 = share_start(o->agents, P, w) * o->agent_conns;
        nv = share(o->visitors, P, w);
        v0 = share_start(o->visitors, P, w);
        break;
    }
    }
    W->nagents = na;
    W->nvisitors = nv;
    W->nconns = na + nv;
    W->senders = nv;
    W->conns = calloc((size_t)W->nconns + 1, sizeof *W->conns);
    W->vs = calloc((size_t)nv + 1, sizeof *W->vs);
    W->agent_acc = calloc((size_t)na + 1, sizeof *W->agent_acc);
    W->map_cap = 1024;
    while (W->map_cap < (size_t)nv * 4)
        W->map_cap *= 2;
    W->map_key = calloc(W->map_cap, sizeof *W->map_key);
    W->map_val = calloc(W->map_cap, sizeof *W->map_val);
    W->retry = calloc((size_t)W->nconns + 1, sizeof *W->retry);
    if (!W->retry || !W->conns || !W->vs || !W->agent_acc || !W->map_key || !W->map_val)
        return -1;
    W->r->agent_conns = (uint64_t)na;
    /* accounts: chat has one site per worker and its agents; fanout one site and all agents */
    int acc_first = 0;
    if (o->sc == SC_CHAT) {
        acc_first = P + a0; /* acc[0..P) are the workers' sites (no token) */
        W->site = W->acc[w].site;
    } else if (o->sc == SC_FANOUT) {
        acc_first = 1 + share_start(o->agents, P, w);
        W->site = W->acc[0].site;
    } else {
        W->site = W->acc[w].site;
    }
    for (int i = 0; i < na; i++) {
        ld_conn *c = &W->conns[i];
        c->fd = -1;
        c->role = 'a';
        c->idx = (uint32_t)i;
        if (o->sc == SC_CHAT) {
            W->agent_acc[i] = acc_first + i;
            c->node = (w + 1) % nt; /* agents of this worker's site on the next node */
        } else {
            W->agent_acc[i] = acc_first + i / o->agent_conns;
            c->node = (a0 + i) % nt;
        }
        c->src = src_of(o, a0 + i);
    }
    for (int i = 0; i < nv; i++) {
        ld_conn *c = &W->conns[na + i];
        c->fd = -1;
        c->role = 'v';
        c->idx = (uint32_t)i;
        if (o->sc == SC_CHAT)
            c->node = w % nt;
        else
            c->node = (v0 + i) % nt;
        c->src = src_of(o, (o->sc == SC_FANOUT ? o->agents * o->agent_conns : 0) + v0 + i);
    }
    if (o->sc == SC_CHAT) {
        size_t pn = (size_t)(o->body > 32 ? o->body - 32 : 0);
        if (pn >= sizeof W->pad)
            pn = sizeof W->pad - 1;
        memset(W->pad, 'x', pn);
        W->pad[pn] = '\0';
        W->padn = pn;
        W->rate_w = o->visitors ? o->rate * (double)nv / (double)o->visitors : 0;
    } else if (o->sc == SC_FANOUT) {
        W->rate_w = o->rate / (double)P;
        if (nv == 0)
            W->rate_w = 0;
        W->fan_max = W->sh->fan_max_events;
        W->fan = ld_fan_table(W->sh, w);
    }
    W->phase = na ? 0 : 1;
    return 0;
}

int ld_worker(const ld_opts *o, ld_shared *sh, int w, const ld_account *acc, int nacc)
{
    worker *W = calloc(1, sizeof *W);
    if (!W)
        return 1;
    W->o = o;
    W->sh = sh;
    W->r = &sh->w[w];
    W->w = w;
    W->P = sh->nworkers;
    W->acc = acc;
    W->nacc = nacc;
    W->t_start = ld_now_ns();
    W->deadline = W->t_start + (uint64_t)o->timeout_s * NS;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (setup(W) != 0) {
        fail(W, "out of memory");
        return 1;
    }
    W->r->conns_target = (uint64_t)W->nconns;
    ld_callbacks cb = {on_open, on_frame, on_close, on_tick};
    if (ld_loop_init(&W->loop, o->targets, o->ntargets, o->origin, &cb, W) != 0) {
        fail(W, strerror(errno));
        return 1;
    }
    W->loop.rng ^= (uint32_t)w * 2654435761u;
    while (W->phase < 5) {
        uint64_t wait = W->phase == 2 ? 2 * MS : 50 * MS;
        if (W->phase == 3 && (o->sc == SC_CHAT || o->sc == SC_FANOUT))
            wait = 5 * MS;
        ld_loop_run_once(&W->loop, wait);
    }
    W->r->cpu_us[3] = ld_self_cpu_us();
    if (!W->r->cpu_us[2])
        W->r->cpu_us[2] = W->r->cpu_us[3];
    if (!W->r->cpu_us[1])
        W->r->cpu_us[1] = W->r->cpu_us[0];
    finish(W);
    /* leave politely: close frames, then give the server a moment to answer */
    for (int i = 0; i < W->nconns; i++)
        if (W->conns[i].fd >= 0)
            ld_conn_close(&W->loop, &W->conns[i], 1000, false);
    uint64_t until = ld_now_ns() + 300 * MS;
    while (ld_now_ns() < until) {
        int open = 0;
        for (int i = 0; i < W->nconns; i++)
            open += W->conns[i].fd >= 0;
        if (!open)
            break;
        ld_loop_run_once(&W->loop, 20 * MS);
    }
    for (int i = 0; i < W->nconns; i++)
        if (W->conns[i].fd >= 0)
            ld_conn_close(&W->loop, &W->conns[i], 1000, true);
    __atomic_store_n(&W->r->done, 1, __ATOMIC_RELEASE);
    ld_loop_free(&W->loop);
    return W->r->failed ? 1 : 0;
}
