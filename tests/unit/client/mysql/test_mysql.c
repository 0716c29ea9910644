/*
 * Tests of src/client/mysql/mysql.c against a real MariaDB (the URL from sk_test_backend; without
 * one every test fails). Each run works in a database of its own, created and dropped
 * through a second, raw Connector/C connection that also inspects what the module wrote.
 *
 * Covered: URL parsing (percent-decoding, hostile and malformed URLs, no password in any
 * message), the schema (twice, binary collation, the kind CHECK), users (duplicates, case,
 * 64-byte UTF-8 names), coupons (uniqueness per seller, delete and set_remaining), grant
 * batches (replay, LEAST, many coupons, order), revocations with expiry, and a broken
 * connection: killed by the server, a server that is down (refused) or hung (timeout), and
 * a reply lost after the server committed. The last three go through a small TCP proxy in
 * this process, so the shared server itself is never stopped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <mysql.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mysql_db.h"
#include "client/mysql/mysql.h"
#include "util/error.h"

#define TIMEOUT_MS 1000

static sk_test_mysql_db_t db; /* the backend's server, a database of our own */

static int64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* ---- the raw connection ------------------------------------------------------------------- */

static void admin_query(const char *sql)
{
    sk_test_mysql_db_query(&db, sql);
}

static long long admin_number(const char *sql)
{
    return sk_test_mysql_db_number(&db, sql);
}

static void reset_tables(void)
{
    sk_test_mysql_db_reset(&db);
}

static int group_setup(void **state)
{
    (void)state;
    return sk_test_mysql_db_create(&db, "mysql");
}

static int group_teardown(void **state)
{
    (void)state;
    sk_test_mysql_db_destroy(&db);
    mysql_library_end();
    return 0;
}

static sk_mysql_t *connect_to(const sk_mysql_config_t *config)
{
    char err[512];
    sk_mysql_t *conn = sk_mysql_connect(config, TIMEOUT_MS, err, sizeof(err));
    if (conn == NULL)
        fail_msg("sk_mysql_connect: %s", err);
    return conn;
}

/* A connection to fresh, empty tables. */
static int setup_conn(void **state)
{
    reset_tables();
    sk_mysql_t *conn = connect_to(&db.config);
    assert_int_equal(sk_mysql_ensure_schema(conn), SK_MYSQL_OK);
    *state = conn;
    return 0;
}

static int teardown_conn(void **state)
{
    sk_mysql_close(*state);
    return 0;
}

/* ---- a TCP proxy that can refuse, hang or drop a reply -------------------------------------- */

enum { PROXY_FORWARD, PROXY_HANG, PROXY_DOWN };
#define PROXY_PAIRS 16

static struct proxy {
    pthread_t thread;
    pthread_mutex_t lock;
    int listen_fd;
    int port;
    int mode;       /* guarded by lock */
    int drop_reply; /* guarded by lock: replies to pass before dropping one, or -1 */
    int quit;       /* guarded by lock */
    int client[PROXY_PAIRS], server[PROXY_PAIRS]; /* proxy thread only */
} proxy;

static int proxy_listen(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&address, sizeof(address)), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t length = sizeof(address);
    getsockname(fd, (struct sockaddr *)&address, &length);
    proxy.port = ntohs(address.sin_port);
    return fd;
}

/* Closes with a reset, as a crashed server's kernel would answer. */
static void close_hard(int fd)
{
    struct linger linger = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof(linger));
    close(fd);
}

static void proxy_close_pair(int i)
{
    close_hard(proxy.client[i]);
    close(proxy.server[i]);
    proxy.client[i] = proxy.server[i] = -1;
}

static void proxy_accept(void)
{
    int client = accept(proxy.listen_fd, NULL, NULL);
    if (client < 0)
        return;
    int server = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)db.config.port)};
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    if (server < 0 || connect(server, (struct sockaddr *)&address, sizeof(address)) != 0) {
        close(client);
        if (server >= 0)
            close(server);
        return;
    }
    for (int i = 0; i != PROXY_PAIRS; ++i) {
        if (proxy.client[i] < 0) {
            proxy.client[i] = client;
            proxy.server[i] = server;
            return;
        }
    }
    close(client);
    close(server);
}

static int write_all(int fd, const char *data, size_t size)
{
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n <= 0)
            return -1;
        data += n;
        size -= (size_t)n;
    }
    return 0;
}

static void *proxy_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&proxy.lock);
        int quit = proxy.quit, mode = proxy.mode;
        pthread_mutex_unlock(&proxy.lock);
        if (quit)
            return NULL;
        struct pollfd fds[1 + 2 * PROXY_PAIRS];
        int slot_of[1 + 2 * PROXY_PAIRS];
        nfds_t count = 0;
        if (proxy.listen_fd >= 0) {
            fds[count] = (struct pollfd){.fd = proxy.listen_fd, .events = POLLIN};
            slot_of[count++] = -1;
        }
        for (int i = 0; mode == PROXY_FORWARD && i != PROXY_PAIRS; ++i) {
            if (proxy.client[i] < 0)
                continue;
            fds[count] = (struct pollfd){.fd = proxy.client[i], .events = POLLIN};
            slot_of[count++] = 2 * i;
            fds[count] = (struct pollfd){.fd = proxy.server[i], .events = POLLIN};
            slot_of[count++] = 2 * i + 1;
        }
        if (poll(fds, count, 20) <= 0)
            continue;
        for (nfds_t k = 0; k != count; ++k) {
            if (fds[k].revents == 0)
                continue;
            if (slot_of[k] < 0) {
                proxy_accept();
                continue;
            }
            int i = slot_of[k] / 2, from_server = slot_of[k] % 2;
            if (proxy.client[i] < 0)
                continue;
            char buffer[16384];
            ssize_t n = read(fds[k].fd, buffer, sizeof(buffer));
            pthread_mutex_lock(&proxy.lock);
            int drop = 0;
            if (from_server && proxy.drop_reply >= 0)
                drop = proxy.drop_reply-- == 0;
            pthread_mutex_unlock(&proxy.lock);
            int to = from_server ? proxy.client[i] : proxy.server[i];
            if (n <= 0 || drop || write_all(to, buffer, (size_t)n) != 0)
                proxy_close_pair(i);
        }
    }
}

static void proxy_set(int mode)
{
    pthread_mutex_lock(&proxy.lock);
    proxy.mode = mode;
    pthread_mutex_unlock(&proxy.lock);
    usleep(50 * 1000); /* one poll round: the proxy thread sees the mode */
}

