/*
 * Tests of src/config.c: the defaults of API.md "Command line"; every flag with valid values,
 * boundary values and invalid ones, in both the "--flag value" and "--flag=value" forms and
 * through its SECKILL_* environment variable; the flag winning over the environment; the
 * --help / --version actions and the usage text; unknown options, missing values, --redis
 * without --mysql; error messages that never echo a value (it may be a secret); and
 * sk_config_prepare_data_dir, which creates the data directory (0700) and a generated secret
 * file (0600, >= 32 bytes) once, reuses it afterwards and refuses short secrets; the --*-file
 * twins of the secret options (modes, line endings, sizes, conflicts with their twin) and
 * the masking of secrets in argv after parsing. Every test starts with all SECKILL_*
 * variables unset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <endian.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "config.h"
#include "util/log.h"

#define ERROR_SIZE 256

static const char *const env_names[] = {
    "SECKILL_LISTEN",
    "SECKILL_DATA_DIR",
    "SECKILL_THREADS",
    "SECKILL_JWT_SECRET",
    "SECKILL_TOKEN_TTL",
    "SECKILL_REDIS",
    "SECKILL_MYSQL",
    "SECKILL_MAX_AMOUNT",
    "SECKILL_MAX_BODY",
    "SECKILL_LOG_LEVEL",
    "SECKILL_PWHASH_COST",
    "SECKILL_SYNC_COMMITS",
    "SECKILL_IDLE_TIMEOUT",
    "SECKILL_JWT_SECRET_FILE",
    "SECKILL_REDIS_FILE",
    "SECKILL_MYSQL_FILE",
    "SECKILL_REDIS_WAIT_REPLICAS",
    "SECKILL_REDIS_WAIT_TIMEOUT",
    "SECKILL_STATUS_PAGE",
};

/* Writable copies of the last parse's arguments, as main() has them: sk_config_parse masks
 * secrets in place (a string literal would be read-only), and the tests read them back. */
static char *last_argv[32];
static int last_argc;

static void free_last_argv(void)
{
    for (int i = 0; i < last_argc; i++)
        free(last_argv[i]);
    last_argc = 0;
}

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
        unsetenv(env_names[i]);
}

static int setup_env(void **state)
{
    (void)state;
    clear_env();
    return 0;
}

static int teardown_env(void **state)
{
    (void)state;
    clear_env();
    free_last_argv();
    return 0;
}

/* Parses "seckill" followed by the NULL-terminated arguments. */
static sk_config_action_t parse(sk_config_t *config, char *error, ...)
{
    free_last_argv();
    last_argv[last_argc++] = strdup("seckill");
    va_list args;
    va_start(args, error);
    for (char *arg; (arg = va_arg(args, char *)) != NULL;) {
        assert_true(last_argc < 31);
        last_argv[last_argc++] = strdup(arg);
    }
    va_end(args);
    last_argv[last_argc] = NULL;
    memset(error, 0, ERROR_SIZE);
    return sk_config_parse(config, last_argc, last_argv, error, ERROR_SIZE);
}

static int default_threads(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)(cores > 256 ? 256 : cores) : 1;
}

static void test_defaults(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE];
    assert_int_equal(parse(&config, error, NULL), SK_CONFIG_RUN);
    assert_string_equal(config.listen_host, "0.0.0.0");
    assert_int_equal(config.listen_port, 20080);
    assert_string_equal(config.data_dir, "./seckill-data");
    assert_int_equal(config.threads, default_threads());
    assert_null(config.jwt_secret);
    assert_int_equal(config.token_ttl, 3600);
    assert_null(config.redis_url);
    assert_null(config.mysql_url);
    assert_int_equal(config.max_amount, 1000000000);
    assert_int_equal(config.max_body, 65536);
    assert_int_equal(config.log_level, SK_LOG_INFO);
    assert_int_equal(config.pwhash_cost, SK_PWHASH_INTERACTIVE);
    assert_int_equal(config.sync_commits, 0);
    assert_int_equal(config.idle_timeout_ms, 10000);
    assert_int_equal(config.redis_wait_replicas, 0);
    assert_int_equal(config.redis_wait_timeout_ms, 100);
    assert_int_equal(config.status_page, 1);
    assert_string_equal(error, "");
    sk_config_dispose(&config);
}

static void test_status_page(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE];
    assert_int_equal(parse(&config, error, "--status-page", "off", NULL), SK_CONFIG_RUN);
    assert_int_equal(config.status_page, 0);
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "--status-page=on", NULL), SK_CONFIG_RUN);
    assert_int_equal(config.status_page, 1);
    sk_config_dispose(&config);
    setenv("SECKILL_STATUS_PAGE", "off", 1);
    assert_int_equal(parse(&config, error, NULL), SK_CONFIG_RUN);
    assert_int_equal(config.status_page, 0);
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "--status-page", "on", NULL), SK_CONFIG_RUN);
    assert_int_equal(config.status_page, 1); /* the flag wins */
    sk_config_dispose(&config);
    unsetenv("SECKILL_STATUS_PAGE");
}

static void test_every_flag_valid(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE];
    assert_int_equal(parse(&config, error, "--listen", "127.0.0.1:8080", "--data-dir", "/tmp/d",
                           "--threads", "7", "--jwt-secret", "0123456789abcdef0123456789abcdef",
                           "--token-ttl", "60", "--redis", "redis://:pw@127.0.0.1:6379/0",
                           "--mysql", "mysql://u:p@127.0.0.1:3306/seckill", "--max-amount", "500",
                           "--max-body", "1024", "--log-level", "debug", "--pwhash-cost", "min",
                           "--sync-commits", "1", "--idle-timeout", "30", NULL),
                     SK_CONFIG_RUN);
    assert_string_equal(config.listen_host, "127.0.0.1");
    assert_int_equal(config.listen_port, 8080);
    assert_string_equal(config.data_dir, "/tmp/d");
    assert_int_equal(config.threads, 7);
    assert_string_equal(config.jwt_secret, "0123456789abcdef0123456789abcdef");
    assert_int_equal(config.token_ttl, 60);
    assert_string_equal(config.redis_url, "redis://:pw@127.0.0.1:6379/0");
    assert_string_equal(config.mysql_url, "mysql://u:p@127.0.0.1:3306/seckill");
    assert_int_equal(config.max_amount, 500);
    assert_int_equal(config.max_body, 1024);
    assert_int_equal(config.log_level, SK_LOG_DEBUG);
    assert_int_equal(config.pwhash_cost, SK_PWHASH_MIN);
    assert_int_equal(config.sync_commits, 1);
    assert_int_equal(config.idle_timeout_ms, 30000);
    sk_config_dispose(&config);
}

static void test_equals_form(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE];
    assert_int_equal(parse(&config, error, "--listen=[::1]:9090", "--data-dir=/var/x",
                           "--threads=3", "--jwt-secret=a=b=c", "--token-ttl=120",
                           "--redis=redis://h:1", "--mysql=mysql://h:2/db", "--max-amount=9",
                           "--max-body=2048", "--log-level=warn", "--pwhash-cost=moderate",
                           "--sync-commits=0", "--idle-timeout=1", NULL),
                     SK_CONFIG_RUN);
    assert_string_equal(config.listen_host, "::1");
    assert_int_equal(config.listen_port, 9090);
    assert_string_equal(config.data_dir, "/var/x");
    assert_int_equal(config.threads, 3);
    /* Only the first '=' separates. */
    assert_string_equal(config.jwt_secret, "a=b=c");
    assert_int_equal(config.token_ttl, 120);
    assert_string_equal(config.redis_url, "redis://h:1");
    assert_string_equal(config.mysql_url, "mysql://h:2/db");
    assert_int_equal(config.max_amount, 9);
    assert_int_equal(config.max_body, 2048);
    assert_int_equal(config.log_level, SK_LOG_WARN);
    assert_int_equal(config.pwhash_cost, SK_PWHASH_MODERATE);
    assert_int_equal(config.sync_commits, 0);
    assert_int_equal(config.idle_timeout_ms, 1000);
    sk_config_dispose(&config);
}

