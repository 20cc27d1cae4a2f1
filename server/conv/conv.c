/* Domain operations: argument lists for the scripts, and their JSON replies parsed
 * into cd_conv_result. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "chatdesk/clock.h"
#include "chatdesk/conv.h"
#include "chatdesk/log.h"

typedef struct call {
    cd_conv_cb cb;
    void *ud;
} call;

static char *dump(json_t *v)
{
    return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

static void take_str(char *dst, size_t n, json_t *v)
{
    if (json_is_string(v))
        cd_strlcpy(dst, json_string_value(v), n);
}

static void add_conv(cd_conv_result *r, json_t *c)
{
    if (!json_is_object(c))
        return;
    r->convs = cd_realloc(r->convs, (r->n_convs + 1) * sizeof *r->convs);
    cd_conv_ref *ref = &r->convs[r->n_convs++];
    memset(ref, 0, sizeof *ref);
    take_str(ref->id, sizeof ref->id, json_object_get(c, "id"));
    take_str(ref->epoch, sizeof ref->epoch, json_object_get(c, "epoch"));
    take_str(ref->site, sizeof ref->site, json_object_get(c, "site"));
    ref->last_seq = json_integer_value(json_object_get(c, "last_seq"));
}

static char **str_array(json_t *a, size_t *n)
{
    *n = 0;
    if (!json_is_array(a))
        return NULL;
    char **out = cd_calloc(json_array_size(a) + 1, sizeof *out);
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (json_is_string(v))
            out[(*n)++] = cd_strdup(json_string_value(v));
    }
    return out;
}

static void free_strs(char **a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cd_free(a[i]);
    cd_free(a);
}

void cd_conv_sites_free(cd_conv_site *sites, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cd_free(sites[i].key);
        cd_free(sites[i].secret);
        cd_free(sites[i].intervals);
        free_strs(sites[i].origins, sites[i].n_origins);
    }
    cd_free(sites);
}

static void result_cleanup(cd_conv_result *r)
{
    free(r->message);
    free(r->raw_conversation);
    free(r->raw_message);
    free(r->raw_visitor);
    free(r->raw_agent);
    free(r->raw_conversations);
    free(r->raw_messages);
    free(r->raw_queue);
    free(r->raw_site_config);
    free_strs(r->items, r->n_items);
    for (size_t i = 0; i < r->n_assigned; i++)
        free(r->assigned[i].raw);
    cd_free(r->assigned);
    cd_free(r->keys);
    cd_conv_sites_free(r->sites, r->n_sites);
    cd_free(r->convs);
    free_strs(r->agent_sites, r->n_agent_sites);
    free_strs(r->frames, r->n_frames);
    free_strs(r->changed, r->n_changed);
    cd_free(r->pw);
}

static void parse_ok(cd_conv_result *r, json_t *root)
{
    json_t *v;
    if ((v = json_object_get(root, "conversation")) && json_is_object(v)) {
        r->raw_conversation = dump(v);
        add_conv(r, v);
        r->last_seq = json_integer_value(json_object_get(v, "last_seq"));
        take_str(r->epoch, sizeof r->epoch, json_object_get(v, "epoch"));
    }
    if ((v = json_object_get(root, "message")) && json_is_object(v)) {
        r->raw_message = dump(v);
        r->seq = json_integer_value(json_object_get(v, "seq"));
    }
    if ((v = json_object_get(root, "visitor"))) {
        r->raw_visitor = dump(v);
        take_str(r->visitor_id, sizeof r->visitor_id, json_object_get(v, "id"));
    }
    if ((v = json_object_get(root, "agent"))) {
        r->raw_agent = dump(v);
        take_str(r->agent_id, sizeof r->agent_id, json_object_get(v, "id"));
        take_str(r->agent_name, sizeof r->agent_name, json_object_get(v, "name"));
        take_str(r->agent_role, sizeof r->agent_role, json_object_get(v, "role"));
        r->agent_sites = str_array(json_object_get(v, "sites"), &r->n_agent_sites);
    }
    if ((v = json_object_get(root, "conversations")) && json_is_array(v)) {
        r->raw_conversations = dump(v);
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c) add_conv(r, c);
    }
    if ((v = json_object_get(root, "messages")))
        r->raw_messages = dump(v);
    if ((v = json_object_get(root, "queue")))
        r->raw_queue = dump(v);
    if ((v = json_object_get(root, "site_config")))
        r->raw_site_config = dump(v);
    if ((v = json_object_get(root, "timers"))) {
        r->items = str_array(v, &r->n_items);
        json_t *nx = json_object_get(root, "next");
        r->next_due = json_is_integer(nx) ? json_integer_value(nx) : -1;
    }
    if ((v = json_object_get(root, "site_keys")))
        r->items = str_array(v, &r->n_items);
    if ((v = json_object_get(root, "changed")) && json_is_array(v))
        r->changed = str_array(v, &r->n_changed);
    if ((v = json_object_get(root, "pw")) && json_is_string(v))
        r->pw = cd_strdup(json_string_value(v));
    r->fails = json_integer_value(json_object_get(root, "fails"));
    r->token_epoch = json_integer_value(json_object_get(root, "token_epoch"));
    r->retry_ms = json_integer_value(json_object_get(root, "retry_ms"));
    if ((v = json_object_get(root, "last_seq")) && json_is_integer(v))
        r->last_seq = json_integer_value(v);
    if ((v = json_object_get(root, "seq")) && json_is_integer(v))
        r->seq = json_integer_value(v);
    if ((v = json_object_get(root, "epoch")))
        take_str(r->epoch, sizeof r->epoch, v);
    r->recovered = json_is_true(json_object_get(root, "recovered"));
    r->duplicate = json_is_true(json_object_get(root, "duplicate"));
    r->more = json_is_true(json_object_get(root, "more"));
    r->page_last = json_integer_value(json_object_get(root, "page_last"));
    r->agents_online = json_is_true(json_object_get(root, "agents_online"));
    r->visitor_stored = json_is_true(json_object_get(root, "stored"));
    r->sla = json_is_true(json_object_get(root, "sla"));
    take_str(r->site, sizeof r->site, json_object_get(root, "site"));
    if (!r->site[0] && r->n_convs)
        cd_strlcpy(r->site, r->convs[0].site, sizeof r->site);
    r->frames = str_array(json_object_get(root, "frames"), &r->n_frames);
    if ((v = json_object_get(root, "sites")) && json_is_array(v)) {
        size_t i;
        json_t *s;
        r->sites = cd_calloc(json_array_size(v) + 1, sizeof *r->sites);
        json_array_foreach(v, i, s)
        {
            cd_conv_site *site = &r->sites[r->n_sites];
            if (!json_is_string(json_object_get(s, "key")))
                continue;
            site->key = cd_strdup(json_string_value(json_object_get(s, "key")));
            json_t *sec = json_object_get(s, "identity_secret");
            site->secret = cd_strdup(json_is_string(sec) ? json_string_value(sec) : "");
            site->origins = str_array(json_object_get(s, "origins"), &site->n_origins);
            json_t *sla = json_object_get(s, "sla");
            char err[160];
            json_t *cal = NULL;
            if (json_is_string(sla) && json_string_length(sla) > 0) {
                json_t *cfgj = json_loads(json_string_value(sla), 0, NULL);
                cal = json_object_get(cfgj, "calendar");
                char *caltext = cal ? json_dumps(cal, JSON_COMPACT) : NULL;
                if (cd_sla_calendar_parse(caltext, &site->calendar, err, sizeof err) != 0) {
                    cd_log_warn("site %s: bad SLA calendar (%s); counting 24x7", site->key, err);
                    cd_sla_calendar_parse(NULL, &site->calendar, err, sizeof err);
                }
                free(caltext);
                json_decref(cfgj);
            } else {
                cd_sla_calendar_parse(NULL, &site->calendar, err, sizeof err);
            }
            r->n_sites++;
        }
    }
    if ((v = json_object_get(root, "assigned")) && json_is_array(v) && json_array_size(v) > 0) {
        size_t i;
        json_t *x;
        r->assigned = cd_calloc(json_array_size(v), sizeof *r->assigned);
        json_array_foreach(v, i, x)
        {
            cd_conv_assigned *as = &r->assigned[r->n_assigned];
            json_t *c = json_object_get(x, "conversation");
            if (!json_is_object(c))
                continue;
            take_str(as->agent_id, sizeof as->agent_id, json_object_get(x, "agent"));
            take_str(as->conv.id, sizeof as->conv.id, json_object_get(c, "id"));
            take_str(as->conv.site, sizeof as->conv.site, json_object_get(c, "site"));
            as->conv.last_seq = json_integer_value(json_object_get(c, "last_seq"));
            as->raw = dump(c);
            r->n_assigned++;
        }
    }
    if ((v = json_object_get(root, "keys")) && json_is_object(v)) {
        const char *k;
        json_t *hex;
        r->keys = cd_calloc(json_object_size(v) + 1, sizeof *r->keys);
        json_object_foreach(v, k, hex)
        {
            if (!json_is_string(hex))
                continue;
            cd_strlcpy(r->keys[r->n_keys].kid, k, sizeof r->keys[r->n_keys].kid);
            cd_strlcpy(r->keys[r->n_keys].hex, json_string_value(hex), sizeof r->keys[r->n_keys].hex);
            r->n_keys++;
        }
    }
}

/* A script's reply (root: its JSON, taken; NULL when there is none) as a cd_conv_result
 * for cb. */
