/* admin: the `chatdeskd admin <command> [options]` CLI.
 *
 * Adds, changes and lists sites, teams and agents by talking to Redis directly with a blocking
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
 * Results go to stdout as one line of JSON (add and set commands, `--json` listings)
 * or an aligned table; diagnostics go to stderr prefixed with "chatdeskd admin: ".
 *
 * The set commands (site-set, agent-set) end their script with a site.changed notice
 * on ch:sites for every site concerned: nodes reload their site cache and re-run queue
 * assignment, since auto-assignment, teams or an agent's capacity may have changed.
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

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define KEY_MAX 64
#define NAME_MAX_BYTES 200
#define EMAIL_MAX 254
#define PASSWORD_MIN CD_AUTH_PASSWORD_MIN
#define SECRET_MIN 16
#define SECRET_MAX 512
#define ORIGIN_MAX 512
#define MAX_CHATS_DEFAULT 5
#define MAX_CHATS_MIN 1
#define MAX_CHATS_MAX 100
#define CMD_TIMEOUT_MIN_MS 5000
#define ACK_MAX_BYTES 1000
#define AUTO_CLOSE_MAX 31536000  /* a year, in seconds */
#define AUTO_CLOSE_DEFAULT 86400 /* what nodes assume when a site has no auto_close_s */
#define NO_TEAM "_"              /* the team-less queue (site:<k>:queue:_): not a team key */

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
    "JSON. Exit status: 0 ok, 1 runtime error (Redis, duplicate, unknown site, team or agent),\n"
    "2 usage error or bad value.\n";

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

/* true when s is valid UTF-8 without control characters (but for line feeds and
 * tabs when multiline). */
static bool is_clean_text_ml(const char *s, bool multiline)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n) {
        if ((*p < 0x20 && !(multiline && (*p == '\n' || *p == '\t'))) || *p == 0x7f)
            return false;
        size_t l = utf8_seq(p, n);
        if (l == 0)
            return false;
        p += l;
        n -= l;
    }
    return true;
}

static bool is_clean_text(const char *s)
{
    return is_clean_text_ml(s, false);
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

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= NAME_MAX_BYTES && is_clean_text(s);
}

/* A value error for a bad site or team key (what: "site key", "team"). Returns 2. */
static int bad_key(const char *what, const char *s)
{
    char *shown = sanitize(s);
    int rc = value_error("%s must be 1-64 characters of A-Z a-z 0-9 _ -: got '%s'", what, shown);
    cd_free(shown);
    return rc;
}

/* Checks a team key: like a site key, but "_" names the team-less queue. Returns 0,
 * or 2 after printing the error. */
static int check_team(const char *t)
{
    if (!valid_key(t))
        return bad_key("team", t);
    if (strcmp(t, NO_TEAM) == 0)
        return value_error("team '%s' is reserved (it names the queue of chats without a team)", NO_TEAM);
    return 0;
}

/* A whole decimal number in [min, max] (digits only, no sign or spaces). */
static bool parse_range(const char *s, long min, long max, long *out)
{
    long v = 0;
    if (!s[0])
        return false;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p) || v > max)
            return false;
        v = v * 10 + (*p - '0');
    }
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* "on"/"off" into *out. */
static bool parse_on_off(const char *s, bool *out)
{
    if (strcmp(s, "on") == 0)
        *out = true;
    else if (strcmp(s, "off") == 0)
        *out = false;
    else
        return false;
    return true;
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

/* The site.changed notice for site key k, for the ch:sites channel (header line and
 * frame, as docs/keyspace.md describes). Lua, shared by the set scripts. */
#define SITE_CHANGED_LUA(k) "'0 a -\\n{\"type\":\"site.changed\",\"key\":' .. cjson.encode(" k ") .. '}'"

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

static int site_name_error(void)
{
    return value_error("site name must be 1-%d bytes of UTF-8 text without control characters", NAME_MAX_BYTES);
}

/* The origins as a JSON array, or NULL with *rc set after printing the first bad one. */
static json_t *origins_array(const char **origins, size_t n, int *rc)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!valid_origin(origins[i])) {
            char *shown = sanitize(origins[i]);
            *rc = value_error("origin must look like https://example.com[:port]: got %s "
                              "(lowercase scheme and host, no path, no trailing slash, no default port)",
                              shown);
            cd_free(shown);
            json_decref(arr);
            return NULL;
        }
        json_array_append_new(arr, json_string(origins[i]));
    }
    return arr;
}

