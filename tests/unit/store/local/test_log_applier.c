/*
 * Tests of src/store/local/log_applier.c with real grant logs and a real SQLite file in a
 * fresh temporary directory: the applier copies what writers flush into SQLite behind them
 * (backlog counted at the flush, zero once applied, and the lag behind it), deletes segments it has
 * applied once their writer moved on, applies everything written before a stop, frees released
 * writers with their files; recovery applies every segment, drops a torn tail and the records a
 * later segment voids, replays what SQLite has already without counting it twice, and
 * deletes the segments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal_entries.h"
#include "store/local/grant_log.h"
#include "store/local/journal.h"
#include "store/local/log_applier.h"
#include "util/error.h"

typedef struct fixture {
    char dir[64];
    char db_path[128];
    char log_dir[128];
    sk_journal_t *journal;
} fixture_t;

static int no_user(void *data, int64_t id, h2o_iovec_t username, sk_user_kind_t kind,
                   const char *password_hash)
{
    (void)data, (void)id, (void)username, (void)kind, (void)password_hash;
    return 0;
}

static int no_coupon(void *data, int64_t id, h2o_iovec_t seller, h2o_iovec_t name,
                     h2o_iovec_t description, int64_t amount, int64_t remaining, int64_t stock,
                     int64_t start_at, int64_t end_at)
{
    (void)data, (void)id, (void)seller, (void)name, (void)description, (void)amount;
    (void)remaining, (void)stock, (void)start_at, (void)end_at;
    return 0;
}

static int no_grant(void *data, h2o_iovec_t customer, h2o_iovec_t seller, h2o_iovec_t coupon,
                    int64_t id)
{
    (void)data, (void)customer, (void)seller, (void)coupon, (void)id;
    return 0;
}

static int no_revoked(void *data, const char *jti, int64_t expires_at)
{
    (void)data, (void)jti, (void)expires_at;
    return 0;
}

static int recover_hook(void *data, sk_journal_t *journal)
{
    return sk_log_applier_recover(journal, ((fixture_t *)data)->log_dir);
}

/* Opens the database, recovering the log directory first, as the store does. */
static void open_journal(fixture_t *f)
{
    sk_journal_hooks_t hooks = {f, no_user, no_coupon, no_grant, no_revoked, NULL, recover_hook};
    f->journal = sk_journal_open(f->db_path, 0, 0, &hooks);
    assert_non_null(f->journal);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/sk-test-applier-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->db_path, sizeof(f->db_path), "%s/seckill.db", f->dir);
    snprintf(f->log_dir, sizeof(f->log_dir), "%s/seckill.db-log", f->dir);
    if (mkdir(f->log_dir, 0700) != 0)
        return -1;
    *state = f;
    return 0;
}

static void empty_dir(const char *dir)
{
    DIR *listing = opendir(dir);
    if (listing == NULL)
        return;
    struct dirent *item;
    char path[512];
    while ((item = readdir(listing)) != NULL) {
        if (item->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, item->d_name);
        unlink(path);
    }
    closedir(listing);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->journal != NULL)
        sk_journal_close(f->journal);
    empty_dir(f->log_dir);
    rmdir(f->log_dir);
    empty_dir(f->dir);
    rmdir(f->dir);
    sk_grant_log__fail_flushes(0);
    free(f);
    return 0;
}

static long long sql_number(fixture_t *f, const char *sql)
{
    return sk_test_sql_number(f->db_path, sql);
}

static size_t segment_count(const char *dir)
{
    sk_grant_log_file_t *files;
    size_t count;
    assert_int_equal(sk_grant_log_list(dir, &files, &count), 0);
    free(files);
    return count;
}

/* ---- entries ---- */

static void append_coupon(sk_grant_log_writer_t *writer, int64_t id, const char *name,
                          int64_t amount)
{
    sk_journal_entry_t entry = sk_test_coupon_entry(id, name, amount);
    assert_int_equal(sk_grant_log_writer_append(writer, &entry), 0);
}

static void append_grant(sk_grant_log_writer_t *writer, int64_t id, const char *customer,
                         int64_t coupon_id, const char *coupon)
{
    sk_journal_entry_t entry = sk_test_grant_entry(id, customer, coupon_id, coupon);
    assert_int_equal(sk_grant_log_writer_append(writer, &entry), 0);
}

