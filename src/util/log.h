/*
 * Log lines to stderr: "time level module: message". One line per decision, written with a
 * single write(2) so that lines from several threads never interleave. Never pass secrets,
 * passwords or tokens.
 */
#ifndef SK_UTIL_LOG_H
#define SK_UTIL_LOG_H

typedef enum sk_log_level {
    SK_LOG_ERROR = 0,
    SK_LOG_WARN,
    SK_LOG_INFO,
    SK_LOG_DEBUG
} sk_log_level_t;

/* Sets the most verbose level written; INFO until called. Call before starting threads. */
void sk_log_set_level(sk_log_level_t level);

/* Parses "error", "warn", "info" or "debug". Returns 0, or -1 for anything else. */
int sk_log_parse_level(const char *name, sk_log_level_t *level);

/* Whether lines of `level` are written. */
int sk_log_enabled(sk_log_level_t level);

void sk_log(sk_log_level_t level, const char *module, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

#endif
