/*
 * The HTTP server: worker threads, each with its own h2o event loop, context and accept
 * loop on one shared listening socket; limits and timeouts; graceful shutdown on SIGTERM
 * or SIGINT. It knows nothing of coupons: every request goes to the application's handler
 * (sk_http_app_t), which answers it at once or later on the same thread.
 */
#ifndef SK_HTTP_SERVER_H
#define SK_HTTP_SERVER_H

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sk_http_config {
    const char *host; /* numeric IPv4 or IPv6 address to bind */
    unsigned short port;
    int threads;              /* worker threads, >= 1 */
    size_t max_body;          /* larger bodies must get 413 from the application */
    unsigned idle_timeout_ms; /* a request (headers and body) must arrive within this */
    int max_connections;      /* open connections at most, all threads together; beyond it a
                               * new connection gets 503 and is closed. Lowered to what the
                               * file descriptor limit allows (logged). */
} sk_http_config_t;

/* The application plugged into the server. All callbacks run on a worker thread. */
typedef struct sk_http_app {
    void *data;
    /* Creates the per-thread state; `queue` is the loop's wake-up queue for completions
     * from other threads. Returns NULL on failure. */
    void *(*thread_create)(void *data, h2o_context_t *context, h2o_multithread_queue_t *queue);
    /* Whether requests started on this thread still wait for an answer. */
    int (*thread_busy)(void *thread_data);
    void (*thread_destroy)(void *thread_data);
    /* Handles one request: responds now or later, on this thread. */
    void (*handle)(void *thread_data, h2o_req_t *req);
} sk_http_app_t;

/*
 * Raises the soft RLIMIT_NOFILE to the hard limit, binds `config->host:port`, serves until
 * SIGTERM or SIGINT, then stops accepting, answers every request already received, and
 * returns 0. Returns SK_EIO (logged) when the socket cannot be bound or a thread cannot
 * start. Call from the main thread, with the signals not yet handled elsewhere.
 */
int sk_http_serve(const sk_http_config_t *config, const sk_http_app_t *app);

/* Connection figures for /metrics, all threads together, each possibly a moment old. */
typedef struct sk_http_stats {
    uint64_t open_connections;
    uint64_t refused_connections; /* answered 503 at the cap and closed, since start */
    int max_connections;          /* the cap in effect, after the descriptor limit */
} sk_http_stats_t;

/* Fills `out`. Thread-safe; meaningful once sk_http_serve has set the cap. */
void sk_http_stats(sk_http_stats_t *out);

/* The per-thread state of the application that received `req`. */
void *sk_http_thread_data(h2o_req_t *req);

/*
 * Sends a JSON response: Content-Type application/json; charset=utf-8 and Content-Length.
 * `body` is copied. Headers already added to req->res.headers are kept.
 */
void sk_http_send_json(h2o_req_t *req, int status, h2o_iovec_t body);

/*
 * Sends `body` as it is, with Content-Type `content_type` and Content-Length: for bodies
 * that outlive every request (static data), which are not copied. No body for HEAD.
 */
void sk_http_send_static(h2o_req_t *req, int status, const char *content_type, h2o_iovec_t body);

/* Sends 204 with no body and no Content-Type. */
void sk_http_send_no_content(h2o_req_t *req);

/* The standard reason phrase of `status`. */
const char *sk_http_reason(int status);

#endif
