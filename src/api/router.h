/*
 * Routing: a request path (raw, as received) to one of the API's routes and its path
 * parameters, percent-decoded. Pure functions over untrusted input; no allocation but in
 * the given pool.
 */
#ifndef SK_API_ROUTER_H
#define SK_API_ROUTER_H

#include <h2o.h>

typedef enum sk_route_id {
    SK_ROUTE_NOT_FOUND = 0,
    SK_ROUTE_USERS,   /* /api/users[/]                     POST register */
    SK_ROUTE_AUTH,    /* /api/auth[/]                      POST log in */
    SK_ROUTE_LOGOUT,  /* /api/auth/logout[/]               POST */
    SK_ROUTE_COUPONS, /* /api/users/{user}/coupons[/]      GET list, POST create */
    SK_ROUTE_GRAB,    /* /api/users/{seller}/coupons/{name} PATCH */
    SK_ROUTE_HEALTHZ,
    SK_ROUTE_READYZ,
    SK_ROUTE_METRICS,
    SK_ROUTE_OPENAPI,     /* /openapi.json[/]                  GET: docs/openapi.json */
    SK_ROUTE_STATUS,      /* /status       GET: the live sale view (HTML) */
    SK_ROUTE_STATUS_DATA, /* /status.json  GET: its figures */
    SK_ROUTE_COUNT
} sk_route_id_t;

typedef enum sk_method {
    SK_METHOD_GET = 1, /* and HEAD */
    SK_METHOD_POST = 2,
    SK_METHOD_PATCH = 4,
    SK_METHOD_OTHER = 8
} sk_method_t;

typedef struct sk_route {
    sk_route_id_t id;
    h2o_iovec_t user;   /* decoded {user} / {seller}; empty for other routes */
    h2o_iovec_t coupon; /* decoded {name} of SK_ROUTE_GRAB */
    h2o_iovec_t query;  /* raw text after '?', empty when none */
} sk_route_t;

/* Matches `path` (the request target as received). Decoded segments are allocated in
 * `pool`. A segment that is empty or badly percent-encoded matches no route. */
void sk_router_match(h2o_mem_pool_t *pool, h2o_iovec_t path, sk_route_t *route);

/* The method of a request. HEAD is SK_METHOD_GET: it is answered by the GET handler, and
 * h2o_send_inline() (which sk_http_send_json and the /metrics handler go through),
 * sk_http_send_static() and sk_http_send_no_content() leave the body out, keeping
 * Content-Length. */
sk_method_t sk_router_method(h2o_iovec_t method);

/* The methods (SK_METHOD_* bits) that `route` answers, and their Allow header value (which
 * names HEAD wherever GET is allowed). */
unsigned sk_router_allowed(sk_route_id_t route);
const char *sk_router_allow_header(sk_route_id_t route);

/* A short stable name of the route, for metrics labels. */
const char *sk_router_name(sk_route_id_t route);

#endif