/* Grants id first .. first+count-1 of coupon 1, "big", customers c<id>. */
static void append_grants(sk_grant_log_writer_t *writer, int first, int count)
{
    for (int id = first; id != first + count; ++id) {
        char customer[32];
        snprintf(customer, sizeof(customer), "c%d", id);
        append_grant(writer, id, customer, 1, "big");
    }
}

static void wait_applied(sk_log_applier_t *applier)
{
    sk_store_stats_t stats;
    for (int i = 0; i != 10000; ++i) {
        sk_log_applier_stats(applier, &stats);
        if (stats.journal_backlog == 0)
            return;
        usleep(1000);
    }
    fail_msg("backlog %llu after 10 s", (unsigned long long)stats.journal_backlog);
}

static sk_log_applier_t *start(fixture_t *f, uint64_t segment_bytes)
{
    sk_log_applier_options_t options = {.segment_bytes = segment_bytes, .interval_ms = 10};
    sk_log_applier_t *applier = sk_log_applier_start(f->journal, f->log_dir, &options);
    assert_non_null(applier);
    return applier;
}

/* ---- the live applier ---- */

static void test_applies_behind_and_deletes_segments(void **state)
{
    fixture_t *f = *state;
    open_journal(f);
    sk_log_applier_t *applier = start(f, 300); /* a new segment every few grants */
    sk_grant_log_writer_t *one = sk_log_applier_writer_create(applier);
    sk_grant_log_writer_t *two = sk_log_applier_writer_create(applier);
    assert_non_null(one);
    assert_non_null(two);

    append_coupon(one, 1, "big", 1000);
    assert_int_equal(sk_grant_log_writer_flush(one, 0), 0);
    sk_store_stats_t stats;
    sk_log_applier_stats(applier, &stats);
    /* Counted as backlog by the flush itself, before anything could apply it. */
    assert_in_range(stats.journal_backlog, 0, 1);
    for (int turn = 0; turn != 20; ++turn) {
        append_grants(turn % 2 ? one : two, 1 + turn * 5, 5);
        assert_int_equal(sk_grant_log_writer_flush(turn % 2 ? one : two, turn), 0);
    }
    wait_applied(applier);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM grants"), 100);
    assert_int_equal(sql_number(f, "SELECT remaining FROM coupons WHERE id = 1"), 900);
    sk_log_applier_stats(applier, &stats);
    assert_true(stats.journal_ops >= 101);

    /* Applied segments of a writer that moved on are gone: each writer keeps at most its
     * current one (and one finished a moment ago, until the next round). */
    for (int i = 0; i != 1000 && segment_count(f->log_dir) > 2; ++i)
        usleep(1000);
    assert_int_equal(segment_count(f->log_dir), 2);

    /* Released, their last segments go too once applied; then the writers are freed. */
    sk_log_applier_writer_release(applier, one);
    sk_log_applier_writer_release(applier, two);
    for (int i = 0; i != 1000 && segment_count(f->log_dir) != 0; ++i)
        usleep(1000);
    assert_int_equal(segment_count(f->log_dir), 0);
    assert_int_equal(sk_log_applier_stop(applier), 0);
    sk_log_applier_destroy(applier);
}

static void test_stop_applies_everything_written(void **state)
{
    fixture_t *f = *state;
    open_journal(f);
    sk_log_applier_options_t options = {.interval_ms = 60000}; /* no round on its own */
    sk_log_applier_t *applier = sk_log_applier_start(f->journal, f->log_dir, &options);
    assert_non_null(applier);
    sk_grant_log_writer_t *writer = sk_log_applier_writer_create(applier);
    /* Most likely the thread's first round (empty) is over by then, and the next is a
     * minute away. */
    usleep(20000);
    append_coupon(writer, 1, "big", 10);
    append_grants(writer, 1, 3);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    /* While the records wait (unless that first round came after the flush and took
     * them), the lag counts from the last round that left nothing behind, which began
     * before the flush. */
    sk_store_stats_t stats;
    usleep(50000);
    sk_log_applier_stats(applier, &stats);
    if (stats.journal_backlog != 0) {
        assert_int_equal(stats.journal_backlog, 4);
        assert_true(stats.journal_lag_usec >= 50000);
    } else {
        assert_int_equal(stats.journal_lag_usec, 0);
    }
    /* Appended but never flushed: not written, so not applied either. */
    append_grants(writer, 4, 1);
    assert_int_equal(sk_log_applier_stop(applier), 0);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM grants"), 3);
    assert_int_equal(sql_number(f, "SELECT remaining FROM coupons WHERE id = 1"), 7);
    sk_log_applier_stats(applier, &stats);
    assert_int_equal(stats.journal_backlog, 0);
    assert_int_equal(stats.journal_lag_usec, 0);
    /* After the stop no new writer, no prune; a release frees the writer, its open segment
     * stays for the next start's recovery. */
    assert_null(sk_log_applier_writer_create(applier));
    sk_journal_entry_t prune = {.kind = SK_JOURNAL_PRUNE};
    assert_int_equal(sk_log_applier_submit(applier, &prune), SK_EUNAVAILABLE);
    sk_log_applier_writer_release(applier, writer);
    assert_int_equal(segment_count(f->log_dir), 1);
    sk_log_applier_destroy(applier);

    /* That next start replays the segment and counts nothing twice. */
    sk_journal_close(f->journal);
    open_journal(f);
    assert_int_equal(segment_count(f->log_dir), 0);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM grants"), 3);
    assert_int_equal(sql_number(f, "SELECT remaining FROM coupons WHERE id = 1"), 7);
}

