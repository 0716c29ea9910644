/*
 * Command-line and environment parsing (see config.h). Table-driven so that --help, the
 * environment names and the parser cannot drift apart. Secrets get two extra duties here:
 * the --*-file twins that read a value from a private file, and scrubbing the secrets
 * given on the command line out of argv, so that `ps` does not show them to other users.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <endian.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "api/cors.h"
#include "util/log.h"

#define MIN_SECRET_BYTES 32
#define SECRET_FILE "jwt-secret"
/* A value file holds one secret or one URL; even a Redis Cluster URL naming the maximum of
 * 64 seeds is far below this. A larger file is a wrong path (a log, a database), not a
 * value: refuse it before reading it into memory. */
#define MAX_VALUE_FILE_BYTES 16384

typedef enum option_id {
    OPT_LISTEN,
    OPT_DATA_DIR,
    OPT_THREADS,
    OPT_JWT_SECRET,
    OPT_JWT_SECRET_FILE,
    OPT_TOKEN_TTL,
    OPT_REDIS,
    OPT_REDIS_FILE,
    OPT_REDIS_WAIT_REPLICAS,
    OPT_REDIS_WAIT_TIMEOUT,
    OPT_MYSQL,
    OPT_MYSQL_FILE,
    OPT_MAX_AMOUNT,
    OPT_MAX_BODY,
    OPT_LOG_LEVEL,
    OPT_PWHASH_COST,
    OPT_SYNC_COMMITS,
    OPT_IDLE_TIMEOUT,
    OPT_MAX_CONNECTIONS,
    OPT_RATE_LIMIT,
    OPT_RATE_BURST,
    OPT_CORS_ORIGIN,
    OPT_STATUS_PAGE,
    OPT_COUNT
} option_id_t;

