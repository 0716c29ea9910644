/*
 * Interposed h2o functions (see h2o_patches.h). Written against h2o 2.2.5 as Debian ships
 * it: h2o_send_error_generic(), the constant "400 Bad Request" that http1.c writes with
 * h2o_socket_write() on an unparsable request, and picohttpparser's phr_parse_request().
 * If a later h2o stops calling them through the PLT, the tests of malformed requests show.
 */
#include "http/h2o_patches.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <h2o.h>
#include <string.h>
#include <strings.h>

#include "util/log.h"

void sk_http_patches_link(void)
{
}

static void *real_function(const char *name)
{
    void *function = dlsym(RTLD_NEXT, name);
    if (function == NULL) {
        sk_log(SK_LOG_ERROR, "http", "dlsym(%s) failed: %s", name, dlerror());
        abort();
    }
    return function;
}

/*
 * real_function(name), looked up on the first call and kept in `*cache`. Every worker thread
 * comes through here, and two may arrive first at once: both look the function up and store
 * the same pointer. That is harmless only if the slot is atomic; with a plain static it is
 * a data race (undefined behaviour, and ThreadSanitizer reports it). Relaxed ordering is
 * enough: the pointer leads to code, not to data that another thread wrote. On x86-64 a
 * relaxed load is a plain load, so the hot path (epoll_wait, epoll_ctl) pays nothing.
 */
static void *cached_real_function(_Atomic(void *) *cache, const char *name)
{
    void *function = atomic_load_explicit(cache, memory_order_relaxed);
    if (function == NULL) {
        function = real_function(name);
        atomic_store_explicit(cache, function, memory_order_relaxed);
    }
    return function;
}

/* picohttpparser's header record, as compiled into libh2o 2.2.5; Debian installs no
 * picohttpparser.h, and this layout has not changed since picohttpparser's first release. */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);

typedef int (*parse_request_fn)(const char *, size_t, const char **, size_t *, const char **,
                                size_t *, int *, struct phr_header *, size_t *, size_t);

/* Whether the head frames its body ambiguously; `headers` as picohttpparser gives them. */
static int framing_is_ambiguous(const struct phr_header *headers, size_t count)
{
    const struct phr_header *length = NULL;
    int has_transfer_encoding = 0;
    for (size_t i = 0; i != count; ++i) {
        if (headers[i].name_len == 14 && strncasecmp(headers[i].name, "content-length", 14) == 0) {
            if (length != NULL && (length->value_len != headers[i].value_len ||
                                   memcmp(length->value, headers[i].value, length->value_len)))
                return 1;
            length = &headers[i];
        } else if (headers[i].name_len == 17 &&
                   strncasecmp(headers[i].name, "transfer-encoding", 17) == 0) {
            has_transfer_encoding = 1;
        }
    }
    return length != NULL && has_transfer_encoding;
}

/*
 * Whether a header line was folded onto the next (obs-fold: a line starting with SP or HTAB,
 * RFC 9112 5.2). picohttpparser accepts it as a header of its own with a NULL name, and
 * h2o 2.2.5 keeps that as a header with an empty name while the line above it keeps only
 * its first part: "Content-Length: 2\r\n 0" frames a body of 2 bytes, where a proxy that
 * unfolds reads "2 0". Refusing it here, before h2o frames the body, answers at once
 * (a check in the handler would come after h2o waited for a body of the first part's
 * length) and the 400 closes the connection, like every malformed request.
 */
static int has_folded_line(const struct phr_header *headers, size_t count)
{
    for (size_t i = 0; i != count; ++i) {
        if (headers[i].name == NULL || headers[i].name_len == 0)
            return 1;
    }
    return 0;
}

int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len)
{
    static _Atomic(void *) cache;
    parse_request_fn real_parse =
        (parse_request_fn)cached_real_function(&cache, "phr_parse_request");
    int result = real_parse(buf, len, method, method_len, path, path_len, minor_version, headers,
                            num_headers, last_len);
    if (result > 0 &&
        (has_folded_line(headers, *num_headers) || framing_is_ambiguous(headers, *num_headers)))
        return -1;
    return result;
}

