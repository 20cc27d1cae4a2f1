/* chatdeskd admin migrate: moves keys written by the previous key layout to the one
 * of this release (docs/keyspace.md "Upgrades"). Each key moves with one RENAMENX, so
 * the value, its TTL and its type move together or not at all; a run stopped half-way
 * is resumed by running it again (keys already moved are simply not found under their
 * old name any more), and a second run moves nothing. A key whose new name is taken
 * (written by a new node before the migration ran) stays where it is and is reported
 * as a conflict. The previous layout ran on one Redis only, so RENAMENX between slots
 * is fine here. Three passes over the keys: per-site keys and the agents' site records
 * and loads (move_key), then conversations and visitors as groups (move_late), then the
 * site records and the state that spans sites (move_owned), whose old names the earlier
 * passes read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "admin_int.h"
#include "chatdesk/base.h"

/* What moves (old name after the prefix -> new name), one line per kind. */
typedef enum kind {
    K_KB,
    K_RULES,
    K_REPORTS,
    K_HEALTH,
    K_CONVS,
    K_VISITORS,
    K_TIMERS,
    K_AGENTS,
    K_LOADS,
    K_AGENT_CONVS,
    K_SITES,
    K_AGENT_STATE,
    K_GLOBAL,
    K_EVENTS,
    K_TICKETS,
    K_NOTICES,
    K_WEBHOOKS,
    K_CANNED,
    K__COUNT
} kind;
static const char *const kind_names[K__COUNT] = {
    "kb",          "rules", "reports",     "health", "conversations", "visitors", "timers",  "agents",   "loads",
    "agent_convs", "sites", "agent_state", "global", "events",        "tickets",  "notices", "webhooks", "canned"};

typedef struct plan {
    kind k;
    char site[128];
    char rest[512]; /* the new key's part after the site's tag */
} plan;

/* "<site>:<rest>" -> site, rest; site keys never contain ':' */
static bool split_site(const char *s, plan *p, const char *rest_prefix)
{
    const char *colon = strchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof p->site || !colon[1])
        return false;
    memcpy(p->site, s, (size_t)(colon - s));
    p->site[colon - s] = '\0';
    snprintf(p->rest, sizeof p->rest, "%s%s", rest_prefix, colon + 1);
    return true;
}

/* The old layout's per-site keys that now carry the site's hash tag P{s:<site>}:
 *   kb:{<site>}:<x>                 -> kb:<x>
 *   site:<site>:rules|rule:<id>|team_leads|alerts -> the same suffix
 *   rpt:<site>:d:<day>|backlog      -> rpt:d:<day>|rpt:backlog
 *   rpt:c:{<cid>}                   -> rpt:c:<cid> (the site from the conversation)
 *   health:<site>:<x>               -> health:<x>
 *   site:<site>:user:<user id>      -> user:<user id> (identified users)
 * Conversations and visitors move as groups (move_group). */
static bool classify(redisContext *c, const char *P, const char *name, plan *p)
{
    memset(p, 0, sizeof *p);
    if (strncmp(name, "kb:{", 4) == 0) {
        const char *end = strstr(name + 4, "}:");
        if (!end || (size_t)(end - name - 4) >= sizeof p->site)
            return false;
        p->k = K_KB;
        memcpy(p->site, name + 4, (size_t)(end - name - 4));
        snprintf(p->rest, sizeof p->rest, "kb:%s", end + 2);
        return p->site[0] != '\0';
    }
    if (strncmp(name, "site:", 5) == 0) {
        plan q;
        if (!split_site(name + 5, &q, ""))
            return false;
        bool rules =
            strcmp(q.rest, "rules") == 0 || strcmp(q.rest, "team_leads") == 0 || strncmp(q.rest, "rule:", 5) == 0;
        if (!rules && strcmp(q.rest, "alerts") != 0 && strncmp(q.rest, "user:", 5) != 0)
            return false;
        *p = q;
        p->k = rules ? K_RULES : strncmp(q.rest, "user:", 5) == 0 ? K_VISITORS : K_HEALTH;
        return true;
    }
    if (strncmp(name, "rpt:c:{", 7) == 0) {
        char cid[256];
        size_t n = strlen(name + 7);
        if (n < 2 || n >= sizeof cid || name[7 + n - 1] != '}')
            return false;
        memcpy(cid, name + 7, n - 1);
        cid[n - 1] = '\0';
        redisReply *r = redisCommand(c, "HGET %sconv:{%s} site", P, cid);
        bool ok = r && r->type == REDIS_REPLY_STRING && r->len > 0 && r->len < sizeof p->site;
        if (ok) {
            memcpy(p->site, r->str, r->len + 1);
            snprintf(p->rest, sizeof p->rest, "rpt:c:%s", cid);
            p->k = K_REPORTS;
        }
        freeReplyObject(r);
        return ok;
    }
    if (strncmp(name, "rpt:", 4) == 0 && split_site(name + 4, p, "rpt:")) {
        p->k = K_REPORTS;
        return strncmp(p->rest, "rpt:d:", 6) == 0 || strcmp(p->rest, "rpt:backlog") == 0;
    }
    if (strncmp(name, "health:", 7) == 0 && split_site(name + 7, p, "health:")) {
        p->k = K_HEALTH;
        return true;
    }
    return false;
}