static int check_secret(const char *secret)
{
    if (strlen(secret) < SECRET_MIN || strlen(secret) > SECRET_MAX || !is_clean_text(secret))
        return value_error("identity secret must be %d-%d bytes of text without control characters", SECRET_MIN,
                           SECRET_MAX);
    return 0;
}

static bool read_password(const char *given, char *out, size_t outsz);

/* The identity secret as given, or for "-" the first line of stdin (so it stays off the
 * command line, where any user of the machine can read it), checked. */
static int take_secret(const char **secret, char *buf, size_t bufsz)
{
    if (strcmp(*secret, "-") == 0) {
        if (!read_password("-", buf, bufsz))
            return value_error("identity secret: stdin has no line of at most %d bytes", SECRET_MAX);
        *secret = buf;
    }
    return check_secret(*secret);
}

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
    char secret_buf[SECRET_MAX + 2];
    const char **origins = cd_calloc(a->n + 1, sizeof *origins);
    size_t norigins = arg_all(a, OPT_ORIGIN, origins);
    json_t *jorigins = NULL, *res = NULL;
    char *origins_json = NULL, *k_site = NULL, *k_sites = NULL, *ch = NULL;
    redisContext *c = NULL;
    int rc = EXIT_FAIL;

    if (!valid_key(key)) {
        rc = bad_key("site key", key);
        goto out;
    }
    if (!valid_name(name)) {
        rc = site_name_error();
        goto out;
    }
    if (!(jorigins = origins_array(origins, norigins, &rc)))
        goto out;
    if (secret && (rc = take_secret(&secret, secret_buf, sizeof secret_buf)) != 0)
        goto out;

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

/* ---- site-set ---- */

/* KEYS: site:<key>, site:<key>:teams. ARGV: key, the ch:sites channel, m, then the m
 * teams the new category map names (each must be a team of the site), then the
 * field/value pairs to write. The checks, the write and the site.changed notice (nodes
 * reload the site and re-run assignment) happen together or not at all. */
static const char site_set_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return '{\"error\":\"unknown_site\"}' end\n"
    "local m = tonumber(ARGV[3])\n"
    "for j = 4, 3 + m do\n"
    "  if redis.call('HEXISTS', KEYS[2], ARGV[j]) == 0 then\n"
    "    return cjson.encode({error = 'unknown_team', team = ARGV[j]})\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], unpack(ARGV, 4 + m))\n"
    "redis.call('PUBLISH', ARGV[2], " SITE_CHANGED_LUA("ARGV[1]") ")\n"
                                                                  "return '{\"ok\":true}'\n";

/* An auto-acknowledgement text: at most ACK_MAX_BYTES of UTF-8, line breaks and tabs
 * allowed, no other control characters; empty means the built-in text. */
static int check_ack(const char *opt, const char *text)
{
    if (strlen(text) > ACK_MAX_BYTES || !is_clean_text_ml(text, true))
        return value_error("%s must be at most %d bytes of UTF-8 text (line breaks allowed, no other control "
                           "characters)",
                           opt, ACK_MAX_BYTES);
    return 0;
}

/* Parses the --category-team CATEGORY=TEAM values into *map (category -> team, in the
 * order given; CATEGORY= leaves the category out) and the distinct teams it names into
 * teams (n entries at most). Returns 0, or 2 after printing the error. */
