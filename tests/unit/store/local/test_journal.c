/*
 * Tests of src/store/local/journal.c on its own, without the local store above it, on a
 * fresh SQLite file in a temporary directory: the schema and the deployment id (made once,
 * kept across opens), entries of every kind committed and handed back by the load hooks
 * in id order (a description's NUL kept), each entry's on_committed and the after_batch
 * hook, a constraint violation failing its own entry only, a statement that rolled the
 * transaction back failing its whole batch, revocations pruned at open, fix_remaining, and
 * a submit after close refused; sk_journal_apply (the grant log's applier) idempotent (a
 * batch twice changes nothing), independent of order (a coupon after its grants), all or
 * nothing (one refused row rolls back the batch), and the before_load hook applying before
 * the prune and the load. The file is inspected through a second SQLite connection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdatomic.h>
#include <unistd.h>

#include "journal_entries.h"
#include "store/local/journal.h"
#include "util/error.h"

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture_t;

/* What the load hooks saw, as one line per row: "u 1 alice customer hash". */
typedef struct loaded {
    char rows[64][160];
    size_t count;
    _Atomic int batches;
} loaded_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/sk-test-journal-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/seckill.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    static const char *const names[] = {"seckill.db", "seckill.db-wal", "seckill.db-shm"};
    char path[160];
    for (size_t i = 0; i != sizeof(names) / sizeof(names[0]); ++i) {
        snprintf(path, sizeof(path), "%s/%s", f->dir, names[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void add_row(loaded_t *loaded, const char *row)
{
    assert_true(loaded->count < 64);
    snprintf(loaded->rows[loaded->count++], sizeof(loaded->rows[0]), "%s", row);
}

static int on_user(void *data, int64_t id, h2o_iovec_t username, sk_user_kind_t kind,
                   const char *password_hash)
{
    char row[160];
    snprintf(row, sizeof(row), "u %lld %.*s %s %s", (long long)id, (int)username.len, username.base,
             kind == SK_USER_SELLER ? "seller" : "customer", password_hash);
    add_row(data, row);
    return 0;
}

/* A description's bytes, a NUL shown as "\\0" (the load must not stop at one). */
static const char *escaped(h2o_iovec_t text, char *out, size_t size)
{
    size_t used = 0;
    for (size_t i = 0; i != text.len && used + 3 < size; ++i) {
        if (text.base[i] == '\0') {
            out[used++] = '\\';
            out[used++] = '0';
        } else {
            out[used++] = text.base[i];
        }
    }
    out[used] = '\0';
    return out;
}

static int on_coupon(void *data, int64_t id, h2o_iovec_t seller, h2o_iovec_t name,
                     h2o_iovec_t description, int64_t amount, int64_t remaining, int64_t stock,
                     int64_t start_at, int64_t end_at)
{
    char row[160], text[64];
    snprintf(row, sizeof(row), "c %lld %.*s/%.*s %s %lld %lld %lld %s %lld", (long long)id,
             (int)seller.len, seller.base, (int)name.len, name.base,
             escaped(description, text, sizeof(text)), (long long)amount, (long long)remaining,
             (long long)stock, start_at == SK_STORE_NO_TIME ? "-" : "set", (long long)end_at);
    add_row(data, row);
    return 0;
}

static int on_grant(void *data, h2o_iovec_t customer, h2o_iovec_t seller, h2o_iovec_t coupon,
                    int64_t id)
{
    char row[160];
    snprintf(row, sizeof(row), "g %lld %.*s %.*s/%.*s", (long long)id, (int)customer.len,
             customer.base, (int)seller.len, seller.base, (int)coupon.len, coupon.base);
    add_row(data, row);
    return 0;
}

static int on_revoked(void *data, const char *jti, int64_t expires_at)
{
    char row[160];
    snprintf(row, sizeof(row), "r %s %lld", jti, (long long)expires_at);
    add_row(data, row);
    return 0;
}

static void after_batch(void *data)
{
    loaded_t *loaded = data;
    atomic_fetch_add(&loaded->batches, 1);
}

static sk_journal_t *open_journal(fixture_t *f, loaded_t *loaded, int64_t revocation_cutoff)
{
    memset(loaded, 0, sizeof(*loaded));
    sk_journal_hooks_t hooks = {loaded,     on_user,     on_coupon, on_grant,
                                on_revoked, after_batch, NULL};
    sk_journal_t *journal = sk_journal_open(f->path, 0, revocation_cutoff, &hooks);
    assert_non_null(journal);
    return journal;
}

static long long sql_number(fixture_t *f, const char *sql)
{
    return sk_test_sql_number(f->path, sql);
}

static void count_committed(sk_journal_entry_t *entry)
{
    int *statuses = entry->data;
    statuses[entry->status == 0 ? 0 : 1]++;
}

static sk_journal_entry_t user_entry(int64_t id, const char *name, sk_user_kind_t kind,
                                     int *statuses)
{
    sk_journal_entry_t entry = {
        .kind = SK_JOURNAL_USER, .status = 1, .on_committed = count_committed, .data = statuses};
    entry.u.user.id = id;
    entry.u.user.created_at = 1700000000;
    entry.u.user.username = h2o_iovec_init(name, strlen(name));
    entry.u.user.kind = kind;
    entry.u.user.password_hash = "hash";
    return entry;
}

static void test_schema_and_deployment_id(void **state)
{
    fixture_t *f = *state;
    loaded_t loaded;
    sk_journal_t *journal = open_journal(f, &loaded, 0);
    assert_int_equal(loaded.count, 0);
    char first_id[SK_STORE_DEPLOYMENT_ID_LEN + 1];
    snprintf(first_id, sizeof(first_id), "%s", sk_journal_deployment_id(journal));
    assert_true(sk_store_deployment_id_is_valid(first_id));
    sk_journal_close(journal);

    const char *tables[] = {"users", "coupons", "grants", "revoked_tokens", "settings"};
    for (size_t i = 0; i != sizeof(tables) / sizeof(tables[0]); ++i) {
        char sql[128];
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM sqlite_master WHERE name = '%s'",
                 tables[i]);
        assert_int_equal(sql_number(f, sql), 1);
    }
    /* API.md's kind values: a seller is stored as 'saler' */
    assert_int_equal(sql_number(f, "SELECT count(*) FROM sqlite_master WHERE name = 'users' "
                                   "AND sql LIKE '%''saler''%'"),
                     1);
    /* a second open keeps the id (tokens stay valid across restarts) */
    journal = open_journal(f, &loaded, 0);
    assert_string_equal(sk_journal_deployment_id(journal), first_id);
    sk_journal_close(journal);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM settings"), 1);
}

static void test_batch_committed_and_loaded(void **state)
{
    fixture_t *f = *state;
    loaded_t loaded;
    sk_journal_t *journal = open_journal(f, &loaded, 0);
    int statuses[2] = {0, 0};
    sk_journal_entry_t entries[6];
    entries[0] = user_entry(1, "shop", SK_USER_SELLER, statuses);
    entries[1] = user_entry(2, "alice", SK_USER_CUSTOMER, statuses);
    entries[2] = (sk_journal_entry_t){
        .kind = SK_JOURNAL_COUPON, .on_committed = count_committed, .data = statuses};
    entries[2].u.coupon.id = 1;
    entries[2].u.coupon.amount = 5;
    entries[2].u.coupon.stock = 10;
    entries[2].u.coupon.start_at = SK_STORE_NO_TIME;
    entries[2].u.coupon.end_at = 1800000000;
    entries[2].u.coupon.created_at = 1700000000;
    entries[2].u.coupon.seller = h2o_iovec_init(H2O_STRLIT("shop"));
    entries[2].u.coupon.name = h2o_iovec_init(H2O_STRLIT("c1"));
    entries[2].u.coupon.description = h2o_iovec_init(H2O_STRLIT("ten\0off"));
    entries[3] = (sk_journal_entry_t){
        .kind = SK_JOURNAL_GRANT, .on_committed = count_committed, .data = statuses};
    entries[3].u.grant.id = 1;
    entries[3].u.grant.coupon_id = 1;
    entries[3].u.grant.granted_at = 1700000001;
    entries[3].u.grant.customer = h2o_iovec_init(H2O_STRLIT("alice"));
    entries[3].u.grant.seller = h2o_iovec_init(H2O_STRLIT("shop"));
    entries[3].u.grant.coupon = h2o_iovec_init(H2O_STRLIT("c1"));
    entries[4] = (sk_journal_entry_t){
        .kind = SK_JOURNAL_REVOKE, .on_committed = count_committed, .data = statuses};
    entries[4].u.revoke.jti = "jti-live";
    entries[4].u.revoke.expires_at = 2000000000;
    entries[5] = entries[4];
    entries[5].u.revoke.jti = "jti-old";
    entries[5].u.revoke.expires_at = 1000;
    for (size_t i = 0; i != 6; ++i)
        assert_int_equal(sk_journal_submit(journal, &entries[i]), 0);
    sk_journal_close(journal); /* commits everything queued first */
    assert_int_equal(statuses[0], 6);
    assert_int_equal(statuses[1], 0);
    assert_true(atomic_load(&loaded.batches) >= 1);

    /* the grant took one from the coupon's remaining, in the same transaction */
    assert_int_equal(sql_number(f, "SELECT remaining FROM coupons WHERE id = 1"), 4);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM users WHERE kind = 'saler'"), 1);

    /* Reopened with a cutoff between the two revocations: the old one is pruned. */
    journal = open_journal(f, &loaded, 5000);
    assert_int_equal(loaded.count, 5);
    assert_string_equal(loaded.rows[0], "u 1 shop seller hash");
    assert_string_equal(loaded.rows[1], "u 2 alice customer hash");
    /* byte for byte: the NUL inside the description is kept */
    assert_string_equal(loaded.rows[2], "c 1 shop/c1 ten\\0off 5 4 10 - 1800000000");
    assert_string_equal(loaded.rows[3], "g 1 alice shop/c1");
    assert_string_equal(loaded.rows[4], "r jti-live 2000000000");
    sk_journal_close(journal);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM revoked_tokens"), 1);
}

static void test_failed_statement_fails_its_entry_only(void **state)
{
    fixture_t *f = *state;
    loaded_t loaded;
    sk_journal_t *journal = open_journal(f, &loaded, 0);
    int ok[2] = {0, 0}, duplicate[2] = {0, 0};
    sk_journal_entry_t first = user_entry(1, "bob", SK_USER_CUSTOMER, ok);
    sk_journal_entry_t again = user_entry(2, "bob", SK_USER_CUSTOMER, duplicate);
    sk_journal_entry_t other = user_entry(3, "carol", SK_USER_CUSTOMER, ok);
    assert_int_equal(sk_journal_submit(journal, &first), 0);
    assert_int_equal(sk_journal_submit(journal, &again), 0);
    assert_int_equal(sk_journal_submit(journal, &other), 0);
    sk_journal_close(journal);
    assert_int_equal(ok[0], 2);
    assert_int_equal(ok[1], 0);
    assert_int_equal(duplicate[0], 0);
    assert_int_equal(duplicate[1], 1);
    assert_int_equal(again.status, SK_EIO);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM users"), 2);
    assert_int_equal(sql_number(f, "SELECT id FROM users WHERE username = 'carol'"), 3);
}

/* Entries that a blocker's on_committed submits, on the journal thread: they are all queued
 * before the thread takes its next batch, so they are written in one transaction. */
typedef struct follow_up {
    sk_journal_t *journal;
    sk_journal_entry_t *entries;
    size_t count, submitted;
    int blocker_status;
    int statuses[2];
} follow_up_t;

static void submit_follow_up(sk_journal_entry_t *entry)
{
    /* On the journal thread, where a cmocka assert cannot fail the test: counted instead. */
    follow_up_t *follow = entry->data;
    follow->blocker_status = entry->status;
    for (size_t i = 0; i != follow->count; ++i)
        follow->submitted += sk_journal_submit(follow->journal, &follow->entries[i]) == 0;
}

static sk_journal_entry_t tracked_grant_entry(int64_t id, const char *customer, int *statuses)
{
    sk_journal_entry_t entry = {
        .kind = SK_JOURNAL_GRANT, .status = 1, .on_committed = count_committed, .data = statuses};
    entry.u.grant.id = id;
    entry.u.grant.coupon_id = 1;
    entry.u.grant.granted_at = 1700000001;
    entry.u.grant.customer = h2o_iovec_init(customer, strlen(customer));
    entry.u.grant.seller = h2o_iovec_init(H2O_STRLIT("shop"));
    entry.u.grant.coupon = h2o_iovec_init(H2O_STRLIT("c1"));
    return entry;
}

/* A statement after which SQLite has rolled the transaction back (here a trigger's
 * RAISE(ROLLBACK); disk full or an I/O error may do the same) stops its batch: nothing of
 * the batch is written, neither the entries before it (rolled back) nor those after it,
 * which would otherwise commit one by one in autocommit while reported failed. */
static void test_rolled_back_statement_stops_the_batch(void **state)
{
    fixture_t *f = *state;
    loaded_t loaded;
    sk_journal_t *journal = open_journal(f, &loaded, 0);
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TRIGGER poison BEFORE INSERT ON grants "
                                  "WHEN NEW.customer = 'poison' "
                                  "BEGIN SELECT RAISE(ROLLBACK, 'injected failure'); END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    follow_up_t follow = {.journal = journal};
    sk_journal_entry_t batch[4];
    batch[0] = tracked_grant_entry(1, "alice", follow.statuses);
    batch[1] = tracked_grant_entry(2, "poison", follow.statuses);
    batch[2] = tracked_grant_entry(3, "bob", follow.statuses);
    batch[3] = user_entry(9, "carol", SK_USER_CUSTOMER, follow.statuses);
    follow.entries = batch;
    follow.count = 4;
    sk_journal_entry_t coupon = {
        .kind = SK_JOURNAL_COUPON, .on_committed = submit_follow_up, .data = &follow};
    coupon.u.coupon.id = 1;
    coupon.u.coupon.amount = 5;
    coupon.u.coupon.stock = 1;
    coupon.u.coupon.start_at = coupon.u.coupon.end_at = SK_STORE_NO_TIME;
    coupon.u.coupon.seller = h2o_iovec_init(H2O_STRLIT("shop"));
    coupon.u.coupon.name = h2o_iovec_init(H2O_STRLIT("c1"));
    coupon.u.coupon.description = h2o_iovec_init(H2O_STRLIT("d"));
    assert_int_equal(sk_journal_submit(journal, &coupon), 0);
    /* A close refuses submits at once: wait for both batches first (at most ~10 s). */
    for (int i = 0; atomic_load(&loaded.batches) < 2 && i < 1000; ++i)
        usleep(10000);
    sk_journal_close(journal);

    assert_int_equal(atomic_load(&loaded.batches), 2);
    assert_int_equal(follow.blocker_status, 0);
    assert_int_equal(follow.submitted, 4);
    assert_int_equal(follow.statuses[0], 0);
    assert_int_equal(follow.statuses[1], 4);
    for (size_t i = 0; i != 4; ++i)
        assert_int_equal(batch[i].status, SK_EIO);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM grants"), 0);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM users"), 0);
    assert_int_equal(sql_number(f, "SELECT remaining FROM coupons WHERE id = 1"), 5);
}

