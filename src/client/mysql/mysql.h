/*
 * The SQL copy of the distributed deployment, in MySQL or MariaDB through MariaDB
 * Connector/C: the same tables as the embedded deployment (API.md "Storage"), created
 * when missing, and every statement the distributed store needs, each a prepared
 * statement (never SQL built from data).
 *
 * Every call blocks: use a connection only on threads that may block (the SQL pool of the
 * distributed store, the persister, the start-up loader, `seckill reconcile`), one thread
 * at a time per connection. A call that finds the connection broken reconnects once
 * before it gives up with SK_MYSQL_UNAVAILABLE.
 */
#ifndef SK_CLIENT_MYSQL_MYSQL_H
#define SK_CLIENT_MYSQL_MYSQL_H

#include <stddef.h>
#include <stdint.h>

typedef enum sk_mysql_result {
    SK_MYSQL_OK = 0,
    SK_MYSQL_DUPLICATE, /* a unique key already holds this value */
    SK_MYSQL_NOT_FOUND,
    SK_MYSQL_UNAVAILABLE /* the server could not be reached or the statement failed */
} sk_mysql_result_t;

/* `mysql://user[:password]@host[:port]/database` (port 3306 by default). */
typedef struct sk_mysql_config {
    char host[256];
    int port;
    char user[128];
    char password[256];
    char database[128];
} sk_mysql_config_t;

/* Returns 0, or SK_EINVAL with a message in `err` (never echoing the password). */
int sk_mysql_config_parse(const char *url, sk_mysql_config_t *out, char *err, size_t errlen);

typedef struct sk_mysql sk_mysql_t;

/* Connects (utf8mb4, autocommit on, connect/read/write timeouts of `timeout_ms`). Returns
 * NULL with a message in `err` when the server cannot be reached. */
sk_mysql_t *sk_mysql_connect(const sk_mysql_config_t *config, unsigned timeout_ms, char *err,
                             size_t errlen);
void sk_mysql_close(sk_mysql_t *conn);

#define SK_MYSQL_DEPLOYMENT_ID_LEN 32 /* hex characters of the id ensure_schema makes */

/* Creates the tables when missing (CREATE TABLE IF NOT EXISTS; never drops), and the
 * deployment id in `settings` when there is none (INSERT IGNORE: of instances racing to
 * start, one row wins and all read it back). */
sk_mysql_result_t sk_mysql_ensure_schema(sk_mysql_t *conn);

/* The deployment id ensure_schema made (NUL-terminated in `out`, at most out_size bytes).
 * NOT_FOUND when there is none; UNAVAILABLE also when it does not fit. */
sk_mysql_result_t sk_mysql_deployment_id(sk_mysql_t *conn, char *out, size_t out_size);

/* 1 when a round trip to the server succeeds now (reconnecting if needed). */
int sk_mysql_ping(sk_mysql_t *conn);

/* users */
sk_mysql_result_t sk_mysql_user_insert(sk_mysql_t *conn, const char *username, size_t username_len,
                                       int is_seller, const char *password_hash,
                                       int64_t created_at);
/* On OK fills *is_seller, password_hash (NUL-terminated, at most hash_size bytes) and *id
 * (the row's id; `id` may be NULL). */
sk_mysql_result_t sk_mysql_user_find(sk_mysql_t *conn, const char *username, size_t username_len,
                                     int *is_seller, char *password_hash, size_t hash_size,
                                     int64_t *id);

/* coupons (times: Unix seconds; `has_start` / `has_end` 0 stores NULL) */
typedef struct sk_mysql_coupon {
    int64_t id; /* filled by insert and by the iterator */
    const char *seller, *name, *description;
    size_t seller_len, name_len, description_len;
    int64_t amount, remaining, stock;
    int has_start, has_end;
    int64_t start_at, end_at;
    int64_t created_at;
} sk_mysql_coupon_t;

/* Inserts with remaining = amount. DUPLICATE when (seller, name) exists. */
sk_mysql_result_t sk_mysql_coupon_insert(sk_mysql_t *conn, sk_mysql_coupon_t *coupon);
/* Deletes the coupon (only when it has no grant): undoes an insert whose hot state could
 * not be made. */