/* DOWN closes every connection and the listening socket (a refused connect); UP listens
 * again on the same port. Only the proxy thread touches the sockets, so stop it meanwhile. */
static void proxy_stop_thread(void)
{
    pthread_mutex_lock(&proxy.lock);
    proxy.quit = 1;
    pthread_mutex_unlock(&proxy.lock);
    pthread_join(proxy.thread, NULL);
    proxy.quit = 0;
}

static void proxy_start(int port)
{
    proxy.listen_fd = proxy_listen(port);
    pthread_mutex_lock(&proxy.lock);
    proxy.mode = PROXY_FORWARD;
    pthread_mutex_unlock(&proxy.lock);
    assert_int_equal(pthread_create(&proxy.thread, NULL, proxy_main, NULL), 0);
}

static void proxy_down(void)
{
    proxy_stop_thread();
    for (int i = 0; i != PROXY_PAIRS; ++i)
        if (proxy.client[i] >= 0)
            proxy_close_pair(i);
    close(proxy.listen_fd);
    proxy.listen_fd = -1;
}

static int setup_proxy(void **state)
{
    pthread_mutex_init(&proxy.lock, NULL);
    for (int i = 0; i != PROXY_PAIRS; ++i)
        proxy.client[i] = proxy.server[i] = -1;
    proxy.drop_reply = -1;
    proxy_start(0);
    return setup_conn(state);
}

static int teardown_proxy(void **state)
{
    teardown_conn(state);
    if (proxy.listen_fd >= 0)
        proxy_down();
    pthread_mutex_destroy(&proxy.lock);
    return 0;
}

static sk_mysql_t *connect_through_proxy(void)
{
    sk_mysql_config_t config = db.config;
    snprintf(config.host, sizeof(config.host), "127.0.0.1");
    config.port = proxy.port;
    return connect_to(&config);
}

/* ---- URLs -------------------------------------------------------------------------------- */

static void test_config_parse(void **state)
{
    (void)state;
    sk_mysql_config_t config;
    char err[256];

    assert_int_equal(
        sk_mysql_config_parse("mysql://sk:pw@db.example:3307/sale", &config, err, sizeof(err)), 0);
    assert_string_equal(config.user, "sk");
    assert_string_equal(config.password, "pw");
    assert_string_equal(config.host, "db.example");
    assert_int_equal(config.port, 3307);
    assert_string_equal(config.database, "sale");

    assert_int_equal(sk_mysql_config_parse("mysql://sk@10.0.0.1/sale", &config, err, sizeof(err)),
                     0);
    assert_string_equal(config.password, "");
    assert_int_equal(config.port, 3306);

    /* Every special character percent-encoded, and the unencoded ones a password may hold. */
    assert_int_equal(sk_mysql_config_parse("mysql://s%6B:p%40ss%3Aw%2Frd%25%20%3f%23@[::1]:1/d%2Db",
                                           &config, err, sizeof(err)),
                     0);
    assert_string_equal(config.user, "sk");
    assert_string_equal(config.password, "p@ss:w/rd% ?#");
    assert_string_equal(config.host, "::1");
    assert_int_equal(config.port, 1);
    assert_string_equal(config.database, "d-b");
    assert_int_equal(sk_mysql_config_parse("MYSQL://u:a@b:c@h:65535/db", &config, err, sizeof(err)),
                     0);
    assert_string_equal(config.password, "a@b:c");
    assert_int_equal(config.port, 65535);

    static const char *const bad[] = {
        "",
        "mysql:",
        "mysql://",
        "mysql:/u@h/db",
        "http://u:pw@h/db",
        "mysql://h/db",       /* no user */
        "mysql://:pw@h/db",   /* empty user */
        "mysql://u:pw@/db",   /* no host */
        "mysql://u:pw@h",     /* no database */
        "mysql://u:pw@h/",    /* empty database */
        "mysql://u:pw@h:/db", /* empty port */
        "mysql://u:pw@h:0/db",
        "mysql://u:pw@h:65536/db",
        "mysql://u:pw@h:99999999999999999999/db",
        "mysql://u:pw@h:-1/db",
        "mysql://u:pw@h:12ab/db",
        "mysql://u:pw@h:1:2/db",
        "mysql://u:pw@ho st/db",
        "mysql://u:pw@ho\tst/db",
        "mysql://u:pw@h\n/db",
        "mysql://u:pw@h;rm/db",
        "mysql://u:pw@[::1/db",
        "mysql://u:pw@[::1]x/db",
        "mysql://u:pw@[zz]/db",
        "mysql://u:pw@h/db?ssl=1",
        "mysql://u:pw@h/db#frag",
        "mysql://u:pw@h/db/more",
        "mysql://u%zz:pw@h/db",
        "mysql://u:pw%4@h/db",
        "mysql://u:pw%@h/db",
        "mysql://u:pw%00x@h/db", /* a NUL would cut the password short */
        "mysql://u%00:pw@h/db",
        "mysql://u:pw@h/d%00b",
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        memset(&config, 0x55, sizeof(config));
        err[0] = '\0';
        if (sk_mysql_config_parse(bad[i], &config, err, sizeof(err)) != SK_EINVAL)
            fail_msg("accepted %s", bad[i]);
        assert_true(err[0] != '\0');
        assert_int_equal(config.password[0], '\0');
    }
    assert_int_equal(sk_mysql_config_parse(NULL, &config, err, sizeof(err)), SK_EINVAL);

    /* Values longer than the fields are refused, not cut. */
    char url[2048];
    char long_text[600];
    memset(long_text, 'a', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    snprintf(url, sizeof(url), "mysql://u:%s@h/db", long_text);
    assert_int_equal(sk_mysql_config_parse(url, &config, err, sizeof(err)), SK_EINVAL);
    snprintf(url, sizeof(url), "mysql://u:pw@%s/db", long_text);
    assert_int_equal(sk_mysql_config_parse(url, &config, err, sizeof(err)), SK_EINVAL);
    snprintf(url, sizeof(url), "mysql://%s:pw@h/db", long_text);
    assert_int_equal(sk_mysql_config_parse(url, &config, err, sizeof(err)), SK_EINVAL);
    snprintf(url, sizeof(url), "mysql://u:pw@h/%s", long_text);
    assert_int_equal(sk_mysql_config_parse(url, &config, err, sizeof(err)), SK_EINVAL);

    /* No message repeats the password, whatever went wrong. */
    static const char *const secret_urls[] = {"mysql://u:Secret%zz@h/db", "mysql://u:Secret@h:0/db",
                                              "mysql://u:Secret@h/", "mysql://u:Secret@ho st/db",
                                              "mysql://u:Secret@h/db?x=Secret"};
    for (size_t i = 0; i != sizeof(secret_urls) / sizeof(secret_urls[0]); ++i) {
        assert_int_equal(sk_mysql_config_parse(secret_urls[i], &config, err, sizeof(err)),
                         SK_EINVAL);
        assert_null(strstr(err, "Secret"));
    }
    /* A tiny error buffer is fine, and so is none. */
    assert_int_equal(sk_mysql_config_parse("bad", &config, err, 1), SK_EINVAL);
    assert_int_equal(err[0], '\0');
    assert_int_equal(sk_mysql_config_parse("bad", &config, NULL, 0), SK_EINVAL);
}

static void test_connect_failures(void **state)
{
    (void)state;
    char err[512];
    sk_mysql_config_t config = db.config;
    snprintf(config.password, sizeof(config.password), "Wr0ng-Secret");
    assert_null(sk_mysql_connect(&config, TIMEOUT_MS, err, sizeof(err)));
    assert_non_null(strstr(err, "Access denied"));
    assert_null(strstr(err, "Wr0ng-Secret"));

    /* Nothing listens there: refused at once. */
    config = db.config;
    int listener = proxy_listen(0);
    int unused_port = proxy.port;
    close(listener);
    config.port = unused_port;
    int64_t start = monotonic_ms();
    assert_null(sk_mysql_connect(&config, TIMEOUT_MS, err, sizeof(err)));
    assert_true(monotonic_ms() - start < TIMEOUT_MS);
    assert_null(strstr(err, db.config.password[0] ? db.config.password : "\x01"));
}

/* ---- schema and users ------------------------------------------------------------------------ */

static void test_schema(void **state)
{
    sk_mysql_t *conn = *state;
    assert_int_equal(sk_mysql_ensure_schema(conn), SK_MYSQL_OK); /* a second time */
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '%s' AND "
             "TABLE_NAME IN ('users', 'coupons', 'grants', 'revoked_tokens', 'settings') AND "
             "ENGINE = 'InnoDB' AND TABLE_COLLATION LIKE 'utf8mb4%%bin'",
             db.database);
    assert_int_equal(admin_number(sql), 5);
    /* The unique key API.md promises, coupon first so that it serves counts too. */
    snprintf(sql, sizeof(sql),
             "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) = 'seller,coupon,customer' "
             "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '%s' AND "
             "TABLE_NAME = 'grants' AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY'",
             db.database);
    assert_int_equal(admin_number(sql), 1);
    snprintf(sql, sizeof(sql),
             "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '%s' AND "
             "TABLE_NAME = 'grants' AND NON_UNIQUE = 1",
             db.database);
    assert_int_equal(admin_number(sql), 0);
    /* The kind CHECK holds for rows written by hand too. */
    assert_int_not_equal(mysql_query(db.admin, "INSERT INTO users (username, kind, password_hash, "
                                               "created_at) VALUES ('x', 'admin', 'h', 1)"),
                         0);
    assert_int_equal(admin_number("SELECT COUNT(*) FROM users"), 0);
    assert_int_equal(sk_mysql_ping(conn), 1);
    assert_string_equal(sk_mysql_error(conn), "");
}

