/*
 * Log lines to stderr: "time level module: message". One line per decision, written with a
 * single write(2) so that lines from several threads never interleave. Never pass secrets,
 * passwords or tokens.
 *
 * When stderr is the systemd journal (JOURNAL_STREAM names its device and inode), each line
 * starts with the syslog priority, "<3>" error, "<4>" warn, "<6>" info, "<7>" debug, which
 * journald strips and records, so `journalctl -p warning` filters. Control characters in a
 * message are written as spaces: one call is always one line.
 *
 * Warnings and errors repeat: a backend that is down fails every few milliseconds. A line
 * identical to one written less than SK_LOG_REPEAT_WINDOW_SEC seconds ago (same level,
 * module and message) is counted instead of written; once that window has passed, one line
 * "module: message (repeated N times in the last S s)" reports the count. The first
 * occurrence of a different line is always written. Counts still pending at exit are
 * written then.
 */
#ifndef SK_UTIL_LOG_H
#define SK_UTIL_LOG_H

#include <stdint.h>

typedef enum sk_log_level {
    SK_LOG_ERROR = 0,
    SK_LOG_WARN,
    SK_LOG_INFO,
    SK_LOG_DEBUG
} sk_log_level_t;

#define SK_LOG_REPEAT_WINDOW_SEC 10

/* Sets the most verbose level written; INFO until called. Call before starting threads. */
void sk_log_set_level(sk_log_level_t level);

/* Parses "error", "warn", "info" or "debug". Returns 0, or -1 for anything else. */
int sk_log_parse_level(const char *name, sk_log_level_t *level);

/* Whether lines of `level` are written. */
int sk_log_enabled(sk_log_level_t level);

void sk_log(sk_log_level_t level, const char *module, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes the count line of every repeated line still counted, window passed or not, and
 * forgets them. Runs at exit; thread-safe. */
void sk_log_flush(void);

/* For tests only. */

/* Whether `fd` is the stream that `journal_stream` ("DEVICE:INODE" in decimal, the format
 * of systemd's JOURNAL_STREAM; NULL when unset) names. */
int sk_log__is_journal(int fd, const char *journal_stream);

/* Writes lines to `fd` instead of stderr, with the priority prefix when JOURNAL_STREAM
 * names `fd`. Call before starting threads. */
void sk_log__set_output(int fd);

/* Replaces the monotonic clock (milliseconds) of the repeat windows; NULL restores it. Call
 * before starting threads. */
void sk_log__set_clock(int64_t (*now_ms)(void));

/* Forgets every repeated line without writing its count. */
void sk_log__reset(void);

#endif