static void deliver(cd_conv_cb cb, void *ud, cd_err err, json_t *root)
{
    cd_conv_result r;
    memset(&r, 0, sizeof r);
    r.err = err;
    if (err == CD_ERR_OK) {
        if (!json_is_object(root)) {
            cd_log_error("script reply is not a JSON object");
            r.err = CD_ERR_INTERNAL;
        } else {
            parse_ok(&r, root);
        }
    } else if (root && json_is_object(root)) {
        json_t *m = json_object_get(root, "message");
        if (json_is_string(m))
            r.message = strdup(json_string_value(m));
    }
    json_decref(root);
    cb(ud, &r);
    result_cleanup(&r);
}

static void on_reply(void *ud, cd_err err, const char *json, size_t len)
{
    call *c = ud;
    deliver(c->cb, c->ud, err, json ? json_loadb(json, len, 0, NULL) : NULL);
    cd_free(c);
}

static int run(cd_store *st, const char *script, int nkeys, const char *const *keys, int n, const char *const *args,
               cd_conv_cb cb, void *ud)
{
    call *c = cd_malloc(sizeof *c);
    c->cb = cb;
    c->ud = ud;
    if (cd_store_fcall(st, script, nkeys, keys, n, args, NULL, on_reply, c) != 0) {
        cd_free(c);
        return -1;
    }
    return 0;
}

