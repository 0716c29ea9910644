/*
 * The SQLite journal of the local store (see journal.h).
 *
 * One connection, used by the opening thread during the load and by the journal thread
 * afterwards, never by two threads at once. Every statement is prepared once; nothing is
 * built from strings. The queue is a mutex-protected singly linked list: a worker holds
 * the mutex only to link one entry, and the journal thread takes the whole list at once.
 */
#include "store/local/journal.h"

#include <assert.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/counters.h"
#include "util/error.h"
#include "util/log.h"

enum {
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_INSERT_USER,
    STMT_INSERT_COUPON,
    STMT_INSERT_GRANT,
    STMT_TAKE_ONE,
    STMT_INSERT_REVOKED,
    STMT_SET_REMAINING,
    STMT_PRUNE_REVOKED,
    STMT_APPLY_USER,
    STMT_APPLY_COUPON,
    STMT_APPLY_GRANT,
    STMT_COUNT
};

static const char *const statement_sql[STMT_COUNT] = {
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_INSERT_USER] = "INSERT INTO users (id, username, kind, password_hash, created_at) "
                         "VALUES (?1, ?2, ?3, ?4, ?5)",
    [STMT_INSERT_COUPON] = "INSERT INTO coupons (id, seller, name, amount, remaining, stock, "
                           "description, start_at, end_at, created_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9)",
    [STMT_INSERT_GRANT] = "INSERT INTO grants (id, customer, seller, coupon, granted_at) "
                          "VALUES (?5, ?1, ?2, ?3, ?4)",
    [STMT_TAKE_ONE] = "UPDATE coupons SET remaining = remaining - ?2 WHERE id = ?1",
    [STMT_INSERT_REVOKED] = "INSERT OR IGNORE INTO revoked_tokens (jti, expires_at) "
                            "VALUES (?1, ?2)",
    [STMT_SET_REMAINING] = "UPDATE coupons SET remaining = ?2 WHERE id = ?1",
    [STMT_PRUNE_REVOKED] = "DELETE FROM revoked_tokens WHERE expires_at < ?1",
    /* sk_journal_apply's: a replay finds its rows there and changes nothing, and a coupon
     * applied after some of its grants (logs of two workers) starts with them taken. */
    [STMT_APPLY_USER] = "INSERT OR IGNORE INTO users (id, username, kind, password_hash, "
                        "created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    [STMT_APPLY_COUPON] = "INSERT OR IGNORE INTO coupons (id, seller, name, amount, remaining, "
                          "stock, description, start_at, end_at, created_at) "
                          "VALUES (?1, ?2, ?3, ?4, ?4 - (SELECT count(*) FROM grants "
                          "WHERE seller = ?2 AND coupon = ?3), ?5, ?6, ?7, ?8, ?9)",
    [STMT_APPLY_GRANT] = "INSERT OR IGNORE INTO grants (id, customer, seller, coupon, granted_at) "
                         "VALUES (?5, ?1, ?2, ?3, ?4)",
};

