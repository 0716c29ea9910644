/*
 * The SQL copy of the distributed deployment in MySQL or MariaDB (see mysql.h).
 *
 * One connection per sk_mysql_t, used by one thread at a time. Every statement that takes
 * data is a server-side prepared statement, prepared on first use and kept for the life of
 * the connection; only constant SQL (the schema, transaction control) goes through
 * mysql_real_query.
 *
 * The library's own auto-reconnect stays off: it would silently lose the prepared
 * statements and the session settings. Instead every public call goes through run(),
 * which reconnects once and calls the operation again when the failure was the
 * connection's. Whether that second call is safe depends on the operation, because a
 * connection lost while waiting for the answer may have lost the answer of a statement
 * that did commit:
 *
 * - reads, grants (insert-if-absent and LEAST), revocations (insert-if-absent) and
 *   set_remaining are idempotent: running them twice is running them once;
 * - a user or coupon insert that finds its key taken on the second try compares the row
 *   with its own and answers OK when they are equal (a salted password hash, or every
 *   column of the coupon including created_at, identifies our own earlier insert);
 * - a coupon delete that finds nothing on the second try answers OK: the coupon is gone,
 *   which is what the caller wanted.
 *
 * A call that already spent a whole timeout waiting (a hung server rather than a closed
 * connection) gives up without reconnecting, so no call blocks much longer than the
 * timeout.
 */
#include "client/mysql/mysql.h"

#include <assert.h>
#include <ctype.h>
#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "util/error.h"
#include "util/log.h"
#include "util/percent.h"

#define DEPLOYMENT_ID_NAME "deployment_id"

/* The widest values the schema holds, in bytes (utf8mb4 takes up to 4 bytes a character),
 * plus a NUL: rows written by hand with longer values are refused, not truncated. */
#define NAME_BYTES (64 * 4 + 1)
#define DESCRIPTION_BYTES (1024 * 4 + 1)
#define HASH_BYTES (255 * 4 + 1)
#define KIND_BYTES 16

/* Iterators read the tables in pages of this many rows by key, so memory stays bounded and a
 * reconnect resumes after the last row delivered. */
#define PAGE_ROWS 1000
#define PAGE_ROWS_TEXT "1000"

/* A batch of grants is written with multi-row INSERTs of these sizes, largest first (a
 * prepared statement has a fixed number of placeholders). Server-side bulk arrays would
 * work only against MariaDB. */
static const size_t grant_chunk_rows[] = {128, 16, 1};
#define GRANT_CHUNKS (sizeof(grant_chunk_rows) / sizeof(grant_chunk_rows[0]))
#define GRANT_COLUMNS 4

/* Deadlocks between persisters writing overlapping batches roll the whole transaction back;
 * running it again is safe. */
#define DEADLOCK_ATTEMPTS 3

enum {
    STMT_USER_INSERT,
    STMT_USER_FIND,
    STMT_COUPON_INSERT,
    STMT_COUPON_FIND,
    STMT_COUPON_DELETE,
    STMT_COUPON_SET_REMAINING,
    STMT_COUPON_LOWER,
    STMT_COUPONS_PAGE,
    STMT_CATALOG_COUNT,
    STMT_CATALOG_COUNT_SELLER,
    STMT_CATALOG_PAGE,
    STMT_CATALOG_PAGE_SELLER,
    STMT_GRANTS_INSERT_0, /* one per grant_chunk_rows entry */
    STMT_GRANTS_INSERT_LAST = STMT_GRANTS_INSERT_0 + GRANT_CHUNKS - 1,
    STMT_GRANTS_PAGE,
    STMT_REVOKE,
    STMT_REVOKED_PAGE,
    STMT_REVOKED_PRUNE,
    STMT_SETTING_INSERT,
    STMT_SETTING_FIND,
    STMT_COUNT
};

static const char *const statement_sql[STMT_COUNT] = {
    [STMT_USER_INSERT] = "INSERT INTO users (username, kind, password_hash, created_at) "
                         "VALUES (?, ?, ?, ?)",
    [STMT_USER_FIND] = "SELECT kind, password_hash, created_at, id FROM users WHERE username = ?",
    [STMT_COUPON_INSERT] = "INSERT INTO coupons (seller, name, amount, remaining, stock, "
                           "description, start_at, end_at, created_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [STMT_COUPON_FIND] = "SELECT id, amount, stock, description, start_at, end_at, created_at "
                         "FROM coupons WHERE seller = ? AND name = ?",
    [STMT_COUPON_DELETE] = "DELETE FROM coupons WHERE seller = ? AND name = ? AND NOT EXISTS "
                           "(SELECT 1 FROM grants WHERE grants.seller = ? AND grants.coupon = ?)",
    [STMT_COUPON_SET_REMAINING] = "UPDATE coupons SET remaining = ? WHERE seller = ? AND name = ?",
    [STMT_COUPON_LOWER] = "UPDATE coupons SET remaining = LEAST(remaining, ?) "
                          "WHERE seller = ? AND name = ?",
    [STMT_COUPONS_PAGE] = "SELECT id, seller, name, amount, remaining, stock, description, "
                          "start_at, end_at, created_at FROM coupons WHERE id > ? "
                          "ORDER BY id LIMIT " PAGE_ROWS_TEXT,
    /* The live sale view's pages (by the seller_name key when filtered by seller). */
    [STMT_CATALOG_COUNT] = "SELECT COUNT(*) FROM coupons",
    [STMT_CATALOG_COUNT_SELLER] = "SELECT COUNT(*) FROM coupons WHERE seller = ?",
    [STMT_CATALOG_PAGE] = "SELECT id, seller, name, amount FROM coupons "
                          "ORDER BY id LIMIT ? OFFSET ?",
    [STMT_CATALOG_PAGE_SELLER] = "SELECT id, seller, name, amount FROM coupons WHERE seller = ? "
                                 "ORDER BY id LIMIT ? OFFSET ?",
    /* STMT_GRANTS_INSERT_*: built by grants_insert_sql() */
    [STMT_GRANTS_PAGE] = "SELECT id, customer, seller, coupon, granted_at FROM grants "
                         "WHERE id > ? ORDER BY id LIMIT " PAGE_ROWS_TEXT,
    /* A token revoked twice keeps the later expiry. */
    [STMT_REVOKE] = "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?) "
                    "ON DUPLICATE KEY UPDATE expires_at = GREATEST(expires_at, ?)",
    [STMT_REVOKED_PAGE] = "SELECT jti, expires_at FROM revoked_tokens "
                          "WHERE expires_at > ? AND jti > ? ORDER BY jti LIMIT " PAGE_ROWS_TEXT,
    [STMT_REVOKED_PRUNE] = "DELETE FROM revoked_tokens WHERE expires_at < ?",
    /* The first instance to start makes the row; every later one (or one racing it) keeps
     * it, and all read back the same value. */
    [STMT_SETTING_INSERT] = "INSERT IGNORE INTO settings (name, value) VALUES (?, ?)",
    [STMT_SETTING_FIND] = "SELECT value FROM settings WHERE name = ?",
};

/* The tables of API.md "Storage", with the meaning of the SQLite schema in journal.c.
 * VARCHAR(n) counts characters, so n characters hold any n-byte UTF-8 string. Each gets
 * InnoDB, utf8mb4 and binary_collation() appended. */
