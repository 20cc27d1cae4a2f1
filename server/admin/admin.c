/* admin: the `chatdeskd admin <command> [options]` CLI.
 *
 * Adds, changes and lists sites, teams and agents by talking to Redis directly with a
 * blocking hiredis connection. It is a short-lived command run by an operator, never part
 * of a node's event loop, so blocking calls are fine here (STYLE B8 is about the loop).
 *
 * Every write runs the admin API's own operation (store/lua/api.lua, from the function
 * library the nodes load, FCALL with its key declared) as the operator, an owner of every
 * site: one implementation and one set of rules for the API and the CLI (ARCHITECTURE
 * "Processes and commands"). The operation checks, writes, indexes and publishes
 * atomically (site.changed / agent.changed on ch:sites: nodes reload their site cache and
 * re-run queue assignment); a second admin racing on the same key or e-mail gets
 * "already exists", never half a record. The CLI itself checks only the command line
 * (options, CATEGORY=TEAM syntax) and the password, which the function only sees hashed
 * (by the rule the API applies, CD_AUTH_PASSWORD_RULE).
 *
 * Exit 2 for a usage error or a value the operation refuses (the API's bad_request),
 * 1 for anything else decided by what Redis holds (duplicates, unknown sites or agents)
 * and for Redis failures. Secrets (password hashes, identity secrets) are written but
 * never printed; listings only say whether identity verification is on.
 *
 * Results go to stdout as one line of JSON (add and set commands, `--json` listings)
 * or an aligned table; diagnostics go to stderr prefixed with "chatdeskd admin: ".
 */
#include "chatdesk/admin.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "admin_int.h"
#include "chatdesk/auth.h"
#include "chatdesk/base.h"
#include "chatdesk/clock.h"
#include "chatdesk/config.h"
#include "chatdesk/store.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define KEY_MAX 64
#define SECRET_MAX 512
#define CMD_TIMEOUT_MIN_MS 5000
#define AUTO_CLOSE_DEFAULT 86400 /* what nodes assume when a site has no auto_close_s */

static const char usage_text[] =
    "Usage: chatdeskd [config flags] admin <command> [options]\n"
    "\n"
    "Commands:\n"
    "  site-add   --key KEY --name NAME --origin URL [--origin URL ...] [--identity-secret SECRET|-]\n"
    "             Add a site. KEY is 1-64 characters of A-Z a-z 0-9 _ -. Each URL is an exact\n"
    "             origin: https://example.com or http://localhost:3000 (lowercase, no path, no\n"
    "             trailing slash, no default port). SECRET (16+ bytes) turns on identity verification;\n"
    "             '-' reads it from the first line of stdin (keep secrets off command lines).\n"
    "  site-set   --key KEY [--name NAME] [--origin URL ...]\n"
    "             [--identity-secret SECRET|- | --no-identity-secret] [--auto-assign on|off]\n"
    "             [--category-team CATEGORY=TEAM ...] [--auto-close-s N] [--ack-en TEXT] [--ack-zh TEXT]\n"
    "             Change a site; only the given settings change. --origin and --category-team\n"
    "             replace the whole list or map when given at least once; each TEAM must exist\n"
    "             on the site, and CATEGORY= (no team) leaves that category out, so a lone\n"
    "             '--category-team CATEGORY=' clears the map. --auto-close-s is how long a\n"
    "             resolved chat stays before it closes (0-31536000 s, 0 = never; default 86400).\n"
    "             The acknowledgement texts (up to 1000 bytes; empty = the built-in text) greet\n"
    "             each new chat. Nodes re-run queue assignment afterwards.\n"
    "  team-add   --site KEY --key TEAM --name NAME\n"
    "             Add a team to a site. TEAM is like a site key ('_' is reserved).\n"
    "  agent-add  --email EMAIL --password PASSWORD --name NAME --site KEY [--site KEY ...]\n"
    "             [--team TEAM ...] [--role agent|admin|owner] [--max-chats N]\n"
    "             Add an agent serving the given sites. PASSWORD is 12-128 bytes; '--password -'\n"
    "             reads it from the first line of stdin. Each TEAM must exist on one of the sites.\n"
    "             Role defaults to agent (admin: administers its sites; owner: also creates\n"
    "             sites), max-chats (concurrent chats) to 5 (1-100).\n"
    "  agent-set  --email EMAIL [--name NAME] [--role agent|admin|owner] [--max-chats N]\n"
    "             [--team TEAM ... | --no-teams] [--disabled on|off]\n"
    "             Change an agent; only the given settings change. --team replaces the agent's\n"
    "             teams (each must exist on one of its sites). A disabled agent cannot log in\n"
    "             and gets no chats. Nodes re-run queue assignment on the agent's sites.\n"
    "  totp-reset --email EMAIL\n"
    "             Turn an agent's two-factor login off (a lost authenticator): its secret and\n"
    "             recovery codes are deleted; it logs in with its password and enrols again\n"
    "             where a site requires two-factor login.\n"
    "  site-list  [--json]\n"
    "             List every site (a table, or a JSON array with --json). Secrets never show.\n"
    "  team-list  --site KEY [--json]\n"
    "             List the teams of a site.\n"
    "  agent-list [--site KEY] [--json]\n"
    "             List every agent, or the agents of one site.\n"
    "  migrate    Move the keys a previous release wrote to this release's layout (per-site\n"
    "             hash tags, docs/keyspace.md \"Upgrades\"). Safe to run again: a run that\n"
    "             stopped resumes, a finished one moves nothing. Prints what moved as JSON.\n"
    "  help       Show this text.\n"
    "\n"
    "Config flags such as --redis URL and --prefix P may also be given among the options\n"
    "(see 'chatdeskd --help'). Add and set commands print the resulting record as one line of\n"
    "JSON. They run the admin API's own operations, so its rules and messages apply. Exit\n"
    "status: 0 ok, 1 runtime error (Redis, duplicate, unknown site or agent), 2 usage error or\n"
    "a value the operation refuses (including an unknown team, or an unknown site of an agent).\n";

/* ---- small helpers ---- */

static void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void errorf(const char *fmt, ...)
{
    va_list ap;
    fputs("chatdeskd admin: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* A usage error: the message, then the usage text, both on stderr. Returns 2. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("chatdeskd admin: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n\n", stderr);
    fputs(usage_text, stderr);
    return EXIT_USAGE;
}

/* A bad option value: the message and a hint, on stderr. Returns 2. */
static int value_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int value_error(const char *fmt, ...)
{
    va_list ap;
    fputs("chatdeskd admin: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'chatdeskd admin help'.\n", stderr);
    return EXIT_USAGE;
}

/* Heap string of printf output. */
static char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *s = cd_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if the bytes there are not
 * valid UTF-8 (overlong forms, surrogates and values above U+10FFFF included). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned min, cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, min = 0x80, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, min = 0x800, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A copy of s safe to show on a terminal or put in JSON: invalid UTF-8 bytes and
 * control characters (but for line feeds and tabs when multiline, which JSON escapes)
 * become '?'. Returns a new heap string. */
static char *sanitize_ml(const char *s, bool multiline)
{
    size_t n = strlen(s);
    char *out = cd_malloc(n + 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    while (n) {
        size_t l = utf8_seq(p, n);
        if (l == 0 || (*p < 0x20 && !(multiline && (*p == '\n' || *p == '\t'))) || *p == 0x7f) {
            out[o++] = '?';
            l = 1;
        } else {
            memcpy(out + o, p, l);
            o += l;
        }
        p += l;
        n -= l;
    }
    out[o] = '\0';
    return out;
}

static char *sanitize(const char *s)
{
    return sanitize_ml(s, false);
}

/* Number of code points in a valid UTF-8 string (the display width we assume). */
static size_t utf8_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xc0) != 0x80)
            w++;
    return w;
}

/* A JSON string from data read back from Redis (sanitized, so never NULL). New reference. */
static json_t *jstr(const char *s)
{
    char *clean = sanitize(s ? s : "");
    json_t *j = json_string(clean);
    cd_free(clean);
    return j;
}

/* The same for multi-line text (acknowledgements): line feeds and tabs are kept. */
static json_t *jstr_ml(const char *s)
{
    char *clean = sanitize_ml(s ? s : "", true);
    json_t *j = json_string(clean);
    cd_free(clean);
    return j;
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- validation ---- */

static bool valid_key(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '_' || c == '-') || c >= 0x80)
            return false;
    }
    return true;
}

/* A value error for a bad site or team key (what: "site key", "team"). Returns 2. */
static int bad_key(const char *what, const char *s)
{
    char *shown = sanitize(s);
    int rc = value_error("%s must be 1-64 characters of A-Z a-z 0-9 _ -: got '%s'", what, shown);
    cd_free(shown);
    return rc;
}

/* ---- options ---- */