sk_mysql_result_t sk_mysql_coupon_delete(sk_mysql_t *conn, const char *seller, size_t seller_len,
                                         const char *name, size_t name_len);
/* Sets remaining exactly (reconcile --repair). */
sk_mysql_result_t sk_mysql_coupon_set_remaining(sk_mysql_t *conn, const char *seller,
                                                size_t seller_len, const char *name,
                                                size_t name_len, int64_t remaining);

/* Calls `cb` for every coupon in id (creation) order; stops early when cb returns non-0.
 * Strings are valid during the call only. */
sk_mysql_result_t sk_mysql_coupons_each(sk_mysql_t *conn,
                                        int (*cb)(void *data, const sk_mysql_coupon_t *coupon),
                                        void *data);

/* One row of sk_mysql_coupons_page. */
#define SK_MYSQL_NAME_MAX 256 /* bytes of a stored name at most (64 characters of utf8mb4) */
typedef struct sk_mysql_catalog_row {
    int64_t id, amount;
    char seller[SK_MYSQL_NAME_MAX + 1], name[SK_MYSQL_NAME_MAX + 1]; /* NUL-terminated */
    size_t seller_len, name_len;
} sk_mysql_catalog_row_t;

/* One page of coupons in id (creation) order, only `seller`'s when seller_len is not 0:
 * at most `limit` rows after the first `offset` into rows[], their number in *count and
 * the number of all (of that seller, or every seller's) in *total. */
sk_mysql_result_t sk_mysql_coupons_page(sk_mysql_t *conn, const char *seller, size_t seller_len,
                                        int64_t offset, int64_t limit, sk_mysql_catalog_row_t *rows,
                                        size_t *count, int64_t *total);

/* grants */
typedef struct sk_mysql_grant {
    const char *customer, *seller, *coupon;
    size_t customer_len, seller_len, coupon_len;
    int64_t granted_at;
    int64_t remaining; /* the coupon's `left` right after this grant (from the stream) */
} sk_mysql_grant_t;

/* One transaction for the whole batch: each grant inserted if absent (the unique key
 * customer + seller + coupon), and each coupon's remaining lowered to the smallest
 * `remaining` of its grants in the batch (LEAST: a replayed or reordered batch never
 * raises it, and nothing is decremented blindly). Replaying a batch changes nothing.
 * *inserted (may be NULL) gets the number of rows that were new. */
sk_mysql_result_t sk_mysql_grants_apply(sk_mysql_t *conn, const sk_mysql_grant_t *grants,
                                        size_t count, size_t *inserted);

/* Inserts one grant if absent, with remaining untouched (reconcile --repair). */
sk_mysql_result_t sk_mysql_grant_insert(sk_mysql_t *conn, const sk_mysql_grant_t *grant);

/* Calls `cb` for every grant in id order (the order the persister wrote them); stops early
 * when cb returns non-0. `remaining` is not filled. */
sk_mysql_result_t sk_mysql_grants_each(sk_mysql_t *conn,
                                       int (*cb)(void *data, const sk_mysql_grant_t *grant),
                                       void *data);

/* revoked tokens */
sk_mysql_result_t sk_mysql_revoke(sk_mysql_t *conn, const char *jti, int64_t expires_at);
/* Every revocation whose expires_at is after `now`. */
sk_mysql_result_t sk_mysql_revoked_each(sk_mysql_t *conn, int64_t now,
                                        int (*cb)(void *data, const char *jti, int64_t expires_at),
                                        void *data);

/* Deletes every revocation whose expires_at is before `cutoff`; *deleted (may be NULL)
 * gets how many. Idempotent: every instance may run it. */
sk_mysql_result_t sk_mysql_revoked_prune(sk_mysql_t *conn, int64_t cutoff, uint64_t *deleted);

/* The last error's text (for logs; never contains the password). */
const char *sk_mysql_error(sk_mysql_t *conn);

#endif