static int parse_category_teams(const char **vals, size_t n, json_t **map, const char **teams, size_t *nteams)
{
    json_t *m = json_object(), *seen = json_object();
    int rc = 0;
    *nteams = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *eq = strrchr(vals[i], '=');
        if (!eq || eq == vals[i]) {
            char *shown = sanitize(vals[i]);
            rc = value_error("category-team must be CATEGORY=TEAM (or CATEGORY= to leave the category out): got '%s'",
                             shown);
            cd_free(shown);
            break;
        }
        char *cat = cd_strndup(vals[i], (size_t)(eq - vals[i]));
        const char *team = eq + 1;
        const json_t *prev;
        if (strlen(cat) > NAME_MAX_BYTES || !is_clean_text(cat)) {
            char *shown = sanitize(cat);
            rc = value_error("category must be 1-%d bytes of UTF-8 text without control characters: got '%s'",
                             NAME_MAX_BYTES, shown);
            cd_free(shown);
        } else if (team[0] && (rc = check_team(team)) != 0) {
            /* printed */
        } else if ((prev = json_object_get(seen, cat)) && strcmp(json_string_value(prev), team) != 0) {
            rc = value_error("category '%s' is given twice with different teams", cat);
        } else {
            json_object_set_new(seen, cat, json_string(team));
            if (team[0]) {
                json_object_set_new(m, cat, json_string(team));
                bool dup = false;
                for (size_t j = 0; j < *nteams && !dup; j++)
                    dup = strcmp(teams[j], team) == 0;
                if (!dup)
                    teams[(*nteams)++] = team;
            }
        }
        cd_free(cat);
    }
    json_decref(seen);
    if (rc != 0) {
        json_decref(m);
        return rc;
    }
    *map = m;
    return 0;
}

static int run_site_set(cd_config *cfg, const args *a)
{
    const char *key = arg_get(a, OPT_KEY);
    const char *name = arg_get(a, OPT_NAME);
    const char *secret = arg_get(a, OPT_SECRET);
    char secret_buf[SECRET_MAX + 2];
    bool no_secret = arg_get(a, OPT_NO_SECRET) != NULL;
    const char *assign = arg_get(a, OPT_AUTO_ASSIGN);
    const char *close = arg_get(a, OPT_AUTO_CLOSE);
    const char *ack_en = arg_get(a, OPT_ACK_EN);
    const char *ack_zh = arg_get(a, OPT_ACK_ZH);
    const char **origins = cd_calloc(a->n + 1, sizeof *origins);
    const char **cats = cd_calloc(a->n + 1, sizeof *cats);
    const char **teams = cd_calloc(a->n + 1, sizeof *teams);
    size_t norigins = arg_all(a, OPT_ORIGIN, origins);
    size_t ncats = arg_all(a, OPT_CATEGORY_TEAM, cats);
    size_t nteams = 0;
    json_t *jorigins = NULL, *cmap = NULL, *res = NULL;
    char *origins_json = NULL, *cmap_json = NULL, *k_site = NULL, *k_teams = NULL, *ch = NULL;
    const char **argv = NULL;
    size_t nargv = 0;
    redisReply *h = NULL;
    redisContext *c = NULL;
    bool assign_on = true;
    long close_s = 0;
    char mbuf[24], closebuf[24];
    int rc = EXIT_FAIL;

    if (secret && no_secret) {
        rc = usage_error("site-set takes --identity-secret or --no-identity-secret, not both");
        goto out;
    }
    if (!name && !norigins && !secret && !no_secret && !assign && !ncats && !close && !ack_en && !ack_zh) {
        rc = usage_error("site-set needs at least one setting to change");
        goto out;
    }
    if (!valid_key(key)) {
        rc = bad_key("site key", key);
        goto out;
    }
    if (name && !valid_name(name)) {
        rc = site_name_error();
        goto out;
    }
    if (norigins && !(jorigins = origins_array(origins, norigins, &rc)))
        goto out;
    if (secret && (rc = take_secret(&secret, secret_buf, sizeof secret_buf)) != 0)
        goto out;
    if (assign && !parse_on_off(assign, &assign_on)) {
        char *shown = sanitize(assign);
        rc = value_error("auto-assign must be on or off: got '%s'", shown);
        cd_free(shown);
        goto out;
    }
    if (close && !parse_range(close, 0, AUTO_CLOSE_MAX, &close_s)) {
        rc = value_error("auto-close-s must be a whole number of seconds from 0 (never close) to %d", AUTO_CLOSE_MAX);
        goto out;
    }
    if ((ack_en && (rc = check_ack("ack-en", ack_en)) != 0) || (ack_zh && (rc = check_ack("ack-zh", ack_zh)) != 0))
        goto out;
    if (ncats && (rc = parse_category_teams(cats, ncats, &cmap, teams, &nteams)) != 0)
        goto out;
    rc = EXIT_FAIL;

    c = redis_open(cfg, &rc);
    if (!c)
        goto out;
    k_site = pkey(cfg, "site:%s", key);
    k_teams = pkey(cfg, "site:%s:teams", key);
    ch = pkey(cfg, "ch:sites");
    snprintf(mbuf, sizeof mbuf, "%zu", nteams);
    argv = cd_calloc(3 + nteams + 2 * 8, sizeof *argv);
    argv[nargv++] = key;
    argv[nargv++] = ch;
    argv[nargv++] = mbuf;
    for (size_t i = 0; i < nteams; i++)
        argv[nargv++] = teams[i];
#define FIELD(f, v) (argv[nargv++] = (f), argv[nargv++] = (v))
    if (name)
        FIELD("name", name);
    if (jorigins) {
        origins_json = json_dumps(jorigins, JSON_COMPACT);
        FIELD("origins", origins_json);
    }
    if (secret || no_secret)
        FIELD("identity_secret", secret ? secret : "");
    if (assign)
        FIELD("auto_assign", assign_on ? "1" : "0");
    if (cmap) {
        cmap_json = json_dumps(cmap, JSON_COMPACT | JSON_PRESERVE_ORDER);
        FIELD("category_teams", cmap_json);
    }
    if (close) {
        snprintf(closebuf, sizeof closebuf, "%ld", close_s);
        FIELD("auto_close_s", closebuf);
    }
    if (ack_en)
        FIELD("ack_text_en", ack_en);
    if (ack_zh)
        FIELD("ack_text_zh", ack_zh);
#undef FIELD

    const char *keys[] = {k_site, k_teams};
    res = eval_json(c, site_set_lua, CD_ARRAY_LEN(keys), keys, nargv, argv);
    if (!res)
        goto out;
    const char *e = json_string_value(json_object_get(res, "error"));
    if (e) {
        if (strcmp(e, "unknown_site") == 0)
            errorf("unknown site %s", key);
        else if (strcmp(e, "unknown_team") == 0)
            errorf("unknown team %s on site %s", json_string_value(json_object_get(res, "team")), key);
        else
            errorf("site-set failed: %s", e);
        goto out;
    }
    /* The record as it now stands (a read after the write, for display only). */
    if (!(h = hgetall(c, k_site)))
        goto out;
    json_t *outj = site_object(key, h);
    print_json(outj);
    json_decref(outj);
    rc = EXIT_OK;

out:
    if (h)
        freeReplyObject(h);
    json_decref(res);
    json_decref(jorigins);
    json_decref(cmap);
    free(origins_json);
    free(cmap_json);
    cd_free(k_site);
    cd_free(k_teams);
    cd_free(ch);
    cd_free(argv);
    cd_free(origins);
    cd_free(cats);
    cd_free(teams);
    if (c)
        redisFree(c);
    return rc;
}