static void test_users(void **state)
{
    sk_mysql_t *conn = *state;
    int is_seller = -1;
    char hash[128];
    assert_int_equal(sk_mysql_user_insert(conn, "Bob", 3, 0, "$argon2id$bob", 100), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_user_insert(conn, "bob", 3, 1, "$argon2id$lower", 101), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_user_insert(conn, "Bob", 3, 1, "$argon2id$other", 102),
                     SK_MYSQL_DUPLICATE);
    /* The length is what counts, not a NUL. */
    assert_int_equal(sk_mysql_user_insert(conn, "Bobby", 3, 1, "$argon2id$x", 103),
                     SK_MYSQL_DUPLICATE);

    assert_int_equal(sk_mysql_user_find(conn, "Bob", 3, &is_seller, hash, sizeof(hash), NULL),
                     SK_MYSQL_OK);
    assert_int_equal(is_seller, 0);
    assert_string_equal(hash, "$argon2id$bob");
    assert_int_equal(sk_mysql_user_find(conn, "bob", 3, &is_seller, hash, sizeof(hash), NULL),
                     SK_MYSQL_OK);
    assert_int_equal(is_seller, 1);
    assert_string_equal(hash, "$argon2id$lower");
    assert_int_equal(sk_mysql_user_find(conn, "BOB", 3, &is_seller, hash, sizeof(hash), NULL),
                     SK_MYSQL_NOT_FOUND);
    /* No trailing-space padding in comparisons (PAD SPACE would make "Bob " equal "Bob"). */
    assert_int_equal(sk_mysql_user_find(conn, "Bob ", 4, &is_seller, hash, sizeof(hash), NULL),
                     SK_MYSQL_NOT_FOUND);
    assert_int_equal(sk_mysql_user_find(conn, "Bob", 3, &is_seller, hash, 5, NULL),
                     SK_MYSQL_UNAVAILABLE); /* refuses to cut a hash short */
    /* The row's id, which tokens carry as uid. */
    int64_t bob_id = -1, lower_id = -1;
    assert_int_equal(sk_mysql_user_find(conn, "Bob", 3, &is_seller, hash, sizeof(hash), &bob_id),
                     SK_MYSQL_OK);
    assert_int_equal(sk_mysql_user_find(conn, "bob", 3, &is_seller, hash, sizeof(hash), &lower_id),
                     SK_MYSQL_OK);
    assert_int_equal(bob_id, admin_number("SELECT id FROM users WHERE username = 'Bob'"));
    assert_int_equal(lower_id, admin_number("SELECT id FROM users WHERE username = 'bob'"));
    assert_true(bob_id >= 1 && lower_id != bob_id);

    /* 64 bytes of 4-byte UTF-8 fit; 65 bytes are refused, never truncated. */
    char name[80] = "";
    for (int i = 0; i != 16; ++i)
        strcat(name, "\xF0\x9F\x8E\x9F");
    assert_int_equal(sk_mysql_user_insert(conn, name, 64, 0, "h", 1), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_user_find(conn, name, 64, &is_seller, hash, sizeof(hash), NULL),
                     SK_MYSQL_OK);
    char long_name[80];
    memset(long_name, 'n', 65);
    assert_int_equal(sk_mysql_user_insert(conn, long_name, 65, 0, "h", 1), SK_MYSQL_UNAVAILABLE);
    assert_true(sk_mysql_error(conn)[0] != '\0');
    /* Hostile text is data, not SQL. */
    static const char hostile[] = "x'); DROP TABLE users; --";
    assert_int_equal(sk_mysql_user_insert(conn, hostile, sizeof(hostile) - 1, 0, "h", 1),
                     SK_MYSQL_OK);
    assert_int_equal(admin_number("SELECT COUNT(*) FROM users"), 4);
}

