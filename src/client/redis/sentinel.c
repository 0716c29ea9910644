/*
 * Redis Sentinel (see sentinel.h): the blocking question "who is the master?" and the
 * watcher thread that keeps its answer for the worker loops.
 *
 * A Sentinel is asked without AUTH first: Sentinels usually run without a password while
 * the data nodes have one. One that answers NOAUTH is asked again after AUTH with the
 * URL's password. The node a Sentinel names is checked with ROLE before it is believed:
 * during a failover a Sentinel may still name the old master for a moment, and a demoted
 * master answers "slave".
 */
#include "client/redis/sentinel.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/redis/cluster_internal.h"
#include "util/error.h"
#include "util/log.h"

#define WATCH_POLL_MS 250   /* the watcher sees a stop or a suspicion within this */
#define RECHECK_MS 1000     /* and asks the Sentinels at least this often */
#define ASK_TIMEOUT_MS 1000 /* per connection of the watcher */

static redisContext *connect_node(const sk_redis_node_addr_t *addr, uint64_t timeout_ms)
{
    struct timeval timeout = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000 * 1000)};
    redisContext *c = redisConnectWithTimeout(addr->host, addr->port, timeout);
    if (c == NULL)
        return NULL;
    if (c->err != 0 || redisSetTimeout(c, timeout) != REDIS_OK) {
        redisFree(c);
        return NULL;
    }
    return c;
}

static int is_error(const redisReply *reply, const char *prefix)
{
    return reply != NULL && reply->type == REDIS_REPLY_ERROR &&
           strncmp(reply->str, prefix, strlen(prefix)) == 0;
}

/* One command on a Sentinel, with AUTH and a second try when it wants a password. */
static redisReply *sentinel_command(redisContext *c, const sk_redis_config_t *config, int argc,
                                    const char **argv, const size_t *argvlen)
{
    redisReply *reply = redisCommandArgv(c, argc, argv, argvlen);
    if (!is_error(reply, "NOAUTH") || config->password[0] == '\0')
        return reply;
    freeReplyObject(reply);
    const char *auth[] = {"AUTH", config->password};
    size_t auth_len[] = {4, strlen(config->password)};
    reply = redisCommandArgv(c, 2, auth, auth_len);
    int refused = reply == NULL || reply->type == REDIS_REPLY_ERROR;
    if (reply != NULL)
        freeReplyObject(reply);
    return refused ? NULL : redisCommandArgv(c, argc, argv, argvlen);
}

/* Whether the node at `addr` says it is a master (after the URL's AUTH and SELECT). */
static int is_master(const sk_redis_config_t *config, const sk_redis_node_addr_t *addr,
                     uint64_t timeout_ms)
{
    redisContext *c = connect_node(addr, timeout_ms);
    if (c == NULL)
        return 0;
    sk_redis__handshake_t handshake;
    int count = sk_redis__handshake_init(&handshake, config);
    int ok = 1;
    for (int i = 0; i < count && ok; ++i) {
        redisReply *reply =
            redisCommandArgv(c, handshake.argc[i], handshake.argv[i], handshake.argvlen[i]);
        ok = reply != NULL && reply->type != REDIS_REPLY_ERROR;
        if (reply != NULL)
            freeReplyObject(reply);
    }
    if (ok) {
        redisReply *reply = redisCommand(c, "ROLE");
        ok = reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
             reply->element[0]->type == REDIS_REPLY_STRING &&
             strcmp(reply->element[0]->str, "master") == 0;
        if (reply != NULL)
            freeReplyObject(reply);
    }
    redisFree(c);
    return ok;
}

