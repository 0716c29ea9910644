/*
 * A blocking Redis client, routed by slot for Redis Cluster, for the threads that may
 * block: the persister, the revocation listener, the start-up loader and `seckill
 * reconcile`. Never used on a worker's event loop. Behind Sentinel it asks the Sentinels
 * again at least once a second and follows the master they name.
 */
#ifndef SK_CLIENT_REDIS_SYNC_H
#define SK_CLIENT_REDIS_SYNC_H

#include <hiredis/hiredis.h>

#include "client/redis/cluster.h"

typedef struct sk_redis_sync sk_redis_sync_t;

/* Connects to the seed nodes and reads the slot map. Returns NULL with a message in `err`
 * when no seed answers. Every call below reconnects by itself after a failure. */
sk_redis_sync_t *sk_redis_sync_connect(const sk_redis_config_t *config, uint64_t timeout_ms,
                                       char *err, size_t errlen);
void sk_redis_sync_close(sk_redis_sync_t *client);

/* One command on the node of `slot_key`'s slot (argv[1] when NULL), following MOVED and
 * ASK. Returns the reply (free with freeReplyObject), or NULL when the node cannot be
 * reached. */
redisReply *sk_redis_sync_command(sk_redis_sync_t *client, const char *slot_key,
                                  size_t slot_key_len, int argc, const char **argv,
                                  const size_t *argvlen);

/* EVALSHA with the EVAL fallback on NOSCRIPT; slot of keys[0]. */
redisReply *sk_redis_sync_eval(sk_redis_sync_t *client, const sk_redis_script_t *script,
                               int numkeys, const char **keys, const size_t *keylens, int nargs,
                               const char **args, const size_t *arglens);

/* Makes sure that what the master of `fence_key`'s slot holds now is on `replicas`
 * replicas: INCR fence_key, then WAIT replicas timeout_ms on the same connection (the
 * INCR's place in the replication stream comes after every write the master ran before
 * it, on any connection). Returns how many replicas acknowledged, or -1 when the node
 * failed. */
int sk_redis_sync_fence(sk_redis_sync_t *client, const char *fence_key, size_t fence_key_len,
                        int replicas, unsigned timeout_ms);

/* The masters, for commands that concern every node (INFO persistence, SCAN, DBSIZE). */
size_t sk_redis_sync_master_count(sk_redis_sync_t *client);
redisReply *sk_redis_sync_command_on_master(sk_redis_sync_t *client, size_t master, int argc,
                                            const char **argv, const size_t *argvlen);

/* 1 when the deployment is a Redis Cluster. */
int sk_redis_sync_is_cluster(sk_redis_sync_t *client);

#endif
