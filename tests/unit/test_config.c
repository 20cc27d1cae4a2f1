/* test_config.c: the config table, its three sources and their order, and Redis URLs (server/config).
 *
 * Each source is tested on its own (file, environment, flags), then together through
 * cd_config_load to pin the order defaults < file < env < flags. Errors are checked
 * by message, since the message is the interface a user sees. The generated help and
 * Markdown are checked against names derived here from the same X-macro table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "chatdesk/config.h"

#define ERRSZ 256

/* ---- helpers ---- */

static const char *const option_names[] = {
#define NAME_ROW(n_, t_, d_, lo_, hi_, doc_) #n_,
    CD_CONFIG_TABLE(NAME_ROW)
#undef NAME_ROW
};

static void env_of(const char *name, char *out, size_t outsz)
{
    size_t i = 0;
    snprintf(out, outsz, "CHATDESK_%s", name);
    for (i = 9; out[i] != '\0'; i++)
        if (out[i] >= 'a' && out[i] <= 'z')
            out[i] = (char)(out[i] - 'a' + 'A');
}

static void flag_of(const char *name, char *out, size_t outsz)
{
    snprintf(out, outsz, "--%s", name);
    for (size_t i = 2; out[i] != '\0'; i++)
        if (out[i] == '_')
            out[i] = '-';
}

/* Removes every CHATDESK_<NAME> so the runner's environment cannot leak into a test. */
static int clear_env(void **state)
{
    char env[128];
    (void)state;
    for (size_t i = 0; i < sizeof option_names / sizeof option_names[0]; i++) {
        env_of(option_names[i], env, sizeof env);
        unsetenv(env);
    }
    return 0;
}

