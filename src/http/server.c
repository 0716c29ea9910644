/*
 * The HTTP server (see server.h), on libh2o's own event loop: DESIGN.md measured it the
 * fastest here. Each worker thread owns one loop with one h2o context and accepts from a
 * dup of the shared listening socket, so a connection lives on one thread for its life and
 * nothing in the request path is shared between threads.
 *
 * Shutdown: the main thread waits for a stop (util/signals: SIGTERM or SIGINT), then wakes
 * each loop through its multithread queue. A worker then closes its
 * listener, marks its context shutting down (h2o answers the next response on each
 * connection with "Connection: close"), keeps running until the application has answered
 * every request it holds, lets the last writes go out, and ends.
 *
 * Connection cap: one process-wide atomic count of open client connections. A slot is
 * taken before each accept and given back by the socket's on_close callback, which h2o
 * 2.2.5 calls from dispose_socket() for every way a connection ends (close after a
 * response, timeout, peer reset, the http1 code freeing it); h2o's own server counts its
 * --max-connections the same way. The count is exact: a slot is reserved (compare-and-swap)
 * before the accept, so threads racing at the cap cannot overshoot it. A client
 * beyond the cap is accepted and refused at once with a small 503 written straight to its
 * socket, never handed to h2o: refusing is cheaper than serving, and a refused client
 * learns why instead of waiting in the kernel's backlog (what h2o's own server does).
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/error_json.h"
#include "util/error.h"
#include "util/log.h"
#include "util/sdnotify.h"
#include "util/signals.h"

typedef struct http_worker {
    h2o_context_t context; /* first: sk_http_thread_data finds the worker from it */
    void *app_thread_data;
    const sk_http_app_t *app;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    int listen_fd;
    h2o_timeout_entry_t accept_pause; /* while out of file descriptors: resumes accepting */
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t shutdown_receiver;
    h2o_multithread_message_t shutdown_message;
    _Atomic int ready; /* set once the loop is set up, so main may message it */
    int shutting_down;
    int failed;
    pthread_t thread;
} http_worker_t;

static h2o_globalconf_t globalconf;
static pthread_mutex_t finished_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t finished_changed = PTHREAD_COND_INITIALIZER;
static int finished_workers; /* guarded by finished_lock */
static http_worker_t *workers;

/* Open client connections, all threads together, and the most there may be. */
static _Atomic int open_connections;
static int connection_cap;
static _Atomic uint64_t refused_connections;
static _Atomic long last_accept_warning; /* time(NULL) of the last line about accepting */

/* Descriptors the process needs besides client connections: standard streams, the
 * listener and its dup per thread, each loop's epoll fd and wake-up pipe, SQLite's files,
 * and one spare per thread for accepting a connection only to refuse it. */
#define FD_RESERVE 64

/* h2o 2.2.5 reads up to ~400 KiB of request head; no client of this API needs more than a
 * few hundred bytes, and every byte a connection may hold is memory a flood can take. */
#define MAX_REQUEST_HEAD 16384

static size_t request_head_size(h2o_req_t *req)
{
    size_t size = req->input.method.len + req->input.path.len;
    for (size_t i = 0; i != req->headers.size; ++i)
        size += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    return size;
}

static int handle_request(h2o_handler_t *handler, h2o_req_t *req)
{
    (void)handler;
    http_worker_t *worker = (http_worker_t *)req->conn->ctx;
    if (request_head_size(req) > MAX_REQUEST_HEAD) {
        req->http1_is_persistent = 0;
        sk_http_send_json(
            req, 431, h2o_iovec_init(H2O_STRLIT("{\"errMsg\":\"Request headers too large.\"}")));
        return 0;
    }
    worker->app->handle(worker->app_thread_data, req);
    return 0;
}

void *sk_http_thread_data(h2o_req_t *req)
{
    return ((http_worker_t *)req->conn->ctx)->app_thread_data;
}

void sk_http_stats(sk_http_stats_t *out)
{
    out->open_connections = (uint64_t)atomic_load_explicit(&open_connections, memory_order_relaxed);
    out->refused_connections = atomic_load_explicit(&refused_connections, memory_order_relaxed);
    out->max_connections = connection_cap;
}

static void on_connection_closed(void *data)
{
    (void)data;
    int before = atomic_fetch_sub_explicit(&open_connections, 1, memory_order_relaxed);
    assert(before > 0);
}