static void test_boundary_values(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE];
    assert_int_equal(parse(&config, error, "--threads", "1", "--token-ttl", "315360000",
                           "--max-amount", "9007199254740991", "--max-body", "67108864",
                           "--idle-timeout", "3600", "--listen", "0.0.0.0:0", NULL),
                     SK_CONFIG_RUN);
    assert_int_equal(config.threads, 1);
    assert_int_equal(config.token_ttl, 10LL * 365 * 86400);
    assert_int_equal(config.max_amount, 9007199254740991LL); /* 2^53 - 1 */
    assert_int_equal(config.max_body, 64 * 1024 * 1024);
    assert_int_equal(config.idle_timeout_ms, 3600000);
    assert_int_equal(config.listen_port, 0);
    sk_config_dispose(&config);

    assert_int_equal(
        parse(&config, error, "--redis-wait-replicas", "0", "--redis-wait-timeout", "1", NULL),
        SK_CONFIG_RUN);
    assert_int_equal(config.redis_wait_replicas, 0);
    assert_int_equal(config.redis_wait_timeout_ms, 1);
    sk_config_dispose(&config);
    assert_int_equal(
        parse(&config, error, "--redis-wait-replicas", "64", "--redis-wait-timeout", "60000", NULL),
        SK_CONFIG_RUN);
    assert_int_equal(config.redis_wait_replicas, 64);
    assert_int_equal(config.redis_wait_timeout_ms, 60000);
    sk_config_dispose(&config);

    assert_int_equal(parse(&config, error, "--threads", "256", "--token-ttl", "1", "--max-amount",
                           "1", "--max-body", "1", "--listen", "[fe80::1]:65535", NULL),
                     SK_CONFIG_RUN);
    assert_int_equal(config.threads, 256);
    assert_int_equal(config.token_ttl, 1);
    assert_int_equal(config.max_amount, 1);
    assert_int_equal(config.max_body, 1);
    assert_string_equal(config.listen_host, "fe80::1");
    assert_int_equal(config.listen_port, 65535);
    sk_config_dispose(&config);

    /* Every log level and cost by name. */
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(parse(&config, error, "--log-level", levels[i], NULL), SK_CONFIG_RUN);
        assert_int_equal(config.log_level, i);
        sk_config_dispose(&config);
    }
    assert_int_equal(parse(&config, error, "--pwhash-cost", "interactive", NULL), SK_CONFIG_RUN);
    assert_int_equal(config.pwhash_cost, SK_PWHASH_INTERACTIVE);
    sk_config_dispose(&config);

    /* A 63-byte host fits; the longest name listen_host holds. */
    char listen[128];
    memset(listen, 'h', 63);
    strcpy(listen + 63, ":1");
    assert_int_equal(parse(&config, error, "--listen", listen, NULL), SK_CONFIG_RUN);
    assert_int_equal(strlen(config.listen_host), 63);
    sk_config_dispose(&config);
}

static void test_later_flag_wins(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE];
    assert_int_equal(parse(&config, error, "--threads", "2", "--threads=5", "--data-dir", "a",
                           "--data-dir", "b", NULL),
                     SK_CONFIG_RUN);
    assert_int_equal(config.threads, 5);
    assert_string_equal(config.data_dir, "b");
    sk_config_dispose(&config);
}

/* Flags with values they must refuse. */
static const struct bad_value {
    const char *flag, *env, *arg, *value;
} bad_values[] = {
    {"--listen", "SECKILL_LISTEN", "ADDR:PORT", "127.0.0.1"},
    {"--listen", "SECKILL_LISTEN", "ADDR:PORT", "127.0.0.1:"},
    {"--listen", "SECKILL_LISTEN", "ADDR:PORT", ":80"},
    {"--listen", "SECKILL_LISTEN", "ADDR:PORT", "[]:80"},
    {"--listen", "SECKILL_LISTEN", "ADDR:PORT", "127.0.0.1:65536"},
    {"--listen", "SECKILL_LISTEN", "ADDR:PORT", "127.0.0.1:-1"},
    {"--listen", "SECKILL_LISTEN", "ADDR:PORT", "127.0.0.1:80x"},
    {"--listen", "SECKILL_LISTEN", "ADDR:PORT", "127.0.0.1:http"},
    {"--listen", "SECKILL_LISTEN", "ADDR:PORT", ""},
    {"--listen", "SECKILL_LISTEN", "ADDR:PORT",
     "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh:80"}, /* 64-byte host */
    {"--data-dir", "SECKILL_DATA_DIR", "DIR", ""},
    {"--threads", "SECKILL_THREADS", "N", "0"},
    {"--threads", "SECKILL_THREADS", "N", "257"},
    {"--threads", "SECKILL_THREADS", "N", "-1"},
    {"--threads", "SECKILL_THREADS", "N", "abc"},
    {"--threads", "SECKILL_THREADS", "N", "4x"},
    {"--threads", "SECKILL_THREADS", "N", "4.0"},
    {"--threads", "SECKILL_THREADS", "N", ""},
    {"--threads", "SECKILL_THREADS", "N", "99999999999999999999"},
    {"--token-ttl", "SECKILL_TOKEN_TTL", "SECONDS", "0"},
    {"--token-ttl", "SECKILL_TOKEN_TTL", "SECONDS", "315360001"},
    {"--token-ttl", "SECKILL_TOKEN_TTL", "SECONDS", "1h"},
    {"--max-amount", "SECKILL_MAX_AMOUNT", "N", "0"},
    {"--max-amount", "SECKILL_MAX_AMOUNT", "N", "-5"},
    {"--max-amount", "SECKILL_MAX_AMOUNT", "N", "1e9"},
    {"--max-body", "SECKILL_MAX_BODY", "BYTES", "0"},
    {"--max-body", "SECKILL_MAX_BODY", "BYTES", "67108865"},
    {"--max-body", "SECKILL_MAX_BODY", "BYTES", "64k"},
    {"--log-level", "SECKILL_LOG_LEVEL", "LEVEL", "verbose"},
    {"--log-level", "SECKILL_LOG_LEVEL", "LEVEL", "INFO"},
    {"--log-level", "SECKILL_LOG_LEVEL", "LEVEL", ""},
    {"--pwhash-cost", "SECKILL_PWHASH_COST", "COST", "high"},
    {"--pwhash-cost", "SECKILL_PWHASH_COST", "COST", "MIN"},
    {"--pwhash-cost", "SECKILL_PWHASH_COST", "COST", ""},
    {"--sync-commits", "SECKILL_SYNC_COMMITS", "0|1", "2"},
    {"--sync-commits", "SECKILL_SYNC_COMMITS", "0|1", "yes"},
    {"--sync-commits", "SECKILL_SYNC_COMMITS", "0|1", "-1"},
    {"--idle-timeout", "SECKILL_IDLE_TIMEOUT", "SECONDS", "0"},
    {"--idle-timeout", "SECKILL_IDLE_TIMEOUT", "SECONDS", "3601"},
    {"--idle-timeout", "SECKILL_IDLE_TIMEOUT", "SECONDS", "ten"},
    {"--redis-wait-replicas", "SECKILL_REDIS_WAIT_REPLICAS", "N", "-1"},
    {"--redis-wait-replicas", "SECKILL_REDIS_WAIT_REPLICAS", "N", "65"},
    {"--redis-wait-replicas", "SECKILL_REDIS_WAIT_REPLICAS", "N", "one"},
    {"--redis-wait-replicas", "SECKILL_REDIS_WAIT_REPLICAS", "N", "1.5"},
    {"--redis-wait-replicas", "SECKILL_REDIS_WAIT_REPLICAS", "N", ""},
    {"--redis-wait-timeout", "SECKILL_REDIS_WAIT_TIMEOUT", "MS", "0"},
    {"--redis-wait-timeout", "SECKILL_REDIS_WAIT_TIMEOUT", "MS", "-100"},
    {"--redis-wait-timeout", "SECKILL_REDIS_WAIT_TIMEOUT", "MS", "60001"},
    {"--redis-wait-timeout", "SECKILL_REDIS_WAIT_TIMEOUT", "MS", "1s"},
    {"--status-page", "SECKILL_STATUS_PAGE", "on|off", "yes"},
    {"--status-page", "SECKILL_STATUS_PAGE", "on|off", "ON"},
    {"--status-page", "SECKILL_STATUS_PAGE", "on|off", "1"},
    {"--status-page", "SECKILL_STATUS_PAGE", "on|off", ""},
};