#define ADMIN_OPTIONS(X)                     \
    X(KEY, "key", false)                     \
    X(NAME, "name", false)                   \
    X(ORIGIN, "origin", false)               \
    X(SECRET, "identity-secret", false)      \
    X(EMAIL, "email", false)                 \
    X(PASSWORD, "password", false)           \
    X(SITE, "site", false)                   \
    X(TEAM, "team", false)                   \
    X(ROLE, "role", false)                   \
    X(MAX_CHATS, "max-chats", false)         \
    X(NO_SECRET, "no-identity-secret", true) \
    X(AUTO_ASSIGN, "auto-assign", false)     \
    X(CATEGORY_TEAM, "category-team", false) \
    X(AUTO_CLOSE, "auto-close-s", false)     \
    X(ACK_EN, "ack-en", false)               \
    X(ACK_ZH, "ack-zh", false)               \
    X(NO_TEAMS, "no-teams", true)            \
    X(DISABLED, "disabled", false)           \
    X(JSON, "json", true)

typedef enum opt_id {
#define OPT_ENUM(id, name, is_flag) OPT_##id,
    ADMIN_OPTIONS(OPT_ENUM)
#undef OPT_ENUM
        OPT__COUNT
} opt_id;

_Static_assert(OPT__COUNT <= 32, "command option sets are 32-bit masks");

static const struct {
    const char *name;
    bool is_flag; /* takes no value */
} opt_defs[] = {
#define OPT_DEF(id, name, is_flag) {name, is_flag},
    ADMIN_OPTIONS(OPT_DEF)
#undef OPT_DEF
};

#define BIT(o) (1u << (o))

typedef struct opt_val {
    opt_id id;
    const char *value;
} opt_val;

/* The command's options in the order given; values borrow argv. */
typedef struct args {
    opt_val *v;
    size_t n;
    bool help;
} args;

static const char *arg_get(const args *a, opt_id id)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].id == id)
            return a->v[i].value;
    return NULL;
}

/* Collects the values of a repeatable option into out (a->n entries), dropping
 * repeats. Returns how many. */
static size_t arg_all(const args *a, opt_id id, const char **out)
{
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (a->v[i].id != id)
            continue;
        bool dup = false;
        for (size_t j = 0; j < k && !dup; j++)
            dup = strcmp(out[j], a->v[i].value) == 0;
        if (!dup)
            out[k++] = a->v[i].value;
    }
    return k;
}

typedef struct command command;
struct command {
    const char *name;
    int (*run)(cd_config *cfg, const args *a);
    unsigned allowed;  /* BIT(opt) of options it takes */
    unsigned required; /* ... of those that must be given */
    unsigned multi;    /* ... of those that may repeat */
};

/* Compares an option name as typed (dashes or underscores, not NUL-terminated)
 * with a canonical name, treating '-' and '_' alike. */
static bool name_eq(const char *typed, size_t n, const char *canon)
{
    size_t i = 0;
    for (; i < n && canon[i]; i++) {
        char a = typed[i] == '_' ? '-' : typed[i];
        char b = canon[i] == '_' ? '-' : canon[i];
        if (a != b)
            return false;
    }
    return i == n && canon[i] == '\0';
}

/* Parses argv[1..] into a (whose v must hold argc entries). Admin options are
 * checked against the command; config flags (--redis, --prefix, ...) are applied
 * to cfg on the spot. Returns 0, or the exit code after printing a usage error. */
static int parse_args(cd_config *cfg, const command *cmd, int argc, char **argv, args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            a->help = true;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
            return usage_error("unexpected argument '%s'", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);

        int id = -1;
        for (int k = 0; k < OPT__COUNT; k++)
            if (name_eq(name, nlen, opt_defs[k].name))
                id = k;
        if (id >= 0) {
            if (!(cmd->allowed & BIT(id)))
                return usage_error("option --%s is not valid for %s", opt_defs[id].name, cmd->name);
            const char *value;
            if (opt_defs[id].is_flag) {
                if (eq)
                    return usage_error("option --%s takes no value", opt_defs[id].name);
                value = "true";
            } else if (eq) {
                value = eq + 1;
            } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                value = argv[++i]; /* a value starting with "--" needs the --opt=VALUE form */
            } else {
                return usage_error("option --%s needs a value", opt_defs[id].name);
            }
            if (!(cmd->multi & BIT(id)) && arg_get(a, (opt_id)id))
                return usage_error("option --%s given more than once", opt_defs[id].name);
            a->v[a->n].id = (opt_id)id;
            a->v[a->n].value = value;
            a->n++;
            continue;
        }

        /* Not an admin option: a config flag such as --redis or --prefix (or a typo,
         * which cd_config_apply_flag reports as an unknown option). */
        char flag[128];
        if (nlen >= sizeof flag)
            return usage_error("unknown option --%.40s...", name);
        memcpy(flag, name, nlen);
        flag[nlen] = '\0';
        const char *value = NULL;
        if (eq)
            value = eq + 1;
        else if (!cd_config_is_bool(flag) && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
            value = argv[++i];
        char err[256];
        if (cd_config_apply_flag(cfg, flag, value, err, sizeof err) != 0)
            return usage_error("%s", err);
    }
    if (a->help)
        return 0;
    char verr[256];
    if (cd_config_validate(cfg, verr, sizeof verr) != 0)
        return usage_error("%s", verr);
    for (int k = 0; k < OPT__COUNT; k++)
        if ((cmd->required & BIT(k)) && !arg_get(a, (opt_id)k))
            return usage_error("%s needs --%s", cmd->name, opt_defs[k].name);
    return 0;
}

/* ---- Redis ---- */

static struct timeval ms_to_tv(int64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* Runs one command given as NUL-terminated strings. Prints the error and returns
 * NULL on an I/O failure or an error reply; otherwise returns the reply, which the
 * caller frees. */
static redisReply *follow_redirect(redisReply *r, int argc, const char **argv, const size_t *lens);

static redisReply *rcall(redisContext *c, int argc, const char **argv)
{
    size_t *lens = cd_malloc(sizeof *lens * (size_t)argc);
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = follow_redirect(redisCommandArgv(c, argc, argv, lens), argc, argv, lens);
    cd_free(lens);
    if (!r) {
        errorf("Redis error: %s", c->errstr[0] ? c->errstr : "connection lost");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        errorf("Redis error: %s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* Connects as the config says: TCP or unix socket with the connect timeout, AUTH
 * when a password is set (redis_password wins over the URL's; as redis_user when set),
 * SELECT when db != 0.
 * Returns the context, or NULL with *rc set after printing the reason. */
/* redis+sentinel://: ask the sentinels in turn where the primary of addr->master is, and
 * put it in addr->host/port. 0, or -1 after printing why. */
static int sentinel_resolve(const cd_config *cfg, cd_redis_addr *addr)
{
    struct timeval tv = ms_to_tv(cfg->redis_connect_timeout_ms);
    for (size_t i = 0; i < addr->n_endpoints; i++) {
        const cd_redis_endpoint *s = &addr->endpoints[i];
        redisContext *c = redisConnectWithTimeout(s->host, s->port, tv);
        redisReply *r = NULL;
        if (c && !c->err) {
            redisSetTimeout(c, tv);
            r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", addr->master);
        }
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
            r->element[1]->type == REDIS_REPLY_STRING) {
            cd_strlcpy(addr->host, r->element[0]->str, sizeof addr->host);
            addr->port = atoi(r->element[1]->str);
            freeReplyObject(r);
            redisFree(c);
            return 0;
        }
        if (r)
            freeReplyObject(r);
        if (c)
            redisFree(c);
    }
    errorf("cannot find the primary of '%s': no sentinel of the Redis URL answered", addr->master);
    return -1;
}

/* The config the connections are opened with: a Redis Cluster redirection opens one more. */
static const cd_config *open_cfg;

/* Connects to the Redis of the URL, or when host is given to that server (a Redis Cluster
 * primary that a redirection names: same credentials, database 0). */
static redisContext *redis_open_to(const cd_config *cfg, const char *host, int port, int *rc)
{
    cd_redis_addr addr;
    char err[256];
    char where[300];
    redisContext *c = NULL;
    redisReply *r = NULL;

    open_cfg = cfg;
    if (cd_config_parse_redis_url(cfg->redis, &addr, err, sizeof err) != 0) {
        *rc = value_error("invalid Redis URL: %s", err);
        return NULL;
    }
    if (host) {
        cd_strlcpy(addr.host, host, sizeof addr.host);
        addr.port = port;
        addr.is_unix = addr.sentinel = false;
        addr.db = 0;
    }
    if (addr.sentinel && sentinel_resolve(cfg, &addr) != 0) {
        *rc = EXIT_FAIL;
        return NULL;
    }
    if (addr.is_unix)
        snprintf(where, sizeof where, "%s", addr.host);
    else
        snprintf(where, sizeof where, "%s:%d", addr.host, addr.port);

    struct timeval tv = ms_to_tv(cfg->redis_connect_timeout_ms);
    c = addr.is_unix ? redisConnectUnixWithTimeout(addr.host, tv) : redisConnectWithTimeout(addr.host, addr.port, tv);
    if (!c || c->err) {
        errorf("cannot connect to Redis at %s: %s", where, c ? c->errstr : "out of memory");
        goto fail;
    }
    int64_t cmd_ms =
        cfg->redis_connect_timeout_ms > CMD_TIMEOUT_MIN_MS ? cfg->redis_connect_timeout_ms : CMD_TIMEOUT_MIN_MS;
    redisSetTimeout(c, ms_to_tv(cmd_ms));

    const char *pw = cfg->redis_password && cfg->redis_password[0] ? cfg->redis_password : addr.password;
    if (pw[0]) {
        r = cfg->redis_user[0] ? redisCommand(c, "AUTH %s %s", cfg->redis_user, pw) : redisCommand(c, "AUTH %s", pw);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            errorf("cannot connect to Redis at %s: AUTH failed: %s", where, r ? r->str : c->errstr);
            goto fail;
        }
        freeReplyObject(r);
        r = NULL;
    }
    if (addr.db != 0) {
        r = redisCommand(c, "SELECT %d", addr.db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            errorf("cannot connect to Redis at %s: SELECT %d failed: %s", where, addr.db, r ? r->str : c->errstr);
            goto fail;
        }
        freeReplyObject(r);
        r = NULL;
    }
    /* A server that wants a password we lack answers NOAUTH only now; say so as a
     * connection problem rather than failing on the first real command. */
    r = redisCommand(c, "PING");
    if (!r || r->type == REDIS_REPLY_ERROR) {
        errorf("cannot connect to Redis at %s: %s", where, r ? r->str : c->errstr);
        goto fail;
    }
    freeReplyObject(r);
    explicit_bzero(&addr, sizeof addr);
    return c;

fail:
    explicit_bzero(&addr, sizeof addr);
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    *rc = EXIT_FAIL;
    return NULL;
}

static redisContext *redis_open(const cd_config *cfg, int *rc)
{
    return redis_open_to(cfg, NULL, 0, rc);
}

redisContext *cd_admin__redis_open(const cd_config *cfg, int *rc)
{
    return redis_open(cfg, rc);
}

/* Redis Cluster: the reply "MOVED <slot> <host>:<port>" (or "ASK …") names the primary that
 * holds the command's key, and the command goes there (after ASKING for ASK). Every command
 * the CLI sends touches one slot, so one redirection is all it needs. Any other reply
 * comes back as it is. */
static redisContext *redirected(const redisReply *r)
{
    bool ask = r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "ASK ", 4) == 0;
    if (!open_cfg || !r || r->type != REDIS_REPLY_ERROR || !(ask || strncmp(r->str, "MOVED ", 6) == 0))
        return NULL;
    const char *sp = strrchr(r->str, ' '), *colon = sp ? strrchr(sp, ':') : NULL; /* "<slot> <host>:<port>" */
    char host[256];
    int rc;
    if (!colon || (size_t)(colon - sp - 1) >= sizeof host)
        return NULL;
    memcpy(host, sp + 1, (size_t)(colon - sp - 1));
    host[colon - sp - 1] = '\0';
    redisContext *c = redis_open_to(open_cfg, host, atoi(colon + 1), &rc);
    if (c && ask)
        freeReplyObject(redisCommand(c, "ASKING"));
    return c;
}

static redisReply *follow_redirect(redisReply *r, int argc, const char **argv, const size_t *lens)
{
    redisContext *c = redirected(r);
    if (!c)
        return r;
    freeReplyObject(r);
    r = redisCommandArgv(c, argc, argv, lens);
    redisFree(c);
    return r;
}

/* The value of field in an HGETALL reply, or NULL. Borrowed from the reply. */
static const char *hash_get(const redisReply *r, const char *field)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, field) == 0 &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            return r->element[i + 1]->str;
    return NULL;
}