#define I64(buf, v) (snprintf(buf, sizeof buf, "%lld", (long long)(v)), buf)

/* Calls about one conversation declare its key (in the site its id names, else in site). */
static int run_conv(cd_store *st, const char *script, const char *site, const char *cid, int n, const char *const *args,
                    cd_conv_cb cb, void *ud)
{
    cd_key k;
    const char *keys[] = {cd_key_conv(&k, cd_store_prefix(st), site, cid)};
    return run(st, script, 1, keys, n, args, cb, ud);
}

int cd_conv_visitor_hello(cd_store *st, const cd_config *cfg, const char *site, const char *vid, const char *user_id,
                          const cd_req *hello, cd_conv_cb cb, void *ud)
{
    char new_vid[64], now[24];
    (void)cfg;
    cd_id_new("v", new_vid, sizeof new_vid);
    const char *args[] = {site,
                          vid ? vid : "",
                          user_id ? user_id : "",
                          hello->user_name,
                          hello->user_email,
                          new_vid,
                          I64(now, cd_now_ms()),
                          "20",
                          hello->page_url,
                          hello->page_title,
                          hello->page_referrer,
                          hello->attributes_json};
    cd_key k;
    const char *keys[] = {cd_key_site(&k, cd_store_prefix(st), site, "")};
    return run(st, "visitor_hello", 1, keys, 12, args, cb, ud);
}

static void profile_set(json_t *o, const char *k, const char *v)
{
    if (v && *v)
        json_object_set_new(o, k, json_string(v));
}

char *cd_conv_visitor_profile(const cd_req *hello)
{
    json_t *o = json_object();
    profile_set(o, "name", hello->user_name);
    profile_set(o, "email", hello->user_email);
    profile_set(o, "page_url", hello->page_url);
    profile_set(o, "page_title", hello->page_title);
    profile_set(o, "referrer", hello->page_referrer);
    profile_set(o, "attributes", hello->attributes_json);
    char *out = NULL;
    if (json_object_size(o) > 0) {
        char *s = json_dumps(o, JSON_COMPACT);
        out = s ? cd_strdup(s) : NULL;
        free(s);
    }
    json_decref(o);
    return out;
}

int cd_conv_start(cd_store *st, const cd_config *cfg, const char *site, const char *vid, const cd_req *req,
                  const char *intervals, const char *profile, cd_conv_cb cb, void *ud)
{
    char cid[128], epoch[40], msg_id[64], ack_id[64], ticket_id[64], now[24], retain[24];
    cd_id_new("m", ticket_id, sizeof ticket_id);
    /* the id names its site, so any call that knows only the id knows its slot */
    char rnd[40];
    cd_id_new("c", rnd, sizeof rnd);
    snprintf(cid, sizeof cid, "%s.%s", rnd, site);
    cd_random_hex(epoch, 8);
    cd_id_new("m", msg_id, sizeof msg_id);
    cd_id_new("m", ack_id, sizeof ack_id);
    const char *args[] = {site,
                          vid,
                          cid,
                          epoch,
                          I64(now, cd_now_ms()),
                          req->form_name,
                          req->form_email,
                          req->form_category,
                          req->form_priority ? cd_proto_priority_name(req->form_priority) : "",
                          req->form_subject,
                          req->form_message,
                          msg_id,
                          req->form_client_msg_id,
                          I64(retain, cfg->history_retain),
                          ack_id,
                          req->form_locale ? req->form_locale : "en",
                          intervals ? intervals : "*",
                          ticket_id,
                          profile ? profile : ""};
    cd_key ks, kc;
    const char *keys[] = {cd_key_site(&ks, cd_store_prefix(st), site, ""),
                          cd_key_conv(&kc, cd_store_prefix(st), site, cid)};
    call *c = cd_malloc(sizeof *c);
    c->cb = cb;
    c->ud = ud;
    if (cd_store_fcall_durable(st, "conv_start", 2, keys, 19, args, NULL, on_reply, c) != 0) {
        cd_free(c);
        return -1;
    }
    return 0;
}

typedef struct send_call {
    cd_conv_sent_cb cb;
    void *ud;
    cd_proto_msg msg; /* its strings live in text[] */
    char text[];
} send_call;