static void test_invalid_values(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE], expected[ERROR_SIZE], joined[512];
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        const struct bad_value *bad = &bad_values[i];
        snprintf(expected, sizeof(expected), "invalid value for %s (expected %s)", bad->flag,
                 bad->arg);

        if (parse(&config, error, bad->flag, bad->value, NULL) != SK_CONFIG_ERROR)
            fail_msg("%s '%s' accepted", bad->flag, bad->value);
        assert_string_equal(error, expected);
        sk_config_dispose(&config);

        snprintf(joined, sizeof(joined), "%s=%s", bad->flag, bad->value);
        if (parse(&config, error, joined, NULL) != SK_CONFIG_ERROR)
            fail_msg("'%s' accepted", joined);
        assert_string_equal(error, expected);
        sk_config_dispose(&config);
    }
}

/* Above 2^53 - 1, a message of its own names the limit and why; on the command line, in
 * both forms, and in the environment. */
static void test_max_amount_limit(void **state)
{
    (void)state;
    static const char *const too_large[] = {"9007199254740992", "9223372036854775807",
                                            "9223372036854775808", "99999999999999999999999"};
    static const char reason[] = "is larger than 9007199254740991 (2^53 - 1), the largest "
                                 "amount counted exactly: Redis's Lua scripts hold a coupon's "
                                 "left as a double";
    sk_config_t config;
    char error[ERROR_SIZE], expected[ERROR_SIZE], joined[128];
    for (size_t i = 0; i < sizeof(too_large) / sizeof(too_large[0]); i++) {
        snprintf(expected, sizeof(expected), "--max-amount %s", reason);
        assert_int_equal(parse(&config, error, "--max-amount", too_large[i], NULL),
                         SK_CONFIG_ERROR);
        assert_string_equal(error, expected);
        sk_config_dispose(&config);

        snprintf(joined, sizeof(joined), "--max-amount=%s", too_large[i]);
        assert_int_equal(parse(&config, error, joined, NULL), SK_CONFIG_ERROR);
        assert_string_equal(error, expected);
        sk_config_dispose(&config);

        snprintf(expected, sizeof(expected), "SECKILL_MAX_AMOUNT %s", reason);
        setenv("SECKILL_MAX_AMOUNT", too_large[i], 1);
        assert_int_equal(parse(&config, error, NULL), SK_CONFIG_ERROR);
        assert_string_equal(error, expected);
        sk_config_dispose(&config);
        unsetenv("SECKILL_MAX_AMOUNT");
    }
    /* The limit itself is accepted, in the environment too. */
    setenv("SECKILL_MAX_AMOUNT", "9007199254740991", 1);
    assert_int_equal(parse(&config, error, NULL), SK_CONFIG_RUN);
    assert_int_equal(config.max_amount, 9007199254740991LL);
    sk_config_dispose(&config);
}

static void test_invalid_env_values(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE], expected[ERROR_SIZE];
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        const struct bad_value *bad = &bad_values[i];
        setenv(bad->env, bad->value, 1);
        if (parse(&config, error, NULL) != SK_CONFIG_ERROR)
            fail_msg("%s='%s' accepted", bad->env, bad->value);
        snprintf(expected, sizeof(expected), "invalid value in %s (%s %s)", bad->env, bad->flag,
                 bad->arg);
        assert_string_equal(error, expected);
        sk_config_dispose(&config);
        unsetenv(bad->env);
    }
}

static void test_env_values(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE];
    setenv("SECKILL_LISTEN", "10.0.0.1:1234", 1);
    setenv("SECKILL_DATA_DIR", "/srv/seckill", 1);
    setenv("SECKILL_THREADS", "9", 1);
    setenv("SECKILL_JWT_SECRET", "from-the-environment-0123456789abcdef", 1);
    setenv("SECKILL_TOKEN_TTL", "99", 1);
    setenv("SECKILL_REDIS", "redis://r", 1);
    setenv("SECKILL_MYSQL", "mysql://m", 1);
    setenv("SECKILL_MAX_AMOUNT", "77", 1);
    setenv("SECKILL_MAX_BODY", "4096", 1);
    setenv("SECKILL_LOG_LEVEL", "error", 1);
    setenv("SECKILL_PWHASH_COST", "min", 1);
    setenv("SECKILL_SYNC_COMMITS", "1", 1);
    setenv("SECKILL_IDLE_TIMEOUT", "5", 1);
    assert_int_equal(parse(&config, error, NULL), SK_CONFIG_RUN);
    assert_string_equal(config.listen_host, "10.0.0.1");
    assert_int_equal(config.listen_port, 1234);
    assert_string_equal(config.data_dir, "/srv/seckill");
    assert_int_equal(config.threads, 9);
    assert_string_equal(config.jwt_secret, "from-the-environment-0123456789abcdef");
    assert_int_equal(config.token_ttl, 99);
    assert_string_equal(config.redis_url, "redis://r");
    assert_string_equal(config.mysql_url, "mysql://m");
    assert_int_equal(config.max_amount, 77);
    assert_int_equal(config.max_body, 4096);
    assert_int_equal(config.log_level, SK_LOG_ERROR);
    assert_int_equal(config.pwhash_cost, SK_PWHASH_MIN);
    assert_int_equal(config.sync_commits, 1);
    assert_int_equal(config.idle_timeout_ms, 5000);
    sk_config_dispose(&config);
}

static void test_flag_wins_over_env(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE];
    setenv("SECKILL_THREADS", "3", 1);
    setenv("SECKILL_DATA_DIR", "/from/env", 1);
    setenv("SECKILL_JWT_SECRET", "env-secret-env-secret-env-secret-env", 1);
    setenv("SECKILL_LISTEN", "10.0.0.1:1", 1);
    setenv("SECKILL_LOG_LEVEL", "debug", 1);
    assert_int_equal(parse(&config, error, "--threads", "5", "--data-dir=/from/flag",
                           "--jwt-secret", "flag-secret-flag-secret-flag-secret", "--listen",
                           "10.0.0.2:2", NULL),
                     SK_CONFIG_RUN);
    assert_int_equal(config.threads, 5);
    assert_string_equal(config.data_dir, "/from/flag");
    assert_string_equal(config.jwt_secret, "flag-secret-flag-secret-flag-secret");
    assert_string_equal(config.listen_host, "10.0.0.2");
    assert_int_equal(config.listen_port, 2);
    /* What no flag overrides still comes from the environment. */
    assert_int_equal(config.log_level, SK_LOG_DEBUG);
    sk_config_dispose(&config);
}

