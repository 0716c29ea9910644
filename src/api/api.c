/*
 * The api's dispatch and shared helpers (see api.h). Checks run in API.md's order: route
 * (404/405), body size (413), then each handler does token (401), right to the path (401),
 * body (400) and fields in the order of its table.
 */
#include "api/api_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/body.h"
#include "util/error.h"
#include "util/log.h"

#define ERROR_BODY(message) "{\"errMsg\":\"" message "\"}"

static uint64_t monotonic_usec(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000;
}

int64_t sk_api__unix_now(api_request_t *r)
{
    (void)r;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME_COARSE, &now);
    return (int64_t)now.tv_sec;
}

static void count_answer(api_request_t *r, int status)
{
    api_thread_t *thread = r->thread;
    ++thread->answered;
    uint64_t elapsed_usec = monotonic_usec() - r->started_usec;
    sk_metrics_count_request(thread->metrics, r->route.id, status, elapsed_usec);
    if (r->sale_outcome >= 0) {
        /* The coarse clock is read from memory (vDSO, no system call): a few ns. */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME_COARSE, &now);
        sk_metrics_count_sale(thread->metrics, (sk_metrics_sale_outcome_t)r->sale_outcome,
                              elapsed_usec, (int64_t)now.tv_sec);
    }
}

void sk_api__send_json(api_request_t *r, int status, h2o_iovec_t body)
{
    count_answer(r, status);
    sk_http_send_json(r->req, status, body);
}

void sk_api__send_static(api_request_t *r, int status, const char *content_type, h2o_iovec_t body)
{
    count_answer(r, status);
    sk_http_send_static(r->req, status, content_type, body);
}

void sk_api__send_error(api_request_t *r, int status, const char *message)
{
    json_t *body = json_pack("{s:s}", "errMsg", message);
    if (body == NULL) {
        sk_api__send_json(r, 500, h2o_iovec_init(H2O_STRLIT(ERROR_BODY("Out of memory."))));
        return;
    }
    sk_api__send_value(r, status, body);
}

void sk_api__send_value(api_request_t *r, int status, json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT);
    json_decref(value);
    if (text == NULL) {
        sk_api__send_json(r, 500, h2o_iovec_init(H2O_STRLIT(ERROR_BODY("Out of memory."))));
        return;
    }
    sk_api__send_json(r, status, h2o_iovec_init(text, strlen(text)));
    free(text); /* sk_http_send_json copied it */
}

void sk_api__send_body(api_request_t *r, int status, const char *content_type, h2o_iovec_t body)
{
    count_answer(r, status);
    h2o_req_t *req = r->req;
    req->res.status = status;
    req->res.reason = sk_http_reason(status);
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    h2o_send_inline(req, body.base, body.len);
}

void sk_api__send_no_content(api_request_t *r, const char *reason)
{
    if (reason != NULL)
        h2o_add_header_by_str(&r->req->pool, &r->req->res.headers, H2O_STRLIT("x-seckill-reason"),
                              0, "X-Seckill-Reason", reason, strlen(reason));
    count_answer(r, 204);
    sk_http_send_no_content(r->req);
}

void sk_api__send_unavailable(api_request_t *r)
{
    h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
                   H2O_STRLIT("1"));
    sk_api__send_json(r, 503,
                      h2o_iovec_init(H2O_STRLIT(ERROR_BODY("Service temporarily unavailable."))));
}

void sk_api__send_too_many(api_request_t *r, int64_t retry_after_usec)
{
    int64_t seconds = (retry_after_usec + 999999) / 1000000;
    char *value = h2o_mem_alloc_pool(&r->req->pool, sizeof(H2O_INT64_LONGEST_STR));
    size_t len = (size_t)snprintf(value, sizeof(H2O_INT64_LONGEST_STR), "%lld",
                                  (long long)(seconds < 1 ? 1 : seconds));
    h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, value, len);
    sk_api__send_json(r, 429, h2o_iovec_init(H2O_STRLIT(ERROR_BODY("Too many requests."))));
}