/* SMEMBERS key, sorted. Returns 0 and a heap array of borrowed strings in *out
 * (valid while *reply lives), or -1 after printing the error. */
static int members_sorted(redisContext *c, const char *key, redisReply **reply, const char ***out, size_t *n)
{
    const char *argv[] = {"SMEMBERS", key};
    redisReply *r = rcall(c, 2, argv);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        errorf("unexpected reply to SMEMBERS %s", key);
        freeReplyObject(r);
        return -1;
    }
    const char **v = cd_calloc(r->elements + 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            v[k++] = r->element[i]->str;
    qsort(v, k, sizeof *v, cmp_str);
    *reply = r;
    *out = v;
    *n = k;
    return 0;
}

/* A record's key from its id (cd_key_agent, site_key). */
typedef const char *(*key_of_id)(cd_key *k, const char *P, const char *id);

/* P{s:<site>}:site, the site's record */
static const char *site_key(cd_key *k, const char *P, const char *site)
{
    return cd_key_site(k, P, site, "");
}

/* HGETALL of each id's key, pipelined. Returns a heap array of n replies (each freed by
 * the caller, and the array with cd_free), or NULL after printing the error. */
static redisReply **hgetall_many(redisContext *c, const cd_config *cfg, key_of_id key_of, const char **ids, size_t n)
{
    redisReply **out = cd_calloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        cd_key k;
        const char *argv[] = {"HGETALL", key_of(&k, cfg->prefix, ids[i])};
        size_t lens[] = {7, strlen(argv[1])};
        redisAppendCommandArgv(c, 2, argv, lens);
    }
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK || !r) {
            errorf("Redis error: %s", c->errstr[0] ? c->errstr : "connection lost");
            ok = false;
            break;
        }
        out[i] = r;
        if (out[i]->type == REDIS_REPLY_ERROR) {
            errorf("Redis error: %s", out[i]->str);
            ok = false;
        }
    }
    if (!ok) {
        for (size_t i = 0; i < n; i++)
            if (out[i])
                freeReplyObject(out[i]);
        cd_free(out);
        return NULL;
    }
    return out;
}

/* ---- tables ---- */

/* A text table, row-major; every cell is a sanitized heap string. */
typedef struct table {
    size_t ncols;
    size_t nrows;
    size_t cap;
    char **cells;
} table;

/* Prints the table with columns two spaces apart, the last one unpadded, and frees it. */
static void table_print(table *t)
{
    size_t *w = cd_calloc(t->ncols, sizeof *w);
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t col = 0; col < t->ncols; col++) {
            size_t cw = utf8_width(t->cells[r * t->ncols + col]);
            if (cw > w[col])
                w[col] = cw;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t col = 0; col < t->ncols; col++) {
            const char *s = t->cells[r * t->ncols + col];
            fputs(s, stdout);
            if (col + 1 < t->ncols)
                for (size_t pad = utf8_width(s); pad < w[col] + 2; pad++)
                    fputc(' ', stdout);
        }
        fputc('\n', stdout);
    }
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        cd_free(t->cells[i]);
    cd_free(t->cells);
    cd_free(w);
}

static void table_row(table *t, const char **cols)
{
    if ((t->nrows + 1) * t->ncols > t->cap) {
        t->cap = t->cap ? t->cap * 2 : t->ncols * 16;
        while (t->cap < (t->nrows + 1) * t->ncols)
            t->cap *= 2;
        t->cells = cd_realloc(t->cells, sizeof *t->cells * t->cap);
    }
    for (size_t i = 0; i < t->ncols; i++)
        t->cells[t->nrows * t->ncols + i] = sanitize(cols[i] ? cols[i] : "");
    t->nrows++;
}

/* Joins the strings of a JSON array with ", " (non-strings skipped). New heap string. */
static char *join_array(const json_t *arr)
{
    cd_buf b;
    cd_buf_init(&b);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            continue;
        if (b.len)
            cd_buf_append_str(&b, ", ");
        cd_buf_append_str(&b, json_string_value(v));
    }
    char *s = cd_strdup(b.data ? b.data : "");
    cd_buf_cleanup(&b);
    return s;
}

/* A JSON array field read back from Redis (e.g. origins); an empty array when
 * missing or malformed. New reference. */
static json_t *json_array_field(const char *s)
{
    json_t *j = s ? json_loads(s, 0, NULL) : NULL;
    if (!json_is_array(j)) {
        json_decref(j);
        return json_array();
    }
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v)
    {
        if (json_is_string(v))
            json_array_append_new(out, jstr(json_string_value(v)));
    }
    json_decref(j);
    return out;
}

static json_int_t int_field(const char *s)
{
    return s ? (json_int_t)strtoll(s, NULL, 10) : 0;
}

/* A JSON object field of strings read back from Redis (category_teams); an empty
 * object when missing or malformed. New reference. */
static json_t *json_object_field(const char *s)
{
    json_t *j = s ? json_loads(s, 0, NULL) : NULL;
    json_t *out = json_object();
    const char *k;
    json_t *v;
    if (json_is_object(j)) {
        json_object_foreach(j, k, v)
        {
            if (!json_is_string(v))
                continue;
            char *clean = sanitize(k);
            json_object_set_new(out, clean, jstr(json_string_value(v)));
            cd_free(clean);
        }
    }
    json_decref(j);
    return out;
}

/* The site record as listings and site-set show it, from its HGETALL reply: never the
 * secret, only whether there is one; unset routing settings show their defaults. */