static void test_help_and_version(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE];
    assert_int_equal(parse(&config, error, "--help", NULL), SK_CONFIG_HELP);
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "-h", NULL), SK_CONFIG_HELP);
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "--version", NULL), SK_CONFIG_VERSION);
    sk_config_dispose(&config);
    /* After valid options, and before anything else is looked at. */
    assert_int_equal(parse(&config, error, "--threads", "2", "--help", "--nope", NULL),
                     SK_CONFIG_HELP);
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "--version", "--threads", NULL), SK_CONFIG_VERSION);
    sk_config_dispose(&config);
    /* An earlier error wins. */
    assert_int_equal(parse(&config, error, "--threads", "x", "--help", NULL), SK_CONFIG_ERROR);
    sk_config_dispose(&config);
    /* Not a prefix match. */
    assert_int_equal(parse(&config, error, "--helpme", NULL), SK_CONFIG_ERROR);
    sk_config_dispose(&config);
}

static void test_usage_lists_every_option(void **state)
{
    (void)state;
    const char *usage = sk_config_usage();
    assert_non_null(usage);
    assert_non_null(strstr(usage, "Usage: seckill [options]"));
    static const char *const flags[] = {
        "--listen ADDR:PORT",
        "--data-dir DIR",
        "--threads N",
        "--jwt-secret S",
        "--jwt-secret-file PATH",
        "--token-ttl SECONDS",
        "--redis URL",
        "--redis-file PATH",
        "--mysql URL",
        "--mysql-file PATH",
        "--max-amount N",
        "--max-body BYTES",
        "--log-level LEVEL",
        "--pwhash-cost COST",
        "--sync-commits 0|1",
        "--idle-timeout SECONDS",
        "--status-page on|off",
        "--help",
        "--version",
    };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (strstr(usage, flags[i]) == NULL)
            fail_msg("usage lacks %s", flags[i]);
    for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++) {
        char bracketed[64];
        snprintf(bracketed, sizeof(bracketed), "[%s]", env_names[i]);
        if (strstr(usage, bracketed) == NULL)
            fail_msg("usage lacks %s", bracketed);
    }
    /* Nothing was cut off. */
    assert_int_equal(usage[strlen(usage) - 1], '\n');
    /* The same text every time. */
    assert_ptr_equal(sk_config_usage(), usage);
}

static void test_unknown_option(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE];
    assert_int_equal(parse(&config, error, "--nope", NULL), SK_CONFIG_ERROR);
    assert_string_equal(error, "unknown option '--nope' (see --help)");
    sk_config_dispose(&config);
    /* The value after '=' is never echoed. */
    assert_int_equal(parse(&config, error, "--jwt-secrte=hunter2hunter2", NULL), SK_CONFIG_ERROR);
    assert_string_equal(error, "unknown option '--jwt-secrte' (see --help)");
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "serve", NULL), SK_CONFIG_ERROR);
    assert_string_equal(error, "unknown option 'serve' (see --help)");
    sk_config_dispose(&config);
    /* Flags are case-sensitive and need both dashes. */
    assert_int_equal(parse(&config, error, "--Threads", "2", NULL), SK_CONFIG_ERROR);
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "-threads", "2", NULL), SK_CONFIG_ERROR);
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "--thread", "2", NULL), SK_CONFIG_ERROR);
    assert_string_equal(error, "unknown option '--thread' (see --help)");
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "--", NULL), SK_CONFIG_ERROR);
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "", NULL), SK_CONFIG_ERROR);
    sk_config_dispose(&config);
    /* An unknown option after a valid one still fails. */
    assert_int_equal(parse(&config, error, "--threads", "2", "--nope", NULL), SK_CONFIG_ERROR);
    sk_config_dispose(&config);
}

static void test_missing_value(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE];
    assert_int_equal(parse(&config, error, "--threads", NULL), SK_CONFIG_ERROR);
    assert_string_equal(error, "--threads needs a value: N");
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "--threads", "2", "--jwt-secret", NULL),
                     SK_CONFIG_ERROR);
    assert_string_equal(error, "--jwt-secret needs a value: S");
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "--listen", NULL), SK_CONFIG_ERROR);
    assert_string_equal(error, "--listen needs a value: ADDR:PORT");
    sk_config_dispose(&config);
    /* "--flag=" has a value: the empty one. */
    assert_int_equal(parse(&config, error, "--threads=", NULL), SK_CONFIG_ERROR);
    assert_string_equal(error, "invalid value for --threads (expected N)");
    sk_config_dispose(&config);
}

static void test_redis_and_mysql_go_together(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE];
    assert_int_equal(parse(&config, error, "--redis", "redis://127.0.0.1:6379", NULL),
                     SK_CONFIG_ERROR);
    assert_string_equal(error, "--redis and --mysql go together");
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "--mysql", "mysql://u:p@h:3306/d", NULL),
                     SK_CONFIG_ERROR);
    assert_string_equal(error, "--redis and --mysql go together");
    sk_config_dispose(&config);
    /* One from the environment, the other from a flag, makes a pair. */
    setenv("SECKILL_REDIS", "redis://127.0.0.1:6379", 1);
    assert_int_equal(parse(&config, error, NULL), SK_CONFIG_ERROR);
    assert_string_equal(error, "--redis and --mysql go together");
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "--mysql", "mysql://u:p@h:3306/d", NULL), SK_CONFIG_RUN);
    assert_string_equal(config.redis_url, "redis://127.0.0.1:6379");
    assert_string_equal(config.mysql_url, "mysql://u:p@h:3306/d");
    sk_config_dispose(&config);
}

static void test_errors_never_echo_values(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE];
    setenv("SECKILL_THREADS", "hunter2-is-my-password", 1);
    assert_int_equal(parse(&config, error, NULL), SK_CONFIG_ERROR);
    assert_null(strstr(error, "hunter2"));
    sk_config_dispose(&config);
    unsetenv("SECKILL_THREADS");

    assert_int_equal(parse(&config, error, "--max-amount", "hunter2", NULL), SK_CONFIG_ERROR);
    assert_null(strstr(error, "hunter2"));
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "--listen=hunter2", NULL), SK_CONFIG_ERROR);
    assert_null(strstr(error, "hunter2"));
    sk_config_dispose(&config);
    /* The URLs carry passwords: the pairing error names the flags only. */
    assert_int_equal(parse(&config, error, "--redis", "redis://:hunter2@h:6379", NULL),
                     SK_CONFIG_ERROR);
    assert_null(strstr(error, "hunter2"));
    sk_config_dispose(&config);
}

static void test_dispose_is_idempotent(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE];
    assert_int_equal(
        parse(&config, error, "--jwt-secret", "s", "--redis", "r", "--mysql", "m", NULL),
        SK_CONFIG_RUN);
    sk_config_dispose(&config);
    assert_null(config.data_dir);
    assert_null(config.jwt_secret);
    assert_null(config.redis_url);
    assert_null(config.mysql_url);
    sk_config_dispose(&config);
}

/* ---- the data directory ---- */

typedef struct temp_dir {
    char parent[64];
    char data_dir[96];
    char secret_path[128];
} temp_dir_t;

static int setup_temp_dir(void **state)
{
    clear_env();
    temp_dir_t *dir = calloc(1, sizeof(*dir));
    if (dir == NULL)
        return -1;
    strcpy(dir->parent, "/tmp/sk-test-config-XXXXXX");
    if (mkdtemp(dir->parent) == NULL)
        return -1;
    snprintf(dir->data_dir, sizeof(dir->data_dir), "%s/data", dir->parent);
    snprintf(dir->secret_path, sizeof(dir->secret_path), "%s/jwt-secret", dir->data_dir);
    *state = dir;
    return 0;
}

static int teardown_temp_dir(void **state)
{
    temp_dir_t *dir = *state;
    clear_env();
    free_last_argv();
    unlink(dir->secret_path);
    rmdir(dir->data_dir);
    rmdir(dir->parent);
    free(dir);
    return 0;
}