static const char schema_sql[] = "CREATE TABLE IF NOT EXISTS users ("
                                 " id INTEGER PRIMARY KEY,"
                                 " username TEXT NOT NULL UNIQUE,"
                                 " kind TEXT NOT NULL CHECK (kind IN ('customer', 'saler')),"
                                 " password_hash TEXT NOT NULL,"
                                 " created_at INTEGER NOT NULL);"
                                 "CREATE TABLE IF NOT EXISTS coupons ("
                                 " id INTEGER PRIMARY KEY,"
                                 " seller TEXT NOT NULL,"
                                 " name TEXT NOT NULL,"
                                 " amount INTEGER NOT NULL,"
                                 " remaining INTEGER NOT NULL,"
                                 " stock INTEGER NOT NULL,"
                                 " description TEXT NOT NULL,"
                                 " start_at INTEGER,"
                                 " end_at INTEGER,"
                                 " created_at INTEGER NOT NULL,"
                                 " UNIQUE (seller, name));"
                                 "CREATE TABLE IF NOT EXISTS grants ("
                                 " id INTEGER NOT NULL,"
                                 " customer TEXT NOT NULL,"
                                 " seller TEXT NOT NULL,"
                                 " coupon TEXT NOT NULL,"
                                 " granted_at INTEGER NOT NULL,"
                                 /* The unique key is the table itself (one B-tree, not a table
                                  * and an index: 2.5 against 3.4 us a grant in batches of 30),
                                  * coupon first so that one coupon's grants land on
                                  * neighbouring pages (1.9 us against 9-28 us with the customer
                                  * first). The store numbers the grants itself. */
                                 " PRIMARY KEY (seller, coupon, customer)) WITHOUT ROWID;"
                                 "CREATE TABLE IF NOT EXISTS revoked_tokens ("
                                 " jti TEXT PRIMARY KEY,"
                                 " expires_at INTEGER NOT NULL);"
                                 /* What the database says about itself, one row a name:
                                  * 'deployment_id' (see sk_store_deployment_id). */
                                 "CREATE TABLE IF NOT EXISTS settings ("
                                 " name TEXT PRIMARY KEY,"
                                 " value TEXT NOT NULL);";

/* A batch holds at most this many entries, so one transaction stays short. */
#define MAX_BATCH 8192

struct sk_journal {
    sqlite3 *db;
    sqlite3_stmt *statements[STMT_COUNT];
    pthread_t thread;
    int thread_started;

    pthread_mutex_t lock;
    pthread_cond_t wakeup;
    sk_journal_entry_t *head, **tail; /* guarded by lock */
    void (*after_batch)(void *data);
    void *after_batch_data;
    int stopping; /* guarded by lock */
    int applying; /* inside sk_journal_apply: the idempotent statements */

    /* Grants of one batch, summed per coupon so each coupon's row is updated once. */
    struct coupon_take {
        int64_t coupon_id, count;
    } * takes;
    size_t take_count, take_capacity;

    sk_store_counters_t counters;
    char deployment_id[SK_STORE_DEPLOYMENT_ID_LEN + 1];
};

static int step_reset(sk_journal_t *journal, int which)
{
    sqlite3_stmt *stmt = journal->statements[which];
    /* Every caller binds every parameter, so the bindings need no clearing. */
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) {
        sk_log(SK_LOG_ERROR, "journal", "sqlite3_step(%.40s...) failed: %s", statement_sql[which],
               sqlite3_errmsg(journal->db));
        return SK_EIO;
    }
    return 0;
}

static void bind_text(sqlite3_stmt *stmt, int column, h2o_iovec_t text)
{
    sqlite3_bind_text(stmt, column, text.base, (int)text.len, SQLITE_STATIC);
}

static void bind_time(sqlite3_stmt *stmt, int column, int64_t value)
{
    if (value == SK_STORE_NO_TIME)
        sqlite3_bind_null(stmt, column);
    else
        sqlite3_bind_int64(stmt, column, value);
}

static void add_take(sk_journal_t *journal, int64_t coupon_id)
{
    /* A batch usually touches few coupons, and the hottest is usually the last one seen. */
    for (size_t i = journal->take_count; i-- > 0;) {
        if (journal->takes[i].coupon_id == coupon_id) {
            journal->takes[i].count++;
            return;
        }
    }
    if (journal->take_count == journal->take_capacity) {
        size_t capacity = journal->take_capacity ? journal->take_capacity * 2 : 64;
        struct coupon_take *grown = realloc(journal->takes, capacity * sizeof(*grown));
        assert(grown != NULL && "journal: out of memory");
        journal->takes = grown;
        journal->take_capacity = capacity;
    }
    journal->takes[journal->take_count++] = (struct coupon_take){coupon_id, 1};
}

