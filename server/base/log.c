/* One line per event on stderr: "2026-11-24T11:00:00.123Z info msg key=value". */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "chatdesk/clock.h"
#include "chatdesk/log.h"

static cd_log_level min_level = CD_LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

void cd_log_set_level(cd_log_level lvl)
{
    min_level = lvl;
}

int cd_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void cd_log(cd_log_level lvl, const char *fmt, ...)
{
    if (lvl < min_level)
        return;
    uint64_t ms = cd_now_ms();
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char line[1024];
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s ", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000), names[lvl]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}