static void read_file(const char *path, char *out, size_t out_size)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t got = read(fd, out, out_size - 1);
    close(fd);
    assert_true(got >= 0);
    out[got] = '\0';
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void test_prepare_creates_dir_and_secret(void **state)
{
    temp_dir_t *dir = *state;
    sk_config_t config;
    char error[ERROR_SIZE];
    mode_t old_umask = umask(022);
    assert_int_equal(parse(&config, error, "--data-dir", dir->data_dir, NULL), SK_CONFIG_RUN);
    assert_int_equal(sk_config_prepare_data_dir(&config, error, sizeof(error)), 0);

    struct stat info;
    assert_int_equal(stat(dir->data_dir, &info), 0);
    assert_true(S_ISDIR(info.st_mode));
    assert_int_equal(info.st_mode & 07777, 0700);
    assert_int_equal(stat(dir->secret_path, &info), 0);
    assert_true(S_ISREG(info.st_mode));
    assert_int_equal(info.st_mode & 07777, 0600);

    /* The secret in memory is the file's content without its newline, >= 32 bytes. */
    assert_non_null(config.jwt_secret);
    size_t len = strlen(config.jwt_secret);
    assert_true(len >= 32);
    char text[512];
    read_file(dir->secret_path, text, sizeof(text));
    assert_int_equal(strlen(text), len + 1);
    assert_memory_equal(text, config.jwt_secret, len);
    assert_int_equal(text[len], '\n');
    /* Printable (base64url) so that an operator can copy it to other instances. */
    for (size_t i = 0; i < len; i++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                               config.jwt_secret[i]));
    char first[512];
    strcpy(first, config.jwt_secret);
    sk_config_dispose(&config);

    /* The second start reuses it. */
    assert_int_equal(parse(&config, error, "--data-dir", dir->data_dir, NULL), SK_CONFIG_RUN);
    assert_int_equal(sk_config_prepare_data_dir(&config, error, sizeof(error)), 0);
    assert_string_equal(config.jwt_secret, first);
    sk_config_dispose(&config);

    /* So does a third, through the environment. */
    setenv("SECKILL_DATA_DIR", dir->data_dir, 1);
    assert_int_equal(parse(&config, error, NULL), SK_CONFIG_RUN);
    assert_int_equal(sk_config_prepare_data_dir(&config, error, sizeof(error)), 0);
    assert_string_equal(config.jwt_secret, first);
    sk_config_dispose(&config);
    umask(old_umask);
}

static void test_prepare_with_given_secret(void **state)
{
    temp_dir_t *dir = *state;
    sk_config_t config;
    char error[ERROR_SIZE];
    /* Exactly 32 bytes is enough, and nothing is written to the data dir. */
    assert_int_equal(parse(&config, error, "--data-dir", dir->data_dir, "--jwt-secret",
                           "0123456789abcdef0123456789abcdef", NULL),
                     SK_CONFIG_RUN);
    assert_int_equal(sk_config_prepare_data_dir(&config, error, sizeof(error)), 0);
    assert_string_equal(config.jwt_secret, "0123456789abcdef0123456789abcdef");
    assert_int_equal(access(dir->secret_path, F_OK), -1);
    struct stat info;
    assert_int_equal(stat(dir->data_dir, &info), 0);
    assert_true(S_ISDIR(info.st_mode));
    sk_config_dispose(&config);
}

static void test_prepare_refuses_short_secret(void **state)
{
    temp_dir_t *dir = *state;
    sk_config_t config;
    char error[ERROR_SIZE];
    /* 31 bytes. */
    assert_int_equal(parse(&config, error, "--data-dir", dir->data_dir, "--jwt-secret",
                           "0123456789abcdef0123456789abcde", NULL),
                     SK_CONFIG_RUN);
    assert_int_equal(sk_config_prepare_data_dir(&config, error, sizeof(error)), -1);
    assert_string_equal(error, "the JWT secret must be at least 32 bytes long");
    sk_config_dispose(&config);

    assert_int_equal(parse(&config, error, "--data-dir", dir->data_dir, "--jwt-secret=", NULL),
                     SK_CONFIG_RUN);
    assert_int_equal(sk_config_prepare_data_dir(&config, error, sizeof(error)), -1);
    sk_config_dispose(&config);
}

static void test_short_env_secret_is_not_echoed(void **state)
{
    temp_dir_t *dir = *state;
    sk_config_t config;
    char error[ERROR_SIZE];
    setenv("SECKILL_JWT_SECRET", "tooShortSecretXYZ", 1);
    setenv("SECKILL_DATA_DIR", dir->data_dir, 1);
    assert_int_equal(parse(&config, error, NULL), SK_CONFIG_RUN);
    int status = sk_config_prepare_data_dir(&config, error, sizeof(error));
    assert_int_equal(status, -1);
    assert_true(strlen(error) > 0);
    assert_null(strstr(error, "tooShortSecretXYZ"));
    assert_null(strstr(error, "tooShort"));
    assert_null(strstr(error, "XYZ"));
    sk_config_dispose(&config);

    /* A long enough flag overrides the short environment value. */
    assert_int_equal(
        parse(&config, error, "--jwt-secret", "0123456789abcdef0123456789abcdef!", NULL),
        SK_CONFIG_RUN);
    assert_int_equal(sk_config_prepare_data_dir(&config, error, sizeof(error)), 0);
    sk_config_dispose(&config);
}

static void test_prepare_refuses_short_secret_file(void **state)
{
    temp_dir_t *dir = *state;
    sk_config_t config;
    char error[ERROR_SIZE];
    assert_int_equal(mkdir(dir->data_dir, 0700), 0);
    write_file(dir->secret_path, "short-file-secret\n");
    assert_int_equal(parse(&config, error, "--data-dir", dir->data_dir, NULL), SK_CONFIG_RUN);
    assert_int_equal(sk_config_prepare_data_dir(&config, error, sizeof(error)), -1);
    assert_null(strstr(error, "short-file-secret"));
    sk_config_dispose(&config);
}

static void test_prepare_reads_kept_secret_exactly(void **state)
{
    temp_dir_t *dir = *state;
    sk_config_t config;
    char error[ERROR_SIZE];
    assert_int_equal(mkdir(dir->data_dir, 0700), 0);
    /* An operator's own secret, with a CRLF line end: the line end is not part of it, but
     * inner and leading spaces are. */
    write_file(dir->secret_path, " kept secret kept secret kept secret \r\n");
    assert_int_equal(parse(&config, error, "--data-dir", dir->data_dir, NULL), SK_CONFIG_RUN);
    assert_int_equal(sk_config_prepare_data_dir(&config, error, sizeof(error)), 0);
    assert_string_equal(config.jwt_secret, " kept secret kept secret kept secret ");
    sk_config_dispose(&config);
}

static void test_prepare_fails_for_unusable_dir(void **state)
{
    temp_dir_t *dir = *state;
    sk_config_t config;
    char error[ERROR_SIZE];
    char missing_parent[160];
    snprintf(missing_parent, sizeof(missing_parent), "%s/no/such/dir", dir->parent);
    assert_int_equal(parse(&config, error, "--data-dir", missing_parent, NULL), SK_CONFIG_RUN);
    assert_int_equal(sk_config_prepare_data_dir(&config, error, sizeof(error)), -1);
    assert_non_null(strstr(error, "cannot create data dir"));
    assert_non_null(strstr(error, missing_parent));
    assert_null(config.jwt_secret);
    sk_config_dispose(&config);

    /* A file where the directory should be. */
    write_file(dir->data_dir, "not a dir");
    assert_int_equal(parse(&config, error, "--data-dir", dir->data_dir, NULL), SK_CONFIG_RUN);
    assert_int_equal(sk_config_prepare_data_dir(&config, error, sizeof(error)), -1);
    assert_true(strlen(error) > 0);
    sk_config_dispose(&config);
    unlink(dir->data_dir);
}

