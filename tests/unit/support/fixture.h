/*
 * What several unit tests need around the code under test: an h2o loop with its
 * multithread queue, as a worker thread has, and a local store on a fresh temporary
 * SQLite file with one store thread on that loop.
 */
#ifndef SK_TEST_FIXTURE_H
#define SK_TEST_FIXTURE_H

#include <h2o.h>

#include "store/store.h"

/* A loop and the queue through which other threads complete work on it. */
void sk_test_loop_create(h2o_evloop_t **loop, h2o_multithread_queue_t **queue);
void sk_test_loop_destroy(h2o_evloop_t *loop, h2o_multithread_queue_t *queue);

/* Runs `loop` until *counter reaches `target`, for at most ten seconds. Returns *counter. */
int sk_test_run_until(h2o_evloop_t *loop, const int *counter, int target);

typedef struct sk_test_store {
    char dir[64];
    char db_path[128];
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
    sk_store_t *store;
    sk_store_thread_t *thread;
    h2o_mem_pool_t pool;
} sk_test_store_t;

/* Creates /tmp/sk-test-<name>-XXXXXX, opens a store on its seckill.db and a store thread
 * on a new loop. Returns 0, or -1 when something could not be made. */
int sk_test_store_open(sk_test_store_t *t, const char *name);

/* Closes the store (when open), the loop, and removes the directory with its files. */
void sk_test_store_close(sk_test_store_t *t);

#endif