static int prune_revoked(sk_journal_t *journal, int64_t cutoff)
{
    sqlite3_bind_int64(journal->statements[STMT_PRUNE_REVOKED], 1, cutoff);
    if (step_reset(journal, STMT_PRUNE_REVOKED) != 0)
        return SK_EIO;
    int deleted = sqlite3_changes(journal->db);
    if (deleted > 0)
        sk_log(SK_LOG_INFO, "journal", "deleted %d expired revocations from revoked_tokens",
               deleted);
    return 0;
}

static int write_entry(sk_journal_t *journal, sk_journal_entry_t *entry)
{
    sqlite3_stmt *stmt;
    int which;
    switch (entry->kind) {
    case SK_JOURNAL_USER:
        which = journal->applying ? STMT_APPLY_USER : STMT_INSERT_USER;
        stmt = journal->statements[which];
        sqlite3_bind_int64(stmt, 1, entry->u.user.id);
        bind_text(stmt, 2, entry->u.user.username);
        sqlite3_bind_text(stmt, 3, entry->u.user.kind == SK_USER_SELLER ? "saler" : "customer", -1,
                          SQLITE_STATIC);
        sqlite3_bind_text(stmt, 4, entry->u.user.password_hash, -1, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 5, entry->u.user.created_at);
        return step_reset(journal, which);
    case SK_JOURNAL_COUPON:
        which = journal->applying ? STMT_APPLY_COUPON : STMT_INSERT_COUPON;
        stmt = journal->statements[which];
        sqlite3_bind_int64(stmt, 1, entry->u.coupon.id);
        bind_text(stmt, 2, entry->u.coupon.seller);
        bind_text(stmt, 3, entry->u.coupon.name);
        sqlite3_bind_int64(stmt, 4, entry->u.coupon.amount);
        sqlite3_bind_int64(stmt, 5, entry->u.coupon.stock);
        bind_text(stmt, 6, entry->u.coupon.description);
        bind_time(stmt, 7, entry->u.coupon.start_at);
        bind_time(stmt, 8, entry->u.coupon.end_at);
        sqlite3_bind_int64(stmt, 9, entry->u.coupon.created_at);
        return step_reset(journal, which);
    case SK_JOURNAL_GRANT:
        which = journal->applying ? STMT_APPLY_GRANT : STMT_INSERT_GRANT;
        stmt = journal->statements[which];
        bind_text(stmt, 1, entry->u.grant.customer);
        bind_text(stmt, 2, entry->u.grant.seller);
        bind_text(stmt, 3, entry->u.grant.coupon);
        sqlite3_bind_int64(stmt, 4, entry->u.grant.granted_at);
        sqlite3_bind_int64(stmt, 5, entry->u.grant.id);
        if (step_reset(journal, which) != 0)
            return SK_EIO;
        /* A grant replayed (its row is there) was taken when it was first applied. */
        if (sqlite3_changes(journal->db) == 1)
            add_take(journal, entry->u.grant.coupon_id);
        return 0;
    case SK_JOURNAL_REVOKE:
        stmt = journal->statements[STMT_INSERT_REVOKED];
        sqlite3_bind_text(stmt, 1, entry->u.revoke.jti, -1, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 2, entry->u.revoke.expires_at);
        return step_reset(journal, STMT_INSERT_REVOKED);
    case SK_JOURNAL_PRUNE:
        return prune_revoked(journal, entry->u.prune.cutoff);
    }
    return SK_EINVAL;
}

static int write_takes(sk_journal_t *journal)
{
    sqlite3_stmt *stmt = journal->statements[STMT_TAKE_ONE];
    for (size_t i = 0; i != journal->take_count; ++i) {
        sqlite3_bind_int64(stmt, 1, journal->takes[i].coupon_id);
        sqlite3_bind_int64(stmt, 2, journal->takes[i].count);
        if (step_reset(journal, STMT_TAKE_ONE) != 0)
            return SK_EIO;
    }
    return 0;
}