/* Writes text to a new temporary file; path receives its name. */
static void write_temp(char *path, size_t pathsz, const char *text)
{
    int fd;
    FILE *f;

    snprintf(path, pathsz, "/tmp/cd_test_config_XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

/* Loads text as a config file into a fresh default config; returns the load result, err filled. */
static int load_text(const char *text, cd_config *cfg, char *err)
{
    char path[64];
    int rc;

    write_temp(path, sizeof path, text);
    cd_config_init(cfg);
    err[0] = '\0';
    rc = cd_config_load_file(cfg, path, err, ERRSZ);
    unlink(path);
    return rc;
}

static int parse(cd_config *cfg, int argc, char **argv, int *consumed, bool *help, char *err)
{
    err[0] = '\0';
    return cd_config_parse_flags(cfg, argc, argv, consumed, help, err, ERRSZ);
}

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    cd_config cfg;
    (void)state;

    cd_config_init(&cfg);
    assert_true(cfg.port == 8080);
    assert_string_equal(cfg.bind, "127.0.0.1");
    assert_string_equal(cfg.redis, "redis://127.0.0.1:6379/0");
    assert_string_equal(cfg.prefix, "cd:");
    assert_string_equal(cfg.log_level, "info");
    assert_string_equal(cfg.token_secret, "");
    assert_true(cfg.max_frame == 65536);
    assert_true(cfg.visitor_token_ttl_s == 2592000);
    assert_true(cfg.max_http_body == 65536);
    assert_false(cfg.reuseport);
    assert_null(cfg.config_file);
    /* The defaults pass the whole-config checks. */
    {
        char err[ERRSZ] = "";
        assert_int_equal(cd_config_validate(&cfg, err, sizeof err), 0);
    }
    cd_config_cleanup(&cfg);
    assert_null(cfg.bind);
}

/* ---- file ---- */

static void test_file_load(void **state)
{
    cd_config cfg;
    char err[ERRSZ];
    (void)state;

    assert_int_equal(load_text("{\"port\": 9000, \"bind\": \"0.0.0.0\", \"reuseport\": true,\n"
                               " \"log_level\": \"debug\", \"max_frame\": 1024, \"node_id\": \"n1\"}\n",
                               &cfg, err),
                     0);
    assert_true(cfg.port == 9000);
    assert_string_equal(cfg.bind, "0.0.0.0");
    assert_true(cfg.reuseport);
    assert_string_equal(cfg.log_level, "debug");
    assert_true(cfg.max_frame == 1024);
    assert_string_equal(cfg.node_id, "n1");
    assert_true(cfg.max_body == 8192); /* untouched */
    cd_config_cleanup(&cfg);

    /* An empty object changes nothing. */
    assert_int_equal(load_text("{}", &cfg, err), 0);
    assert_true(cfg.port == 8080);
    cd_config_cleanup(&cfg);
}

static void test_file_errors(void **state)
{
    cd_config cfg;
    char err[ERRSZ];
    (void)state;

    assert_int_equal(load_text("{\"port\": 9000, \"nope\": 1}", &cfg, err), -1);
    assert_non_null(strstr(err, "unknown key \"nope\""));
    cd_config_cleanup(&cfg);

    /* Flag spelling is not a file key. */
    assert_int_equal(load_text("{\"max-frame\": 2048}", &cfg, err), -1);
    assert_non_null(strstr(err, "unknown key \"max-frame\""));
    cd_config_cleanup(&cfg);

    assert_int_equal(load_text("{\"port\": \"80\"}", &cfg, err), -1);
    assert_non_null(strstr(err, "port: expected an integer, got a string"));
    cd_config_cleanup(&cfg);

    assert_int_equal(load_text("{\"port\": 80.5}", &cfg, err), -1);
    assert_non_null(strstr(err, "port: expected an integer, got a real number"));
    cd_config_cleanup(&cfg);

    assert_int_equal(load_text("{\"bind\": 1}", &cfg, err), -1);
    assert_non_null(strstr(err, "bind: expected a string, got an integer"));
    cd_config_cleanup(&cfg);

    assert_int_equal(load_text("{\"reuseport\": 1}", &cfg, err), -1);
    assert_non_null(strstr(err, "reuseport: expected a boolean, got an integer"));
    cd_config_cleanup(&cfg);

    assert_int_equal(load_text("{\"port\": null}", &cfg, err), -1);
    assert_non_null(strstr(err, "port: expected an integer, got null"));
    cd_config_cleanup(&cfg);

    assert_int_equal(load_text("{\"port\": 70000}", &cfg, err), -1);
    assert_non_null(strstr(err, "port: 70000 is above the maximum 65535"));
    cd_config_cleanup(&cfg);

    assert_int_equal(load_text("{\"max_frame\": 1023}", &cfg, err), -1);
    assert_non_null(strstr(err, "max_frame: 1023 is below the minimum 1024"));
    cd_config_cleanup(&cfg);

    assert_int_equal(load_text("{\"port\": -1}", &cfg, err), -1);
    assert_non_null(strstr(err, "port: -1 is below the minimum 0"));
    cd_config_cleanup(&cfg);

    assert_int_equal(load_text("{\"port\": 1, \"port\": 2}", &cfg, err), -1);
    assert_non_null(strstr(err, "duplicate"));
    cd_config_cleanup(&cfg);

    assert_int_equal(load_text("{\"bind\": \"a\\u0000b\"}", &cfg, err), -1);
    assert_string_equal(cfg.bind, "127.0.0.1");
    cd_config_cleanup(&cfg);

    assert_int_equal(load_text("[1, 2]", &cfg, err), -1);
    assert_non_null(strstr(err, "must be a JSON object"));
    cd_config_cleanup(&cfg);

    assert_int_equal(load_text("{\"port\": 80,", &cfg, err), -1);
    assert_non_null(strstr(err, "/tmp/cd_test_config_")); /* names the file */
    cd_config_cleanup(&cfg);

    cd_config_init(&cfg);
    assert_int_equal(cd_config_load_file(&cfg, "/nonexistent/chatdesk.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/chatdesk.json"));
    cd_config_cleanup(&cfg);
}

/* ---- environment ---- */

static void test_env(void **state)
{
    cd_config cfg;
    char err[ERRSZ] = "";
    (void)state;

    setenv("CHATDESK_PORT", "9100", 1);
    setenv("CHATDESK_BIND", "10.1.1.1", 1);
    setenv("CHATDESK_REUSEPORT", "true", 1);
    setenv("CHATDESK_MAX_JSON_DEPTH", "16", 1);
    setenv("CHATDESK_NODE_ID", "", 1);
    setenv("CHATDESK_UNRELATED_THING", "whatever", 1); /* not an option: ignored */
    cd_config_init(&cfg);
    assert_int_equal(cd_config_load_env(&cfg, err, sizeof err), 0);
    assert_true(cfg.port == 9100);
    assert_string_equal(cfg.bind, "10.1.1.1");
    assert_true(cfg.reuseport);
    assert_true(cfg.max_json_depth == 16);
    assert_string_equal(cfg.node_id, "");
    assert_true(cfg.max_rid == 64);
    unsetenv("CHATDESK_UNRELATED_THING");

    setenv("CHATDESK_REUSEPORT", "0", 1);
    assert_int_equal(cd_config_load_env(&cfg, err, sizeof err), 0);
    assert_false(cfg.reuseport);
    cd_config_cleanup(&cfg);
    clear_env(NULL);
}

static void test_env_errors(void **state)
{
    static const struct {
        const char *value;
        const char *want;
    } cases[] = {
        {"70000", "CHATDESK_PORT: 70000 is above the maximum 65535"},
        {"-5", "CHATDESK_PORT: -5 is below the minimum 0"},
        {"abc", "CHATDESK_PORT: \"abc\" is not an integer"},
        {"80x", "CHATDESK_PORT: \"80x\" is not an integer"},
        {"", "CHATDESK_PORT: \"\" is not an integer"},
        {" 80", "CHATDESK_PORT: \" 80\" is not an integer"},
        {"1.5", "CHATDESK_PORT: \"1.5\" is not an integer"},
        {"99999999999999999999999", "CHATDESK_PORT: 99999999999999999999999 is above the maximum 65535"},
    };
    cd_config cfg;
    char err[ERRSZ];
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("CHATDESK_PORT", cases[i].value, 1);
        cd_config_init(&cfg);
        err[0] = '\0';
        assert_int_equal(cd_config_load_env(&cfg, err, sizeof err), -1);
        assert_string_equal(err, cases[i].want);
        assert_true(cfg.port == 8080);
        cd_config_cleanup(&cfg);
    }
    unsetenv("CHATDESK_PORT");

    setenv("CHATDESK_REUSEPORT", "maybe", 1);
    cd_config_init(&cfg);
    assert_int_equal(cd_config_load_env(&cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "CHATDESK_REUSEPORT: \"maybe\" is not a boolean"));
    cd_config_cleanup(&cfg);
    clear_env(NULL);
}