typedef struct tally {
    long long moved[K__COUNT], conflicts, scanned, dedupe_deleted;
    json_t *conflict_keys;
} tally;

/* RENAMENX old -> nk, counted under kind k; a missing old key is no error. -1 on a Redis error. */
static int rename_one(redisContext *c, const char *old, const char *nk, kind k, tally *t)
{
    redisReply *r = redisCommand(c, "RENAMENX %s %s", old, nk);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        /* gone meanwhile (expired health windows, a concurrent run): nothing to move */
        bool gone = r && strstr(r->str, "no such key");
        if (!gone)
            fprintf(stderr, "chatdeskd admin migrate: %s: %s\n", old, r ? r->str : c->errstr);
        freeReplyObject(r);
        return gone ? 0 : -1;
    }
    if (r->integer == 1) {
        t->moved[k]++;
    } else {
        t->conflicts++;
        if (json_array_size(t->conflict_keys) < 100)
            json_array_append_new(t->conflict_keys, json_string(old));
    }
    freeReplyObject(r);
    return 0;
}

/* The site of a timer member: "unanswered|<site>|<cid>" and "rule|<site>|…" name it;
 * "autoclose|<cid>" and "sla…|<cid>|<kind>" through the conversation (its id, else its
 * hash under the old name: timers move in the first pass, before conversations). */
static bool timer_site(redisContext *c, const char *P, const char *member, char *site, size_t n)
{
    const char *bar = strchr(member, '|');
    if (!bar)
        return false;
    const char *f = bar + 1, *end = strchr(f, '|');
    size_t len = end ? (size_t)(end - f) : strlen(f);
    if (strncmp(member, "unanswered|", 11) == 0 || strncmp(member, "rule|", 5) == 0) {
        if (len == 0 || len >= n)
            return false;
        memcpy(site, f, len);
        site[len] = '\0';
        return true;
    }
    char cid[256];
    if (len == 0 || len >= sizeof cid)
        return false;
    memcpy(cid, f, len);
    cid[len] = '\0';
    const char *dot = strrchr(cid, '.');
    if (dot && dot[1]) {
        cd_strlcpy(site, dot + 1, n);
        return true;
    }
    redisReply *r = redisCommand(c, "HGET %sconv:{%s} site", P, cid);
    bool ok = r && r->type == REDIS_REPLY_STRING && r->len > 0 && r->len < n;
    if (ok)
        memcpy(site, r->str, r->len + 1);
    freeReplyObject(r);
    return ok;
}

/* A member moved: added under its new key (reply a, taken), then removed from old with
 * rem (ZREM or SREM). -1 on a Redis error. */
static int member_moved(redisContext *c, redisReply *a, const char *rem, const char *old, const char *member, kind k,
                        tally *t)
{
    redisReply *d = a && a->type != REDIS_REPLY_ERROR ? redisCommand(c, "%s %s %s", rem, old, member) : NULL;
    int rc = d && d->type != REDIS_REPLY_ERROR ? 0 : -1;
    if (rc == 0)
        t->moved[k]++;
    freeReplyObject(a);
    freeReplyObject(d);
    return rc;
}

/* P timers / P timers:leased: each member moves to its site's zset of the same name
 * (ZADD NX there, then ZREM here: a member a new node already set keeps its new due). */
static int move_timers(redisContext *c, const char *P, const char *old, const char *name, tally *t)
{
    redisReply *r = redisCommand(c, "ZRANGE %s 0 -1 WITHSCORES", old);
    int rc = r && r->type == REDIS_REPLY_ARRAY ? 0 : -1;
    for (size_t i = 0; rc == 0 && i + 1 < r->elements; i += 2) {
        const char *member = r->element[i]->str, *score = r->element[i + 1]->str;
        char site[128];
        if (!timer_site(c, P, member, site, sizeof site))
            continue;
        rc = member_moved(c, redisCommand(c, "ZADD %s{s:%s}:%s NX %s %s", P, site, name, score, member), "ZREM", old,
                          member, K_TIMERS, t);
    }
    freeReplyObject(r);
    return rc;
}

static const char agent_site_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HSETNX', KEYS[1], 'role', ARGV[7]) end\n"
    "redis.call('HSET', KEYS[1], 'id', ARGV[1], 'status', 'offline', 'name', ARGV[2], 'teams', ARGV[3],\n"
    "  'max_chats', ARGV[4], 'disabled', ARGV[5], 'sv', ARGV[6], 'role', ARGV[7])\n"
    "return 1\n";

/* P agent:<id>:active, the previous release's load of the agent over all its sites, and
 * P agent:<id>:convs, its assigned conversations over all its sites: each member moves to
 * the same set of the agent in the conversation's site, P{s:<site>}:agent:<id>:<set> (SADD
 * there, then SREM here): max_chats counts per site, and assigning is a call in the
 * site's slot. */
