/*
 * Tests of src/util/workpool.c: a job runs once on a pool thread, never inside submit, and
 * its done runs on the thread of the loop whose receiver it was submitted with (and only
 * that loop's); destroying the pool first runs every job still queued; each pool thread
 * keeps its own state slot between jobs and hands it to thread_exit; many threads
 * submitting at once lose no job.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "fixture.h"
#include "util/workpool.h"

typedef struct test_job {
    sk_workpool_job_t work;
    _Atomic int runs;
    pthread_t run_thread;
    int dones;
    int ran_before_done; /* runs was 1 when done ran */
    int done_on_loop_thread;
    int *completed; /* shared counter, may be NULL */
    unsigned sleep_us;
} test_job_t;

static pthread_t loop_thread;

static void sleep_us(unsigned us)
{
    struct timespec pause = {.tv_sec = 0, .tv_nsec = (long)us * 1000};
    nanosleep(&pause, NULL);
}

static void run_job(sk_workpool_job_t *work, void **thread_state)
{
    (void)thread_state;
    test_job_t *job = H2O_STRUCT_FROM_MEMBER(test_job_t, work, work);
    if (job->sleep_us != 0)
        sleep_us(job->sleep_us);
    job->run_thread = pthread_self();
    atomic_fetch_add(&job->runs, 1);
}

static void on_done(sk_workpool_job_t *work)
{
    test_job_t *job = H2O_STRUCT_FROM_MEMBER(test_job_t, work, work);
    ++job->dones;
    job->ran_before_done = atomic_load(&job->runs) == 1;
    job->done_on_loop_thread = pthread_equal(pthread_self(), loop_thread);
    if (job->completed != NULL)
        ++*job->completed;
}

static void job_init(test_job_t *job, int *completed)
{
    memset(job, 0, sizeof(*job));
    job->work.run = run_job;
    job->work.done = on_done;
    job->completed = completed;
}

/* A loop with its queue and one workpool receiver on it, as a worker thread has. */
typedef struct loop {
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
} loop_t;

static int loop_setup(void **state)
{
    loop_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    sk_test_loop_create(&f->loop, &f->queue);
    sk_workpool_receiver_init(&f->receiver, f->queue);
    *state = f;
    return 0;
}

static int loop_teardown(void **state)
{
    loop_t *f = *state;
    sk_workpool_receiver_dispose(&f->receiver);
    sk_test_loop_destroy(f->loop, f->queue);
    free(f);
    return 0;
}

static sk_workpool_t *pool_create(int threads)
{
    sk_workpool_config_t config = {.threads = threads, .name = "test"};
    sk_workpool_t *pool = sk_workpool_create(&config);
    assert_non_null(pool);
    return pool;
}

static void test_job_runs_on_pool_and_completes_on_loop(void **state)
{
    loop_t *f = *state;
    sk_workpool_t *pool = pool_create(2);
    loop_thread = pthread_self();

    test_job_t job;
    int completed = 0;
    job_init(&job, &completed);
    job.sleep_us = 20000; /* still running when submit returns */
    sk_workpool_submit(pool, &f->receiver, &job.work);
    assert_int_equal(job.dones, 0);
    assert_int_equal(sk_test_run_until(f->loop, &completed, 1), 1);
    assert_int_equal(atomic_load(&job.runs), 1);
    assert_int_equal(job.dones, 1);
    assert_int_equal(job.ran_before_done, 1);
    assert_int_equal(job.done_on_loop_thread, 1);
    assert_int_equal(pthread_equal(job.run_thread, loop_thread), 0);

    sk_workpool_destroy(pool);
}

/* Two loops: each job's done runs only when its own loop runs. */
static void test_completion_goes_to_the_submitting_loop(void **state)
{
    (void)state;
    h2o_evloop_t *loops[2];
    h2o_multithread_queue_t *queues[2];
    h2o_multithread_receiver_t receivers[2];
    for (int i = 0; i != 2; ++i) {
        sk_test_loop_create(&loops[i], &queues[i]);
        sk_workpool_receiver_init(&receivers[i], queues[i]);
    }
    sk_workpool_t *pool = pool_create(3);
    loop_thread = pthread_self();

    enum { JOBS = 10 };
    test_job_t jobs[JOBS];
    int completed[2] = {0, 0};
    for (int i = 0; i != JOBS; ++i) {
        job_init(&jobs[i], &completed[i % 2]);
        sk_workpool_submit(pool, &receivers[i % 2], &jobs[i].work);
    }
    /* Every job has run and its message waits on its loop's queue. */
    sk_workpool_destroy(pool);
    for (int turn = 0; turn != 5; ++turn)
        h2o_evloop_run(loops[1], 1);
    assert_int_equal(completed[1], JOBS / 2);
    assert_int_equal(completed[0], 0);
    for (int i = 0; i != JOBS; i += 2)
        assert_int_equal(jobs[i].dones, 0);
    assert_int_equal(sk_test_run_until(loops[0], &completed[0], JOBS / 2), JOBS / 2);
    for (int i = 0; i != JOBS; ++i) {
        assert_int_equal(jobs[i].dones, 1);
        assert_int_equal(atomic_load(&jobs[i].runs), 1);
    }
    for (int i = 0; i != 2; ++i) {
        sk_workpool_receiver_dispose(&receivers[i]);
        sk_test_loop_destroy(loops[i], queues[i]);
    }
}