/* ---- team-add ---- */

/* KEYS: site:<key>, site:<key>:teams. ARGV: team, name. */
static const char team_add_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return '{\"error\":\"unknown_site\"}' end\n"
    "if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return '{\"error\":\"exists\"}' end\n"
    "return '{\"ok\":true}'\n";

static int run_team_add(cd_config *cfg, const args *a)
{
    const char *site = arg_get(a, OPT_SITE);
    const char *team = arg_get(a, OPT_KEY);
    const char *name = arg_get(a, OPT_NAME);
    char *k_site = NULL, *k_teams = NULL;
    json_t *res = NULL;
    redisContext *c = NULL;
    int rc = EXIT_FAIL;

    if (!valid_key(site)) {
        rc = bad_key("site key", site);
        goto out;
    }
    if ((rc = check_team(team)) != 0)
        goto out;
    rc = EXIT_FAIL;
    if (!valid_name(name)) {
        rc = value_error("team name must be 1-%d bytes of UTF-8 text without control characters", NAME_MAX_BYTES);
        goto out;
    }

    c = redis_open(cfg, &rc);
    if (!c)
        goto out;
    k_site = pkey(cfg, "site:%s", site);
    k_teams = pkey(cfg, "site:%s:teams", site);
    const char *keys[] = {k_site, k_teams};
    const char *argv[] = {team, name};
    res = eval_json(c, team_add_lua, CD_ARRAY_LEN(keys), keys, CD_ARRAY_LEN(argv), argv);
    if (!res)
        goto out;
    const char *e = json_string_value(json_object_get(res, "error"));
    if (e) {
        if (strcmp(e, "unknown_site") == 0)
            errorf("unknown site %s", site);
        else if (strcmp(e, "exists") == 0)
            errorf("team %s already exists on site %s", team, site);
        else
            errorf("team-add failed: %s", e);
        goto out;
    }
    json_t *outj = json_pack("{s:s, s:s, s:s}", "site", site, "key", team, "name", name);
    print_json(outj);
    json_decref(outj);
    rc = EXIT_OK;

out:
    json_decref(res);
    cd_free(k_site);
    cd_free(k_teams);
    if (c)
        redisFree(c);
    return rc;
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
    k_site = pkey(cfg, "site:%s", site);
    k_teams = pkey(cfg, "site:%s:teams", site);
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

/* ---- agent-add ---- */

static int max_chats_error(void)
{
    return value_error("max-chats must be a whole number from %d to %d", MAX_CHATS_MIN, MAX_CHATS_MAX);
}

/* agent < admin (its own sites) < owner (also creates sites; docs/ops.md "Roles") */
static bool role_ok(const char *role)
{
    return strcmp(role, "agent") == 0 || strcmp(role, "admin") == 0 || strcmp(role, "owner") == 0;
}

static int role_error(const char *role)
{
    char *shown = sanitize(role);
    int rc = value_error("role must be agent, admin or owner: got '%s'", shown);
    cd_free(shown);
    return rc;
}

/* KEYS: agent:email:<email>, agent:<id>, agents, then site:<k> for each of the n
 * sites, then site:<k>:agents for each, then site:<k>:teams for each. ARGV: id, name,
 * email, role, sites (JSON), teams (JSON), pw, max_chats, created_at, then the n site
 * keys, then the teams (each must be a team of at least one of the sites). */
static const char agent_add_lua[] =
    "local n = (#KEYS - 3) / 3\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then return '{\"error\":\"email_taken\"}' end\n"
    "for i = 1, n do\n"
    "  if redis.call('EXISTS', KEYS[3 + i]) == 0 then\n"
    "    return cjson.encode({error = 'unknown_site', site = ARGV[9 + i]})\n"
    "  end\n"
    "end\n"
    "for j = 10 + n, #ARGV do\n"
    "  local found = false\n"
    "  for i = 1, n do\n"
    "    if redis.call('HEXISTS', KEYS[3 + 2 * n + i], ARGV[j]) == 1 then found = true break end\n"
    "  end\n"
    "  if not found then return cjson.encode({error = 'unknown_team', team = ARGV[j]}) end\n"
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
        if ((rc = check_team(teams[i])) != 0)
            goto out;
        json_array_append_new(jteams, json_string(teams[i]));
    }
    rc = EXIT_FAIL;
    if (!role_ok(role)) {
        rc = role_error(role);
        goto out;
    }
    if (maxs && !parse_range(maxs, MAX_CHATS_MIN, MAX_CHATS_MAX, &max_chats)) {
        rc = max_chats_error();
        goto out;
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

    owned = cd_calloc(3 + 3 * nsites, sizeof *owned);
    keys = cd_calloc(3 + 3 * nsites, sizeof *keys);
    owned[nkeys++] = pkey(cfg, "agent:email:%s", email);
    owned[nkeys++] = pkey(cfg, "agent:%s", id);
    owned[nkeys++] = pkey(cfg, "agents");
    for (size_t i = 0; i < nsites; i++)
        owned[nkeys++] = pkey(cfg, "site:%s", sites[i]);
    for (size_t i = 0; i < nsites; i++)
        owned[nkeys++] = pkey(cfg, "site:%s:agents", sites[i]);
    for (size_t i = 0; i < nsites; i++)
        owned[nkeys++] = pkey(cfg, "site:%s:teams", sites[i]);
    for (size_t i = 0; i < nkeys; i++)
        keys[i] = owned[i];
    argv = cd_calloc(9 + nsites + nteams, sizeof *argv);
    const char *fixed[] = {id, name, email, role, sites_json, teams_json, pw_hash, maxbuf, created};
    for (size_t i = 0; i < CD_ARRAY_LEN(fixed); i++)
        argv[nargv++] = fixed[i];
    for (size_t i = 0; i < nsites; i++)
        argv[nargv++] = sites[i];
    for (size_t i = 0; i < nteams; i++)
        argv[nargv++] = teams[i];

    res = eval_json(c, agent_add_lua, nkeys, keys, nargv, argv);
    if (!res)
        goto out;
    const char *e = json_string_value(json_object_get(res, "error"));
    if (e) {
        if (strcmp(e, "email_taken") == 0)
            errorf("agent with e-mail %s already exists", email);
        else if (strcmp(e, "unknown_site") == 0)
            errorf("unknown site %s", json_string_value(json_object_get(res, "site")));
        else if (strcmp(e, "unknown_team") == 0)
            errorf("unknown team %s", json_string_value(json_object_get(res, "team")));
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

/* ---- agent-set ---- */

/* KEYS: agent:email:<email>. ARGV: prefix, the ch:sites channel, m, then the m teams
 * (each must be a team of at least one of the agent's sites), then the field/value
 * pairs to write. The agent's sites are only known inside the script, so their team
 * hashes are named from the prefix. Ends with an agent.changed notice (nodes copy the
 * agent's settings to its record in each of its sites) and a site.changed notice for
 * each of the agent's sites: its capacity, teams or availability may have changed. */
static const char agent_set_lua[] =
    "local id = redis.call('GET', KEYS[1])\n"
    "if not id then return '{\"error\":\"unknown_agent\"}' end\n"
    "local akey = ARGV[1] .. 'agent:' .. id\n"
    "if redis.call('EXISTS', akey) == 0 then return '{\"error\":\"unknown_agent\"}' end\n"
    "local sites = {}\n"
    "local ok, v = pcall(cjson.decode, redis.call('HGET', akey, 'sites') or '[]')\n"
    "if ok and type(v) == 'table' then\n"
    "  for _, s in ipairs(v) do if type(s) == 'string' then table.insert(sites, s) end end\n"
    "end\n"
    "local m = tonumber(ARGV[3])\n"
    "for j = 4, 3 + m do\n"
    "  local found = false\n"
    "  for _, s in ipairs(sites) do\n"
    "    if redis.call('HEXISTS', ARGV[1] .. 'site:' .. s .. ':teams', ARGV[j]) == 1 then found = true break end\n"
    "  end\n"
    "  if not found then return cjson.encode({error = 'unknown_team', team = ARGV[j]}) end\n"
    "end\n"
    "redis.call('HSET', akey, unpack(ARGV, 4 + m))\n"
    /* a new role or a disabled flag ends the agent's logins (docs/ops.md "Sessions and
     * revocation"; revoke_agent in _common.lua) */
    "for j = 4 + m, #ARGV, 2 do\n"
    "  if ARGV[j] == 'role' or (ARGV[j] == 'disabled' and ARGV[j + 1] == '1') then\n"
    "    local ep = redis.call('HINCRBY', akey, 'tep', 1)\n"
    "    redis.call('PUBLISH', ARGV[1] .. 'ch:agent:' .. id, '0 a revoke:' .. ep ..\n"
    "      '\\n{\"type\":\"session.revoked\",\"reason\":\"account changed\"}')\n"
    "    break\n"
    "  end\n"
    "end\n"
    "redis.call('HINCRBY', akey, 'sv', 1)\n"
    "redis.call('PUBLISH', ARGV[2], '0 a -\\n{\"type\":\"agent.changed\",\"id\":' .. cjson.encode(id) .. '}')\n"
    "for _, s in ipairs(sites) do\n"
    "  redis.call('PUBLISH', ARGV[2], " SITE_CHANGED_LUA("s") ")\n"
                                                              "end\n"
                                                              "return cjson.encode({ok = true, id = id})\n";

static int run_agent_set(cd_config *cfg, const args *a)
{
    const char *name = arg_get(a, OPT_NAME);
    const char *role = arg_get(a, OPT_ROLE);
    const char *maxs = arg_get(a, OPT_MAX_CHATS);
    const char *disabled = arg_get(a, OPT_DISABLED);
    bool no_teams = arg_get(a, OPT_NO_TEAMS) != NULL;
    const char **teams = cd_calloc(a->n + 1, sizeof *teams);
    size_t nteams = arg_all(a, OPT_TEAM, teams);
    char email[EMAIL_MAX + 1];
    char mbuf[24], maxbuf[24];
    json_t *jteams = NULL, *res = NULL;
    char *teams_json = NULL, *k_email = NULL, *k_agent = NULL, *ch = NULL;
    const char **argv = NULL;
    size_t nargv = 0;
    redisReply *h = NULL;
    redisContext *c = NULL;
    long max_chats = 0;
    bool dis = false;
    int rc = EXIT_FAIL;

    if (nteams && no_teams) {
        rc = usage_error("agent-set takes --team or --no-teams, not both");
        goto out;
    }
    if (!name && !role && !maxs && !disabled && !nteams && !no_teams) {
        rc = usage_error("agent-set needs at least one setting to change");
        goto out;
    }
    if (!normalize_email(arg_get(a, OPT_EMAIL), email)) {
        char *shown = sanitize(arg_get(a, OPT_EMAIL));
        rc = value_error("not a valid e-mail address: '%s'", shown);
        cd_free(shown);
        goto out;
    }
    if (name && !valid_name(name)) {
        rc = value_error("agent name must be 1-%d bytes of UTF-8 text without control characters", NAME_MAX_BYTES);
        goto out;
    }
    if (role && !role_ok(role)) {
        rc = role_error(role);
        goto out;
    }
    if (maxs && !parse_range(maxs, MAX_CHATS_MIN, MAX_CHATS_MAX, &max_chats)) {
        rc = max_chats_error();
        goto out;
    }
    if (disabled && !parse_on_off(disabled, &dis)) {
        char *shown = sanitize(disabled);
        rc = value_error("disabled must be on or off: got '%s'", shown);
        cd_free(shown);
        goto out;
    }
    jteams = json_array();
    for (size_t i = 0; i < nteams; i++) {
        if ((rc = check_team(teams[i])) != 0)
            goto out;
        json_array_append_new(jteams, json_string(teams[i]));
    }
    rc = EXIT_FAIL;

    c = redis_open(cfg, &rc);
    if (!c)
        goto out;
    k_email = pkey(cfg, "agent:email:%s", email);
    ch = pkey(cfg, "ch:sites");
    snprintf(mbuf, sizeof mbuf, "%zu", nteams);
    argv = cd_calloc(3 + nteams + 2 * 5, sizeof *argv);
    argv[nargv++] = cfg->prefix;
    argv[nargv++] = ch;
    argv[nargv++] = mbuf;
    for (size_t i = 0; i < nteams; i++)
        argv[nargv++] = teams[i];
#define FIELD(f, v) (argv[nargv++] = (f), argv[nargv++] = (v))
    if (name)
        FIELD("name", name);
    if (role)
        FIELD("role", role);
    if (maxs) {
        snprintf(maxbuf, sizeof maxbuf, "%ld", max_chats);
        FIELD("max_chats", maxbuf);
    }
    if (nteams || no_teams) {
        teams_json = json_dumps(jteams, JSON_COMPACT);
        FIELD("teams", teams_json);
    }
    if (disabled)
        FIELD("disabled", dis ? "1" : "0");
#undef FIELD

    const char *keys[] = {k_email};
    res = eval_json(c, agent_set_lua, CD_ARRAY_LEN(keys), keys, nargv, argv);
    if (!res)
        goto out;
    const char *e = json_string_value(json_object_get(res, "error"));
    if (e) {
        if (strcmp(e, "unknown_agent") == 0)
            errorf("unknown agent %s", email);
        else if (strcmp(e, "unknown_team") == 0)
            errorf("unknown team %s", json_string_value(json_object_get(res, "team")));
        else
            errorf("agent-set failed: %s", e);
        goto out;
    }
    const char *id = json_string_value(json_object_get(res, "id"));
    if (!id) {
        errorf("unexpected reply from the Redis script");
        goto out;
    }
    /* The record as it now stands (a read after the write, for display only). */
    k_agent = pkey(cfg, "agent:%s", id);
    if (!(h = hgetall(c, k_agent)))
        goto out;
    json_t *outj = agent_object(id, h);
    print_json(outj);
    json_decref(outj);
    rc = EXIT_OK;

out:
    if (h)
        freeReplyObject(h);
    json_decref(res);
    json_decref(jteams);
    free(teams_json);
    cd_free(k_email);
    cd_free(k_agent);
    cd_free(ch);
    cd_free(argv);
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
        char *k_site = pkey(cfg, "site:%s", site);
        int exists = key_exists(c, k_site);
        cd_free(k_site);
        if (exists < 0)
            goto out;
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
