/*
 * The distributed deployment's store: hot state in Redis (standalone or Cluster), the
 * durable SQL copy in MySQL/MariaDB, shared by any number of instances (DESIGN.md "Two
 * deployments").
 *
 * - A grab is one Lua script call on the worker's own pipelined Redis connections; the
 *   script's stream entry is the grant's durable record (Redis runs with AOF) before the
 *   201. The persister (persister.h) copies the streams into SQL.
 * - Users, coupon creations and revocations are written to SQL first, on a small pool of
 *   SQL threads (never on an event loop), then to Redis.
 * - Revocations reach every instance through a Redis stream that a listener thread follows
 *   (and SQL at start); users are cached in memory once found (they never change).
 * - A backend that does not answer makes the operations that need it UNAVAILABLE (503);
 *   the instance keeps running and reconnects.
 */
#ifndef SK_STORE_DISTRIBUTED_STORE_REDIS_H
#define SK_STORE_DISTRIBUTED_STORE_REDIS_H

#include "store/store.h"

typedef struct sk_store_redis_options {
    const char *redis_url, *mysql_url;
    unsigned startup_wait_ms; /* how long create waits for the backends and the hot state */
    int wait_replicas;        /* --redis-wait-replicas */
    unsigned wait_timeout_ms; /* --redis-wait-timeout */
} sk_store_redis_options_t;

/* Parses both URLs and starts the threads. Returns NULL after logging why (a malformed
 * URL). Unreachable backends are not an error here: the store reports not ready and
 * retries. */
sk_store_t *sk_store_redis_create(const sk_store_redis_options_t *options);

#endif
