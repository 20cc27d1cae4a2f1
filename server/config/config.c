/* config.c: every chatdeskd setting, generated from the X-macro table in config_table.h.
 *
 * The table is the single source of truth: the cd_config fields, defaults, file keys
 * (<name>), environment variables (CHATDESK_<NAME>), flags (--name-with-dashes),
 * bounds, --help and docs/config.md all come from it, so they cannot drift. This
 * file only turns the table into a descriptor array (opts[]) and walks it.
 *
 * Load order is defaults < JSON file < environment < flags; later wins. Every value
 * is checked where it enters (type, then bounds) and the error names the option the
 * way the user wrote it ("--port: 70000 is above the maximum 65535",
 * "CHATDESK_PORT: ...", "/etc/chatdesk.json: port: ..."). Whole-config checks (Redis
 * URL, log level, token secret, option pairs) run once at the end in
 * cd_config_validate(). String values are never echoed in errors: some are secrets.
 *
 * Flag parsing stops at the first non-flag argument, so "chatdeskd [flags] admin ..."
 * leaves the subcommand to the caller; the admin CLI sets options given after its
 * command with cd_config_apply_flag().
 */
#include "chatdesk/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "chatdesk/base.h"

/* ---- the descriptor table ---- */

typedef enum opt_type { OPT_INT, OPT_STR, OPT_BOOL } opt_type;

typedef struct opt_desc {
    const char *name;
    opt_type type;
    size_t offset;
    int64_t def_int; /* INT and BOOL */
    const char *def_str;
    int64_t min, max; /* INT only */
    const char *doc;
} opt_desc;