/* Asks Sentinel `index`. Returns 0 with the master in `out`, or -1 with `why`. */
static int ask_sentinel(const sk_redis_config_t *config, size_t index, uint64_t timeout_ms,
                        sk_redis_node_addr_t *out, char *why, size_t why_len)
{
    const sk_redis_node_addr_t *sentinel = &config->seeds[index];
    redisContext *c = connect_node(sentinel, timeout_ms);
    if (c == NULL) {
        snprintf(why, why_len, "Sentinel %s:%d does not answer", sentinel->host, sentinel->port);
        return -1;
    }
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", config->master_name};
    size_t argvlen[] = {8, 23, strlen(config->master_name)};
    redisReply *reply = sentinel_command(c, config, 3, argv, argvlen);
    int status = -1;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING &&
        reply->element[0]->len < sizeof(out->host)) {
        long port = strtol(reply->element[1]->str, NULL, 10);
        if (port > 0 && port <= 65535) {
            memcpy(out->host, reply->element[0]->str, reply->element[0]->len + 1);
            out->port = (int)port;
            status = 0;
        }
    }
    if (status != 0)
        snprintf(why, why_len, "Sentinel %s:%d knows no master named \"%s\"%s%s", sentinel->host,
                 sentinel->port, config->master_name,
                 reply != NULL && reply->type == REDIS_REPLY_ERROR ? ": " : "",
                 reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply->str : "");
    if (reply != NULL)
        freeReplyObject(reply);
    redisFree(c);
    if (status == 0 && !is_master(config, out, timeout_ms)) {
        snprintf(why, why_len, "%s:%d, named master by Sentinel %s:%d, is not a master (yet)",
                 out->host, out->port, sentinel->host, sentinel->port);
        status = -1;
    }
    return status;
}

/* Asks the Sentinels from `*next` on; on success *next is the one that answered. Gives up
 * between two Sentinels once *stopping (when not NULL) is set. */
static int resolve_from(const sk_redis_config_t *config, size_t *next, uint64_t timeout_ms,
                        const _Atomic int *stopping, sk_redis_node_addr_t *master, char *err,
                        size_t errlen)
{
    char why[512] = "no Sentinel is configured";
    for (size_t tried = 0; tried < config->seed_count; ++tried) {
        if (stopping != NULL && atomic_load(stopping)) {
            snprintf(why, sizeof(why), "stopping");
            break;
        }
        size_t index = (*next + tried) % config->seed_count;
        if (ask_sentinel(config, index, timeout_ms, master, why, sizeof(why)) == 0) {
            *next = index;
            return 0;
        }
    }
    snprintf(err, errlen, "%s", why);
    return SK_EUNAVAILABLE;
}

int sk_redis_sentinel_resolve(const sk_redis_config_t *config, uint64_t timeout_ms,
                              sk_redis_node_addr_t *master, char *err, size_t errlen)
{
    size_t next = 0;
    return resolve_from(config, &next, timeout_ms, NULL, master, err, errlen);
}

/*
 * The watcher
 */

struct sk_redis_sentinel {
    sk_redis_config_t config;
    pthread_t thread;
    pthread_mutex_t lock; /* guards master */
    sk_redis_node_addr_t master;
    _Atomic uint64_t generation;
    _Atomic int stopping;
    _Atomic int suspected;
    size_t next; /* the Sentinel that answered last: asked first */
};

static int64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Asks the Sentinels; publishes a master that differs from the one known. */
static void check_master(sk_redis_sentinel_t *sentinel)
{
    sk_redis_node_addr_t master;
    char err[512];
    if (resolve_from(&sentinel->config, &sentinel->next, ASK_TIMEOUT_MS, &sentinel->stopping,
                     &master, err, sizeof(err)) != 0) {
        if (atomic_load(&sentinel->stopping))
            return;
        sk_log(SK_LOG_WARN, "sentinel", "no master for \"%s\": %s", sentinel->config.master_name,
               err);
        return;
    }
    pthread_mutex_lock(&sentinel->lock);
    int changed = atomic_load(&sentinel->generation) == 0 || master.port != sentinel->master.port ||
                  strcmp(master.host, sentinel->master.host) != 0;
    if (changed) {
        sentinel->master = master;
        atomic_fetch_add(&sentinel->generation, 1);
    }
    pthread_mutex_unlock(&sentinel->lock);
    if (changed)
        sk_log(SK_LOG_INFO, "sentinel", "the master of \"%s\" is %s:%d",
               sentinel->config.master_name, master.host, master.port);
}

/* A subscription to +switch-master on one Sentinel; NULL when none accepts it. */
static redisContext *subscribe(sk_redis_sentinel_t *sentinel)
{
    const sk_redis_config_t *config = &sentinel->config;
    for (size_t tried = 0; tried < config->seed_count && !atomic_load(&sentinel->stopping);
         ++tried) {
        size_t index = (sentinel->next + tried) % config->seed_count;
        redisContext *c = connect_node(&config->seeds[index], ASK_TIMEOUT_MS);
        if (c == NULL)
            continue;
        const char *argv[] = {"SUBSCRIBE", "+switch-master"};
        size_t argvlen[] = {9, 14};
        redisReply *reply = sentinel_command(c, config, 2, argv, argvlen);
        int ok = reply != NULL && reply->type == REDIS_REPLY_ARRAY;
        if (reply != NULL)
            freeReplyObject(reply);
        if (ok)
            return c;
        redisFree(c);
    }
    return NULL;
}