static const char *const schema_sql[] = {
    "CREATE TABLE IF NOT EXISTS users ("
    " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " username VARCHAR(64) NOT NULL,"
    " kind VARCHAR(16) NOT NULL CHECK (kind IN ('customer', 'saler')),"
    " password_hash VARCHAR(255) NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " UNIQUE KEY username (username)"
    ")",
    "CREATE TABLE IF NOT EXISTS coupons ("
    " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " seller VARCHAR(64) NOT NULL,"
    " name VARCHAR(64) NOT NULL,"
    " amount BIGINT NOT NULL,"
    " remaining BIGINT NOT NULL,"
    " stock BIGINT NOT NULL,"
    " description VARCHAR(1024) NOT NULL,"
    " start_at BIGINT NULL,"
    " end_at BIGINT NULL,"
    " created_at BIGINT NOT NULL,"
    " UNIQUE KEY seller_name (seller, name)"
    ")",
    /* API.md's unique key (customer, seller, coupon), with the coupon's columns first: the
     * same constraint, and it also serves counting a coupon's grants, so no second index
     * is needed (one index insertion less per grant: about 5.4 against ... us) and one
     * coupon's rows are neighbours, as in the embedded deployment's table. */
    "CREATE TABLE IF NOT EXISTS grants ("
    " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " customer VARCHAR(64) NOT NULL,"
    " seller VARCHAR(64) NOT NULL,"
    " coupon VARCHAR(64) NOT NULL,"
    " granted_at BIGINT NOT NULL,"
    " UNIQUE KEY seller_coupon_customer (seller, coupon, customer)"
    ")",
    "CREATE TABLE IF NOT EXISTS revoked_tokens ("
    " jti VARCHAR(64) NOT NULL PRIMARY KEY,"
    " expires_at BIGINT NOT NULL"
    ")",
    /* What the database says about itself, one row a name: 'deployment_id'. */
    "CREATE TABLE IF NOT EXISTS settings ("
    " name VARCHAR(64) NOT NULL PRIMARY KEY,"
    " value VARCHAR(255) NOT NULL"
    ")",
};

struct sk_mysql {
    MYSQL *mysql; /* NULL while disconnected: the next call connects */
    sk_mysql_config_t config;
    unsigned timeout_ms;
    MYSQL_STMT *statements[STMT_COUNT];
    char *grants_insert_sql[GRANT_CHUNKS];
    MYSQL_BIND *grant_params; /* GRANT_COLUMNS * grant_chunk_rows[0] */
    const sk_mysql_grant_t **by_coupon;
    size_t by_coupon_capacity;
    unsigned last_code;    /* of the last failure */
    int connection_failed; /* the last failure broke the connection */
    int retrying;          /* run() is calling the operation a second time */
    char error[512];
};

/* ---- errors ---------------------------------------------------------------------------- */

static int is_connection_error(unsigned code)
{
    switch (code) {
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case CR_SERVER_LOST_EXTENDED:
    case CR_COMMANDS_OUT_OF_SYNC:
    case ER_CONNECTION_KILLED:
    case ER_SERVER_SHUTDOWN:
    case ER_UNKNOWN_STMT_HANDLER: /* the server forgot our statements: start afresh */
        return 1;
    default:
        return 0;
    }
}

static void set_error(sk_mysql_t *conn, const char *what, unsigned code, const char *message)
{
    conn->last_code = code;
    conn->connection_failed = is_connection_error(code);
    snprintf(conn->error, sizeof(conn->error), "%s: %s (%u)", what, message, code);
}

static void set_mysql_error(sk_mysql_t *conn, const char *what)
{
    set_error(conn, what, mysql_errno(conn->mysql), mysql_error(conn->mysql));
}

static void set_stmt_error(sk_mysql_t *conn, MYSQL_STMT *stmt, const char *what)
{
    set_error(conn, what, mysql_stmt_errno(stmt), mysql_stmt_error(stmt));
}

/* ---- URL --------------------------------------------------------------------------------- */

/* Percent-decodes [begin, end) into out (NUL-terminated). Returns 0, or -1 when the
 * encoding is broken, the result holds a NUL or it does not fit. */
static int decode_component(const char *begin, const char *end, char *out, size_t out_size)
{
    return sk_percent_decode_cstring(begin, (size_t)(end - begin), out, out_size) < 0 ? -1 : 0;
}

static int parse_fail(sk_mysql_config_t *out, char *err, size_t errlen, const char *why)
{
    memset(out, 0, sizeof(*out));
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "bad MySQL URL (expected mysql://user[:password]@host[:port]/db): %s",
                 why);
    return SK_EINVAL;
}

int sk_mysql_config_parse(const char *url, sk_mysql_config_t *out, char *err, size_t errlen)
{
    static const char scheme[] = "mysql://";
    memset(out, 0, sizeof(*out));
    if (url == NULL || strncasecmp(url, scheme, sizeof(scheme) - 1) != 0)
        return parse_fail(out, err, errlen, "it does not start with mysql://");
    for (const char *p = url; *p != '\0'; ++p)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return parse_fail(out, err, errlen, "it holds a space or a control character");

    const char *authority = url + sizeof(scheme) - 1;
    const char *slash = strchr(authority, '/');
    if (slash == NULL)
        return parse_fail(out, err, errlen, "the database is missing");
    /* The last '@' of the authority ends the user information, so an unencoded '@' in the
     * password still parses; an unencoded '/' cannot. */
    const char *at = NULL;
    for (const char *p = authority; p < slash; ++p)
        if (*p == '@')
            at = p;
    if (at == NULL)
        return parse_fail(out, err, errlen, "the user is missing");
    const char *colon = memchr(authority, ':', (size_t)(at - authority));
    const char *user_end = colon != NULL ? colon : at;
    if (user_end == authority)
        return parse_fail(out, err, errlen, "the user is empty");
    if (decode_component(authority, user_end, out->user, sizeof(out->user)) != 0)
        return parse_fail(out, err, errlen, "the user is badly encoded or too long");
    if (colon != NULL && decode_component(colon + 1, at, out->password, sizeof(out->password)) != 0)
        return parse_fail(out, err, errlen, "the password is badly encoded or too long");

    const char *host = at + 1, *host_end;
    const char *after_host;
    if (*host == '[') {
        host_end = memchr(host, ']', (size_t)(slash - host));
        if (host_end == NULL)
            return parse_fail(out, err, errlen, "an IPv6 address lacks its ']'");
        ++host;
        after_host = host_end + 1;
        for (const char *p = host; p < host_end; ++p)
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                return parse_fail(out, err, errlen, "the IPv6 address is malformed");
    } else {
        host_end = memchr(host, ':', (size_t)(slash - host));
        if (host_end == NULL)
            host_end = slash;
        after_host = host_end;
        for (const char *p = host; p < host_end; ++p)
            if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
                return parse_fail(out, err, errlen, "the host name holds a forbidden character");
    }
    if (host_end == host || (size_t)(host_end - host) >= sizeof(out->host))
        return parse_fail(out, err, errlen, "the host is empty or too long");
    memcpy(out->host, host, (size_t)(host_end - host));

    out->port = 3306;
    if (after_host < slash) {
        if (*after_host != ':' || slash - after_host < 2 || slash - after_host > 6)
            return parse_fail(out, err, errlen, "the port is malformed");
        long port = 0;
        for (const char *p = after_host + 1; p < slash; ++p) {
            if (!isdigit((unsigned char)*p))
                return parse_fail(out, err, errlen, "the port is not a number");
            port = port * 10 + (*p - '0');
        }
        if (port < 1 || port > 65535)
            return parse_fail(out, err, errlen, "the port is out of range");
        out->port = (int)port;
    }

    const char *database = slash + 1;
    const char *database_end = database + strlen(database);
    if (database == database_end)
        return parse_fail(out, err, errlen, "the database is empty");
    if (strpbrk(database, "/?#") != NULL)
        return parse_fail(out, err, errlen,
                          "options and paths after the database are not supported");
    if (decode_component(database, database_end, out->database, sizeof(out->database)) != 0)
        return parse_fail(out, err, errlen, "the database is badly encoded or too long");
    return 0;
}

/* ---- connection ---------------------------------------------------------------------------- */

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_status;

/* mysql_init() initialises the library on first use, which is not thread-safe. */
static void library_init(void)
{
    library_status = mysql_library_init(0, NULL, NULL);
}

static void close_statements(sk_mysql_t *conn)
{
    for (int i = 0; i != STMT_COUNT; ++i) {
        if (conn->statements[i] != NULL)
            mysql_stmt_close(conn->statements[i]);
        conn->statements[i] = NULL;
    }
}

static void disconnect(sk_mysql_t *conn)
{
    close_statements(conn);
    if (conn->mysql != NULL)
        mysql_close(conn->mysql);
    conn->mysql = NULL;
}

