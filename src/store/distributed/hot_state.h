/*
 * The layout of the distributed deployment's hot state in Redis, shared by the store, the
 * persister, the loader and `seckill reconcile`: key names, the Lua scripts that change
 * them, and the loader that rebuilds them from SQL.
 *
 * Coupons are spread over SK_HOT_SHARDS shards by a hash of "seller/name". Every key one
 * grab touches carries its shard's hash tag, so one script call stays in one Redis Cluster
 * slot; each shard has its own grant stream. The tags are chosen so that shard i falls in
 * the i-th sixteenth of the slot space: any contiguous split of the slots over masters
 * spreads the shards evenly.
 *
 *   sk:{T}:c:SELLER/NAME   hash: amount left stock desc start end id [loading]
 *   sk:{T}:u:CUSTOMER      sorted set: "SELLER/NAME" the customer holds in this shard,
 *                          scored in grab order (microseconds; rebuilt ones: 1, 2, ...)
 *   sk:{T}:g               stream of grants, one entry per batch of grabs, one field
 *                          `g` per grant: "CUSTOMER\nSELLER\nNAME\nLEFT\nT\nORDER" (LEFT
 *                          after the grant, T Unix seconds, ORDER the grab order:
 *                          Redis's clock in microseconds; no name holds a newline)
 *   sk:{T}:f               counter: the persister's fence (--redis-wait-replicas),
 *                          INCRed before a WAIT so that the WAIT covers the shard
 *   sk:{T}:s:SELLER        sorted set: the seller's coupon names scored by SQL id
 *                          (creation order); T is the seller's shard
 *   sk:ready               present once the hot state is complete (loaded or born here)
 *   sk:loading             the loader's lock
 *   sk:revocations         stream of revoked token ids: j (jti) e (expires_at)
 *   sk:rl:{USER}           --rate-limit: the user's bucket (its theoretical arrival time)
 *   sk:sale:{live}:...     the live sale view's figures (see sale_figures.c): not hot
 *                          state, outside the sk:{T}: pattern that reconcile scans
 *
 * `/` cannot occur in a user or coupon name (API.md), so "SELLER/NAME" is unambiguous.
 * The shard function (sk_index_hash modulo 16) and the tags must never change: they are
 * part of the data's layout.
 */
#ifndef SK_STORE_DISTRIBUTED_HOT_STATE_H
#define SK_STORE_DISTRIBUTED_HOT_STATE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "client/mysql/mysql.h"
#include "client/redis/cluster.h"
#include "client/redis/sync.h"

#define SK_HOT_SHARDS 16
#define SK_HOT_TAG_MAX 8
#define SK_HOT_GRAB_BATCH 32     /* grabs per script call at most */
#define SK_HOT_GROUP "persister" /* the consumer group of every grant stream */
#define SK_HOT_READY_KEY "sk:ready"
#define SK_HOT_LOADING_KEY "sk:loading"
#define SK_HOT_REVOCATIONS_KEY "sk:revocations"

/* Results of the grab script, its reply's first element. */
typedef enum sk_hot_grab_code {
    SK_HOT_GRANTED = 0,
    SK_HOT_NO_SUCH_COUPON,
    SK_HOT_NOT_STARTED,
    SK_HOT_ENDED,
    SK_HOT_SOLD_OUT,
    SK_HOT_ALREADY_HELD,
    SK_HOT_LOADING /* the coupon is being rebuilt from SQL: try again */
} sk_hot_grab_code_t;