static int move_members(redisContext *c, const char *P, const char *old, const char *aid, const char *set, kind k,
                        tally *t)
{
    redisReply *r = redisCommand(c, "SMEMBERS %s", old);
    int rc = r && r->type == REDIS_REPLY_ARRAY ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < r->elements; i++) {
        const char *cid = r->element[i]->str;
        char member[300], site[128];
        snprintf(member, sizeof member, "autoclose|%s", cid);
        if (!timer_site(c, P, member, site, sizeof site))
            continue;
        rc = member_moved(c, redisCommand(c, "SADD %s{s:%s}:agent:%s:%s %s", P, site, aid, set, cid), "SREM", old, cid,
                          k, t);
    }
    freeReplyObject(r);
    return rc;
}

/* The site a hash names in its field "site" (a webhook, a delivery, a canned reply), or false. */
static bool hash_site(redisContext *c, const char *key, char *site, size_t n)
{
    redisReply *r = redisCommand(c, "HGET %s site", key);
    bool ok = r && r->type == REDIS_REPLY_STRING && r->len > 0 && r->len < n;
    if (ok)
        memcpy(site, r->str, r->len + 1);
    freeReplyObject(r);
    return ok;
}

/* An agent's own canned replies, P agent:<id>:canned or P{a}:agent:<id>:canned: each id
 * moves to the agent's set in the reply's site, P{s:<site>}:agent:<id>:canned (the site from
 * the reply's hash, which moves in the second pass; SADD there, then SREM here). */
static int move_canned(redisContext *c, const char *P, const char *old, const char *aid, tally *t)
{
    redisReply *r = redisCommand(c, "SMEMBERS %s", old);
    int rc = r && r->type == REDIS_REPLY_ARRAY ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < r->elements; i++) {
        char key[512], site[128];
        snprintf(key, sizeof key, "%scanned:%s", P, r->element[i]->str);
        if (hash_site(c, key, site, sizeof site))
            rc = member_moved(c, redisCommand(c, "SADD %s{s:%s}:agent:%s:canned %s", P, site, aid, r->element[i]->str),
                              "SREM", old, r->element[i]->str, K_CANNED, t);
    }
    freeReplyObject(r);
    return rc;
}

/* P agent:<id>: the agent's record in each of its sites, P{s:<site>}:agent:<id>, which
 * routing reads (a node keeps it in line from then on). Written offline (the nodes are
 * stopped; a connecting agent's node brings the status) and only where none exists; an
 * existing one only gets the role when it has none (synced before roles were copied). */
static int agent_sites(redisContext *c, const char *P, const char *old, const char *aid, tally *t)
{
    const char *f[] = {"sites", "name", "teams", "max_chats", "disabled", "sv", "role"};
    redisReply *r = redisCommand(c, "HMGET %s %s %s %s %s %s %s %s", old, f[0], f[1], f[2], f[3], f[4], f[5], f[6]);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != CD_ARRAY_LEN(f)) {
        freeReplyObject(r);
        return -1;
    }
    const char *v[CD_ARRAY_LEN(f)];
    for (size_t i = 0; i < CD_ARRAY_LEN(f); i++)
        v[i] = r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str : "";
    json_t *sites = json_loads(v[0], 0, NULL);
    size_t i;
    json_t *s;
    int rc = 0;
    json_array_foreach(sites, i, s)
    {
        if (!json_is_string(s) || rc != 0)
            continue;
        char key[512];
        snprintf(key, sizeof key, "%s{s:%s}:agent:%s", P, json_string_value(s), aid);
        /* KEYS: the site record. ARGV: id, name, teams, max_chats, disabled, sv, role. 1 if written. */
        redisReply *w =
            redisCommand(c, "EVAL %s 1 %s %s %s %s %s %s %s %s", agent_site_lua, key, aid, v[1], v[2][0] ? v[2] : "[]",
                         v[3][0] ? v[3] : "5", v[4][0] ? v[4] : "0", v[5][0] ? v[5] : "0", v[6][0] ? v[6] : "agent");
        if (!w || w->type != REDIS_REPLY_INTEGER)
            rc = -1;
        else
            t->moved[K_AGENTS] += w->integer;
        freeReplyObject(w);
    }
    json_decref(sites);
    freeReplyObject(r);
    return rc;
}

/* agent:<id>, agent:<id>:active and agent:<id>:convs (not agent:email:…, :notices) */
static int move_agent(redisContext *c, const char *P, const char *old, const char *rest, tally *t)
{
    char aid[256];
    const char *colon = strchr(rest, ':');
    size_t n = colon ? (size_t)(colon - rest) : strlen(rest);
    if (n == 0 || n >= sizeof aid || strncmp(rest, "email:", 6) == 0)
        return 0;
    memcpy(aid, rest, n);
    aid[n] = '\0';
    if (!colon)
        return agent_sites(c, P, old, rest, t);
    if (strcmp(colon, ":active") == 0)
        return move_members(c, P, old, aid, "active", K_LOADS, t);
    if (strcmp(colon, ":canned") == 0)
        return move_canned(c, P, old, aid, t);
    return strcmp(colon, ":convs") == 0 ? move_members(c, P, old, aid, "convs", K_AGENT_CONVS, t) : 0;
}