static json_t *site_object(const char *key, const redisReply *h)
{
    const char *secret = hash_get(h, "identity_secret");
    const char *aa = hash_get(h, "auto_assign");
    const char *close = hash_get(h, "auto_close_s");
    json_t *o = json_object();
    json_object_set_new(o, "key", jstr(key));
    json_object_set_new(o, "name", jstr(hash_get(h, "name")));
    json_object_set_new(o, "origins", json_array_field(hash_get(h, "origins")));
    json_object_set_new(o, "identity_verification", json_boolean(secret && secret[0]));
    json_object_set_new(o, "auto_assign", json_boolean(!aa || strcmp(aa, "0") != 0));
    json_object_set_new(o, "category_teams", json_object_field(hash_get(h, "category_teams")));
    json_object_set_new(o, "auto_close_s", json_integer(close && close[0] ? int_field(close) : AUTO_CLOSE_DEFAULT));
    json_object_set_new(o, "ack_text_en", jstr_ml(hash_get(h, "ack_text_en")));
    json_object_set_new(o, "ack_text_zh", jstr_ml(hash_get(h, "ack_text_zh")));
    json_object_set_new(o, "created_at", json_integer(int_field(hash_get(h, "created_at"))));
    return o;
}

/* The agent record as listings and agent-set show it, from its HGETALL reply: never
 * the password hash. */
static json_t *agent_object(const char *id, const redisReply *h)
{
    const char *dis = hash_get(h, "disabled");
    json_t *o = json_object();
    json_object_set_new(o, "id", jstr(id));
    json_object_set_new(o, "email", jstr(hash_get(h, "email")));
    json_object_set_new(o, "name", jstr(hash_get(h, "name")));
    json_object_set_new(o, "role", jstr(hash_get(h, "role")));
    json_object_set_new(o, "sites", json_array_field(hash_get(h, "sites")));
    json_object_set_new(o, "teams", json_array_field(hash_get(h, "teams")));
    json_object_set_new(o, "status", jstr(hash_get(h, "status")));
    json_object_set_new(o, "max_chats", json_integer(int_field(hash_get(h, "max_chats"))));
    json_object_set_new(o, "disabled", json_boolean(dis && strcmp(dis, "1") == 0));
    json_object_set_new(o, "created_at", json_integer(int_field(hash_get(h, "created_at"))));
    return o;
}

/* HGETALL key. Returns the reply (the caller frees it), or NULL after printing the
 * error. An empty array means the hash is gone. */
static redisReply *hgetall(redisContext *c, const char *key)
{
    const char *argv[] = {"HGETALL", key};
    redisReply *r = rcall(c, 2, argv);
    if (r && r->type != REDIS_REPLY_ARRAY) {
        errorf("unexpected reply to HGETALL %s", key);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* true when key exists; -1 after printing a Redis error. */
static int key_exists(redisContext *c, const char *key)
{
    const char *argv[] = {"EXISTS", key};
    redisReply *r = rcall(c, 2, argv);
    if (!r)
        return -1;
    int exists = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return exists;
}

/* "never", "1d", "12h", "90m" or "45s" for an auto-close delay in seconds. */
static void format_secs(json_int_t s, char *out, size_t outsz)
{
    if (s <= 0)
        snprintf(out, outsz, "never");
    else if (s % 86400 == 0)
        snprintf(out, outsz, "%" JSON_INTEGER_FORMAT "d", s / 86400);
    else if (s % 3600 == 0)
        snprintf(out, outsz, "%" JSON_INTEGER_FORMAT "h", s / 3600);
    else if (s % 60 == 0)
        snprintf(out, outsz, "%" JSON_INTEGER_FORMAT "m", s / 60);
    else
        snprintf(out, outsz, "%" JSON_INTEGER_FORMAT "s", s);
}

/* "billing=sales, tech=support" for a category map, "-" when empty. New heap string. */
static char *join_map(const json_t *obj)
{
    cd_buf b;
    cd_buf_init(&b);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (b.len)
            cd_buf_append_str(&b, ", ");
        cd_buf_append_str(&b, k);
        cd_buf_append_str(&b, "=");
        cd_buf_append_str(&b, json_string_value(v) ? json_string_value(v) : "");
    }
    char *s = cd_strdup(b.len ? b.data : "-");
    cd_buf_cleanup(&b);
    return s;
}

/* "2024-11-24 11:38" (UTC) for a unix-ms timestamp; "-" for 0. */
static void format_time(json_int_t ms, char *out, size_t outsz)
{
    if (ms <= 0) {
        snprintf(out, outsz, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, outsz, "%Y-%m-%d %H:%M", &tm) == 0)
        snprintf(out, outsz, "-");
}

/* ---- the admin API's operations ---- */

/* The write commands run the HTTP admin API's own operations (store/lua/api.lua, the
 * function library every node loads) as the operator, so the CLI and the API validate
 * and write the same way (ARCHITECTURE "one implementation"). The CLI checks only what
 * the command line itself says (options, CATEGORY=TEAM syntax) and the password, which
 * the function only sees hashed; every value is the function's to refuse. */

/* FUNCTION LOAD of the library (already there from a node of this version is fine).
 * 0, or -1 after printing why. */
static int load_library(redisContext *c, const cd_store_lib *lib)
{
    const char *argv[] = {"FUNCTION", "LOAD", lib->text};
    size_t lens[] = {8, 4, lib->len};
    redisReply *r = redisCommandArgv(c, 3, argv, lens);
    bool ok =
        r && (r->type == REDIS_REPLY_STRING || (r->type == REDIS_REPLY_ERROR && strstr(r->str, "already exists")));
    if (!ok)
        errorf("cannot load the function library: %s", r ? r->str : c->errstr);
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

/* FCALL <library>_<script> nkeys keys… P args…: the one way the CLI calls the function library
 * (admin_int.h). Follows a Redis Cluster redirect once and loads the library when Redis
 * does not have it yet. The reply, or NULL after printing why. */
static redisReply *fcall_at(redisContext *c, const cd_config *cfg, const char *script, int nkeys,
                            const char *const *keys, int nargs, const char *const *fargs, bool moved);

redisReply *cd_admin__fcall(redisContext *c, const cd_config *cfg, const char *script, int nkeys,
                            const char *const *keys, int nargs, const char *const *fargs)
{
    return fcall_at(c, cfg, script, nkeys, keys, nargs, fargs, false);
}

static redisReply *fcall_at(redisContext *c, const cd_config *cfg, const char *script, int nkeys,
                            const char *const *keys, int nargs, const char *const *fargs, bool moved)
{
    cd_store_lib lib;
    cd_redis_addr addr;
    char err[256];
    bool cluster = cd_config_parse_redis_url(cfg->redis, &addr, err, sizeof err) == 0 && addr.cluster;
    explicit_bzero(&addr, sizeof addr);
    if (cd_store_lib_build(&lib, cluster) != 0) {
        errorf("cannot build the function library");
        return NULL;
    }
    char fname[64];
    snprintf(fname, sizeof fname, "%s_%s", lib.name, script);
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    int argc = 4 + nkeys + nargs;
    const char **argv = cd_malloc(sizeof *argv * (size_t)argc);
    argv[0] = "FCALL";
    argv[1] = fname;
    argv[2] = nk;
    for (int i = 0; i < nkeys; i++)
        argv[3 + i] = keys[i];
    argv[3 + nkeys] = cfg->prefix;
    for (int i = 0; i < nargs; i++)
        argv[4 + nkeys + i] = fargs[i];
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    redisContext *there = moved ? NULL : redirected(r);
    if (there) { /* Redis Cluster: the key's primary is another one (once) */
        freeReplyObject(r);
        r = fcall_at(there, cfg, script, nkeys, keys, nargs, fargs, true);
        redisFree(there);
    } else if (r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "Function not found")) {
        freeReplyObject(r);
        r = load_library(c, &lib) == 0 ? redisCommandArgv(c, argc, argv, NULL) : NULL;
    } else if (!r) {
        errorf("Redis error: %s", c->errstr[0] ? c->errstr : "connection lost");
    }
    if (!there && r && r->type == REDIS_REPLY_ERROR) {
        errorf("Redis error: %s", r->str);
        freeReplyObject(r);
        r = NULL;
    }
    cd_free(argv);
    cd_store_lib_free(&lib);
    return r;
}

/* The API's ARGV after P: op "" params now fresh retain 0 "" 0 operator "" days, with the
 * tenth that makes the caller the operator (the audit log names it so, from no client
 * address, and keeps audit_retain_days); script: "api", or the family of the operation,
 * "api_totp". */
static redisReply *fcall_api(redisContext *c, const cd_config *cfg, const char *script, const char *op, const char *key,
                             const char *params)
{
    char now[24], fresh[64], retain[24], days[24];
    snprintf(now, sizeof now, "%llu", (unsigned long long)cd_now_ms());
    cd_id_new(strncmp(op, "admin_agent", 11) == 0 ? "a" : "m", fresh, sizeof fresh);
    snprintf(retain, sizeof retain, "%lld", (long long)cfg->history_retain);
    snprintf(days, sizeof days, "%lld", (long long)cfg->audit_retain_days);
    const char *a[] = {op, "", params, now, fresh, retain, "0", "", "0", "operator", "", days};
    const char *keys[] = {key};
    return cd_admin__fcall(c, cfg, script, 1, keys, (int)CD_ARRAY_LEN(a), a);
}

/* Runs admin API operation op with params (stolen) as the operator; key is the key the
 * call is about. Returns the reply's body (new reference), or NULL with *rc set after
 * printing the operation's refusal: exit 2 for a value it refuses (bad_request, the
 * API's 400), 1 for anything else (unknown site or agent, a duplicate, Redis). */
static json_t *api_op_in(const cd_config *cfg, const char *script, const char *op, const char *key, json_t *params,
                         int *rc)
{
    char *ptext = json_dumps(params, JSON_COMPACT);
    json_decref(params);
    json_t *j = NULL, *body = NULL;
    redisReply *r = NULL;
    redisContext *c = NULL;
    *rc = EXIT_FAIL;
    if (!ptext) {
        *rc = value_error("parameters are not valid UTF-8");
        return NULL;
    }
    if (!(c = redis_open(cfg, rc)) || !(r = fcall_api(c, cfg, script, op, key, ptext)))
        goto out;
    *rc = EXIT_FAIL;
    if (r->type == REDIS_REPLY_STRING)
        j = json_loadb(r->str, r->len, 0, NULL);
    const char *err = json_string_value(json_object_get(j, "err"));
    if (err) {
        char *shown = sanitize(json_string_value(json_object_get(j, "message")) ?: err);
        errorf("%s", shown);
        cd_free(shown);
        if (strcmp(err, "bad_request") == 0)
            *rc = EXIT_USAGE;
    } else if (!json_is_object(body = json_object_get(j, "body"))) {
        errorf("unexpected reply from the Redis function");
        body = NULL;
    } else {
        json_incref(body);
        *rc = EXIT_OK;
    }
out:
    json_decref(j);
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    free(ptext);
    return body;
}

static json_t *api_op(const cd_config *cfg, const char *op, const char *key, json_t *params, int *rc)
{
    return api_op_in(cfg, "api", op, key, params, rc);
}

static bool utf8_ok(const char *s)
{
    json_t *v = json_string(s);
    json_decref(v);
    return v != NULL;
}

/* One of the single-slot steps of an operation that changes a site and state that spans
 * sites (api.lua "the admin CLI's single-slot steps"): api_op, marked as a step. */
static json_t *api_step(const cd_config *cfg, const char *op, const char *key, json_t *params, int *rc)
{
    json_object_set_new(params, "stepwise", json_true());
    return api_op(cfg, op, key, params, rc);
}

/* Sets params[name] to the text s; false after printing an error when s is not UTF-8
 * (jansson refuses it; the API's JSON body could not carry it either). */
static bool put_text(json_t *params, const char *name, const char *s, int *rc)
{
    json_t *v = json_string(s);
    if (!v) {
        *rc = value_error("%s is not valid UTF-8", name);
        return false;
    }
    json_object_set_new(params, name, v);
    return true;
}

/* params[name] = the n texts as an array (false after printing, as put_text). */
static bool put_list(json_t *params, const char *name, const char **vals, size_t n, int *rc)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_string(vals[i]);
        if (!v) {
            json_decref(arr);
            *rc = value_error("%s is not valid UTF-8", name);
            return false;
        }
        json_array_append_new(arr, v);
    }
    json_object_set_new(params, name, arr);
    return true;
}

