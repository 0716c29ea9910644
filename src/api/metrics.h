/*
 * Counters for /metrics (Prometheus text format 0.0.4): requests by route and status,
 * grab outcomes, request latency histograms by route, the store's journal figures, and,
 * read at each scrape, the HTTP server's connections and the process collector's standard
 * series (process_cpu_seconds_total, process_resident_memory_bytes, ...).
 *
 * Each worker thread owns one sk_metrics_thread_t and is its only writer, so counting is a
 * plain load and store (relaxed atomics: no lock prefix, no shared cache line); rendering
 * sums every thread's counters, each possibly a moment old.
 */
#ifndef SK_API_METRICS_H
#define SK_API_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "api/router.h"
#include "store/store.h"

#define SK_METRICS_STATUS_SLOTS 12
#define SK_METRICS_LATENCY_BUCKETS 14
#define SK_METRICS_GRAB_OUTCOMES 9

typedef struct sk_metrics sk_metrics_t;

typedef struct sk_metrics_thread {
    _Atomic uint64_t requests[SK_ROUTE_COUNT][SK_METRICS_STATUS_SLOTS];
    _Atomic uint64_t latency[SK_ROUTE_COUNT][SK_METRICS_LATENCY_BUCKETS];
    _Atomic uint64_t latency_usec_sum[SK_ROUTE_COUNT];
    _Atomic uint64_t grabs[SK_METRICS_GRAB_OUTCOMES]; /* by sk_store_result_t */
    struct sk_metrics_thread *next;
} sk_metrics_thread_t;

sk_metrics_t *sk_metrics_create(void);
void sk_metrics_destroy(sk_metrics_t *metrics);

/* A zeroed counter set for one thread, owned by `metrics`. Thread-safe. */
sk_metrics_thread_t *sk_metrics_thread_create(sk_metrics_t *metrics);

/* Counts one answered request. Only from the owning thread. */
void sk_metrics_count_request(sk_metrics_thread_t *counters, sk_route_id_t route, int status,
                              uint64_t elapsed_usec);

/* Counts one grab outcome. Only from the owning thread. */
void sk_metrics_count_grab(sk_metrics_thread_t *counters, sk_store_result_t outcome);

/* Renders every counter, `stats`, the build (`deployment`: "embedded" or "distributed"),
 * the HTTP server's connections and the process's figures as Prometheus text into a new
 * malloc'd string (the caller frees it), or NULL when out of memory. */
char *sk_metrics_render(sk_metrics_t *metrics, const sk_store_stats_t *stats,
                        const char *deployment, size_t *len);

#endif
