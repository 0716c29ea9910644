/*
 * hiredis async connections on a worker's h2o evloop, routed by slot (see redis_async.h).
 *
 * The adapter. Each redisAsyncContext gets an h2o socket made with DONT_READ on the same
 * fd: h2o only reports readiness and hiredis does its own reads and writes. hiredis asks
 * to write after every command; instead of polling for writability each time, the
 * connection is linked on a zero-length h2o timeout, which h2o_evloop_run runs after it
 * has handled the turn's events. Every command issued during the turn (by every request
 * that came in) then leaves in one write. Only when the kernel refuses part of it, or the
 * connection is still being established, does the adapter wait for writability.
 *
 * hiredis owns and closes the fd. Before it does (its cleanup hook runs just before
 * redisFree), the h2o socket is detached with h2o_socket_export and the exported fd is
 * dropped unclosed. src/http/epoll_keep.c defers epoll deregistrations; its close()
 * finishes the deferred one, so a number reused by the next connection starts clean.
 *
 * Failure never hangs a caller: a broken connection gives its pending commands a NULL
 * reply and reconnects with backoff (100 ms doubling to 2 s); a connection with commands
 * pending that receives nothing for timeout_ms is dropped the same way. A command for a
 * node whose connections all wait out their backoff after a refused connect starts one of
 * them again at once (at most every 100 ms, see reconnect_now) and queues behind the
 * attempt; one for a node without a usable connection fails at the end of the turn.
 * Failures are reported at the end of the turn rather than from inside
 * sk_redis_async_command, so that a caller never sees its callback run before the call
 * that issued it returned.
 */
#include "client/redis/async.h"

#include <assert.h>
#include <hiredis/async.h>
#include <stdlib.h>
#include <string.h>

#include "client/redis/cluster_internal.h"
#include "client/redis/sentinel.h"
#include "util/log.h"

#define BACKOFF_LEVELS 6 /* 100, 200, 400, 800, 1600, 2000 ms */
#define BACKOFF_MIN_MS 100
#define FREELIST_MAX 4096
#define KEEP_BUFFER_MAX 16384 /* a larger command buffer is not kept on the freelist */

typedef struct request request_t;
typedef struct conn conn_t;
typedef struct node node_t;

enum request_kind { REQUEST_USER, REQUEST_SLOTS, REQUEST_WAIT };

struct request {
    sk_redis_async_t *client;
    request_t *next;        /* on the freelist, the list waiting for the slot map, or a held list */
    redisReply *held_reply; /* a replicated command's answer, until its WAIT answers */
    h2o_timeout_entry_t timer; /* a retry after TRYAGAIN, or a failure reported later */
    sk_redis_reply_cb cb;
    void *data;
    sk_redis__command_t command;
    int target_node; /* -1: the node of the command's slot */
    uint8_t kind;
    uint8_t attempts;
    uint8_t asking;
    uint8_t replicated; /* answered only after a WAIT (client->wait_replicas > 0) */
};

enum conn_state {
    CONN_DOWN,       /* no context, or one that hiredis is tearing down */
    CONN_CONNECTING, /* TCP connect or AUTH/SELECT in progress: commands queue behind */
    CONN_READY,
};

struct conn {
    sk_redis_async_t *client;
    node_t *node;
    redisAsyncContext *ac;
    h2o_socket_t *sock;
    h2o_timeout_entry_t flush_entry;     /* on client->flush_timeout: write at turn's end */
    h2o_timeout_entry_t idle_entry;      /* on client->io_timeout: no answer for too long */
    h2o_timeout_entry_t reconnect_entry; /* on client->backoff[backoff_level] */
    size_t pending;                      /* our commands awaiting an answer */
    request_t *held_head, **held_tail;   /* answered replicated commands awaiting the WAIT */
    int handshake_pending;
    uint8_t state;
    uint8_t reading;
    uint8_t waiting_writable; /* h2o_socket_notify_write in progress */
    uint8_t in_write;         /* inside redisAsyncHandleWrite */
    uint8_t want_writable;    /* hiredis asked to write again while in_write */
    uint8_t backoff_level;
    uint8_t wait_needed; /* a replicated command was queued since the last WAIT */
    uint8_t refused;     /* the last attempt failed at connect: retried on demand */
    uint64_t started_at; /* loop time of the last connection attempt */
};

struct node {
    size_t index; /* in client->map.nodes */
    size_t next_conn;
    conn_t conns[];
};

struct sk_redis_async {
    h2o_loop_t *loop;
    sk_redis_config_t config;
    sk_redis__handshake_t handshake;
    int handshake_count;
    size_t connections_per_node;
    uint64_t timeout_ms;
    int wait_replicas;
    uint64_t wait_timeout_ms;
    char wait_command[64]; /* "WAIT <replicas> <timeout>" in the protocol */
    size_t wait_command_len;
    sk_redis_sentinel_t *sentinel;
    uint64_t sentinel_generation; /* of the master the map holds */
    sk_redis_slot_map_t map;
    sk_redis_slot_map_t scratch;
    node_t *nodes[SK_REDIS_MAX_NODES];
    int map_known;
    int map_failed; /* every seed failed in the last round: commands fail at once */
    int refreshing; /* a CLUSTER SLOTS is in flight */
    size_t seed_next;
    size_t seed_round_tries;
    uint8_t map_backoff_level;
    request_t *waiting_head, **waiting_tail;
    request_t *freelist;
    size_t free_count;
    int destroying;
    int callback_depth;
    h2o_timeout_t flush_timeout; /* 0 ms */
    h2o_timeout_t fail_timeout;  /* 0 ms: requests failed at the end of the turn */
    h2o_timeout_t retry_timeout; /* SK_REDIS__RETRY_DELAY_MS */
    h2o_timeout_t io_timeout;    /* timeout_ms */
    h2o_timeout_t backoff[BACKOFF_LEVELS];
    h2o_timeout_entry_t map_retry_entry; /* on backoff[map_backoff_level] */
};