/* params[name] = true/false from "on"/"off"; false after printing a usage error. */
static bool put_on_off(json_t *params, const char *name, const char *opt, const char *s, int *rc)
{
    if (strcmp(s, "on") != 0 && strcmp(s, "off") != 0) {
        char *shown = sanitize(s);
        *rc = value_error("%s must be on or off: got '%s'", opt, shown);
        cd_free(shown);
        return false;
    }
    json_object_set_new(params, name, json_boolean(strcmp(s, "on") == 0));
    return true;
}

/* Prints, as one line of JSON, out (stolen; NULL: a new object) with the fields of rec
 * named in fields (a NULL-terminated list) added in that order. */
static void print_picked(json_t *out, const json_t *rec, const char *const *fields)
{
    if (!out)
        out = json_object();
    for (; *fields; fields++)
        json_object_set(out, *fields, json_object_get(rec, *fields) ? json_object_get(rec, *fields) : json_null());
    print_json(out);
    json_decref(out);
}

/* true when any of the n options is given (a set command needs a setting to change) */
static bool any_given(const args *a, const opt_id *opts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (arg_get(a, opts[i]))
            return true;
    return false;
}

/* params when ok, else NULL (params released): the end of each options -> params step. */
static json_t *params_if(bool ok, json_t *params)
{
    if (ok)
        return params;
    json_decref(params);
    return NULL;
}

/* ---- reading secrets ---- */

/* The password as given, or the first line of stdin for "-", into out (without the
 * line end). Returns false when stdin has nothing or the line is too long. */
static bool read_password(const char *given, char *out, size_t outsz)
{
    if (strcmp(given, "-") != 0) {
        if (strlen(given) >= outsz)
            return false;
        memcpy(out, given, strlen(given) + 1);
        return true;
    }
    if (!fgets(out, (int)outsz, stdin))
        return false;
    size_t n = strlen(out);
    if (n && out[n - 1] == '\n')
        out[--n] = '\0';
    else if (n == outsz - 1)
        return false; /* longer than the buffer */
    if (n && out[n - 1] == '\r')
        out[--n] = '\0';
    return true;
}

/* The identity secret as given, or for "-" the first line of stdin (so it stays off the
 * command line, where any user of the machine can read it), as params' identity_secret. */
static bool put_secret(json_t *params, const char *secret, int *rc)
{
    char buf[SECRET_MAX + 2];
    if (strcmp(secret, "-") == 0) {
        if (!read_password("-", buf, sizeof buf)) {
            *rc = value_error("identity secret: stdin has no line of at most %d bytes", SECRET_MAX);
            return false;
        }
        secret = buf;
    }
    bool ok = put_text(params, "identity_secret", secret, rc);
    explicit_bzero(buf, sizeof buf);
    return ok;
}

/* The password (given, or "-": stdin) checked by the API's own rule and hashed into
 * params' pw_hash, the only form the function sees. false after printing why. */
static bool put_password(json_t *params, const char *given, int *rc)
{
    char password[CD_AUTH_PASSWORD_MAX + 2];
    char hash[256];
    bool ok = false;
    if (!read_password(given, password, sizeof password) || !cd_auth_password_len_ok(strlen(password)))
        *rc = value_error("%s", CD_AUTH_PASSWORD_RULE);
    else if (cd_auth_password_hash(password, hash, sizeof hash) != 0)
        errorf("cannot hash the password");
    else
        ok = put_text(params, "pw_hash", hash, rc);
    explicit_bzero(password, sizeof password);
    explicit_bzero(hash, sizeof hash);
    return ok;
}

/* ---- site-add ---- */

static int run_site_add(cd_config *cfg, const args *a)
{
    const char *key = arg_get(a, OPT_KEY);
    const char *secret = arg_get(a, OPT_SECRET);
    const char **origins = cd_calloc(a->n + 1, sizeof *origins);
    size_t norigins = arg_all(a, OPT_ORIGIN, origins);
    json_t *params = json_object(), *body = NULL;
    int rc = EXIT_FAIL;
    cd_key k;

    if (!put_text(params, "key", key, &rc) || !put_text(params, "name", arg_get(a, OPT_NAME), &rc) ||
        !put_list(params, "origins", origins, norigins, &rc) || (secret && !put_secret(params, secret, &rc))) {
        json_decref(params);
        goto out;
    }
    /* the sites set ({g}) first, then the record ({s:<site>}): api.lua says why this order */
    json_t *record = json_deep_copy(params);
    if (!(body = api_step(cfg, "admin_site_index", cd_key_global(&k, cfg->prefix, "sites"), params, &rc))) {
        json_decref(record);
        goto out;
    }
    json_decref(body);
    if (!(body = api_step(cfg, "admin_site_create", cd_key_site(&k, cfg->prefix, key, ""), record, &rc)))
        goto out;
    static const char *const shown[] = {"key", "name", "origins", "identity_verification", NULL};
    print_picked(NULL, json_object_get(body, "site"), shown);

out:
    json_decref(body);
    cd_free(origins);
    return rc;
}

/* ---- site-set ---- */

/* Parses the --category-team CATEGORY=TEAM values into a map (category -> team, in the
 * order given; CATEGORY= leaves the category out). Only the option's syntax is checked
 * here; the teams are the operation's to check. NULL, with *rc set after printing. */
static json_t *category_teams(const char **vals, size_t n, int *rc)
{
    json_t *m = json_object(), *seen = json_object();
    for (size_t i = 0; i < n && m; i++) {
        const char *eq = strrchr(vals[i], '=');
        char *cat = eq && eq != vals[i] ? cd_strndup(vals[i], (size_t)(eq - vals[i])) : NULL;
        const json_t *prev = cat ? json_object_get(seen, cat) : NULL;
        if (!cat) {
            char *shown = sanitize(vals[i]);
            *rc = value_error("category-team must be CATEGORY=TEAM (or CATEGORY= to leave the category out): got '%s'",
                              shown);
            cd_free(shown);
        } else if (prev && strcmp(json_string_value(prev), eq + 1) != 0) {
            char *shown = sanitize(cat);
            *rc = value_error("category '%s' is given twice with different teams", shown);
            cd_free(shown);
        } else if (!utf8_ok(cat) || !utf8_ok(eq + 1)) {
            *rc = value_error("category-team is not valid UTF-8");
        } else {
            json_object_set_new(seen, cat, json_string(eq + 1));
            if (eq[1])
                json_object_set_new(m, cat, json_string(eq + 1));
            else
                json_object_del(m, cat);
            cd_free(cat);
            continue;
        }
        cd_free(cat);
        json_decref(m);
        m = NULL;
    }
    json_decref(seen);
    return m;
}