static const struct option_spec {
    const char *flag, *env, *arg, *help;
} options[OPT_COUNT] = {
    [OPT_LISTEN] = {"--listen", "SECKILL_LISTEN", "ADDR:PORT",
                    "where to serve HTTP (default 0.0.0.0:20080; [::1]:20080 for IPv6)"},
    [OPT_DATA_DIR] = {"--data-dir", "SECKILL_DATA_DIR", "DIR",
                      "the SQLite database and the generated secret (default ./seckill-data)"},
    [OPT_THREADS] = {"--threads", "SECKILL_THREADS", "N",
                     "HTTP worker threads (default: number of cores)"},
    [OPT_JWT_SECRET] = {"--jwt-secret", "SECKILL_JWT_SECRET", "S",
                        "token signing key, >= 32 bytes, the same on every instance "
                        "(default: generated once, kept in the data dir)"},
    [OPT_JWT_SECRET_FILE] = {"--jwt-secret-file", "SECKILL_JWT_SECRET_FILE", "PATH",
                             "read --jwt-secret from this file (mode 0600 or stricter; one "
                             "trailing newline is dropped)"},
    [OPT_TOKEN_TTL] = {"--token-ttl", "SECKILL_TOKEN_TTL", "SECONDS",
                       "token lifetime (default 3600)"},
    [OPT_REDIS] = {"--redis", "SECKILL_REDIS", "URL",
                   "redis://[[user]:password@]host[:port][,host[:port]...][/db] (several hosts: "
                   "seeds of one Redis Cluster), or "
                   "redis-sentinel://[password@]host[:port][,host[:port]...][/db]#master (find "
                   "the master through Redis Sentinel, follow its failovers); with --mysql: the "
                   "distributed deployment"},
    [OPT_REDIS_FILE] = {"--redis-file", "SECKILL_REDIS_FILE", "PATH",
                        "read --redis from this file (mode 0600 or stricter)"},
    [OPT_REDIS_WAIT_REPLICAS] = {"--redis-wait-replicas", "SECKILL_REDIS_WAIT_REPLICAS", "N",
                                 "answer a grab 201 (and a coupon creation or logout) only once N "
                                 "Redis replicas hold it (WAIT), so that a failover loses none "
                                 "(default 0: the master alone)"},
    [OPT_REDIS_WAIT_TIMEOUT] = {"--redis-wait-timeout", "SECKILL_REDIS_WAIT_TIMEOUT", "MS",
                                "how long a grab waits for those replicas before it is answered "
                                "503 with Retry-After (default 100)"},
    [OPT_MYSQL] = {"--mysql", "SECKILL_MYSQL", "URL",
                   "mysql://user:password@host[:port]/database (MySQL 5.7/8 or MariaDB); "
                   "the distributed deployment needs --jwt-secret too"},
    [OPT_MYSQL_FILE] = {"--mysql-file", "SECKILL_MYSQL_FILE", "PATH",
                        "read --mysql from this file (mode 0600 or stricter)"},
    [OPT_MAX_AMOUNT] = {"--max-amount", "SECKILL_MAX_AMOUNT", "N",
                        "the largest amount a coupon may have (default 1000000000; at most "
                        "9007199254740991 = 2^53 - 1, the largest that Redis's Lua scripts "
                        "count exactly)"},
    [OPT_MAX_BODY] = {"--max-body", "SECKILL_MAX_BODY", "BYTES",
                      "request bodies above this get 413 (default 65536)"},
    [OPT_LOG_LEVEL] = {"--log-level", "SECKILL_LOG_LEVEL", "LEVEL",
                       "error, warn, info or debug (default info)"},
    [OPT_PWHASH_COST] = {"--pwhash-cost", "SECKILL_PWHASH_COST", "COST",
                         "argon2id cost: interactive (default), moderate, or min "
                         "(insecure; tests and benchmarks only)"},
    [OPT_SYNC_COMMITS] = {"--sync-commits", "SECKILL_SYNC_COMMITS", "0|1",
                          "fdatasync every grant-log write (one per worker turn) and every "
                          "SQLite commit, surviving power loss as well as crashes (default 0: "
                          "a grant survives kill -9 and process crashes)"},
    [OPT_IDLE_TIMEOUT] = {"--idle-timeout", "SECKILL_IDLE_TIMEOUT", "SECONDS",
                          "a request must arrive within this; idle connections close "
                          "(default 10)"},
    [OPT_MAX_CONNECTIONS] = {"--max-connections", "SECKILL_MAX_CONNECTIONS", "N",
                             "open connections at most; more are refused at once (default 16384)"},
    [OPT_RATE_LIMIT] = {"--rate-limit", "SECKILL_RATE_LIMIT", "PER_SECOND",
                        "grabs per second per user, beyond which the grab route answers 429 "
                        "(default 0: no limit)"},
    [OPT_RATE_BURST] = {"--rate-burst", "SECKILL_RATE_BURST", "N",
                        "grabs a user may make at once before --rate-limit applies (default 10)"},
    [OPT_CORS_ORIGIN] = {"--cors-origin", "SECKILL_CORS_ORIGIN", "ORIGINS",
                         "comma-separated origins (https://shop.example[:port], or *) whose "
                         "browser pages may call the API (default: none, no CORS headers)"},
    [OPT_STATUS_PAGE] = {"--status-page", "SECKILL_STATUS_PAGE", "on|off",
                         "serve the live sale view at /status and its figures at /status.json, "
                         "no token needed (default on; off: both answer 404)"},
};

static char usage_text[8192];

const char *sk_config_usage(void)
{
    if (usage_text[0] != '\0')
        return usage_text;
    size_t used = (size_t)snprintf(
        usage_text, sizeof(usage_text),
        "Usage: seckill [options]\n"
        "       seckill reconcile --redis URL --mysql URL [--repair]\n"
        "A flash-sale coupon service. Without --redis/--mysql it runs embedded, keeping its\n"
        "state in DIR/seckill.db (SQLite); with both it is one instance of the distributed\n"
        "deployment (Redis + MySQL, any number of instances). Every option also reads the\n"
        "environment variable shown; the flag wins.\n"
        "Secrets given as --jwt-secret or inside a --redis/--mysql URL are overwritten with\n"
        "'*' in the process's argument list once read; the --*-file forms keep them out of\n"
        "it altogether and are preferred.\n"
        "`reconcile` compares Redis's hot state with SQL and reports every difference and\n"
        "which copy is ahead (exit 0: none, 1: some); --repair also fixes them, by the union\n"
        "of the grants, unless that union exceeds a coupon's amount: then it repairs nothing\n"
        "(exit 4).\n"
        "SIGTERM or SIGINT: answer what was received, make it durable, exit 0 (during start-up\n"
        "too); SIGHUP is logged and ignored. Under systemd Type=notify it reports READY=1.\n\n");
    for (int i = 0; i != OPT_COUNT && used < sizeof(usage_text); ++i) {
        char left[64];
        snprintf(left, sizeof(left), "%s %s", options[i].flag, options[i].arg);
        used += (size_t)snprintf(usage_text + used, sizeof(usage_text) - used,
                                 "  %-26s %s\n  %-26s [%s]\n", left, options[i].help, "",
                                 options[i].env);
    }
    if (used < sizeof(usage_text))
        snprintf(usage_text + used, sizeof(usage_text) - used,
                 "  %-26s print this help\n  %-26s print the version\n", "--help", "--version");
    return usage_text;
}