/* Reads what the subscription has; returns 1 when a switch of our master was announced,
 * 0 when nothing was, -1 when the connection failed. */
static int read_switches(redisContext *c, const char *master_name)
{
    if (redisBufferRead(c) != REDIS_OK)
        return -1;
    int switched = 0;
    for (;;) {
        void *reply_ptr = NULL;
        if (redisGetReplyFromReader(c, &reply_ptr) != REDIS_OK)
            return -1;
        redisReply *reply = reply_ptr;
        if (reply == NULL)
            return switched;
        /* ["message", "+switch-master", "<name> <old-ip> <old-port> <new-ip> <new-port>"] */
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
            reply->element[2]->type == REDIS_REPLY_STRING) {
            size_t name_len = strlen(master_name);
            const char *text = reply->element[2]->str;
            if (strncmp(text, master_name, name_len) == 0 && text[name_len] == ' ')
                switched = 1;
        }
        freeReplyObject(reply);
    }
}

static void *watch_main(void *arg)
{
    sk_redis_sentinel_t *sentinel = arg;
    redisContext *subscription = NULL;
    int64_t last_check = 0;
    while (!atomic_load(&sentinel->stopping)) {
        int check =
            atomic_exchange(&sentinel->suspected, 0) || monotonic_ms() - last_check >= RECHECK_MS;
        if (subscription == NULL) {
            subscription = subscribe(sentinel);
            check = 1; /* switches may have been missed while unsubscribed */
        }
        if (check) {
            check_master(sentinel);
            last_check = monotonic_ms();
        }
        if (subscription == NULL) {
            struct timespec pause = {0, WATCH_POLL_MS * 1000000L};
            nanosleep(&pause, NULL);
            continue;
        }
        struct pollfd pfd = {.fd = subscription->fd, .events = POLLIN};
        int ready = poll(&pfd, 1, WATCH_POLL_MS);
        if (ready < 0 && errno != EINTR) {
            redisFree(subscription);
            subscription = NULL;
        } else if (ready > 0) {
            int switched = read_switches(subscription, sentinel->config.master_name);
            if (switched < 0) {
                redisFree(subscription);
                subscription = NULL;
            } else if (switched) {
                atomic_store(&sentinel->suspected, 1);
            }
        }
    }
    if (subscription != NULL)
        redisFree(subscription);
    return NULL;
}

sk_redis_sentinel_t *sk_redis_sentinel_start(const sk_redis_config_t *config)
{
    sk_redis_sentinel_t *sentinel = calloc(1, sizeof(*sentinel));
    if (sentinel == NULL)
        return NULL;
    sentinel->config = *config;
    pthread_mutex_init(&sentinel->lock, NULL);
    if (pthread_create(&sentinel->thread, NULL, watch_main, sentinel) != 0) {
        sk_log(SK_LOG_ERROR, "sentinel", "pthread_create failed");
        pthread_mutex_destroy(&sentinel->lock);
        free(sentinel);
        return NULL;
    }
    return sentinel;
}

void sk_redis_sentinel_stop(sk_redis_sentinel_t *sentinel)
{
    if (sentinel == NULL)
        return;
    atomic_store(&sentinel->stopping, 1);
    pthread_join(sentinel->thread, NULL);
    pthread_mutex_destroy(&sentinel->lock);
    /* The configuration holds the password. */
    memset(&sentinel->config, 0, sizeof(sentinel->config));
    free(sentinel);
}

uint64_t sk_redis_sentinel_generation(const sk_redis_sentinel_t *sentinel)
{
    return atomic_load_explicit(&sentinel->generation, memory_order_acquire);
}

uint64_t sk_redis_sentinel_master(sk_redis_sentinel_t *sentinel, sk_redis_node_addr_t *master)
{
    pthread_mutex_lock(&sentinel->lock);
    uint64_t generation = atomic_load(&sentinel->generation);
    if (generation != 0)
        *master = sentinel->master;
    pthread_mutex_unlock(&sentinel->lock);
    return generation;
}

void sk_redis_sentinel_suspect(sk_redis_sentinel_t *sentinel)
{
    atomic_store_explicit(&sentinel->suspected, 1, memory_order_relaxed);
}