/* Opens conn->mysql. Returns 0, or -1 with conn->error set. */
static int open_connection(sk_mysql_t *conn)
{
    assert(conn->mysql == NULL);
    if (pthread_once(&library_once, library_init) != 0 || library_status != 0) {
        set_error(conn, "mysql_library_init", 0, "failed");
        return -1;
    }
    MYSQL *mysql = mysql_init(NULL);
    if (mysql == NULL) {
        set_error(conn, "mysql_init", 0, "out of memory");
        return -1;
    }
    unsigned timeout_s = (conn->timeout_ms + 999) / 1000;
    if (timeout_s == 0)
        timeout_s = 1;
    unsigned protocol = MYSQL_PROTOCOL_TCP; /* "localhost" would otherwise mean the socket */
    my_bool reconnect = 0;
    if (mysql_options(mysql, MYSQL_OPT_CONNECT_TIMEOUT, &timeout_s) != 0 ||
        mysql_options(mysql, MYSQL_OPT_READ_TIMEOUT, &timeout_s) != 0 ||
        mysql_options(mysql, MYSQL_OPT_WRITE_TIMEOUT, &timeout_s) != 0 ||
        mysql_options(mysql, MYSQL_SET_CHARSET_NAME, "utf8mb4") != 0 ||
        mysql_options(mysql, MYSQL_OPT_PROTOCOL, &protocol) != 0 ||
        mysql_options(mysql, MYSQL_OPT_RECONNECT, &reconnect) != 0 ||
        /* Byte-wise comparisons also for literals, and errors rather than silent truncation
         * whatever the server's defaults. */
        mysql_options(mysql, MYSQL_INIT_COMMAND, "SET NAMES utf8mb4 COLLATE utf8mb4_bin") != 0 ||
        mysql_options(mysql, MYSQL_INIT_COMMAND,
                      "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'") != 0) {
        set_error(conn, "mysql_options", mysql_errno(mysql), mysql_error(mysql));
        mysql_close(mysql);
        return -1;
    }
    const char *password = conn->config.password[0] != '\0' ? conn->config.password : NULL;
    if (mysql_real_connect(mysql, conn->config.host, conn->config.user, password,
                           conn->config.database, (unsigned)conn->config.port, NULL, 0) == NULL) {
        set_error(conn, "mysql_real_connect", mysql_errno(mysql), mysql_error(mysql));
        conn->connection_failed = 1;
        mysql_close(mysql);
        return -1;
    }
    conn->mysql = mysql;
    return 0;
}

static char *grants_insert_sql(size_t rows)
{
    static const char head[] = "INSERT INTO grants (customer, seller, coupon, granted_at) VALUES ";
    static const char row[] = "(?, ?, ?, ?)";
    /* A duplicate changes nothing, so it counts 0 affected rows and a new row counts 1. */
    static const char tail[] = " ON DUPLICATE KEY UPDATE id = id";
    size_t size = sizeof(head) + rows * (sizeof(row) + 1) + sizeof(tail);
    char *sql = malloc(size);
    if (sql == NULL)
        return NULL;
    char *p = sql;
    memcpy(p, head, sizeof(head) - 1);
    p += sizeof(head) - 1;
    for (size_t i = 0; i != rows; ++i) {
        if (i != 0)
            *p++ = ',';
        memcpy(p, row, sizeof(row) - 1);
        p += sizeof(row) - 1;
    }
    memcpy(p, tail, sizeof(tail));
    return sql;
}

sk_mysql_t *sk_mysql_connect(const sk_mysql_config_t *config, unsigned timeout_ms, char *err,
                             size_t errlen)
{
    sk_mysql_t *conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        snprintf(err, errlen, "calloc failed");
        return NULL;
    }
    conn->config = *config;
    conn->timeout_ms = timeout_ms;
    for (size_t i = 0; i != GRANT_CHUNKS; ++i) {
        conn->grants_insert_sql[i] = grants_insert_sql(grant_chunk_rows[i]);
        if (conn->grants_insert_sql[i] == NULL) {
            snprintf(err, errlen, "malloc failed");
            goto fail;
        }
    }
    conn->grant_params = calloc(GRANT_COLUMNS * grant_chunk_rows[0], sizeof(MYSQL_BIND));
    if (conn->grant_params == NULL) {
        snprintf(err, errlen, "calloc failed");
        goto fail;
    }
    if (open_connection(conn) != 0) {
        snprintf(err, errlen, "%s@%s:%d/%s: %s", conn->config.user, conn->config.host,
                 conn->config.port, conn->config.database, conn->error);
        goto fail;
    }
    return conn;

fail:
    sk_mysql_close(conn);
    return NULL;
}

void sk_mysql_close(sk_mysql_t *conn)
{
    if (conn == NULL)
        return;
    disconnect(conn);
    for (size_t i = 0; i != GRANT_CHUNKS; ++i)
        free(conn->grants_insert_sql[i]);
    free(conn->grant_params);
    free(conn->by_coupon);
    memset(conn->config.password, 0, sizeof(conn->config.password));
    free(conn);
}

static int64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

typedef sk_mysql_result_t (*operation_fn)(sk_mysql_t *conn, void *args);

/* Runs `operation`, connecting first if needed; when it fails because the connection broke,
 * reconnects and runs it once more (see the file comment for why each operation may). */
static sk_mysql_result_t run(sk_mysql_t *conn, operation_fn operation, void *args)
{
    int64_t start = monotonic_ms();
    int reconnected = 0;
    if (conn->mysql == NULL) {
        if (open_connection(conn) != 0)
            return SK_MYSQL_UNAVAILABLE;
        reconnected = 1;
    }
    conn->connection_failed = 0;
    sk_mysql_result_t result = operation(conn, args);
    if (result != SK_MYSQL_UNAVAILABLE || !conn->connection_failed)
        return result;
    disconnect(conn);
    if (reconnected || monotonic_ms() - start >= (int64_t)conn->timeout_ms)
        return result;
    sk_log(SK_LOG_WARN, "mysql", "connection lost (%s), reconnecting", conn->error);
    if (open_connection(conn) != 0)
        return SK_MYSQL_UNAVAILABLE;
    conn->retrying = 1;
    conn->connection_failed = 0;
    result = operation(conn, args);
    conn->retrying = 0;
    if (result == SK_MYSQL_UNAVAILABLE && conn->connection_failed)
        disconnect(conn);
    return result;
}

/* ---- statements ------------------------------------------------------------------------- */

static MYSQL_STMT *statement(sk_mysql_t *conn, int id)
{
    if (conn->statements[id] != NULL)
        return conn->statements[id];
    const char *sql = id >= STMT_GRANTS_INSERT_0 && id <= STMT_GRANTS_INSERT_LAST
                          ? conn->grants_insert_sql[id - STMT_GRANTS_INSERT_0]
                          : statement_sql[id];
    MYSQL_STMT *stmt = mysql_stmt_init(conn->mysql);
    if (stmt == NULL) {
        set_mysql_error(conn, "mysql_stmt_init");
        return NULL;
    }
    if (mysql_stmt_prepare(stmt, sql, (unsigned long)strlen(sql)) != 0) {
        set_stmt_error(conn, stmt, "mysql_stmt_prepare");
        mysql_stmt_close(stmt);
        return NULL;
    }
    conn->statements[id] = stmt;
    return stmt;
}

static void bind_text(MYSQL_BIND *bind, const char *text, size_t len)
{
    memset(bind, 0, sizeof(*bind));
    bind->buffer_type = MYSQL_TYPE_STRING;
    /* For parameters the library reads buffer_length bytes when length is NULL. */
    bind->buffer = (void *)(text != NULL ? text : "");
    bind->buffer_length = text != NULL ? (unsigned long)len : 0;
}

static void bind_int64(MYSQL_BIND *bind, const int64_t *value)
{
    memset(bind, 0, sizeof(*bind));
    bind->buffer_type = MYSQL_TYPE_LONGLONG;
    bind->buffer = (void *)value;
}

static void bind_optional_int64(MYSQL_BIND *bind, const int64_t *value, int present)
{
    bind_int64(bind, value);
    if (!present)
        bind->buffer_type = MYSQL_TYPE_NULL;
}

/* A result column read into buffer (capacity bytes; the text gets a NUL). */
typedef struct text_column {
    char *buffer;
    size_t capacity;
    unsigned long length;
    my_bool is_null;
} text_column_t;

typedef struct int_column {
    int64_t value;
    my_bool is_null;
} int_column_t;