/* ---- flags ---- */

static void test_flags_forms(void **state)
{
    char *argv[] = {"chatdeskd",        "--port=9200", "--bind",    "10.0.0.1",         "--max_frame", "2048",
                    "--log-level=warn", "--reuseport", "--prefix=", "--redis-password", "a=b"};
    cd_config cfg;
    char err[ERRSZ];
    int consumed = -1;
    bool help = true;
    (void)state;

    cd_config_init(&cfg);
    assert_int_equal(parse(&cfg, ARGC(argv), argv, &consumed, &help, err), 0);
    assert_int_equal(consumed, ARGC(argv));
    assert_false(help);
    assert_true(cfg.port == 9200);
    assert_string_equal(cfg.bind, "10.0.0.1");
    assert_true(cfg.max_frame == 2048);
    assert_string_equal(cfg.log_level, "warn");
    assert_true(cfg.reuseport);
    assert_string_equal(cfg.prefix, "");
    assert_string_equal(cfg.redis_password, "a=b");
    cd_config_cleanup(&cfg);
}

static void test_flags_bool(void **state)
{
    char *on[] = {"chatdeskd", "--reuseport"};
    char *off_eq[] = {"chatdeskd", "--reuseport", "--reuseport=false"};
    char *off_no[] = {"chatdeskd", "--reuseport=1", "--no-reuseport"};
    char *on_eq[] = {"chatdeskd", "--reuseport=true"};
    char *bad[] = {"chatdeskd", "--reuseport=maybe"};
    char *no_value[] = {"chatdeskd", "--no-reuseport=true"};
    char *no_int[] = {"chatdeskd", "--no-port"};
    cd_config cfg;
    char err[ERRSZ];
    (void)state;

    cd_config_init(&cfg);
    assert_int_equal(parse(&cfg, ARGC(on), on, NULL, NULL, err), 0);
    assert_true(cfg.reuseport);
    assert_int_equal(parse(&cfg, ARGC(off_eq), off_eq, NULL, NULL, err), 0);
    assert_false(cfg.reuseport);
    assert_int_equal(parse(&cfg, ARGC(on_eq), on_eq, NULL, NULL, err), 0);
    assert_true(cfg.reuseport);
    assert_int_equal(parse(&cfg, ARGC(off_no), off_no, NULL, NULL, err), 0);
    assert_false(cfg.reuseport);
    assert_int_equal(parse(&cfg, ARGC(bad), bad, NULL, NULL, err), -1);
    assert_non_null(strstr(err, "--reuseport: \"maybe\" is not a boolean"));
    assert_int_equal(parse(&cfg, ARGC(no_value), no_value, NULL, NULL, err), -1);
    assert_string_equal(err, "--no-reuseport takes no value");
    assert_int_equal(parse(&cfg, ARGC(no_int), no_int, NULL, NULL, err), -1);
    assert_non_null(strstr(err, "unknown option --no-port"));
    cd_config_cleanup(&cfg);
}