/* ---- coupons ----------------------------------------------------------------------------- */

static sk_mysql_coupon_t coupon_of(const char *seller, const char *name, int64_t amount)
{
    return (sk_mysql_coupon_t){.seller = seller,
                               .seller_len = strlen(seller),
                               .name = name,
                               .name_len = strlen(name),
                               .description = "desc",
                               .description_len = 4,
                               .amount = amount,
                               .stock = 50,
                               .created_at = 1000};
}

struct collected_coupons {
    size_t count;
    int64_t ids[16];
    char names[16][80];
    sk_mysql_coupon_t copies[16];
    size_t stop_after;
};

static int collect_coupon(void *data, const sk_mysql_coupon_t *coupon)
{
    struct collected_coupons *collected = data;
    assert_true(collected->count < 16);
    collected->ids[collected->count] = coupon->id;
    snprintf(collected->names[collected->count], sizeof(collected->names[0]), "%.*s/%.*s",
             (int)coupon->seller_len, coupon->seller, (int)coupon->name_len, coupon->name);
    collected->copies[collected->count] = *coupon;
    collected->copies[collected->count].seller = NULL; /* valid during the call only */
    collected->copies[collected->count].name = NULL;
    collected->copies[collected->count].description = NULL;
    ++collected->count;
    return collected->stop_after != 0 && collected->count == collected->stop_after;
}

static void test_coupons(void **state)
{
    sk_mysql_t *conn = *state;
    sk_mysql_coupon_t cake = coupon_of("alice", "Cake", 10);
    cake.has_start = 1;
    cake.start_at = 500;
    assert_int_equal(sk_mysql_coupon_insert(conn, &cake), SK_MYSQL_OK);
    assert_true(cake.id > 0);
    sk_mysql_coupon_t again = coupon_of("alice", "Cake", 99);
    assert_int_equal(sk_mysql_coupon_insert(conn, &again), SK_MYSQL_DUPLICATE);
    sk_mysql_coupon_t lower = coupon_of("alice", "cake", 5);
    assert_int_equal(sk_mysql_coupon_insert(conn, &lower), SK_MYSQL_OK);
    sk_mysql_coupon_t other_seller = coupon_of("carol", "Cake", 7);
    other_seller.has_end = 1;
    other_seller.end_at = 900;
    /* The longest description: 1024 bytes of 2-byte UTF-8. */
    char description[1025] = "";
    for (int i = 0; i != 512; ++i)
        strcat(description, "\xC3\xA9");
    other_seller.description = description;
    other_seller.description_len = 1024;
    assert_int_equal(sk_mysql_coupon_insert(conn, &other_seller), SK_MYSQL_OK);
    assert_true(cake.id < lower.id && lower.id < other_seller.id);

    struct collected_coupons collected = {0};
    assert_int_equal(sk_mysql_coupons_each(conn, collect_coupon, &collected), SK_MYSQL_OK);
    assert_int_equal(collected.count, 3);
    assert_string_equal(collected.names[0], "alice/Cake");
    assert_string_equal(collected.names[1], "alice/cake");
    assert_string_equal(collected.names[2], "carol/Cake");
    assert_int_equal(collected.ids[0], cake.id);
    sk_mysql_coupon_t *first = &collected.copies[0], *third = &collected.copies[2];
    assert_int_equal(first->amount, 10);
    assert_int_equal(first->remaining, 10);
    assert_int_equal(first->stock, 50);
    assert_int_equal(first->has_start, 1);
    assert_int_equal(first->start_at, 500);
    assert_int_equal(first->has_end, 0);
    assert_int_equal(first->created_at, 1000);
    assert_int_equal(third->has_start, 0);
    assert_int_equal(third->has_end, 1);
    assert_int_equal(third->end_at, 900);
    assert_int_equal(third->description_len, 1024);

    collected = (struct collected_coupons){.stop_after = 1};
    assert_int_equal(sk_mysql_coupons_each(conn, collect_coupon, &collected), SK_MYSQL_OK);
    assert_int_equal(collected.count, 1);

    assert_int_equal(sk_mysql_coupon_set_remaining(conn, "alice", 5, "Cake", 4, 3), SK_MYSQL_OK);
    assert_int_equal(admin_number("SELECT remaining FROM coupons WHERE seller = 'alice' AND "
                                  "name = 'Cake'"),
                     3);
    assert_int_equal(sk_mysql_coupon_set_remaining(conn, "alice", 5, "Cake", 4, 3), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_coupon_set_remaining(conn, "alice", 5, "Pie", 3, 3),
                     SK_MYSQL_NOT_FOUND);

    assert_int_equal(sk_mysql_coupon_delete(conn, "alice", 5, "cake", 4), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_coupon_delete(conn, "alice", 5, "cake", 4), SK_MYSQL_NOT_FOUND);
    /* A coupon with a grant stays. */
    sk_mysql_grant_t grant = {"dave", "carol", "Cake", 4, 5, 4, 2000, 6};
    assert_int_equal(sk_mysql_grant_insert(conn, &grant), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_coupon_delete(conn, "carol", 5, "Cake", 4), SK_MYSQL_NOT_FOUND);
    assert_int_equal(admin_number("SELECT COUNT(*) FROM coupons"), 2);
    /* grant_insert leaves remaining alone. */
    assert_int_equal(admin_number("SELECT remaining FROM coupons WHERE seller = 'carol'"), 7);
}