#define OPT_TYPE_INT OPT_INT
#define OPT_TYPE_STR OPT_STR
#define OPT_TYPE_BOOL OPT_BOOL
#define OPT_DEF_INT(d) (d), NULL
#define OPT_DEF_STR(d) 0, (d)
#define OPT_DEF_BOOL(d) (d), NULL
/* Parameter names end in '_' so they cannot capture the member names of opt_desc. */
#define OPT_ROW(n_, t_, d_, lo_, hi_, doc_) \
    {#n_, OPT_TYPE_##t_, offsetof(cd_config, n_), OPT_DEF_##t_(d_), (lo_), (hi_), (doc_)},

static const opt_desc opts[] = {CD_CONFIG_TABLE(OPT_ROW)};

#define OPT_COUNT CD_ARRAY_LEN(opts)
#define OPT_NAME_MAX 64 /* longest option name + NUL */

/* Compile-time checks of each row: the name fits the name buffers, and an INT default lies within its bounds. */
#define OPT_DEFAULT_OK_INT(d_, lo_, hi_) ((lo_) <= (d_) && (d_) <= (hi_))
#define OPT_DEFAULT_OK_BOOL(d_, lo_, hi_) ((d_) == 0 || (d_) == 1)
#define OPT_DEFAULT_OK_STR(d_, lo_, hi_) 1
#define OPT_CHECK(n_, t_, d_, lo_, hi_, doc_)                                  \
    _Static_assert(sizeof(#n_) <= OPT_NAME_MAX, "option name too long: " #n_); \
    _Static_assert(OPT_DEFAULT_OK_##t_(d_, lo_, hi_), "default out of bounds: " #n_);
CD_CONFIG_TABLE(OPT_CHECK)

static int64_t *opt_int(cd_config *cfg, const opt_desc *o)
{
    return (int64_t *)(void *)((char *)cfg + o->offset);
}

static char **opt_str(cd_config *cfg, const opt_desc *o)
{
    return (char **)(void *)((char *)cfg + o->offset);
}

static bool *opt_bool(cd_config *cfg, const opt_desc *o)
{
    return (bool *)(void *)((char *)cfg + o->offset);
}

/* ---- small helpers ---- */

static void set_err(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errsz == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

/* "--max-frame" for max_frame. */
static void flag_name(const opt_desc *o, char *out, size_t outsz)
{
    size_t i = 0;

    snprintf(out, outsz, "--%s", o->name);
    for (i = 2; out[i] != '\0'; i++)
        if (out[i] == '_')
            out[i] = '-';
}

/* "CHATDESK_MAX_FRAME" for max_frame. */
static void env_name(const opt_desc *o, char *out, size_t outsz)
{
    snprintf(out, outsz, "CHATDESK_%s", o->name);
    for (size_t i = 0; out[i] != '\0'; i++)
        out[i] = (char)toupper((unsigned char)out[i]);
}

/* Compares name[0..len) with an option name, treating '-' and '_' as the same character. */
static bool name_matches(const char *name, size_t len, const char *opt)
{
    size_t i;

    for (i = 0; i < len && opt[i] != '\0'; i++) {
        char a = name[i] == '-' ? '_' : name[i];
        if (a != opt[i])
            return false;
    }
    return i == len && opt[i] == '\0';
}

static const opt_desc *opt_find(const char *name, size_t len)
{
    for (size_t i = 0; i < OPT_COUNT; i++)
        if (name_matches(name, len, opts[i].name))
            return &opts[i];
    return NULL;
}

/* Finds the option a flag name (without "--") refers to; "no-<bool>" sets *negated. */
static const opt_desc *flag_lookup(const char *name, size_t len, bool *negated)
{
    const opt_desc *o = opt_find(name, len);

    *negated = false;
    if (o == NULL && len > 3 && (strncmp(name, "no-", 3) == 0 || strncmp(name, "no_", 3) == 0)) {
        o = opt_find(name + 3, len - 3);
        if (o != NULL && o->type != OPT_BOOL)
            return NULL;
        *negated = o != NULL;
    }
    return o;
}

static const char *type_noun(opt_type t)
{
    switch (t) {
    case OPT_INT:
        return "an integer";
    case OPT_STR:
        return "a string";
    case OPT_BOOL:
        return "a boolean";
    }
    return "a value";
}

/* ---- setting one value ---- */

static int check_bounds(const opt_desc *o, int64_t v, const char *text, const char *label, char *err, size_t errsz)
{
    if (v < o->min) {
        set_err(err, errsz, "%s: %s is below the minimum %" PRId64, label, text, o->min);
        return -1;
    }
    if (v > o->max) {
        set_err(err, errsz, "%s: %s is above the maximum %" PRId64, label, text, o->max);
        return -1;
    }
    return 0;
}

static void set_str(cd_config *cfg, const opt_desc *o, const char *value)
{
    char **p = opt_str(cfg, o);

    cd_free(*p);
    *p = cd_strdup(value);
}

/* Sets o from text (environment or command line). label names the source in errors. */
static int set_from_text(cd_config *cfg, const opt_desc *o, const char *text, const char *label, char *err,
                         size_t errsz)
{
    switch (o->type) {
    case OPT_INT: {
        char *end = NULL;
        long long v;

        /* strtoll would skip leading spaces and accept "" as 0; neither is a number here. */
        if (!(isdigit((unsigned char)text[0]) ||
              ((text[0] == '-' || text[0] == '+') && isdigit((unsigned char)text[1])))) {
            set_err(err, errsz, "%s: \"%.40s\" is not an integer", label, text);
            return -1;
        }
        errno = 0;
        v = strtoll(text, &end, 10);
        if (*end != '\0') {
            set_err(err, errsz, "%s: \"%.40s\" is not an integer", label, text);
            return -1;
        }
        if (errno == ERANGE) /* Saturated at LLONG_MIN/MAX, which is outside every bound. */
            v = text[0] == '-' ? LLONG_MIN : LLONG_MAX;
        if (check_bounds(o, (int64_t)v, text, label, err, errsz) != 0)
            return -1;
        *opt_int(cfg, o) = (int64_t)v;
        return 0;
    }
    case OPT_BOOL:
        if (strcasecmp(text, "true") == 0 || strcmp(text, "1") == 0 || strcasecmp(text, "yes") == 0 ||
            strcasecmp(text, "on") == 0) {
            *opt_bool(cfg, o) = true;
            return 0;
        }
        if (strcasecmp(text, "false") == 0 || strcmp(text, "0") == 0 || strcasecmp(text, "no") == 0 ||
            strcasecmp(text, "off") == 0) {
            *opt_bool(cfg, o) = false;
            return 0;
        }
        set_err(err, errsz, "%s: \"%.40s\" is not a boolean (use true, false, 1 or 0)", label, text);
        return -1;
    case OPT_STR:
        set_str(cfg, o, text);
        return 0;
    }
    return -1;
}

/* ---- init / cleanup ---- */

void cd_config_init(cd_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < OPT_COUNT; i++) {
        const opt_desc *o = &opts[i];
        switch (o->type) {
        case OPT_INT:
            *opt_int(cfg, o) = o->def_int;
            break;
        case OPT_BOOL:
            *opt_bool(cfg, o) = o->def_int != 0;
            break;
        case OPT_STR:
            *opt_str(cfg, o) = cd_strdup(o->def_str);
            break;
        }
    }
    cfg->config_file = NULL;
}

void cd_config_cleanup(cd_config *cfg)
{
    for (size_t i = 0; i < OPT_COUNT; i++) {
        if (opts[i].type == OPT_STR) {
            char **p = opt_str(cfg, &opts[i]);
            cd_free(*p);
            *p = NULL;
        }
    }
    cd_free(cfg->config_file);
    cfg->config_file = NULL;
}

/* ---- file ---- */

static const char *json_type_noun(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "something else";
}

static int set_from_json(cd_config *cfg, const opt_desc *o, json_t *v, const char *label, char *err, size_t errsz)
{
    switch (o->type) {
    case OPT_INT: {
        char text[32];
        int64_t n;

        if (!json_is_integer(v))
            break;
        n = (int64_t)json_integer_value(v);
        snprintf(text, sizeof text, "%" PRId64, n);
        if (check_bounds(o, n, text, label, err, errsz) != 0)
            return -1;
        *opt_int(cfg, o) = n;
        return 0;
    }
    case OPT_BOOL:
        if (!json_is_boolean(v))
            break;
        *opt_bool(cfg, o) = json_is_true(v);
        return 0;
    case OPT_STR:
        if (!json_is_string(v))
            break;
        if (strlen(json_string_value(v)) != json_string_length(v)) {
            set_err(err, errsz, "%s: contains a NUL character", label);
            return -1;
        }
        set_str(cfg, o, json_string_value(v));
        return 0;
    }
    set_err(err, errsz, "%s: expected %s, got %s", label, type_noun(o->type), json_type_noun(v));
    return -1;
}

/* The file must be one JSON object (duplicate keys rejected) whose keys are option names with
 * underscores. On error cfg may hold some of the file's values; callers stop on error. */
int cd_config_load_file(cd_config *cfg, const char *path, char *err, size_t errsz)
{
    json_error_t jerr;
    json_t *root, *val;
    const char *key;
    int rc = 0;

    root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        if (jerr.line > 0)
            set_err(err, errsz, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        else
            set_err(err, errsz, "%s: %s", path, jerr.text);
        return -1;
    }
    if (!json_is_object(root)) {
        set_err(err, errsz, "%s: the top level must be a JSON object, got %s", path, json_type_noun(root));
        json_decref(root);
        return -1;
    }
    json_object_foreach(root, key, val)
    {
        const opt_desc *o = NULL;
        char label[512];

        for (size_t i = 0; i < OPT_COUNT; i++)
            if (strcmp(key, opts[i].name) == 0)
                o = &opts[i];
        if (o == NULL) {
            set_err(err, errsz, "%s: unknown key \"%.64s\" (see --help for the option names)", path, key);
            rc = -1;
            break;
        }
        snprintf(label, sizeof label, "%s: %s", path, o->name);
        if (set_from_json(cfg, o, val, label, err, errsz) != 0) {
            rc = -1;
            break;
        }
    }
    json_decref(root);
    return rc;
}

/* ---- environment ---- */

/* Looks up CHATDESK_<NAME> for each option in the table. Other CHATDESK_* variables are
 * ignored, so tools may use that prefix for their own settings. An empty variable is a value. */
int cd_config_load_env(cd_config *cfg, char *err, size_t errsz)
{
    for (size_t i = 0; i < OPT_COUNT; i++) {
        char name[OPT_NAME_MAX + 16];
        const char *v;

        env_name(&opts[i], name, sizeof name);
        v = getenv(name);
        if (v != NULL && set_from_text(cfg, &opts[i], v, name, err, errsz) != 0)
            return -1;
    }
    return 0;
}

/* ---- flags ---- */

/* Sets the option called name[0..len) (dashes or underscores, optionally "no-" for booleans).
 * value NULL means "no value given": true for booleans (false for "no-"), an error otherwise. */
static int apply_named(cd_config *cfg, const char *name, size_t len, const char *value, char *err, size_t errsz)
{
    bool negated;
    const opt_desc *o = flag_lookup(name, len, &negated);
    char flag[OPT_NAME_MAX + 8];

    if (o == NULL) {
        if (name_matches(name, len, "config"))
            set_err(err, errsz, "--config must come before any command");
        else
            set_err(err, errsz, "unknown option --%.*s (see --help)", (int)(len > 64 ? 64 : len), name);
        return -1;
    }
    flag_name(o, flag, sizeof flag);
    if (negated) {
        if (value != NULL) {
            set_err(err, errsz, "--no-%s takes no value", flag + 2);
            return -1;
        }
        value = "false";
    }
    if (value == NULL) {
        if (o->type != OPT_BOOL) {
            set_err(err, errsz, "%s: missing value", flag);
            return -1;
        }
        value = "true";
    }
    return set_from_text(cfg, o, value, flag, err, errsz);
}

/* Strips an optional leading "--". */
static const char *strip_dashes(const char *name)
{
    return strncmp(name, "--", 2) == 0 ? name + 2 : name;
}

int cd_config_apply_flag(cd_config *cfg, const char *name, const char *value, char *err, size_t errsz)
{
    name = strip_dashes(name);
    return apply_named(cfg, name, strlen(name), value, err, errsz);
}

bool cd_config_is_bool(const char *name)
{
    bool negated;
    const opt_desc *o;

    name = strip_dashes(name);
    o = flag_lookup(name, strlen(name), &negated);
    return o != NULL && o->type == OPT_BOOL;
}

/* argv[0] is the program name. A value for a non-boolean flag may be the next argument unless
 * that starts with "--" (so "--bind --port 1" is a missing value, not bind="--port"). */
int cd_config_parse_flags(cd_config *cfg, int argc, char **argv, int *consumed, bool *help, char *err, size_t errsz)
{
    int i;
    int rc = 0;

    if (help != NULL)
        *help = false;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *name, *eq, *value;
        const opt_desc *o;
        bool is_config;
        size_t len;

        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0')
            break; /* first non-flag: the caller's subcommand */
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            if (help != NULL)
                *help = true;
            continue;
        }
        if (a[1] != '-') {
            set_err(err, errsz, "unknown option %.64s (see --help)", a);
            rc = -1;
            break;
        }
        name = a + 2;
        eq = strchr(name, '=');
        len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        value = eq != NULL ? eq + 1 : NULL;

        is_config = name_matches(name, len, "config");
        o = is_config ? NULL : opt_find(name, len);
        if (value == NULL && (is_config || (o != NULL && o->type != OPT_BOOL))) {
            /* A non-boolean flag without "=": the value is the next argument. */
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) {
                char flag[OPT_NAME_MAX + 8] = "--config";
                if (o != NULL)
                    flag_name(o, flag, sizeof flag);
                set_err(err, errsz, "%s: missing value", flag);
                rc = -1;
                break;
            }
            value = argv[++i];
        }
        if (is_config) {
            if (value == NULL || value[0] == '\0') {
                set_err(err, errsz, "--config: missing file name");
                rc = -1;
                break;
            }
            cd_free(cfg->config_file);
            cfg->config_file = cd_strdup(value);
            continue;
        }
        if (apply_named(cfg, name, len, value, err, errsz) != 0) {
            rc = -1;
            break;
        }
    }
    if (consumed != NULL)
        *consumed = i;
    return rc;
}

/* ---- the whole sequence ---- */

int cd_config_load_args(cd_config *cfg, int argc, char **argv, int *consumed, bool *help, char *err, size_t errsz)
{
    cd_config scratch;
    bool want_help = false;
    int n = 0;

    cd_config_init(cfg);
    if (help != NULL)
        *help = false;
    if (consumed != NULL)
        *consumed = 0;

    /* Pass 1 only finds --config (and checks the flags), so the file can be loaded before env and flags. */
    cd_config_init(&scratch);
    if (cd_config_parse_flags(&scratch, argc, argv, &n, &want_help, err, errsz) != 0) {
        cd_config_cleanup(&scratch);
        return -1;
    }
    if (want_help) {
        cd_config_cleanup(&scratch);
        if (help != NULL)
            *help = true;
        if (consumed != NULL)
            *consumed = n;
        return 0;
    }
    if (scratch.config_file != NULL && cd_config_load_file(cfg, scratch.config_file, err, errsz) != 0) {
        cd_config_cleanup(&scratch);
        return -1;
    }
    cd_config_cleanup(&scratch);

    if (cd_config_load_env(cfg, err, errsz) != 0)
        return -1;
    if (cd_config_parse_flags(cfg, argc, argv, &n, NULL, err, errsz) != 0)
        return -1;
    if (consumed != NULL)
        *consumed = n;
    return cd_config_validate(cfg, err, errsz);
}

int cd_config_load(cd_config *cfg, int argc, char **argv, bool *help, char *err, size_t errsz)
{
    return cd_config_load_args(cfg, argc, argv, NULL, help, err, errsz);
}

/* ---- whole-config checks ---- */

static bool is_hex64(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return i == 64;
}

/* Checks what a single option's bounds cannot: string formats and pairs of options. */
int cd_config_validate(const cd_config *cfg, char *err, size_t errsz)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    cd_redis_addr addr;
    char why[256];
    bool level_ok = false;

    if (cd_config_parse_redis_url(cfg->redis, &addr, why, sizeof why) != 0) {
        set_err(err, errsz, "redis: %s", why);
        return -1;
    }
    for (size_t i = 0; i < CD_ARRAY_LEN(levels); i++)
        if (strcmp(cfg->log_level, levels[i]) == 0)
            level_ok = true;
    if (!level_ok) {
        set_err(err, errsz, "log_level: \"%.32s\" is not one of debug, info, warn, error", cfg->log_level);
        return -1;
    }
    if (cfg->smtp_url[0] && strncmp(cfg->smtp_url, "smtp://", 7) != 0 && strncmp(cfg->smtp_url, "smtps://", 8) != 0) {
        set_err(err, errsz, "smtp_url: must start with smtp:// or smtps://");
        return -1;
    }
    if (cfg->smtp_url[0] && !strchr(cfg->mail_from, '@')) {
        set_err(err, errsz, "mail_from: needs an address (local@domain) when smtp_url is set");
        return -1;
    }
    if (cfg->mail_reply_to[0] && !strchr(cfg->mail_reply_to, '@')) {
        set_err(err, errsz, "mail_reply_to: must be an address (local@domain)");
        return -1;
    }
    if (cfg->token_secret[0] != '\0' && !is_hex64(cfg->token_secret)) {
        set_err(err, errsz, "token_secret: must be empty or exactly 64 hex characters");
        return -1;
    }
    if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
        set_err(err, errsz, "tls_cert and tls_key: give both (TLS) or neither (plain HTTP)");
        return -1;
    }
    if (cfg->redis_user[0] && !cfg->redis_password[0] && !addr.password[0]) {
        set_err(err, errsz, "redis_user: needs a password (redis_password or the Redis URL's)");
        return -1;
    }
    if (cfg->bind[0] == '\0') {
        set_err(err, errsz, "bind: must not be empty");
        return -1;
    }
    if (cfg->redis_backoff_min_ms > cfg->redis_backoff_max_ms) {
        set_err(err, errsz, "redis_backoff_min_ms (%" PRId64 ") is above redis_backoff_max_ms (%" PRId64 ")",
                cfg->redis_backoff_min_ms, cfg->redis_backoff_max_ms);
        return -1;
    }
    if (cfg->idle_timeout_s <= cfg->ping_interval_s) {
        set_err(err, errsz, "idle_timeout_s (%" PRId64 ") must be greater than ping_interval_s (%" PRId64 ")",
                cfg->idle_timeout_s, cfg->ping_interval_s);
        return -1;
    }
    return 0;
}

