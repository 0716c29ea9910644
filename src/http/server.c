/*
 * The HTTP server (see server.h), on libh2o's own event loop: DESIGN.md measured it the
 * fastest here. Each worker thread owns one loop with one h2o context and accepts from a
 * dup of the shared listening socket, so a connection lives on one thread for its life and
 * nothing in the request path is shared between threads.
 *
 * Shutdown: the main thread waits for SIGTERM/SIGINT with sigwait (every thread blocks
 * them), then wakes each loop through its multithread queue. A worker then closes its
 * listener, marks its context shutting down (h2o answers the next response on each
 * connection with "Connection: close"), keeps running until the application has answered
 * every request it holds, lets the last writes go out, and ends.
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/h2o_patches.h"
#include "util/error.h"
#include "util/log.h"

typedef struct http_worker {
    h2o_context_t context; /* first: sk_http_thread_data finds the worker from it */
    void *app_thread_data;
    const sk_http_app_t *app;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    int listen_fd;
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

static void on_accept(h2o_socket_t *listener, const char *err)
{
    http_worker_t *worker = listener->data;
    if (err != NULL)
        return;
    /* Take a few at once: a connection storm at the start of a sale wakes every loop. */
    for (int i = 0; i != 16; ++i) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        h2o_accept(&worker->accept_ctx, sock);
    }
}

static void on_shutdown_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    http_worker_t *worker = H2O_STRUCT_FROM_MEMBER(http_worker_t, shutdown_receiver, receiver);
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    if (worker->shutting_down)
        return;
    worker->shutting_down = 1;
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
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = handle_request;
}

int sk_http_serve(const sk_http_config_t *config, const sk_http_app_t *app)
{
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    sk_http_patches_link();
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
        sk_log(SK_LOG_INFO, "http", "serving on %s:%u with %d threads", config->host, config->port,
               config->threads);
        int signal_number = 0;
        sigwait(&stop_signals, &signal_number);
        sk_log(SK_LOG_INFO, "http", "signal %d: draining", signal_number);
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
