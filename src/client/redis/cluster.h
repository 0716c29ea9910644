/*
 * What both Redis clients (redis_async for the worker loops, redis_sync for the persister,
 * the start-up loader and `seckill reconcile`) share: the parsed `--redis` URL, the key →
 * slot hash of Redis Cluster, and the slot map read from `CLUSTER SLOTS`.
 *
 * Debian packages no Redis Cluster client for C (hiredis-vip / hiredis-cluster are not in
 * Debian 12), so the service keeps the slot map itself. A standalone Redis is a map whose
 * 16384 slots all belong to the one node.
 */
#ifndef SK_CLIENT_REDIS_CLUSTER_H
#define SK_CLIENT_REDIS_CLUSTER_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#define SK_REDIS_SLOTS 16384
#define SK_REDIS_MAX_NODES 64
#define SK_REDIS_HOST_MAX 256

typedef struct sk_redis_node_addr {
    char host[SK_REDIS_HOST_MAX];
    int port;
} sk_redis_node_addr_t;

/* `redis://[[user]:password@]host[:port][,host[:port]...][/db]`. Several hosts are seed
 * nodes of one Cluster (any one is enough; the others are tried when it is down).
 * `redis-sentinel://[password@]host[:port][,host[:port]...][/db]#master`: the hosts are
 * Redis Sentinels (port 26379 by default) that name the master `master`; the password and
 * db are the master's. */
typedef struct sk_redis_config {
    sk_redis_node_addr_t seeds[SK_REDIS_MAX_NODES]; /* Sentinels when `sentinel` */
    size_t seed_count;
    int sentinel;
    char master_name[128]; /* with `sentinel` */
    char username[128];    /* empty: none (AUTH password only) */
    char password[256];    /* empty: no AUTH */
    int db;                /* SELECT db when not 0 (standalone only) */
} sk_redis_config_t;

/* Returns 0, or SK_EINVAL with a message in `err` (never echoing the password). */
int sk_redis_config_parse(const char *url, sk_redis_config_t *out, char *err, size_t errlen);

/* Redis Cluster's CRC16 of the hash tag (or the whole key), modulo 16384. */
uint16_t sk_redis_key_slot(const char *key, size_t len);

/* Which node serves each slot. */
typedef struct sk_redis_slot_map {
    int cluster; /* 0: standalone, every slot on nodes[0] */
    sk_redis_node_addr_t nodes[SK_REDIS_MAX_NODES];
    size_t node_count;
    uint8_t slot_node[SK_REDIS_SLOTS]; /* index into nodes */
} sk_redis_slot_map_t;

/* Fills `map` from the reply of `CLUSTER SLOTS` (masters only). `seed` is the node that
 * answered: an empty host in the reply means that node. Returns 0, or SK_EINVAL when the reply is
 * malformed or leaves a slot uncovered. */
int sk_redis_slot_map_from_reply(sk_redis_slot_map_t *map, const redisReply *reply,
                                 const sk_redis_node_addr_t *seed);

/* A map with every slot on `node` (a Redis without cluster support). */
void sk_redis_slot_map_standalone(sk_redis_slot_map_t *map, const sk_redis_node_addr_t *node);

/* Index of `addr` in map->nodes, adding it when missing; -1 when the map is full. */
int sk_redis_slot_map_node(sk_redis_slot_map_t *map, const char *host, int port);

/* Parses an error reply "MOVED 3999 127.0.0.1:6381" or "ASK ...". Returns 1 (MOVED),
 * 2 (ASK) or 0 (another error), filling slot and address on 1 or 2. */
int sk_redis_parse_redirect(const char *error, size_t len, int *slot, sk_redis_node_addr_t *addr);

/* A Lua script with its SHA1, for EVALSHA with a fallback to EVAL on NOSCRIPT. */
typedef struct sk_redis_script {
    const char *source;
    char sha1[41];
} sk_redis_script_t;

/* Computes script->sha1 from script->source. */
void sk_redis_script_init(sk_redis_script_t *script, const char *source);

#endif