static void on_pruned(sk_journal_entry_t *entry)
{
    atomic_store((_Atomic int *)entry->data, entry->status == 0 ? 1 : -1);
}

static void test_prune_goes_through_the_applier(void **state)
{
    fixture_t *f = *state;
    open_journal(f);
    sk_log_applier_t *applier = start(f, 0);
    sk_grant_log_writer_t *writer = sk_log_applier_writer_create(applier);
    sk_journal_entry_t revoke = {.kind = SK_JOURNAL_REVOKE};
    revoke.u.revoke.jti = "old";
    revoke.u.revoke.expires_at = 100;
    assert_int_equal(sk_grant_log_writer_append(writer, &revoke), 0);
    revoke.u.revoke.jti = "new";
    revoke.u.revoke.expires_at = 900;
    assert_int_equal(sk_grant_log_writer_append(writer, &revoke), 0);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    wait_applied(applier);
    _Atomic int done = 0;
    sk_journal_entry_t prune = {.kind = SK_JOURNAL_PRUNE, .on_committed = on_pruned, .data = &done};
    prune.u.prune.cutoff = 500;
    assert_int_equal(sk_log_applier_submit(applier, &prune), 0);
    for (int i = 0; i != 10000 && atomic_load(&done) == 0; ++i)
        usleep(1000);
    assert_int_equal(atomic_load(&done), 1);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM revoked_tokens WHERE jti = 'new'"), 1);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM revoked_tokens"), 1);
    sk_log_applier_writer_release(applier, writer);
    sk_log_applier_destroy(applier);
}

static void test_segment_dropped_before_its_successor_has_data(void **state)
{
    fixture_t *f = *state;
    open_journal(f);
    sk_log_applier_t *applier = start(f, 100); /* past one grant: the next write rotates */
    sk_grant_log_writer_t *writer = sk_log_applier_writer_create(applier);
    append_coupon(writer, 1, "big", 10);
    append_grants(writer, 1, 1);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    wait_applied(applier);
    /* The next write starts segment 3 and fails: segment 1 is finished and applied, segment
     * 3 listed and empty. Rounds go by and drop segment 1... */
    sk_grant_log__fail_flushes(1);
    append_grants(writer, 2, 1);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), SK_EIO);
    for (int i = 0; i != 1000 && segment_count(f->log_dir) != 1; ++i)
        usleep(1000);
    usleep(50000);
    /* ...and segment 3's records, written now, are read from its start. */
    append_grants(writer, 3, 2);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    wait_applied(applier);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM grants"), 3);
    assert_int_equal(sql_number(f, "SELECT remaining FROM coupons WHERE id = 1"), 7);
    sk_log_applier_writer_release(applier, writer);
    sk_log_applier_destroy(applier);
}

/* ---- recovery ---- */

static void copy_file(const char *from, const char *to, size_t keep)
{
    FILE *in = fopen(from, "rb");
    assert_non_null(in);
    char *bytes = malloc(1 << 20);
    size_t len = fread(bytes, 1, 1 << 20, in);
    fclose(in);
    FILE *out = fopen(to, "wb");
    assert_non_null(out);
    size_t n = keep < len ? keep : len;
    assert_int_equal(fwrite(bytes, 1, n, out), n);
    fclose(out);
    free(bytes);
}