/* The live sale view's pages: by id, one seller's or everyone's, with the count of all. */
static void test_coupons_page(void **state)
{
    sk_mysql_t *conn = *state;
    char name[16];
    sk_mysql_catalog_row_t rows[4];
    size_t count = 99;
    int64_t total = 99;
    assert_int_equal(sk_mysql_coupons_page(conn, NULL, 0, 0, 4, rows, &count, &total), SK_MYSQL_OK);
    assert_int_equal(count, 0);
    assert_int_equal(total, 0);
    for (int i = 0; i != 10; ++i) {
        snprintf(name, sizeof(name), "z%02d", 9 - i); /* ids in the reverse of name order */
        sk_mysql_coupon_t coupon = coupon_of(i % 2 ? "bob" : "alice", name, i + 1);
        assert_int_equal(sk_mysql_coupon_insert(conn, &coupon), SK_MYSQL_OK);
    }
    assert_int_equal(sk_mysql_coupons_page(conn, NULL, 0, 0, 4, rows, &count, &total), SK_MYSQL_OK);
    assert_int_equal(count, 4);
    assert_int_equal(total, 10);
    assert_string_equal(rows[0].name, "z09");
    assert_string_equal(rows[0].seller, "alice");
    assert_int_equal(rows[0].seller_len, 5);
    assert_int_equal(rows[0].name_len, 3);
    assert_int_equal(rows[0].amount, 1);
    assert_string_equal(rows[3].name, "z06");
    assert_true(rows[0].id < rows[1].id && rows[1].id < rows[2].id && rows[2].id < rows[3].id);
    assert_int_equal(sk_mysql_coupons_page(conn, NULL, 0, 8, 4, rows, &count, &total), SK_MYSQL_OK);
    assert_int_equal(count, 2);
    assert_string_equal(rows[1].name, "z00");
    assert_int_equal(sk_mysql_coupons_page(conn, NULL, 0, 10, 4, rows, &count, &total),
                     SK_MYSQL_OK);
    assert_int_equal(count, 0);
    assert_int_equal(total, 10);
    assert_int_equal(sk_mysql_coupons_page(conn, NULL, 0, INT64_MAX, 4, rows, &count, &total),
                     SK_MYSQL_OK);
    assert_int_equal(count, 0);

    assert_int_equal(sk_mysql_coupons_page(conn, "bob", 3, 4, 4, rows, &count, &total),
                     SK_MYSQL_OK);
    assert_int_equal(total, 5);
    assert_int_equal(count, 1);
    assert_string_equal(rows[0].name, "z00");
    assert_string_equal(rows[0].seller, "bob");
    assert_int_equal(rows[0].amount, 10);
    /* Names compare byte for byte, and a seller is a value, never SQL. */
    static const char *const nobody[] = {"Bob", "bob ", "x' OR '1'='1"};
    for (size_t i = 0; i != sizeof(nobody) / sizeof(nobody[0]); ++i) {
        assert_int_equal(
            sk_mysql_coupons_page(conn, nobody[i], strlen(nobody[i]), 0, 4, rows, &count, &total),
            SK_MYSQL_OK);
        assert_int_equal(total, 0);
        assert_int_equal(count, 0);
    }
}

/* ---- grants ------------------------------------------------------------------------------ */

static sk_mysql_grant_t grant_of(const char *customer, const char *seller, const char *coupon,
                                 int64_t remaining)
{
    return (sk_mysql_grant_t){customer,       seller,         coupon, strlen(customer),
                              strlen(seller), strlen(coupon), 3000,   remaining};
}

static long long remaining_of(const char *seller, const char *name)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT remaining FROM coupons WHERE seller = '%.64s' AND name = '%.64s'", seller,
             name);
    return admin_number(sql);
}

struct collected_grants {
    size_t count, stop_after;
    char keys[600][200];
};

static int collect_grant(void *data, const sk_mysql_grant_t *grant)
{
    struct collected_grants *collected = data;
    assert_true(collected->count < 600);
    snprintf(collected->keys[collected->count++], sizeof(collected->keys[0]), "%.*s/%.*s/%.*s",
             (int)grant->customer_len, grant->customer, (int)grant->seller_len, grant->seller,
             (int)grant->coupon_len, grant->coupon);
    return collected->stop_after != 0 && collected->count == collected->stop_after;
}

static void test_grants_apply(void **state)
{
    sk_mysql_t *conn = *state;
    sk_mysql_coupon_t cake = coupon_of("alice", "Cake", 10);
    sk_mysql_coupon_t pie = coupon_of("alice", "Pie", 5);
    assert_int_equal(sk_mysql_coupon_insert(conn, &cake), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_coupon_insert(conn, &pie), SK_MYSQL_OK);

    sk_mysql_grant_t batch[] = {
        grant_of("u1", "alice", "Cake", 9),
        grant_of("u2", "alice", "Cake", 8),
        grant_of("u1", "alice", "Pie", 4),
        grant_of("u3", "alice", "Cake", 7),
    };
    size_t inserted = 99;
    assert_int_equal(sk_mysql_grants_apply(conn, batch, 4, &inserted), SK_MYSQL_OK);
    assert_int_equal(inserted, 4);
    assert_int_equal(remaining_of("alice", "Cake"), 7);
    assert_int_equal(remaining_of("alice", "Pie"), 4);

    /* A replay changes nothing. */
    assert_int_equal(sk_mysql_grants_apply(conn, batch, 4, &inserted), SK_MYSQL_OK);
    assert_int_equal(inserted, 0);
    assert_int_equal(admin_number("SELECT COUNT(*) FROM grants"), 4);
    assert_int_equal(remaining_of("alice", "Cake"), 7);

    /* An older batch arriving late never raises remaining; a new grant in it still lands. */
    sk_mysql_grant_t late[] = {grant_of("u2", "alice", "Cake", 8),
                               grant_of("u9", "alice", "Pie", 4)};
    assert_int_equal(sk_mysql_grants_apply(conn, late, 2, &inserted), SK_MYSQL_OK);
    assert_int_equal(inserted, 1);
    assert_int_equal(remaining_of("alice", "Cake"), 7);
    assert_int_equal(remaining_of("alice", "Pie"), 4);
    /* 'U1' is not 'u1'. */
    sk_mysql_grant_t upper[] = {grant_of("U1", "alice", "Cake", 6)};
    assert_int_equal(sk_mysql_grants_apply(conn, upper, 1, NULL), SK_MYSQL_OK);
    assert_int_equal(remaining_of("alice", "Cake"), 6);
    assert_int_equal(sk_mysql_grants_apply(conn, NULL, 0, &inserted), SK_MYSQL_OK);
    assert_int_equal(inserted, 0);

    struct collected_grants *collected = calloc(1, sizeof(*collected));
    assert_non_null(collected);
    assert_int_equal(sk_mysql_grants_each(conn, collect_grant, collected), SK_MYSQL_OK);
    assert_int_equal(collected->count, 6);
    assert_string_equal(collected->keys[0], "u1/alice/Cake");
    assert_string_equal(collected->keys[1], "u2/alice/Cake");
    assert_string_equal(collected->keys[2], "u1/alice/Pie");
    assert_string_equal(collected->keys[3], "u3/alice/Cake");
    assert_string_equal(collected->keys[4], "u9/alice/Pie");
    assert_string_equal(collected->keys[5], "U1/alice/Cake");
    *collected = (struct collected_grants){.stop_after = 2};
    assert_int_equal(sk_mysql_grants_each(conn, collect_grant, collected), SK_MYSQL_OK);
    assert_int_equal(collected->count, 2);
    free(collected);
}