static void on_sent(void *ud, cd_err err, const char *json, size_t len)
{
    send_call *c = ud;
    cd_conv_sent r;
    memset(&r, 0, sizeof r);
    r.err = err;
    r.msg = c->msg;
    json_error_t e;
    json_t *root = json ? json_loadb(json, len, 0, &e) : NULL;
    char *raw = NULL;
    if (err != CD_ERR_OK) {
        r.error = json_string_value(json_object_get(root, "message"));
    } else if (!json_is_object(root)) {
        cd_log_error("msg_send reply is not a JSON object");
        r.err = CD_ERR_INTERNAL;
    } else if (json_is_true(json_object_get(root, "duplicate"))) {
        json_t *m = json_object_get(root, "message");
        r.duplicate = true;
        r.msg.seq = json_integer_value(json_object_get(m, "seq"));
        raw = dump(m);
        r.raw_message = raw ? raw : "null";
    } else {
        json_t *name = json_object_get(root, "name");
        r.msg.seq = json_integer_value(json_object_get(root, "seq"));
        r.msg.name = json_is_string(name) ? json_string_value(name) : "";
        r.msg.name_len = json_is_string(name) ? json_string_length(name) : 0;
        r.sla = json_is_true(json_object_get(root, "sla"));
        take_str(r.site, sizeof r.site, json_object_get(root, "site"));
    }
    c->cb(c->ud, &r);
    free(raw);
    json_decref(root);
    cd_free(c);
}

/* copies s into the call's text and points *dst at it */
static char *keep(char *p, const char *s, size_t n, const char **dst, size_t *dlen)
{
    memcpy(p, s, n);
    p[n] = '\0';
    *dst = p;
    *dlen = n;
    return p + n + 1;
}

int cd_conv_send(cd_store *st, const cd_config *cfg, const cd_conv_author *a, const char *sites, const char *intervals,
                 const cd_req *req, cd_conv_sent_cb cb, void *ud)
{
    char msg_id[64], now[24], retain[24];
    cd_id_new("m", msg_id, sizeof msg_id);
    size_t lc = strlen(req->conversation_id), li = strlen(msg_id), lk = strlen(a->kind), la = strlen(a->id);
    size_t lm = strlen(req->client_msg_id), ln = strlen(a->name);
    send_call *c = cd_malloc(sizeof *c + lc + li + lk + la + lm + ln + req->body_len + 7);
    memset(&c->msg, 0, sizeof c->msg);
    c->cb = cb;
    c->ud = ud;
    c->msg.ts = (int64_t)cd_now_ms();
    c->msg.priv = req->is_private;
    char *p = c->text;
    p = keep(p, req->conversation_id, lc, &c->msg.cid, &c->msg.cid_len);
    p = keep(p, msg_id, li, &c->msg.id, &c->msg.id_len);
    p = keep(p, a->kind, lk, &c->msg.kind, &c->msg.kind_len);
    p = keep(p, a->id, la, &c->msg.author, &c->msg.author_len);
    p = keep(p, req->client_msg_id, lm, &c->msg.cmid, &c->msg.cmid_len);
    p = keep(p, a->name, ln, &c->msg.name, &c->msg.name_len);
    keep(p, req->body, req->body_len, &c->msg.body, &c->msg.body_len);
    const char *args[] = {req->conversation_id,
                          a->kind,
                          a->id,
                          a->name,
                          req->client_msg_id,
                          req->body,
                          req->is_private ? "1" : "0",
                          msg_id,
                          I64(now, c->msg.ts),
                          I64(retain, cfg->history_retain),
                          sites ? sites : "",
                          intervals ? intervals : ""};
    size_t lens[] = {lc,
                     lk,
                     la,
                     ln,
                     lm,
                     req->body_len,
                     1,
                     li,
                     strlen(now),
                     strlen(retain),
                     sites ? strlen(sites) : 0,
                     intervals ? strlen(intervals) : 0};
    cd_key k;
    const char *keys[] = {cd_key_conv(&k, cd_store_prefix(st), a->site, req->conversation_id)};
    if (cd_store_fcall_durable(st, "msg_send", 1, keys, 12, args, lens, on_sent, c) != 0) {
        cd_free(c);
        return -1;
    }
    return 0;
}

int cd_conv_history(cd_store *st, const cd_conv_author *a, const char *cid, int64_t before_seq, int limit,
                    cd_conv_cb cb, void *ud)
{
    char b[24], l[24];
    const char *args[] = {cid, a->kind, a->id, I64(b, before_seq), I64(l, limit)};
    return run_conv(st, "history", a->site, cid, 5, args, cb, ud);
}

int cd_conv_resume(cd_store *st, const cd_config *cfg, const cd_conv_author *a, const char *cid, int64_t after_seq,
                   const char *epoch, cd_conv_cb cb, void *ud)
{
    char after[24], max[24], new_epoch[40], page_n[24], page_b[24];
    cd_random_hex(new_epoch, 8);
    int64_t n = cfg->outq_max_frames / 2, b = cfg->outq_max_bytes / 2;
    const char *args[] = {cid,
                          a->kind,
                          a->id,
                          I64(after, after_seq),
                          epoch ? epoch : "",
                          I64(max, cfg->resume_max),
                          new_epoch,
                          I64(page_n, n > 0 ? n : 1),
                          I64(page_b, b > 0 ? b : 1)};
    return run_conv(st, "resume", a->site, cid, 9, args, cb, ud);
}

int cd_conv_typing(cd_store *st, const cd_conv_author *a, const char *cid, bool state, cd_conv_cb cb, void *ud)
{
    const char *args[] = {cid, a->kind, a->id, a->name, state ? "1" : "0"};
    return run_conv(st, "typing", a->site, cid, 5, args, cb, ud);
}