/* ---- Redis URL ---- */

/* Parses all of s[0..len) as a decimal integer in lo..hi. */
static bool parse_range(const char *s, size_t len, long lo, long hi, int *out)
{
    long v = 0;

    if (len == 0 || len > 10)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static int parse_unix_url(const char *rest, cd_redis_addr *out, char *err, size_t errsz)
{
    const char *q;
    size_t plen;

    if (strncmp(rest, "//", 2) == 0) /* unix:///path: an empty authority */
        rest += 2;
    if (rest[0] != '/') {
        set_err(err, errsz, "bad redis URL: the socket path after unix: must be absolute");
        return -1;
    }
    q = strchr(rest, '?');
    plen = q != NULL ? (size_t)(q - rest) : strlen(rest);
    if (plen >= sizeof out->host) {
        set_err(err, errsz, "bad redis URL: the socket path is longer than %zu bytes", sizeof out->host - 1);
        return -1;
    }
    memcpy(out->host, rest, plen);
    out->host[plen] = '\0';
    if (q != NULL) {
        if (strncmp(q + 1, "db=", 3) != 0 || !parse_range(q + 4, strlen(q + 4), 0, INT_MAX, &out->db)) {
            set_err(err, errsz, "bad redis URL: the only query allowed after a socket path is ?db=N");
            return -1;
        }
    }
    out->is_unix = true;
    return 0;
}

static int parse_tcp_url(const char *rest, cd_redis_addr *out, char *err, size_t errsz)
{
    const char *at = strrchr(rest, '@');
    const char *host, *hend, *p, *slash;
    size_t hlen;

    /* Userinfo runs to the last '@', so a password may itself contain '@' or '/'. */
    if (at != NULL) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        size_t pwlen;
        if (colon != rest) {
            set_err(err, errsz, "bad redis URL: user names are not supported, use redis://:password@host");
            return -1;
        }
        pwlen = (size_t)(at - colon - 1);
        if (pwlen >= sizeof out->password) {
            set_err(err, errsz, "bad redis URL: the password is longer than %zu bytes", sizeof out->password - 1);
            return -1;
        }
        memcpy(out->password, colon + 1, pwlen);
        out->password[pwlen] = '\0';
        host = at + 1;
    } else {
        host = rest;
    }

    if (host[0] == '[') { /* [IPv6]:port */
        hend = strchr(host, ']');
        if (hend == NULL || hend == host + 1) {
            set_err(err, errsz, "bad redis URL: unterminated [IPv6 address]");
            return -1;
        }
        host++;
        p = hend + 1;
    } else {
        hend = host + strcspn(host, ":/?#");
        p = hend;
    }
    hlen = (size_t)(hend - host);
    if (hlen == 0) {
        set_err(err, errsz, "bad redis URL: missing host");
        return -1;
    }
    if (hlen >= sizeof out->host) {
        set_err(err, errsz, "bad redis URL: the host is longer than %zu bytes", sizeof out->host - 1);
        return -1;
    }
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';

    if (*p == ':') {
        size_t n = strcspn(p + 1, "/");
        if (!parse_range(p + 1, n, 1, 65535, &out->port)) {
            set_err(err, errsz, "bad redis URL: the port must be a number from 1 to 65535");
            return -1;
        }
        p += 1 + n;
    }
    if (*p == '/') {
        slash = p + 1;
        if (*slash != '\0' && !parse_range(slash, strlen(slash), 0, INT_MAX, &out->db)) {
            set_err(err, errsz, "bad redis URL: the database after '/' must be a number");
            return -1;
        }
        p = slash + strlen(slash);
    }
    if (*p != '\0') {
        set_err(err, errsz, "bad redis URL: unexpected text after the host (expected [:port][/db])");
        return -1;
    }
    return 0;
}

