/*
 * Tests of src/store/local/grant_log.c on its own, in a fresh temporary directory: records
 * of every kind appended, flushed and read back field by field (a description holding NUL
 * bytes included); nothing written before a flush, one file growing by exactly the turn's
 * records at each flush; a torn tail (the file cut inside a header and inside a payload)
 * stopping the read at the last whole record; a flipped byte in a payload or in a header
 * (the sequence) failing the checksum; records out of sequence (a segment's bytes twice)
 * and records voided by a later segment's first sequence; segments rotated by size and by
 * age, each named by its first sequence, listed in order, finished, popped and deleted; a
 * failed flush leaving nothing in the file and its sequence numbers used again; the
 * listing ignoring other names.
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
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/local/grant_log.h"
#include "util/error.h"

typedef struct fixture {
    char dir[64];
    _Atomic uint64_t written;
    sk_grant_log_options_t options;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/sk-test-grant-log-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->options.segment_bytes = 1 << 30;
    f->options.segment_ms = 1000000;
    f->options.written = &f->written;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    DIR *dir = opendir(f->dir);
    if (dir != NULL) {
        struct dirent *item;
        char path[512];
        while ((item = readdir(dir)) != NULL) {
            if (item->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "%s/%s", f->dir, item->d_name);
            unlink(path);
        }
        closedir(dir);
    }
    rmdir(f->dir);
    sk_grant_log__fail_flushes(0);
    free(f);
    return 0;
}

/* ---- entries ---- */

static sk_journal_entry_t grant(int64_t id, const char *customer, const char *seller,
                                const char *coupon)
{
    sk_journal_entry_t entry = {.kind = SK_JOURNAL_GRANT};
    entry.u.grant.id = id;
    entry.u.grant.coupon_id = 1000 + id;
    entry.u.grant.granted_at = 1700000000 + id;
    entry.u.grant.customer = h2o_iovec_init(customer, strlen(customer));
    entry.u.grant.seller = h2o_iovec_init(seller, strlen(seller));
    entry.u.grant.coupon = h2o_iovec_init(coupon, strlen(coupon));
    return entry;
}

static void append_grants(sk_grant_log_writer_t *writer, int64_t first, int count)
{
    for (int i = 0; i != count; ++i) {
        sk_journal_entry_t entry = grant(first + i, "customer", "seller", "coupon");
        assert_int_equal(sk_grant_log_writer_append(writer, &entry), 0);
    }
}

/* ---- reading back ---- */

typedef struct seen {
    sk_journal_entry_t entries[64];
    char text[64][96];
    size_t count;
} seen_t;

static int remember(void *data, sk_journal_entry_t *entry)
{
    seen_t *seen = data;
    assert_true(seen->count < 64);
    seen->entries[seen->count] = *entry;
    char *text = seen->text[seen->count];
    switch (entry->kind) {
    case SK_JOURNAL_GRANT:
        snprintf(text, 96, "g%lld %.*s", (long long)entry->u.grant.id,
                 (int)entry->u.grant.customer.len, entry->u.grant.customer.base);
        break;
    default:
        snprintf(text, 96, "kind %d", (int)entry->kind);
        break;
    }
    seen->count++;
    return 0;
}

typedef struct file_bytes {
    char *bytes;
    size_t len;
} file_bytes_t;

static file_bytes_t read_file(fixture_t *f, const char *name)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    FILE *file = fopen(path, "rb");
    assert_non_null(file);
    file_bytes_t out = {malloc(1 << 20), 0};
    assert_non_null(out.bytes);
    out.len = fread(out.bytes, 1, 1 << 20, file);
    fclose(file);
    return out;
}

static void write_file(fixture_t *f, const char *name, const char *bytes, size_t len)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    assert_int_equal(fwrite(bytes, 1, len, file), len);
    fclose(file);
}

static off_t file_size(fixture_t *f, const char *name)
{
    char path[160];
    struct stat info;
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    return stat(path, &info) == 0 ? info.st_size : -1;
}