static void test_flags_errors(void **state)
{
    char *above[] = {"chatdeskd", "--port=70000"};
    char *above_sep[] = {"chatdeskd", "--port", "70000"};
    char *below[] = {"chatdeskd", "--max-frame", "10"};
    char *unknown[] = {"chatdeskd", "--nope=1"};
    char *single[] = {"chatdeskd", "-p", "80"};
    char *missing_end[] = {"chatdeskd", "--port"};
    char *missing_flag[] = {"chatdeskd", "--bind", "--port", "1"};
    char *not_int[] = {"chatdeskd", "--port", "http"};
    char *config_missing[] = {"chatdeskd", "--config"};
    char *config_empty[] = {"chatdeskd", "--config="};
    cd_config cfg;
    char err[ERRSZ];
    int consumed;
    (void)state;

    cd_config_init(&cfg);
    assert_int_equal(parse(&cfg, ARGC(above), above, NULL, NULL, err), -1);
    assert_string_equal(err, "--port: 70000 is above the maximum 65535");
    assert_int_equal(parse(&cfg, ARGC(above_sep), above_sep, NULL, NULL, err), -1);
    assert_string_equal(err, "--port: 70000 is above the maximum 65535");
    assert_int_equal(parse(&cfg, ARGC(below), below, NULL, NULL, err), -1);
    assert_string_equal(err, "--max-frame: 10 is below the minimum 1024");
    assert_int_equal(parse(&cfg, ARGC(unknown), unknown, NULL, NULL, err), -1);
    assert_string_equal(err, "unknown option --nope (see --help)");
    assert_int_equal(parse(&cfg, ARGC(single), single, NULL, NULL, err), -1);
    assert_string_equal(err, "unknown option -p (see --help)");
    assert_int_equal(parse(&cfg, ARGC(missing_end), missing_end, &consumed, NULL, err), -1);
    assert_string_equal(err, "--port: missing value");
    assert_int_equal(parse(&cfg, ARGC(missing_flag), missing_flag, NULL, NULL, err), -1);
    assert_string_equal(err, "--bind: missing value");
    assert_int_equal(parse(&cfg, ARGC(not_int), not_int, NULL, NULL, err), -1);
    assert_string_equal(err, "--port: \"http\" is not an integer");
    assert_int_equal(parse(&cfg, ARGC(config_missing), config_missing, NULL, NULL, err), -1);
    assert_string_equal(err, "--config: missing value");
    assert_int_equal(parse(&cfg, ARGC(config_empty), config_empty, NULL, NULL, err), -1);
    assert_string_equal(err, "--config: missing file name");
    assert_null(cfg.config_file);
    assert_true(cfg.port == 8080);
    assert_string_equal(cfg.bind, "127.0.0.1");
    cd_config_cleanup(&cfg);
}

static void test_flags_help_and_config(void **state)
{
    char *help1[] = {"chatdeskd", "--port", "1", "--help"};
    char *help2[] = {"chatdeskd", "-h"};
    char *conf[] = {"chatdeskd", "--config", "/etc/a.json", "--config=/etc/b.json", "--port", "5"};
    cd_config cfg;
    char err[ERRSZ];
    bool help = false;
    int consumed = 0;
    (void)state;

    cd_config_init(&cfg);
    assert_int_equal(parse(&cfg, ARGC(help1), help1, &consumed, &help, err), 0);
    assert_true(help);
    assert_int_equal(consumed, 4);
    help = false;
    assert_int_equal(parse(&cfg, ARGC(help2), help2, NULL, &help, err), 0);
    assert_true(help);

    assert_int_equal(parse(&cfg, ARGC(conf), conf, &consumed, &help, err), 0);
    assert_false(help);
    assert_non_null(cfg.config_file);
    assert_string_equal(cfg.config_file, "/etc/b.json"); /* last wins; not loaded here */
    assert_true(cfg.port == 5);
    cd_config_cleanup(&cfg);
}

static void test_flags_stop_at_command(void **state)
{
    char *before[] = {"chatdeskd", "--redis", "redis://h:1/2", "admin", "site-add", "--redis", "redis://x"};
    char *dashdash[] = {"chatdeskd", "--port=1", "--", "--port=2"};
    char *none[] = {"chatdeskd"};
    char *dash[] = {"chatdeskd", "-", "--port=3"};
    cd_config cfg;
    char err[ERRSZ];
    int consumed = -1;
    (void)state;

    cd_config_init(&cfg);
    assert_int_equal(parse(&cfg, ARGC(before), before, &consumed, NULL, err), 0);
    assert_int_equal(consumed, 3);
    assert_string_equal(before[consumed], "admin");
    assert_string_equal(cfg.redis, "redis://h:1/2"); /* the flag after the command is not read */

    assert_int_equal(parse(&cfg, ARGC(dashdash), dashdash, &consumed, NULL, err), 0);
    assert_int_equal(consumed, 3);
    assert_true(cfg.port == 1);

    assert_int_equal(parse(&cfg, ARGC(none), none, &consumed, NULL, err), 0);
    assert_int_equal(consumed, 1);

    assert_int_equal(parse(&cfg, ARGC(dash), dash, &consumed, NULL, err), 0);
    assert_int_equal(consumed, 1);
    assert_true(cfg.port == 1);
    cd_config_cleanup(&cfg);
}

