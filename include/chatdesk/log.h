/* log: leveled one-line logs, "ts level msg key=value ...", in one place so every module
 * logs the same way and nothing logs secrets or bodies. */
#ifndef CHATDESK_LOG_H
#define CHATDESK_LOG_H

typedef enum cd_log_level { CD_LOG_DEBUG, CD_LOG_INFO, CD_LOG_WARN, CD_LOG_ERROR } cd_log_level;

void cd_log_set_level(cd_log_level lvl);
/* "debug" | "info" | "warn" | "error"; returns -1 for unknown names. */
int cd_log_level_parse(const char *name);
void cd_log(cd_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cd_log_debug(...) cd_log(CD_LOG_DEBUG, __VA_ARGS__)
#define cd_log_info(...) cd_log(CD_LOG_INFO, __VA_ARGS__)
#define cd_log_warn(...) cd_log(CD_LOG_WARN, __VA_ARGS__)
#define cd_log_error(...) cd_log(CD_LOG_ERROR, __VA_ARGS__)

#endif
