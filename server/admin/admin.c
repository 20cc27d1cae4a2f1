/* admin: the `chatdeskd admin <command> [options]` CLI.
 *
 * Adds and lists sites and agents by talking to Redis directly with a blocking
 * hiredis connection. It is a short-lived command run by an operator, never part
 * of a node's event loop, so blocking calls are fine here (STYLE B8 is about the
 * loop). Every write is one inline Lua script (EVAL) that checks, writes, indexes
 * and publishes atomically, following docs/keyspace.md exactly; a second admin
 * racing on the same key or e-mail gets "already exists", never half a record.
 *
 * Input is validated before Redis is touched: a bad value is a usage error (exit
 * 2), while anything decided by what Redis holds (duplicates, unknown sites) and
 * Redis failures are runtime errors (exit 1). Secrets (password hashes, identity
 * secrets) are written but never printed; listings only say whether identity
 * verification is on.
 *
 * Results go to stdout as one line of JSON (add commands, `--json` listings) or an
 * aligned table; diagnostics go to stderr prefixed with "chatdeskd admin: ".
 */
#include "chatdesk/admin.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "chatdesk/auth.h"
#include "chatdesk/base.h"
#include "chatdesk/clock.h"
#include "chatdesk/config.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define KEY_MAX 64
#define NAME_MAX_BYTES 200
#define EMAIL_MAX 254
#define PASSWORD_MIN 8
#define SECRET_MIN 16
#define SECRET_MAX 512
#define ORIGIN_MAX 512
#define MAX_CHATS_DEFAULT 5
#define MAX_CHATS_MIN 1
#define MAX_CHATS_MAX 100
#define CMD_TIMEOUT_MIN_MS 5000

static const char usage_text[] =
    "Usage: chatdeskd [config flags] admin <command> [options]\n"
    "\n"
    "Commands:\n"
    "  site-add   --key KEY --name NAME --origin URL [--origin URL ...] [--identity-secret SECRET]\n"
    "             Add a site. KEY is 1-64 characters of A-Z a-z 0-9 _ -. Each URL is an exact\n"
    "             origin: https://example.com or http://localhost:3000 (lowercase, no path, no\n"
    "             trailing slash, no default port). SECRET (16+ bytes) turns on identity verification.\n"
    "  agent-add  --email EMAIL --password PASSWORD --name NAME --site KEY [--site KEY ...]\n"
    "             [--team TEAM ...] [--role agent|admin] [--max-chats N]\n"
    "             Add an agent serving the given sites. PASSWORD is 8-128 bytes; '--password -'\n"
    "             reads it from the first line of stdin. Role defaults to agent, max-chats to 5 (1-100).\n"
    "  site-list  [--json]\n"
    "             List every site (a table, or a JSON array with --json).\n"
    "  agent-list [--site KEY] [--json]\n"
    "             List every agent, or the agents of one site.\n"
    "  help       Show this text.\n"
    "\n"
    "Config flags such as --redis URL and --prefix P may also be given among the options\n"
    "(see 'chatdeskd --help'). Add commands print the new record as one line of JSON.\n"
    "Exit status: 0 ok, 1 runtime error (Redis, duplicate, unknown site), 2 usage error.\n";

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

/* true when s is valid UTF-8 without control characters. */
static bool is_clean_text(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n) {
        if (*p < 0x20 || *p == 0x7f)
            return false;
        size_t l = utf8_seq(p, n);
        if (l == 0)
            return false;
        p += l;
        n -= l;
    }
    return true;
}

/* A copy of s safe to show on a terminal or put in JSON: invalid UTF-8 bytes and
 * control characters become '?'. Returns a new heap string. */
