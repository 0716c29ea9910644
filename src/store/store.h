/*
 * The domain: users, coupons, grabs, holdings and token revocations, behind one interface
 * that each deployment implements: store/local/ (memory + SQLite, the embedded deployment)
 * and store/distributed/ (Redis + MySQL). The api layer calls only what this header
 * declares; the implementations fill the vtable of store_internal.h.
 *
 * Every operation is asynchronous: the caller fills an operation struct (which must stay
 * valid until completion, e.g. allocated in the request's pool) and starts it from a worker
 * thread through that thread's sk_store_thread_t. The store calls `op->on_done` exactly
 * once, on that same thread; it may do so before the start call returns, when the answer
 * needs no I/O. Strings in results are allocated in `op->pool` or point at store memory
 * that lives as long as the store.
 */
#ifndef SK_STORE_STORE_H
#define SK_STORE_STORE_H

#include <h2o.h>
#include <stdint.h>

#define SK_STORE_MAX_NAME 64 /* bytes of a user or coupon name */
#define SK_STORE_MAX_DESCRIPTION 1024
#define SK_STORE_PAGE_SIZE 20
#define SK_STORE_CATALOG_PAGE_SIZE 50 /* coupons a page of the live sale view */
#define SK_STORE_NO_TIME INT64_MIN    /* a sale window bound that is absent */
/* Hex characters of a deployment id: 16 random bytes, made with the database. */
#define SK_STORE_DEPLOYMENT_ID_LEN 32
/* Seconds a revocation is kept past its token's expiry, then pruned: more than the clock
 * skew a token check allows (SK_JWT_LEEWAY), so no token it refuses is accepted again. */
#define SK_STORE_REVOCATION_GRACE 10

typedef enum sk_user_kind { SK_USER_CUSTOMER = 0, SK_USER_SELLER = 1 } sk_user_kind_t;

/* What an operation came to; the meaning of each value depends on the operation. */
typedef enum sk_store_result {
    SK_STORE_OK = 0,
    SK_STORE_DUPLICATE, /* register / create: the name is taken */
    SK_STORE_NOT_FOUND, /* find / list: no such user */
    SK_STORE_NO_SUCH_COUPON,
    SK_STORE_NOT_STARTED,
    SK_STORE_ENDED,
    SK_STORE_SOLD_OUT,
    SK_STORE_ALREADY_HELD,
    SK_STORE_UNAVAILABLE, /* a backend failed; nothing was changed */
    SK_STORE_LIMITED      /* rate_take: no token now */
} sk_store_result_t;

typedef struct sk_store sk_store_t;
typedef struct sk_store_thread sk_store_thread_t;
typedef struct sk_store_op sk_store_op_t;

struct sk_store_op {
    void (*on_done)(sk_store_op_t *op); /* set by the caller */
    void *data;                         /* the caller's */
    h2o_mem_pool_t *pool;               /* where results are allocated */
    sk_store_result_t result;           /* set by the store before on_done */
    /* private to the store */
    h2o_multithread_message_t _message;
    sk_store_thread_t *_thread;
    void *_store_data;
};

typedef struct sk_store_user_register {
    sk_store_op_t op;
    h2o_iovec_t username;
    sk_user_kind_t kind;
    const char *password_hash; /* NUL-terminated argon2id string */
} sk_store_user_register_t;

typedef struct sk_store_user_find {
    sk_store_op_t op;
    h2o_iovec_t username;
    /* results, on SK_STORE_OK */
    int64_t id; /* the users row's id: what a token's uid claim names */
    sk_user_kind_t kind;
    const char *password_hash;
} sk_store_user_find_t;

typedef struct sk_store_coupon_create {
    sk_store_op_t op;
    int64_t seller_id; /* the token's user id: NOT_FOUND unless the seller has it */
    h2o_iovec_t seller, name, description;
    int64_t amount, stock;
    int64_t start_at, end_at; /* SK_STORE_NO_TIME when absent */
} sk_store_coupon_create_t;

typedef struct sk_store_coupon_item {
    h2o_iovec_t name, description, seller;
    int64_t stock, amount, left;
    int64_t start_at, end_at;
} sk_store_coupon_item_t;

typedef struct sk_store_coupon_list {
    sk_store_op_t op;
    h2o_iovec_t username; /* whose coupons: a seller's published, a customer's held */
    int64_t page;         /* 1-based; past the end gives zero items */
    /* results, on SK_STORE_OK */
    int64_t user_id;     /* the listed user's id */
    sk_user_kind_t kind; /* the listed user's kind */
    sk_store_coupon_item_t *items;
    size_t count;
} sk_store_coupon_list_t;