static void test_apply_flag(void **state)
{
    cd_config cfg;
    char err[ERRSZ];
    (void)state;

    cd_config_init(&cfg);
    assert_int_equal(cd_config_apply_flag(&cfg, "max-frame", "2048", err, sizeof err), 0);
    assert_true(cfg.max_frame == 2048);
    assert_int_equal(cd_config_apply_flag(&cfg, "--max_frame", "4096", err, sizeof err), 0);
    assert_true(cfg.max_frame == 4096);
    assert_int_equal(cd_config_apply_flag(&cfg, "redis", "unix:/tmp/r.sock", err, sizeof err), 0);
    assert_string_equal(cfg.redis, "unix:/tmp/r.sock");
    assert_int_equal(cd_config_apply_flag(&cfg, "reuseport", NULL, err, sizeof err), 0);
    assert_true(cfg.reuseport);
    assert_int_equal(cd_config_apply_flag(&cfg, "--no-reuseport", NULL, err, sizeof err), 0);
    assert_false(cfg.reuseport);

    assert_int_equal(cd_config_apply_flag(&cfg, "port", NULL, err, sizeof err), -1);
    assert_string_equal(err, "--port: missing value");
    assert_int_equal(cd_config_apply_flag(&cfg, "port", "65536", err, sizeof err), -1);
    assert_string_equal(err, "--port: 65536 is above the maximum 65535");
    assert_int_equal(cd_config_apply_flag(&cfg, "bogus", "1", err, sizeof err), -1);
    assert_string_equal(err, "unknown option --bogus (see --help)");
    assert_int_equal(cd_config_apply_flag(&cfg, "--config", "x.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "--config"));

    assert_true(cd_config_is_bool("reuseport"));
    assert_true(cd_config_is_bool("--reuseport"));
    assert_true(cd_config_is_bool("no-reuseport"));
    assert_false(cd_config_is_bool("port"));
    assert_false(cd_config_is_bool("--redis"));
    assert_false(cd_config_is_bool("bogus"));
    assert_false(cd_config_is_bool("config"));
    cd_config_cleanup(&cfg);
}

/* ---- the whole sequence ---- */

static void test_load_order(void **state)
{
    cd_config cfg;
    char path[64], conf_arg[80], err[ERRSZ] = "";
    bool help = true;
    int consumed = -1;
    (void)state;

    write_temp(path, sizeof path,
               "{\"port\": 9000, \"bind\": \"file\", \"max_body\": 100, \"prefix\": \"file:\", \"max_rid\": 10}");
    snprintf(conf_arg, sizeof conf_arg, "--config=%s", path);
    setenv("CHATDESK_PORT", "9100", 1);
    setenv("CHATDESK_BIND", "env", 1);
    setenv("CHATDESK_MAX_RID", "20", 1);
    {
        char *argv[] = {"chatdeskd", "--port", "9200", conf_arg, "--max-rid=30", "admin", "user-add"};
        assert_int_equal(cd_config_load_args(&cfg, ARGC(argv), argv, &consumed, &help, err, sizeof err), 0);
        assert_false(help);
        assert_int_equal(consumed, 5);
        assert_true(cfg.port == 9200);        /* file < env < flag */
        assert_string_equal(cfg.bind, "env"); /* file < env */
        assert_true(cfg.max_rid == 30);       /* file < env < flag */
        assert_true(cfg.max_body == 100);     /* file only */
        assert_string_equal(cfg.prefix, "file:");
        assert_true(cfg.max_id == 64); /* default */
        assert_string_equal(cfg.config_file, path);
        cd_config_cleanup(&cfg);
    }
    {
        char *argv[] = {"chatdeskd"};
        assert_int_equal(cd_config_load(&cfg, ARGC(argv), argv, &help, err, sizeof err), 0);
        assert_true(cfg.port == 9100); /* env only, no file */
        assert_true(cfg.max_body == 8192);
        cd_config_cleanup(&cfg);
    }
    clear_env(NULL);

    /* An error in the file is reported with the file's name; the flags are checked first. */
    {
        char *argv[] = {"chatdeskd", "--config", "/nonexistent/x.json"};
        assert_int_equal(cd_config_load(&cfg, ARGC(argv), argv, &help, err, sizeof err), -1);
        assert_non_null(strstr(err, "/nonexistent/x.json"));
        cd_config_cleanup(&cfg);
    }
    {
        char *argv[] = {"chatdeskd", "--config", "/nonexistent/x.json", "--port=99999"};
        assert_int_equal(cd_config_load(&cfg, ARGC(argv), argv, &help, err, sizeof err), -1);
        assert_string_equal(err, "--port: 99999 is above the maximum 65535");
        cd_config_cleanup(&cfg);
    }
    /* --help wins over a missing file. */
    {
        char *argv[] = {"chatdeskd", "--config", "/nonexistent/x.json", "--help"};
        assert_int_equal(cd_config_load(&cfg, ARGC(argv), argv, &help, err, sizeof err), 0);
        assert_true(help);
        cd_config_cleanup(&cfg);
    }
    unlink(path);
}

static void test_validate(void **state)
{
    static const struct {
        const char *flag, *value, *want;
    } cases[] = {
        {"redis", "http://h", "redis: bad redis URL"},
        {"log-level", "loud", "log_level: \"loud\" is not one of debug, info, warn, error"},
        {"token-secret", "abc", "token_secret: must be empty or exactly 64 hex characters"},
        {"token-secret", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1z",
         "token_secret: must be empty"},
        {"bind", "", "bind: must not be empty"},
        {"redis-backoff-min-ms", "6000", "redis_backoff_min_ms (6000) is above redis_backoff_max_ms (1000)"},
        {"idle-timeout-s", "30", "idle_timeout_s (30) must be greater than ping_interval_s (30)"},
        {"tls-cert", "/etc/cert.pem", "tls_cert and tls_key: give both"},
        {"tls-key", "/etc/key.pem", "tls_cert and tls_key: give both"},
        {"redis-user", "chatdesk", "redis_user: needs a password"},
    };
    cd_config cfg;
    char err[ERRSZ];
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {"chatdeskd", (char *)cases[i].flag, (char *)cases[i].value};
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", cases[i].flag);
        argv[1] = flag;
        err[0] = '\0';
        assert_int_equal(cd_config_load(&cfg, ARGC(argv), argv, NULL, err, sizeof err), -1);
        assert_non_null(strstr(err, cases[i].want));
        cd_config_cleanup(&cfg);
    }
    {
        char *argv[] = {"chatdeskd", "--token-secret",
                        "000102030405060708090A0B0C0D0E0F101112131415161718191a1b1c1d1e1f", "--log-level", "error"};
        assert_int_equal(cd_config_load(&cfg, ARGC(argv), argv, NULL, err, sizeof err), 0);
        cd_config_cleanup(&cfg);
    }
    {
        char *argv[] = {"chatdeskd",  "--redis-user", "chatdesk",  "--redis", "redis://:pw@h",
                        "--tls-cert", "c.pem",        "--tls-key", "k.pem"};
        assert_int_equal(cd_config_load(&cfg, ARGC(argv), argv, NULL, err, sizeof err), 0);
        cd_config_cleanup(&cfg);
    }
}

/* ---- Redis URLs ---- */

static void test_redis_url_ok(void **state)
{
    cd_redis_addr a;
    char err[ERRSZ] = "";
    (void)state;

    assert_int_equal(cd_config_parse_redis_url("redis://h:1234/2", &a, err, sizeof err), 0);
    assert_false(a.is_unix);
    assert_string_equal(a.host, "h");
    assert_int_equal(a.port, 1234);
    assert_int_equal(a.db, 2);
    assert_string_equal(a.password, "");

    assert_int_equal(cd_config_parse_redis_url("redis://:pw@h", &a, err, sizeof err), 0);
    assert_string_equal(a.host, "h");
    assert_string_equal(a.password, "pw");
    assert_int_equal(a.port, 6379);
    assert_int_equal(a.db, 0);

    assert_int_equal(cd_config_parse_redis_url("redis://h", &a, err, sizeof err), 0);
    assert_string_equal(a.host, "h");
    assert_int_equal(a.port, 6379);
    assert_int_equal(a.db, 0);
    assert_string_equal(a.password, "");

    assert_int_equal(cd_config_parse_redis_url("redis://127.0.0.1:6379/0", &a, err, sizeof err), 0);
    assert_string_equal(a.host, "127.0.0.1");

    /* A password may hold '@' and '/': userinfo runs to the last '@'. */
    assert_int_equal(cd_config_parse_redis_url("redis://:p@ss/w@db.example:6380/15", &a, err, sizeof err), 0);
    assert_string_equal(a.password, "p@ss/w");
    assert_string_equal(a.host, "db.example");
    assert_int_equal(a.port, 6380);
    assert_int_equal(a.db, 15);

    assert_int_equal(cd_config_parse_redis_url("redis://[::1]:6390/1", &a, err, sizeof err), 0);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 6390);
    assert_int_equal(a.db, 1);

    assert_int_equal(cd_config_parse_redis_url("redis://h/", &a, err, sizeof err), 0);
    assert_int_equal(a.db, 0);

    assert_int_equal(cd_config_parse_redis_url("unix:/tmp/x.sock", &a, err, sizeof err), 0);
    assert_true(a.is_unix);
    assert_string_equal(a.host, "/tmp/x.sock");
    assert_int_equal(a.db, 0);
    assert_string_equal(a.password, "");

    assert_int_equal(cd_config_parse_redis_url("unix:/tmp/x.sock?db=3", &a, err, sizeof err), 0);
    assert_true(a.is_unix);
    assert_string_equal(a.host, "/tmp/x.sock");
    assert_int_equal(a.db, 3);

    assert_int_equal(cd_config_parse_redis_url("unix:///var/run/redis.sock", &a, err, sizeof err), 0);
    assert_string_equal(a.host, "/var/run/redis.sock");
    assert_false(a.sentinel);

    /* Sentinel: a list of sentinels (default port 26379), the master's name, a db */
    assert_int_equal(
        cd_config_parse_redis_url("redis+sentinel://s1:26380,s2,[::1]:5000/mymaster/2", &a, err, sizeof err), 0);
    assert_true(a.sentinel);
    assert_false(a.is_unix);
    assert_int_equal(a.n_endpoints, 3);
    assert_string_equal(a.endpoints[0].host, "s1");
    assert_int_equal(a.endpoints[0].port, 26380);
    assert_string_equal(a.endpoints[1].host, "s2");
    assert_int_equal(a.endpoints[1].port, 26379);
    assert_string_equal(a.endpoints[2].host, "::1");
    assert_int_equal(a.endpoints[2].port, 5000);
    assert_string_equal(a.master, "mymaster");
    assert_int_equal(a.db, 2);
    assert_int_equal(cd_config_parse_redis_url("redis+sentinel://:pw@s1:26379/m", &a, err, sizeof err), 0);
    assert_string_equal(a.password, "pw");
    assert_int_equal(a.n_endpoints, 1);
    assert_string_equal(a.master, "m");
    assert_int_equal(a.db, 0);

    /* Cluster: seed nodes (default port 6379), a password; no database */
    assert_int_equal(cd_config_parse_redis_url("redis+cluster://:pw@n1:7000,n2,[::1]:7002/", &a, err, sizeof err), 0);
    assert_true(a.cluster);
    assert_false(a.sentinel);
    assert_int_equal(a.n_endpoints, 3);
    assert_string_equal(a.endpoints[0].host, "n1");
    assert_int_equal(a.endpoints[0].port, 7000);
    assert_int_equal(a.endpoints[1].port, 6379);
    assert_string_equal(a.endpoints[2].host, "::1");
    assert_string_equal(a.password, "pw");
    assert_string_equal(a.host, "n1");
}