static void result_text(MYSQL_BIND *bind, text_column_t *column)
{
    memset(bind, 0, sizeof(*bind));
    bind->buffer_type = MYSQL_TYPE_STRING;
    bind->buffer = column->buffer;
    bind->buffer_length = (unsigned long)column->capacity;
    bind->length = &column->length;
    bind->is_null = &column->is_null;
}

static void result_int64(MYSQL_BIND *bind, int_column_t *column)
{
    memset(bind, 0, sizeof(*bind));
    bind->buffer_type = MYSQL_TYPE_LONGLONG;
    bind->buffer = &column->value;
    bind->is_null = &column->is_null;
}

/* NUL-terminates a fetched text; -1 when it did not fit. */
static int finish_text(text_column_t *column)
{
    if (column->is_null)
        column->length = 0;
    if (column->length >= column->capacity)
        return -1;
    column->buffer[column->length] = '\0';
    return 0;
}

/* Binds `params` (may be NULL) and executes statement `id`; returns it, or NULL with the
 * error recorded. */
static MYSQL_STMT *execute(sk_mysql_t *conn, int id, MYSQL_BIND *params, const char *what)
{
    MYSQL_STMT *stmt = statement(conn, id);
    if (stmt == NULL)
        return NULL;
    if ((params != NULL && mysql_stmt_bind_param(stmt, params) != 0) ||
        mysql_stmt_execute(stmt) != 0) {
        set_stmt_error(conn, stmt, what);
        return NULL;
    }
    return stmt;
}

/* Buffers the whole result of an executed SELECT and binds its columns. */
static int store_result(sk_mysql_t *conn, MYSQL_STMT *stmt, MYSQL_BIND *columns, const char *what)
{
    if (mysql_stmt_bind_result(stmt, columns) != 0 || mysql_stmt_store_result(stmt) != 0) {
        set_stmt_error(conn, stmt, what);
        mysql_stmt_free_result(stmt);
        return -1;
    }
    return 0;
}

/* Fetches the next row: 1 for a row, 0 at the end, -1 on failure (the result is freed at
 * the end and on failure). */
static int fetch_row(sk_mysql_t *conn, MYSQL_STMT *stmt, const char *what)
{
    int status = mysql_stmt_fetch(stmt);
    if (status == 0 || status == MYSQL_DATA_TRUNCATED)
        return 1; /* the caller checks each length against its buffer */
    if (status == MYSQL_NO_DATA) {
        mysql_stmt_free_result(stmt);
        return 0;
    }
    set_stmt_error(conn, stmt, what);
    mysql_stmt_free_result(stmt);
    return -1;
}

static sk_mysql_result_t oversized_row(sk_mysql_t *conn, MYSQL_STMT *stmt, const char *what)
{
    mysql_stmt_free_result(stmt);
    set_error(conn, what, 0, "a stored value is longer than the schema allows");
    return SK_MYSQL_UNAVAILABLE;
}

/* Runs constant SQL (never data). */
static int query(sk_mysql_t *conn, const char *sql, const char *what)
{
    if (mysql_real_query(conn->mysql, sql, (unsigned long)strlen(sql)) != 0) {
        set_mysql_error(conn, what);
        return -1;
    }
    return 0;
}

/*
 * One table read in pages of PAGE_ROWS rows by key. The caller's args embed this first;
 * `params` and `columns` stay bound to the args' buffers. bind_params runs before each
 * page (the key to resume after may have changed); deliver runs on each fetched row and
 * returns 0 to go on, 1 when the callback asked to stop, -1 when a value did not fit.
 */
typedef struct page_reader page_reader_t;
struct page_reader {
    int statement;
    const char *what;
    MYSQL_BIND *params, *columns;
    void (*bind_params)(page_reader_t *reader);
    int (*deliver)(page_reader_t *reader);
};

static sk_mysql_result_t read_pages(sk_mysql_t *conn, page_reader_t *reader)
{
    for (;;) {
        reader->bind_params(reader);
        MYSQL_STMT *stmt = execute(conn, reader->statement, reader->params, reader->what);
        if (stmt == NULL)
            return SK_MYSQL_UNAVAILABLE;
        if (store_result(conn, stmt, reader->columns, reader->what) != 0)
            return SK_MYSQL_UNAVAILABLE;
        size_t rows = 0;
        int status;
        while ((status = fetch_row(conn, stmt, reader->what)) == 1) {
            ++rows;
            int delivered = reader->deliver(reader);
            if (delivered < 0)
                return oversized_row(conn, stmt, reader->what);
            if (delivered > 0) {
                mysql_stmt_free_result(stmt);
                return SK_MYSQL_OK;
            }
        }
        if (status < 0)
            return SK_MYSQL_UNAVAILABLE;
        if (rows < PAGE_ROWS)
            return SK_MYSQL_OK;
    }
}

/* ---- schema, ping ---------------------------------------------------------------------- */

/* A binary collation, so that names compare byte for byte ('Bob' and 'bob' are two users),
 * and one without PAD SPACE where the server has it ('Bob ' is not 'Bob' either):
 * utf8mb4_bin pads on both MariaDB and MySQL. */
static const char *binary_collation(sk_mysql_t *conn)
{
    const char *server = mysql_get_server_info(conn->mysql);
    if (server != NULL && strstr(server, "MariaDB") != NULL)
        return "utf8mb4_nopad_bin"; /* MariaDB 10.2.2 and later */
    if (mysql_get_server_version(conn->mysql) >= 80017)
        return "utf8mb4_0900_bin";
    sk_log(SK_LOG_WARN, "mysql",
           "server %s has no NO PAD binary collation: trailing spaces are ignored in names",
           server != NULL ? server : "?");
    return "utf8mb4_bin";
}

static sk_mysql_result_t ensure_schema_once(sk_mysql_t *conn, void *args)
{
    (void)args;
    const char *collation = binary_collation(conn);
    for (size_t i = 0; i != sizeof(schema_sql) / sizeof(schema_sql[0]); ++i) {
        char sql[1024];
        int length =
            snprintf(sql, sizeof(sql), "%s ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=%s",
                     schema_sql[i], collation);
        assert(length > 0 && (size_t)length < sizeof(sql));
        if (query(conn, sql, "CREATE TABLE") != 0)
            return SK_MYSQL_UNAVAILABLE;
    }
    /* A database without a deployment id (new, or from before ids) gets one now. */
    unsigned char random_id[SK_MYSQL_DEPLOYMENT_ID_LEN / 2];
    char fresh[SK_MYSQL_DEPLOYMENT_ID_LEN + 1];
    randombytes_buf(random_id, sizeof(random_id));
    sodium_bin2hex(fresh, sizeof(fresh), random_id, sizeof(random_id));
    MYSQL_BIND params[2];
    bind_text(&params[0], DEPLOYMENT_ID_NAME, strlen(DEPLOYMENT_ID_NAME));
    bind_text(&params[1], fresh, strlen(fresh));
    return execute(conn, STMT_SETTING_INSERT, params, "INSERT settings") != NULL
               ? SK_MYSQL_OK
               : SK_MYSQL_UNAVAILABLE;
}

sk_mysql_result_t sk_mysql_ensure_schema(sk_mysql_t *conn)
{
    return run(conn, ensure_schema_once, NULL);
}

static sk_mysql_result_t ping_once(sk_mysql_t *conn, void *args)
{
    (void)args;
    if (mysql_ping(conn->mysql) != 0) {
        set_mysql_error(conn, "mysql_ping");
        return SK_MYSQL_UNAVAILABLE;
    }
    return SK_MYSQL_OK;
}

int sk_mysql_ping(sk_mysql_t *conn)
{
    return run(conn, ping_once, NULL) == SK_MYSQL_OK;
}

/* ---- users ------------------------------------------------------------------------------- */

struct user_args {
    const char *username;
    size_t username_len;
    int is_seller;
    const char *password_hash;
    int64_t created_at;
    /* find: */
    int *found_is_seller;
    char *found_hash;
    size_t found_hash_size;
    int64_t found_created_at;
    int64_t found_id;
};

