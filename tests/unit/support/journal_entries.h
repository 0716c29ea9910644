/*
 * What the tests of the embedded store's durable record share (test_journal.c,
 * test_log_applier.c): journal entries of the shapes they write, and one number read back
 * from an SQLite file.
 */
#ifndef SK_TEST_JOURNAL_ENTRIES_H
#define SK_TEST_JOURNAL_ENTRIES_H

#include <stdint.h>

#include "store/local/journal.h"

/* Coupon `id` of seller "shop": `name` (not copied), `amount` left of `amount`, stock 1,
 * description "d", no sale window, created at 1700000000. */
sk_journal_entry_t sk_test_coupon_entry(int64_t id, const char *name, int64_t amount);

/* Grant `id` of shop's coupon `coupon_id` named `coupon` to `customer` (neither copied),
 * granted at 1700000001. */
sk_journal_entry_t sk_test_grant_entry(int64_t id, const char *customer, int64_t coupon_id,
                                       const char *coupon);

/* The first column of the first row of `sql` on the database at `path` (opened read-only
 * for the call), or -1 without a row. Aborts, naming the statement, if it does not
 * prepare. */
long long sk_test_sql_number(const char *path, const char *sql);

#endif
