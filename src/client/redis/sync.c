/*
 * A blocking Redis client routed by slot (see redis_sync.h): one hiredis connection per
 * node, opened when first needed with a connect and I/O timeout, AUTH and SELECT. The slot
 * map, redirections and the EVAL fallback are redis_cluster.c's, shared with the async
 * client. A connection that fails is closed; the next call opens a new one. A call that
 * finds its connection already broken (the server restarted since the last call) opens a
 * new one and tries once more, since nothing was executed on the broken one.
 *
 * Behind Sentinel the Sentinels are asked again at least once a second, as the watcher
 * does for the worker loops: a master replaced while it stays up (SENTINEL FAILOVER, a
 * partition that heals) breaks no connection and answers writes until the Sentinel
 * demotes it, about ten seconds later, and a client that waited for an error would read
 * and write the old master all that time (the revocation listener missing the logouts
 * published on the new master, the persister its grants).
 */
#include "client/redis/sync.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/redis/cluster_internal.h"
#include "client/redis/sentinel.h"
#include "util/log.h"

#define SENTINEL_RECHECK_MS 1000 /* the Sentinels are asked again at least this often */

struct sk_redis_sync {
    sk_redis_config_t config;
    sk_redis__handshake_t handshake;
    int handshake_count;
    struct timeval timeout;
    sk_redis_slot_map_t map;
    sk_redis_slot_map_t scratch;
    int map_known;
    redisContext *conns[SK_REDIS_MAX_NODES]; /* by index in map.nodes */
    size_t masters[SK_REDIS_MAX_NODES];
    size_t master_count;
    int64_t resolved_ms; /* when the Sentinels last named the master (monotonic) */
    sk_redis__command_t command;
};

static int64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static uint64_t timeout_ms_of(const sk_redis_sync_t *client)
{
    return (uint64_t)client->timeout.tv_sec * 1000 + (uint64_t)client->timeout.tv_usec / 1000;
}

static void close_node(sk_redis_sync_t *client, size_t index)
{
    if (client->conns[index] != NULL) {
        redisFree(client->conns[index]);
        client->conns[index] = NULL;
    }
}

/* The connection to node `index`, opened (with AUTH and SELECT) when there is none. */
static redisContext *node_conn(sk_redis_sync_t *client, size_t index)
{
    if (client->conns[index] != NULL)
        return client->conns[index];
    const sk_redis_node_addr_t *addr = &client->map.nodes[index];
    redisContext *c = redisConnectWithTimeout(addr->host, addr->port, client->timeout);
    if (c == NULL || c->err != 0) {
        sk_log(SK_LOG_WARN, "redis", "connect to %s:%d failed: %s", addr->host, addr->port,
               c != NULL ? c->errstr : "out of memory");
        goto fail;
    }
    if (redisSetTimeout(c, client->timeout) != REDIS_OK) {
        sk_log(SK_LOG_WARN, "redis", "setting the timeout on %s:%d failed", addr->host, addr->port);
        goto fail;
    }
    for (int i = 0; i < client->handshake_count; ++i) {
        redisReply *reply = redisCommandArgv(
            c, client->handshake.argc[i], client->handshake.argv[i], client->handshake.argvlen[i]);
        int refused = reply == NULL || reply->type == REDIS_REPLY_ERROR;
        if (refused)
            sk_log(SK_LOG_ERROR, "redis", "%s:%d refused AUTH or SELECT: %s", addr->host,
                   addr->port, reply != NULL ? reply->str : c->errstr);
        if (reply != NULL)
            freeReplyObject(reply);
        if (refused)
            goto fail;
    }
    client->conns[index] = c;
    return c;

fail:
    if (c != NULL)
        redisFree(c);
    return NULL;
}

/* Sends the command of client->command (after ASKING when `asking`) on `c` and reads the
 * answer; NULL when the connection failed. */
