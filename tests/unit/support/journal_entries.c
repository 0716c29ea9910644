/* Entries and a read-back for the durable record's tests (see journal_entries.h). */
#include "journal_entries.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sk_journal_entry_t sk_test_coupon_entry(int64_t id, const char *name, int64_t amount)
{
    sk_journal_entry_t entry = {.kind = SK_JOURNAL_COUPON};
    entry.u.coupon.id = id;
    entry.u.coupon.amount = amount;
    entry.u.coupon.stock = 1;
    entry.u.coupon.start_at = entry.u.coupon.end_at = SK_STORE_NO_TIME;
    entry.u.coupon.created_at = 1700000000;
    entry.u.coupon.seller = h2o_iovec_init(H2O_STRLIT("shop"));
    entry.u.coupon.name = h2o_iovec_init(name, strlen(name));
    entry.u.coupon.description = h2o_iovec_init(H2O_STRLIT("d"));
    return entry;
}

sk_journal_entry_t sk_test_grant_entry(int64_t id, const char *customer, int64_t coupon_id,
                                       const char *coupon)
{
    sk_journal_entry_t entry = {.kind = SK_JOURNAL_GRANT};
    entry.u.grant.id = id;
    entry.u.grant.coupon_id = coupon_id;
    entry.u.grant.granted_at = 1700000001;
    entry.u.grant.customer = h2o_iovec_init(customer, strlen(customer));
    entry.u.grant.seller = h2o_iovec_init(H2O_STRLIT("shop"));
    entry.u.grant.coupon = h2o_iovec_init(coupon, strlen(coupon));
    return entry;
}

long long sk_test_sql_number(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        fprintf(stderr, "%s on %s: %s\n", sql, path, db ? sqlite3_errmsg(db) : "no memory");
        abort();
    }
    long long value = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return value;
}