/* Nothing is URL-decoded. Errors never quote the URL, since it may hold a password. */
/* The URL with the user information before '@' (a password) replaced by "***", for
 * stdout and logs. URLs without one (unix:, redis://host) come back as they are. */
void cd_config_redact_url(const char *url, char *out, size_t outsz)
{
    const char *scheme = strstr(url, "://");
    const char *auth = scheme ? scheme + 3 : NULL;
    const char *end = auth ? auth + strcspn(auth, "/?") : NULL;
    const char *at = NULL;
    for (const char *p = auth; p && p < end; p++)
        if (*p == '@')
            at = p;
    if (!at) {
        snprintf(out, outsz, "%s", url);
        return;
    }
    snprintf(out, outsz, "%.*s***%s", (int)(auth - url), url, at);
}

/* ":password@" at the start of rest (the user information of a sentinel or cluster URL):
 * copied to out->password; returns the text after it, or NULL on a bad form. */
static const char *url_password(const char *rest, const char *end, cd_redis_addr *out, const char *form, char *err,
                                size_t errsz)
{
    const char *at = NULL;
    for (const char *p = rest; p < end; p++)
        if (*p == '@')
            at = p;
    if (!at)
        return rest;
    if (rest[0] != ':' || (size_t)(at - rest - 1) >= sizeof out->password) {
        set_err(err, errsz, "bad redis URL: use %s", form);
        return NULL;
    }
    memcpy(out->password, rest + 1, (size_t)(at - rest - 1));
    out->password[at - rest - 1] = '\0';
    return at + 1;
}