static void test_good_flag_beats_bad_env(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE];
    setenv("SECKILL_THREADS", "abc", 1);
    assert_int_equal(parse(&config, error, "--threads", "4", NULL), SK_CONFIG_RUN);
    assert_int_equal(config.threads, 4);
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "--threads=3", NULL), SK_CONFIG_RUN);
    assert_int_equal(config.threads, 3);
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, NULL), SK_CONFIG_ERROR);
    sk_config_dispose(&config);
    unsetenv("SECKILL_THREADS");
}

static void test_numbers_are_digits_only(void **state)
{
    (void)state;
    static const char *const bad[] = {" 4", "+4", "4 ", "0x4", "", "-", "4e1"};
    sk_config_t config;
    char error[ERROR_SIZE];
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        if (parse(&config, error, "--threads", bad[i], NULL) != SK_CONFIG_ERROR)
            fail_msg("--threads '%s' accepted", bad[i]);
        sk_config_dispose(&config);
    }
}

/* ---- secrets: the --*-file twins and argv masking ---- */

#define SECRET_40 "0123456789abcdef0123456789abcdef-secret"

/* Writes `len` bytes to `name` in the temp dir's parent with exactly `mode` (fchmod: the
 * umask does not apply); `path` receives the file's path. */
static void write_value_file(const temp_dir_t *dir, const char *name, const char *bytes, size_t len,
                             mode_t mode, char *path, size_t path_size)
{
    snprintf(path, path_size, "%s/%s", dir->parent, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void test_secret_file_strips_one_line_ending(void **state)
{
    temp_dir_t *dir = *state;
    sk_config_t config;
    char error[ERROR_SIZE], path[128];
    static const char *const contents[] = {SECRET_40, SECRET_40 "\n", SECRET_40 "\r\n"};
    for (size_t i = 0; i < sizeof(contents) / sizeof(contents[0]); i++) {
        write_value_file(dir, "secret", contents[i], strlen(contents[i]), 0600, path, sizeof(path));
        assert_int_equal(parse(&config, error, "--jwt-secret-file", path, NULL), SK_CONFIG_RUN);
        assert_string_equal(config.jwt_secret, SECRET_40);
        sk_config_dispose(&config);
        /* The '=' form and the environment read the same. */
        char flag[300];
        snprintf(flag, sizeof(flag), "--jwt-secret-file=%s", path);
        assert_int_equal(parse(&config, error, flag, NULL), SK_CONFIG_RUN);
        assert_string_equal(config.jwt_secret, SECRET_40);
        sk_config_dispose(&config);
        setenv("SECKILL_JWT_SECRET_FILE", path, 1);
        assert_int_equal(parse(&config, error, NULL), SK_CONFIG_RUN);
        assert_string_equal(config.jwt_secret, SECRET_40);
        sk_config_dispose(&config);
        unsetenv("SECKILL_JWT_SECRET_FILE");
    }
    /* 0400 is stricter than 0600: fine too. */
    write_value_file(dir, "secret", SECRET_40 "\n", strlen(SECRET_40) + 1, 0400, path,
                     sizeof(path));
    assert_int_equal(parse(&config, error, "--jwt-secret-file", path, NULL), SK_CONFIG_RUN);
    assert_string_equal(config.jwt_secret, SECRET_40);
    sk_config_dispose(&config);
    unlink(path);
}

static void test_url_files(void **state)
{
    temp_dir_t *dir = *state;
    sk_config_t config;
    char error[ERROR_SIZE], redis_path[128], mysql_path[128];
    static const char redis[] = "redis://:pw@127.0.0.1:6379/0\n";
    static const char mysql[] = "mysql://u:p@127.0.0.1:3306/seckill\r\n";
    write_value_file(dir, "redis", redis, strlen(redis), 0600, redis_path, sizeof(redis_path));
    write_value_file(dir, "mysql", mysql, strlen(mysql), 0600, mysql_path, sizeof(mysql_path));
    assert_int_equal(
        parse(&config, error, "--redis-file", redis_path, "--mysql-file", mysql_path, NULL),
        SK_CONFIG_RUN);
    assert_string_equal(config.redis_url, "redis://:pw@127.0.0.1:6379/0");
    assert_string_equal(config.mysql_url, "mysql://u:p@127.0.0.1:3306/seckill");
    sk_config_dispose(&config);
    /* Through the environment, with reconcile. */
    setenv("SECKILL_REDIS_FILE", redis_path, 1);
    setenv("SECKILL_MYSQL_FILE", mysql_path, 1);
    assert_int_equal(parse(&config, error, "reconcile", NULL), SK_CONFIG_RUN);
    assert_true(config.reconcile);
    assert_string_equal(config.redis_url, "redis://:pw@127.0.0.1:6379/0");
    assert_string_equal(config.mysql_url, "mysql://u:p@127.0.0.1:3306/seckill");
    sk_config_dispose(&config);
    /* Still together or not at all. */
    unsetenv("SECKILL_MYSQL_FILE");
    assert_int_equal(parse(&config, error, NULL), SK_CONFIG_ERROR);
    assert_string_equal(error, "--redis and --mysql go together");
    sk_config_dispose(&config);
    unlink(redis_path);
    unlink(mysql_path);
}

static void test_secret_file_refused_modes(void **state)
{
    temp_dir_t *dir = *state;
    sk_config_t config;
    char error[ERROR_SIZE], path[128], expected[ERROR_SIZE + 128];
    /* Any bit for group or others: read, write or execute. */
    static const mode_t modes[] = {0644, 0640, 0604, 0620, 0602, 0610, 0601, 0666, 0700 | 0070};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        write_value_file(dir, "secret", SECRET_40 "\n", strlen(SECRET_40) + 1, modes[i], path,
                         sizeof(path));
        assert_int_equal(parse(&config, error, "--jwt-secret-file", path, NULL), SK_CONFIG_ERROR);
        snprintf(expected, sizeof(expected),
                 "--jwt-secret-file: %s has mode %04o: group or others may read or write it; "
                 "it holds a secret: chmod 600 it",
                 path, (unsigned)modes[i]);
        assert_string_equal(error, expected);
        assert_null(strstr(error, "0123456789abcdef"));
        sk_config_dispose(&config);
        /* The same refusal through the environment names the variable. */
        setenv("SECKILL_MYSQL_FILE", path, 1);
        setenv("SECKILL_REDIS", "redis://127.0.0.1:1/0", 1);
        assert_int_equal(parse(&config, error, NULL), SK_CONFIG_ERROR);
        assert_non_null(strstr(error, "SECKILL_MYSQL_FILE: "));
        assert_non_null(strstr(error, path));
        sk_config_dispose(&config);
        unsetenv("SECKILL_MYSQL_FILE");
        unsetenv("SECKILL_REDIS");
    }
    unlink(path);
}

static void test_secret_file_refused_contents(void **state)
{
    temp_dir_t *dir = *state;
    sk_config_t config;
    char error[ERROR_SIZE], path[128];
    static const struct {
        const char *bytes;
        size_t len;
        const char *why;
    } cases[] = {
        {"", 0, "is empty"},
        {"\n", 1, "is empty"},
        {"\r\n", 2, "is empty"},
        {SECRET_40 "\n\n", sizeof(SECRET_40) + 1, "holds more than one line"},
        {"first-half\nsecond-half", 22, "holds more than one line"},
        {"first-half\rsecond-half", 22, "holds more than one line"},
        {SECRET_40 "\r", sizeof(SECRET_40), "holds more than one line"},
        {"first-half\0second-half", 22, "holds a NUL byte"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_value_file(dir, "secret", cases[i].bytes, cases[i].len, 0600, path, sizeof(path));
        assert_int_equal(parse(&config, error, "--jwt-secret-file", path, NULL), SK_CONFIG_ERROR);
        if (strstr(error, cases[i].why) == NULL || strstr(error, path) == NULL)
            fail_msg("case %zu: '%s'", i, error);
        assert_null(strstr(error, "half"));
        assert_null(strstr(error, "0123456789abcdef"));
        sk_config_dispose(&config);
    }
    unlink(path);

    /* A missing file, a directory. */
    snprintf(path, sizeof(path), "%s/missing", dir->parent);
    assert_int_equal(parse(&config, error, "--redis", "redis://h:1", "--mysql-file", path, NULL),
                     SK_CONFIG_ERROR);
    char expected[ERROR_SIZE + 128];
    snprintf(expected, sizeof(expected), "--mysql-file: cannot open %s: No such file or directory",
             path);
    assert_string_equal(error, expected);
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "--jwt-secret-file", dir->parent, NULL),
                     SK_CONFIG_ERROR);
    assert_non_null(strstr(error, "is not a regular file"));
    sk_config_dispose(&config);
}