static redisReply *round_trip(redisContext *c, const sk_redis__command_t *command, int asking)
{
    redisReply *reply = NULL;
    if (asking && redisAppendFormattedCommand(c, "*1\r\n$6\r\nASKING\r\n", 16) != REDIS_OK)
        return NULL;
    if (redisAppendFormattedCommand(c, command->text, command->len) != REDIS_OK)
        return NULL;
    if (asking) {
        void *asking_reply = NULL;
        if (redisGetReply(c, &asking_reply) != REDIS_OK)
            return NULL;
        freeReplyObject(asking_reply);
    }
    if (redisGetReply(c, (void **)&reply) != REDIS_OK)
        return NULL;
    return reply;
}

static void note_masters(sk_redis_sync_t *client)
{
    client->master_count = 0;
    for (size_t i = 0; i < client->map.node_count; ++i)
        if (sk_redis__slot_map_serves(&client->map, i))
            client->masters[client->master_count++] = i;
}

/* Sentinel: the map is `master`, which the Sentinels name now; connections to any other
 * node (a demoted master) are closed. Returns 0 or -1. */
static int adopt_sentinel_master(sk_redis_sync_t *client, const sk_redis_node_addr_t *master)
{
    int index = sk_redis_slot_map_node(&client->map, master->host, master->port);
    if (index < 0)
        return -1;
    client->map.cluster = 0;
    memset(client->map.slot_node, index, sizeof(client->map.slot_node));
    for (size_t i = 0; i < client->map.node_count; ++i)
        if (i != (size_t)index)
            close_node(client, i);
    client->map_known = 1;
    client->resolved_ms = monotonic_ms();
    note_masters(client);
    return 0;
}

static int load_sentinel_map(sk_redis_sync_t *client)
{
    sk_redis_node_addr_t master;
    char err[512];
    if (sk_redis_sentinel_resolve(&client->config, timeout_ms_of(client), &master, err,
                                  sizeof(err)) != 0) {
        sk_log(SK_LOG_WARN, "redis", "%s", err);
        return -1;
    }
    return adopt_sentinel_master(client, &master);
}

/* Behind Sentinel, with a master in hand named more than SENTINEL_RECHECK_MS ago: asks
 * again, and moves to another master the Sentinels name. When none answers, the master in
 * hand stays (a command on it finds out whether it still is one). */
static void recheck_sentinel(sk_redis_sync_t *client)
{
    if (!client->config.sentinel || !client->map_known ||
        monotonic_ms() - client->resolved_ms < SENTINEL_RECHECK_MS)
        return;
    sk_redis_node_addr_t master;
    char err[512];
    if (sk_redis_sentinel_resolve(&client->config, timeout_ms_of(client), &master, err,
                                  sizeof(err)) != 0) {
        client->resolved_ms = monotonic_ms();
        sk_log(SK_LOG_DEBUG, "redis", "%s", err);
        return;
    }
    const sk_redis_node_addr_t *current = &client->map.nodes[client->map.slot_node[0]];
    if (master.port != current->port || strcmp(master.host, current->host) != 0)
        sk_log(SK_LOG_WARN, "redis",
               "%s:%d is no longer the master: moving a blocking client "
               "to %s:%d (Sentinel)",
               current->host, current->port, master.host, master.port);
    if (adopt_sentinel_master(client, &master) != 0)
        client->map_known = 0;
}

/* Reads the slot map from the known nodes (seeds first). Returns 0 or -1. */
static int load_map(sk_redis_sync_t *client)
{
    static const char *const argv[] = {"CLUSTER", "SLOTS"};
    static const size_t argvlen[] = {7, 5};
    if (client->config.sentinel)
        return load_sentinel_map(client);
    for (size_t i = 0; i < client->config.seed_count; ++i)
        if (sk_redis_slot_map_node(&client->map, client->config.seeds[i].host,
                                   client->config.seeds[i].port) < 0)
            return -1;
    for (size_t i = 0; i < client->map.node_count; ++i) {
        redisContext *c = node_conn(client, i);
        if (c == NULL)
            continue;
        redisReply *reply = redisCommandArgv(c, 2, (const char **)argv, argvlen);
        if (reply == NULL) {
            close_node(client, i);
            continue;
        }
        const sk_redis_node_addr_t answered_by = client->map.nodes[i];
        int status = sk_redis__slot_map_update(&client->map, reply, &answered_by, &client->scratch);
        freeReplyObject(reply);
        if (status == 0) {
            client->map_known = 1;
            note_masters(client);
            return 0;
        }
    }
    return -1;
}

