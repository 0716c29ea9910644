/*
 * CORS (see cors.h). An origin is matched byte for byte after lower-casing the list: a
 * browser serialises an origin in lower case with no trailing slash.
 */
#include "api/cors.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ORIGIN_LEN 256

static void set_error(char *error, size_t error_size, const char *message, const char *item,
                      size_t item_len)
{
    if (item_len > 64)
        item_len = 64;
    snprintf(error, error_size, "--cors-origin: %s: \"%.*s\"", message, (int)item_len, item);
}

/* scheme "://" host [":" port]: letters, digits, '.', '-', '[', ']' and ':' (IPv6). */
static int is_origin(const char *text, size_t len)
{
    const char *sep = len > 3 ? strstr(text, "://") : NULL;
    if (sep == NULL || sep == text || (size_t)(sep - text) + 3 >= len)
        return 0;
    for (const char *p = text; p < sep; ++p)
        if (!isalpha((unsigned char)*p) &&
            !(p > text && (isdigit((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')))
            return 0;
    for (const char *p = sep + 3; p < text + len; ++p)
        if (!isalnum((unsigned char)*p) && strchr(".-[]:", *p) == NULL)
            return 0;
    return 1;
}

int sk_cors_init(sk_cors_t *cors, const char *list, char *error, size_t error_size)
{
    memset(cors, 0, sizeof(*cors));
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t'))
            ++p, --len;
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            --len;
        while (len > 0 && p[len - 1] == '/')
            --len;
        if (len == 1 && *p == '*') {
            cors->any = 1;
        } else if (len == 0 || len > MAX_ORIGIN_LEN || !is_origin(p, len)) {
            set_error(error, error_size,
                      len == 0 ? "an empty origin" : "not an origin (scheme://host[:port])", p,
                      len);
            goto fail;
        } else if (cors->count == SK_CORS_MAX_ORIGINS) {
            set_error(error, error_size, "more than 32 origins", p, len);
            goto fail;
        } else {
            char *copy = malloc(len + 1);
            if (copy == NULL) {
                snprintf(error, error_size, "--cors-origin: out of memory");
                goto fail;
            }
            for (size_t i = 0; i < len; ++i)
                copy[i] = (char)tolower((unsigned char)p[i]);
            copy[len] = '\0';
            cors->origins[cors->count++] = h2o_iovec_init(copy, len);
        }
        if (end == NULL)
            return 0;
        p = end + 1;
    }
fail:
    sk_cors_dispose(cors);
    return -1;
}

void sk_cors_dispose(sk_cors_t *cors)
{
    for (size_t i = 0; i < cors->count; ++i)
        free(cors->origins[i].base);
    memset(cors, 0, sizeof(*cors));
}

const h2o_iovec_t *sk_cors_allow(const sk_cors_t *cors, h2o_req_t *req)
{
    ssize_t index = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
    if (index < 0)
        return NULL;
    const h2o_iovec_t *origin = &req->headers.entries[index].value;
    int allowed = cors->any && origin->len != 0;
    for (size_t i = 0; i < cors->count && !allowed; ++i)
        allowed = h2o_memis(origin->base, origin->len, cors->origins[i].base, cors->origins[i].len);
    if (!allowed)
        return NULL;
    h2o_headers_t *headers = &req->res.headers;
    h2o_add_header(&req->pool, headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL, origin->base,
                   origin->len);
    h2o_add_header(&req->pool, headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Origin"));
    h2o_add_header_by_str(&req->pool, headers, H2O_STRLIT("access-control-expose-headers"), 0,
                          "Access-Control-Expose-Headers",
                          H2O_STRLIT("Authorization, X-Seckill-Reason"));
    return origin;
}

int sk_cors_is_preflight(h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")) &&
           h2o_find_header_by_str(&req->headers, H2O_STRLIT("access-control-request-method"), -1) >=
               0;
}

void sk_cors_add_preflight_headers(h2o_req_t *req, const char *allow_methods)
{
    h2o_headers_t *headers = &req->res.headers;
    h2o_add_header_by_str(&req->pool, headers, H2O_STRLIT("access-control-allow-methods"), 0,
                          "Access-Control-Allow-Methods", allow_methods, strlen(allow_methods));
    h2o_add_header_by_str(&req->pool, headers, H2O_STRLIT("access-control-allow-headers"), 0,
                          "Access-Control-Allow-Headers",
                          H2O_STRLIT("Authorization, Content-Type"));
    h2o_add_header_by_str(&req->pool, headers, H2O_STRLIT("access-control-max-age"), 0,
                          "Access-Control-Max-Age", H2O_STRLIT("600"));
}
