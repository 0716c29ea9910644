/*
 * A MariaDB database of one test program's own on the backends' server (backends.h),
 * created at the start and dropped at the end, so that parallel and earlier runs never
 * meet; when the test user may not create databases, the backend's database with the
 * service's tables dropped. A raw Connector/C connection to it sets up and inspects what
 * the code under test wrote.
 */
#ifndef SK_TEST_MYSQL_DB_H
#define SK_TEST_MYSQL_DB_H

#include <mysql.h>

#include "client/mysql/mysql.h"

typedef struct sk_test_mysql_db {
    sk_mysql_config_t config; /* the backend's, naming the database below */
    MYSQL *admin;
    char database[128];
    int own_database; /* created here, so dropped here */
} sk_test_mysql_db_t;

/* Connects and creates the database ("sk_test_<name>_<pid>_<ms>"). Returns 0, or -1 after
 * saying why on stderr (no backend: the caller's tests must fail, never pass). */
int sk_test_mysql_db_create(sk_test_mysql_db_t *db, const char *name);

/* Drops the database (when created here) and closes the connection. */
void sk_test_mysql_db_destroy(sk_test_mysql_db_t *db);

/* Drops the service's tables: the next ensure_schema starts from nothing. */
void sk_test_mysql_db_reset(sk_test_mysql_db_t *db);

/* Runs `sql` on the raw connection; a failure fails the test. */
void sk_test_mysql_db_query(sk_test_mysql_db_t *db, const char *sql);

/* The first column of the first row of `sql` as a number (-1 when there is no row). */
long long sk_test_mysql_db_number(sk_test_mysql_db_t *db, const char *sql);

#endif