/* Move one key; -1 on a Redis error. */

/* A site's webhooks and deliveries move into its slot (docs/keyspace.md "Webhooks"): in the
 * first pass the due set member by member (the site from the delivery's hash) and each
 * webhook's :deliveries and :log (the site from the webhook's hash); the hashes themselves
 * in the second (move_late), so these still find them. */
static int move_webhook_keys(redisContext *c, const char *P, const char *old, const char *name, tally *t)
{
    char site[128], key[512], nk[1024];
    if (strcmp(name, "webhooks:due") == 0) {
        redisReply *r = redisCommand(c, "ZRANGE %s 0 -1 WITHSCORES", old);
        int rc = r && r->type == REDIS_REPLY_ARRAY ? 0 : -1;
        for (size_t i = 0; rc == 0 && i + 1 < r->elements; i += 2) {
            const char *did = r->element[i]->str;
            snprintf(key, sizeof key, "%swhd:%s", P, did);
            if (hash_site(c, key, site, sizeof site))
                rc = member_moved(
                    c, redisCommand(c, "ZADD %s{s:%s}:webhooks:due NX %s %s", P, site, r->element[i + 1]->str, did),
                    "ZREM", old, did, K_WEBHOOKS, t);
        }
        freeReplyObject(r);
        return rc;
    }
    const char *wid = name + 8, *colon = strchr(wid, ':');
    if (!colon || (strcmp(colon, ":deliveries") != 0 && strcmp(colon, ":log") != 0))
        return 0;
    snprintf(key, sizeof key, "%swebhook:%.*s", P, (int)(colon - wid), wid);
    if (!hash_site(c, key, site, sizeof site))
        return 0;
    snprintf(nk, sizeof nk, "%s{s:%s}:%s", P, site, name);
    return rename_one(c, old, nk, K_WEBHOOKS, t);
}

static int move_key(redisContext *c, const char *P, const char *old, tally *t)
{
    const char *name = old + strlen(P);
    size_t an = strlen(name);
    if (strncmp(name, "{a}:agent:", 10) == 0 && an > 17 && strcmp(name + an - 7, ":canned") == 0 && an - 17 < 256) {
        char aid[256];
        memcpy(aid, name + 10, an - 17);
        aid[an - 17] = '\0';
        return move_canned(c, P, old, aid, t);
    }
    if (strcmp(name, "timers") == 0 || strcmp(name, "timers:leased") == 0)
        return move_timers(c, P, old, name, t);
    if (strcmp(name, "webhooks:due") == 0 || strncmp(name, "webhook:", 8) == 0)
        return move_webhook_keys(c, P, old, name, t);
    if (strncmp(name, "agent:", 6) == 0)
        return move_agent(c, P, old, name + 6, t);
    plan p;
    if (!classify(c, P, old + strlen(P), &p))
        return 0;
    char nk[1024];
    snprintf(nk, sizeof nk, "%s{s:%s}:%s", P, p.site, p.rest);
    return rename_one(c, old, nk, p.k, t);
}

/* A conversation (conv:{<cid>} and its :msgs, :reads, :dd0, :dd1) or a visitor
 * (visitor:<id> and its :convs, :starts) moves into its site, read from its hash: the
 * sub-keys first and the hash last, so a run that stops half-way still finds the site
 * under the old name the next time. A conversation's :dedupe hash (the previous
 * release's dedupe, which nothing reads any more) is deleted. */
static const char *const conv_subs[] = {":msgs", ":reads", ":dd0", ":dd1", NULL};
static const char *const visitor_subs[] = {":convs", ":starts", NULL};

static int move_group(redisContext *c, const char *P, const char *old, const char *id, bool conv, tally *t)
{
    redisReply *r = redisCommand(c, "HGET %s site", old);
    char site[128] = "";
    if (r && r->type == REDIS_REPLY_STRING && r->len > 0 && r->len < sizeof site)
        memcpy(site, r->str, r->len + 1);
    freeReplyObject(r);
    if (!site[0])
        return 0;
    char base[512], from[600], to[700];
    snprintf(base, sizeof base, "%s{s:%s}:%s%s", P, site, conv ? "conv:" : "visitor:", id);
    kind k = conv ? K_CONVS : K_VISITORS;
    for (const char *const *sfx = conv ? conv_subs : visitor_subs; *sfx; sfx++) {
        snprintf(from, sizeof from, "%s%s", old, *sfx);
        snprintf(to, sizeof to, "%s%s", base, *sfx);
        if (rename_one(c, from, to, k, t) != 0)
            return -1;
    }
    if (conv) {
        snprintf(from, sizeof from, "%s:dedupe", old);
        r = redisCommand(c, "DEL %s", from);
        if (r && r->type == REDIS_REPLY_INTEGER)
            t->dedupe_deleted += r->integer;
        freeReplyObject(r);
    }
    return rename_one(c, old, base, k, t);
}