int cd_conv_read(cd_store *st, const cd_conv_author *a, const char *cid, int64_t seq, cd_conv_cb cb, void *ud)
{
    char s[24];
    const char *args[] = {cid, a->kind, a->id, a->name, I64(s, seq)};
    return run_conv(st, "read", a->site, cid, 5, args, cb, ud);
}

int cd_conv_csat(cd_store *st, const char *site, const char *vid, const cd_req *req, cd_conv_cb cb, void *ud)
{
    char score[24], now[24], nps[24] = "", ces[24] = "";
    if (req->has_nps)
        snprintf(nps, sizeof nps, "%d", req->nps);
    if (req->has_ces)
        snprintf(ces, sizeof ces, "%d", req->ces);
    const char *args[] = {req->conversation_id,
                          vid,
                          I64(score, req->score),
                          req->comment ? req->comment : "",
                          I64(now, cd_now_ms()),
                          nps,
                          ces};
    return run_conv(st, "csat", site, req->conversation_id, 7, args, cb, ud);
}

/* ---------- the agent's record in each of its sites (agent_sync, agent_site) ---------- */

/* A presence call or a sync with the calls it started: the caller's cb fires once, after
 * the last of them, with the first call's error and every conversation the sites gave. */
typedef struct sync_group {
    cd_store *st;
    cd_conv_cb cb;
    void *ud;
    int pending;
    cd_conv_result acc;
} sync_group;

static void group_done(sync_group *g)
{
    if (--g->pending > 0)
        return;
    if (g->cb)
        g->cb(g->ud, &g->acc);
    result_cleanup(&g->acc);
    cd_free(g);
}

static void group_take_assigned(sync_group *g, cd_conv_result *r)
{
    if (r->n_assigned == 0)
        return;
    cd_conv_assigned *all = cd_calloc(g->acc.n_assigned + r->n_assigned, sizeof *all);
    if (g->acc.n_assigned)
        memcpy(all, g->acc.assigned, g->acc.n_assigned * sizeof *all);
    memcpy(all + g->acc.n_assigned, r->assigned, r->n_assigned * sizeof *all);
    cd_free(g->acc.assigned);
    g->acc.assigned = all;
    g->acc.n_assigned += r->n_assigned;
    r->n_assigned = 0; /* the raw texts now belong to the group */
}

static void on_site_synced(void *ud, cd_conv_result *r)
{
    sync_group *g = ud;
    if (r->err != CD_ERR_OK && r->err != CD_ERR_UNAVAILABLE)
        cd_log_warn("agent_site failed: %s %s", cd_err_name(r->err), r->message ? r->message : "");
    group_take_assigned(g, r);
    group_done(g);
}

static const char *jtext(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

static void agent_site(sync_group *g, json_t *a, const char *site)
{
    char sv[24], now[24];
    const char *aid = jtext(a, "id");
    const char *args[] = {site,
                          aid,
                          I64(sv, json_integer_value(json_object_get(a, "sv"))),
                          jtext(a, "status"),
                          jtext(a, "name"),
                          jtext(a, "teams"),
                          jtext(a, "max_chats"),
                          jtext(a, "disabled"),
                          I64(now, cd_now_ms()),
                          jtext(a, "role")};
    cd_key k;
    const char *keys[] = {cd_key_site_agent(&k, cd_store_prefix(g->st), site, aid)};
    g->pending++;
    if (run(g->st, "agent_site", 1, keys, 10, args, on_site_synced, g) != 0)
        g->pending--;
}

static void on_agent_read(void *ud, cd_conv_result *r)
{
    sync_group *g = ud;
    json_t *a = r->err == CD_ERR_OK && r->raw_agent ? json_loads(r->raw_agent, 0, NULL) : NULL;
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(a, "sites"), i, s)
    {
        if (json_is_string(s))
            agent_site(g, a, json_string_value(s));
    }
    json_decref(a);
    group_done(g);
}

static void group_sync(sync_group *g, const char *aid)
{
    const char *args[] = {aid};
    cd_key k;
    const char *keys[] = {cd_key_agent(&k, cd_store_prefix(g->st), aid)};
    g->pending++;
    if (run(g->st, "agent_sync", 1, keys, 1, args, on_agent_read, g) != 0)
        g->pending--;
}

static sync_group *group_new(cd_store *st, cd_conv_cb cb, void *ud)
{
    sync_group *g = cd_calloc(1, sizeof *g);
    g->st = st;
    g->cb = cb;
    g->ud = ud;
    g->pending = 1;
    return g;
}

int cd_conv_agent_sync(cd_store *st, const char *aid, cd_conv_cb cb, void *ud)
{
    sync_group *g = group_new(st, cb, ud);
    group_sync(g, aid);
    group_done(g);
    return 0;
}

bool cd_conv_agent_notice(cd_store *st, const char *frame, size_t len)
{
    json_t *o = json_loadb(frame, len, 0, NULL);
    json_t *t = json_object_get(o, "type"), *id = json_object_get(o, "id");
    bool agent = json_is_string(t) && strcmp(json_string_value(t), "agent.changed") == 0 && json_is_string(id);
    if (agent)
        cd_conv_agent_sync(st, json_string_value(id), NULL, NULL);
    json_decref(o);
    return agent;
}