/* "h1:p1,h2:p2" in [p, end) -> out->endpoints (default port dport). */
static int parse_endpoints(const char *p, const char *end, int dport, cd_redis_addr *out, char *err, size_t errsz)
{
    while (p < end) {
        const char *e = memchr(p, ',', (size_t)(end - p));
        if (!e)
            e = end;
        if (out->n_endpoints == CD_REDIS_MAX_SENTINELS) {
            set_err(err, errsz, "bad redis URL: at most %d addresses", CD_REDIS_MAX_SENTINELS);
            return -1;
        }
        char one[300];
        cd_redis_addr tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.port = dport;
        if ((size_t)(e - p) >= sizeof one || e == p) {
            set_err(err, errsz, "bad redis URL: an address is empty or too long");
            return -1;
        }
        snprintf(one, sizeof one, "%.*s", (int)(e - p), p);
        if (parse_tcp_url(one, &tmp, err, errsz) != 0)
            return -1;
        cd_redis_endpoint *s = &out->endpoints[out->n_endpoints++];
        snprintf(s->host, sizeof s->host, "%s", tmp.host);
        s->port = tmp.port;
        p = e < end ? e + 1 : end;
    }
    return 0;
}

/* "h1:p1,h2:p2/master[/db]" after redis+sentinel://[:password@] */
static int parse_sentinel_url(const char *rest, cd_redis_addr *out, char *err, size_t errsz)
{
    rest = url_password(rest, rest + strlen(rest), out, "redis+sentinel://:password@host:port,.../master", err, errsz);
    if (!rest)
        return -1;
    const char *slash = strchr(rest, '/');
    if (!slash || slash == rest) {
        set_err(err, errsz, "bad redis URL: redis+sentinel://host:port[,host:port...]/master_name");
        return -1;
    }
    if (parse_endpoints(rest, slash, 26379, out, err, errsz) != 0)
        return -1;
    const char *name = slash + 1;
    size_t nl = strcspn(name, "/");
    if (nl == 0 || nl >= sizeof out->master) {
        set_err(err, errsz, "bad redis URL: the master name is missing or longer than %zu bytes",
                sizeof out->master - 1);
        return -1;
    }
    memcpy(out->master, name, nl);
    out->master[nl] = '\0';
    if (name[nl] == '/' && name[nl + 1] && !parse_range(name + nl + 1, strlen(name + nl + 1), 0, INT_MAX, &out->db)) {
        set_err(err, errsz, "bad redis URL: the database must be a number");
        return -1;
    }
    out->sentinel = true;
    return 0;
}