/* Keys of the second pass: a conversation's or a visitor's hash (their other keys go with
 * them). They move after everything else, because rpt:c:{<cid>} reads the site from the
 * conversation's old hash. */
static int move_late(redisContext *c, const char *P, const char *old, tally *t)
{
    const char *name = old + strlen(P);
    size_t n = strlen(name);
    char id[256], site[128], nk[1024];
    /* webhooks, deliveries and canned replies: into the site their hash names */
    bool hook = strncmp(name, "webhook:", 8) == 0 && !strchr(name + 8, ':') && strcmp(name, "webhook:seq") != 0;
    bool canned = strncmp(name, "canned:", 7) == 0 && !strchr(name + 7, ':');
    if ((hook || canned || strncmp(name, "whd:", 4) == 0) && hash_site(c, old, site, sizeof site)) {
        snprintf(nk, sizeof nk, "%s{s:%s}:%s", P, site, name);
        return rename_one(c, old, nk, canned ? K_CANNED : K_WEBHOOKS, t);
    }
    if (strncmp(name, "conv:{", 6) == 0 && n > 7 && name[n - 1] == '}' && n - 7 < sizeof id &&
        !memchr(name + 6, '}', n - 7)) {
        memcpy(id, name + 6, n - 7);
        id[n - 7] = '\0';
        return move_group(c, P, old, id, true, t);
    }
    if (strncmp(name, "visitor:", 8) == 0 && n > 8 && !strchr(name + 8, ':') && n - 8 < sizeof id) {
        memcpy(id, name + 8, n - 7);
        return move_group(c, P, old, id, false, t);
    }
    return 0;
}

/* The site's record and its own keys, P{s:<site>}:…:
 *   site:<site>                              -> site
 *   site:<site>:teams|agents|convs|tickets|canned|webhooks, site:<site>:queue:<team> -> the same suffix
 */
static bool classify_site(const char *rest, char *nk, size_t n, const char *P)
{
    static const char *const subs[] = {"teams", "agents", "convs", "tickets", "canned", "webhooks"};
    const char *colon = strchr(rest, ':');
    size_t slen = colon ? (size_t)(colon - rest) : strlen(rest);
    if (slen == 0 || slen >= 128)
        return false;
    const char *sub = colon ? colon + 1 : "site";
    bool ok = !colon || strncmp(sub, "queue:", 6) == 0;
    for (size_t i = 0; i < CD_ARRAY_LEN(subs) && !ok; i++)
        ok = strcmp(sub, subs[i]) == 0;
    if (ok)
        snprintf(nk, n, "%s{s:%.*s}:%s", P, (int)slen, rest, sub);
    return ok;
}

/* Third pass: the keys of the site record and of state that spans sites move under
 * their owner's tag (docs/keyspace.md): the site's under {s:<site>}, the agents'
 * (records, e-mail index, agents set, presence, an agent's lists) under {a}, the sites
 * set and the signing keys under {g}. Last, because the first pass reads agent records
 * under their old names (agent_sites). */
static int move_owned(redisContext *c, const char *P, const char *old, tally *t)
{
    static const struct {
        const char *name, *tag;
        kind k;
    } whole[] = {{"agents", "{a}:", K_AGENT_STATE},
                 {"presence", "{a}:", K_AGENT_STATE},
                 {"sites", "{g}:", K_GLOBAL},
                 {"keys", "{g}:", K_GLOBAL}};
    const char *name = old + strlen(P);
    char nk[1024];
    for (size_t i = 0; i < CD_ARRAY_LEN(whole); i++)
        if (strcmp(name, whole[i].name) == 0) {
            snprintf(nk, sizeof nk, "%s%s%s", P, whole[i].tag, name);
            return rename_one(c, old, nk, whole[i].k, t);
        }
    if (strncmp(name, "site:", 5) == 0)
        return classify_site(name + 5, nk, sizeof nk, P) ? rename_one(c, old, nk, K_SITES, t) : 0;
    /* agent:<id>[:canned], agent:email:<e>, presence:<id>; an agent's old load
     * (:active) and conversations (:convs) moved member by member in the first pass */
    bool agent = strncmp(name, "agent:", 6) == 0, presence = strncmp(name, "presence:", 9) == 0;
    const char *tail = strrchr(name, ':');
    if ((!agent && !presence) ||
        (agent && (strcmp(tail, ":active") == 0 || strcmp(tail, ":convs") == 0 || strcmp(tail, ":notices") == 0)))
        return 0; /* notices: to their sites after the passes (move_notices) */
    snprintf(nk, sizeof nk, "%s{a}:%s", P, name);
    return rename_one(c, old, nk, K_AGENT_STATE, t);
}

/* The previous release's one event stream P events (and its consumers' cursors P
 * events:cursor:<name>) becomes one stream per site, P{s:<site>}:events, with the
 * cursors in P{s:<site>}:events:cur. Entries keep their ids (a site's entries are in
 * the same order), so an entry copied by an earlier, interrupted run is refused by
 * XADD as not newer and skipped, and each cursor keeps meaning "applied up to here".
 * A consumer that had no cursor started at the end of the stream (reports: at its
 * start). The old keys go only once everything is copied. */
