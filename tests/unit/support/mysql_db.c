/* A MariaDB database of the test's own (see mysql_db.h). */
#include "mysql_db.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <time.h>
#include <unistd.h>

#include "backends.h"

int sk_test_mysql_db_create(sk_test_mysql_db_t *db, const char *name)
{
    memset(db, 0, sizeof(*db));
    const char *url = sk_test_backend("SK_TEST_MYSQL_URL");
    if (url == NULL) {
        fprintf(stderr, "SK_TEST_MYSQL_URL is not set and no backends file names it: these "
                        "tests need a MariaDB (ctest starts one)\n");
        return -1;
    }
    char err[256];
    if (sk_mysql_config_parse(url, &db->config, err, sizeof(err)) != 0) {
        fprintf(stderr, "SK_TEST_MYSQL_URL: %s\n", err);
        return -1;
    }
    db->admin = mysql_init(NULL);
    if (db->admin == NULL)
        return -1;
    unsigned protocol = MYSQL_PROTOCOL_TCP;
    mysql_options(db->admin, MYSQL_OPT_PROTOCOL, &protocol);
    mysql_options(db->admin, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (mysql_real_connect(db->admin, db->config.host, db->config.user, db->config.password,
                           db->config.database, (unsigned)db->config.port, NULL, 0) == NULL) {
        fprintf(stderr, "cannot reach the test MariaDB: %s\n", mysql_error(db->admin));
        return -1;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    snprintf(db->database, sizeof(db->database), "sk_test_%s_%ld_%lld", name, (long)getpid(),
             (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    char sql[256];
    snprintf(sql, sizeof(sql), "CREATE DATABASE `%s` CHARACTER SET utf8mb4", db->database);
    if (mysql_query(db->admin, sql) == 0) {
        db->own_database = 1;
        snprintf(db->config.database, sizeof(db->config.database), "%s", db->database);
    } else {
        snprintf(db->database, sizeof(db->database), "%s", db->config.database);
    }
    if (mysql_select_db(db->admin, db->database) != 0) {
        fprintf(stderr, "USE %s: %s\n", db->database, mysql_error(db->admin));
        return -1;
    }
    sk_test_mysql_db_reset(db);
    return 0;
}

void sk_test_mysql_db_destroy(sk_test_mysql_db_t *db)
{
    if (db->admin != NULL) {
        if (db->own_database) {
            char sql[256];
            snprintf(sql, sizeof(sql), "DROP DATABASE `%s`", db->database);
            mysql_query(db->admin, sql);
        }
        mysql_close(db->admin);
        db->admin = NULL;
    }
}

void sk_test_mysql_db_reset(sk_test_mysql_db_t *db)
{
    sk_test_mysql_db_query(db, "DROP TABLE IF EXISTS grants, coupons, users, revoked_tokens, "
                               "settings");
}

void sk_test_mysql_db_query(sk_test_mysql_db_t *db, const char *sql)
{
    if (mysql_query(db->admin, sql) != 0)
        fail_msg("%s: %s", sql, mysql_error(db->admin));
    MYSQL_RES *result = mysql_store_result(db->admin);
    if (result != NULL)
        mysql_free_result(result);
}

long long sk_test_mysql_db_number(sk_test_mysql_db_t *db, const char *sql)
{
    if (mysql_query(db->admin, sql) != 0)
        fail_msg("%s: %s", sql, mysql_error(db->admin));
    MYSQL_RES *result = mysql_store_result(db->admin);
    assert_non_null(result);
    MYSQL_ROW row = mysql_fetch_row(result);
    long long value = row != NULL && row[0] != NULL ? atoll(row[0]) : -1;
    mysql_free_result(result);
    return value;
}