/*
 * Whether the statement that just failed failed alone: a constraint violation that SQLite
 * undid by itself, inside a transaction that is still open, is that entry's own fault (a
 * row planted behind the store's back) and the rest of the batch may commit. Any other
 * failure (disk full, an I/O error, no memory, a trigger's ROLLBACK) may have rolled the
 * whole transaction back, after which every further statement would commit on its own in
 * autocommit: the batch stops there and fails as a whole.
 */
static int failed_alone(sk_journal_t *journal)
{
    return (sqlite3_errcode(journal->db) & 0xff) == SQLITE_CONSTRAINT &&
           !sqlite3_get_autocommit(journal->db);
}

/* Writes one batch in one transaction; sets every entry's status. */
static void commit_batch(sk_journal_t *journal, sk_journal_entry_t *batch, size_t size)
{
    int64_t started = sk_store_monotonic_usec();
    int status = step_reset(journal, STMT_BEGIN);

    journal->take_count = 0;
    for (sk_journal_entry_t *entry = batch; status == 0 && entry != NULL; entry = entry->next) {
        entry->status = write_entry(journal, entry);
        if (entry->status != 0 && !failed_alone(journal))
            status = entry->status;
    }
    if (status == 0)
        status = write_takes(journal);
    if (status == 0)
        status = step_reset(journal, STMT_COMMIT);
    if (status != 0) {
        /* Nothing of this batch is on disk: every entry fails, and the store undoes it. */
        if (!sqlite3_get_autocommit(journal->db))
            step_reset(journal, STMT_ROLLBACK);
        for (sk_journal_entry_t *entry = batch; entry != NULL; entry = entry->next)
            entry->status = SK_EIO;
        atomic_fetch_add_explicit(&journal->counters.failures, 1, memory_order_relaxed);
    }

    sk_store_counters_batch(&journal->counters, size,
                            (uint64_t)(sk_store_monotonic_usec() - started));
}

int sk_journal_apply(sk_journal_t *journal, sk_journal_entry_t *batch, size_t size)
{
    int64_t started = sk_store_monotonic_usec();
    assert(!journal->thread_started && "the journal thread owns the connection");
    journal->applying = 1;
    journal->take_count = 0;
    /* Unlike a batch of the journal's own, one failed statement fails all of it: the caller
     * keeps its logs until they are applied in full. */
    int status = step_reset(journal, STMT_BEGIN);
    for (sk_journal_entry_t *entry = batch; status == 0 && entry != NULL; entry = entry->next)
        status = write_entry(journal, entry);
    if (status == 0)
        status = write_takes(journal);
    if (status == 0)
        status = step_reset(journal, STMT_COMMIT);
    journal->applying = 0;
    if (status != 0) {
        if (!sqlite3_get_autocommit(journal->db))
            step_reset(journal, STMT_ROLLBACK);
        atomic_fetch_add_explicit(&journal->counters.failures, 1, memory_order_relaxed);
        return SK_EIO;
    }
    sk_store_counters_batch(&journal->counters, size,
                            (uint64_t)(sk_store_monotonic_usec() - started));
    return 0;
}

static void *journal_main(void *arg)
{
    sk_journal_t *journal = arg;
    for (;;) {
        pthread_mutex_lock(&journal->lock);
        while (journal->head == NULL && !journal->stopping)
            pthread_cond_wait(&journal->wakeup, &journal->lock);
        if (journal->head == NULL) {
            pthread_mutex_unlock(&journal->lock);
            break;
        }
        /* Take up to MAX_BATCH entries; the rest waits for the next round. */
        sk_journal_entry_t *batch = journal->head, *last = batch;
        size_t size = 1;
        while (last->next != NULL && size < MAX_BATCH) {
            last = last->next;
            ++size;
        }
        journal->head = last->next;
        if (journal->head == NULL)
            journal->tail = &journal->head;
        last->next = NULL;
        pthread_mutex_unlock(&journal->lock);

        commit_batch(journal, batch, size);
        atomic_fetch_sub_explicit(&journal->counters.backlog, size, memory_order_relaxed);
        for (sk_journal_entry_t *entry = batch, *next; entry != NULL; entry = next) {
            next = entry->next; /* on_committed may free or reuse the entry */
            entry->on_committed(entry);
        }
        if (journal->after_batch != NULL)
            journal->after_batch(journal->after_batch_data);
    }
    return NULL;
}

