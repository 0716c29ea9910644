/* The durability writer's counters (see counters.h). */
#include "store/counters.h"

#include <time.h>

static void count_bucket(_Atomic uint64_t *buckets, uint64_t value, const uint64_t *bounds)
{
    size_t i = 0;
    while (i < 7 && value > bounds[i])
        ++i;
    atomic_fetch_add_explicit(&buckets[i], 1, memory_order_relaxed);
}

void sk_store_counters_batch(sk_store_counters_t *counters, uint64_t size, uint64_t usec)
{
    static const uint64_t size_bounds[7] = {1, 4, 16, 64, 256, 1024, 4096};
    static const uint64_t usec_bounds[7] = {100, 300, 1000, 3000, 10000, 30000, 100000};
    atomic_fetch_add_explicit(&counters->batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&counters->ops, size, memory_order_relaxed);
    atomic_fetch_add_explicit(&counters->commit_usec_sum, usec, memory_order_relaxed);
    count_bucket(counters->batch_size_buckets, size, size_bounds);
    count_bucket(counters->commit_usec_buckets, usec, usec_bounds);
}

void sk_store_counters_read(sk_store_counters_t *counters, sk_store_stats_t *out)
{
    out->journal_backlog = atomic_load_explicit(&counters->backlog, memory_order_relaxed);
    out->journal_batches = atomic_load_explicit(&counters->batches, memory_order_relaxed);
    out->journal_ops = atomic_load_explicit(&counters->ops, memory_order_relaxed);
    out->journal_failures = atomic_load_explicit(&counters->failures, memory_order_relaxed);
    out->commit_usec_sum = atomic_load_explicit(&counters->commit_usec_sum, memory_order_relaxed);
    for (int i = 0; i != 8; ++i) {
        out->batch_size_buckets[i] =
            atomic_load_explicit(&counters->batch_size_buckets[i], memory_order_relaxed);
        out->commit_usec_buckets[i] =
            atomic_load_explicit(&counters->commit_usec_buckets[i], memory_order_relaxed);
    }
}

int64_t sk_store_monotonic_usec(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}