int sk_api__authenticate(api_request_t *r)
{
    h2o_req_t *req = r->req;
    ssize_t index = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    const char *header = index >= 0 ? req->headers.entries[index].value.base : NULL;
    size_t header_len = index >= 0 ? req->headers.entries[index].value.len : 0;
    const char *message;
    switch (
        sk_token_check(r->thread->tokens, header, header_len, sk_api__unix_now(r), &r->claims)) {
    case SK_TOKEN_OK:
        return 0;
    case SK_TOKEN_UNAVAILABLE:
        sk_api__send_unavailable(r);
        return SK_EUNAVAILABLE;
    case SK_TOKEN_MISSING:
        message = ERROR_BODY("Not Authorized.");
        break;
    case SK_TOKEN_EXPIRED:
        message = ERROR_BODY("Authorization has expired.");
        break;
    case SK_TOKEN_REVOKED:
        message = ERROR_BODY("Authorization has been revoked.");
        break;
    default:
        message = ERROR_BODY("Token is invalid.");
        break;
    }
    sk_api__send_json(r, 401, h2o_iovec_init(message, strlen(message)));
    return SK_EINVAL;
}

json_t *sk_api__parse_body(api_request_t *r, int with_kind)
{
    json_t *body = sk_body_parse_object(r->req->entity.base, r->req->entity.len);
    if (body != NULL)
        return body;
    if (with_kind)
        sk_api__send_json(
            r, 400,
            h2o_iovec_init(H2O_STRLIT("{\"kind\":\"\",\"errMsg\":\"Only receive JSON format.\"}")));
    else
        sk_api__send_json(r, 400,
                          h2o_iovec_init(H2O_STRLIT(ERROR_BODY("Only receive JSON format."))));
    return NULL;
}

int sk_api__string_field(api_request_t *r, json_t *body, const char *name, h2o_iovec_t *out)
{
    json_t *value = json_object_get(body, name);
    if (value == NULL || json_is_null(value)) {
        *out = h2o_iovec_init("", 0);
        return 0;
    }
    if (!json_is_string(value)) {
        sk_api__send_json(r, 400,
                          h2o_iovec_init(H2O_STRLIT(ERROR_BODY("Only receive JSON format."))));
        return SK_EINVAL;
    }
    /* The body's strings die with the json_t: the handler copies what it keeps. */
    *out = h2o_iovec_init(json_string_value(value), json_string_length(value));
    return 0;
}

static void handle(void *thread_data, h2o_req_t *req)
{
    api_thread_t *thread = thread_data;
    api_request_t *r = h2o_mem_alloc_pool(&req->pool, sizeof(*r));
    r->req = req;
    r->thread = thread;
    r->started_usec = monotonic_usec();
    r->claims = NULL;
    r->sale_outcome = -1;
    ++thread->started;

    sk_router_match(&req->pool, req->path, &r->route);
    /* --status-page off: its routes are not there at all. */
    if ((r->route.id == SK_ROUTE_STATUS || r->route.id == SK_ROUTE_STATUS_DATA) &&
        thread->api->status == NULL)
        r->route.id = SK_ROUTE_NOT_FOUND;
    /* CORS headers before any answer, errors included: a page can read why it failed. */
    const h2o_iovec_t *origin =
        thread->api->cors_enabled ? sk_cors_allow(&thread->api->cors, req) : NULL;
    if (r->route.id == SK_ROUTE_NOT_FOUND) {
        sk_api__send_json(r, 404, h2o_iovec_init(H2O_STRLIT(ERROR_BODY("Not found."))));
        return;
    }
    if (origin != NULL && sk_cors_is_preflight(req)) {
        sk_cors_add_preflight_headers(req, sk_router_allow_header(r->route.id));
        sk_api__send_no_content(r, NULL);
        return;
    }
    sk_method_t method = sk_router_method(req->method);
    if ((sk_router_allowed(r->route.id) & method) == 0) {
        const char *allow = sk_router_allow_header(r->route.id);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
        sk_api__send_json(r, 405, h2o_iovec_init(H2O_STRLIT(ERROR_BODY("Method not allowed."))));
        return;
    }
    /* From here every answer of the grab route is a grab's, for the live sale view:
     * rejected unless the store tells otherwise (on_grabbed). */
    if (r->route.id == SK_ROUTE_GRAB && thread->api->status != NULL)
        r->sale_outcome = SK_METRICS_SALE_REJECTED;
    if (req->entity.len > thread->api->config.max_body) {
        sk_api__send_json(r, 413,
                          h2o_iovec_init(H2O_STRLIT(ERROR_BODY("Request body too large."))));
        return;
    }
    switch (r->route.id) {
    case SK_ROUTE_USERS:
        sk_api__handle_register(r);
        break;
    case SK_ROUTE_AUTH:
        sk_api__handle_login(r);
        break;
    case SK_ROUTE_LOGOUT:
        sk_api__handle_logout(r);
        break;
    case SK_ROUTE_COUPONS:
        if (method == SK_METHOD_GET)
            sk_api__handle_coupon_list(r);
        else
            sk_api__handle_coupon_create(r);
        break;
    case SK_ROUTE_GRAB:
        sk_api__handle_grab(r);
        break;
    case SK_ROUTE_HEALTHZ:
        sk_api__handle_healthz(r);
        break;
    case SK_ROUTE_READYZ:
        sk_api__handle_readyz(r);
        break;
    case SK_ROUTE_METRICS:
        sk_api__handle_metrics(r);
        break;
    case SK_ROUTE_OPENAPI:
        sk_api__handle_openapi(r);
        break;
    case SK_ROUTE_STATUS:
        sk_api__handle_status(r);
        break;
    case SK_ROUTE_STATUS_DATA:
        sk_api__handle_status_data(r);
        break;
    default:
        sk_api__send_json(r, 404, h2o_iovec_init(H2O_STRLIT(ERROR_BODY("Not found."))));
        break;
    }
}