/* Parses a whole file from sequence `first`. Returns the bytes consumed. */
static size_t parse_file(fixture_t *f, const char *name, uint64_t first, uint64_t limit,
                         seen_t *seen, sk_grant_log_stop_t *stop, uint64_t *next)
{
    file_bytes_t file = read_file(f, name);
    memset(seen, 0, sizeof(*seen));
    *next = first;
    size_t consumed = sk_grant_log_parse(file.bytes, file.len, next, limit, remember, seen, stop);
    free(file.bytes);
    return consumed;
}

static sk_grant_log_writer_t *open_writer(fixture_t *f, unsigned id)
{
    sk_grant_log_writer_t *writer = sk_grant_log_writer_create(f->dir, id, &f->options);
    assert_non_null(writer);
    return writer;
}

static void close_writer(sk_grant_log_writer_t *writer)
{
    sk_grant_log_writer_close(writer);
    sk_grant_log_writer_destroy(writer);
}

/* ---- tests ---- */

static void test_append_and_read_back(void **state)
{
    fixture_t *f = *state;
    sk_grant_log_writer_t *writer = open_writer(f, 3);

    sk_journal_entry_t user = {.kind = SK_JOURNAL_USER};
    user.u.user.id = 7;
    user.u.user.created_at = 1700000001;
    user.u.user.username = h2o_iovec_init(H2O_STRLIT("alice"));
    user.u.user.kind = SK_USER_SELLER;
    user.u.user.password_hash = "$argon2id$hash";
    static const char description[] = "two\0nuls\0";
    sk_journal_entry_t coupon = {.kind = SK_JOURNAL_COUPON};
    coupon.u.coupon.id = 9;
    coupon.u.coupon.amount = 9007199254740991;
    coupon.u.coupon.stock = -3;
    coupon.u.coupon.start_at = SK_STORE_NO_TIME;
    coupon.u.coupon.end_at = 1800000000;
    coupon.u.coupon.created_at = 1700000002;
    coupon.u.coupon.seller = h2o_iovec_init(H2O_STRLIT("alice"));
    coupon.u.coupon.name = h2o_iovec_init(H2O_STRLIT("c"));
    coupon.u.coupon.description = h2o_iovec_init(description, sizeof(description) - 1);
    sk_journal_entry_t granted = grant(11, "bob", "alice", "c");
    sk_journal_entry_t revoke = {.kind = SK_JOURNAL_REVOKE};
    revoke.u.revoke.jti = "jti-1";
    revoke.u.revoke.expires_at = 1700003600;
    sk_journal_entry_t prune = {.kind = SK_JOURNAL_PRUNE};

    assert_int_equal(sk_grant_log_writer_append(writer, &user), 0);
    assert_int_equal(sk_grant_log_writer_append(writer, &coupon), 0);
    assert_int_equal(sk_grant_log_writer_append(writer, &granted), 0);
    assert_int_equal(sk_grant_log_writer_append(writer, &revoke), 0);
    /* A prune is the applier's own business: it has no record. */
    assert_int_equal(sk_grant_log_writer_append(writer, &prune), SK_EINVAL);
    assert_int_equal(sk_grant_log_writer_pending(writer), 4);
    /* Nothing touches the disk before the flush: not even the file exists. */
    assert_null(sk_grant_log_writer_first_segment(writer));
    assert_int_equal(file_size(f, "0003-00000000000000000001.log"), -1);
    assert_int_equal(f->written, 0);

    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    assert_int_equal(sk_grant_log_writer_pending(writer), 0);
    assert_int_equal(f->written, 4);
    sk_grant_log_segment_t *segment = sk_grant_log_writer_first_segment(writer);
    assert_non_null(segment);
    assert_string_equal(segment->name, "0003-00000000000000000001.log");
    assert_int_equal(segment->first_sequence, 1);
    assert_int_equal(atomic_load(&segment->finished), 0);
    assert_int_equal(atomic_load(&segment->end), file_size(f, segment->name));

    seen_t seen;
    sk_grant_log_stop_t stop;
    uint64_t next;
    size_t consumed = parse_file(f, segment->name, 1, UINT64_MAX, &seen, &stop, &next);
    assert_int_equal(consumed, file_size(f, segment->name));
    assert_int_equal(stop, SK_GRANT_LOG_END);
    assert_int_equal(next, 5);
    assert_int_equal(seen.count, 4);

    sk_journal_entry_t *e = &seen.entries[0];
    assert_int_equal(e->kind, SK_JOURNAL_USER);
    assert_int_equal(e->u.user.id, 7);
    assert_int_equal(e->u.user.created_at, 1700000001);
    assert_int_equal(e->u.user.kind, SK_USER_SELLER);
    /* (The parsed bytes are freed by now: test_strings_survive_byte_for_byte checks the
     * strings where they point.) */
    assert_int_equal(e->u.user.username.len, 5);

    e = &seen.entries[1];
    assert_int_equal(e->kind, SK_JOURNAL_COUPON);
    assert_int_equal(e->u.coupon.id, 9);
    assert_int_equal(e->u.coupon.amount, 9007199254740991);
    assert_int_equal(e->u.coupon.stock, -3);
    assert_int_equal(e->u.coupon.start_at, SK_STORE_NO_TIME);
    assert_int_equal(e->u.coupon.end_at, 1800000000);
    assert_int_equal(e->u.coupon.created_at, 1700000002);
    assert_int_equal(e->u.coupon.description.len, sizeof(description) - 1);

    e = &seen.entries[2];
    assert_int_equal(e->kind, SK_JOURNAL_GRANT);
    assert_int_equal(e->u.grant.id, 11);
    assert_int_equal(e->u.grant.coupon_id, 1011);
    assert_int_equal(e->u.grant.granted_at, 1700000011);
    assert_string_equal(seen.text[2], "g11 bob");

    e = &seen.entries[3];
    assert_int_equal(e->kind, SK_JOURNAL_REVOKE);
    assert_int_equal(e->u.revoke.expires_at, 1700003600);
    close_writer(writer);
}