static sk_mysql_result_t user_find_once(sk_mysql_t *conn, void *data)
{
    struct user_args *args = data;
    MYSQL_BIND params[1], columns[4];
    char kind[KIND_BYTES], hash[HASH_BYTES];
    text_column_t kind_column = {kind, sizeof(kind), 0, 0};
    text_column_t hash_column = {hash, sizeof(hash), 0, 0};
    int_column_t created_column = {0, 0}, id_column = {0, 0};
    bind_text(&params[0], args->username, args->username_len);
    MYSQL_STMT *stmt = execute(conn, STMT_USER_FIND, params, "SELECT users");
    if (stmt == NULL)
        return SK_MYSQL_UNAVAILABLE;
    result_text(&columns[0], &kind_column);
    result_text(&columns[1], &hash_column);
    result_int64(&columns[2], &created_column);
    result_int64(&columns[3], &id_column);
    if (store_result(conn, stmt, columns, "SELECT users") != 0)
        return SK_MYSQL_UNAVAILABLE;
    int status = fetch_row(conn, stmt, "SELECT users");
    if (status <= 0)
        return status == 0 ? SK_MYSQL_NOT_FOUND : SK_MYSQL_UNAVAILABLE;
    if (finish_text(&kind_column) != 0 || finish_text(&hash_column) != 0 ||
        hash_column.length >= args->found_hash_size)
        return oversized_row(conn, stmt, "SELECT users");
    mysql_stmt_free_result(stmt);
    *args->found_is_seller = strcmp(kind, "saler") == 0;
    memcpy(args->found_hash, hash, hash_column.length + 1);
    args->found_created_at = created_column.value;
    args->found_id = id_column.value;
    return SK_MYSQL_OK;
}

static sk_mysql_result_t user_insert_once(sk_mysql_t *conn, void *data)
{
    struct user_args *args = data;
    MYSQL_BIND params[4];
    const char *kind = args->is_seller ? "saler" : "customer";
    bind_text(&params[0], args->username, args->username_len);
    bind_text(&params[1], kind, strlen(kind));
    bind_text(&params[2], args->password_hash, strlen(args->password_hash));
    bind_int64(&params[3], &args->created_at);
    if (execute(conn, STMT_USER_INSERT, params, "INSERT users") != NULL)
        return SK_MYSQL_OK;
    if (conn->last_code != ER_DUP_ENTRY)
        return SK_MYSQL_UNAVAILABLE;
    if (!conn->retrying)
        return SK_MYSQL_DUPLICATE;

    /* The first try may have committed before the connection broke: the row is ours when
     * it holds our (salted, hence unique) hash. */
    char hash[HASH_BYTES];
    int is_seller = 0;
    struct user_args find = *args;
    find.found_is_seller = &is_seller;
    find.found_hash = hash;
    find.found_hash_size = sizeof(hash);
    sk_mysql_result_t found = user_find_once(conn, &find);
    if (found == SK_MYSQL_NOT_FOUND)
        return SK_MYSQL_DUPLICATE;
    if (found != SK_MYSQL_OK)
        return found;
    return is_seller == args->is_seller && strcmp(hash, args->password_hash) == 0 &&
                   find.found_created_at == args->created_at
               ? SK_MYSQL_OK
               : SK_MYSQL_DUPLICATE;
}

sk_mysql_result_t sk_mysql_user_insert(sk_mysql_t *conn, const char *username, size_t username_len,
                                       int is_seller, const char *password_hash, int64_t created_at)
{
    struct user_args args = {.username = username,
                             .username_len = username_len,
                             .is_seller = is_seller != 0,
                             .password_hash = password_hash,
                             .created_at = created_at};
    return run(conn, user_insert_once, &args);
}

sk_mysql_result_t sk_mysql_user_find(sk_mysql_t *conn, const char *username, size_t username_len,
                                     int *is_seller, char *password_hash, size_t hash_size,
                                     int64_t *id)
{
    struct user_args args = {.username = username,
                             .username_len = username_len,
                             .found_is_seller = is_seller,
                             .found_hash = password_hash,
                             .found_hash_size = hash_size};
    sk_mysql_result_t result = run(conn, user_find_once, &args);
    if (result == SK_MYSQL_OK && id != NULL)
        *id = args.found_id;
    return result;
}

/* ---- coupons ----------------------------------------------------------------------------- */

/* Reads the stored coupon (seller, name) and tells whether it equals *coupon in every column
 * an insert sets (remaining aside, which grabs may have lowered since): OK and coupon->id
 * filled when it does, DUPLICATE when it differs, NOT_FOUND when there is none. */
static sk_mysql_result_t coupon_find(sk_mysql_t *conn, sk_mysql_coupon_t *coupon)
{
    MYSQL_BIND params[2], columns[7];
    char description[DESCRIPTION_BYTES];
    text_column_t description_column = {description, sizeof(description), 0, 0};
    int_column_t id, amount, stock, start_at, end_at, created_at;
    bind_text(&params[0], coupon->seller, coupon->seller_len);
    bind_text(&params[1], coupon->name, coupon->name_len);
    MYSQL_STMT *stmt = execute(conn, STMT_COUPON_FIND, params, "SELECT coupons");
    if (stmt == NULL)
        return SK_MYSQL_UNAVAILABLE;
    result_int64(&columns[0], &id);
    result_int64(&columns[1], &amount);
    result_int64(&columns[2], &stock);
    result_text(&columns[3], &description_column);
    result_int64(&columns[4], &start_at);
    result_int64(&columns[5], &end_at);
    result_int64(&columns[6], &created_at);
    if (store_result(conn, stmt, columns, "SELECT coupons") != 0)
        return SK_MYSQL_UNAVAILABLE;
    int status = fetch_row(conn, stmt, "SELECT coupons");
    if (status <= 0)
        return status == 0 ? SK_MYSQL_NOT_FOUND : SK_MYSQL_UNAVAILABLE;
    if (finish_text(&description_column) != 0)
        return oversized_row(conn, stmt, "SELECT coupons");
    mysql_stmt_free_result(stmt);
    int same = amount.value == coupon->amount && stock.value == coupon->stock &&
               description_column.length == coupon->description_len &&
               memcmp(description, coupon->description ? coupon->description : "",
                      coupon->description_len) == 0 &&
               !start_at.is_null == !!coupon->has_start &&
               (!coupon->has_start || start_at.value == coupon->start_at) &&
               !end_at.is_null == !!coupon->has_end &&
               (!coupon->has_end || end_at.value == coupon->end_at) &&
               created_at.value == coupon->created_at;
    if (!same)
        return SK_MYSQL_DUPLICATE;
    coupon->id = id.value;
    return SK_MYSQL_OK;
}

static sk_mysql_result_t coupon_insert_once(sk_mysql_t *conn, void *data)
{
    sk_mysql_coupon_t *coupon = data;
    MYSQL_BIND params[9];
    bind_text(&params[0], coupon->seller, coupon->seller_len);
    bind_text(&params[1], coupon->name, coupon->name_len);
    bind_int64(&params[2], &coupon->amount);
    bind_int64(&params[3], &coupon->amount);
    bind_int64(&params[4], &coupon->stock);
    bind_text(&params[5], coupon->description, coupon->description_len);
    bind_optional_int64(&params[6], &coupon->start_at, coupon->has_start);
    bind_optional_int64(&params[7], &coupon->end_at, coupon->has_end);
    bind_int64(&params[8], &coupon->created_at);
    MYSQL_STMT *stmt = execute(conn, STMT_COUPON_INSERT, params, "INSERT coupons");
    if (stmt != NULL) {
        coupon->id = (int64_t)mysql_stmt_insert_id(stmt);
        coupon->remaining = coupon->amount;
        return SK_MYSQL_OK;
    }
    if (conn->last_code != ER_DUP_ENTRY)
        return SK_MYSQL_UNAVAILABLE;
    if (!conn->retrying)
        return SK_MYSQL_DUPLICATE;
    /* The first try may have committed before the connection broke. */
    sk_mysql_result_t ours = coupon_find(conn, coupon);
    if (ours == SK_MYSQL_OK)
        coupon->remaining = coupon->amount;
    return ours == SK_MYSQL_NOT_FOUND ? SK_MYSQL_DUPLICATE : ours;
}

sk_mysql_result_t sk_mysql_coupon_insert(sk_mysql_t *conn, sk_mysql_coupon_t *coupon)
{
    return run(conn, coupon_insert_once, coupon);
}