static void test_redis_url_garbage(void **state)
{
    static const char *const bad[] = {
        "",
        "garbage",
        "http://h:6379",
        "rediss://h",
        "redis://",
        "redis://:pw@",
        "redis://h:",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:12a",
        "redis://h/x",
        "redis://h/1/2",
        "redis://h?db=1",
        "redis://user:pw@h",
        "redis://[::1",
        "unix:",
        "unix:relative.sock",
        "unix://relative.sock",
        "unix:/tmp/x.sock?db=",
        "unix:/tmp/x.sock?db=x",
        "unix:/tmp/x.sock?foo=1",
        "redis+sentinel://",
        "redis+sentinel://s1:26379",
        "redis+sentinel://s1:26379/",
        "redis+sentinel:///m",
        "redis+sentinel://s1,,s2/m",
        "redis+sentinel://s1:0/m",
        "redis+sentinel://s1/m/x",
        "redis+sentinel://a,b,c,d,e,f,g,h,i/m",
        "redis+sentinel://user:pw@s1/m",
        "redis+cluster://",
        "redis+cluster:///",
        "redis+cluster://h:7000/0",
        "redis+cluster://h:7000,,h:7001",
        "redis+cluster://user:pw@h:7000",
        "redis+cluster://h:0",
    };
    cd_redis_addr a;
    char err[ERRSZ];
    (void)state;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (cd_config_parse_redis_url(bad[i], &a, err, sizeof err) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
        if (strncmp(err, "bad redis URL: ", 15) != 0)
            fail_msg("\"%s\": error \"%s\"", bad[i], err);
    }
    assert_int_equal(cd_config_parse_redis_url(NULL, &a, err, sizeof err), -1);

    /* Errors never repeat the password. */
    assert_int_equal(cd_config_parse_redis_url("redis://:s3cret@h:99999", &a, err, sizeof err), -1);
    assert_null(strstr(err, "s3cret"));
    assert_string_equal(a.password, "");

    /* Bounded fields. */
    {
        char url[400];
        memset(url, 'h', sizeof url);
        memcpy(url, "redis://", 8);
        url[8 + 256] = '\0';
        assert_int_equal(cd_config_parse_redis_url(url, &a, err, sizeof err), -1);
        url[8 + 255] = '\0';
        assert_int_equal(cd_config_parse_redis_url(url, &a, err, sizeof err), 0);
        assert_int_equal(strlen(a.host), 255);

        /* Socket paths: 255 bytes fit host[256], 256 do not. */
        memset(url, 'p', sizeof url);
        memcpy(url, "unix:/", 6);
        url[5 + 256] = '\0';
        assert_int_equal(cd_config_parse_redis_url(url, &a, err, sizeof err), -1);
        assert_non_null(strstr(err, "socket path is longer"));
        url[5 + 255] = '\0';
        assert_int_equal(cd_config_parse_redis_url(url, &a, err, sizeof err), 0);
        assert_int_equal(strlen(a.host), 255);
        strcpy(url + 5 + 255, "?db=1");
        assert_int_equal(cd_config_parse_redis_url(url, &a, err, sizeof err), 0);
        assert_int_equal(strlen(a.host), 255);
        assert_int_equal(a.db, 1);
    }
}