static int parse_int(const char *text, int64_t min, int64_t max, int64_t *out)
{
    /* Digits with an optional '-': strtoll alone would also take " 4" and "+4". */
    const char *digits = text[0] == '-' ? text + 1 : text;
    if (*digits < '0' || *digits > '9')
        return -1;
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max)
        return -1;
    *out = value;
    return 0;
}

/* A rate: digits with at most one '.', from 0 to 1e6 (0 turns the limit off). */
static int parse_rate(const char *text, double *out)
{
    int dots = 0, digits = 0;
    for (const char *c = text; *c != '\0'; ++c) {
        if (*c == '.')
            ++dots;
        else if (*c >= '0' && *c <= '9')
            ++digits;
        else
            return -1;
    }
    if (digits == 0 || dots > 1)
        return -1;
    double value = strtod(text, NULL);
    if (value > 1e6)
        return -1;
    *out = value;
    return 0;
}

static int parse_listen(sk_config_t *config, const char *text)
{
    const char *colon = strrchr(text, ':');
    int64_t port;
    if (colon == NULL || parse_int(colon + 1, 0, 65535, &port) != 0)
        return -1;
    const char *host = text;
    size_t host_len = (size_t)(colon - text);
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
        ++host;
        host_len -= 2;
    }
    if (host_len == 0 || host_len >= sizeof(config->listen_host))
        return -1;
    memcpy(config->listen_host, host, host_len);
    config->listen_host[host_len] = '\0';
    config->listen_port = (unsigned short)port;
    return 0;
}

/* The old value may be a secret (an environment value the command line overrides): it is
 * wiped before its memory goes back to the allocator. */
static void set_string(char **slot, char *owned)
{
    if (*slot != NULL)
        sodium_memzero(*slot, strlen(*slot));
    free(*slot);
    *slot = owned;
}

static int replace_string(char **slot, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL)
        return -1;
    set_string(slot, copy);
    return 0;
}

/* The options that name a file holding another option's value. A pair counts as one
 * setting: giving both on the command line is an error, and either one on the command
 * line overrides both of their environment variables. */
static const struct file_twin {
    option_id_t file, value;
} file_twins[] = {
    {OPT_JWT_SECRET_FILE, OPT_JWT_SECRET},
    {OPT_REDIS_FILE, OPT_REDIS},
    {OPT_MYSQL_FILE, OPT_MYSQL},
};

/* The other option of `id`'s pair, or -1. */
static int twin_of(int id)
{
    for (size_t i = 0; i != sizeof(file_twins) / sizeof(file_twins[0]); ++i) {
        if ((int)file_twins[i].file == id)
            return (int)file_twins[i].value;
        if ((int)file_twins[i].value == id)
            return (int)file_twins[i].file;
    }
    return -1;
}

static int is_file_option(int id)
{
    return id == OPT_JWT_SECRET_FILE || id == OPT_REDIS_FILE || id == OPT_MYSQL_FILE;
}

static char **value_slot(sk_config_t *config, int file_id)
{
    switch (file_id) {
    case OPT_JWT_SECRET_FILE:
        return &config->jwt_secret;
    case OPT_REDIS_FILE:
        return &config->redis_url;
    default:
        return &config->mysql_url;
    }
}