struct coupon_key_args {
    const char *seller, *name;
    size_t seller_len, name_len;
    int64_t remaining;
};

static sk_mysql_result_t coupon_delete_once(sk_mysql_t *conn, void *data)
{
    struct coupon_key_args *args = data;
    MYSQL_BIND params[4];
    bind_text(&params[0], args->seller, args->seller_len);
    bind_text(&params[1], args->name, args->name_len);
    bind_text(&params[2], args->seller, args->seller_len);
    bind_text(&params[3], args->name, args->name_len);
    MYSQL_STMT *stmt = execute(conn, STMT_COUPON_DELETE, params, "DELETE coupons");
    if (stmt == NULL)
        return SK_MYSQL_UNAVAILABLE;
    if (mysql_stmt_affected_rows(stmt) > 0)
        return SK_MYSQL_OK;
    if (!conn->retrying)
        return SK_MYSQL_NOT_FOUND;
    /* On a second try, a coupon that is gone was deleted by the first. */
    sk_mysql_coupon_t probe = {.seller = args->seller,
                               .seller_len = args->seller_len,
                               .name = args->name,
                               .name_len = args->name_len};
    sk_mysql_result_t found = coupon_find(conn, &probe);
    if (found == SK_MYSQL_NOT_FOUND)
        return SK_MYSQL_OK;
    return found == SK_MYSQL_UNAVAILABLE ? found : SK_MYSQL_NOT_FOUND;
}

sk_mysql_result_t sk_mysql_coupon_delete(sk_mysql_t *conn, const char *seller, size_t seller_len,
                                         const char *name, size_t name_len)
{
    struct coupon_key_args args = {seller, name, seller_len, name_len, 0};
    return run(conn, coupon_delete_once, &args);
}

static sk_mysql_result_t coupon_set_remaining_once(sk_mysql_t *conn, void *data)
{
    struct coupon_key_args *args = data;
    MYSQL_BIND params[3];
    bind_int64(&params[0], &args->remaining);
    bind_text(&params[1], args->seller, args->seller_len);
    bind_text(&params[2], args->name, args->name_len);
    if (execute(conn, STMT_COUPON_SET_REMAINING, params, "UPDATE coupons") == NULL)
        return SK_MYSQL_UNAVAILABLE;
    /* Affected rows count changed rows only: setting the value it already has is fine, so
     * ask whether the coupon exists through the info line instead. */
    const char *info = mysql_info(conn->mysql);
    unsigned long matched = 0;
    if (info != NULL && sscanf(info, "Rows matched: %lu", &matched) == 1)
        return matched > 0 ? SK_MYSQL_OK : SK_MYSQL_NOT_FOUND;
    return SK_MYSQL_OK;
}

sk_mysql_result_t sk_mysql_coupon_set_remaining(sk_mysql_t *conn, const char *seller,
                                                size_t seller_len, const char *name,
                                                size_t name_len, int64_t remaining)
{
    struct coupon_key_args args = {seller, name, seller_len, name_len, remaining};
    return run(conn, coupon_set_remaining_once, &args);
}

struct coupons_each_args {
    page_reader_t reader;
    int (*cb)(void *data, const sk_mysql_coupon_t *coupon);
    void *data;
    int64_t after_id; /* the last id delivered: a retry resumes after it */
    MYSQL_BIND params[1], columns[10];
    char seller[NAME_BYTES], name[NAME_BYTES], description[DESCRIPTION_BYTES];
    text_column_t seller_column, name_column, description_column;
    int_column_t id, amount, remaining, stock, start_at, end_at, created_at;
};

static void coupons_bind_params(page_reader_t *reader)
{
    struct coupons_each_args *args = (struct coupons_each_args *)reader;
    bind_int64(&args->params[0], &args->after_id);
}

static int coupons_deliver(page_reader_t *reader)
{
    struct coupons_each_args *args = (struct coupons_each_args *)reader;
    if (finish_text(&args->seller_column) != 0 || finish_text(&args->name_column) != 0 ||
        finish_text(&args->description_column) != 0)
        return -1;
    sk_mysql_coupon_t coupon = {
        .id = args->id.value,
        .seller = args->seller,
        .name = args->name,
        .description = args->description,
        .seller_len = args->seller_column.length,
        .name_len = args->name_column.length,
        .description_len = args->description_column.length,
        .amount = args->amount.value,
        .remaining = args->remaining.value,
        .stock = args->stock.value,
        .has_start = !args->start_at.is_null,
        .has_end = !args->end_at.is_null,
        .start_at = args->start_at.is_null ? 0 : args->start_at.value,
        .end_at = args->end_at.is_null ? 0 : args->end_at.value,
        .created_at = args->created_at.value,
    };
    args->after_id = args->id.value;
    return args->cb(args->data, &coupon) != 0;
}

static sk_mysql_result_t coupons_each_once(sk_mysql_t *conn, void *data)
{
    struct coupons_each_args *args = data;
    args->reader = (page_reader_t){STMT_COUPONS_PAGE, "SELECT coupons",    args->params,
                                   args->columns,     coupons_bind_params, coupons_deliver};
    args->seller_column = (text_column_t){args->seller, sizeof(args->seller), 0, 0};
    args->name_column = (text_column_t){args->name, sizeof(args->name), 0, 0};
    args->description_column = (text_column_t){args->description, sizeof(args->description), 0, 0};
    result_int64(&args->columns[0], &args->id);
    result_text(&args->columns[1], &args->seller_column);
    result_text(&args->columns[2], &args->name_column);
    result_int64(&args->columns[3], &args->amount);
    result_int64(&args->columns[4], &args->remaining);
    result_int64(&args->columns[5], &args->stock);
    result_text(&args->columns[6], &args->description_column);
    result_int64(&args->columns[7], &args->start_at);
    result_int64(&args->columns[8], &args->end_at);
    result_int64(&args->columns[9], &args->created_at);
    return read_pages(conn, &args->reader);
}

sk_mysql_result_t sk_mysql_coupons_each(sk_mysql_t *conn,
                                        int (*cb)(void *data, const sk_mysql_coupon_t *coupon),
                                        void *data)
{
    struct coupons_each_args args = {.cb = cb, .data = data};
    return run(conn, coupons_each_once, &args);
}

struct coupons_page_args {
    const char *seller;
    size_t seller_len;
    int64_t offset, limit;
    sk_mysql_catalog_row_t *rows;
    size_t count;
    int64_t total;
};

static sk_mysql_result_t coupons_page_once(sk_mysql_t *conn, void *data)
{
    struct coupons_page_args *args = data;
    int filtered = args->seller_len != 0;
    MYSQL_BIND params[3], columns[4];
    int_column_t total = {0, 0};
    args->count = 0;
    bind_text(&params[0], args->seller, args->seller_len);
    MYSQL_STMT *stmt = execute(conn, filtered ? STMT_CATALOG_COUNT_SELLER : STMT_CATALOG_COUNT,
                               filtered ? params : NULL, "SELECT COUNT coupons");
    if (stmt == NULL)
        return SK_MYSQL_UNAVAILABLE;
    result_int64(&columns[0], &total);
    if (store_result(conn, stmt, columns, "SELECT COUNT coupons") != 0)
        return SK_MYSQL_UNAVAILABLE;
    int status = fetch_row(conn, stmt, "SELECT COUNT coupons");
    if (status < 0)
        return SK_MYSQL_UNAVAILABLE;
    if (status > 0)
        mysql_stmt_free_result(stmt);
    args->total = total.value;
    if (args->offset >= args->total || args->limit <= 0)
        return SK_MYSQL_OK;

    bind_int64(&params[filtered], &args->limit);
    bind_int64(&params[filtered + 1], &args->offset);
    const char *what = "SELECT coupons page";
    stmt = execute(conn, filtered ? STMT_CATALOG_PAGE_SELLER : STMT_CATALOG_PAGE, params, what);
    if (stmt == NULL)
        return SK_MYSQL_UNAVAILABLE;
    char seller[SK_MYSQL_NAME_MAX + 1], name[SK_MYSQL_NAME_MAX + 1];
    text_column_t seller_column = {seller, sizeof(seller), 0, 0};
    text_column_t name_column = {name, sizeof(name), 0, 0};
    int_column_t id = {0, 0}, amount = {0, 0};
    result_int64(&columns[0], &id);
    result_text(&columns[1], &seller_column);
    result_text(&columns[2], &name_column);
    result_int64(&columns[3], &amount);
    if (store_result(conn, stmt, columns, what) != 0)
        return SK_MYSQL_UNAVAILABLE;
    while ((status = fetch_row(conn, stmt, what)) == 1) {
        if (finish_text(&seller_column) != 0 || finish_text(&name_column) != 0)
            return oversized_row(conn, stmt, what);
        if (args->count == (size_t)args->limit) /* the table grew meanwhile? never more */
            continue;
        sk_mysql_catalog_row_t *row = &args->rows[args->count++];
        row->id = id.value;
        row->amount = amount.value;
        memcpy(row->seller, seller, seller_column.length + 1);
        row->seller_len = seller_column.length;
        memcpy(row->name, name, name_column.length + 1);
        row->name_len = name_column.length;
    }
    return status < 0 ? SK_MYSQL_UNAVAILABLE : SK_MYSQL_OK;
}

