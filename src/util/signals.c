/*
 * Stop signals (see signals.h). The signal thread is the only one that ever sees SIGTERM,
 * SIGINT or SIGHUP; it turns a stop into a flag plus a condition variable that main() and
 * the start-up waits read, so no code runs in signal context. A second stop signal during
 * the drain is logged and changes nothing: the drain is already as fast as it may be
 * without losing an acknowledged grant.
 */
#include "util/signals.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "util/error.h"
#include "util/log.h"

static _Atomic int stop_requested;
static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_changed;

static void stop_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
}

void sk_signals_request_stop(void)
{
    pthread_mutex_lock(&stop_lock);
    atomic_store(&stop_requested, 1);
    pthread_cond_broadcast(&stop_changed);
    pthread_mutex_unlock(&stop_lock);
}

int sk_signals_stop_requested(void)
{
    return atomic_load(&stop_requested);
}

void sk_signals_wait_for_stop(void)
{
    pthread_mutex_lock(&stop_lock);
    while (!atomic_load(&stop_requested))
        pthread_cond_wait(&stop_changed, &stop_lock);
    pthread_mutex_unlock(&stop_lock);
}

int sk_signals_sleep_ms(unsigned ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&stop_lock);
    while (!atomic_load(&stop_requested) &&
           pthread_cond_timedwait(&stop_changed, &stop_lock, &deadline) != ETIMEDOUT)
        ;
    int stopped = atomic_load(&stop_requested);
    pthread_mutex_unlock(&stop_lock);
    return stopped;
}

static void *signal_thread_main(void *arg)
{
    (void)arg;
    sigset_t set;
    stop_signal_set(&set);
    for (;;) {
        int signal_number = 0;
        if (sigwait(&set, &signal_number) != 0)
            continue;
        const char *name = signal_number == SIGTERM  ? "SIGTERM"
                           : signal_number == SIGINT ? "SIGINT"
                                                     : "SIGHUP";
        if (signal_number == SIGHUP) {
            sk_log(SK_LOG_WARN, "signals",
                   "SIGHUP: ignored (seckill has no configuration to reload; restart it to "
                   "change options)");
            continue;
        }
        if (sk_signals_stop_requested()) {
            sk_log(SK_LOG_INFO, "signals", "%s: already stopping", name);
            continue;
        }
        sk_log(SK_LOG_INFO, "signals", "%s: stopping", name);
        sk_signals_request_stop();
    }
    return NULL;
}

int sk_signals_start(void)
{
    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    /* Timed waits measure intervals: a clock step must not stretch them. */
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    pthread_cond_init(&stop_changed, &attributes);
    pthread_condattr_destroy(&attributes);

    sigset_t set;
    stop_signal_set(&set);
    int error = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (error != 0) {
        sk_log(SK_LOG_ERROR, "signals", "pthread_sigmask failed: %s", strerror(error));
        return SK_EIO;
    }
    signal(SIGPIPE, SIG_IGN);
    pthread_t thread;
    error = pthread_create(&thread, NULL, signal_thread_main, NULL);
    if (error != 0) {
        sk_log(SK_LOG_ERROR, "signals", "pthread_create failed: %s", strerror(error));
        return SK_EIO;
    }
    /* It lives as long as the process: nothing joins it. */
    pthread_detach(thread);
    return 0;
}