/* site-set's options as the admin API's site patch (admin_site_patch). NULL, with *rc
 * set after printing, for a malformed option. */
static json_t *site_patch(const args *a, int *rc)
{
    static const struct {
        opt_id opt;
        const char *field;
    } texts[] = {
        {OPT_NAME, "name"}, {OPT_AUTO_CLOSE, "auto_close_s"}, {OPT_ACK_EN, "ack_text_en"}, {OPT_ACK_ZH, "ack_text_zh"}};
    json_t *params = json_object();
    const char **vals = cd_calloc(a->n + 1, sizeof *vals);
    size_t n;
    bool ok = put_text(params, "site_key", arg_get(a, OPT_KEY), rc);
    for (size_t i = 0; i < CD_ARRAY_LEN(texts) && ok; i++)
        if (arg_get(a, texts[i].opt))
            ok = put_text(params, texts[i].field, arg_get(a, texts[i].opt), rc);
    if (ok && (n = arg_all(a, OPT_ORIGIN, vals)))
        ok = put_list(params, "origins", vals, n, rc);
    if (ok && arg_get(a, OPT_SECRET))
        ok = put_secret(params, arg_get(a, OPT_SECRET), rc);
    if (ok && arg_get(a, OPT_NO_SECRET))
        json_object_set_new(params, "identity_secret", json_string(""));
    if (ok && arg_get(a, OPT_AUTO_ASSIGN))
        ok = put_on_off(params, "auto_assign", "auto-assign", arg_get(a, OPT_AUTO_ASSIGN), rc);
    if (ok && (n = arg_all(a, OPT_CATEGORY_TEAM, vals))) {
        json_t *m = category_teams(vals, n, rc);
        ok = m != NULL;
        if (ok)
            json_object_set_new(params, "category_teams", m);
    }
    cd_free(vals);
    return params_if(ok, params);
}

/* Prints a record as it now stands (a read after the write, for display only): the hash
 * at key, shown by show (site_object, agent_object) under id. */
static int print_record(const cd_config *cfg, const char *key, const char *id,
                        json_t *(*show)(const char *id, const redisReply *h))
{
    int rc = EXIT_FAIL;
    redisContext *c = redis_open(cfg, &rc);
    redisReply *h = NULL;
    if (c && (h = hgetall(c, key))) {
        json_t *outj = show(id, h);
        print_json(outj);
        json_decref(outj);
        rc = EXIT_OK;
    }
    if (h)
        freeReplyObject(h);
    if (c)
        redisFree(c);
    return rc;
}

static int run_site_set(cd_config *cfg, const args *a)
{
    static const opt_id settings[] = {OPT_NAME,          OPT_ORIGIN,     OPT_SECRET, OPT_NO_SECRET, OPT_AUTO_ASSIGN,
                                      OPT_CATEGORY_TEAM, OPT_AUTO_CLOSE, OPT_ACK_EN, OPT_ACK_ZH};
    const char *key = arg_get(a, OPT_KEY);
    int rc = EXIT_FAIL;
    cd_key k;
    if (arg_get(a, OPT_SECRET) && arg_get(a, OPT_NO_SECRET))
        return usage_error("site-set takes --identity-secret or --no-identity-secret, not both");
    if (!any_given(a, settings, CD_ARRAY_LEN(settings)))
        return usage_error("site-set needs at least one setting to change");
    json_t *params = site_patch(a, &rc), *body = NULL;
    if (!params)
        return rc;
    if (!(body = api_op(cfg, "admin_site_patch", cd_key_site(&k, cfg->prefix, key, ""), params, &rc)))
        return rc;
    json_decref(body);
    return print_record(cfg, cd_key_site(&k, cfg->prefix, key, ""), key, site_object);
}

/* ---- team-add ---- */

static int run_team_add(cd_config *cfg, const args *a)
{
    const char *site = arg_get(a, OPT_SITE);
    json_t *params = json_object(), *body;
    int rc = EXIT_FAIL;
    cd_key k;
    if (!put_text(params, "site_key", site, &rc) || !put_text(params, "key", arg_get(a, OPT_KEY), &rc) ||
        !put_text(params, "name", arg_get(a, OPT_NAME), &rc)) {
        json_decref(params);
        return rc;
    }
    if (!(body = api_op(cfg, "admin_team_create", cd_key_site(&k, cfg->prefix, site, ""), params, &rc)))
        return rc;
    static const char *const shown[] = {"key", "name", NULL};
    print_picked(json_pack("{s:s}", "site", site), json_object_get(body, "team"), shown);
    json_decref(body);
    return EXIT_OK;
}

/* ---- agent-add ---- */

/* agent-add's options as the admin API's agent create (admin_agent_create). NULL, with
 * *rc set after printing, for a malformed option or a password the API's rule refuses. */
static json_t *agent_create(const args *a, int *rc)
{
    json_t *params = json_object();
    const char **vals = cd_calloc(a->n + 1, sizeof *vals);
    bool ok = put_text(params, "email", arg_get(a, OPT_EMAIL), rc) &&
              put_text(params, "name", arg_get(a, OPT_NAME), rc) &&
              put_list(params, "sites", vals, arg_all(a, OPT_SITE, vals), rc) &&
              put_list(params, "teams", vals, arg_all(a, OPT_TEAM, vals), rc) &&
              (!arg_get(a, OPT_ROLE) || put_text(params, "role", arg_get(a, OPT_ROLE), rc)) &&
              (!arg_get(a, OPT_MAX_CHATS) || put_text(params, "max_chats", arg_get(a, OPT_MAX_CHATS), rc)) &&
              put_password(params, arg_get(a, OPT_PASSWORD), rc);
    cd_free(vals);
    return params_if(ok, params);
}

/* Step 1 of agent-add and agent-set: each site checked in a call of its own (its slot),
 * and the teams found on any of them, which the agent's own call then checks the teams
 * against. NULL with *rc set after printing the refusal. */
static json_t *teams_found(const cd_config *cfg, const json_t *sites, const json_t *teams, int *rc)
{
    json_t *found = json_array(), *s;
    size_t i;
    json_array_foreach(sites, i, s)
    {
        cd_key k;
        json_t *body = api_step(cfg, "admin_site_check", cd_key_site(&k, cfg->prefix, json_string_value(s), ""),
                                json_pack("{s:O, s:O}", "site_key", s, "teams", teams), rc);
        if (!body) {
            json_decref(found);
            return NULL;
        }
        json_array_extend(found, json_object_get(body, "teams"));
        json_decref(body);
    }
    return found;
}

/* Step 3 of agent-add: the agent joins each site's agents set, each in a call of its own
 * (its slot). 0, or the exit code after printing. */
static int join_sites(const cd_config *cfg, const json_t *sites, const char *id, const json_t *agent)
{
    json_t *s;
    size_t i;
    int rc = EXIT_OK;
    const char *role = json_string_value(json_object_get(agent, "role"));
    json_array_foreach(sites, i, s)
    {
        cd_key k;
        json_t *body = api_step(cfg, "admin_agent_join", cd_key_site(&k, cfg->prefix, json_string_value(s), ""),
                                json_pack("{s:O, s:s, s:O, s:s}", "site_key", s, "agent_id", id, "name",
                                          json_object_get(agent, "name"), "role", role ? role : "agent"),
                                &rc);
        if (!body)
            return rc;
        json_decref(body);
    }
    return EXIT_OK;
}

/* Prints the new agent as agent-add shows it, from its record (a read after the write). */
static json_t *agent_added(const char *id, const redisReply *h)
{
    static const char *const shown[] = {"id", "email", "name", "role", "sites", "teams", NULL};
    json_t *rec = agent_object(id, h), *out = json_object();
    for (const char *const *f = shown; *f; f++)
        json_object_set(out, *f, json_object_get(rec, *f));
    json_decref(rec);
    return out;
}

/* The sites (step 1), the agent's own state in {a} (step 2), then its membership of each
 * site (step 3). Safe to retry: step 1 writes nothing, and after step 2 the membership
 * follows the record anyway (every node syncing the agent into a site adds it). */
static int run_agent_add(cd_config *cfg, const args *a)
{
    int rc = EXIT_FAIL;
    cd_key k;
    json_t *params = agent_create(a, &rc), *body = NULL, *found, *who = NULL;
    if (!params)
        return rc;
    json_t *sites = json_incref(json_object_get(params, "sites"));
    if (!(found = teams_found(cfg, sites, json_object_get(params, "teams"), &rc))) {
        json_decref(params);
        goto out;
    }
    json_object_set_new(params, "teams_found", found);
    /* name and role for the agent's first record in each site (step 3) */
    who = json_pack("{s:O?,s:O?}", "name", json_object_get(params, "name"), "role", json_object_get(params, "role"));
    const char *email = json_string_value(json_object_get(params, "email"));
    if (!(body = api_step(cfg, "admin_agent_create", cd_key_agent_email(&k, cfg->prefix, email), params, &rc)))
        goto out;
    char id[128];
    cd_strlcpy(id, json_string_value(json_object_get(json_object_get(body, "agent"), "id")) ?: "", sizeof id);
    if ((rc = join_sites(cfg, sites, id, who)) == EXIT_OK)
        rc = print_record(cfg, cd_key_agent(&k, cfg->prefix, id), id, agent_added);
out:
    json_decref(who);
    json_decref(body);
    json_decref(sites);
    return rc;
}