/* 40 coupons and 507 grants in one batch (every chunk size), shuffled across coupons. */
static void test_grants_many_coupons(void **state)
{
    sk_mysql_t *conn = *state;
    enum { COUPONS = 40, GRANTS = 507 };
    static char names[COUPONS][16], customers[GRANTS][16];
    for (int c = 0; c != COUPONS; ++c) {
        snprintf(names[c], sizeof(names[c]), "c%02d", c);
        sk_mysql_coupon_t coupon = coupon_of("seller", names[c], 100);
        assert_int_equal(sk_mysql_coupon_insert(conn, &coupon), SK_MYSQL_OK);
    }
    static sk_mysql_grant_t batch[GRANTS];
    int taken[COUPONS] = {0};
    for (int i = 0; i != GRANTS; ++i) {
        int c = (i * 7) % COUPONS;
        snprintf(customers[i], sizeof(customers[i]), "cust%d", i);
        ++taken[c];
        batch[i] = grant_of(customers[i], "seller", names[c], 100 - taken[c]);
    }
    size_t inserted = 0;
    assert_int_equal(sk_mysql_grants_apply(conn, batch, GRANTS, &inserted), SK_MYSQL_OK);
    assert_int_equal(inserted, GRANTS);
    for (int c = 0; c != COUPONS; ++c)
        assert_int_equal(remaining_of("seller", names[c]), 100 - taken[c]);
    assert_int_equal(sk_mysql_grants_apply(conn, batch, GRANTS, &inserted), SK_MYSQL_OK);
    assert_int_equal(inserted, 0);
    assert_int_equal(admin_number("SELECT COUNT(*) FROM grants"), GRANTS);
    /* remaining = amount - grants, as API.md promises once the copy has converged. */
    assert_int_equal(admin_number("SELECT COUNT(*) FROM coupons c WHERE remaining <> amount - "
                                  "(SELECT COUNT(*) FROM grants g WHERE g.seller = c.seller AND "
                                  "g.coupon = c.name)"),
                     0);

    struct collected_grants *collected = calloc(1, sizeof(*collected));
    assert_non_null(collected);
    assert_int_equal(sk_mysql_grants_each(conn, collect_grant, collected), SK_MYSQL_OK);
    assert_int_equal(collected->count, GRANTS);
    for (int i = 0; i != GRANTS; ++i) {
        char key[200];
        snprintf(key, sizeof(key), "%.16s/seller/%.16s", customers[i], names[(i * 7) % COUPONS]);
        assert_string_equal(collected->keys[i], key);
    }
    free(collected);
}

/* Iterators read in pages: more rows than one page, in order, each once. */
static int count_grant(void *data, const sk_mysql_grant_t *grant)
{
    size_t *count = data;
    char expected[32];
    snprintf(expected, sizeof(expected), "p%zu", *count);
    assert_int_equal(grant->customer_len, strlen(expected));
    assert_memory_equal(grant->customer, expected, grant->customer_len);
    ++*count;
    return 0;
}

static void test_grants_paging(void **state)
{
    sk_mysql_t *conn = *state;
    enum { GRANTS = 2500 };
    static char customers[GRANTS][16];
    static sk_mysql_grant_t batch[GRANTS];
    for (int i = 0; i != GRANTS; ++i) {
        snprintf(customers[i], sizeof(customers[i]), "p%d", i);
        batch[i] = grant_of(customers[i], "s", "c", 0);
    }
    for (int first = 0; first < GRANTS; first += 500)
        assert_int_equal(sk_mysql_grants_apply(conn, batch + first, 500, NULL), SK_MYSQL_OK);
    size_t count = 0;
    assert_int_equal(sk_mysql_grants_each(conn, count_grant, &count), SK_MYSQL_OK);
    assert_int_equal(count, GRANTS);
}

/* Rows a second for batches of 500 grants (fresh rows, 5 coupons). Prints; asserts little. */
static void test_grants_rate(void **state)
{
    sk_mysql_t *conn = *state;
    enum { BATCH = 500, BATCHES = 20 };
    static char customers[BATCHES][BATCH][16];
    static sk_mysql_grant_t batches[BATCHES][BATCH];
    static const char *const coupons[] = {"a", "b", "c", "d", "e"};
    for (int c = 0; c != 5; ++c) {
        sk_mysql_coupon_t coupon = coupon_of("rate", coupons[c], 1000000);
        assert_int_equal(sk_mysql_coupon_insert(conn, &coupon), SK_MYSQL_OK);
    }
    for (int b = 0; b != BATCHES; ++b) {
        for (int i = 0; i != BATCH; ++i) {
            snprintf(customers[b][i], sizeof(customers[b][i]), "r%d_%d", b, i);
            batches[b][i] = grant_of(customers[b][i], "rate", coupons[i % 5],
                                     1000000 - (b * BATCH + i) / 5 - 1);
        }
    }
    int64_t start = monotonic_ms();
    for (int b = 0; b != BATCHES; ++b) {
        size_t inserted = 0;
        assert_int_equal(sk_mysql_grants_apply(conn, batches[b], BATCH, &inserted), SK_MYSQL_OK);
        assert_int_equal(inserted, BATCH);
    }
    int64_t elapsed = monotonic_ms() - start;
    print_message("grants_apply: %d batches of %d in %lld ms = %.0f rows/s\n", BATCHES, BATCH,
                  (long long)elapsed, BATCHES * BATCH * 1000.0 / (double)(elapsed ? elapsed : 1));
}

/* ---- revocations ----------------------------------------------------------------------------- */

struct collected_jtis {
    size_t count, stop_after;
    char text[256];
};

static int collect_jti(void *data, const char *jti, int64_t expires_at)
{
    struct collected_jtis *collected = data;
    size_t used = strlen(collected->text);
    snprintf(collected->text + used, sizeof(collected->text) - used, "%s=%lld ", jti,
             (long long)expires_at);
    ++collected->count;
    return collected->stop_after != 0 && collected->count == collected->stop_after;
}