static void test_fix_remaining(void **state)
{
    fixture_t *f = *state;
    loaded_t loaded;
    sk_journal_t *journal = open_journal(f, &loaded, 0);
    int statuses[2] = {0, 0};
    sk_journal_entry_t coupon = {
        .kind = SK_JOURNAL_COUPON, .on_committed = count_committed, .data = statuses};
    coupon.u.coupon.id = 7;
    coupon.u.coupon.amount = 9;
    coupon.u.coupon.stock = 1;
    coupon.u.coupon.start_at = coupon.u.coupon.end_at = SK_STORE_NO_TIME;
    coupon.u.coupon.seller = h2o_iovec_init(H2O_STRLIT("s"));
    coupon.u.coupon.name = h2o_iovec_init(H2O_STRLIT("n"));
    coupon.u.coupon.description = h2o_iovec_init(H2O_STRLIT(""));
    assert_int_equal(sk_journal_submit(journal, &coupon), 0);
    sk_journal_close(journal);
    assert_int_equal(statuses[0], 1);

    journal = open_journal(f, &loaded, 0);
    assert_int_equal(sk_journal_fix_remaining(journal, 7, 3), 0);
    sk_journal_close(journal);
    assert_int_equal(sql_number(f, "SELECT remaining FROM coupons WHERE id = 7"), 3);
}

