/* chatdeskd: argv -> config -> cd_server_run(), the admin CLI or mail-in. Nothing else. */
#include <stdio.h>
#include <string.h>

#include "chatdesk/admin.h"
#include "chatdesk/config.h"
#include "chatdesk/server.h"

int main(int argc, char **argv)
{
    cd_config cfg;
    bool help = false;
    char err[512];

    if (argc > 1 && strcmp(argv[1], "--help-markdown") == 0) {
        cd_config_print_markdown(stdout);
        return 0;
    }
    /* Flags before a subcommand are config flags; "admin" hands the rest to the CLI. */
    int first = 1;
    if (cd_config_load_args(&cfg, argc, argv, &first, &help, err, sizeof err) != 0) {
        fprintf(stderr, "chatdeskd: %s\n", err);
        fprintf(stderr, "Try 'chatdeskd --help'.\n");
        cd_config_cleanup(&cfg);
        return 2;
    }
    if (help) {
        cd_config_print_help(stdout, argv[0]);
        cd_config_cleanup(&cfg);
        return 0;
    }
    int rc;
    if (first < argc && strcmp(argv[first], "admin") == 0) {
        rc = cd_admin_main(&cfg, argc - first - 1, argv + first + 1);
    } else if (first < argc && strcmp(argv[first], "mail-in") == 0) {
        rc = cd_admin_mail_in(&cfg, argc - first - 1, argv + first + 1);
    } else if (first < argc) {
        fprintf(stderr, "chatdeskd: unexpected argument '%s'\nTry 'chatdeskd --help'.\n", argv[first]);
        rc = 2;
    } else {
        rc = cd_server_run(&cfg);
    }
    cd_config_cleanup(&cfg);
    return rc;
}
