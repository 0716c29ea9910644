/*
 * The blocking work pool (see workpool.h). Queued jobs wait on one mutex-protected list,
 * linked by the same h2o message that later carries them back: a job is on the pool's
 * list or on a receiver's queue, never both.
 */
#include "util/workpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

struct sk_workpool {
    sk_workpool_config_t config;
    pthread_mutex_t lock;
    pthread_cond_t wakeup;
    h2o_linklist_t queued; /* guarded by lock, of sk_workpool_job_t._message.link */
    int stopping;          /* guarded by lock */
    pthread_t *threads;
    int thread_count;
};

static void *pool_main(void *arg)
{
    sk_workpool_t *pool = arg;
    void *thread_state = NULL;
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        while (h2o_linklist_is_empty(&pool->queued) && !pool->stopping)
            pthread_cond_wait(&pool->wakeup, &pool->lock);
        /* A stop waits for the queue to empty: every queued job still runs. */
        if (h2o_linklist_is_empty(&pool->queued)) {
            pthread_mutex_unlock(&pool->lock);
            break;
        }
        sk_workpool_job_t *job =
            H2O_STRUCT_FROM_MEMBER(sk_workpool_job_t, _message.link, pool->queued.next);
        h2o_linklist_unlink(&job->_message.link);
        pthread_mutex_unlock(&pool->lock);

        job->run(job, &thread_state);
        h2o_multithread_send_message(job->_reply_to, &job->_message);
    }
    if (pool->config.thread_exit != NULL)
        pool->config.thread_exit(thread_state, pool->config.data);
    return NULL;
}

static void on_jobs_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        sk_workpool_job_t *job =
            H2O_STRUCT_FROM_MEMBER(sk_workpool_job_t, _message.link, messages->next);
        h2o_linklist_unlink(&job->_message.link);
        job->done(job);
    }
}

void sk_workpool_receiver_init(h2o_multithread_receiver_t *receiver, h2o_multithread_queue_t *queue)
{
    h2o_multithread_register_receiver(queue, receiver, on_jobs_done);
}

void sk_workpool_receiver_dispose(h2o_multithread_receiver_t *receiver)
{
    h2o_multithread_unregister_receiver(receiver->queue, receiver);
}

sk_workpool_t *sk_workpool_create(const sk_workpool_config_t *config)
{
    sk_workpool_t *pool = calloc(1, sizeof(*pool));
    if (pool == NULL) {
        sk_log(SK_LOG_ERROR, config->name, "out of memory for the work pool");
        return NULL;
    }
    pool->config = *config;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wakeup, NULL);
    h2o_linklist_init_anchor(&pool->queued);
    pool->threads =
        calloc((size_t)(config->threads > 0 ? config->threads : 1), sizeof(pool->threads[0]));
    if (pool->threads == NULL) {
        sk_log(SK_LOG_ERROR, config->name, "out of memory for the work pool");
        goto fail;
    }
    for (; pool->thread_count < config->threads; ++pool->thread_count) {
        int error = pthread_create(&pool->threads[pool->thread_count], NULL, pool_main, pool);
        if (error != 0) {
            sk_log(SK_LOG_ERROR, config->name, "pthread_create failed: %s", strerror(error));
            goto fail;
        }
    }
    return pool;
fail:
    sk_workpool_destroy(pool);
    return NULL;
}

void sk_workpool_destroy(sk_workpool_t *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->stopping = 1;
    pthread_cond_broadcast(&pool->wakeup);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i != pool->thread_count; ++i)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    pthread_cond_destroy(&pool->wakeup);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}

void sk_workpool_submit(sk_workpool_t *pool, h2o_multithread_receiver_t *reply_to,
                        sk_workpool_job_t *job)
{
    job->_reply_to = reply_to;
    memset(&job->_message, 0, sizeof(job->_message));
    pthread_mutex_lock(&pool->lock);
    h2o_linklist_insert(&pool->queued, &job->_message.link);
    pthread_cond_signal(&pool->wakeup);
    pthread_mutex_unlock(&pool->lock);
}