/* What http1.c writes for a request it cannot parse, byte for byte. */
static const char h2o_bad_request[] = "HTTP/1.1 400 Bad Request\r\n"
                                      "Content-Type: text/plain; charset=utf-8\r\n"
                                      "Connection: close\r\n"
                                      "Content-Length: 11\r\n"
                                      "\r\n"
                                      "Bad Request";

static const char json_bad_request[] = "HTTP/1.1 400 Bad Request\r\n"
                                       "Content-Type: application/json; charset=utf-8\r\n"
                                       "Connection: close\r\n"
                                       "Content-Length: 25\r\n"
                                       "\r\n"
                                       "{\"errMsg\":\"Bad request.\"}";

typedef void (*socket_write_fn)(h2o_socket_t *, h2o_iovec_t *, size_t, h2o_socket_cb);

void h2o_socket_write(h2o_socket_t *sock, h2o_iovec_t *bufs, size_t bufcnt, h2o_socket_cb cb)
{
    static _Atomic(void *) cache;
    socket_write_fn real_write = (socket_write_fn)cached_real_function(&cache, "h2o_socket_write");
    static h2o_iovec_t replacement = {(char *)json_bad_request, sizeof(json_bad_request) - 1};
    if (bufcnt == 1 && bufs[0].len == sizeof(h2o_bad_request) - 1 &&
        memcmp(bufs[0].base, h2o_bad_request, sizeof(h2o_bad_request) - 1) == 0) {
        real_write(sock, &replacement, 1, cb);
        return;
    }
    real_write(sock, bufs, bufcnt, cb);
}

static const char *json_body_for(int status)
{
    switch (status) {
    case 400:
        return "{\"errMsg\":\"Bad request.\"}";
    case 413:
        return "{\"errMsg\":\"Request body too large.\"}";
    case 417:
        return "{\"errMsg\":\"Expectation failed.\"}";
    default:
        return "{\"errMsg\":\"Internal error.\"}";
    }
}

void h2o_send_error_generic(h2o_req_t *req, int status, const char *reason, const char *body,
                            int flags)
{
    (void)body;
    if (req->pathconf == NULL) {
        /* The request failed before h2o bound it to a host: bind it as h2o itself would
         * (request.c, setup_before_processing) so that the response filters exist. */
        h2o_hostconf_t *hostconf = *req->conn->hosts;
        h2o_get_timestamp(req->conn->ctx, &req->pool, &req->processed_at);
        if (req->input.authority.base == NULL)
            req->input.authority = hostconf->authority.hostport;
        req->scheme = req->input.scheme;
        req->method = req->input.method;
        req->authority = req->input.authority;
        req->path = req->input.path;
        req->path_normalized =
            h2o_url_normalize_path(&req->pool, req->input.path.base, req->input.path.len,
                                   &req->query_at, &req->norm_indexes);
        req->input.query_at = req->query_at;
        h2o_req_bind_conf(req, hostconf, &hostconf->fallback_path);
    }
    if ((flags & H2O_SEND_ERROR_HTTP1_CLOSE_CONNECTION) != 0)
        req->http1_is_persistent = 0;
    const char *json = json_body_for(status);
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = strlen(json);
    if ((flags & H2O_SEND_ERROR_KEEP_HEADERS) == 0)
        memset(&req->res.headers, 0, sizeof(req->res.headers));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json; charset=utf-8"));
    h2o_send_inline(req, json, SIZE_MAX);
}

/* The body after the blank line must be exactly the Content-Length it announces. */
_Static_assert(sizeof("{\"errMsg\":\"Bad request.\"}") - 1 == 25, "json_bad_request length");

/*
 * Lazy epoll deregistration.
 *
 * While a request waits for the journal, h2o stops reading its connection, and its evloop
 * turns that into epoll_ctl(DEL), then epoll_ctl(ADD) when the answer is sent: two system
 * calls per grant, the most frequent ones on the hot path (strace). Here a DEL only marks
 * the fd as kept: the registration stays, and the matching ADD costs nothing. Should a kept
 * fd report an event meanwhile (a pipelined request, a client closing), that is when it is
 * really removed, and the event is not passed on, so h2o never sees an event it did not ask
 * for. The kernel-side data of every registration is the fd; epoll_wait translates it back
 * to h2o's pointer. A close() of a kept fd removes its registration first, since dup'ed
 * descriptors (the listener) would otherwise keep it alive.
 *
 * One table per thread: an h2o loop and its sockets live on one thread.
 */

