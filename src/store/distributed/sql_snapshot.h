/*
 * The SQL copy of the distributed deployment, read whole into memory: every coupon with
 * the customers of its grants, in SQL order. What the loader rebuilds Redis's hot state
 * from, and what `seckill reconcile` compares it with.
 */
#ifndef SK_STORE_DISTRIBUTED_SQL_SNAPSHOT_H
#define SK_STORE_DISTRIBUTED_SQL_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "util/index.h"
#include "client/mysql/mysql.h"

typedef struct sk_sql_coupon {
    sk_mysql_coupon_t row; /* its strings owned by the snapshot */
    char **customers;      /* the grants' customers, in grants.id order */
    int64_t *orders;       /* each grant's place among all grants (1, 2, ...) */
    size_t customer_count, customer_capacity;
} sk_sql_coupon_t;

typedef struct sk_sql_snapshot {
    sk_index_t *by_member; /* "seller/name" → sk_sql_coupon_t */
    sk_sql_coupon_t **coupons;
    size_t count, capacity;
    size_t grants; /* every grant row, those of unknown coupons too */
} sk_sql_snapshot_t;

/* Reads every coupon and grant. Returns 0, or (nothing to dispose) SK_EUNAVAILABLE when
 * SQL failed or SK_ENOMEM when memory ran out. */
int sk_sql_snapshot_load(sk_sql_snapshot_t *snapshot, sk_mysql_t *sql);

/* The coupon "seller/name", or NULL. */
sk_sql_coupon_t *sk_sql_snapshot_find(sk_sql_snapshot_t *snapshot, const char *member, size_t len);

void sk_sql_snapshot_dispose(sk_sql_snapshot_t *snapshot);

#endif