/* ---- help and docs ---- */

static char *capture(void (*fn)(FILE *, const char *), const char *argv0, void (*fn_md)(FILE *))
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    assert_non_null(f);
    if (fn != NULL)
        fn(f, argv0);
    else
        fn_md(f);
    assert_int_equal(fclose(f), 0);
    return text;
}

static void test_markdown(void **state)
{
    char *md = capture(NULL, NULL, cd_config_print_markdown);
    size_t rows = 0;
    (void)state;

    assert_int_equal(strncmp(md, "# Configuration\n", 16), 0);
    assert_non_null(strstr(md, "file < env < flags"));
    assert_non_null(strstr(md, "| option (file key) | flag | environment | type | default | bounds | description |"));
    for (size_t i = 0; i < sizeof option_names / sizeof option_names[0]; i++) {
        char row[256], flag[80], env[80];
        flag_of(option_names[i], flag, sizeof flag);
        env_of(option_names[i], env, sizeof env);
        snprintf(row, sizeof row, "\n| `%s` | `%s` | `%s` | ", option_names[i], flag, env);
        if (strstr(md, row) == NULL)
            fail_msg("markdown lacks the row for %s", option_names[i]);
    }
    /* One table row per option, plus header and separator. */
    for (const char *p = md; (p = strstr(p, "\n| ")) != NULL; p++)
        rows++;
    assert_int_equal(rows, sizeof option_names / sizeof option_names[0] + 1);
    assert_non_null(strstr(md, "| `port` | `--port` | `CHATDESK_PORT` | integer | `8080` | 0 – 65535 |"));
    assert_non_null(strstr(md, "| `max_frame` | `--max-frame` | `CHATDESK_MAX_FRAME` | integer | `65536` |"));
    assert_non_null(strstr(md, "| `reuseport` | `--reuseport` | `CHATDESK_REUSEPORT` | boolean | `false` |"));
    assert_non_null(strstr(md, "| `node_id` | `--node-id` | `CHATDESK_NODE_ID` | string | *(empty)* |"));
    /* "<exe dir>" in a doc string must not become an HTML tag. */
    assert_null(strstr(md, "<exe dir>"));
    assert_non_null(strstr(md, "&lt;exe dir&gt;"));
    free(md);
}

