/*
 * seckill: a flash-sale coupon service. main() reads the configuration, opens the store
 * of the chosen deployment, and serves HTTP until SIGTERM or SIGINT; then every request
 * already received is answered, every acknowledged change is durable, and it exits 0. A
 * stop that comes during start-up ends it there, with 0 too.
 */
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/api.h"
#include "auth/password.h"
#include "config.h"
#include "http/server.h"
#include "cmd/reconcile.h"
#include "store/local/store_local.h"
#include "store/distributed/store_redis.h"
#include "util/log.h"
#include "util/signals.h"

int main(int argc, char **argv)
{
    sk_config_t config;
    char error[512] = "";
    switch (sk_config_parse(&config, argc, argv, error, sizeof(error))) {
    case SK_CONFIG_HELP:
        fputs(sk_config_usage(), stdout);
        sk_config_dispose(&config);
        return 0;
    case SK_CONFIG_VERSION:
        printf("seckill %s\n", SECKILL_VERSION);
        sk_config_dispose(&config);
        return 0;
    case SK_CONFIG_ERROR:
        sk_log(SK_LOG_ERROR, "main", "%s", error);
        sk_config_dispose(&config);
        return 2;
    case SK_CONFIG_RUN:
        break;
    }
    sk_log_set_level((sk_log_level_t)config.log_level);
    /* Before any thread exists (reconcile is a one-shot command: signals end it as usual). */
    if (!config.reconcile && sk_signals_start() != 0) {
        sk_config_dispose(&config);
        return 1;
    }
    /* The database holds password hashes: every file the service makes is private, not
     * only the data directory around it. */
    umask(077);
    if (sodium_init() < 0) {
        sk_log(SK_LOG_ERROR, "main", "sodium_init failed");
        return 1;
    }
    if (config.reconcile) {
        int result = sk_reconcile_run(config.redis_url, config.mysql_url, config.repair, stdout);
        sk_config_dispose(&config);
        return result;
    }
    sk_log(SK_LOG_INFO, "main", "seckill %s starting: %s deployment", SECKILL_VERSION,
           config.redis_url != NULL ? "distributed" : "embedded");
    if (sk_config_prepare_data_dir(&config, error, sizeof(error)) != 0) {
        sk_log(SK_LOG_ERROR, "main", "%s", error);
        sk_config_dispose(&config);
        return 1;
    }

    int status = 1;
    sk_store_t *store = NULL;
    sk_password_pool_t *passwords = NULL;
    sk_api_t *api = NULL;
    if (config.redis_url != NULL) {
        sk_store_redis_options_t options = {
            .redis_url = config.redis_url,
            .mysql_url = config.mysql_url,
            .startup_wait_ms = 10000,
            .wait_replicas = config.redis_wait_replicas,
            .wait_timeout_ms = config.redis_wait_timeout_ms,
        };
        store = sk_store_redis_create(&options);
    } else {
        char db_path[PATH_MAX];
        snprintf(db_path, sizeof(db_path), "%s/seckill.db", config.data_dir);
        store = sk_store_local_create(db_path, config.sync_commits);
    }
    if (store == NULL) {
        /* A stop during the load ends it early: nothing was served, nothing is lost. */
        if (sk_signals_stop_requested()) {
            sk_log(SK_LOG_INFO, "main", "stopped during start-up");
            status = 0;
        }
        goto done;
    }
    passwords = sk_password_pool_create(config.threads, config.pwhash_cost);
    if (passwords == NULL)
        goto done;
    sk_api_config_t api_config = {
        .jwt_secret = (const uint8_t *)config.jwt_secret,
        .jwt_secret_len = strlen(config.jwt_secret),
        .token_ttl = config.token_ttl,
        .max_amount = config.max_amount,
        .max_body = config.max_body,
        .rate_limit = config.rate_limit,
        .rate_burst = config.rate_burst,
        .cors_origins = config.cors_origins,
        .status_page = config.status_page,
    };
    api = sk_api_create(&api_config, store, passwords);
    if (api == NULL)
        goto done;
    sk_http_config_t http_config = {
        .host = config.listen_host,
        .port = config.listen_port,
        .threads = config.threads,
        .max_body = config.max_body,
        .idle_timeout_ms = config.idle_timeout_ms,
        .max_connections = config.max_connections,
    };
    if (sk_signals_stop_requested()) {
        /* Asked to stop during start-up: drain what the store started, serve nothing. */
        sk_log(SK_LOG_INFO, "main", "stopped during start-up");
    } else if (sk_http_serve(&http_config, sk_api_app(api)) != 0) {
        goto done;
    }
    /* Every worker has answered what it received: make it all durable, then stop. */
    if (sk_store_drain(store) != 0)
        goto done;
    sk_log(SK_LOG_INFO, "main", "stopped cleanly");
    status = 0;
done:
    if (api != NULL)
        sk_api_destroy(api);
    if (passwords != NULL)
        sk_password_pool_destroy(passwords);
    if (store != NULL)
        sk_store_destroy(store);
    sk_config_dispose(&config);
    return status;
}