static sk_grant_log_writer_t *bare_writer(const char *dir, uint64_t segment_bytes)
{
    sk_grant_log_options_t options = {.segment_bytes = segment_bytes ? segment_bytes : 1 << 30,
                                      .segment_ms = 1000000};
    sk_grant_log_writer_t *writer = sk_grant_log_writer_create(dir, 0, &options);
    assert_non_null(writer);
    return writer;
}

static void test_recover_drops_a_torn_tail(void **state)
{
    fixture_t *f = *state;
    sk_grant_log_writer_t *writer = bare_writer(f->log_dir, 0);
    append_coupon(writer, 1, "big", 10);
    append_grants(writer, 1, 2);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    char path[256];
    snprintf(path, sizeof(path), "%s/0000-00000000000000000001.log", f->log_dir);
    struct stat info;
    assert_int_equal(stat(path, &info), 0);
    off_t whole = info.st_size;
    /* A third grant whose write a crash cut short: its client never got an answer. */
    append_grants(writer, 3, 1);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    sk_grant_log_writer_close(writer);
    sk_grant_log_writer_destroy(writer);
    assert_int_equal(truncate(path, whole + 20), 0);

    open_journal(f);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM grants"), 2);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM grants WHERE customer = 'c3'"), 0);
    assert_int_equal(sql_number(f, "SELECT remaining FROM coupons WHERE id = 1"), 8);
    assert_int_equal(segment_count(f->log_dir), 0);
}

static void test_recover_drops_voided_records(void **state)
{
    fixture_t *f = *state;
    /* Segment 1 holds records 1-4; the writer's write of 3-4 failed and could not be cut
     * off, so it went on in a segment starting at 3 (made here in a second directory by a
     * writer whose first two records are thrown away, then copied in). */
    sk_grant_log_writer_t *writer = bare_writer(f->log_dir, 0);
    append_coupon(writer, 1, "big", 10);
    append_grants(writer, 1, 1);
    append_grants(writer, 2, 2); /* records 3 and 4: grants 2 and 3 */
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    sk_grant_log_writer_close(writer);
    sk_grant_log_writer_destroy(writer);

    char other[128], from[256], to[256];
    snprintf(other, sizeof(other), "%s/other", f->dir);
    assert_int_equal(mkdir(other, 0700), 0);
    writer = bare_writer(other, 1); /* every flush after the first starts a segment */
    append_grants(writer, 900, 2);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    append_grants(writer, 4, 1); /* record 3 in segment 3: grant 4 */
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    sk_grant_log_writer_close(writer);
    sk_grant_log_writer_destroy(writer);
    snprintf(from, sizeof(from), "%s/0000-00000000000000000003.log", other);
    snprintf(to, sizeof(to), "%s/0000-00000000000000000003.log", f->log_dir);
    copy_file(from, to, SIZE_MAX);
    empty_dir(other);
    rmdir(other);

    open_journal(f);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM grants"), 2);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM grants WHERE customer IN ('c1', 'c4')"),
                     2);
    assert_int_equal(sql_number(f, "SELECT remaining FROM coupons WHERE id = 1"), 8);
    assert_int_equal(segment_count(f->log_dir), 0);
}

static void test_recover_replays_without_counting_twice(void **state)
{
    fixture_t *f = *state;
    sk_grant_log_writer_t *writer = bare_writer(f->log_dir, 0);
    append_coupon(writer, 1, "big", 10);
    append_grants(writer, 1, 4);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    sk_grant_log_writer_close(writer);
    sk_grant_log_writer_destroy(writer);
    char path[256], kept[256];
    snprintf(path, sizeof(path), "%s/0000-00000000000000000001.log", f->log_dir);
    snprintf(kept, sizeof(kept), "%s/kept", f->dir);
    copy_file(path, kept, SIZE_MAX);

    open_journal(f);
    assert_int_equal(sql_number(f, "SELECT remaining FROM coupons WHERE id = 1"), 6);
    sk_journal_close(f->journal);
    f->journal = NULL;
    /* A crash after the commit and before the deletion: the same segment once more. */
    copy_file(kept, path, SIZE_MAX);
    open_journal(f);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM grants"), 4);
    assert_int_equal(sql_number(f, "SELECT remaining FROM coupons WHERE id = 1"), 6);
    assert_int_equal(segment_count(f->log_dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_applies_behind_and_deletes_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_applies_everything_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_goes_through_the_applier, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_dropped_before_its_successor_has_data, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_recover_drops_a_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_drops_voided_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_replays_without_counting_twice, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