static void test_revocations(void **state)
{
    sk_mysql_t *conn = *state;
    assert_int_equal(sk_mysql_revoke(conn, "jti-a", 100), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_revoke(conn, "jti-c", 300), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_revoke(conn, "jti-b", 200), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_revoke(conn, "JTI-b", 150), SK_MYSQL_OK);
    struct collected_jtis collected = {0};
    assert_int_equal(sk_mysql_revoked_each(conn, 150, collect_jti, &collected), SK_MYSQL_OK);
    assert_string_equal(collected.text, "jti-b=200 jti-c=300 ");
    /* Revoking again keeps the later expiry. */
    assert_int_equal(sk_mysql_revoke(conn, "jti-a", 400), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_revoke(conn, "jti-c", 250), SK_MYSQL_OK);
    collected = (struct collected_jtis){0};
    assert_int_equal(sk_mysql_revoked_each(conn, 150, collect_jti, &collected), SK_MYSQL_OK);
    assert_string_equal(collected.text, "jti-a=400 jti-b=200 jti-c=300 ");
    collected = (struct collected_jtis){.stop_after = 1};
    assert_int_equal(sk_mysql_revoked_each(conn, 0, collect_jti, &collected), SK_MYSQL_OK);
    assert_string_equal(collected.text, "JTI-b=150 ");
    collected = (struct collected_jtis){0};
    assert_int_equal(sk_mysql_revoked_each(conn, 400, collect_jti, &collected), SK_MYSQL_OK);
    assert_int_equal(collected.count, 0);
}

static void test_revocations_prune(void **state)
{
    sk_mysql_t *conn = *state;
    uint64_t deleted = 99;
    assert_int_equal(sk_mysql_revoked_prune(conn, 1000, &deleted), SK_MYSQL_OK);
    assert_int_equal(deleted, 0);
    assert_int_equal(sk_mysql_revoke(conn, "old-1", 100), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_revoke(conn, "old-2", 199), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_revoke(conn, "edge", 200), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_revoke(conn, "new", 300), SK_MYSQL_OK);
    /* Strictly before the cutoff goes; the cutoff itself stays. */
    assert_int_equal(sk_mysql_revoked_prune(conn, 200, &deleted), SK_MYSQL_OK);
    assert_int_equal(deleted, 2);
    struct collected_jtis collected = {0};
    assert_int_equal(sk_mysql_revoked_each(conn, 0, collect_jti, &collected), SK_MYSQL_OK);
    assert_string_equal(collected.text, "edge=200 new=300 ");
    assert_int_equal(admin_number("SELECT COUNT(*) FROM revoked_tokens"), 2);
    assert_int_equal(sk_mysql_revoked_prune(conn, 200, NULL), SK_MYSQL_OK);
    assert_int_equal(admin_number("SELECT COUNT(*) FROM revoked_tokens"), 2);
}

/* ---- the deployment id ---------------------------------------------------------------------- */

static void test_deployment_id(void **state)
{
    sk_mysql_t *conn = *state;
    char first[64], again[64];
    assert_int_equal(sk_mysql_deployment_id(conn, first, sizeof(first)), SK_MYSQL_OK);
    assert_int_equal(strlen(first), SK_MYSQL_DEPLOYMENT_ID_LEN);
    assert_int_equal(strspn(first, "0123456789abcdef"), SK_MYSQL_DEPLOYMENT_ID_LEN);
    /* Every later ensure_schema (another instance starting) keeps the first id. */
    sk_mysql_t *other = connect_to(&db.config);
    assert_int_equal(sk_mysql_ensure_schema(other), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_ensure_schema(conn), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_deployment_id(other, again, sizeof(again)), SK_MYSQL_OK);
    assert_string_equal(again, first);
    sk_mysql_close(other);
    assert_int_equal(admin_number("SELECT COUNT(*) FROM settings"), 1);
    /* Too small a buffer is refused, never cut. */
    assert_int_equal(sk_mysql_deployment_id(conn, again, SK_MYSQL_DEPLOYMENT_ID_LEN),
                     SK_MYSQL_UNAVAILABLE);
    /* A database that lost the row (or predates it) gets a new, different one. */
    admin_query("DELETE FROM settings");
    assert_int_equal(sk_mysql_deployment_id(conn, again, sizeof(again)), SK_MYSQL_NOT_FOUND);
    assert_int_equal(sk_mysql_ensure_schema(conn), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_deployment_id(conn, again, sizeof(again)), SK_MYSQL_OK);
    assert_int_equal(strlen(again), SK_MYSQL_DEPLOYMENT_ID_LEN);
    assert_string_not_equal(again, first);
}

/* ---- a broken connection ------------------------------------------------------------------- */

static void kill_module_connections(void)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '%s' AND "
             "ID <> CONNECTION_ID()",
             db.database);
    assert_int_equal(mysql_query(db.admin, sql), 0);
    MYSQL_RES *result = mysql_store_result(db.admin);
    assert_non_null(result);
    MYSQL_ROW row;
    int killed = 0;
    while ((row = mysql_fetch_row(result)) != NULL) {
        snprintf(sql, sizeof(sql), "KILL CONNECTION %s", row[0]);
        admin_query(sql);
        ++killed;
    }
    mysql_free_result(result);
    assert_true(killed >= 1);
}

/* The server ends the connection: the next call reconnects and re-prepares unnoticed. */
static void test_killed_connection(void **state)
{
    sk_mysql_t *conn = *state;
    int is_seller;
    char hash[64];
    assert_int_equal(sk_mysql_user_insert(conn, "kim", 3, 0, "h1", 1), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_user_find(conn, "kim", 3, &is_seller, hash, sizeof(hash), NULL),
                     SK_MYSQL_OK);
    kill_module_connections();
    assert_int_equal(sk_mysql_user_find(conn, "kim", 3, &is_seller, hash, sizeof(hash), NULL),
                     SK_MYSQL_OK);
    kill_module_connections();
    sk_mysql_grant_t grant = grant_of("kim", "s", "c", 0);
    assert_int_equal(sk_mysql_grants_apply(conn, &grant, 1, NULL), SK_MYSQL_OK);
    kill_module_connections();
    assert_int_equal(sk_mysql_ping(conn), 1);
}

/* Down: refused at once, and the same handle works when the server is back. Hung: given up
 * after one timeout, without a second one for reconnecting. */
