/*
 * CORS (API.md "Operations"): with --cors-origin, a browser page from a listed origin may
 * call the API. A preflight (OPTIONS with Access-Control-Request-Method) from such an
 * origin is answered 204 with the route's methods and the headers a client may send; every
 * other answer to it names the origin and exposes Authorization and X-Seckill-Reason. Other
 * origins, and every request without the option, get no CORS header at all.
 */
#ifndef SK_API_CORS_H
#define SK_API_CORS_H

#include <h2o.h>

#define SK_CORS_MAX_ORIGINS 32

typedef struct sk_cors {
    size_t count;
    int any;                                  /* "*" was listed: every origin */
    h2o_iovec_t origins[SK_CORS_MAX_ORIGINS]; /* lower case, no trailing '/'; heap */
} sk_cors_t;

/* Parses a comma-separated list of origins ("https://shop.example[:port]", or "*").
 * Returns 0, or -1 with a message in `error` for an empty list, an entry that is not
 * scheme://host[:port] (a path, a query, a space), or too many. */
int sk_cors_init(sk_cors_t *cors, const char *list, char *error, size_t error_size);

void sk_cors_dispose(sk_cors_t *cors);

/* The request's Origin when it is allowed (NULL otherwise), after adding the answer's CORS
 * headers to req->res.headers. */
const h2o_iovec_t *sk_cors_allow(const sk_cors_t *cors, h2o_req_t *req);

/* Whether `req` is a preflight (OPTIONS with Access-Control-Request-Method). */
int sk_cors_is_preflight(h2o_req_t *req);

/* Adds the preflight's own headers: `allow_methods` (the route's Allow value), the request
 * headers a client may send, and how long a browser may cache it. */
void sk_cors_add_preflight_headers(h2o_req_t *req, const char *allow_methods);

#endif