typedef struct polled_fd {
    void *h2o_data;         /* what h2o registered as data.ptr */
    uint32_t kernel_events; /* what the kernel has; 0 = not registered */
    uint8_t kept;           /* h2o asked to remove it; the kernel still has it */
} polled_fd_t;

static __thread struct {
    int epfd;
    polled_fd_t *entries;
    size_t size;
} polled = {-1, NULL, 0};

typedef int (*epoll_ctl_fn)(int, int, int, struct epoll_event *);
typedef int (*epoll_wait_fn)(int, struct epoll_event *, int, int);
typedef int (*close_fn)(int);

static epoll_ctl_fn real_epoll_ctl(void)
{
    static _Atomic(void *) cache;
    return (epoll_ctl_fn)cached_real_function(&cache, "epoll_ctl");
}

static polled_fd_t *polled_entry(int fd)
{
    if ((size_t)fd >= polled.size) {
        size_t size = polled.size ? polled.size : 1024;
        while (size <= (size_t)fd)
            size *= 2;
        polled_fd_t *grown = realloc(polled.entries, size * sizeof(*grown));
        if (grown == NULL) {
            sk_log(SK_LOG_ERROR, "http", "out of memory tracking epoll registrations");
            abort();
        }
        memset(grown + polled.size, 0, (size - polled.size) * sizeof(*grown));
        polled.entries = grown;
        polled.size = size;
    }
    return &polled.entries[fd];
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    if (polled.epfd == -1)
        polled.epfd = epfd;
    if (epfd != polled.epfd || fd < 0)
        return real_epoll_ctl()(epfd, op, fd, event);
    polled_fd_t *entry = polled_entry(fd);
    if (op == EPOLL_CTL_DEL) {
        if (entry->kernel_events == 0)
            return real_epoll_ctl()(epfd, op, fd, event); /* let the kernel answer */
        entry->kept = 1;
        return 0;
    }
    if (op != EPOLL_CTL_ADD && op != EPOLL_CTL_MOD)
        return real_epoll_ctl()(epfd, op, fd, event);
    uint32_t wanted = event->events;
    entry->h2o_data = event->data.ptr;
    entry->kept = 0;
    if (entry->kernel_events == wanted)
        return 0;
    struct epoll_event registration = {.events = wanted, .data = {.u64 = (uint64_t)fd}};
    int real_op = entry->kernel_events != 0 ? EPOLL_CTL_MOD : op;
    int result = real_epoll_ctl()(epfd, real_op, fd, &registration);
    if (result == 0)
        entry->kernel_events = wanted;
    return result;
}

int epoll_wait(int epfd, struct epoll_event *events, int max_events, int timeout)
{
    static _Atomic(void *) cache;
    epoll_wait_fn real_wait = (epoll_wait_fn)cached_real_function(&cache, "epoll_wait");
    int count = real_wait(epfd, events, max_events, timeout);
    if (count <= 0 || epfd != polled.epfd)
        return count;
    int passed = 0;
    for (int i = 0; i != count; ++i) {
        int fd = (int)events[i].data.u64;
        polled_fd_t *entry = (size_t)fd < polled.size ? &polled.entries[fd] : NULL;
        if (entry == NULL || entry->kernel_events == 0)
            continue; /* cannot happen: every registration went through epoll_ctl above */
        if (entry->kept) {
            real_epoll_ctl()(epfd, EPOLL_CTL_DEL, fd, NULL);
            entry->kernel_events = 0;
            entry->kept = 0;
            continue;
        }
        events[passed].events = events[i].events;
        events[passed].data.ptr = entry->h2o_data;
        ++passed;
    }
    return passed;
}

int close(int fd)
{
    static _Atomic(void *) cache;
    close_fn real_close = (close_fn)cached_real_function(&cache, "close");
    if (fd >= 0 && (size_t)fd < polled.size) {
        polled_fd_t *entry = &polled.entries[fd];
        if (entry->kept && entry->kernel_events != 0)
            real_epoll_ctl()(polled.epfd, EPOLL_CTL_DEL, fd, NULL);
        entry->kernel_events = 0;
        entry->kept = 0;
    }
    return real_close(fd);
}