/* A text column with its length: sqlite3_column_text's NUL would cut a description that
 * holds one. The text is fetched first, so that the length is that of the UTF-8 form. */
static h2o_iovec_t column_bytes(sqlite3_stmt *stmt, int column)
{
    const char *text = (const char *)sqlite3_column_text(stmt, column);
    return h2o_iovec_init(text != NULL ? text : "", (size_t)sqlite3_column_bytes(stmt, column));
}

static int load_rows(sk_journal_t *journal, const sk_journal_hooks_t *hooks)
{
    static const char *const queries[4] = {
        "SELECT id, username, kind, password_hash FROM users ORDER BY id",
        "SELECT id, seller, name, description, amount, remaining, stock, start_at, end_at "
        "FROM coupons ORDER BY id",
        "SELECT customer, seller, coupon, id FROM grants ORDER BY id",
        "SELECT jti, expires_at FROM revoked_tokens",
    };
    for (int which = 0; which != 4; ++which) {
        sqlite3_stmt *stmt;
        if (sqlite3_prepare_v2(journal->db, queries[which], -1, &stmt, NULL) != SQLITE_OK) {
            sk_log(SK_LOG_ERROR, "journal", "sqlite3_prepare_v2(load) failed: %s",
                   sqlite3_errmsg(journal->db));
            return SK_EIO;
        }
        int rc, status = 0;
        while (status == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
#define TEXT(i) ((const char *)sqlite3_column_text(stmt, i))
#define BYTES(i) column_bytes(stmt, i)
#define TIME(i)                                                                                    \
    (sqlite3_column_type(stmt, i) == SQLITE_NULL ? SK_STORE_NO_TIME : sqlite3_column_int64(stmt, i))
            switch (which) {
            case 0:
                status = hooks->on_user(
                    hooks->data, sqlite3_column_int64(stmt, 0), BYTES(1),
                    strcmp(TEXT(2), "saler") == 0 ? SK_USER_SELLER : SK_USER_CUSTOMER, TEXT(3));
                break;
            case 1:
                status = hooks->on_coupon(hooks->data, sqlite3_column_int64(stmt, 0), BYTES(1),
                                          BYTES(2), BYTES(3), sqlite3_column_int64(stmt, 4),
                                          sqlite3_column_int64(stmt, 5),
                                          sqlite3_column_int64(stmt, 6), TIME(7), TIME(8));
                break;
            case 2:
                status = hooks->on_grant(hooks->data, BYTES(0), BYTES(1), BYTES(2),
                                         sqlite3_column_int64(stmt, 3));
                break;
            case 3:
                status = hooks->on_revoked(hooks->data, TEXT(0), sqlite3_column_int64(stmt, 1));
                break;
            }
#undef TEXT
#undef BYTES
#undef TIME
        }
        if (status == 0 && rc != SQLITE_DONE) {
            sk_log(SK_LOG_ERROR, "journal", "sqlite3_step(load) failed: %s",
                   sqlite3_errmsg(journal->db));
            status = SK_EIO;
        }
        sqlite3_finalize(stmt);
        if (status != 0)
            return status;
    }
    return 0;
}

/* Runs one SELECT of a single text value into `out` (`out_size` bytes, NUL-terminated).
 * Returns 1 for a row, 0 for none, SK_EIO on failure. */