/* Takes a connection slot; returns 0 when the cap is reached (nothing taken). */
static int reserve_connection(void)
{
    int open = atomic_load_explicit(&open_connections, memory_order_relaxed);
    do {
        if (open >= connection_cap)
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(&open_connections, &open, open + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    return 1;
}

/* Logs at most one line per 10 seconds, so that a flood does not become a log flood. */
static int warning_due(void)
{
    long now = (long)time(NULL);
    long last = atomic_load_explicit(&last_accept_warning, memory_order_relaxed);
    return now - last >= 10 &&
           atomic_compare_exchange_strong_explicit(&last_accept_warning, &last, now,
                                                   memory_order_relaxed, memory_order_relaxed);
}

static const char too_many_connections[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                           "Content-Type: application/json; charset=utf-8\r\n"
                                           "Content-Length: 34\r\n"
                                           "Retry-After: 1\r\n"
                                           "Connection: close\r\n"
                                           "\r\n"
                                           "{\"errMsg\":\"Too many connections.\"}";
_Static_assert(sizeof("{\"errMsg\":\"Too many connections.\"}") - 1 == 34,
               "too_many_connections Content-Length");

/*
 * Accepts one connection beyond the cap and refuses it: the 503 goes into the fresh socket's
 * empty send buffer in one non-blocking send. Whatever the client has sent already is read
 * and dropped first, because closing a socket with unread input makes the kernel answer with
 * a reset where the client expects the 503 and a clean end. Returns 0, or -1 with errno set
 * by accept4 when there was nothing to accept or no descriptor to accept it with.
 */
static int refuse_connection(http_worker_t *worker)
{
    int fd = accept4(worker->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return -1;
    atomic_fetch_add_explicit(&refused_connections, 1, memory_order_relaxed);
    if (warning_due())
        sk_log(SK_LOG_WARN, "http",
               "%d connections open, the --max-connections cap: refusing new ones with 503",
               connection_cap);
    (void)send(fd, too_many_connections, sizeof(too_many_connections) - 1,
               MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(fd, SHUT_WR);
    char discard[4096];
    for (int i = 0; i != 4 && recv(fd, discard, sizeof(discard), MSG_DONTWAIT) > 0; ++i) {
    }
    close(fd);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err);

static void on_accept_pause_end(h2o_timeout_entry_t *entry)
{
    http_worker_t *worker = H2O_STRUCT_FROM_MEMBER(http_worker_t, accept_pause, entry);
    if (worker->listener != NULL && !worker->shutting_down)
        h2o_socket_read_start(worker->listener, on_accept);
}

/*
 * Out of descriptors (EMFILE/ENFILE): the pending connection stays in the backlog and the
 * listener stays readable, so a level-triggered loop would spin on it. Stop listening for
 * 100 ms instead; connections closing meanwhile make room.
 */
static void pause_accepting(http_worker_t *worker)
{
    if (warning_due())
        sk_log(SK_LOG_WARN, "http", "accept: %s; not accepting for 100 ms", strerror(errno));
    h2o_socket_read_stop(worker->listener);
    if (!h2o_timeout_is_linked(&worker->accept_pause))
        h2o_timeout_link(worker->context.loop, &worker->context.hundred_ms_timeout,
                         &worker->accept_pause);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    http_worker_t *worker = listener->data;
    if (err != NULL)
        return;
    /* One at a time: the listening socket is shared, so every loop is woken and the
     * connections of a storm (wrk, or the start of a sale) spread over the workers instead
     * of piling onto the first one awake (seen: 124 against 264 CPU ticks taking 16 at a
     * time; level-triggered epoll wakes us again for the rest). */
    if (!reserve_connection()) {
        if (refuse_connection(worker) == 0)
            return;
    } else {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock != NULL) {
            sock->on_close.cb = on_connection_closed;
            sock->on_close.data = NULL;
            h2o_accept(&worker->accept_ctx, sock);
            return;
        }
        int accept_errno = errno;
        atomic_fetch_sub_explicit(&open_connections, 1, memory_order_relaxed);
        errno = accept_errno;
    }
    if (errno == EMFILE || errno == ENFILE)
        pause_accepting(worker);
}

static void on_shutdown_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    http_worker_t *worker = H2O_STRUCT_FROM_MEMBER(http_worker_t, shutdown_receiver, receiver);
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    if (worker->shutting_down)
        return;
    worker->shutting_down = 1;
    if (h2o_timeout_is_linked(&worker->accept_pause))
        h2o_timeout_unlink(&worker->accept_pause);
    if (worker->listener != NULL) {
        h2o_socket_read_stop(worker->listener);
        h2o_socket_close(worker->listener);
        worker->listener = NULL;
    }
    h2o_context_request_shutdown(&worker->context);
}

static void *worker_main(void *arg)
{
    http_worker_t *worker = arg;
    h2o_evloop_t *loop = h2o_evloop_create();
    h2o_context_init(&worker->context, loop, &globalconf);
    worker->queue = h2o_multithread_create_queue(loop);
    h2o_multithread_register_receiver(worker->queue, &worker->shutdown_receiver,
                                      on_shutdown_message);
    worker->app_thread_data =
        worker->app->thread_create(worker->app->data, &worker->context, worker->queue);
    if (worker->app_thread_data == NULL) {
        sk_log(SK_LOG_ERROR, "http", "the application could not set up a worker thread");
        worker->failed = 1;
        atomic_store(&worker->ready, 1);
        pthread_mutex_lock(&finished_lock);
        ++finished_workers;
        pthread_cond_broadcast(&finished_changed);
        pthread_mutex_unlock(&finished_lock);
        return NULL;
    }
    worker->accept_ctx.ctx = &worker->context;
    worker->accept_ctx.hosts = globalconf.hosts;
    worker->listener = h2o_evloop_socket_create(loop, worker->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    worker->listener->data = worker;
    worker->accept_pause.cb = on_accept_pause_end;
    h2o_socket_read_start(worker->listener, on_accept);
    atomic_store(&worker->ready, 1);

    while (!worker->shutting_down || worker->app->thread_busy(worker->app_thread_data))
        h2o_evloop_run(loop, INT32_MAX);
    /* Every answer is handed to its socket by now; give slow readers a moment to take it.
     * A keep-alive client may still send one more request in that moment (its answer
     * carries "Connection: close"): keep running until that one is answered too, since
     * the application's state for this thread goes away next. */
    for (int i = 0; i < 20 || worker->app->thread_busy(worker->app_thread_data); ++i)
        h2o_evloop_run(loop, 10);

    worker->app->thread_destroy(worker->app_thread_data);
    h2o_multithread_unregister_receiver(worker->queue, &worker->shutdown_receiver);
    /* h2o 2.2.5 cannot destroy an evloop that still has sockets, and keeps per-thread
     * buffer pools: the thread stays parked, its loop reachable, until the process exits. */
    pthread_mutex_lock(&finished_lock);
    ++finished_workers;
    pthread_cond_broadcast(&finished_changed);
    for (;;)
        pthread_cond_wait(&finished_changed, &finished_lock);
    return NULL;
}

static int open_listener(const sk_http_config_t *config)
{
    struct sockaddr_storage address;
    socklen_t address_len;
    memset(&address, 0, sizeof(address));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&address;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&address;
    if (inet_pton(AF_INET, config->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(config->port);
        address_len = sizeof(*v4);
    } else if (inet_pton(AF_INET6, config->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(config->port);
        address_len = sizeof(*v6);
    } else {
        sk_log(SK_LOG_ERROR, "http", "--listen: '%s' is not a numeric IP address", config->host);
        return SK_EINVAL;
    }
    int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, (struct sockaddr *)&address, address_len) != 0 || listen(fd, 65535) != 0) {
        sk_log(SK_LOG_ERROR, "http", "cannot listen on %s:%u: %s", config->host, config->port,
               strerror(errno));
        if (fd >= 0)
            close(fd);
        return SK_EIO;
    }
    return fd;
}

static void configure_h2o(const sk_http_config_t *config)
{
    h2o_config_init(&globalconf);
    globalconf.server_name = h2o_iovec_init(H2O_STRLIT("seckill"));
    /* h2o answers bodies above its own limit with a plain-text 413 before any handler
     * runs; keep it well above ours so the application gives the JSON 413 of API.md. */
    size_t h2o_limit = config->max_body * 4;
    globalconf.max_request_entity_size = h2o_limit < 1048576 ? 1048576 : h2o_limit;
    globalconf.http1.req_timeout = config->idle_timeout_ms;
    globalconf.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *hostconf =
        h2o_config_register_host(&globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    sk_error_json_register(hostconf);
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = handle_request;
}

/*
 * Raises the soft RLIMIT_NOFILE to the hard limit (every open connection is a descriptor;
 * the soft limit is often 1024) and sets the connection cap to what fits under it.
 */
static void set_connection_cap(const sk_http_config_t *config)
{
    connection_cap = config->max_connections;
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        sk_log(SK_LOG_WARN, "http", "getrlimit(RLIMIT_NOFILE) failed: %s", strerror(errno));
        return;
    }
    if (limit.rlim_cur < limit.rlim_max) {
        rlim_t soft = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
            sk_log(SK_LOG_WARN, "http", "setrlimit(RLIMIT_NOFILE, %llu) failed: %s",
                   (unsigned long long)limit.rlim_max, strerror(errno));
            limit.rlim_cur = soft;
        }
    }
    sk_log(SK_LOG_INFO, "http", "file descriptor limit %llu, connection cap %d",
           (unsigned long long)limit.rlim_cur, config->max_connections);
    /* Past the descriptor limit accept() fails and a client cannot even be refused. */
    if (limit.rlim_cur != RLIM_INFINITY &&
        (rlim_t)config->max_connections + FD_RESERVE > limit.rlim_cur) {
        connection_cap = limit.rlim_cur > (rlim_t)2 * FD_RESERVE
                             ? (int)(limit.rlim_cur - FD_RESERVE)
                             : (int)(limit.rlim_cur / 2);
        sk_log(SK_LOG_WARN, "http",
               "--max-connections %d exceeds the file descriptor limit %llu: capping at %d "
               "(raise the hard limit, e.g. LimitNOFILE= or ulimit -Hn, to allow more)",
               config->max_connections, (unsigned long long)limit.rlim_cur, connection_cap);
    }
}

int sk_http_serve(const sk_http_config_t *config, const sk_http_app_t *app)
{
    set_connection_cap(config);
    configure_h2o(config);
    int listen_fd = open_listener(config);
    if (listen_fd < 0)
        return SK_EIO;

    int status = 0;
    workers = calloc((size_t)config->threads, sizeof(*workers));
    int started = 0;
    for (; workers != NULL && started != config->threads; ++started) {
        http_worker_t *worker = &workers[started];
        worker->app = app;
        worker->listen_fd = dup(listen_fd);
        if (worker->listen_fd < 0 || pthread_create(&worker->thread, NULL, worker_main, worker)) {
            sk_log(SK_LOG_ERROR, "http", "cannot start worker thread %d", started);
            status = SK_EIO;
            break;
        }
    }
    close(listen_fd);
    for (int i = 0; i != started; ++i) {
        while (!atomic_load(&workers[i].ready))
            usleep(1000);
        if (workers[i].failed)
            status = SK_EIO;
    }
    if (status == 0) {
        sk_log(SK_LOG_INFO, "http", "serving on %s:%u with %d thread%s", config->host, config->port,
               config->threads, config->threads == 1 ? "" : "s");
        sk_sd_notify("READY=1\nSTATUS=serving");
        sk_signals_wait_for_stop();
        sk_sd_notify("STOPPING=1\nSTATUS=draining");
        sk_log(SK_LOG_INFO, "http", "draining");
    }
    for (int i = 0; i != started; ++i) {
        if (!workers[i].failed)
            h2o_multithread_send_message(&workers[i].shutdown_receiver,
                                         &workers[i].shutdown_message);
    }
    pthread_mutex_lock(&finished_lock);
    while (finished_workers != started)
        pthread_cond_wait(&finished_changed, &finished_lock);
    pthread_mutex_unlock(&finished_lock);
    return status;
}

const char *sk_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

void sk_http_send_json(h2o_req_t *req, int status, h2o_iovec_t body)
{
    req->res.status = status;
    req->res.reason = sk_http_reason(status);
    /* h2o 2.2.5 closes the connection after a non-200 answer of unknown length. */
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json; charset=utf-8"));
    h2o_send_inline(req, body.base, body.len);
}

void sk_http_send_static(h2o_req_t *req, int status, const char *content_type, h2o_iovec_t body)
{
    req->res.status = status;
    req->res.reason = sk_http_reason(status);
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    /* What h2o_send_inline() does, without its copy of the body into the pool: the buffer
     * is static, so it stays valid for as long as h2o writes from it. */
    static h2o_generator_t generator = {NULL, NULL};
    h2o_start_response(req, &generator);
    if (h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
}

void sk_http_send_no_content(h2o_req_t *req)
{
    req->res.status = 204;
    req->res.reason = "No Content";
    /* No Content-Length on a 204 (RFC 9110 8.6); h2o keeps the connection open for it.
     * Not h2o_send_inline: its empty body buffer makes h2o 2.2.5's evloop write twice and
     * arm EPOLLOUT in between (seen with strace: two writev and two epoll_ctl a request). */
    static h2o_generator_t generator = {NULL, NULL};
    h2o_start_response(req, &generator);
    h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
}
