/*
 * The log writer: see log.h.
 *
 * Repeats are counted in a small table of the warnings and errors written in the last
 * window, under one mutex. Only warnings and errors take it: they are rare while all is
 * well, and while something is wrong the lock is what stands between a failing backend
 * and 15 lines a second. The table is bounded; when every slot holds a line still in its
 * window, the oldest gives way (its count written first), so a burst of many different
 * lines is written in full and no count is lost. Info and debug lines are never counted
 * and check one atomic to learn whether a count is due.
 */
#include "util/log.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LINE_BYTES 1024
/* "module: message" at most, so that the priority, the time, the level and a count always
 * fit in a line after it. */
#define MESSAGE_BYTES 896
#define REPEAT_SLOTS 32
#define REPEAT_WINDOW_MS ((int64_t)SK_LOG_REPEAT_WINDOW_SEC * 1000)

static sk_log_level_t max_level = SK_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* syslog(3) priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const char *const priority_prefixes[] = {"<3>", "<4>", "<6>", "<7>"};

static pthread_once_t output_once = PTHREAD_ONCE_INIT;
static int output_fd = STDERR_FILENO;
static int journal; /* set once, before the first line: lines carry the priority prefix */

typedef struct repeat_slot {
    size_t len; /* of text; 0 when the slot is free */
    uint64_t hash;
    sk_log_level_t level;
    int64_t written_ms;  /* when the line was last written: its window starts there */
    uint64_t suppressed; /* identical lines since then, counted instead of written */
    char text[MESSAGE_BYTES];
} repeat_slot_t;

static pthread_mutex_t repeat_lock = PTHREAD_MUTEX_INITIALIZER;
static repeat_slot_t repeat_slots[REPEAT_SLOTS]; /* guarded by repeat_lock */
/* The earliest end of a window with lines counted, INT64_MAX when none: info and debug
 * lines read it without the lock. Written under repeat_lock. */
static _Atomic int64_t count_due_ms = INT64_MAX;

static int64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static int64_t (*clock_ms)(void) = monotonic_ms;

/* Text in a fixed buffer that silently cuts what does not fit: len never exceeds capacity,
 * and bytes holds capacity + 1 bytes (vsnprintf's NUL). */
typedef struct text {
    char *bytes;
    size_t capacity;
    size_t len;
} text_t;

__attribute__((format(printf, 2, 0))) static void text_vappend(text_t *text, const char *format,
                                                               va_list args)
{
    size_t room = text->capacity - text->len;
    int written = vsnprintf(text->bytes + text->len, room + 1, format, args);
    if (written > 0)
        text->len += (size_t)written < room ? (size_t)written : room;
}

__attribute__((format(printf, 2, 3))) static void text_append(text_t *text, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    text_vappend(text, format, args);
    va_end(args);
}

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

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int sk_log__is_journal(int fd, const char *journal_stream)
{
    /* strtoull alone would take a sign, spaces or an empty field. */
    if (journal_stream == NULL || !is_digit(journal_stream[0]))
        return 0;
    char *end;
    unsigned long long device = strtoull(journal_stream, &end, 10);
    if (*end != ':' || !is_digit(end[1]))
        return 0;
    unsigned long long inode = strtoull(end + 1, &end, 10);
    if (*end != '\0' || device == ULLONG_MAX || inode == ULLONG_MAX)
        return 0;
    struct stat status;
    if (fstat(fd, &status) != 0)
        return 0;
    return (unsigned long long)status.st_dev == device &&
           (unsigned long long)status.st_ino == inode;
}

/* Writes one line; `repeated` > 0 adds the count of identical lines over `over_ms`. */
static void write_line(sk_log_level_t level, const char *message, size_t message_len,
                       uint64_t repeated, int64_t over_ms)
{
    char bytes[LINE_BYTES];
    text_t line = {bytes, sizeof(bytes) - 2, 0}; /* room for the '\n' and vsnprintf's NUL */
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    text_append(&line, "%s%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %.*s",
                journal ? priority_prefixes[level] : "", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000,
                level_names[level], (int)message_len, message);
    if (repeated != 0) {
        int64_t seconds = over_ms >= 1500 ? (over_ms + 500) / 1000 : 1;
        text_append(&line, " (repeated %" PRIu64 " time%s in the last %" PRId64 " s)", repeated,
                    repeated == 1 ? "" : "s", seconds);
    }
    line.bytes[line.len++] = '\n';
    /* A failed log write has nowhere to be reported. */
    ssize_t written = write(output_fd, line.bytes, line.len);
    (void)written;
}

static void update_count_due(void)
{
    int64_t due = INT64_MAX;
    for (int i = 0; i != REPEAT_SLOTS; ++i) {
        const repeat_slot_t *slot = &repeat_slots[i];
        if (slot->len != 0 && slot->suppressed != 0 && slot->written_ms + REPEAT_WINDOW_MS < due)
            due = slot->written_ms + REPEAT_WINDOW_MS;
    }
    atomic_store_explicit(&count_due_ms, due, memory_order_relaxed);
}

/* Writes the count of `slot`, if any, and frees it. Under repeat_lock. */
static void release_slot(repeat_slot_t *slot, int64_t now)
{
    if (slot->suppressed != 0)
        write_line(slot->level, slot->text, slot->len, slot->suppressed, now - slot->written_ms);
    slot->len = 0;
    slot->suppressed = 0;
}