static int select_text(sk_journal_t *journal, const char *sql, char *out, size_t out_size)
{
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(journal->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        sk_log(SK_LOG_ERROR, "journal", "sqlite3_prepare_v2(%s) failed: %s", sql,
               sqlite3_errmsg(journal->db));
        return SK_EIO;
    }
    int rc = sqlite3_step(stmt), status = 0;
    if (rc == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(stmt, 0);
        snprintf(out, out_size, "%s", text != NULL ? text : "");
        status = 1;
    } else if (rc != SQLITE_DONE) {
        sk_log(SK_LOG_ERROR, "journal", "sqlite3_step(%s) failed: %s", sql,
               sqlite3_errmsg(journal->db));
        status = SK_EIO;
    }
    sqlite3_finalize(stmt);
    return status;
}

/* Reads the deployment id, making it first if the database has none (a new database, or
 * one from before ids existed: its old tokens carry none and are refused anyway). */
static int load_deployment_id(sk_journal_t *journal, const char *path)
{
    unsigned char random_id[SK_STORE_DEPLOYMENT_ID_LEN / 2];
    char fresh[SK_STORE_DEPLOYMENT_ID_LEN + 1], sql[128];
    randombytes_buf(random_id, sizeof(random_id));
    sodium_bin2hex(fresh, sizeof(fresh), random_id, sizeof(random_id));
    /* A constant of our own making: hex digits only. */
    snprintf(sql, sizeof(sql),
             "INSERT OR IGNORE INTO settings (name, value) VALUES ('deployment_id', '%s')", fresh);
    char *error = NULL;
    if (sqlite3_exec(journal->db, sql, NULL, NULL, &error) != SQLITE_OK) {
        sk_log(SK_LOG_ERROR, "journal", "sqlite3_exec(INSERT settings) on %s failed: %s", path,
               error ? error : "?");
        sqlite3_free(error);
        return SK_EIO;
    }
    char stored[SK_STORE_DEPLOYMENT_ID_LEN + 2];
    int found = select_text(journal, "SELECT value FROM settings WHERE name = 'deployment_id'",
                            stored, sizeof(stored));
    if (found < 0)
        return SK_EIO;
    if (found == 0 || !sk_store_deployment_id_is_valid(stored)) {
        sk_log(SK_LOG_ERROR, "journal",
               "%s: settings.deployment_id is not %d lowercase hex digits; delete that row to "
               "make a new one (every token issued so far becomes invalid)",
               path, SK_STORE_DEPLOYMENT_ID_LEN);
        return SK_EINVAL;
    }
    memcpy(journal->deployment_id, stored, sizeof(journal->deployment_id));
    return 0;
}

sk_journal_t *sk_journal_open(const char *path, int sync_commits, int64_t revocation_cutoff,
                              const sk_journal_hooks_t *hooks)
{
    sk_journal_t *journal = calloc(1, sizeof(*journal));
    if (journal == NULL)
        return NULL;
    pthread_mutex_init(&journal->lock, NULL);
    pthread_cond_init(&journal->wakeup, NULL);
    journal->tail = &journal->head;
    /* Memory statistics take a global mutex on every SQLite allocation; nothing reads
     * them. This only works before SQLite initializes, so it is best-effort. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);

    if (sqlite3_open_v2(path, &journal->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        sk_log(SK_LOG_ERROR, "journal", "sqlite3_open_v2(%s) failed: %s", path,
               journal->db ? sqlite3_errmsg(journal->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(journal->db, 5000);
    /* WAL: readers (an operator's sqlite3 shell) never block the journal. NORMAL syncs
     * only at checkpoints: a commit is in the OS's hands, so it survives kill -9. */
    char pragmas[160];
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cache_size=-65536;",
             sync_commits ? "FULL" : "NORMAL");
    char *error = NULL;
    if (sqlite3_exec(journal->db, pragmas, NULL, NULL, &error) != SQLITE_OK ||
        sqlite3_exec(journal->db, schema_sql, NULL, NULL, &error) != SQLITE_OK) {
        sk_log(SK_LOG_ERROR, "journal", "sqlite3_exec(schema) on %s failed: %s", path,
               error ? error : "?");
        sqlite3_free(error);
        goto fail;
    }
    for (int i = 0; i != STMT_COUNT; ++i) {
        if (sqlite3_prepare_v3(journal->db, statement_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &journal->statements[i], NULL) != SQLITE_OK) {
            sk_log(SK_LOG_ERROR, "journal", "sqlite3_prepare_v3(%s) failed: %s", statement_sql[i],
                   sqlite3_errmsg(journal->db));
            goto fail;
        }
    }
    if (load_deployment_id(journal, path) != 0 ||
        (hooks->before_load != NULL && hooks->before_load(hooks->data, journal) != 0) ||
        prune_revoked(journal, revocation_cutoff) != 0 || load_rows(journal, hooks) != 0)
        goto fail;
    journal->after_batch = hooks->after_batch;
    journal->after_batch_data = hooks->data;
    return journal;

