/*
 * The embedded deployment's store: all state in process memory, rebuilt at start from the
 * SQLite database it journals every change to (see journal.h). A change is acknowledged
 * only after the transaction holding it has committed.
 */
#ifndef SK_STORE_LOCAL_STORE_LOCAL_H
#define SK_STORE_LOCAL_STORE_LOCAL_H

#include "store/store.h"

/*
 * Opens the database at `db_path` (created if missing), loads it, and returns the store,
 * or NULL after logging why. `sync_commits`: see sk_journal_open. Free with
 * sk_store_destroy.
 */
sk_store_t *sk_store_local_create(const char *db_path, int sync_commits);

#endif
