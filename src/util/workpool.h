/*
 * A pool of threads for blocking work (a slow hash, a SQL call) whose results go back to
 * the event loop that asked: a job runs on one of the pool's threads, then its `done` runs
 * on the thread owning the receiver it was submitted with, woken through that loop's h2o
 * multithread queue. The loops never block; the pool never touches a loop's state.
 *
 * Jobs run in the order they were submitted (first in, first out), each on whichever
 * thread is free. Destroying the pool runs every job already queued, then joins.
 */
#ifndef SK_UTIL_WORKPOOL_H
#define SK_UTIL_WORKPOOL_H

#include <h2o.h>

typedef struct sk_workpool sk_workpool_t;
typedef struct sk_workpool_job sk_workpool_job_t;

/* Embedded in the caller's job; lives until `done` has run. */
struct sk_workpool_job {
    /* On a pool thread. `thread_state` is that thread's own slot: NULL when the thread
     * starts, kept between its jobs (a connection opened lazily, say), and handed to the
     * pool's thread_exit when the thread stops. */
    void (*run)(sk_workpool_job_t *job, void **thread_state);
    /* On the receiver's thread, after run. */
    void (*done)(sk_workpool_job_t *job);
    /* private: on the pool's queue, then on the receiver's */
    h2o_multithread_message_t _message;
    h2o_multithread_receiver_t *_reply_to;
};

typedef struct sk_workpool_config {
    int threads;      /* at least 1 */
    const char *name; /* the module named in log lines */
    /* Optional: on each pool thread as it stops, with its thread_state (even if NULL). */
    void (*thread_exit)(void *thread_state, void *data);
    void *data;
} sk_workpool_config_t;

/* Starts config->threads threads. Returns NULL (logged) on failure; no thread is left. */
sk_workpool_t *sk_workpool_create(const sk_workpool_config_t *config);

/* Waits for every queued job to run (their `done`s are sent, not waited for), stops and
 * joins the threads, frees the pool. No submit may race with or follow it. */
void sk_workpool_destroy(sk_workpool_t *pool);

/* Registers `receiver` on a loop's queue as the end through which jobs submitted with it
 * complete. One per loop thread is enough for any number of pools; dispose of it on that
 * thread once no job submitted with it is in flight. */
void sk_workpool_receiver_init(h2o_multithread_receiver_t *receiver,
                               h2o_multithread_queue_t *queue);
void sk_workpool_receiver_dispose(h2o_multithread_receiver_t *receiver);

/* Queues `job` (job->run and job->done set). Thread-safe. job->done runs later, never
 * inside this call, on the thread owning `reply_to`. */
void sk_workpool_submit(sk_workpool_t *pool, h2o_multithread_receiver_t *reply_to,
                        sk_workpool_job_t *job);

#endif