static void test_help(void **state)
{
    char *help = capture(cd_config_print_help, "/usr/local/bin/chatdeskd", NULL);
    (void)state;

    assert_non_null(strstr(help, "chatdeskd [--config FILE] [options]\n"));
    assert_non_null(strstr(help, "chatdeskd admin <command> [options]\n"));
    assert_null(strstr(help, "/usr/local/bin"));
    for (size_t i = 0; i < sizeof option_names / sizeof option_names[0]; i++) {
        char flag[80], env[80];
        const char *line;
        flag_of(option_names[i], flag, sizeof flag);
        env_of(option_names[i], env, sizeof env);
        line = strstr(help, flag);
        if (line == NULL || strstr(line, env) == NULL || strchr(line, '\n') < strstr(line, env))
            fail_msg("help lacks a line with %s and %s", flag, env);
    }
    assert_non_null(strstr(help, "default 8080"));
    assert_non_null(strstr(help, "default \"redis://127.0.0.1:6379/0\""));
    assert_non_null(strstr(help, "HTTP/WebSocket port"));
    free(help);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_load),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test_setup(test_env, clear_env),
        cmocka_unit_test_setup(test_env_errors, clear_env),
        cmocka_unit_test(test_flags_forms),
        cmocka_unit_test(test_flags_bool),
        cmocka_unit_test(test_flags_errors),
        cmocka_unit_test(test_flags_help_and_config),
        cmocka_unit_test(test_flags_stop_at_command),
        cmocka_unit_test(test_apply_flag),
        cmocka_unit_test_setup(test_load_order, clear_env),
        cmocka_unit_test_setup(test_validate, clear_env),
        cmocka_unit_test(test_redis_url_ok),
        cmocka_unit_test(test_redis_url_garbage),
        cmocka_unit_test(test_markdown),
        cmocka_unit_test(test_help),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
