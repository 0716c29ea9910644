/* Shared unit-test fixtures (see fixture.h). */
#include "fixture.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/local/store_local.h"

void sk_test_loop_create(h2o_evloop_t **loop, h2o_multithread_queue_t **queue)
{
    *loop = h2o_evloop_create();
    *queue = h2o_multithread_create_queue(*loop);
}

void sk_test_loop_destroy(h2o_evloop_t *loop, h2o_multithread_queue_t *queue)
{
    h2o_multithread_destroy_queue(queue);
#if H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR == 2
    /* h2o 2.2's evloop flavour closes the queue's socket but never frees the queue. */
    free(queue);
#endif
    h2o_evloop_run(loop, 0); /* let the loop close the queue's socket */
    h2o_evloop_destroy(loop);
}

int sk_test_run_until(h2o_evloop_t *loop, const int *counter, int target)
{
    for (int i = 0; *counter < target && i < 1000; i++)
        h2o_evloop_run(loop, 10);
    return *counter;
}

int sk_test_store_open(sk_test_store_t *t, const char *name)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/sk-test-%s-XXXXXX", name);
    if (mkdtemp(t->dir) == NULL)
        return -1;
    snprintf(t->db_path, sizeof(t->db_path), "%s/seckill.db", t->dir);
    sk_test_loop_create(&t->loop, &t->queue);
    h2o_mem_init_pool(&t->pool);
    t->store = sk_store_local_create(t->db_path, 0);
    if (t->store == NULL)
        return -1;
    t->thread = sk_store_thread_create(t->store, t->loop, t->queue);
    return t->thread != NULL ? 0 : -1;
}

void sk_test_store_close(sk_test_store_t *t)
{
    if (t->store != NULL) {
        sk_store_thread_destroy(t->store, t->thread);
        sk_store_destroy(t->store);
    }
    h2o_mem_clear_pool(&t->pool);
    sk_test_loop_destroy(t->loop, t->queue);
    static const char *const names[] = {"seckill.db", "seckill.db-wal", "seckill.db-shm",
                                        "seckill.db-journal"};
    char path[512];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", t->dir, names[i]);
        unlink(path);
    }
    /* The grant log's segments: none after a clean close, some after a test's crash. */
    char log_dir[192];
    snprintf(log_dir, sizeof(log_dir), "%s/seckill.db-log", t->dir);
    DIR *listing = opendir(log_dir);
    if (listing != NULL) {
        struct dirent *item;
        while ((item = readdir(listing)) != NULL) {
            if (item->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "%s/%s", log_dir, item->d_name);
            unlink(path);
        }
        closedir(listing);
    }
    rmdir(log_dir);
    rmdir(t->dir);
}
