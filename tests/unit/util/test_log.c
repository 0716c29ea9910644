/*
 * Tests of src/util/log.c: the line format, the syslog priority prefix when the output is
 * the journal's stream (JOURNAL_STREAM), lines that do not fit, and the counting of
 * repeated warnings and errors, driven by a fake clock. Lines go to a temporary file that
 * each test reads back.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/log.h"

static int log_fd = -1;
static int64_t fake_now;

static int64_t fake_clock(void)
{
    return fake_now;
}

static int setup(void **state)
{
    (void)state;
    if (log_fd < 0) {
        char path[] = "/tmp/test_log.XXXXXX";
        log_fd = mkstemp(path);
        if (log_fd < 0)
            return -1;
        unlink(path);
    }
    if (ftruncate(log_fd, 0) != 0 || lseek(log_fd, 0, SEEK_SET) != 0)
        return -1;
    unsetenv("JOURNAL_STREAM");
    sk_log__set_output(log_fd);
    sk_log__set_clock(fake_clock);
    sk_log__reset();
    sk_log_set_level(SK_LOG_DEBUG);
    fake_now = 1000000;
    return 0;
}

/* Everything written since the last call, NUL-terminated; the caller frees it. */
static char *take_output(void)
{
    off_t size = lseek(log_fd, 0, SEEK_END);
    assert_true(size >= 0);
    char *text = malloc((size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(pread(log_fd, text, (size_t)size, 0), size);
    text[size] = '\0';
    assert_int_equal(ftruncate(log_fd, 0), 0);
    assert_int_equal(lseek(log_fd, 0, SEEK_SET), 0);
    return text;
}

static int count_lines(const char *text)
{
    int lines = 0;
    for (const char *c = text; *c != '\0'; ++c)
        lines += *c == '\n';
    return lines;
}

static int count_occurrences(const char *text, const char *needle)
{
    int count = 0;
    for (const char *at = strstr(text, needle); at != NULL; at = strstr(at + 1, needle))
        ++count;
    return count;
}

/* Whether `line` is "YYYY-MM-DDTHH:MM:SS.mmmZ " followed by `rest` and a newline. */
static int has_format(const char *line, const char *rest)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
    for (size_t i = 0; i != sizeof(shape) - 1; ++i) {
        if (shape[i] == 'd' ? (line[i] < '0' || line[i] > '9') : line[i] != shape[i])
            return 0;
    }
    size_t rest_len = strlen(rest);
    const char *after = line + sizeof(shape) - 1;
    return strncmp(after, rest, rest_len) == 0 && after[rest_len] == '\n';
}

static void set_journal_stream_to(int fd)
{
    struct stat status;
    assert_int_equal(fstat(fd, &status), 0);
    char value[64];
    snprintf(value, sizeof(value), "%llu:%llu", (unsigned long long)status.st_dev,
             (unsigned long long)status.st_ino);
    setenv("JOURNAL_STREAM", value, 1);
}

static void test_plain_format(void **state)
{
    (void)state;
    sk_log(SK_LOG_WARN, "store", "Redis %s (%d)", "unreachable", 3);
    char *out = take_output();
    assert_true(has_format(out, "warn store: Redis unreachable (3)"));
    assert_int_equal(count_lines(out), 1);
    free(out);
}

static void test_levels_filtered(void **state)
{
    (void)state;
    sk_log_set_level(SK_LOG_WARN);
    sk_log(SK_LOG_INFO, "m", "not written");
    sk_log(SK_LOG_DEBUG, "m", "not written");
    sk_log(SK_LOG_ERROR, "m", "written");
    char *out = take_output();
    assert_int_equal(count_lines(out), 1);
    assert_true(has_format(out, "error m: written"));
    free(out);
}

static void test_journal_prefix_by_level(void **state)
{
    (void)state;
    set_journal_stream_to(log_fd);
    sk_log__set_output(log_fd);
    sk_log(SK_LOG_ERROR, "m", "e");
    sk_log(SK_LOG_WARN, "m", "w");
    sk_log(SK_LOG_INFO, "m", "i");
    sk_log(SK_LOG_DEBUG, "m", "d");
    char *out = take_output();
    const char *expected[][2] = {
        {"<3>", "error m: e"}, {"<4>", "warn m: w"}, {"<6>", "info m: i"}, {"<7>", "debug m: d"}};
    const char *line = out;
    for (int i = 0; i != 4; ++i) {
        assert_memory_equal(line, expected[i][0], 3);
        assert_true(has_format(line + 3, expected[i][1]));
        line = strchr(line, '\n') + 1;
    }
    assert_string_equal(line, "");
    free(out);
}

static void test_no_prefix_for_another_stream(void **state)
{
    (void)state;
    char path[] = "/tmp/test_log_other.XXXXXX";
    int other = mkstemp(path);
    assert_true(other >= 0);
    unlink(path);
    set_journal_stream_to(other); /* the journal is some other file, not our output */
    sk_log__set_output(log_fd);
    sk_log(SK_LOG_WARN, "m", "w");
    char *out = take_output();
    assert_true(has_format(out, "warn m: w"));
    free(out);
    close(other);
}

static void test_is_journal(void **state)
{
    (void)state;
    struct stat status;
    assert_int_equal(fstat(log_fd, &status), 0);
    unsigned long long device = (unsigned long long)status.st_dev;
    unsigned long long inode = (unsigned long long)status.st_ino;
    char value[96];
    snprintf(value, sizeof(value), "%llu:%llu", device, inode);
    assert_true(sk_log__is_journal(log_fd, value));
    assert_false(sk_log__is_journal(-1, value));
    assert_false(sk_log__is_journal(log_fd, NULL));

    char bad[12][96];
    snprintf(bad[0], sizeof(bad[0]), "%llu:%llu", device, inode + 1);
    snprintf(bad[1], sizeof(bad[1]), "%llu:%llu", device + 1, inode);
    snprintf(bad[2], sizeof(bad[2]), "%llu:%llux", device, inode);
    snprintf(bad[3], sizeof(bad[3]), " %llu:%llu", device, inode);
    snprintf(bad[4], sizeof(bad[4]), "%llu: %llu", device, inode);
    snprintf(bad[5], sizeof(bad[5]), "%llu:+%llu", device, inode);
    snprintf(bad[6], sizeof(bad[6]), "%llu", device);
    snprintf(bad[7], sizeof(bad[7]), "%llu:", device);
    snprintf(bad[8], sizeof(bad[8]), ":%llu", inode);
    snprintf(bad[9], sizeof(bad[9]), "%llu:%llu:1", device, inode);
    snprintf(bad[10], sizeof(bad[10]), "%s", "");
    snprintf(bad[11], sizeof(bad[11]), "%llu:99999999999999999999999999", device);
    for (int i = 0; i != 12; ++i)
        assert_false(sk_log__is_journal(log_fd, bad[i]));
}

/* Parts longer than a line are cut: one line, no overflow (the sanitizer build checks). */
static void test_overlong_parts(void **state)
{
    (void)state;
    size_t sizes[] = {0, 1, 800, 895, 896, 897, 1023, 1024, 1025, 5000};
    for (size_t i = 0; i != sizeof(sizes) / sizeof(sizes[0]); ++i) {
        sk_log__reset(); /* the longest are cut to the same line */
        char *big = malloc(sizes[i] + 1);
        assert_non_null(big);
        memset(big, 'x', sizes[i]);
        big[sizes[i]] = '\0';
        sk_log(SK_LOG_INFO, big, "%s", "m");
        sk_log(SK_LOG_ERROR, "m", "%s", big);
        sk_log(SK_LOG_DEBUG, big, "%s%s", big, big);
        free(big);
        char *out = take_output();
        assert_int_equal(count_lines(out), 3);
        for (const char *line = out; *line != '\0'; line = strchr(line, '\n') + 1)
            assert_true(strchr(line, '\n') - line < 1024);
        free(out);
    }
}

static void test_control_characters_stay_on_one_line(void **state)
{
    (void)state;
    sk_log(SK_LOG_ERROR, "m\nx", "a\nb\r\n<3>c\x7f\x01");
    char *out = take_output();
    assert_int_equal(count_lines(out), 1);
    assert_true(has_format(out, "error m x: a b  <3>c  "));
    free(out);
}

static void test_repeats_counted(void **state)
{
    (void)state;
    for (int i = 0; i != 5; ++i) {
        sk_log(SK_LOG_WARN, "redis", "connect to %s failed", "127.0.0.1:1");
        fake_now += 1000;
    }
    char *out = take_output();
    assert_int_equal(count_lines(out), 1);
    assert_true(has_format(out, "warn redis: connect to 127.0.0.1:1 failed"));
    free(out);

    /* The window ends 10 s after the line: an info line then writes the count first. */
    fake_now = 1000000 + SK_LOG_REPEAT_WINDOW_SEC * 1000 - 1;
    sk_log(SK_LOG_INFO, "m", "before");
    fake_now += 1;
    sk_log(SK_LOG_INFO, "m", "after");
    out = take_output();
    assert_int_equal(count_lines(out), 3);
    assert_true(has_format(out, "info m: before"));
    const char *second = strchr(out, '\n') + 1;
    assert_true(has_format(
        second, "warn redis: connect to 127.0.0.1:1 failed (repeated 4 times in the last 10 s)"));
    assert_true(has_format(strchr(second, '\n') + 1, "info m: after"));
    free(out);

    /* Counted, reported: the next one is written and starts a new window. */
    sk_log(SK_LOG_WARN, "redis", "connect to %s failed", "127.0.0.1:1");
    sk_log(SK_LOG_WARN, "redis", "connect to %s failed", "127.0.0.1:1");
    out = take_output();
    assert_int_equal(count_lines(out), 1);
    free(out);
}

static void test_different_lines_never_suppressed(void **state)
{
    (void)state;
    sk_log(SK_LOG_WARN, "store", "down");
    sk_log(SK_LOG_WARN, "store", "down");
    sk_log(SK_LOG_ERROR, "store", "down"); /* another level */
    sk_log(SK_LOG_WARN, "store", "down!");
    sk_log(SK_LOG_WARN, "store", "dow");
    sk_log(SK_LOG_WARN, "other", "down"); /* another module */
    sk_log(SK_LOG_ERROR, "store", "down");
    char *out = take_output();
    assert_int_equal(count_lines(out), 5);
    assert_int_equal(count_occurrences(out, "warn store: down\n"), 1);
    assert_int_equal(count_occurrences(out, "error store: down\n"), 1);
    assert_int_equal(count_occurrences(out, "warn store: down!\n"), 1);
    assert_int_equal(count_occurrences(out, "warn store: dow\n"), 1);
    assert_int_equal(count_occurrences(out, "warn other: down\n"), 1);
    free(out);
    sk_log_flush();
    out = take_output();
    assert_int_equal(count_lines(out), 2);
    assert_int_equal(count_occurrences(out, "warn store: down (repeated 1 time in the last 1 s)"),
                     1);
    assert_int_equal(count_occurrences(out, "error store: down (repeated 1 time in the last 1 s)"),
                     1);
    free(out);
}

static void test_info_and_debug_not_counted(void **state)
{
    (void)state;
    for (int i = 0; i != 3; ++i) {
        sk_log(SK_LOG_INFO, "m", "same");
        sk_log(SK_LOG_DEBUG, "m", "same");
    }
    char *out = take_output();
    assert_int_equal(count_lines(out), 6);
    free(out);
}

static void test_once_per_window_is_not_counted(void **state)
{
    (void)state;
    sk_log(SK_LOG_WARN, "m", "rare");
    fake_now += SK_LOG_REPEAT_WINDOW_SEC * 1000;
    sk_log(SK_LOG_WARN, "m", "rare");
    fake_now += SK_LOG_REPEAT_WINDOW_SEC * 1000 + 1;
    sk_log(SK_LOG_WARN, "m", "rare");
    sk_log_flush();
    char *out = take_output();
    assert_int_equal(count_lines(out), 3);
    assert_null(strstr(out, "repeated"));
    free(out);
}

static void test_count_written_by_next_warning(void **state)
{
    (void)state;
    sk_log(SK_LOG_ERROR, "m", "flood");
    fake_now += 3000;
    sk_log(SK_LOG_ERROR, "m", "flood");
    fake_now += 9000; /* 12 s after the line */
    sk_log(SK_LOG_ERROR, "m", "flood");
    char *out = take_output();
    assert_int_equal(count_lines(out), 3);
    const char *second = strchr(out, '\n') + 1;
    assert_true(has_format(second, "error m: flood (repeated 1 time in the last 12 s)"));
    assert_true(has_format(strchr(second, '\n') + 1, "error m: flood"));
    free(out);
}

static void test_flush_writes_pending_counts(void **state)
{
    (void)state;
    set_journal_stream_to(log_fd);
    sk_log__set_output(log_fd);
    sk_log(SK_LOG_WARN, "m", "w");
    fake_now += 2500;
    sk_log(SK_LOG_WARN, "m", "w");
    sk_log_flush();
    sk_log_flush(); /* nothing left */
    char *out = take_output();
    assert_int_equal(count_lines(out), 2);
    const char *second = strchr(out, '\n') + 1;
    assert_memory_equal(second, "<4>", 3);
    assert_true(has_format(second + 3, "warn m: w (repeated 1 time in the last 3 s)"));
    free(out);
}

/* More different lines than the table holds: each is written, and the count of the one
 * that gives way is written before it goes. */
static void test_table_full(void **state)
{
    (void)state;
    sk_log(SK_LOG_WARN, "m", "first");
    sk_log(SK_LOG_WARN, "m", "first");
    for (int i = 0; i != 100; ++i) {
        fake_now += 1;
        sk_log(SK_LOG_WARN, "m", "line %d", i);
    }
    char *out = take_output();
    assert_int_equal(count_lines(out), 102);
    assert_int_equal(count_occurrences(out, "warn m: first (repeated 1 time in the last 1 s)"), 1);
    char line[32];
    for (int i = 0; i != 100; ++i) {
        snprintf(line, sizeof(line), "warn m: line %d\n", i);
        assert_int_equal(count_occurrences(out, line), 1);
    }
    free(out);
    sk_log(SK_LOG_WARN, "m", "line 99"); /* still in the table: counted */
    out = take_output();
    assert_string_equal(out, "");
    free(out);
}

#define THREADS 4
#define PER_THREAD 2000

static void *log_from_thread(void *arg)
{
    int index = *(int *)arg;
    for (int i = 0; i != PER_THREAD; ++i)
        sk_log(SK_LOG_WARN, "redis", "connection refused");
    sk_log(SK_LOG_WARN, "thread", "%d done", index);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t threads[THREADS];
    int indexes[THREADS];
    for (int i = 0; i != THREADS; ++i) {
        indexes[i] = i;
        assert_int_equal(pthread_create(&threads[i], NULL, log_from_thread, &indexes[i]), 0);
    }
    for (int i = 0; i != THREADS; ++i)
        pthread_join(threads[i], NULL);
    sk_log_flush();
    char *out = take_output();
    assert_int_equal(count_lines(out), 2 + THREADS);
    assert_int_equal(count_occurrences(out, "warn redis: connection refused\n"), 1);
    char expected[96];
    snprintf(expected, sizeof(expected), "warn redis: connection refused (repeated %d times",
             THREADS * PER_THREAD - 1);
    assert_int_equal(count_occurrences(out, expected), 1);
    for (int i = 0; i != THREADS; ++i) {
        snprintf(expected, sizeof(expected), "warn thread: %d done\n", i);
        assert_int_equal(count_occurrences(out, expected), 1);
    }
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_plain_format, setup),
        cmocka_unit_test_setup(test_levels_filtered, setup),
        cmocka_unit_test_setup(test_journal_prefix_by_level, setup),
        cmocka_unit_test_setup(test_no_prefix_for_another_stream, setup),
        cmocka_unit_test_setup(test_is_journal, setup),
        cmocka_unit_test_setup(test_overlong_parts, setup),
        cmocka_unit_test_setup(test_control_characters_stay_on_one_line, setup),
        cmocka_unit_test_setup(test_repeats_counted, setup),
        cmocka_unit_test_setup(test_different_lines_never_suppressed, setup),
        cmocka_unit_test_setup(test_info_and_debug_not_counted, setup),
        cmocka_unit_test_setup(test_once_per_window_is_not_counted, setup),
        cmocka_unit_test_setup(test_count_written_by_next_warning, setup),
        cmocka_unit_test_setup(test_flush_writes_pending_counts, setup),
        cmocka_unit_test_setup(test_table_full, setup),
        cmocka_unit_test_setup(test_threads, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