/*
 * Whether group or others may use the file behind `fd` in any way. With a POSIX ACL the
 * group bits of st_mode are the ACL's mask, not the owning group's rights: systemd's
 * LoadCredential= writes a credential 0400, root-owned, with an entry user:SERVICE:r--,
 * which stat shows as 0440 although only the service's user can read it. So an ACL is read
 * (Linux's little-endian xattr layout: a version word, then tag/perm/id entries) and only
 * its entries other than ours count; an ACL that cannot be read counts as too open.
 */
static int others_may_access(int fd, const struct stat *info)
{
    if ((info->st_mode & S_IRWXO) != 0)
        return 1;
    if ((info->st_mode & S_IRWXG) == 0)
        return 0;
    unsigned char acl[8 + 32 * 8];
    ssize_t size = fgetxattr(fd, "system.posix_acl_access", acl, sizeof(acl));
    if (size < 0)
        return 1; /* no ACL: the group bits are the group's */
    enum { TAG_USER = 0x02, TAG_GROUP_OBJ = 0x04, TAG_GROUP = 0x08, TAG_MASK = 0x10 };
    unsigned mask = 07, foreign = 0;
    for (ssize_t at = 4; at + 8 <= size; at += 8) {
        uint16_t tag, perm;
        uint32_t id;
        memcpy(&tag, acl + at, 2);
        memcpy(&perm, acl + at + 2, 2);
        memcpy(&id, acl + at + 4, 4);
        tag = le16toh(tag);
        perm = le16toh(perm);
        id = le32toh(id);
        if (tag == TAG_MASK)
            mask = perm;
        else if (tag == TAG_GROUP_OBJ || tag == TAG_GROUP || (tag == TAG_USER && id != geteuid()))
            foreign |= perm;
    }
    return (foreign & mask) != 0;
}

/*
 * Sets the twin of the file option `id` from the file at `path`. `source` names where the
 * path came from (the flag or the variable) for the message. The file must be a regular
 * file that neither group nor others may use (checked on the open descriptor,
 * so a rename between check and read cannot swap it), hold one non-empty line of at most
 * MAX_VALUE_FILE_BYTES with no NUL, and may end with one "\n" or "\r\n". Messages name the
 * path and the mode, never the content.
 */