sk_mysql_result_t sk_mysql_coupons_page(sk_mysql_t *conn, const char *seller, size_t seller_len,
                                        int64_t offset, int64_t limit, sk_mysql_catalog_row_t *rows,
                                        size_t *count, int64_t *total)
{
    struct coupons_page_args args = {
        .seller = seller, .seller_len = seller_len, .offset = offset, .limit = limit, .rows = rows};
    sk_mysql_result_t result = run(conn, coupons_page_once, &args);
    *count = result == SK_MYSQL_OK ? args.count : 0;
    *total = result == SK_MYSQL_OK ? args.total : 0;
    return result;
}

/* ---- grants ------------------------------------------------------------------------------ */

static int compare_text(const char *a, size_t a_len, const char *b, size_t b_len)
{
    int order = memcmp(a, b, a_len < b_len ? a_len : b_len);
    if (order != 0)
        return order;
    return (a_len > b_len) - (a_len < b_len);
}

static int compare_coupon(const void *a, const void *b)
{
    const sk_mysql_grant_t *x = *(const sk_mysql_grant_t *const *)a;
    const sk_mysql_grant_t *y = *(const sk_mysql_grant_t *const *)b;
    int order = compare_text(x->seller, x->seller_len, y->seller, y->seller_len);
    return order != 0 ? order : compare_text(x->coupon, x->coupon_len, y->coupon, y->coupon_len);
}

struct grants_apply_args {
    const sk_mysql_grant_t *grants;
    size_t count;
    size_t inserted;
};

/* Inserts grants[0..count) if absent, in chunks; adds the new rows to *inserted. */
static int insert_grants(sk_mysql_t *conn, const sk_mysql_grant_t *grants, size_t count,
                         size_t *inserted)
{
    size_t done = 0;
    while (done < count) {
        size_t chunk = 0;
        while (grant_chunk_rows[chunk] > count - done)
            ++chunk;
        size_t rows = grant_chunk_rows[chunk];
        MYSQL_BIND *params = conn->grant_params;
        for (size_t i = 0; i != rows; ++i) {
            const sk_mysql_grant_t *grant = &grants[done + i];
            bind_text(&params[GRANT_COLUMNS * i + 0], grant->customer, grant->customer_len);
            bind_text(&params[GRANT_COLUMNS * i + 1], grant->seller, grant->seller_len);
            bind_text(&params[GRANT_COLUMNS * i + 2], grant->coupon, grant->coupon_len);
            bind_int64(&params[GRANT_COLUMNS * i + 3], &grant->granted_at);
        }
        MYSQL_STMT *stmt =
            execute(conn, STMT_GRANTS_INSERT_0 + (int)chunk, params, "INSERT grants");
        if (stmt == NULL)
            return -1;
        *inserted += (size_t)mysql_stmt_affected_rows(stmt);
        done += rows;
    }
    return 0;
}

/* Lowers each coupon of the batch to its smallest remaining; by_coupon is sorted, so
 * concurrent batches lock coupon rows in the same order. */
static int lower_remaining(sk_mysql_t *conn, size_t count)
{
    const sk_mysql_grant_t **by_coupon = conn->by_coupon;
    for (size_t first = 0; first < count;) {
        int64_t remaining = by_coupon[first]->remaining;
        size_t next = first + 1;
        while (next < count && compare_coupon(&by_coupon[first], &by_coupon[next]) == 0) {
            if (by_coupon[next]->remaining < remaining)
                remaining = by_coupon[next]->remaining;
            ++next;
        }
        MYSQL_BIND params[3];
        bind_int64(&params[0], &remaining);
        bind_text(&params[1], by_coupon[first]->seller, by_coupon[first]->seller_len);
        bind_text(&params[2], by_coupon[first]->coupon, by_coupon[first]->coupon_len);
        if (execute(conn, STMT_COUPON_LOWER, params, "UPDATE coupons") == NULL)
            return -1;
        first = next;
    }
    return 0;
}

static sk_mysql_result_t grants_apply_once(sk_mysql_t *conn, void *data)
{
    struct grants_apply_args *args = data;
    for (int attempt = 1;; ++attempt) {
        args->inserted = 0;
        if (query(conn, "START TRANSACTION", "START TRANSACTION") != 0)
            return SK_MYSQL_UNAVAILABLE;
        if (insert_grants(conn, args->grants, args->count, &args->inserted) == 0 &&
            lower_remaining(conn, args->count) == 0) {
            if (mysql_commit(conn->mysql) == 0)
                return SK_MYSQL_OK;
            set_mysql_error(conn, "COMMIT");
        }
        if (conn->connection_failed)
            return SK_MYSQL_UNAVAILABLE; /* the server rolls back, run() may try again */
        unsigned code = conn->last_code;
        char error[sizeof(conn->error)];
        memcpy(error, conn->error, sizeof(error));
        if (mysql_rollback(conn->mysql) != 0) {
            set_mysql_error(conn, "ROLLBACK");
            return SK_MYSQL_UNAVAILABLE;
        }
        memcpy(conn->error, error, sizeof(error));
        conn->last_code = code;
        if ((code != ER_LOCK_DEADLOCK && code != ER_LOCK_WAIT_TIMEOUT) ||
            attempt == DEADLOCK_ATTEMPTS)
            return SK_MYSQL_UNAVAILABLE;
        sk_log(SK_LOG_INFO, "mysql", "grants batch of %zu: %s, trying again", args->count,
               conn->error);
    }
}

sk_mysql_result_t sk_mysql_grants_apply(sk_mysql_t *conn, const sk_mysql_grant_t *grants,
                                        size_t count, size_t *inserted)
{
    if (inserted != NULL)
        *inserted = 0;
    if (count == 0)
        return SK_MYSQL_OK;
    if (count > conn->by_coupon_capacity) {
        const sk_mysql_grant_t **by_coupon = realloc(conn->by_coupon, count * sizeof(*by_coupon));
        if (by_coupon == NULL) {
            set_error(conn, "grants batch", 0, "realloc failed");
            return SK_MYSQL_UNAVAILABLE;
        }
        conn->by_coupon = by_coupon;
        conn->by_coupon_capacity = count;
    }
    for (size_t i = 0; i != count; ++i)
        conn->by_coupon[i] = &grants[i];
    qsort(conn->by_coupon, count, sizeof(*conn->by_coupon), compare_coupon);

    /* A retry after a lost COMMIT finds every row present: *inserted then counts only what
     * the retry itself added. */
    struct grants_apply_args args = {grants, count, 0};
    sk_mysql_result_t result = run(conn, grants_apply_once, &args);
    if (result == SK_MYSQL_OK && inserted != NULL)
        *inserted = args.inserted;
    return result;
}

static sk_mysql_result_t grant_insert_once(sk_mysql_t *conn, void *data)
{
    size_t inserted = 0;
    return insert_grants(conn, data, 1, &inserted) == 0 ? SK_MYSQL_OK : SK_MYSQL_UNAVAILABLE;
}

