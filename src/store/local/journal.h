/*
 * The SQLite side of the local store: the schema of API.md "Storage", the load of every
 * row at start, and the journal thread that commits what the store changed in memory.
 *
 * Group commit: worker threads hand entries to the journal without waiting; the journal
 * thread takes everything queued, writes it in one transaction, and only then calls each
 * entry's on_committed (on the journal thread), which is when the client may be told.
 * A statement that violates a constraint fails its own entry only; any other failure
 * (a statement's or the commit's) fails the whole batch, and nothing of it is written.
 */
#ifndef SK_STORE_LOCAL_JOURNAL_H
#define SK_STORE_LOCAL_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct sk_journal sk_journal_t;

typedef enum sk_journal_kind {
    SK_JOURNAL_USER,
    SK_JOURNAL_COUPON,
    SK_JOURNAL_GRANT,
    SK_JOURNAL_REVOKE,
    SK_JOURNAL_PRUNE /* deletes the revocations that expired before u.prune.cutoff */
} sk_journal_kind_t;

typedef struct sk_journal_entry sk_journal_entry_t;

/* Strings need not be NUL-terminated and must stay valid until on_committed runs. */
struct sk_journal_entry {
    sk_journal_kind_t kind;
    int status; /* set before on_committed: 0, or SK_EIO when it was not written */
    void (*on_committed)(sk_journal_entry_t *entry);
    void *data; /* the submitter's */
    sk_journal_entry_t *next;
    union {
        struct {
            int64_t id, created_at;
            h2o_iovec_t username;
            sk_user_kind_t kind;
            const char *password_hash;
        } user;
        struct {
            int64_t id, amount, stock, start_at, end_at, created_at;
            h2o_iovec_t seller, name, description;
        } coupon;
        struct {
            int64_t id, coupon_id, granted_at;
            h2o_iovec_t customer, seller, coupon;
        } grant;
        struct {
            const char *jti;
            int64_t expires_at;
        } revoke;
        struct {
            int64_t cutoff;
        } prune;
    } u;
};

/* The store's side: what the load at start hands back, row by row, in id order (grants in
 * grant order), and what runs after each committed batch. Names and descriptions come with
 * their length, byte for byte as stored (a description may hold a NUL); they and the
 * NUL-terminated strings are valid only during the call. */
typedef struct sk_journal_hooks {
    void *data;
    int (*on_user)(void *data, int64_t id, h2o_iovec_t username, sk_user_kind_t kind,
                   const char *password_hash);
    int (*on_coupon)(void *data, int64_t id, h2o_iovec_t seller, h2o_iovec_t name,
                     h2o_iovec_t description, int64_t amount, int64_t remaining, int64_t stock,
                     int64_t start_at, int64_t end_at);
    int (*on_grant)(void *data, h2o_iovec_t customer, h2o_iovec_t seller, h2o_iovec_t coupon,
                    int64_t id);
    int (*on_revoked)(void *data, const char *jti, int64_t expires_at);
    /* On the journal thread, after the on_committed calls of a batch: lets the store wake
     * each worker once per batch instead of once per entry. */
    void (*after_batch)(void *data);
    /* When not NULL: called by sk_journal_open once the schema is there, before the expired
     * revocations are pruned and the rows loaded, so that what it applies (the store's
     * logs, through sk_journal_apply) is pruned and loaded too. Nonzero fails the open. */
    int (*before_load)(void *data, sk_journal_t *journal);
} sk_journal_hooks_t;

/*
 * Opens (creating if needed) the database at `path` in WAL mode, creates the schema (and
 * the deployment id, the first time), deletes the revocations that expired before
 * `revocation_cutoff`, hands every row to `hooks`, then starts the journal thread. `sync_commits`
 * makes every commit reach the disk (power-loss durability); without it a commit survives a process
 * crash. Returns NULL and logs why on failure.
 */
sk_journal_t *sk_journal_open(const char *path, int sync_commits, int64_t revocation_cutoff,
                              const sk_journal_hooks_t *hooks);

/* The database's deployment id (SK_STORE_DEPLOYMENT_ID_LEN hex characters), valid until
 * sk_journal_close. */
const char *sk_journal_deployment_id(sk_journal_t *journal);

/* After a load whose stored `remaining` disagreed with the grants rows: rewrite it. Only
 * before the first submit. */
int sk_journal_fix_remaining(sk_journal_t *journal, int64_t coupon_id, int64_t remaining);

/* Queues `entry` for the next transaction. Thread-safe; never blocks on the disk. Returns
 * SK_EUNAVAILABLE (and does not queue) once the journal is stopping. */
int sk_journal_submit(sk_journal_t *journal, sk_journal_entry_t *entry);

/*
 * Writes `batch` (`size` entries linked by `next`) in one transaction, idempotently: a user,
 * coupon, grant or revocation whose row is there already is left as it is, a grant takes
 * one from its coupon's `remaining` only when its row is new, and a coupon row made after
 * some of its grants starts with those taken. So a batch may be applied twice, and
 * batches in any order. Entries' status and on_committed are not used. Returns 0, or
 * SK_EIO (logged) when the transaction was rolled back: nothing of it was written. Only on
 * the thread that owns the connection (the opener during before_load, then one thread at a
 * time), and never once sk_journal_submit was called.
 */
int sk_journal_apply(sk_journal_t *journal, sk_journal_entry_t *batch, size_t size);

/* Commits everything queued, stops the thread and closes the database. */
void sk_journal_close(sk_journal_t *journal);

/* Counters for /metrics. */
void sk_journal_stats(sk_journal_t *journal, sk_store_stats_t *out);

#endif