/* A presence call's reply: sync every agent whose status it changed. */
static void on_presence(void *ud, cd_conv_result *r)
{
    sync_group *g = ud;
    g->acc.err = r->err;
    g->acc.message = r->message;
    r->message = NULL;
    for (size_t i = 0; i < r->n_changed; i++)
        group_sync(g, r->changed[i]);
    group_done(g);
}

static int run_presence(cd_store *st, const char *script, int nkeys, const char *const *keys, int n,
                        const char *const *args, cd_conv_cb cb, void *ud)
{
    sync_group *g = group_new(st, cb, ud);
    if (run(st, script, nkeys, keys, n, args, on_presence, g) != 0) {
        cd_free(g);
        return -1;
    }
    return 0;
}

int cd_conv_presence(cd_store *st, const char *aid, const char *status, cd_conv_cb cb, void *ud)
{
    char now[24];
    const char *args[] = {aid, status, I64(now, cd_now_ms())};
    cd_key k;
    const char *keys[] = {cd_key_agent(&k, cd_store_prefix(st), aid)};
    return run_presence(st, "presence", 1, keys, 3, args, cb, ud);
}

int cd_conv_accept(cd_store *st, const cd_conv_author *a, const char *cid, cd_conv_cb cb, void *ud)
{
    char now[24];
    const char *args[] = {cid, a->id, a->name, I64(now, cd_now_ms())};
    return run_conv(st, "conv_accept", a->site, cid, 4, args, cb, ud);
}

int cd_conv_update(cd_store *st, const cd_conv_author *a, const cd_req *req, cd_conv_cb cb, void *ud)
{
    char now[24];
    char *tags = NULL;
    if (req->has_tags) {
        json_t *arr = json_array();
        for (size_t i = 0; i < req->n_tags; i++)
            json_array_append_new(arr, json_string(req->tags[i]));
        tags = json_dumps(arr, JSON_COMPACT);
        json_decref(arr);
    }
    const char *args[] = {req->conversation_id,
                          a->id,
                          req->status ? req->status : "",
                          req->priority ? cd_proto_priority_name(req->priority) : "",
                          req->category ? req->category : "",
                          tags ? tags : "",
                          I64(now, cd_now_ms())};
    int rc = run_conv(st, "conv_update", a->site, req->conversation_id, 7, args, cb, ud);
    free(tags);
    return rc;
}

int cd_conv_transfer(cd_store *st, const cd_config *cfg, const cd_conv_author *a, const cd_req *req, cd_conv_cb cb,
                     void *ud)
{
    char note_id[64], now[24], retain[24];
    cd_id_new("m", note_id, sizeof note_id);
    const char *args[] = {req->conversation_id,
                          a->id,
                          a->name,
                          req->agent_id,
                          req->team,
                          req->note,
                          note_id,
                          I64(now, cd_now_ms()),
                          I64(retain, cfg->history_retain)};
    return run_conv(st, "conv_transfer", a->site, req->conversation_id, 9, args, cb, ud);
}

int cd_conv_presence_touch(cd_store *st, const char *node, int64_t expiry_ms, const char *const *agent_ids, size_t n,
                           cd_conv_cb cb, void *ud)
{
    char exp[24], now[24];
    const char **args = cd_calloc(n + 3, sizeof *args);
    cd_key *kb = cd_calloc(n + 1, sizeof *kb);
    const char **keys = cd_calloc(n + 1, sizeof *keys);
    keys[0] = cd_key_global(&kb[0], cd_store_prefix(st), "presence");
    args[0] = node;
    args[1] = I64(exp, expiry_ms);
    args[2] = I64(now, cd_now_ms());
    for (size_t i = 0; i < n; i++) {
        args[3 + i] = agent_ids[i];
        keys[1 + i] = cd_key_agent(&kb[1 + i], cd_store_prefix(st), agent_ids[i]);
    }
    int rc = run_presence(st, "presence_touch", (int)(n + 1), keys, (int)(n + 3), args, cb, ud);
    cd_free(keys);
    cd_free(kb);
    cd_free(args);
    return rc;
}

int cd_conv_presence_sweep(cd_store *st, const char *node, const char *agent_id, cd_conv_cb cb, void *ud)
{
    char now[24];
    const char *args[] = {I64(now, cd_now_ms()), node ? node : "", agent_id ? agent_id : ""};
    cd_key kp, ka;
    const char *keys[] = {cd_key_global(&kp, cd_store_prefix(st), "presence"),
                          agent_id ? cd_key_agent(&ka, cd_store_prefix(st), agent_id) : NULL};
    return run_presence(st, "presence_sweep", agent_id ? 2 : 1, keys, 3, args, cb, ud);
}

int cd_conv_timers_claim(cd_store *st, const char *site, int64_t lease_ms, int max, cd_conv_cb cb, void *ud)
{
    char now[24], lease[24], mx[24];
    const char *args[] = {I64(now, cd_now_ms()), I64(lease, lease_ms), I64(mx, max)};
    cd_key kt, kl;
    const char *keys[] = {cd_key_tagged(&kt, cd_store_prefix(st), site, "timers"),
                          cd_key_tagged(&kl, cd_store_prefix(st), site, "timers:leased")};
    return run(st, "timers_claim", 2, keys, 3, args, cb, ud);
}