typedef struct sk_store_grab {
    sk_store_op_t op;
    h2o_iovec_t customer, seller, name;
    /* The token's user id. A store that looks the customer up anyway (the embedded one)
     * answers NOT_FOUND when it differs; the distributed one does not look. */
    int64_t customer_id;
    int64_t now; /* Unix seconds, for the sale window */
} sk_store_grab_t;

typedef struct sk_store_revoke {
    sk_store_op_t op;
    const char *jti; /* NUL-terminated */
    int64_t expires_at;
} sk_store_revoke_t;

/* A token from a user's grab bucket shared by every instance (see sk_store_rate_take). */
typedef struct sk_store_rate_take {
    sk_store_op_t op;
    h2o_iovec_t user;
    double rate;   /* tokens a second, > 0 */
    int64_t burst; /* bucket size, >= 1 */
    /* result, on SK_STORE_LIMITED */
    int64_t retry_after_usec;
} sk_store_rate_take_t;

/* One page of the coupons on sale, for the live sale view (GET /status.json): every
 * seller's, or one seller's, in creation order. */
typedef struct sk_store_coupon_catalog {
    sk_store_op_t op;
    h2o_iovec_t seller; /* only this seller's coupons; empty: every seller's */
    int64_t page;       /* 1-based, SK_STORE_CATALOG_PAGE_SIZE a page; past the end: none */
    /* results, on SK_STORE_OK */
    sk_store_coupon_item_t *items; /* `left` exact, as in sk_store_coupon_list */
    size_t count;
    int64_t total; /* coupons on every page */
} sk_store_coupon_catalog_t;

/*
 * The figures of the live sale view: grab answers by outcome and their latency, per
 * second. The api counts them (api/metrics.c); a store that serves several instances
 * (sk_store_shares_sale_figures) adds every instance's together.
 */
#define SK_STORE_SALE_OUTCOMES 4 /* granted, sold out, already held, rejected */
/* Buckets of the latency histogram; api/metrics.h says which microseconds each holds. */
#define SK_STORE_SALE_LATENCY_BUCKETS 208
#define SK_STORE_SALE_WINDOW 60 /* seconds that sk_store_sale_read reads */

typedef struct sk_store_sale_second {
    int64_t second; /* Unix seconds */
    uint64_t outcomes[SK_STORE_SALE_OUTCOMES];
    uint64_t latency[SK_STORE_SALE_LATENCY_BUCKETS];
} sk_store_sale_second_t;

typedef struct sk_store_sale_read {
    sk_store_op_t op;
    int64_t first_second; /* the window: SK_STORE_SALE_WINDOW seconds from this one */
    /* results, on SK_STORE_OK */
    uint64_t outcomes[SK_STORE_SALE_WINDOW][SK_STORE_SALE_OUTCOMES]; /* oldest first */
    uint64_t latency[SK_STORE_SALE_LATENCY_BUCKETS];                 /* the whole window */
    int64_t instances; /* instances that reported in the last few seconds, at least 1 */
} sk_store_sale_read_t;

/* Metrics a store reports; read without locks, so each value may be a moment old. */
typedef struct sk_store_stats {
    uint64_t journal_backlog;  /* operations waiting to be committed */
    uint64_t journal_batches;  /* transactions committed */
    uint64_t journal_ops;      /* operations committed */
    uint64_t journal_failures; /* transactions that failed and were rolled back */
    uint64_t
        batch_size_buckets[8]; /* batches of <=1, <=4, <=16, <=64, <=256, <=1024, <=4096, more */
    uint64_t commit_usec_buckets[8]; /* commits of <=100us, <=300us, <=1ms, <=3ms, <=10ms, <=30ms,
                                        <=100ms, more */
    uint64_t commit_usec_sum;
    /* Embedded: every change written to the grant logs longer ago than this is in SQLite
     * (0 when nothing waits). */
    uint64_t journal_lag_usec;
    uint64_t redis_errors, sql_errors; /* failed calls to each backend (distributed only) */
    uint64_t grabs_waiting; /* grabs waiting for a pending grant's outcome (embedded only) */
} sk_store_stats_t;

/* Per worker thread: completions are delivered through `queue`, the queue of the worker's
 * `loop`; a store may also put its own connections on that loop. */
sk_store_thread_t *sk_store_thread_create(sk_store_t *store, h2o_loop_t *loop,
                                          h2o_multithread_queue_t *queue);

/* Call on the thread's own loop, after every operation it started has completed. */
void sk_store_thread_destroy(sk_store_t *store, sk_store_thread_t *thread);

/* Registers a user. Result: OK, DUPLICATE or UNAVAILABLE. Durable before on_done(OK). */
void sk_store_user_register(sk_store_t *store, sk_store_thread_t *thread,
                            sk_store_user_register_t *op);