static void *thread_create(void *data, h2o_context_t *context, h2o_multithread_queue_t *queue)
{
    sk_api_t *api = data;
    api_thread_t *thread = calloc(1, sizeof(*thread));
    if (thread == NULL)
        return NULL;
    thread->api = api;
    thread->context = context;
    thread->store = sk_store_thread_create(api->store, context->loop, queue);
    if (thread->store == NULL)
        goto fail;
    thread->tokens =
        sk_token_cache_create(api->config.jwt_secret, api->config.jwt_secret_len, api->store);
    if (thread->tokens == NULL)
        goto fail;
    thread->password_receiver = sk_password_receiver_create(queue);
    if (thread->password_receiver == NULL)
        goto fail;
    /* Owned by api->metrics, which frees it with the rest of the counters. */
    thread->metrics = sk_metrics_thread_create(api->metrics);
    if (thread->metrics == NULL)
        goto fail;
    return thread;
fail:
    sk_log(SK_LOG_ERROR, "api", "out of memory setting up a worker thread");
    if (thread->password_receiver != NULL)
        sk_password_receiver_destroy(thread->password_receiver);
    if (thread->tokens != NULL)
        sk_token_cache_destroy(thread->tokens);
    if (thread->store != NULL)
        sk_store_thread_destroy(api->store, thread->store);
    free(thread);
    return NULL;
}

static int thread_busy(void *thread_data)
{
    api_thread_t *thread = thread_data;
    return thread->started != thread->answered;
}

static void thread_destroy(void *thread_data)
{
    api_thread_t *thread = thread_data;
    sk_store_thread_destroy(thread->api->store, thread->store);
    sk_token_cache_destroy(thread->tokens);
    sk_password_receiver_destroy(thread->password_receiver);
    free(thread);
}

sk_api_t *sk_api_create(const sk_api_config_t *config, sk_store_t *store,
                        sk_password_pool_t *passwords)
{
    sk_api_t *api = calloc(1, sizeof(*api));
    if (api == NULL)
        return NULL;
    api->config = *config;
    api->store = store;
    api->passwords = passwords;
    api->metrics = sk_metrics_create();
    if (api->metrics == NULL)
        goto fail;
    if (config->rate_limit > 0) {
        api->ratelimit = sk_ratelimit_create(config->rate_limit, config->rate_burst);
        if (api->ratelimit == NULL)
            goto fail;
    }
    if (config->cors_origins != NULL) {
        char error[256];
        if (sk_cors_init(&api->cors, config->cors_origins, error, sizeof(error)) != 0) {
            sk_log(SK_LOG_ERROR, "api", "%s", error);
            goto fail;
        }
        api->cors_enabled = 1;
    }
    if (config->status_page) {
        api->status = sk_status_page_create(api->metrics, store);
        if (api->status == NULL)
            goto fail;
    }
    api->app.data = api;
    api->app.thread_create = thread_create;
    api->app.thread_busy = thread_busy;
    api->app.thread_destroy = thread_destroy;
    api->app.handle = handle;
    return api;
fail:
    sk_status_page_destroy(api->status);
    sk_cors_dispose(&api->cors);
    sk_ratelimit_destroy(api->ratelimit);
    if (api->metrics != NULL)
        sk_metrics_destroy(api->metrics);
    free(api);
    return NULL;
}

const sk_http_app_t *sk_api_app(sk_api_t *api)
{
    return &api->app;
}

void sk_api_destroy(sk_api_t *api)
{
    /* First: its reporter thread reads the metrics and calls the store. */
    sk_status_page_destroy(api->status);
    sk_ratelimit_destroy(api->ratelimit);
    sk_cors_dispose(&api->cors);
    sk_metrics_destroy(api->metrics);
    free(api);
}
