/*
 * Declarations shared by the api's files (api.c: dispatch and helpers; users.c: register,
 * login, logout; coupons.c: create, list, grab; ops.c: health, readiness, metrics; openapi.c:
 * the contract's OpenAPI document; status_page.c: the live sale view).
 */
#ifndef SK_API_API_INTERNAL_H
#define SK_API_API_INTERNAL_H

#include <h2o.h>
#include <jansson.h>

#include "api/cors.h"
#include "api/api.h"
#include "api/metrics.h"
#include "api/ratelimit.h"
#include "api/router.h"
#include "api/status_page.h"
#include "auth/jwt.h"
#include "auth/token.h"

struct sk_api {
    sk_api_config_t config;
    sk_store_t *store;
    sk_password_pool_t *passwords;
    sk_metrics_t *metrics;
    sk_ratelimit_t *ratelimit; /* of the grab route; NULL: no limit */
    int cors_enabled;
    sk_cors_t cors;
    sk_status_page_t *status; /* --status-page on; NULL: off */
    sk_http_app_t app;
};

/* One per worker thread. */
typedef struct api_thread {
    sk_api_t *api;
    h2o_context_t *context;
    sk_store_thread_t *store;
    sk_token_cache_t *tokens;
    h2o_multithread_receiver_t *password_receiver;
    sk_metrics_thread_t *metrics;
    uint64_t started, answered; /* requests; differ while some wait for an answer */
} api_thread_t;

/* One per request, in the request's pool; lives until the answer. */
typedef struct api_request {
    h2o_req_t *req;
    api_thread_t *thread;
    sk_route_t route;
    uint64_t started_usec;
    const sk_jwt_claims_t *claims; /* after sk_api__authenticate: valid while on this thread's
                                      turn; copy what an async step needs */
    sk_jwt_claims_t claims_copy;
    int sale_outcome; /* a grab for the live sale view: sk_metrics_sale_outcome_t; -1: none */
} api_request_t;

/* Answers with a JSON body (copied) and counts the request. */
void sk_api__send_json(api_request_t *r, int status, h2o_iovec_t body);
/* Answers with a body that outlives the request (static data; not copied) and counts the
 * request. */
void sk_api__send_static(api_request_t *r, int status, const char *content_type, h2o_iovec_t body);
/* Answers {"errMsg": message} (message escaped as needed). */
void sk_api__send_error(api_request_t *r, int status, const char *message);
/* Answers 204 with no body, with X-Seckill-Reason when `reason` is not NULL. */
void sk_api__send_no_content(api_request_t *r, const char *reason);
/* Answers 503 with Retry-After. */
void sk_api__send_unavailable(api_request_t *r);
/* Answers 429 with Retry-After: `retry_after_usec` in whole seconds, rounded up, at least 1. */
void sk_api__send_too_many(api_request_t *r, int64_t retry_after_usec);
/* Answers a jansson value (stolen) as the body. */
void sk_api__send_value(api_request_t *r, int status, json_t *value);
/* Answers `body` (copied) as `content_type`, and counts the request. */
void sk_api__send_body(api_request_t *r, int status, const char *content_type, h2o_iovec_t body);

/*
 * Checks the request's token. Returns 0 with r->claims set; otherwise the request is
 * answered: SK_EINVAL after 401 with the message of API.md, SK_EUNAVAILABLE after 503
 * (while the store cannot tell this deployment's tokens yet).
 * The caller compares r->claims->uid wherever it looks the user up anyway.
 */
int sk_api__authenticate(api_request_t *r);

/* Parses the body as a JSON object; NULL after answering 400 "Only receive JSON format."
 * (with "kind":"" when `with_kind`). */
json_t *sk_api__parse_body(api_request_t *r, int with_kind);

/*
 * A string field by API.md's conventions: absent or null reads as empty; a non-string
 * value cannot be decoded into a string and answers 400 "Only receive JSON format.".
 * Returns 0, or SK_EINVAL after answering.
 */
int sk_api__string_field(api_request_t *r, json_t *body, const char *name, h2o_iovec_t *out);

int64_t sk_api__unix_now(api_request_t *r);

void sk_api__handle_register(api_request_t *r);
void sk_api__handle_login(api_request_t *r);
void sk_api__handle_logout(api_request_t *r);
void sk_api__handle_coupon_create(api_request_t *r);
void sk_api__handle_coupon_list(api_request_t *r);
void sk_api__handle_grab(api_request_t *r);
void sk_api__handle_healthz(api_request_t *r);
void sk_api__handle_readyz(api_request_t *r);
void sk_api__handle_metrics(api_request_t *r);
void sk_api__handle_openapi(api_request_t *r);
void sk_api__handle_status(api_request_t *r);
void sk_api__handle_status_data(api_request_t *r);

#endif
