/*
 * What redis_async.c and redis_sync.c share beyond redis_cluster.h: a command kept in the
 * Redis protocol so that it can be resent as is after a redirection, the decision what an
 * error reply asks of the client (follow MOVED or ASK, retry, fall back to EVAL), the
 * update of the slot map from a `CLUSTER SLOTS` answer, and the AUTH / SELECT that open
 * every connection. One implementation, so that both clients follow Redis Cluster alike.
 */
#ifndef SK_CLIENT_REDIS_CLUSTER_INTERNAL_H
#define SK_CLIENT_REDIS_CLUSTER_INTERNAL_H

#include "client/redis/cluster.h"

/* How many redirections and retries one command may take before its last error reply is
 * passed on; a healthy cluster needs one or two (MOVED, then ASK during a migration). */
#define SK_REDIS__MAX_ATTEMPTS 8

/* Pause before retrying after TRYAGAIN, CLUSTERDOWN or LOADING. */
#define SK_REDIS__RETRY_DELAY_MS 100

/* A command in the Redis protocol. The buffer is kept between commands (callers reuse it),
 * so that a warm client formats without allocating. */
typedef struct sk_redis__command {
    char *text;
    size_t len, cap;
    const sk_redis_script_t *script; /* EVALSHA sent: EVAL is the fallback on NOSCRIPT */
    size_t script_rest_at;           /* offset of what follows the SHA1 in `text` */
    uint16_t slot;
} sk_redis__command_t;

/* Formats `argv` into `command`; the slot is that of `slot_key` (argv[1] when NULL, slot 0
 * for a command without arguments). Returns 0 or SK_ENOMEM. */
int sk_redis__command_format(sk_redis__command_t *command, const char *slot_key,
                             size_t slot_key_len, int argc, const char **argv,
                             const size_t *argvlen);

/* Formats EVALSHA sha1 numkeys keys... args...; the slot is that of keys[0]. */
int sk_redis__command_format_evalsha(sk_redis__command_t *command, const sk_redis_script_t *script,
                                     int numkeys, const char **keys, const size_t *keylens,
                                     int nargs, const char **args, const size_t *arglens);

/* Frees the buffer; the command may be formatted again. */
void sk_redis__command_dispose(sk_redis__command_t *command);

typedef enum sk_redis__next {
    SK_REDIS__DONE,   /* pass the reply on */
    SK_REDIS__MOVED,  /* the slot lives on `addr` now: update the map, resend there */
    SK_REDIS__ASK,    /* send ASKING + the command to `addr`, this once */
    SK_REDIS__RETRY,  /* resend to the same slot after SK_REDIS__RETRY_DELAY_MS */
    SK_REDIS__RESEND, /* the command was rewritten (EVALSHA → EVAL): resend it now */
} sk_redis__next_t;

/* What `reply` to `command` (the `attempts`-th try, from 0) asks of the client. On MOVED
 * and ASK, `addr` gets the node; an empty host there means the node that answered. */
sk_redis__next_t sk_redis__next_step(const redisReply *reply, sk_redis__command_t *command,
                                     int attempts, int *slot, sk_redis_node_addr_t *addr);

/* Updates `map` from the reply to `CLUSTER SLOTS` sent to `answered_by`: the nodes keep
 * their indexes in `map` (new ones are appended), so connections indexed alike survive.
 * An error reply saying cluster support is disabled makes a standalone map. `scratch` is
 * working memory of the caller (the map is 16 KiB and more). Returns 0, or SK_EINVAL when
 * the reply is neither or names more nodes than the map holds: the slots then keep their
 * nodes (nodes the reply named may have been appended to map->nodes). */
int sk_redis__slot_map_update(sk_redis_slot_map_t *map, const redisReply *reply,
                              const sk_redis_node_addr_t *answered_by,
                              sk_redis_slot_map_t *scratch);

/* 1 when node `index` of `map` serves at least one slot. */
int sk_redis__slot_map_serves(const sk_redis_slot_map_t *map, size_t index);

/* The commands that open a connection: AUTH [user] password when a password is set, then
 * SELECT db when db is not 0. Fills up to two argument vectors; returns how many. */
typedef struct sk_redis__handshake {
    int argc[2];
    const char *argv[2][3];
    size_t argvlen[2][3];
    char db_text[16];
} sk_redis__handshake_t;

int sk_redis__handshake_init(sk_redis__handshake_t *handshake, const sk_redis_config_t *config);

#endif