static const char *const ev_consumers[] = {"reports", "health", "webhooks", "rules"};

static int copy_event(redisContext *c, const char *P, redisReply *e, json_t *sites, tally *t)
{
    redisReply *f = e->element[1];
    const char *site = NULL;
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (strcmp(f->element[i]->str, "s") == 0)
            site = f->element[i + 1]->str;
    if (!site || !site[0] || strlen(site) > 100)
        return 0; /* an event without a site had no consumer that used it */
    char key[256];
    snprintf(key, sizeof key, "%s{s:%s}:events", P, site);
    size_t argc = 3 + f->elements;
    const char **argv = cd_calloc(argc, sizeof *argv);
    argv[0] = "XADD";
    argv[1] = key;
    argv[2] = e->element[0]->str;
    for (size_t i = 0; i < f->elements; i++)
        argv[3 + i] = f->element[i]->str;
    redisReply *r = redisCommandArgv(c, (int)argc, argv, NULL);
    cd_free(argv);
    int rc = 0;
    if (r && r->type == REDIS_REPLY_STRING)
        t->moved[K_EVENTS]++;
    else if (!r || !strstr(r->str, "equal or smaller"))
        rc = -1;
    freeReplyObject(r);
    json_object_set_new(sites, site, json_true());
    return rc;
}

static int move_events(redisContext *c, const char *P, tally *t)
{
    char cur[CD_ARRAY_LEN(ev_consumers)][64], after[64] = "-", last[64] = "0-0";
    redisReply *r = redisCommand(c, "XREVRANGE %sevents + - COUNT 1", P);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1)
        cd_strlcpy(last, r->element[0]->element[0]->str, sizeof last);
    freeReplyObject(r);
    for (size_t i = 0; i < CD_ARRAY_LEN(ev_consumers); i++) {
        r = redisCommand(c, "GET %sevents:cursor:%s", P, ev_consumers[i]);
        bool has = r && r->type == REDIS_REPLY_STRING && r->len < sizeof cur[i];
        cd_strlcpy(cur[i], has ? r->str : i == 0 ? "0-0" : last, sizeof cur[i]);
        freeReplyObject(r);
    }
    json_t *sites = json_object();
    int rc = 0;
    for (;;) {
        r = redisCommand(c, "XRANGE %sevents %s + COUNT 1000", P, after);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            rc = -1;
            freeReplyObject(r);
            break;
        }
        size_t n = r->elements;
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = copy_event(c, P, r->element[i], sites, t);
        if (n > 0)
            snprintf(after, sizeof after, "(%s", r->element[n - 1]->element[0]->str);
        freeReplyObject(r);
        if (rc != 0 || n < 1000)
            break;
    }
    const char *site;
    json_t *v;
    json_object_foreach(sites, site, v)
    {
        for (size_t i = 0; rc == 0 && i < CD_ARRAY_LEN(ev_consumers); i++) {
            r = redisCommand(c, "HSETNX %s{s:%s}:events:cur %s %s", P, site, ev_consumers[i], cur[i]);
            rc = r && r->type == REDIS_REPLY_INTEGER ? 0 : -1;
            freeReplyObject(r);
        }
        /* armed: the first node's pass over the site (at its start-up) applies what is owed */
        r = rc == 0 ? redisCommand(c, "SET %s{s:%s}:events:armed 1", P, site) : NULL;
        rc = rc == 0 && r && r->type == REDIS_REPLY_STATUS ? 0 : -1;
        freeReplyObject(r);
    }
    json_decref(sites);
    if (rc == 0) {
        r = redisCommand(c,
                         "DEL %sevents %sevents:cursor:reports %sevents:cursor:health %sevents:cursor:webhooks "
                         "%sevents:cursor:rules %sevents:retain_ms",
                         P, P, P, P, P, P);
        rc = r && r->type == REDIS_REPLY_INTEGER ? 0 : -1;
        freeReplyObject(r);
    }
    if (rc != 0)
        fprintf(stderr, "chatdeskd admin migrate: moving the event stream failed: %s\n", c->errstr);
    return rc;
}

/* The site of a ticket's conversation: its id names it, else the site whose ticket index
 * holds it (sites is SMEMBERS of the sites set). Empty when none does. */
static void ticket_site(redisContext *c, const char *P, const char *cid, const redisReply *sites, char *site, size_t n)
{
    const char *dot = strrchr(cid, '.');
    site[0] = '\0';
    if (dot && dot[1]) {
        cd_strlcpy(site, dot + 1, n);
        return;
    }
    for (size_t i = 0; sites && i < sites->elements && !site[0]; i++) {
        redisReply *r = redisCommand(c, "ZSCORE %s{s:%s}:tickets %s", P, sites->element[i]->str, cid);
        if (r && r->type == REDIS_REPLY_STRING)
            cd_strlcpy(site, sites->element[i]->str, n);
        freeReplyObject(r);
    }
}