static void test_server_gone(void **state)
{
    (void)state;
    sk_mysql_t *conn = connect_through_proxy();
    int is_seller;
    char hash[64];
    assert_int_equal(sk_mysql_user_insert(conn, "gina", 4, 1, "h", 1), SK_MYSQL_OK);
    int port = proxy.port;

    proxy_down();
    int64_t start = monotonic_ms();
    assert_int_equal(sk_mysql_user_find(conn, "gina", 4, &is_seller, hash, sizeof(hash), NULL),
                     SK_MYSQL_UNAVAILABLE);
    assert_true(monotonic_ms() - start < TIMEOUT_MS);
    assert_true(sk_mysql_error(conn)[0] != '\0');
    assert_int_equal(sk_mysql_ping(conn), 0);
    sk_mysql_grant_t grant = grant_of("gina", "s", "c", 0);
    assert_int_equal(sk_mysql_grants_apply(conn, &grant, 1, NULL), SK_MYSQL_UNAVAILABLE);

    proxy_start(port);
    assert_int_equal(sk_mysql_user_find(conn, "gina", 4, &is_seller, hash, sizeof(hash), NULL),
                     SK_MYSQL_OK);
    assert_int_equal(is_seller, 1);
    assert_int_equal(sk_mysql_grants_apply(conn, &grant, 1, NULL), SK_MYSQL_OK);

    proxy_set(PROXY_HANG);
    start = monotonic_ms();
    assert_int_equal(sk_mysql_user_find(conn, "gina", 4, &is_seller, hash, sizeof(hash), NULL),
                     SK_MYSQL_UNAVAILABLE);
    int64_t elapsed = monotonic_ms() - start;
    print_message("hung server: UNAVAILABLE after %lld ms (timeout %d ms)\n", (long long)elapsed,
                  TIMEOUT_MS);
    assert_true(elapsed >= TIMEOUT_MS - 100 && elapsed < 2 * TIMEOUT_MS - 100);
    /* Connecting to a server that accepts but never greets times out as well. */
    start = monotonic_ms();
    assert_int_equal(sk_mysql_ping(conn), 0);
    elapsed = monotonic_ms() - start;
    assert_true(elapsed < 2 * TIMEOUT_MS - 100);
    proxy_set(PROXY_FORWARD);
    assert_int_equal(sk_mysql_user_find(conn, "gina", 4, &is_seller, hash, sizeof(hash), NULL),
                     SK_MYSQL_OK);
    sk_mysql_close(conn);
}

/* Closes the connection instead of forwarding the server's reply after `pass` more. */
static void drop_reply(int pass)
{
    pthread_mutex_lock(&proxy.lock);
    proxy.drop_reply = pass;
    pthread_mutex_unlock(&proxy.lock);
}

static void drop_next_reply(void)
{
    drop_reply(0);
}

/* The server commits but its answer is lost: the retry must not report our own row as a
 * duplicate, nor apply a batch twice. */
static void test_lost_reply_after_commit(void **state)
{
    (void)state;
    sk_mysql_t *conn = connect_through_proxy();
    int is_seller;
    char hash[64];
    /* Prepare the statements first, so the dropped reply is the one to the INSERT. */
    assert_int_equal(sk_mysql_user_insert(conn, "first", 5, 0, "h0", 1), SK_MYSQL_OK);
    drop_next_reply();
    assert_int_equal(sk_mysql_user_insert(conn, "lost", 4, 0, "salted-hash", 2), SK_MYSQL_OK);
    assert_int_equal(sk_mysql_user_find(conn, "lost", 4, &is_seller, hash, sizeof(hash), NULL),
                     SK_MYSQL_OK);
    /* Someone else's row is still a duplicate. */
    drop_next_reply();
    assert_int_equal(sk_mysql_user_insert(conn, "first", 5, 0, "other-hash", 3),
                     SK_MYSQL_DUPLICATE);

    sk_mysql_coupon_t first = coupon_of("s", "first", 10);
    assert_int_equal(sk_mysql_coupon_insert(conn, &first), SK_MYSQL_OK);
    sk_mysql_coupon_t lost = coupon_of("s", "lost", 10);
    drop_next_reply();
    assert_int_equal(sk_mysql_coupon_insert(conn, &lost), SK_MYSQL_OK);
    assert_true(lost.id > first.id);
    assert_int_equal(admin_number("SELECT COUNT(*) FROM coupons"), 2);
    sk_mysql_coupon_t differs = coupon_of("s", "first", 11);
    drop_next_reply();
    assert_int_equal(sk_mysql_coupon_insert(conn, &differs), SK_MYSQL_DUPLICATE);

    assert_int_equal(sk_mysql_coupon_delete(conn, "s", 1, "none", 4), SK_MYSQL_NOT_FOUND);
    drop_next_reply();
    assert_int_equal(sk_mysql_coupon_delete(conn, "s", 1, "lost", 4), SK_MYSQL_OK);
    assert_int_equal(admin_number("SELECT COUNT(*) FROM coupons"), 1);

    sk_mysql_grant_t warmup = grant_of("w", "s", "first", 9);
    assert_int_equal(sk_mysql_grants_apply(conn, &warmup, 1, NULL), SK_MYSQL_OK);
    sk_mysql_grant_t batch[] = {grant_of("x", "s", "first", 8), grant_of("y", "s", "first", 7)};
    /* START TRANSACTION, two INSERTs and the UPDATE pass; the COMMIT's answer is lost. The
     * retry then finds both rows there. */
    drop_reply(4);
    size_t inserted = 99;
    assert_int_equal(sk_mysql_grants_apply(conn, batch, 2, &inserted), SK_MYSQL_OK);
    assert_int_equal(inserted, 0);
    assert_int_equal(admin_number("SELECT COUNT(*) FROM grants"), 3);
    assert_int_equal(remaining_of("s", "first"), 7);
    sk_mysql_close(conn);
}

#define CONN_TEST(name) cmocka_unit_test_setup_teardown(name, setup_conn, teardown_conn)
#define PROXY_TEST(name) cmocka_unit_test_setup_teardown(name, setup_proxy, teardown_proxy)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_parse),
        cmocka_unit_test(test_connect_failures),
        CONN_TEST(test_schema),
        CONN_TEST(test_users),
        CONN_TEST(test_coupons),
        CONN_TEST(test_coupons_page),
        CONN_TEST(test_grants_apply),
        CONN_TEST(test_grants_many_coupons),
        CONN_TEST(test_grants_paging),
        CONN_TEST(test_grants_rate),
        CONN_TEST(test_revocations),
        CONN_TEST(test_revocations_prune),
        CONN_TEST(test_deployment_id),
        CONN_TEST(test_killed_connection),
        PROXY_TEST(test_server_gone),
        PROXY_TEST(test_lost_reply_after_commit),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