static void test_secret_file_size_limit(void **state)
{
    temp_dir_t *dir = *state;
    sk_config_t config;
    char error[ERROR_SIZE], path[128];
    enum { LIMIT = 16384 };
    char *big = malloc(LIMIT + 2);
    assert_non_null(big);
    memset(big, 'k', LIMIT + 1);
    big[LIMIT + 1] = '\0';
    /* The limit is the file's size, line ending included. */
    write_value_file(dir, "secret", big, LIMIT, 0600, path, sizeof(path));
    assert_int_equal(parse(&config, error, "--jwt-secret-file", path, NULL), SK_CONFIG_RUN);
    assert_int_equal(strlen(config.jwt_secret), LIMIT);
    sk_config_dispose(&config);
    write_value_file(dir, "secret", big, LIMIT + 1, 0600, path, sizeof(path));
    assert_int_equal(parse(&config, error, "--jwt-secret-file", path, NULL), SK_CONFIG_ERROR);
    assert_non_null(strstr(error, "is larger than 16384 bytes"));
    assert_null(strstr(error, "kkk"));
    sk_config_dispose(&config);
    free(big);
    unlink(path);
}

/* A POSIX ACL (Linux xattr layout) on `path`: 0400 for the owner, `tag`/`id` with read, the
 * mask read. Returns 0, or -1 where the file system has no ACLs. */
static int set_read_acl(const char *path, uint16_t tag, uint32_t id)
{
    struct {
        uint16_t tag, perm;
        uint32_t id;
    } entries[] = {
        {0x01, 4, 0xffffffffu}, {0x04, 0, 0xffffffffu}, {tag, 4, id},
        {0x10, 4, 0xffffffffu}, {0x20, 0, 0xffffffffu},
    };
    /* The kernel wants the entries in tag order. */
    if (tag < 0x04) {
        entries[2] = entries[1];
        entries[1].tag = tag;
        entries[1].perm = 4;
        entries[1].id = id;
    }
    unsigned char blob[4 + sizeof(entries)];
    uint32_t version = htole32(2);
    memcpy(blob, &version, 4);
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
        entries[i].tag = htole16(entries[i].tag);
        entries[i].perm = htole16(entries[i].perm);
        entries[i].id = htole32(entries[i].id);
    }
    memcpy(blob + 4, entries, sizeof(entries));
    return setxattr(path, "system.posix_acl_access", blob, sizeof(blob), 0);
}

static void test_secret_file_acl(void **state)
{
    temp_dir_t *dir = *state;
    sk_config_t config;
    char error[ERROR_SIZE], path[128];
    write_value_file(dir, "secret", SECRET_40 "\n", strlen(SECRET_40) + 1, 0400, path,
                     sizeof(path));
    /* What systemd's LoadCredential= makes: 0400 plus read for the service's user, which
     * stat shows as 0440 (the ACL's mask in the group bits). */
    if (set_read_acl(path, 0x02, (uint32_t)geteuid()) != 0) {
        unlink(path);
        skip();
    }
    struct stat info;
    assert_int_equal(stat(path, &info), 0);
    assert_int_equal(info.st_mode & 0777, 0440);
    assert_int_equal(parse(&config, error, "--jwt-secret-file", path, NULL), SK_CONFIG_RUN);
    assert_string_equal(config.jwt_secret, SECRET_40);
    sk_config_dispose(&config);
    /* Read for another user, or for a group: refused. */
    assert_int_equal(set_read_acl(path, 0x02, (uint32_t)geteuid() + 4242), 0);
    assert_int_equal(parse(&config, error, "--jwt-secret-file", path, NULL), SK_CONFIG_ERROR);
    assert_non_null(strstr(error, "mode 0440"));
    sk_config_dispose(&config);
    assert_int_equal(set_read_acl(path, 0x08, (uint32_t)getegid()), 0);
    assert_int_equal(parse(&config, error, "--jwt-secret-file", path, NULL), SK_CONFIG_ERROR);
    sk_config_dispose(&config);
    unlink(path);
}

static void test_secret_file_and_flag_conflict(void **state)
{
    temp_dir_t *dir = *state;
    sk_config_t config;
    char error[ERROR_SIZE], path[128];
    write_value_file(dir, "secret", SECRET_40 "\n", strlen(SECRET_40) + 1, 0600, path,
                     sizeof(path));
    /* Both on the command line, in either order and form. */
    assert_int_equal(
        parse(&config, error, "--jwt-secret", SECRET_40, "--jwt-secret-file", path, NULL),
        SK_CONFIG_ERROR);
    assert_string_equal(error, "give --jwt-secret or --jwt-secret-file, not both");
    sk_config_dispose(&config);
    char flag[300];
    snprintf(flag, sizeof(flag), "--jwt-secret-file=%s", path);
    assert_int_equal(parse(&config, error, flag, "--jwt-secret=" SECRET_40, NULL), SK_CONFIG_ERROR);
    assert_string_equal(error, "give --jwt-secret-file or --jwt-secret, not both");
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "--redis", "redis://h:1", "--redis-file", path,
                           "--mysql", "mysql://u@h/d", NULL),
                     SK_CONFIG_ERROR);
    assert_string_equal(error, "give --redis or --redis-file, not both");
    sk_config_dispose(&config);
    assert_int_equal(parse(&config, error, "--redis", "redis://h:1", "--mysql-file", path,
                           "--mysql", "mysql://u@h/d", NULL),
                     SK_CONFIG_ERROR);
    assert_string_equal(error, "give --mysql-file or --mysql, not both");
    sk_config_dispose(&config);

    /* Both in the environment: the service cannot tell which one is stale. */
    setenv("SECKILL_JWT_SECRET", SECRET_40, 1);
    setenv("SECKILL_JWT_SECRET_FILE", path, 1);
    assert_int_equal(parse(&config, error, NULL), SK_CONFIG_ERROR);
    assert_string_equal(error, "SECKILL_JWT_SECRET and SECKILL_JWT_SECRET_FILE are both set: "
                               "keep one");
    sk_config_dispose(&config);

    /* Either twin on the command line overrides both variables (which are not read: a
     * missing file there is no error). */
    setenv("SECKILL_JWT_SECRET_FILE", "/nonexistent/secret", 1);
    assert_int_equal(parse(&config, error, "--jwt-secret", "from-the-flag", NULL), SK_CONFIG_RUN);
    assert_string_equal(config.jwt_secret, "from-the-flag");
    sk_config_dispose(&config);
    setenv("SECKILL_JWT_SECRET", "from-the-environment", 1);
    assert_int_equal(parse(&config, error, "--jwt-secret-file", path, NULL), SK_CONFIG_RUN);
    assert_string_equal(config.jwt_secret, SECRET_40);
    sk_config_dispose(&config);
    unlink(path);
}