/* Finds a user for login. Result: OK, NOT_FOUND, or UNAVAILABLE (the distributed store
 * could not reach SQL for a user it has not cached). */
void sk_store_user_find(sk_store_t *store, sk_store_thread_t *thread, sk_store_user_find_t *op);

/* A seller publishes a coupon. Result: OK, DUPLICATE, NOT_FOUND (no seller of that name
 * and op->seller_id) or UNAVAILABLE. Durable before OK. */
void sk_store_coupon_create(sk_store_t *store, sk_store_thread_t *thread,
                            sk_store_coupon_create_t *op);

/* One page of a seller's coupons (creation order) or a customer's (grab order). Result: OK
 * (with kind, items, count) or NOT_FOUND. */
void sk_store_coupon_list(sk_store_t *store, sk_store_thread_t *thread, sk_store_coupon_list_t *op);

/* A customer grabs one coupon. Result: OK (durable), NO_SUCH_COUPON, NOT_STARTED, ENDED,
 * SOLD_OUT, ALREADY_HELD (checked in that order), NOT_FOUND (no such customer, see
 * customer_id) or UNAVAILABLE (nothing taken). */
void sk_store_grab(sk_store_t *store, sk_store_thread_t *thread, sk_store_grab_t *op);

/* Revokes a token id until `expires_at`. Result: OK (durable) or UNAVAILABLE. */
void sk_store_revoke(sk_store_t *store, sk_store_thread_t *thread, sk_store_revoke_t *op);

/* 1 when this store keeps rate-limit buckets shared by every instance (then use
 * sk_store_rate_take), 0 when a process-local limiter is exact. */
int sk_store_shares_rate_limits(sk_store_t *store);

/* Takes a token from `user`'s bucket, shared by every instance. Result: OK, LIMITED (with
 * retry_after_usec) or UNAVAILABLE. Only when sk_store_shares_rate_limits. */
void sk_store_rate_take(sk_store_t *store, sk_store_thread_t *thread, sk_store_rate_take_t *op);

/* One page of the coupons on sale. Result: OK (an unknown seller, or a customer, has none)
 * or UNAVAILABLE. */
void sk_store_coupon_catalog(sk_store_t *store, sk_store_thread_t *thread,
                             sk_store_coupon_catalog_t *op);

/* 1 when the store adds up the sale figures of every instance (then publish them with
 * sk_store_sale_publish, read them with sk_store_sale_read); 0 when the process's own
 * figures are the whole story. */
int sk_store_shares_sale_figures(sk_store_t *store);

/* Adds `count` seconds of this instance's figures (increments since the last call) to
 * the shared ones, and marks this instance as reporting even when `count` is 0. Blocks
 * for one backend round trip (connecting first if needed, at most about a second): call
 * it from one thread of the caller's, never from a worker. Returns 0, or SK_EUNAVAILABLE
 * when the backend failed (nothing or all of it was added). */
int sk_store_sale_publish(sk_store_t *store, const sk_store_sale_second_t *seconds, size_t count);

/* Reads the shared figures of every instance. Result: OK or UNAVAILABLE. */
void sk_store_sale_read(sk_store_t *store, sk_store_thread_t *thread, sk_store_sale_read_t *op);

/* Whether `jti` was revoked. Thread-safe; holds a mutex for one hash lookup. Revocations
 * are pruned SK_STORE_REVOCATION_GRACE seconds after their expiry, at start and at least
 * once a minute (memory and SQL). */
int sk_store_is_revoked(sk_store_t *store, const char *jti);

/* A counter that changes whenever a token is revoked: caches of verified tokens compare it
 * to know when they must consult sk_store_is_revoked again. */
uint64_t sk_store_revocation_epoch(sk_store_t *store);

/*
 * The deployment's id: SK_STORE_DEPLOYMENT_ID_LEN hex characters, NUL-terminated, created
 * at random with the database and kept in its SQL `settings` table, so that tokens of an
 * earlier database (wiped, same secret) can be told apart. NULL while not known yet (the
 * distributed store before SQL first answered). Thread-safe, lock-free; once known it
 * never changes and stays valid as long as the store.
 */
const char *sk_store_deployment_id(sk_store_t *store);

/* 1 when `text` (NUL-terminated) is a deployment id as the stores make them: exactly
 * SK_STORE_DEPLOYMENT_ID_LEN lowercase hex digits. For the stores' loaders. */
int sk_store_deployment_id_is_valid(const char *text);

/* 1 when every backend answers. */
int sk_store_is_ready(sk_store_t *store);

void sk_store_stats(sk_store_t *store, sk_store_stats_t *out);

/* Makes every acknowledged operation durable and stops accepting new ones; for shutdown. */
int sk_store_drain(sk_store_t *store);

void sk_store_destroy(sk_store_t *store);

#endif
