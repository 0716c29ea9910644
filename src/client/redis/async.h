/*
 * A Redis client for one worker thread: hiredis async connections attached to that
 * worker's own h2o event loop (hiredis ships no adapter for h2o's evloop; this is the small
 * one DESIGN.md asks for), routed by slot for Redis Cluster.
 *
 * Commands issued while the loop handles one batch of events are written together at the
 * end of that batch: concurrent requests pipeline on a few connections per node, with one
 * write per loop turn, never one blocking round trip per request.
 *
 * Not thread-safe: use a client only on the thread of its loop.
 */
#ifndef SK_CLIENT_REDIS_ASYNC_H
#define SK_CLIENT_REDIS_ASYNC_H

#include <h2o.h>
#include <hiredis/hiredis.h>

#include "client/redis/cluster.h"

typedef struct sk_redis_async sk_redis_async_t;

/* The answer to one command. `reply` is NULL when the command could not be carried out:
 * no connection to its node, the connection broke or timed out before the answer. Then
 * Redis may or may not have executed it (only for a broken connection after the write).
 * Redirections (MOVED, ASK), TRYAGAIN and NOSCRIPT are handled inside; other error replies
 * are passed on. The reply is freed after the callback returns. */
typedef void (*sk_redis_reply_cb)(void *data, redisReply *reply);

typedef struct sk_redis_sentinel sk_redis_sentinel_t;

typedef struct sk_redis_async_options {
    size_t connections_per_node; /* >= 1 pipelined connections to every master */
    uint64_t timeout_ms;         /* a connection awaiting an answer this long is dropped */
    /* Replicated commands (below) are answered only once this many replicas acknowledged
     * them (Redis WAIT, at most wait_timeout_ms); 0: they are plain commands. */
    int wait_replicas;
    uint64_t wait_timeout_ms;
    /* For a redis-sentinel:// config: the watcher that names the master (sentinel.h). */
    sk_redis_sentinel_t *sentinel;
} sk_redis_async_options_t;

/* The first slot map (or the master a Sentinel names) is learnt asynchronously; commands
 * issued before it is known wait for it. */
sk_redis_async_t *sk_redis_async_create(h2o_loop_t *loop, const sk_redis_config_t *config,
                                        const sk_redis_async_options_t *options);

/* Closes every connection; pending callbacks get NULL first. Call on the loop's thread. */
void sk_redis_async_destroy(sk_redis_async_t *client);

/* Sends one command to the node serving the slot of `slot_key` (argv[1] when NULL). */
void sk_redis_async_command(sk_redis_async_t *client, const char *slot_key, size_t slot_key_len,
                            int argc, const char **argv, const size_t *argvlen,
                            sk_redis_reply_cb cb, void *data);

/* EVALSHA script numkeys keys... args...; on NOSCRIPT the same call is sent as EVAL (which
 * also caches the script on that node). The slot is that of keys[0]; all keys must share
 * it (hash tags). */
void sk_redis_async_eval(sk_redis_async_t *client, const sk_redis_script_t *script, int numkeys,
                         const char **keys, const size_t *keylens, int nargs, const char **args,
                         const size_t *arglens, sk_redis_reply_cb cb, void *data);

/* The same as sk_redis_async_command and sk_redis_async_eval, but for a write that must
 * survive a failover: with options.wait_replicas > 0 the reply is held until a WAIT sent
 * after it on the same connection reports enough replicas; when it reports fewer (or
 * fails), the callback gets NULL, as for a broken connection: the write may stand. The
 * commands of one loop turn on one connection share one WAIT. */
void sk_redis_async_command_replicated(sk_redis_async_t *client, const char *slot_key,
                                       size_t slot_key_len, int argc, const char **argv,
                                       const size_t *argvlen, sk_redis_reply_cb cb, void *data);
void sk_redis_async_eval_replicated(sk_redis_async_t *client, const sk_redis_script_t *script,
                                    int numkeys, const char **keys, const size_t *keylens,
                                    int nargs, const char **args, const size_t *arglens,
                                    sk_redis_reply_cb cb, void *data);

/* 1 when every master has at least one established connection. */
int sk_redis_async_is_connected(sk_redis_async_t *client);

#endif