/* Links entries[0..count) in order and applies them. */
static int apply(sk_journal_t *journal, sk_journal_entry_t *entries, size_t count)
{
    for (size_t i = 0; i != count; ++i)
        entries[i].next = i + 1 != count ? &entries[i + 1] : NULL;
    return sk_journal_apply(journal, entries, count);
}

static void test_apply_is_idempotent(void **state)
{
    fixture_t *f = *state;
    loaded_t loaded;
    sk_journal_t *journal = open_journal(f, &loaded, 0);
    int unused[2] = {0, 0};
    sk_journal_entry_t batch[5] = {
        user_entry(1, "shop", SK_USER_SELLER, unused), sk_test_coupon_entry(1, "c1", 5),
        sk_test_grant_entry(1, "alice", 1, "c1"), sk_test_grant_entry(2, "bob", 1, "c1"),
        (sk_journal_entry_t){.kind = SK_JOURNAL_REVOKE}};
    batch[4].u.revoke.jti = "jti";
    batch[4].u.revoke.expires_at = 2000000000;
    assert_int_equal(apply(journal, batch, 5), 0);
    assert_int_equal(sql_number(f, "SELECT remaining FROM coupons WHERE id = 1"), 3);
    /* A replay, as after a crash between the commit and the deletion of the logs. */
    assert_int_equal(apply(journal, batch, 5), 0);
    assert_int_equal(apply(journal, batch + 2, 1), 0);
    assert_int_equal(sql_number(f, "SELECT remaining FROM coupons WHERE id = 1"), 3);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM grants"), 2);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM users"), 1);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM coupons"), 1);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM revoked_tokens"), 1);
    /* A new grant next to replayed ones is still taken once. */
    sk_journal_entry_t more[2] = {sk_test_grant_entry(2, "bob", 1, "c1"),
                                  sk_test_grant_entry(3, "carol", 1, "c1")};
    assert_int_equal(apply(journal, more, 2), 0);
    assert_int_equal(sql_number(f, "SELECT remaining FROM coupons WHERE id = 1"), 2);
    sk_store_stats_t stats;
    sk_journal_stats(journal, &stats);
    assert_int_equal(stats.journal_batches, 4);
    assert_int_equal(stats.journal_ops, 13);
    assert_int_equal(stats.journal_failures, 0);
    sk_journal_close(journal);
}