typedef struct sk_hot_state {
    char tags[SK_HOT_SHARDS][SK_HOT_TAG_MAX];
    /* A batch of grabs (see grab_source in hot_state.c).
     * KEYS: per grab: coupon, the customer's holdings, the shard's stream.
     * ARGV: per grab: customer, seller, name, "seller/name", now (Unix seconds).
     * Reply: per grab "code left start end" (start and end "-" when absent). */
    sk_redis_script_t grab;
    /* KEYS: coupon, then one holdings key per holder given.
     * ARGV: first (1/0), last (1/0), amount, left, stock, desc, start, end, id,
     * "seller/name", then one score per holder.
     * Creates the coupon when `first` and it is absent or half-loaded (returns 0 when it
     * exists complete), adds the holders, clears the loading mark when `last`. */
    sk_redis_script_t load;
    /* KEYS: coupon. The undo of a creation whose load call went unanswered (Redis may have
     * run it): deletes the coupon's hash unless a grab took one already (left < amount),
     * when the creation stands. Reply: 1 removed (or absent), 0 kept. */
    sk_redis_script_t unload;
    /* KEYS: stream. ARGV: ids. XACK then XDEL, atomically. */
    sk_redis_script_t ack;
    /* KEYS: the user's bucket. ARGV: microseconds per token, burst tolerance in
     * microseconds. A GCRA token bucket on Redis's clock (one clock for every instance).
     * Reply: 0 allowed, else the microseconds until a token. */
    sk_redis_script_t rate;
} sk_hot_state_t;

void sk_hot_state_init(sk_hot_state_t *hot);

/* The shard of coupon "seller/name" (or of a seller's list, for the seller alone). */
unsigned sk_hot_shard(const char *bytes, size_t len);

/* Writes "sk:{T}:<kind>:<a>[/<b>]" into `out` (at least SK_HOT_KEY_MAX bytes); returns its
 * length. `b` may be NULL. */
#define SK_HOT_KEY_MAX (16 + SK_HOT_TAG_MAX + 2 * 64 + 2)
size_t sk_hot_key(char *out, const sk_hot_state_t *hot, unsigned shard, char kind, const char *a,
                  size_t a_len, const char *b, size_t b_len);

/* A command of NUL-terminated words on the node of argv[1]'s slot (master < 0: argv[1] must
 * be the key) or on one master. */
redisReply *sk_hot_command(sk_redis_sync_t *redis, int master, int argc, const char **argv);

/* Logs a loud warning for every master that runs without AOF. Returns how many do. */
int sk_hot_state_check_aof(sk_redis_sync_t *redis);

/* Warns when a master has replicas but `wait_replicas` is 0 (a failover to a replica that
 * lagged loses acknowledged grants), and when `wait_replicas` exceeds the replicas a
 * master has connected (every grab would then answer 503). Returns how many masters got a
 * warning. */
int sk_hot_state_check_replicas(sk_redis_sync_t *redis, int wait_replicas);

/*
 * Rebuilds the hot state from SQL when Redis does not have it (no sk:ready), e.g. after
 * Redis lost its data: coupons with their `left`, holders and holdings, the sellers' lists.
 * Only one instance loads (the sk:loading lock); the others wait until sk:ready appears.
 * Coupons already in Redis are left as they are. Gives up (and the lock) as soon as
 * `*stopping` is set, between two coupons or 100 ms into a wait, so that a stop is never
 * held up by a long load. Returns 1 when it loaded, 0 when there was nothing to do, -1
 * when a backend failed or it gave up (the caller retries later).
 */
int sk_hot_state_ensure(const sk_hot_state_t *hot, sk_redis_sync_t *redis, sk_mysql_t *sql,
                        const _Atomic int *stopping);

/* Loads one coupon and its holders (idempotent; see the load script). Returns 0, or
 * SK_EUNAVAILABLE when Redis failed or refused a call. */
int sk_hot_state_load_coupon(const sk_hot_state_t *hot, sk_redis_sync_t *redis,
                             const sk_mysql_coupon_t *coupon, const char *const *customers,
                             const int64_t *scores, size_t holder_count);

/* Adds holders (and their holdings) to a coupon that exists, leaving `left` alone: for
 * `reconcile --repair`. Returns 0 or SK_EUNAVAILABLE. */
int sk_hot_state_add_holders(const sk_hot_state_t *hot, sk_redis_sync_t *redis,
                             const sk_mysql_coupon_t *coupon, const char *const *customers,
                             const int64_t *scores, size_t holder_count);

#endif