static int read_value_file(sk_config_t *config, int id, const char *path, const char *source,
                           char *error, size_t error_size)
{
    int status = -1;
    char *text = NULL;
    /* O_NONBLOCK: opening a FIFO with no writer would hang the start; it is refused below
     * anyway. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(error, error_size, "%s: cannot open %s: %s", source, path, strerror(errno));
        goto fail;
    }
    struct stat info;
    if (fstat(fd, &info) != 0) {
        snprintf(error, error_size, "%s: cannot stat %s: %s", source, path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(info.st_mode)) {
        snprintf(error, error_size, "%s: %s is not a regular file", source, path);
        goto fail;
    }
    if (others_may_access(fd, &info)) {
        snprintf(error, error_size,
                 "%s: %s has mode %04o: group or others may read or write it; it holds a "
                 "secret: chmod 600 it",
                 source, path, (unsigned)(info.st_mode & 07777));
        goto fail;
    }
    if (info.st_size > MAX_VALUE_FILE_BYTES) {
        snprintf(error, error_size, "%s: %s is larger than %d bytes", source, path,
                 MAX_VALUE_FILE_BYTES);
        goto fail;
    }
    text = malloc(MAX_VALUE_FILE_BYTES + 2);
    if (text == NULL) {
        snprintf(error, error_size, "%s: out of memory", source);
        goto fail;
    }
    /* Read one byte past the limit: the size may have grown since fstat. */
    size_t len = 0;
    while (len <= MAX_VALUE_FILE_BYTES) {
        ssize_t got = read(fd, text + len, MAX_VALUE_FILE_BYTES + 1 - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(error, error_size, "%s: cannot read %s: %s", source, path, strerror(errno));
            goto fail;
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    if (len > MAX_VALUE_FILE_BYTES) {
        snprintf(error, error_size, "%s: %s is larger than %d bytes", source, path,
                 MAX_VALUE_FILE_BYTES);
        goto fail;
    }
    /* What `echo S > file` and editors add; only one, so that a second blank line is seen
     * as the mistake it is rather than silently dropped. */
    if (len > 0 && text[len - 1] == '\n') {
        --len;
        if (len > 0 && text[len - 1] == '\r')
            --len;
    }
    if (len == 0) {
        snprintf(error, error_size, "%s: %s is empty", source, path);
        goto fail;
    }
    if (memchr(text, '\0', len) != NULL) {
        snprintf(error, error_size, "%s: %s holds a NUL byte", source, path);
        goto fail;
    }
    if (memchr(text, '\n', len) != NULL || memchr(text, '\r', len) != NULL) {
        snprintf(error, error_size, "%s: %s holds more than one line (one value, one line)", source,
                 path);
        goto fail;
    }
    text[len] = '\0';
    char *value = strdup(text);
    if (value == NULL) {
        snprintf(error, error_size, "%s: out of memory", source);
        goto fail;
    }
    set_string(value_slot(config, id), value);
    status = 0;
fail:
    if (text != NULL) {
        sodium_memzero(text, MAX_VALUE_FILE_BYTES + 2);
        free(text);
    }
    if (fd >= 0)
        close(fd);
    return status;
}

/*
 * Overwrites the password of a URL in place with '*': the bytes between the user name's
 * ':' and the last '@' (the URL parsers end the user information at the last '@', so a
 * password with an unencoded '@' is covered whole). Without a ':' the whole user
 * information goes: it is the password in "redis-sentinel://password@..."; in
 * "mysql://user@..." only a user name, but masking too much costs nothing (the config has
 * its copy). A value that is not a URL at all may still be a secret in the wrong place:
 * all of it goes.
 */
static void scrub_url_password(char *url)
{
    char *authority = strstr(url, "://");
    if (authority == NULL) {
        memset(url, '*', strlen(url));
        return;
    }
    authority += 3;
    char *at = strrchr(authority, '@');
    if (at == NULL)
        return;
    /* A Sentinel URL's user information is all password, ':' included. */
    int all_password = strncasecmp(url, "redis-sentinel://", 17) == 0;
    char *colon = all_password ? NULL : memchr(authority, ':', (size_t)(at - authority));
    char *password = colon != NULL ? colon + 1 : authority;
    memset(password, '*', (size_t)(at - password));
}

/*
 * Masks the secrets of the command line in argv's own memory, which is what
 * /proc/PID/cmdline (and so `ps`) shows; the parsed config holds copies. Arguments pair
 * with values exactly as in parse_options, so what it read as a secret is what goes.
 *
 * '*' rather than NUL bytes: a NUL would split the argument in /proc/PID/cmdline (ps shows
 * phantom arguments, tools that parse it see a different command), while '*' leaves every
 * argument where it was and shows that a secret was given and removed. The length stays
 * visible; shortening in place would mean moving every later argument, and a secret of 32
 * bytes or more loses nothing by its length being known.
 */
static void scrub_argv(int argc, char **argv)
{
    for (int arg = 1; arg < argc; ++arg) {
        char *word = argv[arg];
        char *equals = strchr(word, '=');
        size_t name_len = equals ? (size_t)(equals - word) : strlen(word);
        int id = 0;
        while (id != OPT_COUNT && !(strlen(options[id].flag) == name_len &&
                                    memcmp(options[id].flag, word, name_len) == 0))
            ++id;
        if (id == OPT_COUNT)
            continue;
        char *value = equals ? equals + 1 : (arg + 1 < argc ? argv[++arg] : NULL);
        if (value == NULL)
            break;
        if (id == OPT_JWT_SECRET)
            memset(value, '*', strlen(value));
        else if (id == OPT_REDIS || id == OPT_MYSQL)
            scrub_url_password(value);
    }
}

/* apply() answers -1 for a value of the wrong form, and this for a number above its limit,
 * which gets a message of its own: the limit and its reason. */
enum { APPLY_ABOVE_LIMIT = -2 };

/* Whether `text` is a positive decimal integer above `limit` (even one past INT64_MAX). */
static int digits_above(const char *text, int64_t limit)
{
    size_t len = strspn(text, "0123456789");
    if (len == 0 || text[len] != '\0')
        return 0;
    int64_t value;
    return parse_int(text, 0, INT64_MAX, &value) != 0 || value > limit;
}

static int apply(sk_config_t *config, option_id_t id, const char *value)
{
    int64_t number;
    sk_log_level_t level;
    switch (id) {
    case OPT_LISTEN:
        return parse_listen(config, value);
    case OPT_DATA_DIR:
        return value[0] == '\0' ? -1 : replace_string(&config->data_dir, value);
    case OPT_THREADS:
        if (parse_int(value, 1, 256, &number) != 0)
            return -1;
        config->threads = (int)number;
        return 0;
    case OPT_JWT_SECRET:
        return replace_string(&config->jwt_secret, value);
    case OPT_TOKEN_TTL:
        return parse_int(value, 1, 10LL * 365 * 86400, &config->token_ttl);
    case OPT_REDIS:
        return replace_string(&config->redis_url, value);
    case OPT_REDIS_WAIT_REPLICAS:
        if (parse_int(value, 0, 64, &number) != 0)
            return -1;
        config->redis_wait_replicas = (int)number;
        return 0;
    case OPT_REDIS_WAIT_TIMEOUT:
        if (parse_int(value, 1, 60000, &number) != 0)
            return -1;
        config->redis_wait_timeout_ms = (unsigned)number;
        return 0;
    case OPT_MYSQL:
        return replace_string(&config->mysql_url, value);
    case OPT_MAX_AMOUNT:
        if (digits_above(value, SK_CONFIG_MAX_AMOUNT_LIMIT))
            return APPLY_ABOVE_LIMIT;
        return parse_int(value, 1, SK_CONFIG_MAX_AMOUNT_LIMIT, &config->max_amount);
    case OPT_MAX_BODY:
        if (parse_int(value, 1, 64LL * 1024 * 1024, &number) != 0)
            return -1;
        config->max_body = (size_t)number;
        return 0;
    case OPT_LOG_LEVEL:
        if (sk_log_parse_level(value, &level) != 0)
            return -1;
        config->log_level = level;
        return 0;
    case OPT_PWHASH_COST:
        if (strcmp(value, "min") == 0)
            config->pwhash_cost = SK_PWHASH_MIN;
        else if (strcmp(value, "interactive") == 0)
            config->pwhash_cost = SK_PWHASH_INTERACTIVE;
        else if (strcmp(value, "moderate") == 0)
            config->pwhash_cost = SK_PWHASH_MODERATE;
        else
            return -1;
        return 0;
    case OPT_SYNC_COMMITS:
        if (parse_int(value, 0, 1, &number) != 0)
            return -1;
        config->sync_commits = (int)number;
        return 0;
    case OPT_IDLE_TIMEOUT:
        if (parse_int(value, 1, 3600, &number) != 0)
            return -1;
        config->idle_timeout_ms = (unsigned)number * 1000;
        return 0;
    case OPT_MAX_CONNECTIONS:
        if (parse_int(value, 1, 10000000, &number) != 0)
            return -1;
        config->max_connections = (int)number;
        return 0;
    case OPT_RATE_LIMIT:
        return parse_rate(value, &config->rate_limit);
    case OPT_RATE_BURST:
        return parse_int(value, 1, 1000000, &config->rate_burst);
    case OPT_CORS_ORIGIN: {
        sk_cors_t cors;
        char message[160];
        if (sk_cors_init(&cors, value, message, sizeof(message)) != 0)
            return -1;
        sk_cors_dispose(&cors);
        return replace_string(&config->cors_origins, value);
    }
    case OPT_STATUS_PAGE:
        if (strcmp(value, "on") == 0)
            config->status_page = 1;
        else if (strcmp(value, "off") == 0)
            config->status_page = 0;
        else
            return -1;
        return 0;
    case OPT_JWT_SECRET_FILE:
    case OPT_REDIS_FILE:
    case OPT_MYSQL_FILE: /* read_value_file, which has messages of its own */
    case OPT_COUNT:
        break;
    }
    return -1;
}

static void set_defaults(sk_config_t *config)
{
    memset(config, 0, sizeof(*config));
    strcpy(config->listen_host, "0.0.0.0");
    config->listen_port = 20080;
    config->data_dir = strdup("./seckill-data");
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    config->threads = cores > 0 ? (int)(cores > 256 ? 256 : cores) : 1;
    config->token_ttl = 3600;
    config->max_amount = 1000000000;
    config->redis_wait_timeout_ms = 100;
    config->max_body = 65536;
    config->log_level = SK_LOG_INFO;
    config->pwhash_cost = SK_PWHASH_INTERACTIVE;
    config->idle_timeout_ms = 10000;
    config->max_connections = 16384;
    config->rate_limit = 0;
    config->rate_burst = 10;
    config->status_page = 1;
}

/* The message for APPLY_ABOVE_LIMIT (only --max-amount has such a limit); `source` is the
 * flag or the variable. */
static void describe_above_limit(const char *source, char *error, size_t error_size)
{
    snprintf(error, error_size,
             "%s is larger than %lld (2^53 - 1), the largest amount counted exactly: Redis's "
             "Lua scripts hold a coupon's left as a double",
             source, SK_CONFIG_MAX_AMOUNT_LIMIT);
}

static sk_config_action_t parse_options(sk_config_t *config, int argc, char **argv, char *error,
                                        size_t error_size)
{
    set_defaults(config);
    int status;
    /* The environment is read only for options the command line leaves out, so that a
     * stale variable cannot stop a correct command. */
    int given[OPT_COUNT] = {0};
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "reconcile") == 0) {
        config->reconcile = 1;
        first = 2;
    }
    for (int arg = first; arg < argc; ++arg) {
        for (int id = 0; id != OPT_COUNT; ++id) {
            size_t flag_len = strlen(options[id].flag);
            if (strncmp(argv[arg], options[id].flag, flag_len) == 0 &&
                (argv[arg][flag_len] == '\0' || argv[arg][flag_len] == '='))
                given[id] = 1;
        }
    }
    for (int i = 0; i != OPT_COUNT; ++i) {
        int twin = twin_of(i);
        if (given[i] || (twin >= 0 && given[twin]))
            continue;
        const char *value = getenv(options[i].env);
        if (value == NULL)
            continue;
        if (twin >= 0 && !is_file_option(i) && getenv(options[twin].env) != NULL) {
            snprintf(error, error_size, "%s and %s are both set: keep one", options[i].env,
                     options[twin].env);
            return SK_CONFIG_ERROR;
        }
        if (is_file_option(i)) {
            if (read_value_file(config, i, value, options[i].env, error, error_size) != 0)
                return SK_CONFIG_ERROR;
        } else if ((status = apply(config, (option_id_t)i, value)) != 0) {
            /* Never echo the value: it may be a secret. */
            if (status == APPLY_ABOVE_LIMIT)
                describe_above_limit(options[i].env, error, error_size);
            else
                snprintf(error, error_size, "invalid value in %s (%s %s)", options[i].env,
                         options[i].flag, options[i].arg);
            return SK_CONFIG_ERROR;
        }
    }
    int seen[OPT_COUNT] = {0};
    for (int arg = first; arg < argc; ++arg) {
        const char *word = argv[arg];
        if (strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0)
            return SK_CONFIG_HELP;
        if (strcmp(word, "--version") == 0)
            return SK_CONFIG_VERSION;
        if (config->reconcile && strcmp(word, "--repair") == 0) {
            config->repair = 1;
            continue;
        }
        const char *equals = strchr(word, '=');
        size_t name_len = equals ? (size_t)(equals - word) : strlen(word);
        int id = 0;
        while (id != OPT_COUNT && !(strlen(options[id].flag) == name_len &&
                                    memcmp(options[id].flag, word, name_len) == 0))
            ++id;
        if (id == OPT_COUNT) {
            snprintf(error, error_size, "unknown option '%.*s' (see --help)", (int)name_len, word);
            return SK_CONFIG_ERROR;
        }
        const char *value = equals ? equals + 1 : (arg + 1 < argc ? argv[++arg] : NULL);
        if (value == NULL) {
            snprintf(error, error_size, "%s needs a value: %s", options[id].flag, options[id].arg);
            return SK_CONFIG_ERROR;
        }
        int twin = twin_of(id);
        if (twin >= 0 && seen[twin]) {
            snprintf(error, error_size, "give %s or %s, not both", options[twin].flag,
                     options[id].flag);
            return SK_CONFIG_ERROR;
        }
        seen[id] = 1;
        if (is_file_option(id)) {
            if (read_value_file(config, id, value, options[id].flag, error, error_size) != 0)
                return SK_CONFIG_ERROR;
        } else if ((status = apply(config, (option_id_t)id, value)) != 0) {
            if (status == APPLY_ABOVE_LIMIT)
                describe_above_limit(options[id].flag, error, error_size);
            else
                snprintf(error, error_size, "invalid value for %s (expected %s)", options[id].flag,
                         options[id].arg);
            return SK_CONFIG_ERROR;
        }
    }
    if ((config->redis_url == NULL) != (config->mysql_url == NULL)) {
        snprintf(error, error_size, "--redis and --mysql go together");
        return SK_CONFIG_ERROR;
    }
    if (config->reconcile && config->redis_url == NULL) {
        snprintf(error, error_size, "reconcile needs --redis and --mysql");
        return SK_CONFIG_ERROR;
    }
    return SK_CONFIG_RUN;
}