/* "h1:p1,h2:p2[/]" after redis+cluster://[:password@]: the seed nodes */
static int parse_cluster_url(const char *rest, cd_redis_addr *out, char *err, size_t errsz)
{
    size_t n = strlen(rest);
    const char *end = n && rest[n - 1] == '/' ? rest + n - 1 : rest + n;
    rest = url_password(rest, end, out, "redis+cluster://:password@host:port,...", err, errsz);
    if (!rest)
        return -1;
    if (rest == end || memchr(rest, '/', (size_t)(end - rest))) {
        set_err(err, errsz, "bad redis URL: redis+cluster://host:port[,host:port...] (a Cluster has no databases)");
        return -1;
    }
    if (parse_endpoints(rest, end, 6379, out, err, errsz) != 0)
        return -1;
    out->cluster = true;
    cd_strlcpy(out->host, out->endpoints[0].host, sizeof out->host);
    out->port = out->endpoints[0].port;
    return 0;
}

int cd_config_parse_redis_url(const char *url, cd_redis_addr *out, char *err, size_t errsz)
{
    int rc;

    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (url == NULL || url[0] == '\0') {
        set_err(err, errsz, "bad redis URL: empty");
        return -1;
    }
    if (strncmp(url, "redis://", 8) == 0) {
        rc = parse_tcp_url(url + 8, out, err, errsz);
    } else if (strncmp(url, "unix:", 5) == 0) {
        out->port = 0;
        rc = parse_unix_url(url + 5, out, err, errsz);
    } else if (strncmp(url, "redis+sentinel://", 17) == 0) {
        rc = parse_sentinel_url(url + 17, out, err, errsz);
    } else if (strncmp(url, "redis+cluster://", 16) == 0) {
        rc = parse_cluster_url(url + 16, out, err, errsz);
    } else if (strncmp(url, "rediss://", 9) == 0) {
        set_err(err, errsz, "bad redis URL: TLS (rediss://) is not supported");
        rc = -1;
    } else {
        set_err(err, errsz,
                "bad redis URL: expected redis://[:password@]host[:port][/db], unix:/path[?db=N], "
                "redis+sentinel://host:port[,host:port...]/master or redis+cluster://host:port[,host:port...]");
        rc = -1;
    }
    if (rc != 0) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    return 0;
}