static char *sanitize(const char *s)
{
    size_t n = strlen(s);
    char *out = cd_malloc(n + 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    while (n) {
        size_t l = utf8_seq(p, n);
        if (l == 0 || *p < 0x20 || *p == 0x7f) {
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

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= NAME_MAX_BYTES && is_clean_text(s);
}

/* An exact origin as browsers send it in the Origin header: "http" or "https",
 * "://", a lowercase host (DNS name, IPv4 or [IPv6]) and an optional non-default
 * port, with nothing after it. Anything else would never match the header, so it
 * is rejected here rather than silently locking the widget out. */
static bool valid_origin(const char *s)
{
    const char *p;
    bool https;
    if (strlen(s) > ORIGIN_MAX)
        return false;
    if (strncmp(s, "https://", 8) == 0) {
        p = s + 8, https = true;
    } else if (strncmp(s, "http://", 7) == 0) {
        p = s + 7, https = false;
    } else {
        return false;
    }
    const char *host = p;
    if (*p == '[') {
        for (p++; *p && *p != ']'; p++)
            if (!(isdigit((unsigned char)*p) || (*p >= 'a' && *p <= 'f') || *p == ':' || *p == '.'))
                return false;
        if (*p != ']' || p == host + 1)
            return false;
        p++;
    } else {
        char prev = '.';
        for (; *p && *p != ':'; p++) {
            char c = *p;
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
                return false;
            if (c == '.' && (prev == '.' || prev == '-'))
                return false;
            if (c == '-' && prev == '.')
                return false;
            prev = c;
        }
        if (p == host || prev == '.' || prev == '-')
            return false;
    }
    if (*p == '\0')
        return true;
    if (*p != ':')
        return false;
    p++;
    if (*p < '1' || *p > '9')
        return false;
    long port = 0;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p) || port > 65535)
            return false;
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535)
        return false;
    return port != (https ? 443 : 80);
}

/* Basic e-mail check (one '@', something on both sides, no spaces or control
 * characters, at most 254 bytes); lower-cases into out (EMAIL_MAX + 1 bytes). */
static bool normalize_email(const char *s, char *out)
{
    size_t n = strlen(s);
    const char *at = strchr(s, '@');
    if (n < 3 || n > EMAIL_MAX || !at || at == s || at[1] == '\0' || strchr(at + 1, '@'))
        return false;
    if (!is_clean_text(s))
        return false;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isspace(c))
            return false;
        out[i] = (char)(c < 0x80 ? tolower(c) : c);
    }
    return true;
}

/* ---- options ---- */

#define ADMIN_OPTIONS(X)                                                                                               \
    X(KEY, "key", false)                                                                                               \
    X(NAME, "name", false)                                                                                             \
    X(ORIGIN, "origin", false)                                                                                         \
    X(SECRET, "identity-secret", false)                                                                                \
    X(EMAIL, "email", false)                                                                                           \
    X(PASSWORD, "password", false)                                                                                     \
    X(SITE, "site", false)                                                                                             \
    X(TEAM, "team", false)                                                                                             \
    X(ROLE, "role", false)                                                                                             \
    X(MAX_CHATS, "max-chats", false)                                                                                   \
    X(JSON, "json", true)

typedef enum opt_id {
#define OPT_ENUM(id, name, is_flag) OPT_##id,
    ADMIN_OPTIONS(OPT_ENUM)
#undef OPT_ENUM
        OPT__COUNT
} opt_id;

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

/* The key or channel name prefix + suffix as a new heap string. */
static char *pkey(const cd_config *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *pkey(const cd_config *cfg, const char *fmt, ...)
{
    char tail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tail, sizeof tail, fmt, ap);
    va_end(ap);
    return strf("%s%s", cfg->prefix, tail);
}

