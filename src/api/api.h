/*
 * The API of API.md as an application of the HTTP server: one handler per route, token
 * checks, input validation, and the mapping of store results to statuses and messages.
 * It calls only the store interface (store.h), so any deployment plugs in.
 */
#ifndef SK_API_API_H
#define SK_API_API_H

#include <stddef.h>
#include <stdint.h>

#include "auth/password.h"
#include "http/server.h"
#include "store/store.h"

typedef struct sk_api_config {
    const uint8_t *jwt_secret; /* must outlive the api */
    size_t jwt_secret_len;
    int64_t token_ttl;
    int64_t max_amount;
    size_t max_body;
    double rate_limit;        /* grabs per second per user; 0: no limit */
    int64_t rate_burst;       /* grabs a user may make at once before the rate applies */
    const char *cors_origins; /* --cors-origin: comma-separated; NULL: no CORS */
    int status_page;          /* 1: serve GET /status and /status.json (--status-page on) */
} sk_api_config_t;

typedef struct sk_api sk_api_t;

/* Creates the api over `store` and `passwords` (both must outlive it). NULL when out of
 * memory. */
sk_api_t *sk_api_create(const sk_api_config_t *config, sk_store_t *store,
                        sk_password_pool_t *passwords);

/* The HTTP application to pass to sk_http_serve; valid while `api` lives. */
const sk_http_app_t *sk_api_app(sk_api_t *api);

void sk_api_destroy(sk_api_t *api);

#endif