/* A counter of the layout before counters per site, P <name>: every site's own,
 * P{s:<site>}:<name>, starts where it stood (only ever raised), so no site hands out an id
 * it already has; then it goes. */
static int spread_counter(redisContext *c, const char *P, const redisReply *sites, const char *name, kind k, tally *t)
{
    redisReply *seq = redisCommand(c, "GET %s%s", P, name);
    int rc = seq && seq->type != REDIS_REPLY_ERROR ? 0 : -1;
    if (seq && seq->type == REDIS_REPLY_STRING) {
        long long n = atoll(seq->str);
        for (size_t i = 0; rc == 0 && i < sites->elements; i++) {
            redisReply *cur = redisCommand(c, "GET %s{s:%s}:%s", P, sites->element[i]->str, name);
            redisReply *set = cur && (cur->type == REDIS_REPLY_NIL || atoll(cur->str) < n)
                                  ? redisCommand(c, "SET %s{s:%s}:%s %lld", P, sites->element[i]->str, name, n)
                                  : NULL;
            rc = cur && cur->type != REDIS_REPLY_ERROR && (!set || set->type == REDIS_REPLY_STATUS) ? 0 : -1;
            freeReplyObject(cur);
            freeReplyObject(set);
        }
        redisReply *del = rc == 0 ? redisCommand(c, "DEL %s%s", P, name) : NULL;
        if (del && del->type == REDIS_REPLY_INTEGER && del->integer == 1)
            t->moved[k]++;
        freeReplyObject(del);
    }
    freeReplyObject(seq);
    return rc;
}

/* Ticket numbers count per site now: each P ticket:<n> (number -> conversation id) moves
 * to P{s:<site>}:ticket:<n> of its conversation's site, and every site's counter
 * P{s:<site>}:ticket:seq starts where the one counter P ticket:seq stood (only ever
 * raised), so no site hands out a number one of its tickets already has. After the
 * passes: the ticket indexes and the sites set are under their new names by then. */
static int move_tickets(redisContext *c, const char *P, const char *pat, tally *t)
{
    redisReply *sites = redisCommand(c, "SMEMBERS %s{g}:sites", P);
    int rc = sites && sites->type == REDIS_REPLY_ARRAY ? 0 : -1;
    char cursor[32] = "0";
    do {
        redisReply *r = rc == 0 ? redisCommand(c, "SCAN %s MATCH %sticket:* COUNT 1000", cursor, pat) : NULL;
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            freeReplyObject(r);
            rc = -1;
            break;
        }
        cd_strlcpy(cursor, r->element[0]->str, sizeof cursor);
        for (size_t i = 0; rc == 0 && i < r->element[1]->elements; i++) {
            const char *old = r->element[1]->element[i]->str, *num = old + strlen(P) + 7;
            if (!num[0] || strspn(num, "0123456789") != strlen(num))
                continue;
            redisReply *cid = redisCommand(c, "GET %s", old);
            char site[128], nk[1024];
            if (cid && cid->type == REDIS_REPLY_STRING) {
                ticket_site(c, P, cid->str, sites, site, sizeof site);
                snprintf(nk, sizeof nk, "%s{s:%s}:ticket:%s", P, site, num);
                rc = site[0] ? rename_one(c, old, nk, K_TICKETS, t) : 0;
            }
            freeReplyObject(cid);
        }
        freeReplyObject(r);
    } while (rc == 0 && strcmp(cursor, "0") != 0);
    if (rc == 0)
        rc = spread_counter(c, P, sites, "ticket:seq", K_TICKETS, t);
    freeReplyObject(sites);
    if (rc != 0)
        fprintf(stderr, "chatdeskd admin migrate: moving the ticket numbers failed: %s\n", c->errstr);
    return rc;
}

/* SCAN every key under the prefix; the pattern escapes glob characters of P. */
/* An agent's notices were one list, P{a}:agent:<id>:notices; now each site keeps its own,
 * P{s:<site>}:agent:<id>:notices (written by the site's calls): each notice goes to the
 * list of the site it names, in the same order, and the old list goes, in one atomic step
 * per agent. */
static const char notices_lua[] =
    "local list = redis.call('LRANGE', KEYS[1], 0, -1)\n"
    "for i = #list, 1, -1 do\n" /* oldest first: LPUSH keeps newest first */
    "  local ok, v = pcall(cjson.decode, list[i])\n"
    "  if ok and type(v) == 'table' and type(v.site) == 'string' and v.site ~= '' then\n"
    "    redis.call('LPUSH', ARGV[1] .. '{s:' .. v.site .. '}:agent:' .. ARGV[2] .. ':notices', list[i])\n"
    "  end\n"
    "end\n"
    "return redis.call('DEL', KEYS[1])\n";

/* The agents' keys under one name: a record gets its site records (agent_sites: made where
 * missing, the role filled in where a record synced before roles were copied has none),
 * a notice list goes to its sites. */
