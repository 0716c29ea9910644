/*
 * The applier of the embedded store: copies what the workers wrote to their grant logs
 * (grant_log.h) into SQLite behind them, on one background thread at a lower priority than
 * the workers, and at start applies whatever the logs hold that SQLite may not (recovery).
 * grant_log.c's design note says how and why.
 *
 * The applier owns the journal's SQLite connection from sk_log_applier_start until
 * sk_log_applier_destroy; nothing else may use it meanwhile.
 */
#ifndef SK_STORE_LOCAL_LOG_APPLIER_H
#define SK_STORE_LOCAL_LOG_APPLIER_H

#include <stdint.h>

#include "store/local/grant_log.h"
#include "store/local/journal.h"
#include "store/store.h"

typedef struct sk_log_applier sk_log_applier_t;

typedef struct sk_log_applier_options {
    int sync_commits;       /* the writers': see sk_grant_log_options_t */
    uint64_t segment_bytes; /* 0: the default, 32 MiB */
    int64_t segment_ms;     /* 0: the default, 1000 */
    unsigned interval_ms;   /* pause between rounds with nothing new; 0: the default, 100 */
} sk_log_applier_options_t;

/*
 * Recovery: applies every record of every segment in `dir` to `journal`, each writer's
 * segments in order, dropping torn tails and voided records with a warning (see
 * grant_log.c), then deletes the segments. On the thread that owns the journal (its
 * before_load hook). Returns 0, or SK_EIO / SK_ENOMEM (logged) with nothing deleted.
 */
int sk_log_applier_recover(sk_journal_t *journal, const char *dir);

/* Starts the applier thread on `dir` (which must exist, without segments: recover first).
 * Returns NULL (logged) on failure. */
sk_log_applier_t *sk_log_applier_start(sk_journal_t *journal, const char *dir,
                                       const sk_log_applier_options_t *options);

/*
 * A new writer for one worker thread, numbered after every writer before it. The worker
 * uses it alone and gives it back with sk_log_applier_writer_release. Thread-safe. NULL
 * (logged) on failure, or after sk_log_applier_stop.
 */
sk_grant_log_writer_t *sk_log_applier_writer_create(sk_log_applier_t *applier);

/* Closes `writer` (flush it first) and hands it to the applier, which frees it once its
 * records are applied (or at once, after sk_log_applier_stop: its segments are then left
 * for the next start's recovery). Thread-safe. */
void sk_log_applier_writer_release(sk_log_applier_t *applier, sk_grant_log_writer_t *writer);

/*
 * Queues `entry`, an SK_JOURNAL_PRUNE, for the applier's next transaction, and calls its
 * on_committed on the applier thread (status 0 or SK_EIO) after that. Returns
 * SK_EUNAVAILABLE after sk_log_applier_stop (on_committed is then not called).
 */
int sk_log_applier_submit(sk_log_applier_t *applier, sk_journal_entry_t *entry);

/* The journal counters for /metrics: the backlog is the records written to the logs and
 * not applied yet, the lag how long ago the last round began that left none behind (0
 * without backlog); batches, commit times and failures are the applier's transactions. */
void sk_log_applier_stats(sk_log_applier_t *applier, sk_store_stats_t *out);

/*
 * Applies everything written so far (every record any writer flushed before this call),
 * deletes the segments of released writers, and stops the thread. After it, writers may
 * still be released and stats read. Returns 0, or SK_EIO when SQLite refused the last
 * transaction (the logs keep those records for the next start).
 */
int sk_log_applier_stop(sk_log_applier_t *applier);

/* Stops (when not stopped) and frees the applier and every writer released to it. */
void sk_log_applier_destroy(sk_log_applier_t *applier);

#endif