sk_mysql_result_t sk_mysql_grant_insert(sk_mysql_t *conn, const sk_mysql_grant_t *grant)
{
    return run(conn, grant_insert_once, (void *)grant);
}

struct grants_each_args {
    page_reader_t reader;
    int (*cb)(void *data, const sk_mysql_grant_t *grant);
    void *data;
    int64_t after_id;
    MYSQL_BIND params[1], columns[5];
    char customer[NAME_BYTES], seller[NAME_BYTES], coupon[NAME_BYTES];
    text_column_t customer_column, seller_column, coupon_column;
    int_column_t id, granted_at;
};

static void grants_bind_params(page_reader_t *reader)
{
    struct grants_each_args *args = (struct grants_each_args *)reader;
    bind_int64(&args->params[0], &args->after_id);
}

static int grants_deliver(page_reader_t *reader)
{
    struct grants_each_args *args = (struct grants_each_args *)reader;
    if (finish_text(&args->customer_column) != 0 || finish_text(&args->seller_column) != 0 ||
        finish_text(&args->coupon_column) != 0)
        return -1;
    sk_mysql_grant_t grant = {
        .customer = args->customer,
        .seller = args->seller,
        .coupon = args->coupon,
        .customer_len = args->customer_column.length,
        .seller_len = args->seller_column.length,
        .coupon_len = args->coupon_column.length,
        .granted_at = args->granted_at.value,
    };
    args->after_id = args->id.value;
    return args->cb(args->data, &grant) != 0;
}

static sk_mysql_result_t grants_each_once(sk_mysql_t *conn, void *data)
{
    struct grants_each_args *args = data;
    args->reader = (page_reader_t){STMT_GRANTS_PAGE, "SELECT grants",    args->params,
                                   args->columns,    grants_bind_params, grants_deliver};
    args->customer_column = (text_column_t){args->customer, sizeof(args->customer), 0, 0};
    args->seller_column = (text_column_t){args->seller, sizeof(args->seller), 0, 0};
    args->coupon_column = (text_column_t){args->coupon, sizeof(args->coupon), 0, 0};
    result_int64(&args->columns[0], &args->id);
    result_text(&args->columns[1], &args->customer_column);
    result_text(&args->columns[2], &args->seller_column);
    result_text(&args->columns[3], &args->coupon_column);
    result_int64(&args->columns[4], &args->granted_at);
    return read_pages(conn, &args->reader);
}

sk_mysql_result_t sk_mysql_grants_each(sk_mysql_t *conn,
                                       int (*cb)(void *data, const sk_mysql_grant_t *grant),
                                       void *data)
{
    struct grants_each_args args = {.cb = cb, .data = data};
    return run(conn, grants_each_once, &args);
}

/* ---- revoked tokens ----------------------------------------------------------------------- */

struct revoke_args {
    const char *jti;
    int64_t expires_at;
};

static sk_mysql_result_t revoke_once(sk_mysql_t *conn, void *data)
{
    struct revoke_args *args = data;
    MYSQL_BIND params[3];
    bind_text(&params[0], args->jti, strlen(args->jti));
    bind_int64(&params[1], &args->expires_at);
    bind_int64(&params[2], &args->expires_at);
    return execute(conn, STMT_REVOKE, params, "INSERT revoked_tokens") != NULL
               ? SK_MYSQL_OK
               : SK_MYSQL_UNAVAILABLE;
}

sk_mysql_result_t sk_mysql_revoke(sk_mysql_t *conn, const char *jti, int64_t expires_at)
{
    struct revoke_args args = {jti, expires_at};
    return run(conn, revoke_once, &args);
}

struct revoked_each_args {
    page_reader_t reader;
    int64_t now;
    int (*cb)(void *data, const char *jti, int64_t expires_at);
    void *data;
    char after_jti[NAME_BYTES];
    size_t after_jti_len;
    MYSQL_BIND params[2], columns[2];
    char jti[NAME_BYTES];
    text_column_t jti_column;
    int_column_t expires_at;
};

static void revoked_bind_params(page_reader_t *reader)
{
    struct revoked_each_args *args = (struct revoked_each_args *)reader;
    bind_int64(&args->params[0], &args->now);
    bind_text(&args->params[1], args->after_jti, args->after_jti_len);
}

static int revoked_deliver(page_reader_t *reader)
{
    struct revoked_each_args *args = (struct revoked_each_args *)reader;
    if (finish_text(&args->jti_column) != 0)
        return -1;
    memcpy(args->after_jti, args->jti, args->jti_column.length + 1);
    args->after_jti_len = args->jti_column.length;
    return args->cb(args->data, args->jti, args->expires_at.value) != 0;
}

static sk_mysql_result_t revoked_each_once(sk_mysql_t *conn, void *data)
{
    struct revoked_each_args *args = data;
    args->reader = (page_reader_t){STMT_REVOKED_PAGE, "SELECT revoked_tokens", args->params,
                                   args->columns,     revoked_bind_params,     revoked_deliver};
    args->jti_column = (text_column_t){args->jti, sizeof(args->jti), 0, 0};
    result_text(&args->columns[0], &args->jti_column);
    result_int64(&args->columns[1], &args->expires_at);
    return read_pages(conn, &args->reader);
}

sk_mysql_result_t sk_mysql_revoked_each(sk_mysql_t *conn, int64_t now,
                                        int (*cb)(void *data, const char *jti, int64_t expires_at),
                                        void *data)
{
    struct revoked_each_args args = {.now = now, .cb = cb, .data = data};
    return run(conn, revoked_each_once, &args);
}

struct revoked_prune_args {
    int64_t cutoff;
    uint64_t deleted;
};

static sk_mysql_result_t revoked_prune_once(sk_mysql_t *conn, void *data)
{
    struct revoked_prune_args *args = data;
    MYSQL_BIND params[1];
    bind_int64(&params[0], &args->cutoff);
    MYSQL_STMT *stmt = execute(conn, STMT_REVOKED_PRUNE, params, "DELETE revoked_tokens");
    if (stmt == NULL)
        return SK_MYSQL_UNAVAILABLE;
    args->deleted = (uint64_t)mysql_stmt_affected_rows(stmt);
    return SK_MYSQL_OK;
}

sk_mysql_result_t sk_mysql_revoked_prune(sk_mysql_t *conn, int64_t cutoff, uint64_t *deleted)
{
    struct revoked_prune_args args = {cutoff, 0};
    sk_mysql_result_t result = run(conn, revoked_prune_once, &args);
    if (deleted != NULL)
        *deleted = result == SK_MYSQL_OK ? args.deleted : 0;
    return result;
}

/* ---- settings ---------------------------------------------------------------------------- */

struct deployment_id_args {
    char *out;
    size_t out_size;
};

static sk_mysql_result_t deployment_id_once(sk_mysql_t *conn, void *data)
{
    struct deployment_id_args *args = data;
    MYSQL_BIND params[1], columns[1];
    char value[NAME_BYTES];
    text_column_t value_column = {value, sizeof(value), 0, 0};
    bind_text(&params[0], DEPLOYMENT_ID_NAME, strlen(DEPLOYMENT_ID_NAME));
    MYSQL_STMT *stmt = execute(conn, STMT_SETTING_FIND, params, "SELECT settings");
    if (stmt == NULL)
        return SK_MYSQL_UNAVAILABLE;
    result_text(&columns[0], &value_column);
    if (store_result(conn, stmt, columns, "SELECT settings") != 0)
        return SK_MYSQL_UNAVAILABLE;
    int status = fetch_row(conn, stmt, "SELECT settings");
    if (status <= 0)
        return status == 0 ? SK_MYSQL_NOT_FOUND : SK_MYSQL_UNAVAILABLE;
    if (finish_text(&value_column) != 0 || value_column.length >= args->out_size)
        return oversized_row(conn, stmt, "SELECT settings");
    mysql_stmt_free_result(stmt);
    memcpy(args->out, value, value_column.length + 1);
    return SK_MYSQL_OK;
}

sk_mysql_result_t sk_mysql_deployment_id(sk_mysql_t *conn, char *out, size_t out_size)
{
    struct deployment_id_args args = {out, out_size};
    return run(conn, deployment_id_once, &args);
}

const char *sk_mysql_error(sk_mysql_t *conn)
{
    return conn->error;
}
