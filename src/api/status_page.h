/*
 * The live sale view (API.md "Operations"): GET /status, one HTML page compiled into the
 * binary (web/status.html), which polls GET /status.json once a second for every coupon's
 * `left` of `amount` and the grab answers of the last minute by outcome, with their
 * latency. In the distributed deployment a reporter thread adds this instance's figures
 * to the store's shared ones every second, so that every instance shows all of them.
 * The handlers are the api's (api_internal.h); this header is the module's lifecycle.
 */
#ifndef SK_API_STATUS_PAGE_H
#define SK_API_STATUS_PAGE_H

#include "api/metrics.h"
#include "store/store.h"

typedef struct sk_status_page sk_status_page_t;

/* Reads `metrics` and `store` (both must outlive it); starts the reporter thread when the
 * store adds up several instances' figures. NULL when out of memory or the thread cannot
 * start (logged). */
sk_status_page_t *sk_status_page_create(sk_metrics_t *metrics, sk_store_t *store);

/* Stops the reporter (within one store call) and frees. NULL is a no-op. */
void sk_status_page_destroy(sk_status_page_t *page);

#endif