/* ---- help and docs ---- */

static void format_default(const opt_desc *o, char *out, size_t outsz)
{
    switch (o->type) {
    case OPT_INT:
        snprintf(out, outsz, "%" PRId64, o->def_int);
        break;
    case OPT_BOOL:
        snprintf(out, outsz, "%s", o->def_int ? "true" : "false");
        break;
    case OPT_STR:
        snprintf(out, outsz, "\"%s\"", o->def_str);
        break;
    }
}

static const char *placeholder(const opt_desc *o)
{
    switch (o->type) {
    case OPT_INT:
        return " N";
    case OPT_STR:
        return " STR";
    case OPT_BOOL:
        return "[=BOOL]";
    }
    return "";
}

void cd_config_print_help(FILE *out, const char *argv0)
{
    const char *prog = "chatdeskd";
    int wflag = (int)strlen("--config FILE"), wenv = 0, wdef = 0;

    if (argv0 != NULL && argv0[0] != '\0')
        prog = strrchr(argv0, '/') != NULL ? strrchr(argv0, '/') + 1 : argv0;
    for (size_t i = 0; i < OPT_COUNT; i++) {
        char flag[OPT_NAME_MAX + 16], env[OPT_NAME_MAX + 16], def[300];
        int n;
        flag_name(&opts[i], flag, sizeof flag);
        env_name(&opts[i], env, sizeof env);
        format_default(&opts[i], def, sizeof def);
        n = (int)(strlen(flag) + strlen(placeholder(&opts[i])));
        wflag = n > wflag ? n : wflag;
        wenv = (int)strlen(env) > wenv ? (int)strlen(env) : wenv;
        wdef = (int)strlen(def) > wdef ? (int)strlen(def) : wdef;
    }

    fprintf(out, "usage: %s [--config FILE] [options]\n", prog);
    fprintf(out, "       %s admin <command> [options]\n\n", prog);
    fprintf(out, "Each option is also a key of the JSON config file (its name, with '_') and an environment\n"
                 "variable; later sources win: defaults < config file < environment < flags.\n"
                 "Flags take \"--name VALUE\" or \"--name=VALUE\"; booleans also \"--name\" and \"--no-name\".\n\n");
    fprintf(out, "  %-*s  %s\n", wflag, "--config FILE", "load this JSON config file");
    fprintf(out, "  %-*s  %s\n", wflag, "--help", "print this text");
    fprintf(out, "  %-*s  %s\n\n", wflag, "--help-markdown", "print docs/config.md (every option as a Markdown table)");
    for (size_t i = 0; i < OPT_COUNT; i++) {
        const opt_desc *o = &opts[i];
        char flag[OPT_NAME_MAX + 32], env[OPT_NAME_MAX + 16], def[300];

        flag_name(o, flag, sizeof flag);
        strncat(flag, placeholder(o), sizeof flag - strlen(flag) - 1);
        env_name(o, env, sizeof env);
        format_default(o, def, sizeof def);
        fprintf(out, "  %-*s  %-*s  default %-*s  %s", wflag, flag, wenv, env, wdef, def, o->doc);
        if (o->type == OPT_INT)
            fprintf(out, " [%" PRId64 "..%" PRId64 "]", o->min, o->max);
        fputc('\n', out);
    }
}