/* The strings of a parsed entry point into the parsed bytes: check them there. */
static int check_strings(void *data, sk_journal_entry_t *entry)
{
    int *checked = data;
    switch (entry->kind) {
    case SK_JOURNAL_USER:
        assert_string_equal(entry->u.user.password_hash, "$argon2id$hash");
        assert_memory_equal(entry->u.user.username.base, "alice", 5);
        break;
    case SK_JOURNAL_COUPON:
        assert_int_equal(entry->u.coupon.description.len, 9);
        assert_memory_equal(entry->u.coupon.description.base, "two\0nuls\0", 9);
        assert_memory_equal(entry->u.coupon.seller.base, "alice", 5);
        assert_memory_equal(entry->u.coupon.name.base, "c", 1);
        break;
    case SK_JOURNAL_GRANT:
        assert_memory_equal(entry->u.grant.seller.base, "alice", 5);
        assert_memory_equal(entry->u.grant.coupon.base, "c", 1);
        break;
    case SK_JOURNAL_REVOKE:
        assert_string_equal(entry->u.revoke.jti, "jti-1");
        break;
    default:
        fail();
    }
    ++*checked;
    return 0;
}

static void test_strings_survive_byte_for_byte(void **state)
{
    fixture_t *f = *state;
    test_append_and_read_back(state);
    file_bytes_t file = read_file(f, "0003-00000000000000000001.log");
    int checked = 0;
    uint64_t next = 1;
    sk_grant_log_stop_t stop;
    sk_grant_log_parse(file.bytes, file.len, &next, UINT64_MAX, check_strings, &checked, &stop);
    assert_int_equal(checked, 4);
    assert_int_equal(stop, SK_GRANT_LOG_END);
    free(file.bytes);
}

