/* The log writer: see log.h. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static sk_log_level_t max_level = SK_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void sk_log_set_level(sk_log_level_t level)
{
    max_level = level;
}

int sk_log_parse_level(const char *name, sk_log_level_t *level)
{
    for (int i = 0; i != 4; ++i) {
        if (strcmp(name, level_names[i]) == 0) {
            *level = (sk_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

int sk_log_enabled(sk_log_level_t level)
{
    return level <= max_level;
}

void sk_log(sk_log_level_t level, const char *module, const char *format, ...)
{
    if (level > max_level)
        return;
    char line[1024];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    int len = snprintf(line, sizeof(line),
                       "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                       now.tv_nsec / 1000000, level_names[level], module);
    va_list args;
    va_start(args, format);
    len += vsnprintf(line + len, sizeof(line) - (size_t)len - 1, format, args);
    va_end(args);
    if (len > (int)sizeof(line) - 2)
        len = (int)sizeof(line) - 2;
    line[len++] = '\n';
    /* A failed log write has nowhere to be reported. */
    ssize_t written = write(STDERR_FILENO, line, (size_t)len);
    (void)written;
}