/* Writes s for a Markdown table cell: '|' would end the cell and '<' could start HTML. */
static void md_cell(FILE *out, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '|':
            fputs("\\|", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '&':
            fputs("&amp;", out);
            break;
        default:
            fputc(*s, out);
        }
    }
}

/* Writes s inside a code span of a table cell: only '|' needs escaping there. */
static void md_code(FILE *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
}

void cd_config_print_markdown(FILE *out)
{
    fputs("# Configuration\n\n"
          "<!-- Generated by `chatdeskd --help-markdown` from include/chatdesk/config_table.h. Do not edit. -->\n\n"
          "Every option can be set in three places. Load order is defaults, then the JSON config file\n"
          "(`--config FILE`), then environment variables, then command-line flags; a later source wins\n"
          "(file < env < flags). The config file is one JSON object whose keys are the option names below,\n"
          "with JSON numbers for integers, strings for strings and `true`/`false` for booleans; unknown keys,\n"
          "wrong types and values outside the bounds are errors, and the error names the option.\n\n"
          "Flags take `--name VALUE` or `--name=VALUE` (dashes or underscores). Boolean flags also take\n"
          "`--name` alone (true) and `--no-name` (false); as text, booleans are `true`, `false`, `1` or `0`.\n"
          "Flags stop at the first argument that is not a flag, which is how\n"
          "`chatdeskd [options] admin <command> [options]` finds its command.\n\n"
          "| option (file key) | flag | environment | type | default | bounds | description |\n"
          "|---|---|---|---|---|---|---|\n",
          out);
    for (size_t i = 0; i < OPT_COUNT; i++) {
        const opt_desc *o = &opts[i];
        char flag[OPT_NAME_MAX + 8], env[OPT_NAME_MAX + 16];

        flag_name(o, flag, sizeof flag);
        env_name(o, env, sizeof env);
        fprintf(out, "| `%s` | `%s` | `%s` | ", o->name, flag, env);
        switch (o->type) {
        case OPT_INT:
            fprintf(out, "integer | `%" PRId64 "` | %" PRId64 " – %" PRId64 " | ", o->def_int, o->min, o->max);
            break;
        case OPT_BOOL:
            fprintf(out, "boolean | `%s` | | ", o->def_int ? "true" : "false");
            break;
        case OPT_STR:
            fputs("string | ", out);
            if (o->def_str[0] == '\0') {
                fputs("*(empty)*", out);
            } else {
                fputc('`', out);
                md_code(out, o->def_str);
                fputc('`', out);
            }
            fputs(" | | ", out);
            break;
        }
        md_cell(out, o->doc);
        fputs(" |\n", out);
    }
}