static void test_apply_coupon_after_its_grants(void **state)
{
    fixture_t *f = *state;
    loaded_t loaded;
    sk_journal_t *journal = open_journal(f, &loaded, 0);
    /* Two workers' logs: one grant applied before the coupon's row exists... */
    sk_journal_entry_t early[1] = {sk_test_grant_entry(1, "alice", 4, "late")};
    assert_int_equal(apply(journal, early, 1), 0);
    /* ...then the coupon, and a grant after it in the same batch. */
    sk_journal_entry_t rest[2] = {sk_test_coupon_entry(4, "late", 10),
                                  sk_test_grant_entry(2, "bob", 4, "late")};
    assert_int_equal(apply(journal, rest, 2), 0);
    assert_int_equal(sql_number(f, "SELECT remaining FROM coupons WHERE id = 4"), 8);
    /* And replaying both changes nothing. */
    assert_int_equal(apply(journal, rest, 2), 0);
    assert_int_equal(apply(journal, early, 1), 0);
    assert_int_equal(sql_number(f, "SELECT remaining FROM coupons WHERE id = 4"), 8);
    sk_journal_close(journal);
}

static void test_apply_fails_as_a_whole(void **state)
{
    fixture_t *f = *state;
    loaded_t loaded;
    sk_journal_t *journal = open_journal(f, &loaded, 0);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TRIGGER refuse BEFORE INSERT ON grants "
                                  "WHEN NEW.customer = 'bad' BEGIN SELECT RAISE(ABORT, 'no'); END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    int unused[2] = {0, 0};
    sk_journal_entry_t batch[3] = {user_entry(1, "shop", SK_USER_SELLER, unused),
                                   sk_test_coupon_entry(1, "c1", 5),
                                   sk_test_grant_entry(1, "bad", 1, "c1")};
    assert_int_equal(apply(journal, batch, 3), SK_EIO);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM users"), 0);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM coupons"), 0);
    sk_store_stats_t stats;
    sk_journal_stats(journal, &stats);
    assert_int_equal(stats.journal_failures, 1);
    /* The connection is usable again: the same rows without the refused one commit. */
    assert_int_equal(apply(journal, batch, 2), 0);
    assert_int_equal(sql_number(f, "SELECT remaining FROM coupons WHERE id = 1"), 5);
    sk_journal_close(journal);
}