static void dispatch(request_t *req);
static void conn_start(conn_t *conn);
static void fetch_map(sk_redis_async_t *client, int node_index);
static void fail_waiting(sk_redis_async_t *client);

/*
 * Requests
 */

static request_t *request_new(sk_redis_async_t *client, sk_redis_reply_cb cb, void *data)
{
    request_t *req = client->freelist;
    if (req != NULL) {
        client->freelist = req->next;
        --client->free_count;
    } else {
        req = calloc(1, sizeof(*req));
        if (req == NULL)
            return NULL;
        req->client = client;
    }
    req->next = NULL;
    req->cb = cb;
    req->data = data;
    req->target_node = -1;
    req->kind = REQUEST_USER;
    req->attempts = 0;
    req->asking = 0;
    req->replicated = 0;
    req->held_reply = NULL;
    return req;
}

static void request_release(request_t *req)
{
    sk_redis_async_t *client = req->client;
    assert(!h2o_timeout_is_linked(&req->timer));
    if (client->free_count >= FREELIST_MAX || client->destroying) {
        sk_redis__command_dispose(&req->command);
        free(req);
        return;
    }
    if (req->command.cap > KEEP_BUFFER_MAX)
        sk_redis__command_dispose(&req->command);
    req->next = client->freelist;
    client->freelist = req;
    ++client->free_count;
}

static void handle_slots_reply(request_t *req, const redisReply *reply);
static void release_held(conn_t *conn, const redisReply *wait_reply);

/* The end of a request: its callback (or the slot map's update, or the release of what a
 * WAIT held) and its record's reuse. */
static void finish(request_t *req, redisReply *reply)
{
    sk_redis_async_t *client = req->client;
    if (req->kind == REQUEST_SLOTS) {
        handle_slots_reply(req, reply);
    } else if (req->kind == REQUEST_WAIT) {
        release_held(req->data, reply);
    } else {
        ++client->callback_depth;
        req->cb(req->data, reply);
        --client->callback_depth;
    }
    request_release(req);
}

static void on_fail_later(h2o_timeout_entry_t *entry)
{
    request_t *req = H2O_STRUCT_FROM_MEMBER(request_t, timer, entry);
    finish(req, NULL);
}

/* Fails `req` with NULL at the end of this loop turn (at once while destroying). */
static void fail_later(request_t *req)
{
    sk_redis_async_t *client = req->client;
    if (client->destroying) {
        finish(req, NULL);
        return;
    }
    req->timer.cb = on_fail_later;
    h2o_timeout_link(client->loop, &client->fail_timeout, &req->timer);
}

static void on_retry(h2o_timeout_entry_t *entry)
{
    request_t *req = H2O_STRUCT_FROM_MEMBER(request_t, timer, entry);
    dispatch(req);
}

/*
 * The h2o adapter
 */

static void conn_write(conn_t *conn);

static void on_writable(h2o_socket_t *sock, const char *err)
{
    (void)err; /* hiredis finds the error itself: getsockopt(SO_ERROR) or write(2) */
    conn_t *conn = sock->data;
    conn->waiting_writable = 0;
    conn_write(conn);
}

static void conn_append_wait(conn_t *conn);

static void conn_write(conn_t *conn)
{
    if (conn->ac == NULL)
        return;
    if (conn->wait_needed) {
        conn_append_wait(conn);
        if (conn->ac == NULL)
            return;
    }
    conn->in_write = 1;
    conn->want_writable = 0;
    redisAsyncHandleWrite(conn->ac);
    conn->in_write = 0;
    /* The context may be gone (a refused connection frees it inside the call). Still
     * connecting: hiredis does not ask again, but must hear of the connect's end. */
    if (conn->ac != NULL && !conn->waiting_writable &&
        (conn->want_writable || (conn->ac->c.flags & REDIS_CONNECTED) == 0)) {
        conn->waiting_writable = 1;
        h2o_socket_notify_write(conn->sock, on_writable);
    }
}

static void on_flush(h2o_timeout_entry_t *entry)
{
    conn_t *conn = H2O_STRUCT_FROM_MEMBER(conn_t, flush_entry, entry);
    if (!conn->waiting_writable)
        conn_write(conn);
}

static void on_readable(h2o_socket_t *sock, const char *err)
{
    (void)err; /* DONT_READ: h2o read nothing, hiredis reads and sees any error */
    conn_t *conn = sock->data;
    redisAsyncHandleRead(conn->ac);
    if (conn->ac == NULL)
        return;
    /* Something arrived: the connection is alive; time the remaining commands afresh. */
    h2o_timeout_unlink(&conn->idle_entry);
    if (conn->pending != 0)
        h2o_timeout_link(conn->client->loop, &conn->client->io_timeout, &conn->idle_entry);
}

static void ev_add_read(void *privdata)
{
    conn_t *conn = privdata;
    if (!conn->reading) {
        conn->reading = 1;
        h2o_socket_read_start(conn->sock, on_readable);
    }
}

static void ev_del_read(void *privdata)
{
    conn_t *conn = privdata;
    if (conn->reading) {
        conn->reading = 0;
        h2o_socket_read_stop(conn->sock);
    }
}

static void ev_add_write(void *privdata)
{
    conn_t *conn = privdata;
    if (conn->in_write) {
        conn->want_writable = 1; /* the kernel took part of it: wait for room */
    } else if ((conn->ac->c.flags & REDIS_CONNECTED) == 0) {
        /* hiredis learns that connect(2) finished from the first writability. */
        if (!conn->waiting_writable) {
            conn->waiting_writable = 1;
            h2o_socket_notify_write(conn->sock, on_writable);
        }
    } else if (!h2o_timeout_is_linked(&conn->flush_entry)) {
        h2o_timeout_link(conn->client->loop, &conn->client->flush_timeout, &conn->flush_entry);
    }
}