/* Frees every slot whose window has passed (or every slot, with `all`), writing the counts.
 * Under repeat_lock. */
static void release_passed(int64_t now, int all)
{
    for (int i = 0; i != REPEAT_SLOTS; ++i) {
        repeat_slot_t *slot = &repeat_slots[i];
        if (slot->len != 0 && (all || now - slot->written_ms >= REPEAT_WINDOW_MS))
            release_slot(slot, now);
    }
    update_count_due();
}

static uint64_t hash_line(sk_log_level_t level, const char *text, size_t len)
{
    uint64_t hash = 14695981039346656037ULL ^ (uint64_t)level; /* FNV-1a */
    for (size_t i = 0; i != len; ++i)
        hash = (hash ^ (unsigned char)text[i]) * 1099511628211ULL;
    return hash;
}

/*
 * Whether the warning or error `message` is written: counted instead when an identical line
 * was written less than a window ago. Writes the counts that are due first, and the line
 * itself when it is written, all under the lock so that a count comes before the line that
 * follows it.
 */
static void log_counted(sk_log_level_t level, const char *message, size_t len, int64_t now)
{
    uint64_t hash = hash_line(level, message, len);
    pthread_mutex_lock(&repeat_lock);
    release_passed(now, 0);
    repeat_slot_t *oldest = &repeat_slots[0];
    repeat_slot_t *free_slot = NULL;
    for (int i = 0; i != REPEAT_SLOTS; ++i) {
        repeat_slot_t *slot = &repeat_slots[i];
        if (slot->len == 0) {
            if (free_slot == NULL)
                free_slot = slot;
            continue;
        }
        if (slot->hash == hash && slot->level == level && slot->len == len &&
            memcmp(slot->text, message, len) == 0) {
            if (slot->suppressed++ == 0 &&
                slot->written_ms + REPEAT_WINDOW_MS <
                    atomic_load_explicit(&count_due_ms, memory_order_relaxed))
                atomic_store_explicit(&count_due_ms, slot->written_ms + REPEAT_WINDOW_MS,
                                      memory_order_relaxed);
            pthread_mutex_unlock(&repeat_lock);
            return;
        }
        if (slot->written_ms < oldest->written_ms)
            oldest = slot;
    }
    repeat_slot_t *slot = free_slot;
    if (slot == NULL) {
        release_slot(oldest, now);
        update_count_due();
        slot = oldest;
    }
    memcpy(slot->text, message, len);
    slot->len = len;
    slot->hash = hash;
    slot->level = level;
    slot->written_ms = now;
    slot->suppressed = 0;
    write_line(level, message, len, 0, 0);
    pthread_mutex_unlock(&repeat_lock);
}

static void flush_at_exit(void)
{
    /* A thread may hold the lock forever, blocked on a full stderr pipe: never hang exit. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += 100L * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000;
    }
    if (pthread_mutex_timedlock(&repeat_lock, &deadline) != 0)
        return;
    release_passed(clock_ms(), 1);
    pthread_mutex_unlock(&repeat_lock);
}

static void init_output(void)
{
    journal = sk_log__is_journal(STDERR_FILENO, getenv("JOURNAL_STREAM"));
    atexit(flush_at_exit);
}

void sk_log(sk_log_level_t level, const char *module, const char *format, ...)
{
    if (level > max_level)
        return;
    pthread_once(&output_once, init_output);
    char bytes[MESSAGE_BYTES];
    text_t message = {bytes, sizeof(bytes) - 1, 0};
    text_append(&message, "%s: ", module);
    va_list args;
    va_start(args, format);
    text_vappend(&message, format, args);
    va_end(args);
    /* A newline would start a line without the priority prefix, or one that forges
     * another entry with text from a backend or a client. */
    for (size_t i = 0; i != message.len; ++i) {
        if ((unsigned char)bytes[i] < 0x20 || bytes[i] == 0x7f)
            bytes[i] = ' ';
    }
    int64_t now = clock_ms();
    if (level <= SK_LOG_WARN) {
        log_counted(level, bytes, message.len, now);
        return;
    }
    if (now >= atomic_load_explicit(&count_due_ms, memory_order_relaxed)) {
        pthread_mutex_lock(&repeat_lock);
        release_passed(now, 0);
        pthread_mutex_unlock(&repeat_lock);
    }
    write_line(level, bytes, message.len, 0, 0);
}

void sk_log_flush(void)
{
    pthread_mutex_lock(&repeat_lock);
    release_passed(clock_ms(), 1);
    pthread_mutex_unlock(&repeat_lock);
}

void sk_log__set_output(int fd)
{
    pthread_once(&output_once, init_output);
    output_fd = fd;
    journal = sk_log__is_journal(fd, getenv("JOURNAL_STREAM"));
}

void sk_log__set_clock(int64_t (*now_ms)(void))
{
    clock_ms = now_ms != NULL ? now_ms : monotonic_ms;
}

void sk_log__reset(void)
{
    pthread_mutex_lock(&repeat_lock);
    for (int i = 0; i != REPEAT_SLOTS; ++i) {
        repeat_slots[i].len = 0;
        repeat_slots[i].suppressed = 0;
    }
    update_count_due();
    pthread_mutex_unlock(&repeat_lock);
}
