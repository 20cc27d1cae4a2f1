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
    cd_free(r->convs);
    free_strs(r->agent_sites, r->n_agent_sites);
    free_strs(r->frames, r->n_frames);
    free(r->raw_viewers);
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
    r->totp = json_is_true(json_object_get(root, "totp"));
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
    if ((v = json_object_get(root, "viewers")) && json_is_array(v))
        r->raw_viewers = dump(v);
    r->refresh_ms = json_integer_value(json_object_get(root, "refresh_ms"));
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
                          profile ? profile : "",
                          req->attachments ? req->attachments : ""};
    cd_key ks, kc;
    const char *keys[] = {cd_key_site(&ks, cd_store_prefix(st), site, ""),
                          cd_key_conv(&kc, cd_store_prefix(st), site, cid)};
    call *c = cd_malloc(sizeof *c);
    c->cb = cb;
    c->ud = ud;
    if (cd_store_fcall_durable(st, "conv_start", 2, keys, 20, args, NULL, on_reply, c) != 0) {
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
        json_t *att = json_object_get(root, "attachments");
        if (json_is_array(att) && (raw = dump(att)) != NULL) {
            r.msg.att = raw;
            r.msg.att_len = strlen(raw);
        }
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
                          intervals ? intervals : "",
                          req->attachments ? req->attachments : ""};
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
                     intervals ? strlen(intervals) : 0,
                     req->attachments ? strlen(req->attachments) : 0};
    cd_key k;
    /* batched: the sends of one site that this loop pass received share one call */
    const char *key = cd_key_conv(&k, cd_store_prefix(st), a->site, req->conversation_id);
    if (cd_store_fcall_batched(st, "msg_send", key, 13, args, lens, on_sent, c) != 0) {
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

int cd_conv_viewing(cd_store *st, const cd_conv_author *a, const char *cid, bool state, const char *writing,
                    int64_t ttl_ms, cd_conv_cb cb, void *ud)
{
    char now[24], ttl[24];
    const char *args[] = {cid,
                          a->id,
                          a->name ? a->name : "",
                          state ? "1" : "0",
                          writing ? writing : "",
                          I64(now, cd_now_ms()),
                          I64(ttl, ttl_ms)};
    return run_conv(st, "viewing", a->site, cid, 7, args, cb, ud);
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

int cd_conv_accept(cd_store *st, const cd_conv_author *a, const char *cid, cd_conv_cb cb, void *ud)
{
    char now[24];
    const char *args[] = {cid, a->id, a->name, I64(now, cd_now_ms())};
    return run_conv(st, "conv_accept", a->site, cid, 4, args, cb, ud);
}

int cd_conv_update(cd_store *st, const cd_conv_author *a, const cd_req *req, const char *intervals, cd_conv_cb cb,
                   void *ud)
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
                          I64(now, cd_now_ms()),
                          intervals ? intervals : ""};
    int rc = run_conv(st, "conv_update", a->site, req->conversation_id, 8, args, cb, ud);
    free(tags);
    return rc;
}

int cd_conv_transfer(cd_store *st, const cd_config *cfg, const cd_conv_author *a, const cd_req *req, cd_conv_cb cb,
                     void *ud)
{
    char note_id[64], now[24], retain[24], audit_days[24];
    cd_id_new("m", note_id, sizeof note_id);
    const char *args[] = {req->conversation_id,
                          a->id,
                          a->name,
                          req->agent_id,
                          req->team,
                          req->note,
                          note_id,
                          I64(now, cd_now_ms()),
                          I64(retain, cfg->history_retain),
                          I64(audit_days, cfg->audit_retain_days)};
    return run_conv(st, "conv_transfer", a->site, req->conversation_id, 10, args, cb, ud);
}

int cd_conv_autoclose(cd_store *st, const char *site, const char *cid, cd_conv_cb cb, void *ud)
{
    char now[24];
    const char *args[] = {cid, I64(now, cd_now_ms())};
    return run_conv(st, "conv_autoclose", site, cid, 2, args, cb, ud);
}

static void on_autoclosed(void *ud, cd_conv_result *r)
{
    (void)ud;
    if (r->err != CD_ERR_OK && r->err != CD_ERR_UNAVAILABLE)
        cd_log_warn("autoclose failed: %s %s", cd_err_name(r->err), r->message ? r->message : "");
}

/* "autoclose|<cid>" */
static void on_autoclose_timer(void *ud, const char *site, const char *arg)
{
    if (strchr(arg, '|')) {
        cd_log_warn("timer of unknown kind: autoclose|%s", arg);
        return;
    }
    cd_conv_autoclose(ud, site, arg, on_autoclosed, NULL);
}

void cd_conv_timers_register(cd_timers *t, cd_store *st)
{
    cd_timers_register(t, "autoclose", on_autoclose_timer, st);
}

int cd_conv_confirm(cd_store *st, const char *site, const char *vid, const char *cid, const char *intervals,
                    cd_conv_cb cb, void *ud)
{
    char now[24];
    const char *args[] = {cid, vid, I64(now, cd_now_ms()), intervals ? intervals : ""};
    return run_conv(st, "conv_confirm", site, cid, 4, args, cb, ud);
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

int cd_conv_agent_get(cd_store *st, const char *aid, int64_t epoch, const char *jti, cd_conv_cb cb, void *ud)
{
    char ep[24];
    const char *args[] = {"id", aid, "1", I64(ep, epoch), jti ? jti : ""};
    cd_key k, k2;
    const char *P = cd_store_prefix(st);
    const char *keys[] = {cd_key_agent(&k, P, aid), cd_key_agent_revoked(&k2, P, aid)};
    welcome *w = cd_calloc(1, sizeof *w);
    *w = (welcome){.st = st, .cb = cb, .ud = ud, .pending = 1};
    if (cd_store_fcall(st, "agent_get", 2, keys, 5, args, NULL, on_agent_record, w) != 0) {
        cd_free(w);
        return -1;
    }
    return 0;
}