/* One slow thread, a long queue, destroy at once: it returns after all of them ran. */
static void test_destroy_runs_the_queued_jobs(void **state)
{
    loop_t *f = *state;
    sk_workpool_t *pool = pool_create(1);
    loop_thread = pthread_self();

    enum { JOBS = 20 };
    test_job_t jobs[JOBS];
    int completed = 0;
    for (int i = 0; i != JOBS; ++i) {
        job_init(&jobs[i], &completed);
        jobs[i].sleep_us = 5000;
        sk_workpool_submit(pool, &f->receiver, &jobs[i].work);
    }
    sk_workpool_destroy(pool);
    for (int i = 0; i != JOBS; ++i)
        assert_int_equal(atomic_load(&jobs[i].runs), 1);
    assert_int_equal(completed, 0); /* done waits for the loop */
    assert_int_equal(sk_test_run_until(f->loop, &completed, JOBS), JOBS);
}

/* Each thread's slot: counts the jobs that thread ran; thread_exit adds the counts up. */
typedef struct slot_totals {
    pthread_mutex_t lock;
    int exits, jobs;
} slot_totals_t;

static void count_in_slot(sk_workpool_job_t *work, void **thread_state)
{
    if (*thread_state == NULL)
        *thread_state = calloc(1, sizeof(int));
    if (*thread_state == NULL)
        abort(); /* not a cmocka assert: this is a pool thread */
    ++*(int *)*thread_state;
    run_job(work, thread_state);
}

static void add_slot(void *thread_state, void *data)
{
    slot_totals_t *totals = data;
    pthread_mutex_lock(&totals->lock);
    ++totals->exits;
    if (thread_state != NULL)
        totals->jobs += *(int *)thread_state;
    pthread_mutex_unlock(&totals->lock);
    free(thread_state);
}

static void test_thread_state_kept_and_handed_to_thread_exit(void **state)
{
    loop_t *f = *state;
    slot_totals_t totals = {.lock = PTHREAD_MUTEX_INITIALIZER};
    sk_workpool_config_t config = {
        .threads = 3, .name = "test", .thread_exit = add_slot, .data = &totals};
    sk_workpool_t *pool = sk_workpool_create(&config);
    assert_non_null(pool);
    loop_thread = pthread_self();

    enum { JOBS = 50 };
    test_job_t jobs[JOBS];
    int completed = 0;
    for (int i = 0; i != JOBS; ++i) {
        job_init(&jobs[i], &completed);
        jobs[i].work.run = count_in_slot;
        sk_workpool_submit(pool, &f->receiver, &jobs[i].work);
    }
    sk_workpool_destroy(pool);
    assert_int_equal(totals.exits, 3);
    assert_int_equal(totals.jobs, JOBS);
    assert_int_equal(sk_test_run_until(f->loop, &completed, JOBS), JOBS);
}

/* Several threads submit at once to one pool and one loop. */
enum { PRODUCERS = 4, JOBS_EACH = 500 };

typedef struct producer {
    pthread_t thread;
    sk_workpool_t *pool;
    h2o_multithread_receiver_t *receiver;
    test_job_t *jobs;
} producer_t;

static void *produce(void *arg)
{
    producer_t *producer = arg;
    for (int i = 0; i != JOBS_EACH; ++i)
        sk_workpool_submit(producer->pool, producer->receiver, &producer->jobs[i].work);
    return NULL;
}

static void test_many_producers(void **state)
{
    loop_t *f = *state;
    sk_workpool_t *pool = pool_create(3);
    loop_thread = pthread_self();

    test_job_t *jobs = calloc(PRODUCERS * JOBS_EACH, sizeof(*jobs));
    assert_non_null(jobs);
    int completed = 0;
    for (int i = 0; i != PRODUCERS * JOBS_EACH; ++i)
        job_init(&jobs[i], &completed);
    producer_t producers[PRODUCERS];
    for (int p = 0; p != PRODUCERS; ++p) {
        producers[p] = (producer_t){
            .pool = pool, .receiver = &f->receiver, .jobs = jobs + (size_t)p * JOBS_EACH};
        assert_int_equal(pthread_create(&producers[p].thread, NULL, produce, &producers[p]), 0);
    }
    /* Completions arrive while the producers still submit. */
    assert_int_equal(sk_test_run_until(f->loop, &completed, PRODUCERS * JOBS_EACH),
                     PRODUCERS * JOBS_EACH);
    for (int p = 0; p != PRODUCERS; ++p)
        pthread_join(producers[p].thread, NULL);
    for (int i = 0; i != PRODUCERS * JOBS_EACH; ++i) {
        assert_int_equal(atomic_load(&jobs[i].runs), 1);
        assert_int_equal(jobs[i].dones, 1);
        assert_int_equal(jobs[i].ran_before_done, 1);
        assert_int_equal(jobs[i].done_on_loop_thread, 1);
    }
    sk_workpool_destroy(pool);
    h2o_evloop_run(f->loop, 0);
    assert_int_equal(completed, PRODUCERS * JOBS_EACH);
    free(jobs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_job_runs_on_pool_and_completes_on_loop, loop_setup,
                                        loop_teardown),
        cmocka_unit_test(test_completion_goes_to_the_submitting_loop),
        cmocka_unit_test_setup_teardown(test_destroy_runs_the_queued_jobs, loop_setup,
                                        loop_teardown),
        cmocka_unit_test_setup_teardown(test_thread_state_kept_and_handed_to_thread_exit,
                                        loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(test_many_producers, loop_setup, loop_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