typedef struct before_load_state {
    loaded_t loaded;
    int calls;
} before_load_state_t;

static int apply_before_load(void *data, sk_journal_t *journal)
{
    before_load_state_t *state = data;
    ++state->calls;
    /* Nothing is loaded yet. */
    assert_int_equal(state->loaded.count, 0);
    int unused[2] = {0, 0};
    sk_journal_entry_t batch[3] = {user_entry(5, "late", SK_USER_CUSTOMER, unused),
                                   {.kind = SK_JOURNAL_REVOKE},
                                   {.kind = SK_JOURNAL_REVOKE}};
    batch[1].u.revoke.jti = "expired";
    batch[1].u.revoke.expires_at = 1000;
    batch[2].u.revoke.jti = "live";
    batch[2].u.revoke.expires_at = 9000;
    return apply(journal, batch, 3);
}

static void test_before_load_applies_first(void **state)
{
    fixture_t *f = *state;
    before_load_state_t data;
    memset(&data, 0, sizeof(data));
    sk_journal_hooks_t hooks = {&data.loaded, on_user,     on_coupon, on_grant,
                                on_revoked,   after_batch, NULL};
    /* The hook gets the loaded rows' data pointer: give it one that holds both. */
    hooks.data = &data;
    _Static_assert(offsetof(before_load_state_t, loaded) == 0, "loaded first");
    hooks.before_load = apply_before_load;
    sk_journal_t *journal = sk_journal_open(f->path, 0, 5000, &hooks);
    assert_non_null(journal);
    assert_int_equal(data.calls, 1);
    /* What it applied was loaded, and the expired revocation pruned like any other. */
    assert_int_equal(data.loaded.count, 2);
    assert_string_equal(data.loaded.rows[0], "u 5 late customer hash");
    assert_string_equal(data.loaded.rows[1], "r live 9000");
    sk_journal_close(journal);
    assert_int_equal(sql_number(f, "SELECT count(*) FROM revoked_tokens"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema_and_deployment_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_committed_and_loaded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_statement_fails_its_entry_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rolled_back_statement_stops_the_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fix_remaining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_coupon_after_its_grants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_fails_as_a_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_before_load_applies_first, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