int cd_conv_autoclose(cd_store *st, const char *site, const char *cid, cd_conv_cb cb, void *ud)
{
    char now[24];
    const char *args[] = {cid, I64(now, cd_now_ms())};
    return run_conv(st, "conv_autoclose", site, cid, 2, args, cb, ud);
}

int cd_conv_ticket_convert(cd_store *st, const cd_config *cfg, const char *site, const char *cid, const char *intervals,
                           cd_conv_cb cb, void *ud)
{
    char now[24], msg_id[64], retain[24];
    cd_id_new("m", msg_id, sizeof msg_id);
    const char *args[] = {cid, I64(now, cd_now_ms()), intervals ? intervals : "*", msg_id,
                          I64(retain, cfg->history_retain)};
    return run_conv(st, "ticket_convert", site, cid, 5, args, cb, ud);
}

int cd_conv_sla_sync(cd_store *st, const char *site, const char *cid, const char *intervals, cd_conv_cb cb, void *ud)
{
    char now[24];
    const char *args[] = {cid, I64(now, cd_now_ms()), intervals ? intervals : "*"};
    return run_conv(st, "sla_sync", site, cid, 3, args, cb, ud);
}

int cd_conv_sla_fire(cd_store *st, const cd_config *cfg, const char *site, const char *cid, const char *kind,
                     const char *level, cd_conv_cb cb, void *ud)
{
    char now[24], note_id[64], retain[24];
    cd_id_new("m", note_id, sizeof note_id);
    const char *args[] = {cid, kind, level, I64(now, cd_now_ms()), "*", note_id, I64(retain, cfg->history_retain)};
    return run_conv(st, "sla_fire", site, cid, 7, args, cb, ud);
}

int cd_conv_confirm(cd_store *st, const char *site, const char *vid, const char *cid, cd_conv_cb cb, void *ud)
{
    char now[24];
    const char *args[] = {cid, vid, I64(now, cd_now_ms())};
    return run_conv(st, "conv_confirm", site, cid, 3, args, cb, ud);
}

/* ---------- calls over every site: the sites set alone, then one call per site ----------
 * The sites set is state of its own (P{g}:sites), read by a call of its own (sites_list);
 * the script then runs once per site in that site's slot (ARCHITECTURE invariant 4), and
 * the replies merge into one result: sites concatenated, the first error kept. */
typedef int (*per_site_fn)(cd_store *st, const char *site, cd_conv_cb cb, void *ud);

typedef struct fanout {
    sync_group g; /* first member: group_done frees the fanout */
    per_site_fn one;
} fanout;

static void on_fanout_site(void *ud, cd_conv_result *r)
{
    fanout *f = ud;
    cd_conv_result *m = &f->g.acc;
    if (r->err != CD_ERR_OK && m->err == CD_ERR_OK) {
        m->err = r->err;
        m->message = r->message;
        r->message = NULL;
    }
    if (r->n_sites) {
        m->sites = cd_realloc(m->sites, (m->n_sites + r->n_sites + 1) * sizeof *m->sites);
        memcpy(m->sites + m->n_sites, r->sites, r->n_sites * sizeof *r->sites);
        m->n_sites += r->n_sites;
        cd_free(r->sites);
        r->sites = NULL;
        r->n_sites = 0;
    }
    group_done(&f->g);
}

static void on_fanout_list(void *ud, cd_conv_result *r)
{
    fanout *f = ud;
    if (r->err != CD_ERR_OK)
        f->g.acc.err = r->err;
    for (size_t i = 0; r->err == CD_ERR_OK && i < r->n_items; i++) {
        f->g.pending++;
        if (f->one(f->g.st, r->items[i], on_fanout_site, f) != 0) {
            f->g.pending--;
            f->g.acc.err = CD_ERR_UNAVAILABLE;
        }
    }
    group_done(&f->g); /* the list's own share */
}

static int over_sites(cd_store *st, per_site_fn one, cd_conv_cb cb, void *ud)
{
    fanout *f = cd_calloc(1, sizeof *f);
    f->g = (sync_group){.st = st, .cb = cb, .ud = ud, .pending = 1};
    f->one = one;
    cd_key k;
    const char *keys[] = {cd_key_global(&k, cd_store_prefix(st), "sites")};
    if (run(st, "sites_list", 1, keys, 0, NULL, on_fanout_list, f) != 0) {
        cd_free(f);
        return -1;
    }
    return 0;
}

static int route_drain_one(cd_store *st, const char *site, cd_conv_cb cb, void *ud)
{
    char now[24];
    const char *args[] = {site, I64(now, cd_now_ms())};
    cd_key k;
    const char *keys[] = {cd_key_site(&k, cd_store_prefix(st), site, "")};
    return run(st, "route_drain", 1, keys, 2, args, cb, ud);
}

int cd_conv_route_drain(cd_store *st, const char *site, cd_conv_cb cb, void *ud)
{
    if (site && *site)
        return route_drain_one(st, site, cb, ud);
    return over_sites(st, route_drain_one, cb, ud);
}

/* ---------- an agent's hello: its own record, then what each of its sites welcomes it with ----------
 * The record and the token check are the agent's own state ({a}, agent_get); its
 * conversations and the queues of its teams are each site's, read by one agent_welcome
 * call per site in that site's slot and gathered here into agent_get's reply, so the
 * caller gets the one result it always got. */