/* ---- agent-set ---- */

/* The sites of the agent with this e-mail, read from its record (an empty list when there
 * is no such agent: the patch then says so); NULL after printing a Redis error. */
static json_t *agent_sites(const cd_config *cfg, const char *email)
{
    int rc;
    cd_key k;
    redisContext *c = redis_open(cfg, &rc);
    redisReply *id = NULL, *h = NULL;
    json_t *sites = NULL;
    if (c && (id = rcall(c, 2, (const char *[]){"GET", cd_key_agent_email(&k, cfg->prefix, email)}))) {
        if (id->type != REDIS_REPLY_STRING)
            sites = json_array();
        else if ((h = rcall(c, 3, (const char *[]){"HGET", cd_key_agent(&k, cfg->prefix, id->str), "sites"})))
            sites = json_array_field(h->type == REDIS_REPLY_STRING ? h->str : NULL);
    }
    if (id)
        freeReplyObject(id);
    if (h)
        freeReplyObject(h);
    if (c)
        redisFree(c);
    return sites;
}

/* agent-set's options as the admin API's agent patch (admin_agent_patch), the agent
 * named by e-mail. NULL, with *rc set after printing, for a malformed option. */
static json_t *agent_patch(const args *a, int *rc)
{
    json_t *params = json_object();
    const char **vals = cd_calloc(a->n + 1, sizeof *vals);
    size_t nteams = arg_all(a, OPT_TEAM, vals);
    bool ok = put_text(params, "agent_email", arg_get(a, OPT_EMAIL), rc) &&
              (!arg_get(a, OPT_NAME) || put_text(params, "name", arg_get(a, OPT_NAME), rc)) &&
              (!arg_get(a, OPT_ROLE) || put_text(params, "role", arg_get(a, OPT_ROLE), rc)) &&
              (!arg_get(a, OPT_MAX_CHATS) || put_text(params, "max_chats", arg_get(a, OPT_MAX_CHATS), rc)) &&
              ((!nteams && !arg_get(a, OPT_NO_TEAMS)) || put_list(params, "teams", vals, nteams, rc)) &&
              (!arg_get(a, OPT_DISABLED) || put_on_off(params, "disabled", "disabled", arg_get(a, OPT_DISABLED), rc));
    cd_free(vals);
    return params_if(ok, params);
}

static int run_agent_set(cd_config *cfg, const args *a)
{
    static const opt_id settings[] = {OPT_NAME, OPT_ROLE, OPT_MAX_CHATS, OPT_DISABLED, OPT_TEAM, OPT_NO_TEAMS};
    int rc = EXIT_FAIL;
    cd_key k;
    if (arg_get(a, OPT_TEAM) && arg_get(a, OPT_NO_TEAMS))
        return usage_error("agent-set takes --team or --no-teams, not both");
    if (!any_given(a, settings, CD_ARRAY_LEN(settings)))
        return usage_error("agent-set needs at least one setting to change");
    json_t *params = agent_patch(a, &rc), *body, *found;
    if (!params)
        return rc;
    const char *email = json_string_value(json_object_get(params, "agent_email"));
    /* new teams: looked up in the agent's sites first, each site in its own call */
    json_t *sites = json_object_get(params, "teams") ? agent_sites(cfg, email) : json_array();
    found = sites ? teams_found(cfg, sites, json_object_get(params, "teams"), &rc) : NULL;
    json_decref(sites);
    if (!found) {
        json_decref(params);
        return rc;
    }
    json_object_set_new(params, "teams_found", found);
    if (!(body = api_step(cfg, "admin_agent_patch", cd_key_agent_email(&k, cfg->prefix, email), params, &rc)))
        return rc;
    char id[128];
    cd_strlcpy(id, json_string_value(json_object_get(json_object_get(body, "agent"), "id")) ?: "", sizeof id);
    json_decref(body);
    return print_record(cfg, cd_key_agent(&k, cfg->prefix, id), id, agent_object);
}

/* ---- totp-reset ---- */

/* The admin API's reset (api_totp.lua totp_reset) as the operator: the agent's two-factor
 * login is off and its recovery codes are gone; it logs in with its password again (and
 * enrols again where a site requires it). */
static int run_totp_reset(cd_config *cfg, const args *a)
{
    int rc = EXIT_FAIL;
    cd_key k;
    json_t *params = json_object();
    if (!put_text(params, "agent_email", arg_get(a, OPT_EMAIL), &rc)) {
        json_decref(params);
        return rc;
    }
    json_t *body = api_op_in(cfg, "api_totp", "totp_reset", cd_key_agent_email(&k, cfg->prefix, arg_get(a, OPT_EMAIL)),
                             params, &rc);
    if (!body)
        return rc;
    char *out = json_dumps(json_object_get(body, "totp"), JSON_COMPACT);
    puts(out ? out : "{}");
    free(out);
    json_decref(body);
    return EXIT_OK;
}

/* ---- team-list ---- */

static int cmp_team_key(const void *a, const void *b)
{
    const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
    return strcmp(json_string_value(json_object_get(x, "key")), json_string_value(json_object_get(y, "key")));
}

static int run_team_list(cd_config *cfg, const args *a)
{
    bool as_json = arg_get(a, OPT_JSON) != NULL;
    const char *site = arg_get(a, OPT_SITE);
    char *k_site = NULL, *k_teams = NULL;
    cd_key k;
    redisReply *h = NULL;
    json_t **teams = NULL;
    size_t nt = 0;
    json_t *list = json_array();
    redisContext *c = NULL;
    int rc = EXIT_FAIL;

    if (!valid_key(site)) {
        rc = bad_key("site key", site);
        goto out;
    }
    c = redis_open(cfg, &rc);
    if (!c)
        goto out;
    rc = EXIT_FAIL;
    k_site = cd_strdup(site_key(&k, cfg->prefix, site));
    k_teams = cd_strdup(cd_key_site(&k, cfg->prefix, site, ":teams"));
    int exists = key_exists(c, k_site);
    if (exists < 0)
        goto out;
    if (!exists) {
        errorf("unknown site %s", site);
        goto out;
    }
    if (!(h = hgetall(c, k_teams)))
        goto out;
    teams = cd_calloc(h->elements / 2 + 1, sizeof *teams);
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        if (h->element[i]->type != REDIS_REPLY_STRING || h->element[i + 1]->type != REDIS_REPLY_STRING)
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "key", jstr(h->element[i]->str));
        json_object_set_new(o, "name", jstr(h->element[i + 1]->str));
        teams[nt++] = o;
    }
    qsort(teams, nt, sizeof *teams, cmp_team_key);
    for (size_t i = 0; i < nt; i++)
        json_array_append_new(list, teams[i]);

    if (as_json) {
        print_json(list);
    } else if (nt == 0) {
        puts("no teams");
    } else {
        table t = {.ncols = 2};
        const char *head[] = {"KEY", "NAME"};
        table_row(&t, head);
        size_t i;
        json_t *o;
        json_array_foreach(list, i, o)
        {
            const char *row[] = {json_string_value(json_object_get(o, "key")),
                                 json_string_value(json_object_get(o, "name"))};
            table_row(&t, row);
        }
        table_print(&t);
    }
    rc = EXIT_OK;

out:
    if (h)
        freeReplyObject(h);
    cd_free(teams);
    json_decref(list);
    cd_free(k_site);
    cd_free(k_teams);
    if (c)
        redisFree(c);
    return rc;
}

/* ---- site-list ---- */

static int run_site_list(cd_config *cfg, const args *a)
{
    bool as_json = arg_get(a, OPT_JSON) != NULL;
    redisContext *c = NULL;
    redisReply *mr = NULL, **hr = NULL;
    const char **ids = NULL;
    size_t n = 0;
    cd_key ks;
    char *k_sites = cd_strdup(cd_key_global(&ks, cfg->prefix, "sites"));
    json_t *list = json_array();
    int rc = EXIT_FAIL;

    c = redis_open(cfg, &rc);
    if (!c)
        goto out;
    rc = EXIT_FAIL;
    if (members_sorted(c, k_sites, &mr, &ids, &n) != 0)
        goto out;
    hr = hgetall_many(c, cfg, site_key, ids, n);
    if (!hr)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (hr[i]->type != REDIS_REPLY_ARRAY || hr[i]->elements == 0)
            continue; /* indexed but gone: skip */
        json_array_append_new(list, site_object(ids[i], hr[i]));
    }

    if (as_json) {
        print_json(list);
    } else if (json_array_size(list) == 0) {
        puts("no sites");
    } else {
        table t = {.ncols = 8};
        const char *head[] = {"KEY", "NAME", "IDENTITY", "ASSIGN", "CLOSE", "CREATED", "CATEGORY-TEAMS", "ORIGINS"};
        table_row(&t, head);
        size_t i;
        json_t *o;
        json_array_foreach(list, i, o)
        {
            char when[32], close[32];
            format_time(json_integer_value(json_object_get(o, "created_at")), when, sizeof when);
            format_secs(json_integer_value(json_object_get(o, "auto_close_s")), close, sizeof close);
            char *orig = join_array(json_object_get(o, "origins"));
            char *cats = join_map(json_object_get(o, "category_teams"));
            const char *row[] = {json_string_value(json_object_get(o, "key")),
                                 json_string_value(json_object_get(o, "name")),
                                 json_is_true(json_object_get(o, "identity_verification")) ? "on" : "off",
                                 json_is_true(json_object_get(o, "auto_assign")) ? "auto" : "manual",
                                 close,
                                 when,
                                 cats,
                                 orig};
            table_row(&t, row);
            cd_free(orig);
            cd_free(cats);
        }
        table_print(&t);
    }
    rc = EXIT_OK;

