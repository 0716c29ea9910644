/*
 * The distributed store's SQL calls (see store_redis_internal.h): users, coupon rows and
 * revocations are written to (and users and the sale view's pages read from) MySQL on a
 * util/workpool of SQL_THREADS threads, each with its own connection, never on an event loop; the
 * job's continuation runs back on the op's worker thread.
 */
#include <stdio.h>

#include "store/distributed/store_redis_internal.h"
#include "util/error.h"
#include "util/log.h"

#define SQL_THREADS 4

static void run_job(sk_mysql_t *sql, sk__sql_job_t *job)
{
    sk_store_op_t *op = job->op;
    switch (job->kind) {
    case SK__SQL_USER_REGISTER: {
        sk_store_user_register_t *reg = (sk_store_user_register_t *)op;
        job->result =
            sk_mysql_user_insert(sql, reg->username.base, reg->username.len,
                                 reg->kind == SK_USER_SELLER, reg->password_hash, sk__unix_now());
        break;
    }
    case SK__SQL_USER_FIND:
    case SK__SQL_LIST_USER_FIND: {
        h2o_iovec_t name = job->kind == SK__SQL_LIST_USER_FIND
                               ? ((sk_store_coupon_list_t *)op)->username
                               : ((sk_store_user_find_t *)op)->username;
        job->result =
            sk_mysql_user_find(sql, name.base, name.len, &job->is_seller, job->password_hash,
                               sizeof(job->password_hash), &job->user_id);
        break;
    }
    case SK__SQL_COUPON_INSERT:
    case SK__SQL_COUPON_DELETE: {
        sk_store_coupon_create_t *create = (sk_store_coupon_create_t *)op;
        if (job->kind == SK__SQL_COUPON_DELETE) {
            job->result = sk_mysql_coupon_delete(sql, create->seller.base, create->seller.len,
                                                 create->name.base, create->name.len);
            break;
        }
        if (!job->user_found) {
            /* A well-signed token whose seller is not (or no longer) in SQL acts for nobody. */
            job->result =
                sk_mysql_user_find(sql, create->seller.base, create->seller.len, &job->is_seller,
                                   job->password_hash, sizeof(job->password_hash), &job->user_id);
            if (job->result != SK_MYSQL_OK || !job->is_seller ||
                job->user_id != create->seller_id) {
                if (job->result == SK_MYSQL_OK)
                    job->result = SK_MYSQL_NOT_FOUND;
                break;
            }
            job->user_found = 1;
        }
        sk_mysql_coupon_t row = {
            .seller = create->seller.base,
            .seller_len = create->seller.len,
            .name = create->name.base,
            .name_len = create->name.len,
            .description = create->description.base,
            .description_len = create->description.len,
            .amount = create->amount,
            .remaining = create->amount,
            .stock = create->stock,
            .has_start = create->start_at != SK_STORE_NO_TIME,
            .has_end = create->end_at != SK_STORE_NO_TIME,
            .start_at = create->start_at,
            .end_at = create->end_at,
            .created_at = sk__unix_now(),
        };
        job->result = sk_mysql_coupon_insert(sql, &row);
        job->coupon_id = row.id;
        break;
    }
    case SK__SQL_CATALOG: {
        sk_store_coupon_catalog_t *catalog = (sk_store_coupon_catalog_t *)op;
        job->result = sk_mysql_coupons_page(sql, catalog->seller.base, catalog->seller.len,
                                            job->offset, SK_STORE_CATALOG_PAGE_SIZE, job->rows,
                                            &job->row_count, &job->total);
        break;
    }
    case SK__SQL_REVOKE: {
        sk_store_revoke_t *revoke = (sk_store_revoke_t *)op;
        job->result = sk_mysql_revoke(sql, revoke->jti, revoke->expires_at);
        break;
    }
    }
}

/* One job on a SQL thread, whose connection (its thread_state) opens on its first job and
 * again after it was lost. */
static void run_sql_job(sk_workpool_job_t *work, void **thread_state)
{
    sk__sql_job_t *job = H2O_STRUCT_FROM_MEMBER(sk__sql_job_t, work, work);
    sk__redis_store_t *store = job->op->_thread->store;
    sk_mysql_t *sql = *thread_state;
    char error[256];
    if (sql == NULL) {
        sql = sk_mysql_connect(&store->mysql_config, SQL_TIMEOUT_MS, error, sizeof(error));
        if (sql != NULL && sk_mysql_ensure_schema(sql) != SK_MYSQL_OK) {
            snprintf(error, sizeof(error), "%s", sk_mysql_error(sql));
            sk_mysql_close(sql);
            sql = NULL;
        }
        if (sql == NULL)
            sk_log(SK_LOG_WARN, "store", "SQL unreachable: %s", error);
        *thread_state = sql;
    }
    if (sql != NULL) {
        run_job(sql, job);
    } else {
        job->result = SK_MYSQL_UNAVAILABLE;
    }
    if (job->result == SK_MYSQL_UNAVAILABLE) {
        atomic_fetch_add(&store->health.sql_errors, 1);
        atomic_store(&store->health.sql_ok, 0);
    }
}

static void close_connection(void *thread_state, void *data)
{
    (void)data;
    if (thread_state != NULL)
        sk_mysql_close(thread_state);
}

static void on_sql_done(sk_workpool_job_t *work)
{
    sk__sql_job_t *job = H2O_STRUCT_FROM_MEMBER(sk__sql_job_t, work, work);
    job->then(job);
}

int sk__sql_jobs_start(sk__redis_store_t *store)
{
    sk_workpool_config_t config = {
        .threads = SQL_THREADS,
        .name = "store",
        .thread_exit = close_connection,
    };
    store->sql_jobs = sk_workpool_create(&config);
    return store->sql_jobs != NULL ? 0 : SK_ENOMEM;
}

void sk__sql_jobs_stop(sk__redis_store_t *store)
{
    if (store->sql_jobs == NULL)
        return;
    sk_workpool_destroy(store->sql_jobs);
    store->sql_jobs = NULL;
}

sk__sql_job_t *sk__sql_jobs_prepare(sk_store_thread_t *thread, sk_store_op_t *op,
                                    sk__sql_job_kind_t kind, void (*then)(sk__sql_job_t *))
{
    sk__sql_job_t *job = h2o_mem_alloc_pool(op->pool, sizeof(*job));
    memset(job, 0, sizeof(*job));
    job->kind = kind;
    job->op = op;
    job->then = then;
    job->work.run = run_sql_job;
    job->work.done = on_sql_done;
    op->_thread = thread;
    op->_store_data = job;
    return job;
}

void sk__sql_jobs_queue(sk__sql_job_t *job)
{
    sk_store_thread_t *thread = job->op->_thread;
    sk_workpool_submit(thread->store->sql_jobs, &thread->receiver, &job->work);
}

void sk__sql_jobs_submit(sk_store_thread_t *thread, sk_store_op_t *op, sk__sql_job_kind_t kind,
                         void (*then)(sk__sql_job_t *))
{
    sk__sql_jobs_queue(sk__sql_jobs_prepare(thread, op, kind, then));
}

void sk__sql_jobs_thread_init(sk_store_thread_t *thread, h2o_multithread_queue_t *queue)
{
    sk_workpool_receiver_init(&thread->receiver, queue);
}

void sk__sql_jobs_thread_dispose(sk_store_thread_t *thread)
{
    sk_workpool_receiver_dispose(&thread->receiver);
}