static void ev_del_write(void *privdata)
{
    (void)privdata; /* a pending notify_write fires once and finds nothing to write */
}

static void schedule_reconnect(conn_t *conn);

/* hiredis is about to close the fd: detach h2o from it without closing it. */
static void ev_cleanup(void *privdata)
{
    conn_t *conn = privdata;
    if (conn->sock != NULL) {
        /* h2o_socket_export refuses a socket with a write callback; the one pending
         * notify_write is simply abandoned (h2o frees the socket at its next turn). */
        conn->sock->_cb.write = NULL;
        h2o_socket_export_t exported;
        int status = h2o_socket_export(conn->sock, &exported);
        assert(status == 0);
        (void)status;
        h2o_buffer_dispose(&exported.input);
        conn->sock = NULL;
    }
    h2o_timeout_unlink(&conn->flush_entry);
    h2o_timeout_unlink(&conn->idle_entry);
    assert(conn->pending == 0); /* hiredis answered every callback (NULL) before this */
    conn->ac = NULL;
    conn->reading = conn->waiting_writable = conn->want_writable = 0;
    conn->state = CONN_DOWN;
    conn->handshake_pending = 0;
    schedule_reconnect(conn);
}

/*
 * Connections
 */

static const sk_redis_node_addr_t *conn_addr(conn_t *conn)
{
    return &conn->client->map.nodes[conn->node->index];
}

/*
 * Replicated commands. hiredis frees a reply when its callback returns, so the answer of
 * a replicated command is copied and kept on its connection until the WAIT that follows
 * it answers; replies arrive in order, so every answer held then came before that WAIT
 * and is covered by it.
 */

static redisReply *clone_reply(const redisReply *reply)
{
    redisReply *copy = calloc(1, sizeof(*copy));
    if (copy == NULL)
        return NULL;
    copy->type = reply->type;
    copy->integer = reply->integer;
    if (reply->str != NULL) {
        copy->str = malloc(reply->len + 1);
        if (copy->str == NULL)
            goto fail;
        memcpy(copy->str, reply->str, reply->len);
        copy->str[reply->len] = '\0';
        copy->len = reply->len;
    }
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements != 0) {
        copy->element = calloc(reply->elements, sizeof(*copy->element));
        if (copy->element == NULL)
            goto fail;
        copy->elements = reply->elements;
        for (size_t i = 0; i < reply->elements; ++i)
            if ((copy->element[i] = clone_reply(reply->element[i])) == NULL)
                goto fail;
    }
    return copy;
fail:
    freeReplyObject(copy); /* frees what was copied so far, as hiredis allocates */
    return NULL;
}

static void hold(conn_t *conn, request_t *req, const redisReply *reply)
{
    req->held_reply = clone_reply(reply);
    if (req->held_reply == NULL) {
        sk_log(SK_LOG_ERROR, "redis", "out of memory keeping an answer until its WAIT");
        finish(req, NULL);
        return;
    }
    req->next = NULL;
    *conn->held_tail = req;
    conn->held_tail = &req->next;
}

/* The WAIT after the held answers answered (NULL: the connection broke first): each held
 * command gets its answer when enough replicas have it, NULL when not. */
static void release_held(conn_t *conn, const redisReply *wait_reply)
{
    sk_redis_async_t *client = conn->client;
    int acknowledged = wait_reply != NULL && wait_reply->type == REDIS_REPLY_INTEGER &&
                       wait_reply->integer >= client->wait_replicas;
    request_t *list = conn->held_head;
    conn->held_head = NULL;
    conn->held_tail = &conn->held_head;
    if (!acknowledged && list != NULL && wait_reply != NULL) {
        const sk_redis_node_addr_t *addr = conn_addr(conn);
        if (wait_reply->type == REDIS_REPLY_INTEGER)
            sk_log(SK_LOG_WARN, "redis",
                   "%s:%d: %lld of %d replicas acknowledged within %llu ms (WAIT): answering 503",
                   addr->host, addr->port, (long long)wait_reply->integer, client->wait_replicas,
                   (unsigned long long)client->wait_timeout_ms);
        else
            sk_log(SK_LOG_WARN, "redis", "%s:%d refused WAIT: %s", addr->host, addr->port,
                   wait_reply->type == REDIS_REPLY_ERROR ? wait_reply->str : "a strange answer");
    }
    while (list != NULL) {
        request_t *req = list;
        list = req->next;
        req->next = NULL;
        redisReply *reply = req->held_reply;
        req->held_reply = NULL;
        finish(req, acknowledged ? reply : NULL);
        freeReplyObject(reply);
    }
}

static void on_reply(redisAsyncContext *ac, void *reply_ptr, void *privdata);

/* Queues "WAIT replicas timeout" behind what this connection has queued. */
static void conn_append_wait(conn_t *conn)
{
    sk_redis_async_t *client = conn->client;
    conn->wait_needed = 0;
    request_t *wait = request_new(client, NULL, conn);
    if (wait != NULL) {
        wait->kind = REQUEST_WAIT;
        /* in_write: hiredis's request to write is this very write, not a new flush. */
        conn->in_write = 1;
        int status = redisAsyncFormattedCommand(conn->ac, on_reply, wait, client->wait_command,
                                                client->wait_command_len);
        conn->in_write = 0;
        if (status == REDIS_OK) {
            ++conn->pending;
            if (!h2o_timeout_is_linked(&conn->idle_entry))
                h2o_timeout_link(client->loop, &client->io_timeout, &conn->idle_entry);
            return;
        }
        request_release(wait);
    }
    /* Without its WAIT nothing could release what this connection will hold: drop the
     * connection, which answers its commands NULL (not inside a hiredis callback here). */
    sk_log(SK_LOG_ERROR, "redis", "cannot queue a WAIT: out of memory; reconnecting");
    conn->state = CONN_DOWN;
    redisAsyncFree(conn->ac);
}

