/*
 * The router (see router.h). The API has five resource shapes and a few fixed operations
 * routes, so a hand-written matcher over segments is shorter and faster than a general
 * routing table.
 */
#include "api/router.h"

#include <string.h>

#include "util/error.h"
#include "util/percent.h"

/* Decodes %XX escapes; returns 0, or SK_EINVAL for a bad escape or an empty result. Segments
 * without '%' are returned as they are, without copying. */
static int decode_segment(h2o_mem_pool_t *pool, const char *text, size_t len, h2o_iovec_t *out)
{
    if (len == 0)
        return SK_EINVAL;
    if (memchr(text, '%', len) == NULL) {
        *out = h2o_iovec_init(text, len);
        return 0;
    }
    char *decoded = h2o_mem_alloc_pool(pool, len);
    ssize_t used = sk_percent_decode(text, len, decoded, len);
    if (used <= 0)
        return SK_EINVAL;
    *out = h2o_iovec_init(decoded, (size_t)used);
    return 0;
}

#define SEGMENT_IS(seg, literal)                                                                   \
    ((seg).len == sizeof(literal) - 1 && memcmp((seg).base, literal, sizeof(literal) - 1) == 0)

void sk_router_match(h2o_mem_pool_t *pool, h2o_iovec_t path, sk_route_t *route)
{
    memset(route, 0, sizeof(*route));
    route->id = SK_ROUTE_NOT_FOUND;

    const char *question = memchr(path.base, '?', path.len);
    size_t path_len = question ? (size_t)(question - path.base) : path.len;
    if (question != NULL)
        route->query = h2o_iovec_init(question + 1, path.len - path_len - 1);
    if (path_len == 0 || path.base[0] != '/')
        return;

    /* Split into at most 6 segments; a trailing '/' is allowed, an empty inner one not. */
    h2o_iovec_t segments[6];
    size_t count = 0;
    size_t start = 1;
    while (start <= path_len) {
        const char *slash = memchr(path.base + start, '/', path_len - start);
        size_t end = slash ? (size_t)(slash - path.base) : path_len;
        if (end == start) {
            if (end == path_len && count != 0)
                break; /* trailing slash */
            return;
        }
        if (count == 6 ||
            decode_segment(pool, path.base + start, end - start, &segments[count++]) != 0)
            return;
        start = end + 1;
    }

    if (count == 1) {
        if (SEGMENT_IS(segments[0], "healthz"))
            route->id = SK_ROUTE_HEALTHZ;
        else if (SEGMENT_IS(segments[0], "readyz"))
            route->id = SK_ROUTE_READYZ;
        else if (SEGMENT_IS(segments[0], "metrics"))
            route->id = SK_ROUTE_METRICS;
        else if (SEGMENT_IS(segments[0], "openapi.json"))
            route->id = SK_ROUTE_OPENAPI;
        else if (SEGMENT_IS(segments[0], "status"))
            route->id = SK_ROUTE_STATUS;
        else if (SEGMENT_IS(segments[0], "status.json"))
            route->id = SK_ROUTE_STATUS_DATA;
        return;
    }
    if (!SEGMENT_IS(segments[0], "api"))
        return;
    if (SEGMENT_IS(segments[1], "auth")) {
        if (count == 2)
            route->id = SK_ROUTE_AUTH;
        else if (count == 3 && SEGMENT_IS(segments[2], "logout"))
            route->id = SK_ROUTE_LOGOUT;
        return;
    }
    if (!SEGMENT_IS(segments[1], "users"))
        return;
    if (count == 2) {
        route->id = SK_ROUTE_USERS;
        return;
    }
    if ((count != 4 && count != 5) || !SEGMENT_IS(segments[3], "coupons"))
        return;
    route->user = segments[2];
    if (count == 4) {
        route->id = SK_ROUTE_COUPONS;
        return;
    }
    route->coupon = segments[4];
    route->id = SK_ROUTE_GRAB;
}

sk_method_t sk_router_method(h2o_iovec_t method)
{
    /* HEAD is GET without the body (RFC 9110 9.3.2), and h2o already leaves the body out:
     * h2o_send_inline() sends none when the request's method is HEAD, and the
     * Content-Length the handler set stays in the head. So HEAD runs the GET handler,
     * checks and all, on every route that has one. */
    if (h2o_memis(method.base, method.len, H2O_STRLIT("GET")) ||
        h2o_memis(method.base, method.len, H2O_STRLIT("HEAD")))
        return SK_METHOD_GET;
    if (h2o_memis(method.base, method.len, H2O_STRLIT("POST")))
        return SK_METHOD_POST;
    if (h2o_memis(method.base, method.len, H2O_STRLIT("PATCH")))
        return SK_METHOD_PATCH;
    return SK_METHOD_OTHER;
}

unsigned sk_router_allowed(sk_route_id_t route)
{
    switch (route) {
    case SK_ROUTE_USERS:
    case SK_ROUTE_AUTH:
    case SK_ROUTE_LOGOUT:
        return SK_METHOD_POST;
    case SK_ROUTE_COUPONS:
        return SK_METHOD_GET | SK_METHOD_POST;
    case SK_ROUTE_GRAB:
        return SK_METHOD_PATCH;
    case SK_ROUTE_HEALTHZ:
    case SK_ROUTE_READYZ:
    case SK_ROUTE_METRICS:
    case SK_ROUTE_OPENAPI:
    case SK_ROUTE_STATUS:
    case SK_ROUTE_STATUS_DATA:
        return SK_METHOD_GET;
    default:
        return 0;
    }
}

const char *sk_router_allow_header(sk_route_id_t route)
{
    switch (sk_router_allowed(route)) {
    case SK_METHOD_POST:
        return "POST";
    case SK_METHOD_GET | SK_METHOD_POST:
        return "GET, HEAD, POST";
    case SK_METHOD_PATCH:
        return "PATCH";
    case SK_METHOD_GET:
        return "GET, HEAD";
    default:
        return "";
    }
}

const char *sk_router_name(sk_route_id_t route)
{
    static const char *const names[SK_ROUTE_COUNT] = {
        [SK_ROUTE_NOT_FOUND] = "not_found", [SK_ROUTE_USERS] = "register",
        [SK_ROUTE_AUTH] = "login",          [SK_ROUTE_LOGOUT] = "logout",
        [SK_ROUTE_COUPONS] = "coupons",     [SK_ROUTE_GRAB] = "grab",
        [SK_ROUTE_HEALTHZ] = "healthz",     [SK_ROUTE_READYZ] = "readyz",
        [SK_ROUTE_METRICS] = "metrics",     [SK_ROUTE_OPENAPI] = "openapi",
        [SK_ROUTE_STATUS] = "status",       [SK_ROUTE_STATUS_DATA] = "status_json",
    };
    return route < SK_ROUTE_COUNT ? names[route] : "unknown";
}