static void test_each_flush_appends_its_turn(void **state)
{
    fixture_t *f = *state;
    sk_grant_log_writer_t *writer = open_writer(f, 0);
    const char *name = "0000-00000000000000000001.log";
    off_t sizes[4] = {0};
    for (int turn = 0; turn != 3; ++turn) {
        append_grants(writer, turn * 10, turn + 1);
        /* Appending writes nothing yet. */
        assert_int_equal(file_size(f, name), turn == 0 ? -1 : sizes[turn]);
        assert_int_equal(sk_grant_log_writer_flush(writer, turn), 0);
        sizes[turn + 1] = file_size(f, name);
        assert_true(sizes[turn + 1] > sizes[turn]);
    }
    /* An empty turn writes nothing. */
    assert_int_equal(sk_grant_log_writer_flush(writer, 5), 0);
    assert_int_equal(file_size(f, name), sizes[3]);
    assert_int_equal(f->written, 6);

    seen_t seen;
    sk_grant_log_stop_t stop;
    uint64_t next;
    parse_file(f, name, 1, UINT64_MAX, &seen, &stop, &next);
    assert_int_equal(stop, SK_GRANT_LOG_END);
    assert_int_equal(seen.count, 6);
    assert_int_equal(next, 7);
    assert_string_equal(seen.text[0], "g0 customer");
    assert_string_equal(seen.text[1], "g10 customer");
    assert_string_equal(seen.text[5], "g22 customer");
    close_writer(writer);
}

static void test_torn_tail(void **state)
{
    fixture_t *f = *state;
    sk_grant_log_writer_t *writer = open_writer(f, 0);
    const char *name = "0000-00000000000000000001.log";
    append_grants(writer, 1, 2);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    off_t two = file_size(f, name);
    append_grants(writer, 3, 1);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    off_t three = file_size(f, name);
    close_writer(writer);
    file_bytes_t file = read_file(f, name);

    /* Cut inside the third record's payload, then inside its header, then after one byte
     * of it: each time the first two records stand and the rest is incomplete. */
    off_t cuts[3] = {three - 5, two + 7, two + 1};
    for (int i = 0; i != 3; ++i) {
        write_file(f, name, file.bytes, (size_t)cuts[i]);
        seen_t seen;
        sk_grant_log_stop_t stop;
        uint64_t next;
        size_t consumed = parse_file(f, name, 1, UINT64_MAX, &seen, &stop, &next);
        assert_int_equal(consumed, two);
        assert_int_equal(stop, SK_GRANT_LOG_INCOMPLETE);
        assert_int_equal(seen.count, 2);
        assert_int_equal(next, 3);
        assert_string_equal(seen.text[1], "g2 customer");
    }
    /* Cut exactly between records: a clean end. */
    write_file(f, name, file.bytes, (size_t)two);
    seen_t seen;
    sk_grant_log_stop_t stop;
    uint64_t next;
    assert_int_equal(parse_file(f, name, 1, UINT64_MAX, &seen, &stop, &next), two);
    assert_int_equal(stop, SK_GRANT_LOG_END);
    free(file.bytes);
}

static void test_checksum_mismatch(void **state)
{
    fixture_t *f = *state;
    sk_grant_log_writer_t *writer = open_writer(f, 0);
    const char *name = "0000-00000000000000000001.log";
    append_grants(writer, 1, 1);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    off_t one = file_size(f, name);
    append_grants(writer, 2, 2);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    close_writer(writer);
    file_bytes_t file = read_file(f, name);

    /* A byte of the second record's customer name, then a bit of its sequence number. */
    size_t flips[2] = {(size_t)one + SK_GRANT_LOG_HEADER_SIZE + 1 + 24 + 2, (size_t)one + 9};
    for (int i = 0; i != 2; ++i) {
        file.bytes[flips[i]] ^= 0x01;
        write_file(f, name, file.bytes, file.len);
        file.bytes[flips[i]] ^= 0x01;
        seen_t seen;
        sk_grant_log_stop_t stop;
        uint64_t next;
        size_t consumed = parse_file(f, name, 1, UINT64_MAX, &seen, &stop, &next);
        assert_int_equal(consumed, one);
        assert_int_equal(stop, SK_GRANT_LOG_CORRUPT);
        assert_int_equal(seen.count, 1);
        assert_int_equal(next, 2);
    }
    /* A length past any record is corruption too, not a record still being written. */
    uint32_t huge = 1u << 30;
    memcpy(file.bytes + one + 4, &huge, 4);
    write_file(f, name, file.bytes, file.len);
    seen_t seen;
    sk_grant_log_stop_t stop;
    uint64_t next;
    assert_int_equal(parse_file(f, name, 1, UINT64_MAX, &seen, &stop, &next), one);
    assert_int_equal(stop, SK_GRANT_LOG_CORRUPT);
    free(file.bytes);
}

