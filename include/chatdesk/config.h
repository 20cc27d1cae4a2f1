/* config: every setting from config_table.h, declared once so that --help, docs/config.md
 * and validation cannot drift. Load order: defaults, JSON file, environment
 * (CHATDESK_<NAME>), command-line flags; later wins. */
#ifndef CHATDESK_CONFIG_H
#define CHATDESK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "chatdesk/config_table.h"

#define CD_CFG_TYPE_INT int64_t
#define CD_CFG_TYPE_STR char *
#define CD_CFG_TYPE_BOOL bool

typedef struct cd_config {
#define CD_CFG_FIELD(name, type, def, min, max, doc) CD_CFG_TYPE_##type name;
    CD_CONFIG_TABLE(CD_CFG_FIELD)
#undef CD_CFG_FIELD
    char *config_file; /* --config FILE, or NULL */
} cd_config;

/* Fill every field with its default (strings are heap copies). */
void cd_config_init(cd_config *cfg);
void cd_config_cleanup(cd_config *cfg);

/* Load a JSON object file: keys are option names; values typed (numbers for INT,
 * strings for STR, booleans for BOOL). Unknown keys, wrong types and out-of-bounds
 * values are errors. Returns 0, or -1 with a message in err (errsz bytes). */
int cd_config_load_file(cd_config *cfg, const char *path, char *err, size_t errsz);
/* Apply CHATDESK_<NAME> variables from envp-style environ. Same errors. */
int cd_config_load_env(cd_config *cfg, char *err, size_t errsz);
/* Parse flags: "--name VALUE" or "--name=VALUE" (underscores or dashes), "--config FILE"
 * (recorded in cfg->config_file, not loaded here), bool flags accept "--name" alone
 * and "--name=true|false|1|0" and "--no-name". Stops at the first non-flag argument
 * (or after "--"); argv[0] is the program name and is skipped, so *consumed is the index
 * of the first argument not used (argc when all were): argv[*consumed] is the subcommand.
 * "--help" / "-h" sets *help. Returns 0 or -1 with err. */
int cd_config_parse_flags(cd_config *cfg, int argc, char **argv, int *consumed, bool *help, char *err, size_t errsz);

/* Set one option by name ("max_frame", "max-frame" or "--max-frame"; "no-<bool>" for false).
 * value NULL: true for booleans, an error for other options. For the admin CLI, which takes
 * options after its command. "config" is refused (the file must be loaded first). Returns 0 or -1 with err. */
int cd_config_apply_flag(cd_config *cfg, const char *name, const char *value, char *err, size_t errsz);
/* true when name (as for cd_config_apply_flag) is a boolean option, i.e. takes no separate value. */
bool cd_config_is_bool(const char *name);

/* Checks that need the whole config: Redis URL parses, log_level is debug|info|warn|error,
 * token_secret is empty or 64 hex chars, bind is not empty, tls_cert and tls_key come
 * together, redis_user has a password, redis_backoff_min_ms <= max, ping_interval_s <
 * idle_timeout_s. Returns 0 or -1 with err. cd_config_load runs it. */
int cd_config_validate(const cd_config *cfg, char *err, size_t errsz);

/* The full sequence chatdeskd uses: defaults (cd_config_init, so cfg is uninitialised storage;
 * call cd_config_cleanup afterwards even on failure); find --config among flags; file; env;
 * flags; cd_config_validate. With --help it stops after the flags with *help set and returns 0. */
int cd_config_load(cd_config *cfg, int argc, char **argv, bool *help, char *err, size_t errsz);
/* cd_config_load that also reports *consumed as cd_config_parse_flags does (for "chatdeskd [flags] admin ..."). */
int cd_config_load_args(cd_config *cfg, int argc, char **argv, int *consumed, bool *help, char *err, size_t errsz);

/* Usage text listing every option (flag, env var, default, doc). */
void cd_config_print_help(FILE *out, const char *argv0);
/* docs/config.md content (a Markdown table of every option). */
void cd_config_print_markdown(FILE *out);

/* Parsed Redis URL. */
#define CD_REDIS_MAX_SENTINELS 8
typedef struct cd_redis_endpoint {
    char host[256];
    int port;
} cd_redis_endpoint;

typedef struct cd_redis_addr {
    bool is_unix;
    char host[256]; /* or the socket path when is_unix */
    int port;
    int db;
    char password[256];
    /* redis+sentinel://: the primary is asked of these sentinels (host/port above are
     * filled in by the connection each time it resolves the primary) */
    bool sentinel;
    char master[128];
    /* redis+cluster://: the seed nodes (a connection to "the cluster" takes the next seed
     * each time it connects; the store reads the slot map from there) */
    bool cluster;
    cd_redis_endpoint endpoints[CD_REDIS_MAX_SENTINELS]; /* sentinels or cluster seeds */
    size_t n_endpoints;
} cd_redis_addr;

/* redis://[:password@]host[:port][/db] (default port 6379, db 0), unix:/path[?db=N],
 * redis+sentinel://[:password@]host:port[,host:port...]/master[/db] (at most
 * CD_REDIS_MAX_SENTINELS sentinels; default port 26379), or
 * redis+cluster://[:password@]host:port[,host:port...] (seed nodes, as many; default
 * port 6379; a Cluster has no databases). Returns 0 or -1 with err. */
int cd_config_parse_redis_url(const char *url, cd_redis_addr *out, char *err, size_t errsz);
/* url with its password (user information) replaced by "***": for stdout and logs. */
void cd_config_redact_url(const char *url, char *out, size_t outsz);

#endif