/* A connection has failed: stop routing to it before any callback can issue commands. */
static void conn_mark_down(conn_t *conn)
{
    if (conn->state == CONN_DOWN)
        return;
    conn->state = CONN_DOWN;
    sk_redis_async_t *client = conn->client;
    /* In a cluster a node that went away may have been replaced by a promoted replica;
     * behind Sentinel, the master may have been. */
    if (client->sentinel != NULL)
        sk_redis_sentinel_suspect(client->sentinel);
    else if (client->map.cluster && client->map_known && !client->refreshing && !client->destroying)
        fetch_map(client, -1);
}

static void on_reconnect(h2o_timeout_entry_t *entry)
{
    conn_t *conn = H2O_STRUCT_FROM_MEMBER(conn_t, reconnect_entry, entry);
    conn_start(conn);
}

static void schedule_reconnect(conn_t *conn)
{
    sk_redis_async_t *client = conn->client;
    if (client->destroying || h2o_timeout_is_linked(&conn->reconnect_entry))
        return;
    /* A node that serves no slot any more (a demoted master) is not called back; it is
     * reconnected if it serves again (node_revive). */
    if (client->map_known && !sk_redis__slot_map_serves(&client->map, conn->node->index))
        return;
    h2o_timeout_link(client->loop, &client->backoff[conn->backoff_level], &conn->reconnect_entry);
    if (conn->backoff_level + 1 < BACKOFF_LEVELS)
        ++conn->backoff_level;
}

static void on_idle_timeout(h2o_timeout_entry_t *entry)
{
    conn_t *conn = H2O_STRUCT_FROM_MEMBER(conn_t, idle_entry, entry);
    if (conn->state == CONN_READY && conn->pending == 0)
        return; /* nothing awaited: an idle connection is not a dead one */
    const sk_redis_node_addr_t *addr = conn_addr(conn);
    sk_log(SK_LOG_WARN, "redis", "%s:%d: no answer within %llu ms; reconnecting", addr->host,
           addr->port, (unsigned long long)conn->client->timeout_ms);
    conn->refused = 0; /* a server that takes connections and answers nothing (stopped) */
    conn_mark_down(conn);
    /* Not inside a hiredis callback (timeouts run from the loop): frees at once, giving
     * every pending command NULL, then ev_cleanup schedules the reconnection. */
    redisAsyncFree(conn->ac);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    conn_t *conn = ac->data;
    if (status != REDIS_OK) {
        const sk_redis_node_addr_t *addr = conn_addr(conn);
        sk_log(SK_LOG_WARN, "redis", "connect to %s:%d failed: %s", addr->host, addr->port,
               ac->errstr);
        conn->refused = 1;
        conn_mark_down(conn);
        return;
    }
    conn->refused = 0;
    if (conn->handshake_pending == 0 && conn->state == CONN_CONNECTING)
        conn->state = CONN_READY;
    if (conn->handshake_pending == 0 && conn->pending == 0)
        h2o_timeout_unlink(&conn->idle_entry); /* only the connect was being timed */
}

static void on_handshake_reply(redisAsyncContext *ac, void *reply_ptr, void *privdata)
{
    conn_t *conn = privdata;
    redisReply *reply = reply_ptr;
    if (reply == NULL)
        return; /* the connection broke; on_reply / ev_cleanup deal with it */
    if (reply->type == REDIS_REPLY_ERROR) {
        const sk_redis_node_addr_t *addr = conn_addr(conn);
        /* The server's message names no secret ("WRONGPASS invalid username-password"). */
        sk_log(SK_LOG_ERROR, "redis", "%s:%d refused AUTH or SELECT: %s", addr->host, addr->port,
               reply->str);
        conn_mark_down(conn);
        redisAsyncFree(ac); /* deferred by hiredis until this callback returns */
        return;
    }
    if (--conn->handshake_pending == 0 && conn->state == CONN_CONNECTING &&
        (ac->c.flags & REDIS_CONNECTED) != 0)
        conn->state = CONN_READY;
}