out:
    if (hr) {
        for (size_t i = 0; i < n; i++)
            freeReplyObject(hr[i]);
        cd_free(hr);
    }
    cd_free(ids);
    if (mr)
        freeReplyObject(mr);
    json_decref(list);
    cd_free(k_sites);
    if (c)
        redisFree(c);
    return rc;
}

/* ---- agent-list ---- */

static int cmp_agent_email(const void *a, const void *b)
{
    const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
    int d = strcmp(json_string_value(json_object_get(x, "email")), json_string_value(json_object_get(y, "email")));
    return d ? d : strcmp(json_string_value(json_object_get(x, "id")), json_string_value(json_object_get(y, "id")));
}

static int run_agent_list(cd_config *cfg, const args *a)
{
    bool as_json = arg_get(a, OPT_JSON) != NULL;
    const char *site = arg_get(a, OPT_SITE);
    redisContext *c = NULL;
    redisReply *mr = NULL, **hr = NULL;
    const char **ids = NULL;
    json_t **agents = NULL;
    size_t n = 0, na = 0;
    char *k_set = NULL;
    cd_key k;
    json_t *list = json_array();
    int rc = EXIT_FAIL;

    if (site && !valid_key(site)) {
        rc = bad_key("site key", site);
        goto out;
    }
    c = redis_open(cfg, &rc);
    if (!c)
        goto out;
    rc = EXIT_FAIL;
    if (site) {
        int exists = key_exists(c, site_key(&k, cfg->prefix, site));
        if (exists < 0)
            goto out;
        if (!exists) {
            errorf("unknown site %s", site);
            goto out;
        }
        k_set = cd_strdup(cd_key_site(&k, cfg->prefix, site, ":agents"));
    } else {
        k_set = cd_strdup(cd_key_agents(&k, cfg->prefix));
    }
    if (members_sorted(c, k_set, &mr, &ids, &n) != 0)
        goto out;
    hr = hgetall_many(c, cfg, cd_key_agent, ids, n);
    if (!hr)
        goto out;
    agents = cd_calloc(n + 1, sizeof *agents);
    for (size_t i = 0; i < n; i++) {
        if (hr[i]->type != REDIS_REPLY_ARRAY || hr[i]->elements == 0)
            continue;
        agents[na++] = agent_object(ids[i], hr[i]);
    }
    qsort(agents, na, sizeof *agents, cmp_agent_email);
    for (size_t i = 0; i < na; i++)
        json_array_append_new(list, agents[i]);

    if (as_json) {
        print_json(list);
    } else if (na == 0) {
        puts("no agents");
    } else {
        table t = {.ncols = 8};
        const char *head[] = {"ID", "EMAIL", "NAME", "ROLE", "STATUS", "MAX", "SITES", "TEAMS"};
        table_row(&t, head);
        size_t i;
        json_t *o;
        json_array_foreach(list, i, o)
        {
            char maxbuf[24];
            snprintf(maxbuf, sizeof maxbuf, "%" JSON_INTEGER_FORMAT,
                     json_integer_value(json_object_get(o, "max_chats")));
            char *s = join_array(json_object_get(o, "sites"));
            char *tm = join_array(json_object_get(o, "teams"));
            const char *status = json_string_value(json_object_get(o, "status"));
            char *st = json_is_true(json_object_get(o, "disabled")) ? strf("%s, disabled", status) : cd_strdup(status);
            const char *row[] = {json_string_value(json_object_get(o, "id")),
                                 json_string_value(json_object_get(o, "email")),
                                 json_string_value(json_object_get(o, "name")),
                                 json_string_value(json_object_get(o, "role")),
                                 st,
                                 maxbuf,
                                 s,
                                 tm[0] ? tm : "-"};
            table_row(&t, row);
            cd_free(s);
            cd_free(tm);
            cd_free(st);
        }
        table_print(&t);
    }
    rc = EXIT_OK;

out:
    if (hr) {
        for (size_t i = 0; i < n; i++)
            freeReplyObject(hr[i]);
        cd_free(hr);
    }
    cd_free(agents);
    cd_free(ids);
    if (mr)
        freeReplyObject(mr);
    json_decref(list);
    cd_free(k_set);
    if (c)
        redisFree(c);
    return rc;
}

static int run_migrate(cd_config *cfg, const args *a)
{
    (void)a;
    int rc = EXIT_FAIL;
    redisContext *c = redis_open(cfg, &rc);
    if (!c)
        return rc;
    rc = cd_admin__migrate(cfg->prefix, c) == 0 ? EXIT_OK : EXIT_FAIL;
    redisFree(c);
    return rc;
}

/* ---- entry point ---- */

static const command commands[] = {
    {"site-add", run_site_add, BIT(OPT_KEY) | BIT(OPT_NAME) | BIT(OPT_ORIGIN) | BIT(OPT_SECRET),
     BIT(OPT_KEY) | BIT(OPT_NAME) | BIT(OPT_ORIGIN), BIT(OPT_ORIGIN)},
    {"agent-add", run_agent_add,
     BIT(OPT_EMAIL) | BIT(OPT_PASSWORD) | BIT(OPT_NAME) | BIT(OPT_SITE) | BIT(OPT_TEAM) | BIT(OPT_ROLE) |
         BIT(OPT_MAX_CHATS),
     BIT(OPT_EMAIL) | BIT(OPT_PASSWORD) | BIT(OPT_NAME) | BIT(OPT_SITE), BIT(OPT_SITE) | BIT(OPT_TEAM)},
    {"site-set", run_site_set,
     BIT(OPT_KEY) | BIT(OPT_NAME) | BIT(OPT_ORIGIN) | BIT(OPT_SECRET) | BIT(OPT_NO_SECRET) | BIT(OPT_AUTO_ASSIGN) |
         BIT(OPT_CATEGORY_TEAM) | BIT(OPT_AUTO_CLOSE) | BIT(OPT_ACK_EN) | BIT(OPT_ACK_ZH),
     BIT(OPT_KEY), BIT(OPT_ORIGIN) | BIT(OPT_CATEGORY_TEAM)},
    {"team-add", run_team_add, BIT(OPT_SITE) | BIT(OPT_KEY) | BIT(OPT_NAME),
     BIT(OPT_SITE) | BIT(OPT_KEY) | BIT(OPT_NAME), 0},
    {"agent-set", run_agent_set,
     BIT(OPT_EMAIL) | BIT(OPT_NAME) | BIT(OPT_ROLE) | BIT(OPT_MAX_CHATS) | BIT(OPT_TEAM) | BIT(OPT_NO_TEAMS) |
         BIT(OPT_DISABLED),
     BIT(OPT_EMAIL), BIT(OPT_TEAM)},
    {"totp-reset", run_totp_reset, BIT(OPT_EMAIL), BIT(OPT_EMAIL), 0},
    {"site-list", run_site_list, BIT(OPT_JSON), 0, 0},
    {"team-list", run_team_list, BIT(OPT_SITE) | BIT(OPT_JSON), BIT(OPT_SITE), 0},
    {"agent-list", run_agent_list, BIT(OPT_SITE) | BIT(OPT_JSON), 0, 0},
    {"migrate", run_migrate, 0, 0, 0},
};

/* argv[0] names the command; the rest are its options mixed with config flags.
 * Looks the command up, parses, validates the required options and runs it. */
int cd_admin_main(cd_config *cfg, int argc, char **argv)
{
    if (argc < 1)
        return usage_error("missing command");
    const char *name = argv[0];
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        fputs(usage_text, stdout);
        return EXIT_OK;
    }
    const command *cmd = NULL;
    for (size_t i = 0; i < CD_ARRAY_LEN(commands); i++)
        if (strcmp(commands[i].name, name) == 0)
            cmd = &commands[i];
    if (!cmd)
        return usage_error("unknown command '%s'", name);

    args a = {.v = cd_calloc((size_t)argc + 1, sizeof *a.v)};
    int rc = parse_args(cfg, cmd, argc, argv, &a);
    if (rc == 0 && a.help)
        fputs(usage_text, stdout);
    else if (rc == 0)
        rc = cmd->run(cfg, &a);
    cd_free(a.v);
    fflush(stdout);
    return rc;
}