static void test_secret_file_short_secret_refused(void **state)
{
    temp_dir_t *dir = *state;
    sk_config_t config;
    char error[ERROR_SIZE], path[128];
    /* 31 bytes and a newline: the file is fine, the secret is not. */
    write_value_file(dir, "secret", "0123456789abcdef0123456789abcde\n", 32, 0600, path,
                     sizeof(path));
    assert_int_equal(
        parse(&config, error, "--data-dir", dir->data_dir, "--jwt-secret-file", path, NULL),
        SK_CONFIG_RUN);
    assert_int_equal(sk_config_prepare_data_dir(&config, error, sizeof(error)), -1);
    assert_string_equal(error, "the JWT secret must be at least 32 bytes long");
    sk_config_dispose(&config);
    unlink(path);
}

static void test_argv_secrets_masked(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE];
    assert_int_equal(parse(&config, error, "--jwt-secret", SECRET_40, "--redis",
                           "redis://user:p@ss@127.0.0.1:6379/0", "--mysql=mysql://u:pw@h:3306/db",
                           "--listen", "127.0.0.1:1", NULL),
                     SK_CONFIG_RUN);
    /* The config keeps its own copies... */
    assert_string_equal(config.jwt_secret, SECRET_40);
    assert_string_equal(config.redis_url, "redis://user:p@ss@127.0.0.1:6379/0");
    assert_string_equal(config.mysql_url, "mysql://u:pw@h:3306/db");
    sk_config_dispose(&config);
    /* ...argv shows only where the secrets were. */
    assert_string_equal(last_argv[0], "seckill");
    assert_string_equal(last_argv[1], "--jwt-secret");
    assert_string_equal(last_argv[2], "***************************************");
    assert_string_equal(last_argv[3], "--redis");
    assert_string_equal(last_argv[4], "redis://user:****@127.0.0.1:6379/0");
    assert_string_equal(last_argv[5], "--mysql=mysql://u:**@h:3306/db");
    assert_string_equal(last_argv[6], "--listen");
    assert_string_equal(last_argv[7], "127.0.0.1:1");

    assert_int_equal(parse(&config, error, "--jwt-secret=" SECRET_40, NULL), SK_CONFIG_RUN);
    sk_config_dispose(&config);
    assert_string_equal(last_argv[1], "--jwt-secret=***************************************");

    /* No password, nothing to mask: the hosts stay readable. A user information without
     * ':' is masked whole (Sentinel's password@; MySQL's user@ goes too, which costs
     * nothing). */
    assert_int_equal(parse(&config, error, "--redis", "redis://127.0.0.1:1,127.0.0.1:2/0",
                           "--mysql", "mysql://u@h/d", NULL),
                     SK_CONFIG_RUN);
    sk_config_dispose(&config);
    assert_string_equal(last_argv[2], "redis://127.0.0.1:1,127.0.0.1:2/0");
    assert_string_equal(last_argv[4], "mysql://*@h/d");

    /* A password without a user name (Sentinel's form), and a value that is no URL. */
    assert_int_equal(parse(&config, error, "--redis", "redis-sentinel://pw@h:26379#m", "--mysql",
                           "secret-in-the-wrong-place", NULL),
                     SK_CONFIG_RUN);
    sk_config_dispose(&config);
    assert_string_equal(last_argv[2], "redis-sentinel://**@h:26379#m");
    assert_string_equal(last_argv[4], "*************************");
}

static void test_argv_masked_on_every_outcome(void **state)
{
    (void)state;
    sk_config_t config;
    char error[ERROR_SIZE];
    /* An error after the secret: the process is about to exit, but not with it shown. */
    assert_int_equal(parse(&config, error, "--jwt-secret", SECRET_40, "--nope", NULL),
                     SK_CONFIG_ERROR);
    sk_config_dispose(&config);
    assert_null(strstr(last_argv[2], "0123"));
    /* An error before it. */
    assert_int_equal(parse(&config, error, "--threads", "x", "--redis=redis://:pw@h/0", NULL),
                     SK_CONFIG_ERROR);
    sk_config_dispose(&config);
    assert_string_equal(last_argv[3], "--redis=redis://:**@h/0");
    /* --help. */
    assert_int_equal(parse(&config, error, "--help", "--jwt-secret", SECRET_40, NULL),
                     SK_CONFIG_HELP);
    sk_config_dispose(&config);
    assert_null(strstr(last_argv[3], "0123"));
    /* reconcile parses the same way. */
    assert_int_equal(parse(&config, error, "reconcile", "--redis", "redis://:rpw@h:1/0", "--mysql",
                           "mysql://u:mpw@h/d", "--repair", NULL),
                     SK_CONFIG_RUN);
    assert_true(config.repair);
    assert_string_equal(config.redis_url, "redis://:rpw@h:1/0");
    assert_string_equal(config.mysql_url, "mysql://u:mpw@h/d");
    sk_config_dispose(&config);
    assert_string_equal(last_argv[1], "reconcile");
    assert_string_equal(last_argv[3], "redis://:***@h:1/0");
    assert_string_equal(last_argv[5], "mysql://u:***@h/d");
    assert_string_equal(last_argv[6], "--repair");
    /* A value taken as a value is masked as one: "--data-dir --jwt-secret" names a dir. */
    assert_int_equal(parse(&config, error, "--data-dir", "--jwt-secret", NULL), SK_CONFIG_RUN);
    sk_config_dispose(&config);
    assert_string_equal(last_argv[2], "--jwt-secret");
    /* A path to a value file is no secret: it stays readable. */
    assert_int_equal(parse(&config, error, "--jwt-secret-file", "/nonexistent", NULL),
                     SK_CONFIG_ERROR);
    sk_config_dispose(&config);
    assert_string_equal(last_argv[2], "/nonexistent");
}

int main(void)
{
    /* Keep "generated a new token secret" lines out of the test log. */
    sk_log_set_level(SK_LOG_ERROR);
#define ENV_TEST(name) cmocka_unit_test_setup_teardown(name, setup_env, teardown_env)
#define DIR_TEST(name) cmocka_unit_test_setup_teardown(name, setup_temp_dir, teardown_temp_dir)
    const struct CMUnitTest tests[] = {
        ENV_TEST(test_defaults),
        ENV_TEST(test_status_page),
        ENV_TEST(test_every_flag_valid),
        ENV_TEST(test_equals_form),
        ENV_TEST(test_boundary_values),
        ENV_TEST(test_later_flag_wins),
        ENV_TEST(test_invalid_values),
        ENV_TEST(test_invalid_env_values),
        ENV_TEST(test_max_amount_limit),
        ENV_TEST(test_env_values),
        ENV_TEST(test_flag_wins_over_env),
        ENV_TEST(test_good_flag_beats_bad_env),
        ENV_TEST(test_numbers_are_digits_only),
        ENV_TEST(test_help_and_version),
        ENV_TEST(test_usage_lists_every_option),
        ENV_TEST(test_unknown_option),
        ENV_TEST(test_missing_value),
        ENV_TEST(test_redis_and_mysql_go_together),
        ENV_TEST(test_errors_never_echo_values),
        ENV_TEST(test_dispose_is_idempotent),
        DIR_TEST(test_prepare_creates_dir_and_secret),
        DIR_TEST(test_prepare_with_given_secret),
        DIR_TEST(test_prepare_refuses_short_secret),
        DIR_TEST(test_short_env_secret_is_not_echoed),
        DIR_TEST(test_prepare_refuses_short_secret_file),
        DIR_TEST(test_prepare_reads_kept_secret_exactly),
        DIR_TEST(test_prepare_fails_for_unusable_dir),
        DIR_TEST(test_secret_file_strips_one_line_ending),
        DIR_TEST(test_url_files),
        DIR_TEST(test_secret_file_refused_modes),
        DIR_TEST(test_secret_file_refused_contents),
        DIR_TEST(test_secret_file_size_limit),
        DIR_TEST(test_secret_file_acl),
        DIR_TEST(test_secret_file_and_flag_conflict),
        DIR_TEST(test_secret_file_short_secret_refused),
        ENV_TEST(test_argv_secrets_masked),
        ENV_TEST(test_argv_masked_on_every_outcome),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