static void conn_start(conn_t *conn)
{
    sk_redis_async_t *client = conn->client;
    const sk_redis_node_addr_t *addr = conn_addr(conn);
    assert(conn->ac == NULL);
    conn->started_at = h2o_now(client->loop);
    redisAsyncContext *ac = redisAsyncConnect(addr->host, addr->port);
    if (ac == NULL || ac->err != 0) {
        sk_log(SK_LOG_WARN, "redis", "connect to %s:%d failed: %s", addr->host, addr->port,
               ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        conn->refused = 1;
        schedule_reconnect(conn);
        return;
    }
    conn->sock = h2o_evloop_socket_create(client->loop, ac->c.fd, H2O_SOCKET_FLAG_DONT_READ);
    conn->sock->data = conn;
    conn->ac = ac;
    conn->state = CONN_CONNECTING;
    ac->data = conn;
    ac->ev.data = conn;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    /* Queued first, so they precede every command on this connection. */
    for (int i = 0; i < client->handshake_count; ++i) {
        if (redisAsyncCommandArgv(ac, on_handshake_reply, conn, client->handshake.argc[i],
                                  client->handshake.argv[i],
                                  client->handshake.argvlen[i]) == REDIS_OK)
            ++conn->handshake_pending;
    }
    /* A connect that never completes (a host dropping SYNs) times out like a command. */
    h2o_timeout_link(client->loop, &client->io_timeout, &conn->idle_entry);
}

static node_t *node_get(sk_redis_async_t *client, size_t index)
{
    assert(index < client->map.node_count);
    node_t *node = client->nodes[index];
    if (node != NULL)
        return node;
    node = calloc(1, sizeof(*node) + client->connections_per_node * sizeof(conn_t));
    if (node == NULL) {
        sk_log(SK_LOG_ERROR, "redis", "out of memory for a node's connections");
        return NULL;
    }
    node->index = index;
    client->nodes[index] = node;
    for (size_t i = 0; i < client->connections_per_node; ++i) {
        conn_t *conn = &node->conns[i];
        conn->client = client;
        conn->node = node;
        conn->flush_entry.cb = on_flush;
        conn->idle_entry.cb = on_idle_timeout;
        conn->reconnect_entry.cb = on_reconnect;
        conn->held_tail = &conn->held_head;
        conn_start(conn);
    }
    return node;
}

/* Connects node `index` again (it serves slots again), at once. */
static void node_revive(sk_redis_async_t *client, size_t index)
{
    node_t *node = client->nodes[index];
    if (node == NULL) {
        node_get(client, index);
        return;
    }
    for (size_t c = 0; c < client->connections_per_node; ++c) {
        conn_t *conn = &node->conns[c];
        if (conn->ac != NULL)
            continue;
        h2o_timeout_unlink(&conn->reconnect_entry);
        conn->backoff_level = 0;
        conn_start(conn);
    }
}

/* Closes the connections of node `index`, which serves no slot any more: its pending
 * commands get NULL, and it is not reconnected. */
static void node_retire(sk_redis_async_t *client, size_t index)
{
    node_t *node = client->nodes[index];
    for (size_t c = 0; node != NULL && c < client->connections_per_node; ++c) {
        conn_t *conn = &node->conns[c];
        h2o_timeout_unlink(&conn->reconnect_entry);
        if (conn->ac != NULL && conn->state != CONN_DOWN) {
            conn->state = CONN_DOWN;
            redisAsyncFree(conn->ac); /* deferred by hiredis inside its own callback */
        }
    }
}

/* The ready connection with the fewest commands in flight (the rotation breaks ties, so
 * that an idle node's connections share the load); a connecting one when none is ready;
 * NULL when the node is down. */
static conn_t *pick_conn(node_t *node, size_t count)
{
    conn_t *best = NULL;
    size_t start = node->next_conn++;
    for (size_t i = 0; i < count; ++i) {
        conn_t *conn = &node->conns[(start + i) % count];
        if (conn->state == CONN_DOWN)
            continue;
        if (best == NULL || (conn->state == CONN_READY && best->state != CONN_READY) ||
            (conn->state == best->state && conn->pending < best->pending))
            best = conn;
    }
    return best;
}

/*
 * Every connection of the node is down, waiting out its backoff. A command is the sign that
 * the node is wanted now: a connection whose last attempt was refused (the port was closed:
 * Redis restarting, say) tries again at once and the command queues behind the attempt,
 * rather than failing for up to 2 s after the node came back. At most one attempt per
 * connection in BACKOFF_MIN_MS, so a node that is really down is not hammered, and its
 * commands fail as soon as the refusal comes. A connection that timed out is left to its
 * backoff: a server that accepts and never answers (stopped, overloaded) would hold every
 * command for the whole timeout, where the backoff fails them at once.
 */
static conn_t *reconnect_now(sk_redis_async_t *client, node_t *node)
{
    uint64_t now = h2o_now(client->loop);
    for (size_t i = 0; i < client->connections_per_node; ++i) {
        conn_t *conn = &node->conns[i];
        if (!conn->refused || conn->ac != NULL || !h2o_timeout_is_linked(&conn->reconnect_entry) ||
            now - conn->started_at < BACKOFF_MIN_MS)
            continue;
        h2o_timeout_unlink(&conn->reconnect_entry);
        conn_start(conn);
        return conn->state == CONN_CONNECTING ? conn : NULL;
    }
    return NULL;
}

/*
 * Routing
 */

static void on_reply(redisAsyncContext *ac, void *reply_ptr, void *privdata)
{
    conn_t *conn = ac->data;
    request_t *req = privdata;
    redisReply *reply = reply_ptr;
    sk_redis_async_t *client = req->client;
    assert(conn->pending > 0);
    --conn->pending;
    if (reply == NULL) {
        conn_mark_down(conn);
        finish(req, NULL);
        return;
    }
    conn->backoff_level = 0; /* an answer: the node is healthy again */
    if (req->kind == REQUEST_WAIT) {
        finish(req, reply);
        return;
    }
    if (client->sentinel != NULL && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "READONLY", 8) == 0) {
        /* The master was demoted under us: the command ran nothing. Fail it (503) and ask
         * the Sentinels for the new master. */
        const sk_redis_node_addr_t *addr = conn_addr(conn);
        sk_log(SK_LOG_WARN, "redis", "%s:%d is a replica now (READONLY); asking Sentinel",
               addr->host, addr->port);
        sk_redis_sentinel_suspect(client->sentinel);
        finish(req, NULL);
        return;
    }
    int slot;
    sk_redis_node_addr_t addr;
    sk_redis__next_t next = sk_redis__next_step(reply, &req->command, req->attempts, &slot, &addr);
    if (next == SK_REDIS__DONE || client->destroying) {
        if (req->replicated && client->wait_replicas > 0 && !client->destroying &&
            reply->type != REDIS_REPLY_ERROR)
            hold(conn, req, reply);
        else
            finish(req, reply);
        return;
    }
    ++req->attempts;
    req->asking = 0;
    req->target_node = -1;
    if (next == SK_REDIS__MOVED || next == SK_REDIS__ASK) {
        const sk_redis_node_addr_t *from = conn_addr(conn);
        int node =
            sk_redis_slot_map_node(&client->map, addr.host[0] ? addr.host : from->host, addr.port);
        if (node < 0) {
            finish(req, reply);
            return;
        }
        if (next == SK_REDIS__MOVED) {
            /* Route the slot there at once; the rest of the map is reread. */
            client->map.slot_node[slot] = (uint8_t)node;
            if (!client->refreshing)
                fetch_map(client, node);
        } else {
            req->target_node = node;
            req->asking = 1;
        }
    } else if (next == SK_REDIS__RETRY) {
        req->timer.cb = on_retry;
        h2o_timeout_link(client->loop, &client->retry_timeout, &req->timer);
        return;
    }
    dispatch(req);
}

