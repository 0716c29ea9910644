/*
 * Redis Sentinel: which node is the master of a `redis-sentinel://...#name` URL now.
 *
 * sk_redis_sentinel_resolve asks the Sentinels in turn (blocking, for the threads that may
 * block: the persister, the revocation listener, `seckill reconcile`). The watcher is one
 * thread per process that keeps the answer for the worker loops, which must not block: it
 * subscribes to `+switch-master` on a Sentinel, asks again when told of a switch, when a
 * worker suspects the master (a broken connection, a READONLY answer), and once a second
 * in any case, and publishes each new master with a new generation number. A worker
 * compares the generation with the one it connected to (one relaxed atomic load) and
 * moves its connections when it changed.
 */
#ifndef SK_CLIENT_REDIS_SENTINEL_H
#define SK_CLIENT_REDIS_SENTINEL_H

#include <stdint.h>

#include "client/redis/cluster.h"

/* Asks the Sentinels of `config` (config->sentinel set) for the master's address, and
 * checks with ROLE that the node it names is a master. Returns 0, or SK_EUNAVAILABLE with
 * a message in `err` when no Sentinel names a reachable master. Each connection gets
 * `timeout_ms`. */
int sk_redis_sentinel_resolve(const sk_redis_config_t *config, uint64_t timeout_ms,
                              sk_redis_node_addr_t *master, char *err, size_t errlen);

typedef struct sk_redis_sentinel sk_redis_sentinel_t;

/* Starts the watcher thread; its first answer comes asynchronously. NULL when the thread
 * cannot start. `config` is copied. */
sk_redis_sentinel_t *sk_redis_sentinel_start(const sk_redis_config_t *config);

/* Stops the thread (within about 250 ms) and frees the watcher. */
void sk_redis_sentinel_stop(sk_redis_sentinel_t *sentinel);

/* The generation of the master known now: 0 while none is known, larger after each
 * change. Cheap; any thread. */
uint64_t sk_redis_sentinel_generation(const sk_redis_sentinel_t *sentinel);

/* Copies the master known now into `master` and returns its generation (0: none known,
 * `master` untouched). Any thread. */
uint64_t sk_redis_sentinel_master(sk_redis_sentinel_t *sentinel, sk_redis_node_addr_t *master);

/* Asks the watcher to check the master now rather than within the second: a connection to
 * it broke or it answered READONLY. Any thread. */
void sk_redis_sentinel_suspect(sk_redis_sentinel_t *sentinel);

#endif
