/*
 * The persister of the distributed deployment: one thread per instance that moves grants
 * from the Redis streams (written by the grab script, before the 201) into MySQL.
 *
 * It reads every shard's stream through the consumer group SK_HOT_GROUP under its own
 * consumer name, writes a batch to SQL in one idempotent transaction
 * (sk_mysql_grants_apply), and only then acknowledges and deletes the entries. A batch
 * that fails stays pending and is retried; entries another instance left pending for
 * longer than the claim age (it died) are claimed and written here. Once a second it also
 * makes sure the hot state exists (sk_hot_state_ensure: Redis lost its data → rebuild
 * from SQL) and reports whether each backend answers.
 */
#ifndef SK_STORE_DISTRIBUTED_PERSISTER_H
#define SK_STORE_DISTRIBUTED_PERSISTER_H

#include <stdatomic.h>

#include "store/counters.h"
#include "store/distributed/hot_state.h"
#include "client/mysql/mysql.h"
#include "client/redis/cluster.h"

typedef struct sk_persister sk_persister_t;

/* What the persister tells the rest of the store; it writes, anyone reads. */
typedef struct sk_persister_health {
    _Atomic int redis_ok, sql_ok, hot_state_ok;
    _Atomic int redis_cluster; /* 1 until a standalone Redis answered */
    _Atomic uint64_t redis_errors, sql_errors;
} sk_persister_health_t;

typedef struct sk_persister_config {
    const sk_hot_state_t *hot;
    const sk_redis_config_t *redis;
    const sk_mysql_config_t *mysql;
    const char *consumer;   /* this instance's consumer name in the group */
    unsigned claim_idle_ms; /* pending this long on another consumer: claim it */
    int wait_replicas;      /* --redis-wait-replicas: checked against the replicas at start */
    sk_persister_health_t *health;
    sk_store_counters_t *counters;
} sk_persister_config_t;

/* Starts the thread. The config's pointers must outlive the persister. NULL when the
 * thread cannot be started. */
sk_persister_t *sk_persister_start(const sk_persister_config_t *config);

/* Stops the thread, after writing to SQL every entry it can read now (for shutdown;
 * entries it cannot write stay pending in Redis for the next instance). Frees it. */
void sk_persister_stop(sk_persister_t *persister);

#define SK_PERSIST_OWN_PENDING 1 /* re-read what this consumer was given and did not ack */
#define SK_PERSIST_CLAIM 2       /* claim what others left pending for claim_idle_ms */

/* Reads every shard's stream once and writes what it read to SQL, then acknowledges it.
 * With `wait_replicas` > 0 nothing is written to SQL before that many replicas hold what
 * was read (sk_redis_sync_fence): a grant the master alone held, answered 503 and then
 * lost in a failover, must not reach SQL either. Also
 * the persister's step, also used by `seckill reconcile` and tests. Returns the number of
 * entries written, or -1 when a backend failed (*sql_failed tells which one; the entries
 * stay pending). */
long sk_persister_step(const sk_hot_state_t *hot, sk_redis_sync_t *redis, sk_mysql_t *sql,
                       const char *consumer, unsigned claim_idle_ms, int flags, int wait_replicas,
                       sk_store_counters_t *counters, int *sql_failed);

#endif