static void dispatch(request_t *req)
{
    sk_redis_async_t *client = req->client;
    if (client->destroying) {
        finish(req, NULL);
        return;
    }
    if (client->sentinel != NULL &&
        sk_redis_sentinel_generation(client->sentinel) != client->sentinel_generation)
        fetch_map(client, -1); /* the Sentinels named another master */
    int node_index = req->target_node;
    if (node_index < 0) {
        if (!client->map_known) {
            if (client->map_failed) {
                fail_later(req);
            } else {
                *client->waiting_tail = req;
                client->waiting_tail = &req->next;
                req->next = NULL;
            }
            return;
        }
        node_index = client->map.slot_node[req->command.slot];
    }
    node_t *node = node_get(client, (size_t)node_index);
    conn_t *conn = node != NULL ? pick_conn(node, client->connections_per_node) : NULL;
    if (conn == NULL && node != NULL)
        conn = reconnect_now(client, node);
    if (conn == NULL) {
        fail_later(req);
        return;
    }
    if (req->asking)
        redisAsyncFormattedCommand(conn->ac, NULL, NULL, "*1\r\n$6\r\nASKING\r\n", 16);
    if (redisAsyncFormattedCommand(conn->ac, on_reply, req, req->command.text, req->command.len) !=
        REDIS_OK) {
        fail_later(req);
        return;
    }
    ++conn->pending;
    if (req->replicated && client->wait_replicas > 0)
        conn->wait_needed = 1;
    if (!h2o_timeout_is_linked(&conn->idle_entry))
        h2o_timeout_link(client->loop, &client->io_timeout, &conn->idle_entry);
}

/*
 * The slot map
 */

static void dispatch_waiting(sk_redis_async_t *client)
{
    request_t *list = client->waiting_head;
    client->waiting_head = NULL;
    client->waiting_tail = &client->waiting_head;
    while (list != NULL) {
        request_t *req = list;
        list = req->next;
        req->next = NULL;
        dispatch(req);
    }
}

static void on_map_retry(h2o_timeout_entry_t *entry)
{
    sk_redis_async_t *client = H2O_STRUCT_FROM_MEMBER(sk_redis_async_t, map_retry_entry, entry);
    client->seed_round_tries = 0;
    fetch_map(client, -1);
}

/* Behind Sentinel the map is the master the watcher names: every slot on it, every other
 * node retired. While none is named, commands fail and the watcher is asked again. */
static void adopt_sentinel_master(sk_redis_async_t *client)
{
    sk_redis_node_addr_t master;
    uint64_t generation = sk_redis_sentinel_master(client->sentinel, &master);
    int index =
        generation != 0 ? sk_redis_slot_map_node(&client->map, master.host, master.port) : -1;
    client->sentinel_generation = generation;
    if (index < 0) {
        if (generation != 0)
            sk_log(SK_LOG_ERROR, "redis", "too many Redis nodes over time to add %s:%d",
                   master.host, master.port);
        client->map_known = 0;
        client->map_failed = 1;
        fail_waiting(client);
        if (!h2o_timeout_is_linked(&client->map_retry_entry))
            h2o_timeout_link(client->loop, &client->backoff[0], &client->map_retry_entry);
        return;
    }
    int first = !client->map_known;
    int moved = !first && client->map.slot_node[0] != (uint8_t)index;
    client->map.cluster = 0;
    memset(client->map.slot_node, index, sizeof(client->map.slot_node));
    client->map_known = 1;
    client->map_failed = 0;
    if (first || moved)
        sk_log(moved ? SK_LOG_WARN : SK_LOG_INFO, "redis", "%s master %s:%d (Sentinel)",
               moved ? "moving to the new" : "using", master.host, master.port);
    for (size_t i = 0; i < client->map.node_count; ++i)
        if (i != (size_t)index)
            node_retire(client, i);
    node_revive(client, (size_t)index);
    dispatch_waiting(client);
}

/* Sends CLUSTER SLOTS to node `node_index`, or (-1) to the next seed before the map is
 * known, or to a ready node after. */
static void fetch_map(sk_redis_async_t *client, int node_index)
{
    if (client->sentinel != NULL) {
        adopt_sentinel_master(client);
        return;
    }
    if (node_index < 0 && !client->map_known) {
        const sk_redis_node_addr_t *seed = &client->config.seeds[client->seed_next];
        client->seed_next = (client->seed_next + 1) % client->config.seed_count;
        node_index = sk_redis_slot_map_node(&client->map, seed->host, seed->port);
        /* Do not wait out a backoff to learn the map: the seed is tried now. */
        node_t *node = node_index >= 0 ? client->nodes[node_index] : NULL;
        for (size_t c = 0; node != NULL && c < client->connections_per_node; ++c) {
            conn_t *conn = &node->conns[c];
            if (conn->ac == NULL && h2o_timeout_is_linked(&conn->reconnect_entry)) {
                h2o_timeout_unlink(&conn->reconnect_entry);
                conn_start(conn);
            }
        }
    } else if (node_index < 0) {
        for (size_t i = 0; i < client->map.node_count && node_index < 0; ++i) {
            node_t *node = client->nodes[i];
            for (size_t c = 0; node != NULL && c < client->connections_per_node; ++c)
                if (node->conns[c].state == CONN_READY &&
                    sk_redis__slot_map_serves(&client->map, i))
                    node_index = (int)i;
        }
        if (node_index < 0)
            return; /* nobody to ask now; the next MOVED or broken connection asks again */
    }
    request_t *req = node_index >= 0 ? request_new(client, NULL, NULL) : NULL;
    static const char *const argv[] = {"CLUSTER", "SLOTS"};
    static const size_t argvlen[] = {7, 5};
    if (req == NULL ||
        sk_redis__command_format(&req->command, NULL, 0, 2, (const char **)argv, argvlen) != 0) {
        sk_log(SK_LOG_ERROR, "redis", "cannot ask for the slot map: out of memory or nodes");
        if (req != NULL)
            request_release(req);
        return;
    }
    req->kind = REQUEST_SLOTS;
    req->target_node = node_index;
    /* No redirection applies to CLUSTER SLOTS itself. */
    req->attempts = SK_REDIS__MAX_ATTEMPTS;
    client->refreshing = 1;
    dispatch(req);
}

