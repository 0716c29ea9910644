/*
 * What the four files of the distributed store share (store_redis.c: the operations;
 * sql_jobs.c: the SQL calls on a work pool; revocation_listener.c: the thread that
 * follows other instances' logouts; sale_figures.c: the live sale view's figures).
 * Private to those files.
 */
#ifndef SK_STORE_DISTRIBUTED_STORE_REDIS_INTERNAL_H
#define SK_STORE_DISTRIBUTED_STORE_REDIS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/mysql/mysql.h"
#include "client/redis/async.h"
#include "client/redis/cluster.h"
#include "store/counters.h"
#include "store/distributed/hot_state.h"
#include "store/distributed/persister.h"
#include "store/revocations.h"
#include "store/store_internal.h"
#include "util/index.h"
#include "util/workpool.h"

#define SQL_TIMEOUT_MS 2000
#define REVOCATIONS_SEEN_KEY "sk:revocations:seen" /* hash: instance → "last-id unix-ms" */

typedef struct sk__redis_store {
    sk_store_t super;
    sk_redis_config_t redis_config;
    sk_redis_async_options_t redis_options; /* of every worker's client */
    sk_redis_sentinel_t *sentinel;          /* redis-sentinel:// only: the watcher */
    sk_mysql_config_t mysql_config;
    sk_hot_state_t hot;
    char consumer[128];
    sk_index_t *users, *sold_out;
    sk_revocations_t *revoked;
    /* Read from SQL by the listener before it reports the revocations loaded; published
     * by deployment_known (release), never changed after. */
    char deployment_id[SK_STORE_DEPLOYMENT_ID_LEN + 1];
    _Atomic int deployment_known;
    sk_persister_health_t health;
    sk_store_counters_t counters;
    sk_persister_t *persister;

    sk_workpool_t *sql_jobs; /* NULL once drained */

    /* The live sale view's figures (sale_figures.c). */
    sk_redis_script_t sale_publish_script, sale_read_script;
    struct sk_redis_sync *sale_redis; /* the publisher's connection, made on first use */

    pthread_t listener;
    int listener_started;
    _Atomic int listener_stopping, revocations_loaded;
} sk__redis_store_t;

struct sk_store_thread {
    sk__redis_store_t *store;
    h2o_loop_t *loop;
    sk_redis_async_t *redis;
    h2o_multithread_receiver_t receiver; /* SQL completions */
    h2o_timeout_t logout_poll;           /* logouts waiting for the other instances */
    h2o_timeout_t undo_retry;            /* creations undone in Redis, waiting to try again */
    /* Grabs waiting for the end of the loop's turn, per shard (see flush_shard). */
    struct grab_batch *pending_grabs[SK_HOT_SHARDS];
    h2o_timeout_t flush_grabs;
    h2o_timeout_entry_t flush_grabs_entry;
};

/* ---- SQL jobs (sql_jobs.c) ---- */

typedef enum sk__sql_job_kind {
    SK__SQL_USER_REGISTER,
    SK__SQL_USER_FIND,
    SK__SQL_LIST_USER_FIND, /* the listed user's kind, for a coupon list */
    SK__SQL_COUPON_INSERT,
    SK__SQL_COUPON_DELETE,
    SK__SQL_REVOKE,
    SK__SQL_CATALOG /* a page of the live sale view: names and amounts (left from Redis) */
} sk__sql_job_kind_t;

typedef struct sk__sql_job sk__sql_job_t;
struct sk__sql_job {
    sk_workpool_job_t work;
    sk__sql_job_kind_t kind;
    sk_store_op_t *op;
    void (*then)(sk__sql_job_t *job); /* runs on the op's worker thread */
    sk_mysql_result_t result;
    int64_t coupon_id;
    int is_seller;
    int user_found; /* SK__SQL_COUPON_INSERT: the seller was found (in the cache or SQL) */
    int64_t user_id;
    char password_hash[256];
    /* SK__SQL_CATALOG: rows[SK_STORE_CATALOG_PAGE_SIZE] in the op's pool, filled by the job */
    sk_mysql_catalog_row_t *rows;
    size_t row_count;
    int64_t offset, total;
};

/* Starts the SQL threads (each connects when it first has a job). Returns 0 or SK_ENOMEM
 * (logged). */
int sk__sql_jobs_start(sk__redis_store_t *store);

/* Runs the queued jobs, then joins the SQL threads. Idempotent. */
void sk__sql_jobs_stop(sk__redis_store_t *store);

/* A job for `op` in op's pool, zeroed but for kind, op and then; op->_thread and
 * op->_store_data (the job) are set. Queue it with sk__sql_jobs_queue. */
sk__sql_job_t *sk__sql_jobs_prepare(sk_store_thread_t *thread, sk_store_op_t *op,
                                    sk__sql_job_kind_t kind, void (*then)(sk__sql_job_t *));

/* From here the job belongs to the SQL threads until its `then` runs. */
void sk__sql_jobs_queue(sk__sql_job_t *job);

/* sk__sql_jobs_prepare then sk__sql_jobs_queue. */
void sk__sql_jobs_submit(sk_store_thread_t *thread, sk_store_op_t *op, sk__sql_job_kind_t kind,
                         void (*then)(sk__sql_job_t *));

/* Registers / unregisters a worker's end of the SQL completions. */
void sk__sql_jobs_thread_init(sk_store_thread_t *thread, h2o_multithread_queue_t *queue);
void sk__sql_jobs_thread_dispose(sk_store_thread_t *thread);

/* ---- the revocation listener (revocation_listener.c) ---- */

/* Starts the thread that loads the revocations from SQL and follows the stream. Returns 0
 * or SK_EIO (logged). */
int sk__revocation_listener_start(sk__redis_store_t *store);

/* Sets listener_stopping and joins the thread (it sees the flag within LISTENER_STOP_MS).
 * Idempotent. */
void sk__revocation_listener_stop(sk__redis_store_t *store);

/* ---- the live sale view's figures (sale_figures.c) ---- */

/* Prepares the scripts; the connection is made on the first publish. */
void sk__sale_figures_init(sk__redis_store_t *store);
/* Closes the publisher's connection. */
void sk__sale_figures_dispose(sk__redis_store_t *store);
/* The vtable's sale_publish and sale_read (see store.h). */
int sk__sale_publish(sk_store_t *store, const sk_store_sale_second_t *seconds, size_t count);
void sk__sale_read(sk_store_thread_t *thread, sk_store_sale_read_t *op);

/* ---- small helpers of all four ---- */

static inline int64_t sk__unix_now(void)
{
    return (int64_t)time(NULL);
}

/* A Redis string reply holding a decimal integer, or `absent`. */
int64_t sk__redis_reply_int(const redisReply *value, int64_t absent);

#endif
