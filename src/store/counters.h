/*
 * The durability writer's counters, shared by the embedded journal and the distributed
 * persister: batches written, their sizes and commit times, for /metrics. Updated by the
 * writer thread, read by any thread without locks.
 */
#ifndef SK_STORE_COUNTERS_H
#define SK_STORE_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

#include "store/store.h"

typedef struct sk_store_counters {
    _Atomic uint64_t backlog, batches, ops, failures, commit_usec_sum;
    _Atomic uint64_t batch_size_buckets[8], commit_usec_buckets[8];
} sk_store_counters_t;

/* Counts one committed batch of `size` operations that took `usec`. */
void sk_store_counters_batch(sk_store_counters_t *counters, uint64_t size, uint64_t usec);

/* Copies the counters into the journal fields of `out`. */
void sk_store_counters_read(sk_store_counters_t *counters, sk_store_stats_t *out);

/* Monotonic microseconds, for timing batches. */
int64_t sk_store_monotonic_usec(void);

#endif