fail:
    sk_journal_close(journal);
    return NULL;
}

int sk_journal_fix_remaining(sk_journal_t *journal, int64_t coupon_id, int64_t remaining)
{
    sqlite3_stmt *stmt = journal->statements[STMT_SET_REMAINING];
    sqlite3_bind_int64(stmt, 1, coupon_id);
    sqlite3_bind_int64(stmt, 2, remaining);
    return step_reset(journal, STMT_SET_REMAINING);
}

static int start_thread(sk_journal_t *journal)
{
    if (journal->thread_started)
        return 0;
    if (pthread_create(&journal->thread, NULL, journal_main, journal) != 0) {
        sk_log(SK_LOG_ERROR, "journal", "pthread_create failed");
        return SK_EIO;
    }
    journal->thread_started = 1;
    return 0;
}

int sk_journal_submit(sk_journal_t *journal, sk_journal_entry_t *entry)
{
    entry->next = NULL;
    pthread_mutex_lock(&journal->lock);
    if (journal->stopping || start_thread(journal) != 0) {
        pthread_mutex_unlock(&journal->lock);
        return SK_EUNAVAILABLE;
    }
    int was_empty = journal->head == NULL;
    *journal->tail = entry;
    journal->tail = &entry->next;
    atomic_fetch_add_explicit(&journal->counters.backlog, 1, memory_order_relaxed);
    pthread_mutex_unlock(&journal->lock);
    /* The journal thread only sleeps on an empty queue, so only that case needs a signal. */
    if (was_empty)
        pthread_cond_signal(&journal->wakeup);
    return 0;
}

void sk_journal_close(sk_journal_t *journal)
{
    if (journal == NULL)
        return;
    pthread_mutex_lock(&journal->lock);
    journal->stopping = 1;
    pthread_cond_signal(&journal->wakeup);
    pthread_mutex_unlock(&journal->lock);
    if (journal->thread_started)
        pthread_join(journal->thread, NULL);
    for (int i = 0; i != STMT_COUNT; ++i)
        sqlite3_finalize(journal->statements[i]);
    if (journal->db != NULL && sqlite3_close(journal->db) != SQLITE_OK)
        sk_log(SK_LOG_WARN, "journal", "sqlite3_close failed: %s", sqlite3_errmsg(journal->db));
    free(journal->takes);
    pthread_cond_destroy(&journal->wakeup);
    pthread_mutex_destroy(&journal->lock);
    free(journal);
}

const char *sk_journal_deployment_id(sk_journal_t *journal)
{
    return journal->deployment_id;
}

void sk_journal_stats(sk_journal_t *journal, sk_store_stats_t *out)
{
    sk_store_counters_read(&journal->counters, out);
}