static void fail_waiting(sk_redis_async_t *client)
{
    while (client->waiting_head != NULL) {
        request_t *req = client->waiting_head;
        client->waiting_head = req->next;
        if (client->waiting_head == NULL)
            client->waiting_tail = &client->waiting_head;
        req->next = NULL;
        finish(req, NULL);
    }
}

static void handle_slots_reply(request_t *req, const redisReply *reply)
{
    sk_redis_async_t *client = req->client;
    client->refreshing = 0;
    if (client->destroying)
        return;
    const sk_redis_node_addr_t answered_by = client->map.nodes[req->target_node];
    if (reply != NULL &&
        sk_redis__slot_map_update(&client->map, reply, &answered_by, &client->scratch) == 0) {
        int first = !client->map_known;
        client->map_known = 1;
        client->map_failed = 0;
        client->map_backoff_level = 0;
        client->seed_round_tries = 0;
        for (size_t i = 0; i < client->map.node_count; ++i)
            if (sk_redis__slot_map_serves(&client->map, i))
                node_revive(client, i); /* connect to every master ahead of its first command */
        if (first)
            sk_log(SK_LOG_INFO, "redis", "%s with %zu master(s)",
                   client->map.cluster ? "Redis Cluster" : "standalone Redis",
                   (size_t)(client->map.cluster ? client->map.node_count : 1));
        dispatch_waiting(client);
        return;
    }
    if (reply != NULL)
        sk_log(SK_LOG_ERROR, "redis", "%s:%d answered CLUSTER SLOTS with nothing usable%s%s",
               answered_by.host, answered_by.port, reply->type == REDIS_REPLY_ERROR ? ": " : "",
               reply->type == REDIS_REPLY_ERROR ? reply->str : "");
    if (client->map_known)
        return; /* the map in hand stays; the next MOVED asks again */
    if (++client->seed_round_tries < client->config.seed_count) {
        fetch_map(client, -1);
        return;
    }
    /* No seed answered: fail what waits, and whatever comes until one does. */
    client->map_failed = 1;
    fail_waiting(client);
    h2o_timeout_link(client->loop, &client->backoff[client->map_backoff_level],
                     &client->map_retry_entry);
    if (client->map_backoff_level + 1 < BACKOFF_LEVELS)
        ++client->map_backoff_level;
}

/*
 * The API
 */

sk_redis_async_t *sk_redis_async_create(h2o_loop_t *loop, const sk_redis_config_t *config,
                                        const sk_redis_async_options_t *options)
{
    size_t connections_per_node = options->connections_per_node;
    uint64_t timeout_ms = options->timeout_ms;
    if (config->seed_count == 0 || connections_per_node == 0 || timeout_ms == 0 ||
        (config->sentinel && options->sentinel == NULL) || options->wait_replicas < 0 ||
        (options->wait_replicas > 0 && options->wait_timeout_ms == 0)) {
        sk_log(SK_LOG_ERROR, "redis",
               "sk_redis_async_create: no seed node, connection, timeout or Sentinel watcher");
        return NULL;
    }
    sk_redis_async_t *client = calloc(1, sizeof(*client));
    if (client == NULL) {
        sk_log(SK_LOG_ERROR, "redis", "sk_redis_async_create: out of memory");
        return NULL;
    }
    client->loop = loop;
    client->config = *config;
    client->handshake_count = sk_redis__handshake_init(&client->handshake, &client->config);
    client->connections_per_node = connections_per_node;
    client->timeout_ms = timeout_ms;
    client->wait_replicas = options->wait_replicas;
    client->wait_timeout_ms = options->wait_timeout_ms;
    client->sentinel = config->sentinel ? options->sentinel : NULL;
    if (client->wait_replicas > 0) {
        char replicas[16], timeout[24];
        int replicas_len = snprintf(replicas, sizeof(replicas), "%d", client->wait_replicas);
        int timeout_len =
            snprintf(timeout, sizeof(timeout), "%llu", (unsigned long long)client->wait_timeout_ms);
        client->wait_command_len =
            (size_t)snprintf(client->wait_command, sizeof(client->wait_command),
                             "*3\r\n$4\r\nWAIT\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", replicas_len,
                             replicas, timeout_len, timeout);
    }
    client->waiting_tail = &client->waiting_head;
    h2o_timeout_init(loop, &client->flush_timeout, 0);
    h2o_timeout_init(loop, &client->fail_timeout, 0);
    h2o_timeout_init(loop, &client->retry_timeout, SK_REDIS__RETRY_DELAY_MS);
    h2o_timeout_init(loop, &client->io_timeout, timeout_ms);
    for (size_t i = 0; i < BACKOFF_LEVELS; ++i)
        h2o_timeout_init(loop, &client->backoff[i],
                         i + 1 < BACKOFF_LEVELS ? (uint64_t)BACKOFF_MIN_MS << i : 2000);
    client->map_retry_entry.cb = on_map_retry;
    fetch_map(client, -1);
    return client;
}