static struct timeval ms_to_tv(int64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* Runs one command given as NUL-terminated strings. Prints the error and returns
 * NULL on an I/O failure or an error reply; otherwise returns the reply, which the
 * caller frees. */
static redisReply *rcall(redisContext *c, int argc, const char **argv)
{
    size_t *lens = cd_malloc(sizeof *lens * (size_t)argc);
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
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
 * when a password is set (redis_password wins over the URL's), SELECT when db != 0.
 * Returns the context, or NULL with *rc set after printing the reason. */
static redisContext *redis_open(const cd_config *cfg, int *rc)
{
    cd_redis_addr addr;
    char err[256];
    char where[300];
    redisContext *c = NULL;
    redisReply *r = NULL;

    if (cd_config_parse_redis_url(cfg->redis, &addr, err, sizeof err) != 0) {
        *rc = value_error("invalid Redis URL: %s", err);
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
    int64_t cmd_ms = cfg->redis_connect_timeout_ms > CMD_TIMEOUT_MIN_MS ? cfg->redis_connect_timeout_ms
                                                                         : CMD_TIMEOUT_MIN_MS;
    redisSetTimeout(c, ms_to_tv(cmd_ms));

    const char *pw = cfg->redis_password && cfg->redis_password[0] ? cfg->redis_password : addr.password;
    if (pw[0]) {
        r = redisCommand(c, "AUTH %s", pw);
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

/* Runs an inline script: EVAL script nkeys keys... args.... The scripts answer with
 * a JSON object ({"ok":true} or {"error":...}); returns it (new reference), or NULL
 * after printing the error. */
static json_t *eval_json(redisContext *c, const char *script, size_t nkeys, const char **keys, size_t nargs,
                         const char **argv)
{
    char nk[24];
    snprintf(nk, sizeof nk, "%zu", nkeys);
    size_t n = 3 + nkeys + nargs;
    const char **v = cd_malloc(sizeof *v * n);
    v[0] = "EVAL";
    v[1] = script;
    v[2] = nk;
    memcpy(v + 3, keys, sizeof *v * nkeys);
    memcpy(v + 3 + nkeys, argv, sizeof *v * nargs);
    redisReply *r = rcall(c, (int)n, v);
    cd_free(v);
    if (!r)
        return NULL;
    json_t *j = NULL;
    if (r->type == REDIS_REPLY_STRING)
        j = json_loadb(r->str, r->len, 0, NULL);
    if (!json_is_object(j)) {
        errorf("unexpected reply from the Redis script");
        json_decref(j);
        j = NULL;
    }
    freeReplyObject(r);
    return j;
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

/* HGETALL of each key, pipelined. Returns a heap array of n replies (each freed by
 * the caller, and the array with cd_free), or NULL after printing the error. */
static redisReply **hgetall_many(redisContext *c, const cd_config *cfg, const char *fmt, const char **ids, size_t n)
{
    redisReply **out = cd_calloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        char *key = strf("%s%s%s", cfg->prefix, fmt, ids[i]);
        const char *argv[] = {"HGETALL", key};
        size_t lens[] = {7, strlen(key)};
        redisAppendCommandArgv(c, 2, argv, lens);
        cd_free(key);
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

/* ---- site-add ---- */

/* KEYS: site:<key>, sites. ARGV: key, name, origins (JSON), identity secret,
 * created_at (ms), the ch:sites channel. Existence check, record, index and the
 * cache-reload notice happen together or not at all. */
static const char site_add_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then\n"
    "  return '{\"error\":\"exists\"}'\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'key', ARGV[1], 'name', ARGV[2], 'origins', ARGV[3],\n"
    "           'identity_secret', ARGV[4], 'created_at', ARGV[5])\n"
    "redis.call('SADD', KEYS[2], ARGV[1])\n"
    "redis.call('PUBLISH', ARGV[6], '0 a -\\n{\"type\":\"site.changed\",\"key\":' .. cjson.encode(ARGV[1]) .. '}')\n"
    "return '{\"ok\":true}'\n";

static int run_site_add(cd_config *cfg, const args *a)
{
    const char *key = arg_get(a, OPT_KEY);
    const char *name = arg_get(a, OPT_NAME);
    const char *secret = arg_get(a, OPT_SECRET);
    const char **origins = cd_calloc(a->n + 1, sizeof *origins);
    size_t norigins = arg_all(a, OPT_ORIGIN, origins);
    json_t *jorigins = NULL, *res = NULL;
    char *origins_json = NULL, *k_site = NULL, *k_sites = NULL, *ch = NULL;
    redisContext *c = NULL;
    int rc = EXIT_FAIL;

    if (!valid_key(key)) {
        rc = value_error("site key must be 1-64 characters of A-Z a-z 0-9 _ -: got '%s'", key);
        goto out;
    }
    if (!valid_name(name)) {
        rc = value_error("site name must be 1-%d bytes of UTF-8 text without control characters", NAME_MAX_BYTES);
        goto out;
    }
    jorigins = json_array();
    for (size_t i = 0; i < norigins; i++) {
        if (!valid_origin(origins[i])) {
            char *shown = sanitize(origins[i]);
            rc = value_error("origin must look like https://example.com[:port]: got %s "
                             "(lowercase scheme and host, no path, no trailing slash, no default port)",
                             shown);
            cd_free(shown);
            goto out;
        }
        json_array_append_new(jorigins, json_string(origins[i]));
    }
    if (secret && (strlen(secret) < SECRET_MIN || strlen(secret) > SECRET_MAX || !is_clean_text(secret))) {
        rc = value_error("identity secret must be %d-%d bytes of text without control characters", SECRET_MIN,
                         SECRET_MAX);
        goto out;
    }

    c = redis_open(cfg, &rc);
    if (!c)
        goto out;
    origins_json = json_dumps(jorigins, JSON_COMPACT);
    k_site = pkey(cfg, "site:%s", key);
    k_sites = pkey(cfg, "sites");
    ch = pkey(cfg, "ch:sites");
    char created[24];
    snprintf(created, sizeof created, "%llu", (unsigned long long)cd_now_ms());
    const char *keys[] = {k_site, k_sites};
    const char *argv[] = {key, name, origins_json, secret ? secret : "", created, ch};
    res = eval_json(c, site_add_lua, CD_ARRAY_LEN(keys), keys, CD_ARRAY_LEN(argv), argv);
    if (!res)
        goto out;
    if (json_object_get(res, "error")) {
        const char *e = json_string_value(json_object_get(res, "error"));
        if (e && strcmp(e, "exists") == 0)
            errorf("site %s already exists", key);
        else
            errorf("site-add failed: %s", e ? e : "unknown error");
        goto out;
    }
    json_t *outj = json_pack("{s:s, s:s, s:O, s:b}", "key", key, "name", name, "origins", jorigins,
                             "identity_verification", secret != NULL);
    print_json(outj);
    json_decref(outj);
    rc = EXIT_OK;

out:
    json_decref(res);
    json_decref(jorigins);
    free(origins_json);
    cd_free(k_site);
    cd_free(k_sites);
    cd_free(ch);
    cd_free(origins);
    if (c)
        redisFree(c);
    return rc;
}

/* ---- agent-add ---- */

/* KEYS: agent:email:<email>, agent:<id>, agents, then site:<k> for each of the n
 * sites, then site:<k>:agents for each. ARGV: id, name, email, role, sites (JSON),
 * teams (JSON), pw, max_chats, created_at, then the n site keys. */
static const char agent_add_lua[] =
    "local n = (#KEYS - 3) / 2\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then return '{\"error\":\"email_taken\"}' end\n"
    "for i = 1, n do\n"
    "  if redis.call('EXISTS', KEYS[3 + i]) == 0 then\n"
    "    return cjson.encode({error = 'unknown_site', site = ARGV[9 + i]})\n"
    "  end\n"
    "end\n"
    "if redis.call('EXISTS', KEYS[2]) == 1 then return '{\"error\":\"id_taken\"}' end\n"
    "redis.call('SET', KEYS[1], ARGV[1])\n"
    "redis.call('HSET', KEYS[2], 'id', ARGV[1], 'name', ARGV[2], 'email', ARGV[3], 'role', ARGV[4],\n"
    "           'sites', ARGV[5], 'teams', ARGV[6], 'pw', ARGV[7], 'status', 'offline',\n"
    "           'max_chats', ARGV[8], 'created_at', ARGV[9])\n"
    "redis.call('SADD', KEYS[3], ARGV[1])\n"
    "for i = 1, n do redis.call('SADD', KEYS[3 + n + i], ARGV[1]) end\n"
    "return '{\"ok\":true}'\n";

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

static int run_agent_add(cd_config *cfg, const args *a)
{
    const char *name = arg_get(a, OPT_NAME);
    const char *role = arg_get(a, OPT_ROLE) ? arg_get(a, OPT_ROLE) : "agent";
    const char *maxs = arg_get(a, OPT_MAX_CHATS);
    const char **sites = cd_calloc(a->n + 1, sizeof *sites);
    const char **teams = cd_calloc(a->n + 1, sizeof *teams);
    size_t nsites = arg_all(a, OPT_SITE, sites);
    size_t nteams = arg_all(a, OPT_TEAM, teams);
    char email[EMAIL_MAX + 1];
    char password[CD_AUTH_PASSWORD_MAX + 2];
    char pw_hash[256];
    char id[64];
    json_t *jsites = json_array(), *jteams = json_array(), *res = NULL;
    char *sites_json = NULL, *teams_json = NULL;
    char **owned = NULL; /* the key names; keys[] views the same strings */
    const char **keys = NULL, **argv = NULL;
    size_t nkeys = 0, nargv = 0;
    redisContext *c = NULL;
    long max_chats = MAX_CHATS_DEFAULT;
    int rc = EXIT_FAIL;

    password[0] = '\0';
    if (!normalize_email(arg_get(a, OPT_EMAIL), email)) {
        char *shown = sanitize(arg_get(a, OPT_EMAIL));
        rc = value_error("not a valid e-mail address: '%s'", shown);
        cd_free(shown);
        goto out;
    }
    if (!read_password(arg_get(a, OPT_PASSWORD), password, sizeof password) || strlen(password) < PASSWORD_MIN ||
        strlen(password) > CD_AUTH_PASSWORD_MAX) {
        rc = value_error("password must be %d-%d bytes", PASSWORD_MIN, CD_AUTH_PASSWORD_MAX);
        goto out;
    }
    if (!valid_name(name)) {
        rc = value_error("agent name must be 1-%d bytes of UTF-8 text without control characters", NAME_MAX_BYTES);
        goto out;
    }
    for (size_t i = 0; i < nsites; i++) {
        if (!valid_key(sites[i])) {
            char *shown = sanitize(sites[i]);
            rc = value_error("site key must be 1-64 characters of A-Z a-z 0-9 _ -: got '%s'", shown);
            cd_free(shown);
            goto out;
        }
        json_array_append_new(jsites, json_string(sites[i]));
    }
    for (size_t i = 0; i < nteams; i++) {
        if (!valid_key(teams[i])) {
            char *shown = sanitize(teams[i]);
            rc = value_error("team must be 1-64 characters of A-Z a-z 0-9 _ -: got '%s'", shown);
            cd_free(shown);
            goto out;
        }
        json_array_append_new(jteams, json_string(teams[i]));
    }
    if (strcmp(role, "agent") != 0 && strcmp(role, "admin") != 0) {
        char *shown = sanitize(role);
        rc = value_error("role must be agent or admin: got '%s'", shown);
        cd_free(shown);
        goto out;
    }
    if (maxs) {
        char *end;
        errno = 0;
        max_chats = strtol(maxs, &end, 10);
        if (errno || end == maxs || *end || max_chats < MAX_CHATS_MIN || max_chats > MAX_CHATS_MAX) {
            rc = value_error("max-chats must be a whole number from %d to %d", MAX_CHATS_MIN, MAX_CHATS_MAX);
            goto out;
        }
    }

    c = redis_open(cfg, &rc);
    if (!c)
        goto out;
    if (cd_auth_password_hash(password, pw_hash, sizeof pw_hash) != 0) {
        errorf("cannot hash the password");
        rc = EXIT_FAIL;
        goto out;
    }
    explicit_bzero(password, sizeof password);
    cd_id_new("a", id, sizeof id);
    sites_json = json_dumps(jsites, JSON_COMPACT);
    teams_json = json_dumps(jteams, JSON_COMPACT);
    char created[24], maxbuf[24];
    snprintf(created, sizeof created, "%llu", (unsigned long long)cd_now_ms());
    snprintf(maxbuf, sizeof maxbuf, "%ld", max_chats);

    owned = cd_calloc(3 + 2 * nsites, sizeof *owned);
    keys = cd_calloc(3 + 2 * nsites, sizeof *keys);
    owned[nkeys++] = pkey(cfg, "agent:email:%s", email);
    owned[nkeys++] = pkey(cfg, "agent:%s", id);
    owned[nkeys++] = pkey(cfg, "agents");
    for (size_t i = 0; i < nsites; i++)
        owned[nkeys++] = pkey(cfg, "site:%s", sites[i]);
    for (size_t i = 0; i < nsites; i++)
        owned[nkeys++] = pkey(cfg, "site:%s:agents", sites[i]);
    for (size_t i = 0; i < nkeys; i++)
        keys[i] = owned[i];
    argv = cd_calloc(9 + nsites, sizeof *argv);
    const char *fixed[] = {id, name, email, role, sites_json, teams_json, pw_hash, maxbuf, created};
    for (size_t i = 0; i < CD_ARRAY_LEN(fixed); i++)
        argv[nargv++] = fixed[i];
    for (size_t i = 0; i < nsites; i++)
        argv[nargv++] = sites[i];

    res = eval_json(c, agent_add_lua, nkeys, keys, nargv, argv);
    if (!res)
        goto out;
    const char *e = json_string_value(json_object_get(res, "error"));
    if (e) {
        if (strcmp(e, "email_taken") == 0)
            errorf("agent with e-mail %s already exists", email);
        else if (strcmp(e, "unknown_site") == 0)
            errorf("unknown site %s", json_string_value(json_object_get(res, "site")));
        else
            errorf("agent-add failed: %s", e);
        goto out;
    }
    json_t *outj = json_pack("{s:s, s:s, s:s, s:s, s:O, s:O}", "id", id, "email", email, "name", name, "role", role,
                             "sites", jsites, "teams", jteams);
    print_json(outj);
    json_decref(outj);
    rc = EXIT_OK;

out:
    explicit_bzero(password, sizeof password);
    explicit_bzero(pw_hash, sizeof pw_hash);
    json_decref(res);
    json_decref(jsites);
    json_decref(jteams);
    free(sites_json);
    free(teams_json);
    for (size_t i = 0; i < nkeys; i++)
        cd_free(owned[i]);
    cd_free(owned);
    cd_free(keys);
    cd_free(argv);
    cd_free(sites);
    cd_free(teams);
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
    char *k_sites = pkey(cfg, "sites");
    json_t *list = json_array();
    int rc = EXIT_FAIL;

    c = redis_open(cfg, &rc);
    if (!c)
        goto out;
    rc = EXIT_FAIL;
    if (members_sorted(c, k_sites, &mr, &ids, &n) != 0)
        goto out;
    hr = hgetall_many(c, cfg, "site:", ids, n);
    if (!hr)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (hr[i]->type != REDIS_REPLY_ARRAY || hr[i]->elements == 0)
            continue; /* indexed but gone: skip */
        const char *secret = hash_get(hr[i], "identity_secret");
        json_t *o = json_object();
        json_object_set_new(o, "key", jstr(ids[i]));
        json_object_set_new(o, "name", jstr(hash_get(hr[i], "name")));
        json_object_set_new(o, "origins", json_array_field(hash_get(hr[i], "origins")));
        json_object_set_new(o, "identity_verification", json_boolean(secret && secret[0]));
        json_object_set_new(o, "created_at", json_integer(int_field(hash_get(hr[i], "created_at"))));
        json_array_append_new(list, o);
    }

    if (as_json) {
        print_json(list);
    } else if (json_array_size(list) == 0) {
        puts("no sites");
    } else {
        table t = {.ncols = 5};
        const char *head[] = {"KEY", "NAME", "IDENTITY", "CREATED", "ORIGINS"};
        table_row(&t, head);
        size_t i;
        json_t *o;
        json_array_foreach(list, i, o)
        {
            char when[32];
            format_time(json_integer_value(json_object_get(o, "created_at")), when, sizeof when);
            char *orig = join_array(json_object_get(o, "origins"));
            const char *row[] = {json_string_value(json_object_get(o, "key")),
                                 json_string_value(json_object_get(o, "name")),
                                 json_is_true(json_object_get(o, "identity_verification")) ? "on" : "off", when, orig};
            table_row(&t, row);
            cd_free(orig);
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
    json_t *list = json_array();
    int rc = EXIT_FAIL;

    if (site && !valid_key(site)) {
        char *shown = sanitize(site);
        rc = value_error("site key must be 1-64 characters of A-Z a-z 0-9 _ -: got '%s'", shown);
        cd_free(shown);
        goto out;
    }
    c = redis_open(cfg, &rc);
    if (!c)
        goto out;
    rc = EXIT_FAIL;
    if (site) {
        char *k_site = pkey(cfg, "site:%s", site);
        const char *argv[] = {"EXISTS", k_site};
        redisReply *r = rcall(c, 2, argv);
        cd_free(k_site);
        if (!r)
            goto out;
        bool exists = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        freeReplyObject(r);
        if (!exists) {
            errorf("unknown site %s", site);
            goto out;
        }
        k_set = pkey(cfg, "site:%s:agents", site);
    } else {
        k_set = pkey(cfg, "agents");
    }
    if (members_sorted(c, k_set, &mr, &ids, &n) != 0)
        goto out;
    hr = hgetall_many(c, cfg, "agent:", ids, n);
    if (!hr)
        goto out;
    agents = cd_calloc(n + 1, sizeof *agents);
    for (size_t i = 0; i < n; i++) {
        if (hr[i]->type != REDIS_REPLY_ARRAY || hr[i]->elements == 0)
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "id", jstr(ids[i]));
        json_object_set_new(o, "email", jstr(hash_get(hr[i], "email")));
        json_object_set_new(o, "name", jstr(hash_get(hr[i], "name")));
        json_object_set_new(o, "role", jstr(hash_get(hr[i], "role")));
        json_object_set_new(o, "sites", json_array_field(hash_get(hr[i], "sites")));
        json_object_set_new(o, "teams", json_array_field(hash_get(hr[i], "teams")));
        json_object_set_new(o, "status", jstr(hash_get(hr[i], "status")));
        json_object_set_new(o, "max_chats", json_integer(int_field(hash_get(hr[i], "max_chats"))));
        json_object_set_new(o, "created_at", json_integer(int_field(hash_get(hr[i], "created_at"))));
        agents[na++] = o;
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
            const char *row[] = {json_string_value(json_object_get(o, "id")),
                                 json_string_value(json_object_get(o, "email")),
                                 json_string_value(json_object_get(o, "name")),
                                 json_string_value(json_object_get(o, "role")),
                                 json_string_value(json_object_get(o, "status")),
                                 maxbuf,
                                 s,
                                 tm[0] ? tm : "-"};
            table_row(&t, row);
            cd_free(s);
            cd_free(tm);
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

/* ---- entry point ---- */

static const command commands[] = {
    {"site-add", run_site_add, BIT(OPT_KEY) | BIT(OPT_NAME) | BIT(OPT_ORIGIN) | BIT(OPT_SECRET),
     BIT(OPT_KEY) | BIT(OPT_NAME) | BIT(OPT_ORIGIN), BIT(OPT_ORIGIN)},
    {"agent-add", run_agent_add,
     BIT(OPT_EMAIL) | BIT(OPT_PASSWORD) | BIT(OPT_NAME) | BIT(OPT_SITE) | BIT(OPT_TEAM) | BIT(OPT_ROLE) |
         BIT(OPT_MAX_CHATS),
     BIT(OPT_EMAIL) | BIT(OPT_PASSWORD) | BIT(OPT_NAME) | BIT(OPT_SITE), BIT(OPT_SITE) | BIT(OPT_TEAM)},
    {"site-list", run_site_list, BIT(OPT_JSON), 0, 0},
    {"agent-list", run_agent_list, BIT(OPT_SITE) | BIT(OPT_JSON), 0, 0},
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