sk_config_action_t sk_config_parse(sk_config_t *config, int argc, char **argv, char *error,
                                   size_t error_size)
{
    sk_config_action_t action = parse_options(config, argc, argv, error, error_size);
    /* On every outcome: an error exit is no reason to leave the secret readable meanwhile. */
    scrub_argv(argc, argv);
    return action;
}

void sk_config_dispose(sk_config_t *config)
{
    free(config->data_dir);
    free(config->cors_origins);
    /* The URLs carry the backends' passwords. */
    set_string(&config->jwt_secret, NULL);
    set_string(&config->redis_url, NULL);
    set_string(&config->mysql_url, NULL);
    memset(config, 0, sizeof(*config));
}

static int load_or_create_secret(sk_config_t *config, char *error, size_t error_size)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", config->data_dir, SECRET_FILE);
    char text[256];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t got = read(fd, text, sizeof(text) - 1);
        close(fd);
        if (got < 0) {
            snprintf(error, error_size, "cannot read %s: %s", path, strerror(errno));
            return -1;
        }
        while (got > 0 && (text[got - 1] == '\n' || text[got - 1] == '\r'))
            --got;
        text[got] = '\0';
        return replace_string(&config->jwt_secret, text);
    }
    if (errno != ENOENT) {
        snprintf(error, error_size, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    unsigned char random_bytes[48];
    randombytes_buf(random_bytes, sizeof(random_bytes));
    sodium_bin2base64(text, sizeof(text), random_bytes, sizeof(random_bytes),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    size_t len = strlen(text);
    text[len] = '\n';
    if (fd < 0 || write(fd, text, len + 1) != (ssize_t)(len + 1) || fsync(fd) != 0) {
        snprintf(error, error_size, "cannot write %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    text[len] = '\0';
    sk_log(SK_LOG_INFO, "config", "generated a new token secret in %s", path);
    return replace_string(&config->jwt_secret, text);
}

int sk_config_prepare_data_dir(sk_config_t *config, char *error, size_t error_size)
{
    if (config->redis_url != NULL) {
        /* Instances must share the key, and a generated one would differ on each. */
        if (config->jwt_secret == NULL) {
            snprintf(error, error_size,
                     "the distributed deployment needs --jwt-secret-file (SECKILL_JWT_SECRET_FILE) "
                     "or --jwt-secret (SECKILL_JWT_SECRET), the same on every instance");
            return -1;
        }
        goto check_secret;
    }
    if (mkdir(config->data_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(error, error_size, "cannot create data dir %s: %s", config->data_dir,
                 strerror(errno));
        return -1;
    }
    if (config->jwt_secret == NULL && load_or_create_secret(config, error, error_size) != 0)
        return -1;
check_secret:
    if (strlen(config->jwt_secret) < MIN_SECRET_BYTES) {
        snprintf(error, error_size, "the JWT secret must be at least %d bytes long",
                 MIN_SECRET_BYTES);
        return -1;
    }
    return 0;
}
