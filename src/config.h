/*
 * The command line and its environment variables (API.md "Command line"). Every option
 * --name also reads SECKILL_NAME (upper case, '-' as '_'); the flag wins over the
 * environment. Untrusted only in the sense that a typo must give a clear message.
 */
#ifndef SK_CONFIG_H
#define SK_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "auth/password.h"

/* The largest --max-amount: 2^53 - 1. The distributed deployment's Redis scripts count a
 * coupon's `left` in Lua numbers, which are doubles: above 2^53 they skip integers (a grab
 * of a coupon of 2^53 + 1 would leave 2^53 - 1 instead of 2^53). Many JSON clients read
 * numbers as doubles too. Both deployments keep to it, so that a coupon valid in one is
 * valid in the other. */
#define SK_CONFIG_MAX_AMOUNT_LIMIT 9007199254740991LL

typedef struct sk_config {
    char listen_host[64];
    unsigned short listen_port;
    char *data_dir;
    int threads;
    char *jwt_secret; /* NULL: generated once and kept in the data dir */
    int64_t token_ttl;
    char *redis_url, *mysql_url;
    int redis_wait_replicas;        /* WAIT for this many replicas before a 201; 0: none */
    unsigned redis_wait_timeout_ms; /* ... at most this long, then 503 */
    int64_t max_amount;
    size_t max_body;
    int log_level; /* sk_log_level_t */
    sk_pwhash_cost_t pwhash_cost;
    int sync_commits;
    unsigned idle_timeout_ms;
    int max_connections; /* per process; beyond it new connections are refused */
    double rate_limit;   /* grabs per second per user; 0: no limit */
    int64_t rate_burst;  /* grabs a user may make at once before the rate applies */
    char *cors_origins;  /* --cors-origin as given; NULL: none */
    int status_page;     /* --status-page: 1 (on) serves /status and /status.json */
    int reconcile;       /* `seckill reconcile ...`: compare Redis with SQL, then exit */
    int repair;          /* reconcile --repair */
} sk_config_t;

typedef enum sk_config_action {
    SK_CONFIG_RUN = 0,
    SK_CONFIG_HELP,    /* --help: print sk_config_usage() and exit 0 */
    SK_CONFIG_VERSION, /* --version */
    SK_CONFIG_ERROR    /* `error` says what is wrong: exit non-zero */
} sk_config_action_t;

/*
 * Fills `config` from the defaults, then `environ`-style variables (looked up through
 * getenv), then argv. On SK_CONFIG_ERROR a message is written to `error` (never a value:
 * it may be a secret). The --*-file options read their twin's value from a file of mode
 * 0600 or stricter. Strings in `config` are heap copies: free with sk_config_dispose.
 * Whatever the outcome, the secrets of argv (the --jwt-secret value, the password of a
 * --redis or --mysql URL) are then overwritten with '*' in place, so argv must be the
 * writable strings main() received; argv[0] is never touched.
 */
sk_config_action_t sk_config_parse(sk_config_t *config, int argc, char **argv, char *error,
                                   size_t error_size);

/* The --help text. */
const char *sk_config_usage(void);

void sk_config_dispose(sk_config_t *config);

/*
 * Embedded: makes sure the data directory exists (created mode 0700) and, when no secret
 * was given, loads the one kept there or generates and keeps a new one (mode 0600).
 * Distributed (--redis): no data directory; a secret must be given. Refuses secrets
 * shorter than 32 bytes. Returns 0, or -1 with a message in `error`.
 */
int sk_config_prepare_data_dir(sk_config_t *config, char *error, size_t error_size);

#endif