/* Unlinks every entry of `timeout` and runs `cb` on it. */
static void drain_timeout(h2o_timeout_t *timeout, void (*cb)(h2o_timeout_entry_t *))
{
    while (!h2o_linklist_is_empty(&timeout->_entries)) {
        h2o_timeout_entry_t *entry =
            H2O_STRUCT_FROM_MEMBER(h2o_timeout_entry_t, _link, timeout->_entries.next);
        h2o_timeout_unlink(entry);
        if (cb != NULL)
            cb(entry);
    }
}

void sk_redis_async_destroy(sk_redis_async_t *client)
{
    if (client == NULL)
        return;
    /* From inside one of its callbacks hiredis would defer freeing the context that is
     * calling back; the caller must return to the loop first. */
    assert(client->callback_depth == 0);
    client->destroying = 1;
    for (size_t i = 0; i < client->map.node_count; ++i) {
        node_t *node = client->nodes[i];
        for (size_t c = 0; node != NULL && c < client->connections_per_node; ++c) {
            conn_t *conn = &node->conns[c];
            h2o_timeout_unlink(&conn->reconnect_entry);
            if (conn->ac != NULL) {
                conn->state = CONN_DOWN;
                redisAsyncFree(conn->ac); /* pending callbacks get NULL, then ev_cleanup */
            }
        }
    }
    fail_waiting(client);
    drain_timeout(&client->fail_timeout, on_fail_later);
    drain_timeout(&client->retry_timeout, on_fail_later);
    h2o_timeout_unlink(&client->map_retry_entry);
    drain_timeout(&client->flush_timeout, NULL);
    drain_timeout(&client->io_timeout, NULL);
    for (size_t i = 0; i < BACKOFF_LEVELS; ++i) {
        drain_timeout(&client->backoff[i], NULL);
        h2o_timeout_dispose(client->loop, &client->backoff[i]);
    }
    h2o_timeout_dispose(client->loop, &client->flush_timeout);
    h2o_timeout_dispose(client->loop, &client->fail_timeout);
    h2o_timeout_dispose(client->loop, &client->retry_timeout);
    h2o_timeout_dispose(client->loop, &client->io_timeout);
    for (size_t i = 0; i < SK_REDIS_MAX_NODES; ++i)
        free(client->nodes[i]);
    while (client->freelist != NULL) {
        request_t *req = client->freelist;
        client->freelist = req->next;
        sk_redis__command_dispose(&req->command);
        free(req);
    }
    free(client);
}

static void submit_command(sk_redis_async_t *client, int replicated, const char *slot_key,
                           size_t slot_key_len, int argc, const char **argv, const size_t *argvlen,
                           sk_redis_reply_cb cb, void *data)
{
    request_t *req = request_new(client, cb, data);
    if (req == NULL) {
        /* Without a record there is nothing to answer later with: answer now, so that the
         * caller's request does not hang (the only case of a callback inside the call). */
        sk_log(SK_LOG_ERROR, "redis", "out of memory for a command");
        cb(data, NULL);
        return;
    }
    req->replicated = (uint8_t)replicated;
    if (sk_redis__command_format(&req->command, slot_key, slot_key_len, argc, argv, argvlen) != 0) {
        sk_log(SK_LOG_ERROR, "redis", "out of memory formatting a command");
        fail_later(req);
        return;
    }
    dispatch(req);
}

static void submit_eval(sk_redis_async_t *client, int replicated, const sk_redis_script_t *script,
                        int numkeys, const char **keys, const size_t *keylens, int nargs,
                        const char **args, const size_t *arglens, sk_redis_reply_cb cb, void *data)
{
    request_t *req = request_new(client, cb, data);
    if (req == NULL) {
        sk_log(SK_LOG_ERROR, "redis", "out of memory for a script call"); /* as above */
        cb(data, NULL);
        return;
    }
    req->replicated = (uint8_t)replicated;
    if (sk_redis__command_format_evalsha(&req->command, script, numkeys, keys, keylens, nargs, args,
                                         arglens) != 0) {
        sk_log(SK_LOG_ERROR, "redis", "out of memory formatting a script call");
        fail_later(req);
        return;
    }
    dispatch(req);
}

void sk_redis_async_command(sk_redis_async_t *client, const char *slot_key, size_t slot_key_len,
                            int argc, const char **argv, const size_t *argvlen,
                            sk_redis_reply_cb cb, void *data)
{
    submit_command(client, 0, slot_key, slot_key_len, argc, argv, argvlen, cb, data);
}

void sk_redis_async_command_replicated(sk_redis_async_t *client, const char *slot_key,
                                       size_t slot_key_len, int argc, const char **argv,
                                       const size_t *argvlen, sk_redis_reply_cb cb, void *data)
{
    submit_command(client, 1, slot_key, slot_key_len, argc, argv, argvlen, cb, data);
}

void sk_redis_async_eval(sk_redis_async_t *client, const sk_redis_script_t *script, int numkeys,
                         const char **keys, const size_t *keylens, int nargs, const char **args,
                         const size_t *arglens, sk_redis_reply_cb cb, void *data)
{
    submit_eval(client, 0, script, numkeys, keys, keylens, nargs, args, arglens, cb, data);
}

void sk_redis_async_eval_replicated(sk_redis_async_t *client, const sk_redis_script_t *script,
                                    int numkeys, const char **keys, const size_t *keylens,
                                    int nargs, const char **args, const size_t *arglens,
                                    sk_redis_reply_cb cb, void *data)
{
    submit_eval(client, 1, script, numkeys, keys, keylens, nargs, args, arglens, cb, data);
}

int sk_redis_async_is_connected(sk_redis_async_t *client)
{
    if (!client->map_known)
        return 0;
    for (size_t i = 0; i < client->map.node_count; ++i) {
        if (!sk_redis__slot_map_serves(&client->map, i))
            continue;
        node_t *node = client->nodes[i];
        int ready = 0;
        for (size_t c = 0; node != NULL && c < client->connections_per_node; ++c)
            ready |= node->conns[c].state == CONN_READY;
        if (!ready)
            return 0;
    }
    return 1;
}