typedef struct welcome {
    cd_store *st;
    cd_conv_cb cb;
    void *ud;
    json_t *root; /* agent_get's reply: the sites' lists are appended to it */
    size_t pending;
    cd_err err;
} welcome;

static void welcome_step(welcome *w)
{
    if (--w->pending > 0)
        return;
    deliver(w->cb, w->ud, w->err, w->err == CD_ERR_OK ? w->root : NULL);
    if (w->err != CD_ERR_OK)
        json_decref(w->root);
    cd_free(w);
}

static void on_welcome_site(void *ud, cd_err err, const char *json, size_t len)
{
    welcome *w = ud;
    json_t *site = err == CD_ERR_OK && json ? json_loadb(json, len, 0, NULL) : NULL;
    if (!json_is_object(site)) {
        if (w->err == CD_ERR_OK)
            w->err = err == CD_ERR_OK ? CD_ERR_INTERNAL : err;
    } else {
        json_array_extend(json_object_get(w->root, "conversations"), json_object_get(site, "conversations"));
        json_array_extend(json_object_get(w->root, "queue"), json_object_get(site, "queue"));
    }
    json_decref(site);
    welcome_step(w);
}

static void welcome_site(welcome *w, const char *aid, const char *site, const char *teams)
{
    cd_key k;
    const char *keys[] = {cd_key_site_agent(&k, cd_store_prefix(w->st), site, aid)};
    const char *args[] = {site, aid, teams};
    w->pending++;
    if (cd_store_fcall(w->st, "agent_welcome", 1, keys, 3, args, NULL, on_welcome_site, w) != 0) {
        w->pending--;
        w->err = CD_ERR_UNAVAILABLE;
    }
}

static void on_agent_record(void *ud, cd_err err, const char *json, size_t len)
{
    welcome *w = ud;
    w->root = json ? json_loadb(json, len, 0, NULL) : NULL;
    json_t *a = json_object_get(w->root, "agent");
    if (err != CD_ERR_OK || !json_is_object(a)) {
        deliver(w->cb, w->ud, err, w->root);
        cd_free(w);
        return;
    }
    char *teams = dump(json_object_get(a, "teams"));
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(a, "sites"), i, s)
    {
        if (json_is_string(s))
            welcome_site(w, json_string_value(json_object_get(a, "id")), json_string_value(s), teams ? teams : "[]");
    }
    free(teams);
    welcome_step(w); /* the record's own share */
}

int cd_conv_agent_get(cd_store *st, const char *by, const char *value, bool with_convs, int64_t epoch, const char *jti,
                      cd_conv_cb cb, void *ud)
{
    char ep[24];
    const char *args[] = {by, value, with_convs ? "1" : "0", I64(ep, epoch), jti ? jti : ""};
    cd_key k, k2;
    bool email = strcmp(by, "email") == 0;
    const char *P = cd_store_prefix(st);
    const char *keys[] = {email ? cd_key_agent_email(&k, P, value) : cd_key_agent(&k, P, value),
                          email ? cd_key_login_fails(&k2, P, value) : cd_key_agent_revoked(&k2, P, value)};
    if (!with_convs)
        return run(st, "agent_get", 2, keys, 5, args, cb, ud);
    welcome *w = cd_calloc(1, sizeof *w);
    *w = (welcome){.st = st, .cb = cb, .ud = ud, .pending = 1};
    if (cd_store_fcall(st, "agent_get", 2, keys, 5, args, NULL, on_agent_record, w) != 0) {
        cd_free(w);
        return -1;
    }
    return 0;
}

int cd_conv_login_attempt(cd_store *st, const char *email, bool ok, int64_t window_ms, cd_conv_cb cb, void *ud)
{
    char window[24];
    const char *args[] = {ok ? "ok" : "try", I64(window, window_ms)};
    cd_key k;
    const char *keys[] = {cd_key_login_fails(&k, cd_store_prefix(st), email)};
    return run(st, "login_attempt", 1, keys, 2, args, cb, ud);
}

int cd_conv_keys_init(cd_store *st, const char *kid, const char *hex, cd_conv_cb cb, void *ud)
{
    const char *args[] = {kid, hex};
    cd_key k;
    const char *keys[] = {cd_key_global(&k, cd_store_prefix(st), "keys")};
    return run(st, "keys_init", 1, keys, 2, args, cb, ud);
}

int cd_conv_events_config(cd_store *st, int64_t retain_ms, cd_conv_cb cb, void *ud)
{
    char ms[24];
    const char *args[] = {I64(ms, retain_ms)};
    cd_key k;
    const char *keys[] = {cd_key_global(&k, cd_store_prefix(st), "events:retain_ms")};
    return run(st, "events_config", 1, keys, 1, args, cb, ud);
}

static int site_get_one(cd_store *st, const char *site, cd_conv_cb cb, void *ud)
{
    cd_key k;
    const char *keys[] = {cd_key_site(&k, cd_store_prefix(st), site, "")};
    return run(st, "sites_get", 1, keys, 0, NULL, cb, ud);
}

int cd_conv_sites_get(cd_store *st, cd_conv_cb cb, void *ud)
{
    return over_sites(st, site_get_one, cb, ud);
}