static int scan_agents(redisContext *c, const char *P, const char *pat, const char *under, tally *t)
{
    int rc = 0;
    char cursor[32] = "0";
    size_t plen = strlen(P) + strlen(under);
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s%s* COUNT 1000", cursor, pat, under);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            freeReplyObject(r);
            rc = -1;
            break;
        }
        cd_strlcpy(cursor, r->element[0]->str, sizeof cursor);
        for (size_t i = 0; rc == 0 && i < r->element[1]->elements; i++) {
            const char *key = r->element[1]->element[i]->str, *aid = key + plen;
            const char *colon = strchr(aid, ':');
            char id[256];
            size_t n = colon ? (size_t)(colon - aid) : strlen(aid);
            if (n == 0 || n >= sizeof id || strncmp(aid, "email:", 6) == 0)
                continue;
            memcpy(id, aid, n);
            id[n] = '\0';
            if (!colon) {
                rc = agent_sites(c, P, key, id, t);
            } else if (strcmp(colon, ":notices") == 0) {
                redisReply *w = redisCommand(c, "EVAL %s 1 %s %s %s", notices_lua, key, P, id);
                rc = w && w->type == REDIS_REPLY_INTEGER ? 0 : -1;
                if (rc == 0)
                    t->moved[K_NOTICES] += w->integer;
                freeReplyObject(w);
            }
        }
        freeReplyObject(r);
    } while (rc == 0 && strcmp(cursor, "0") != 0);
    return rc;
}

/* After the passes: the agents' records and notice lists under {a} (this layout's) and,
 * for notice lists of the layout before it, under their old names; then the notice
 * counter to every site. */
static int move_notices(redisContext *c, const char *P, const char *pat, tally *t)
{
    redisReply *sites = redisCommand(c, "SMEMBERS %s{g}:sites", P);
    int rc = sites && sites->type == REDIS_REPLY_ARRAY ? 0 : -1;
    if (rc == 0)
        rc = scan_agents(c, P, pat, "{a}:agent:", t);
    if (rc == 0)
        rc = scan_agents(c, P, pat, "agent:", t);
    if (rc == 0)
        rc = spread_counter(c, P, sites, "notice:seq", K_NOTICES, t);
    if (rc == 0)
        rc = spread_counter(c, P, sites, "webhook:seq", K_WEBHOOKS, t);
    freeReplyObject(sites);
    if (rc != 0)
        fprintf(stderr, "chatdeskd admin migrate: moving the notices failed: %s\n", c->errstr);
    return rc;
}

/* P with its glob characters escaped, for SCAN MATCH. */
static void glob_escaped(const char *P, char *pat, size_t n)
{
    size_t j = 0;
    for (const char *s = P; *s && j + 3 < n; s++) {
        if (strchr("*?[]\\", *s))
            pat[j++] = '\\';
        pat[j++] = *s;
    }
    pat[j] = '\0';
}

static int scan_all(redisContext *c, const char *P, tally *t, int pass)
{
    char pat[256];
    glob_escaped(P, pat, sizeof pat - 1);
    cd_strlcpy(pat + strlen(pat), "*", 2);
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pat);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            fprintf(stderr, "chatdeskd admin migrate: SCAN failed: %s\n", r && r->str ? r->str : c->errstr);
            freeReplyObject(r);
            return -1;
        }
        cd_strlcpy(cursor, r->element[0]->str, sizeof cursor);
        redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            if (pass == 0)
                t->scanned++;
            int (*move)(redisContext *, const char *, const char *, tally *) = pass == 0   ? move_key
                                                                               : pass == 1 ? move_late
                                                                                           : move_owned;
            if (move(c, P, keys->element[i]->str, t) != 0) {
                freeReplyObject(r);
                return -1;
            }
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

int cd_admin__migrate(const char *P, redisContext *c)
{
    tally t = {.conflict_keys = json_array()};
    /* events first: each copied entry names its site, nothing reads other keys for it */
    int rc = move_events(c, P, &t);
    for (int pass = 0; pass < 3 && rc == 0; pass++)
        rc = scan_all(c, P, &t, pass);
    char pat[256];
    glob_escaped(P, pat, sizeof pat);
    if (rc == 0)
        rc = move_tickets(c, P, pat, &t);
    if (rc == 0)
        rc = move_notices(c, P, pat, &t);
    if (rc == 0) {
        json_t *moved = json_object();
        long long total = 0;
        for (int k = 0; k < K__COUNT; k++) {
            json_object_set_new(moved, kind_names[k], json_integer(t.moved[k]));
            total += t.moved[k];
        }
        json_object_set_new(moved, "total", json_integer(total));
        json_t *out = json_pack("{s:o,s:{s:I},s:I,s:I,s:O}", "moved", moved, "deleted", "dedupe",
                                (json_int_t)t.dedupe_deleted, "conflicts", (json_int_t)t.conflicts, "scanned",
                                (json_int_t)t.scanned, "conflict_keys", t.conflict_keys);
        char *text = json_dumps(out, JSON_COMPACT);
        puts(text);
        free(text);
        json_decref(out);
    }
    json_decref(t.conflict_keys);
    return rc;
}