static void test_sequence_and_limit(void **state)
{
    fixture_t *f = *state;
    sk_grant_log_writer_t *writer = open_writer(f, 0);
    const char *name = "0000-00000000000000000001.log";
    append_grants(writer, 1, 3);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    close_writer(writer);
    file_bytes_t file = read_file(f, name);

    seen_t seen;
    sk_grant_log_stop_t stop;
    uint64_t next;
    /* Expecting another first sequence: nothing is taken. */
    assert_int_equal(parse_file(f, name, 2, UINT64_MAX, &seen, &stop, &next), 0);
    assert_int_equal(stop, SK_GRANT_LOG_SEQUENCE);
    assert_int_equal(seen.count, 0);

    /* The same valid records twice in a row: the second copy is out of sequence. */
    char *twice = malloc(2 * file.len);
    memcpy(twice, file.bytes, file.len);
    memcpy(twice + file.len, file.bytes, file.len);
    write_file(f, name, twice, 2 * file.len);
    assert_int_equal(parse_file(f, name, 1, UINT64_MAX, &seen, &stop, &next), file.len);
    assert_int_equal(stop, SK_GRANT_LOG_SEQUENCE);
    assert_int_equal(seen.count, 3);
    free(twice);

    /* A later segment starting at 3 voids record 3 here. */
    write_file(f, name, file.bytes, file.len);
    parse_file(f, name, 1, 3, &seen, &stop, &next);
    assert_int_equal(stop, SK_GRANT_LOG_LIMIT);
    assert_int_equal(seen.count, 2);
    assert_int_equal(next, 3);
    free(file.bytes);
}

static void test_rotation_by_size_and_age(void **state)
{
    fixture_t *f = *state;
    f->options.segment_bytes = 200; /* past two grants of ~60 bytes */
    f->options.segment_ms = 1000;
    sk_grant_log_writer_t *writer = open_writer(f, 12);

    append_grants(writer, 1, 2);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    append_grants(writer, 3, 2); /* 4 records in segment 1 now, past 200 bytes */
    assert_int_equal(sk_grant_log_writer_flush(writer, 10), 0);
    append_grants(writer, 5, 1); /* by size: a new segment starting at 5 */
    assert_int_equal(sk_grant_log_writer_flush(writer, 20), 0);
    append_grants(writer, 6, 1); /* 999 ms after it started: same segment */
    assert_int_equal(sk_grant_log_writer_flush(writer, 1019), 0);
    append_grants(writer, 7, 1); /* 1000 ms: by age, a new one starting at 7 */
    assert_int_equal(sk_grant_log_writer_flush(writer, 1020), 0);

    sk_grant_log_file_t *files;
    size_t count;
    assert_int_equal(sk_grant_log_list(f->dir, &files, &count), 0);
    assert_int_equal(count, 3);
    assert_string_equal(files[0].name, "0012-00000000000000000001.log");
    assert_string_equal(files[1].name, "0012-00000000000000000005.log");
    assert_string_equal(files[2].name, "0012-00000000000000000007.log");
    assert_int_equal(files[1].writer_id, 12);
    assert_int_equal(files[1].first_sequence, 5);

    /* Each segment's records continue the sequence where the last one ended. */
    uint64_t expected[3][2] = {{1, 5}, {5, 7}, {7, 8}};
    for (size_t i = 0; i != count; ++i) {
        seen_t seen;
        sk_grant_log_stop_t stop;
        uint64_t next;
        parse_file(f, files[i].name, files[i].first_sequence, UINT64_MAX, &seen, &stop, &next);
        assert_int_equal(stop, SK_GRANT_LOG_END);
        assert_int_equal(files[i].first_sequence, expected[i][0]);
        assert_int_equal(next, expected[i][1]);
    }
    free(files);

    /* The reader's side: the closed ones are finished with their final end, the last one
     * is open until the writer closes. Pop and delete the finished ones. */
    for (int i = 0; i != 2; ++i) {
        sk_grant_log_segment_t *first = sk_grant_log_writer_first_segment(writer);
        assert_int_equal(atomic_load(&first->finished), 1);
        assert_int_equal(atomic_load(&first->end), file_size(f, first->name));
        char path[160];
        snprintf(path, sizeof(path), "%s/%s", f->dir, first->name);
        assert_int_equal(unlink(path), 0);
        sk_grant_log_writer_pop_segment(writer);
    }
    sk_grant_log_segment_t *last = sk_grant_log_writer_first_segment(writer);
    assert_string_equal(last->name, "0012-00000000000000000007.log");
    assert_int_equal(atomic_load(&last->finished), 0);
    assert_null(last->next);
    assert_int_equal(sk_grant_log_writer_closed(writer), 0);
    sk_grant_log_writer_close(writer);
    assert_int_equal(sk_grant_log_writer_closed(writer), 1);
    assert_int_equal(atomic_load(&last->finished), 1);
    assert_int_equal(sk_grant_log_list(f->dir, &files, &count), 0);
    assert_int_equal(count, 1);
    free(files);
    sk_grant_log_writer_destroy(writer);
}