static void sleep_ms(long ms)
{
    struct timespec delay = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&delay, &delay) != 0 && errno == EINTR)
        ;
}

/* Runs client->command on the node of its slot (or on `node` when >= 0), following the
 * cluster's redirections. */
static redisReply *execute(sk_redis_sync_t *client, int node)
{
    int asking = 0, stale_retried = 0;
    if (node < 0)
        recheck_sentinel(client); /* a node given by index stays the one asked for */
    for (int attempts = 0;; ++attempts) {
        if (node < 0 && !client->map_known && load_map(client) != 0)
            return NULL;
        size_t index = node >= 0 ? (size_t)node : client->map.slot_node[client->command.slot];
        int reused = client->conns[index] != NULL;
        redisContext *c = node_conn(client, index);
        if (c == NULL) {
            if (client->map.cluster || client->config.sentinel)
                client->map_known = 0; /* a failover may have moved its slots */
            return NULL;
        }
        redisReply *reply = round_trip(c, &client->command, asking);
        if (reply == NULL) {
            /* EOF on a connection that sat idle: the server restarted or closed it, and
             * did not run the command. A timeout is not retried (it may have run). */
            int retry = reused && !stale_retried && c->err == REDIS_ERR_EOF;
            sk_log(retry ? SK_LOG_DEBUG : SK_LOG_WARN, "redis", "%s:%d: %s",
                   client->map.nodes[index].host, client->map.nodes[index].port, c->errstr);
            close_node(client, index);
            if (client->map.cluster || client->config.sentinel)
                client->map_known = 0;
            if (!retry)
                return NULL;
            stale_retried = 1;
            continue;
        }
        if (client->config.sentinel && reply->type == REDIS_REPLY_ERROR &&
            strncmp(reply->str, "READONLY", 8) == 0) {
            /* A demoted master refused the write (it ran nothing): ask the Sentinels, and
             * try once more on the master they name. */
            freeReplyObject(reply);
            close_node(client, index);
            client->map_known = 0;
            if (stale_retried || node >= 0)
                return NULL;
            stale_retried = 1;
            continue;
        }
        int slot;
        sk_redis_node_addr_t addr;
        sk_redis__next_t next =
            sk_redis__next_step(reply, &client->command, attempts, &slot, &addr);
        if (next == SK_REDIS__DONE)
            return reply;
        freeReplyObject(reply);
        asking = 0;
        if (next == SK_REDIS__MOVED || next == SK_REDIS__ASK) {
            const char *host = addr.host[0] ? addr.host : client->map.nodes[index].host;
            int target = sk_redis_slot_map_node(&client->map, host, addr.port);
            if (target < 0)
                return NULL;
            if (next == SK_REDIS__MOVED) {
                /* The slot moves at once; the rest of the map is reread (and when that
                 * fails, the map in hand stays, with this slot corrected). */
                client->map.slot_node[slot] = (uint8_t)target;
                load_map(client);
                node = -1;
            } else {
                node = target;
                asking = 1;
            }
        } else if (next == SK_REDIS__RETRY) {
            sleep_ms(SK_REDIS__RETRY_DELAY_MS);
        }
    }
}