static void test_failed_flush_leaves_nothing(void **state)
{
    fixture_t *f = *state;
    sk_grant_log_writer_t *writer = open_writer(f, 0);
    const char *name = "0000-00000000000000000001.log";
    append_grants(writer, 1, 2);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    off_t before = file_size(f, name);

    /* Half the turn reaches the file, then the disk is "full": the half is cut off. */
    sk_grant_log__fail_flushes(1);
    append_grants(writer, 100, 4);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), SK_EIO);
    assert_int_equal(file_size(f, name), before);
    assert_int_equal(sk_grant_log_writer_pending(writer), 0);
    assert_int_equal(f->written, 2);
    sk_grant_log_segment_t *segment = sk_grant_log_writer_first_segment(writer);
    assert_int_equal(atomic_load(&segment->end), before);

    /* The next turn takes the failed records' sequence numbers. */
    append_grants(writer, 200, 1);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    assert_int_equal(f->written, 3);
    close_writer(writer);

    seen_t seen;
    sk_grant_log_stop_t stop;
    uint64_t next;
    parse_file(f, name, 1, UINT64_MAX, &seen, &stop, &next);
    assert_int_equal(stop, SK_GRANT_LOG_END);
    assert_int_equal(seen.count, 3);
    assert_int_equal(next, 4);
    assert_string_equal(seen.text[2], "g200 customer");
}

static void test_list_ignores_other_names(void **state)
{
    fixture_t *f = *state;
    write_file(f, "0001-00000000000000000009.log", "", 0);
    write_file(f, "0000-00000000000000000010.log", "", 0);
    write_file(f, "0000-00000000000000000002.log", "", 0);
    write_file(f, "0000-0000000000000000000x.log", "", 0);
    write_file(f, "0000-00000000000000000002.log.tmp", "", 0);
    write_file(f, "notes.txt", "", 0);
    sk_grant_log_file_t *files;
    size_t count;
    assert_int_equal(sk_grant_log_list(f->dir, &files, &count), 0);
    assert_int_equal(count, 3);
    assert_string_equal(files[0].name, "0000-00000000000000000002.log");
    assert_string_equal(files[1].name, "0000-00000000000000000010.log");
    assert_string_equal(files[2].name, "0001-00000000000000000009.log");
    free(files);
    char missing[96];
    snprintf(missing, sizeof(missing), "%s/nope", f->dir);
    assert_int_equal(sk_grant_log_list(missing, &files, &count), SK_EIO);
}

static void test_sync_commits_writes_too(void **state)
{
    fixture_t *f = *state;
    f->options.sync_commits = 1;
    sk_grant_log_writer_t *writer = open_writer(f, 0);
    append_grants(writer, 1, 3);
    assert_int_equal(sk_grant_log_writer_flush(writer, 0), 0);
    close_writer(writer);
    seen_t seen;
    sk_grant_log_stop_t stop;
    uint64_t next;
    parse_file(f, "0000-00000000000000000001.log", 1, UINT64_MAX, &seen, &stop, &next);
    assert_int_equal(seen.count, 3);
    assert_int_equal(stop, SK_GRANT_LOG_END);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_and_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strings_survive_byte_for_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_flush_appends_its_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checksum_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sequence_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_by_size_and_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_flush_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_ignores_other_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_commits_writes_too, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