sk_redis_sync_t *sk_redis_sync_connect(const sk_redis_config_t *config, uint64_t timeout_ms,
                                       char *err, size_t errlen)
{
    sk_redis_sync_t *client = NULL;
    if (config->seed_count == 0 || timeout_ms == 0) {
        snprintf(err, errlen, "no Redis seed node or no timeout");
        goto fail;
    }
    client = calloc(1, sizeof(*client));
    if (client == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    client->config = *config;
    client->handshake_count = sk_redis__handshake_init(&client->handshake, &client->config);
    client->timeout.tv_sec = (time_t)(timeout_ms / 1000);
    client->timeout.tv_usec = (suseconds_t)(timeout_ms % 1000 * 1000);
    if (load_map(client) != 0) {
        snprintf(err, errlen, "no Redis %s answered (first seed %s:%d)",
                 config->sentinel ? "master named by a Sentinel" : "node", config->seeds[0].host,
                 config->seeds[0].port);
        goto fail;
    }
    return client;

fail:
    sk_redis_sync_close(client);
    return NULL;
}

void sk_redis_sync_close(sk_redis_sync_t *client)
{
    if (client == NULL)
        return;
    for (size_t i = 0; i < SK_REDIS_MAX_NODES; ++i)
        close_node(client, i);
    sk_redis__command_dispose(&client->command);
    /* The configuration holds the password. */
    memset(&client->config, 0, sizeof(client->config));
    free(client);
}

redisReply *sk_redis_sync_command(sk_redis_sync_t *client, const char *slot_key,
                                  size_t slot_key_len, int argc, const char **argv,
                                  const size_t *argvlen)
{
    if (sk_redis__command_format(&client->command, slot_key, slot_key_len, argc, argv, argvlen) !=
        0)
        return NULL;
    return execute(client, -1);
}

redisReply *sk_redis_sync_eval(sk_redis_sync_t *client, const sk_redis_script_t *script,
                               int numkeys, const char **keys, const size_t *keylens, int nargs,
                               const char **args, const size_t *arglens)
{
    if (sk_redis__command_format_evalsha(&client->command, script, numkeys, keys, keylens, nargs,
                                         args, arglens) != 0)
        return NULL;
    return execute(client, -1);
}

int sk_redis_sync_fence(sk_redis_sync_t *client, const char *fence_key, size_t fence_key_len,
                        int replicas, unsigned timeout_ms)
{
    const char *incr[] = {"INCR", fence_key};
    size_t incr_len[] = {4, fence_key_len};
    redisReply *reply = sk_redis_sync_command(client, NULL, 0, 2, incr, incr_len);
    int ok = reply != NULL && reply->type == REDIS_REPLY_INTEGER;
    if (reply != NULL)
        freeReplyObject(reply);
    /* The connection that ran the INCR: the one of the slot's node now (execute leaves the
     * map pointing at the node that answered after MOVED, and reconnects in place). */
    redisContext *c =
        ok && client->map_known ? client->conns[client->map.slot_node[client->command.slot]] : NULL;
    if (c == NULL)
        return -1;
    char replicas_text[16], timeout_text[16];
    snprintf(replicas_text, sizeof(replicas_text), "%d", replicas);
    snprintf(timeout_text, sizeof(timeout_text), "%u", timeout_ms);
    const char *wait[] = {"WAIT", replicas_text, timeout_text};
    size_t wait_len[] = {4, strlen(replicas_text), strlen(timeout_text)};
    reply = redisCommandArgv(c, 3, wait, wait_len);
    int acknowledged =
        reply != NULL && reply->type == REDIS_REPLY_INTEGER ? (int)reply->integer : -1;
    if (reply == NULL)
        close_node(client, client->map.slot_node[client->command.slot]);
    else
        freeReplyObject(reply);
    return acknowledged;
}

size_t sk_redis_sync_master_count(sk_redis_sync_t *client)
{
    recheck_sentinel(client); /* before the caller picks masters by index */
    if (!client->map_known)
        load_map(client);
    return client->master_count;
}

redisReply *sk_redis_sync_command_on_master(sk_redis_sync_t *client, size_t master, int argc,
                                            const char **argv, const size_t *argvlen)
{
    if (master >= client->master_count ||
        sk_redis__command_format(&client->command, NULL, 0, argc, argv, argvlen) != 0)
        return NULL;
    return execute(client, (int)client->masters[master]);
}

int sk_redis_sync_is_cluster(sk_redis_sync_t *client)
{
    return client->map.cluster;
}
