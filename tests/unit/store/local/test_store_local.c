/*
 * Tests of src/store/local/store_local.c (with store.c and journal.c) against a real SQLite file
 * in a fresh temporary directory: registration and lookup, coupon creation and its
 * uniqueness per seller, paging, every grab outcome in the documented precedence, holdings
 * in grab order, revocations and the revocation epoch, the reload of all of it after a
 * restart, the SQL tables themselves (rows and remaining = amount - grants), the repair of a
 * `remaining` edited by hand, the undo of a grant, coupon or registration whose grant-log
 * write failed (a full disk, injected), a kill -9 of the store (its logs left unapplied,
 * recovered at the next open), a grab answered only once its record is in the log file
 * (never inside the start call), no answer given from a grant still pending (grabs in the
 * same turn wait for its write's outcome), and flash sales on
 * four threads (each with its own h2o loop and store thread) that must grant exactly each
 * coupon's amount. Completions arrive either before the start call returns or through the
 * thread's h2o queue; every wait is bounded. Also: user ids (in lookups, lists, and the
 * seller and customer checks of create and grab), the deployment id (made once, kept, and
 * a new one for a new database), and expired revocations pruned at start and by the
 * periodic timer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <time.h>
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/local/grant_log.h"
#include "store/local/store_local.h"
#include "store/store.h"
#include "util/log.h"

#define HASH_A "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
#define HASH_B "$argon2id$v=19$m=8,t=1,p=1$b3RoZXJzYWx0$b3RoZXJoYXNob3RoZXJoYQ"

/* A store on a temp file, with the one worker loop the test itself runs. */
typedef sk_test_store_t harness_t;

/* The store open now, if any: SQL reads wait for its copy to catch up with its logs. */
static sk_store_t *open_store;

/* Waits (at most ten seconds) until the applier has copied every written change to SQLite. */
static void settle(sk_store_t *store)
{
    sk_store_stats_t stats;
    for (int i = 0; i < 10000; i++) {
        sk_store_stats(store, &stats);
        if (stats.journal_backlog == 0)
            return;
        usleep(1000);
    }
    fail_msg("the SQLite copy is %llu changes behind after 10 s",
             (unsigned long long)stats.journal_backlog);
}

/* ---- loop and store lifecycle ---- */

/* h2o keeps freed socket buffers in a thread-local list; a thread that exits must empty it,
 * or LeakSanitizer counts them as lost. */
static void release_thread_socket_buffers(void)
{
    h2o_mem_recycle_t *recycle = &h2o_socket_buffer_prototype.allocator;
    while (recycle->cnt != 0)
        free(h2o_mem_alloc_recycle(recycle, 1));
}

static void harness_open_store(harness_t *h)
{
    h->store = sk_store_local_create(h->db_path, 0);
    assert_non_null(h->store);
    h->thread = sk_store_thread_create(h->store, h->loop, h->queue);
    assert_non_null(h->thread);
    open_store = h->store;
}

static void harness_close_store(harness_t *h)
{
    sk_store_thread_destroy(h->store, h->thread);
    sk_store_destroy(h->store);
    h->thread = NULL;
    h->store = NULL;
    open_store = NULL;
}

static int setup_harness(void **state)
{
    harness_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -1;
    *state = h;
    int status = sk_test_store_open(h, "store");
    open_store = h->store;
    return status;
}

static int teardown_harness(void **state)
{
    harness_t *h = *state;
    sk_test_store_close(h);
    open_store = NULL;
    sk_grant_log__fail_flushes(0);
    free(h);
    return 0;
}

/* ---- running one operation to completion ---- */

typedef struct completion {
    int calls;
    int before_return; /* on_done ran inside the start call */
    int started;       /* the start call has returned */
} completion_t;

static void count_done(sk_store_op_t *op)
{
    completion_t *completion = op->data;
    ++completion->calls;
    if (!completion->started)
        completion->before_return = 1;
}

static void prepare_op(harness_t *h, sk_store_op_t *op, completion_t *completion)
{
    memset(completion, 0, sizeof(*completion));
    op->on_done = count_done;
    op->data = completion;
    op->pool = &h->pool;
}

/* Runs the loop until the op completed (at most ~10 s), then checks it completed once. */
static void wait_done(harness_t *h, completion_t *completion)
{
    completion->started = 1;
    for (int i = 0; completion->calls == 0 && i < 1000; i++)
        h2o_evloop_run(h->loop, 10);
    assert_int_equal(completion->calls, 1);
    /* Exactly once: nothing more arrives later. */
    h2o_evloop_run(h->loop, 0);
    assert_int_equal(completion->calls, 1);
}

static sk_store_result_t do_register(harness_t *h, const char *name, sk_user_kind_t kind,
                                     const char *hash)
{
    sk_store_user_register_t op;
    completion_t completion;
    memset(&op, 0, sizeof(op));
    prepare_op(h, &op.op, &completion);
    op.username = h2o_iovec_init(name, strlen(name));
    op.kind = kind;
    op.password_hash = hash;
    sk_store_user_register(h->store, h->thread, &op);
    wait_done(h, &completion);
    return op.op.result;
}

static sk_store_result_t do_find(harness_t *h, const char *name, sk_user_kind_t *kind,
                                 const char **hash)
{
    sk_store_user_find_t op;
    completion_t completion;
    memset(&op, 0, sizeof(op));
    prepare_op(h, &op.op, &completion);
    op.username = h2o_iovec_init(name, strlen(name));
    sk_store_user_find(h->store, h->thread, &op);
    wait_done(h, &completion);
    if (op.op.result == SK_STORE_OK) {
        *kind = op.kind;
        *hash = op.password_hash;
    }
    return op.op.result;
}

/* The id of user `name` (what a token of theirs carries), or 0 when there is none. */
static int64_t user_id(harness_t *h, const char *name)
{
    sk_store_user_find_t op;
    completion_t completion;
    memset(&op, 0, sizeof(op));
    prepare_op(h, &op.op, &completion);
    op.username = h2o_iovec_init(name, strlen(name));
    sk_store_user_find(h->store, h->thread, &op);
    wait_done(h, &completion);
    return op.op.result == SK_STORE_OK ? op.id : 0;
}

static sk_store_result_t do_create_window(harness_t *h, const char *seller, const char *name,
                                          int64_t amount, int64_t start_at, int64_t end_at)
{
    sk_store_coupon_create_t op;
    completion_t completion;
    char description[96];
    snprintf(description, sizeof(description), "description of %s", name);
    memset(&op, 0, sizeof(op));
    prepare_op(h, &op.op, &completion);
    op.seller = h2o_iovec_init(seller, strlen(seller));
    op.name = h2o_iovec_init(name, strlen(name));
    op.description = h2o_iovec_init(description, strlen(description));
    op.amount = amount;
    op.stock = amount * 10 + 7;
    op.start_at = start_at;
    op.end_at = end_at;
    op.seller_id = user_id(h, seller);
    sk_store_coupon_create(h->store, h->thread, &op);
    wait_done(h, &completion);
    return op.op.result;
}

static sk_store_result_t do_create(harness_t *h, const char *seller, const char *name,
                                   int64_t amount)
{
    return do_create_window(h, seller, name, amount, SK_STORE_NO_TIME, SK_STORE_NO_TIME);
}

/* Lists a page into `op` (items live in the harness pool). */
static sk_store_result_t do_list(harness_t *h, const char *user, int64_t page,
                                 sk_store_coupon_list_t *op)
{
    completion_t completion;
    memset(op, 0, sizeof(*op));
    prepare_op(h, &op->op, &completion);
    op->username = h2o_iovec_init(user, strlen(user));
    op->page = page;
    sk_store_coupon_list(h->store, h->thread, op);
    wait_done(h, &completion);
    return op->op.result;
}

/* A list answered inside the call, without running the loop (which would end the turn). */
static size_t listed_now(harness_t *h, const char *user)
{
    sk_store_coupon_list_t op;
    completion_t completion;
    memset(&op, 0, sizeof(op));
    prepare_op(h, &op.op, &completion);
    op.username = h2o_iovec_init(user, strlen(user));
    op.page = 1;
    sk_store_coupon_list(h->store, h->thread, &op);
    assert_int_equal(completion.calls, 1);
    assert_int_equal(op.op.result, SK_STORE_OK);
    return op.count;
}

static sk_store_result_t do_grab_at(harness_t *h, const char *customer, const char *seller,
                                    const char *name, int64_t now)
{
    sk_store_grab_t op;
    completion_t completion;
    memset(&op, 0, sizeof(op));
    prepare_op(h, &op.op, &completion);
    op.customer = h2o_iovec_init(customer, strlen(customer));
    op.seller = h2o_iovec_init(seller, strlen(seller));
    op.name = h2o_iovec_init(name, strlen(name));
    op.now = now;
    op.customer_id = user_id(h, customer);
    sk_store_grab(h->store, h->thread, &op);
    wait_done(h, &completion);
    return op.op.result;
}

static sk_store_result_t do_grab(harness_t *h, const char *customer, const char *seller,
                                 const char *name)
{
    return do_grab_at(h, customer, seller, name, (int64_t)time(NULL));
}

static sk_store_result_t do_revoke(harness_t *h, const char *jti, int64_t expires_at)
{
    sk_store_revoke_t op;
    completion_t completion;
    memset(&op, 0, sizeof(op));
    prepare_op(h, &op.op, &completion);
    op.jti = jti;
    op.expires_at = expires_at;
    sk_store_revoke(h->store, h->thread, &op);
    wait_done(h, &completion);
    return op.op.result;
}

static void assert_iov(h2o_iovec_t actual, const char *expected)
{
    if (actual.len != strlen(expected) || memcmp(actual.base, expected, actual.len) != 0)
        fail_msg("'%.*s' != '%s'", (int)actual.len, actual.base, expected);
}

/* The `left` of `seller`'s coupon `name` as listed (searching every page). */
static int64_t listed_left(harness_t *h, const char *seller, const char *name)
{
    for (int64_t page = 1;; page++) {
        sk_store_coupon_list_t op;
        assert_int_equal(do_list(h, seller, page, &op), SK_STORE_OK);
        if (op.count == 0)
            fail_msg("coupon %s/%s not listed", seller, name);
        for (size_t i = 0; i < op.count; i++) {
            if (op.items[i].name.len == strlen(name) &&
                memcmp(op.items[i].name.base, name, op.items[i].name.len) == 0)
                return op.items[i].left;
        }
    }
}

/* ---- direct SQL ---- */

static sqlite3 *sql_open(const char *path)
{
    if (open_store != NULL)
        settle(open_store);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static int64_t sql_int(const char *path, const char *query)
{
    sqlite3 *db = sql_open(path);
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(db, query, -1, &stmt, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", query, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    int64_t value = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return value;
}

/* The first column of every row, joined with '|' (NULL shows as "NULL"). */
static void sql_text(const char *path, const char *query, char *out, size_t out_size)
{
    sqlite3 *db = sql_open(path);
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(db, query, -1, &stmt, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", query, sqlite3_errmsg(db));
    size_t used = 0;
    out[0] = '\0';
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(stmt, 0);
        used += (size_t)snprintf(out + used, out_size - used, "%s%s", used ? "|" : "",
                                 text ? text : "NULL");
        assert_true(used < out_size);
    }
    assert_int_equal(rc, SQLITE_DONE);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

static void sql_exec(const char *path, const char *statement)
{
    sqlite3 *db = sql_open(path);
    char *error = NULL;
    if (sqlite3_exec(db, statement, NULL, NULL, &error) != SQLITE_OK)
        fail_msg("exec %s: %s", statement, error ? error : "?");
    sqlite3_close(db);
}

static void assert_sql_text(const char *path, const char *query, const char *expected)
{
    char text[4096];
    sql_text(path, query, text, sizeof(text));
    assert_string_equal(text, expected);
}

/* ---- users ---- */

static void test_register_and_find(void **state)
{
    harness_t *h = *state;
    sk_user_kind_t kind = (sk_user_kind_t)-1;
    const char *hash = NULL;

    assert_int_equal(do_register(h, "customer_0", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "saler_0", SK_USER_SELLER, HASH_B), SK_STORE_OK);
    /* Taken, whatever the kind or hash. */
    assert_int_equal(do_register(h, "customer_0", SK_USER_CUSTOMER, HASH_A), SK_STORE_DUPLICATE);
    assert_int_equal(do_register(h, "customer_0", SK_USER_SELLER, HASH_B), SK_STORE_DUPLICATE);
    assert_int_equal(do_register(h, "saler_0", SK_USER_CUSTOMER, HASH_A), SK_STORE_DUPLICATE);

    assert_int_equal(do_find(h, "customer_0", &kind, &hash), SK_STORE_OK);
    assert_int_equal(kind, SK_USER_CUSTOMER);
    assert_string_equal(hash, HASH_A);
    assert_int_equal(do_find(h, "saler_0", &kind, &hash), SK_STORE_OK);
    assert_int_equal(kind, SK_USER_SELLER);
    assert_string_equal(hash, HASH_B);

    /* Names are exact and case-sensitive. */
    assert_int_equal(do_find(h, "nobody", &kind, &hash), SK_STORE_NOT_FOUND);
    assert_int_equal(do_find(h, "Customer_0", &kind, &hash), SK_STORE_NOT_FOUND);
    assert_int_equal(do_find(h, "customer_", &kind, &hash), SK_STORE_NOT_FOUND);
    assert_int_equal(do_find(h, "customer_00", &kind, &hash), SK_STORE_NOT_FOUND);
    assert_int_equal(do_register(h, "Customer_0", SK_USER_CUSTOMER, HASH_B), SK_STORE_OK);

    /* The longest name the store takes. */
    char longest[SK_STORE_MAX_NAME + 1];
    memset(longest, 'u', SK_STORE_MAX_NAME);
    longest[SK_STORE_MAX_NAME] = '\0';
    assert_int_equal(do_register(h, longest, SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_find(h, longest, &kind, &hash), SK_STORE_OK);

    assert_int_equal(sql_int(h->db_path, "SELECT count(*) FROM users"), 4);
    assert_sql_text(h->db_path, "SELECT username || ',' || kind FROM users ORDER BY id",
                    "customer_0,customer|saler_0,saler|Customer_0,customer|"
                    "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu,customer");
    assert_sql_text(h->db_path, "SELECT password_hash FROM users WHERE username = 'saler_0'",
                    HASH_B);
}

static void test_find_completes_synchronously(void **state)
{
    harness_t *h = *state;
    assert_int_equal(do_register(h, "c", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    /* A lookup needs no I/O: it completes inside the start call. */
    sk_store_user_find_t op;
    completion_t completion;
    memset(&op, 0, sizeof(op));
    prepare_op(h, &op.op, &completion);
    op.username = h2o_iovec_init("c", 1);
    sk_store_user_find(h->store, h->thread, &op);
    assert_int_equal(completion.calls, 1);
    assert_int_equal(completion.before_return, 1);
    assert_int_equal(op.op.result, SK_STORE_OK);
    wait_done(h, &completion);
}

/* ---- coupons ---- */

static void test_coupon_create(void **state)
{
    harness_t *h = *state;
    assert_int_equal(do_register(h, "s1", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "s2", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c1", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);

    assert_int_equal(do_create(h, "s1", "coupon", 20), SK_STORE_OK);
    assert_int_equal(do_create(h, "s1", "coupon", 5), SK_STORE_DUPLICATE);
    assert_int_equal(do_create(h, "s2", "coupon", 7), SK_STORE_OK);
    assert_int_equal(do_create(h, "s1", "Coupon", 3), SK_STORE_OK);
    /* A customer is no seller, and a user who does not exist is none either. */
    assert_int_equal(do_create(h, "c1", "coupon", 1), SK_STORE_NOT_FOUND);
    assert_int_equal(do_create(h, "nobody", "coupon", 1), SK_STORE_NOT_FOUND);

    sk_store_coupon_list_t list;
    assert_int_equal(do_list(h, "s1", 1, &list), SK_STORE_OK);
    assert_int_equal(list.kind, SK_USER_SELLER);
    assert_int_equal(list.count, 2);
    assert_iov(list.items[0].name, "coupon");
    assert_iov(list.items[0].description, "description of coupon");
    assert_iov(list.items[0].seller, "s1");
    assert_int_equal(list.items[0].amount, 20);
    assert_int_equal(list.items[0].left, 20);
    assert_int_equal(list.items[0].stock, 207);
    assert_int_equal(list.items[0].start_at, SK_STORE_NO_TIME);
    assert_int_equal(list.items[0].end_at, SK_STORE_NO_TIME);
    assert_iov(list.items[1].name, "Coupon");
    assert_int_equal(list.items[1].amount, 3);

    assert_int_equal(do_list(h, "s2", 1, &list), SK_STORE_OK);
    assert_int_equal(list.count, 1);
    assert_iov(list.items[0].seller, "s2");
    assert_int_equal(list.items[0].amount, 7);

    /* The customer has published nothing and holds nothing. */
    assert_int_equal(do_list(h, "c1", 1, &list), SK_STORE_OK);
    assert_int_equal(list.kind, SK_USER_CUSTOMER);
    assert_int_equal(list.count, 0);
    assert_int_equal(do_list(h, "nobody", 1, &list), SK_STORE_NOT_FOUND);

    assert_int_equal(sql_int(h->db_path, "SELECT count(*) FROM coupons"), 3);
    assert_sql_text(h->db_path,
                    "SELECT seller || ',' || name || ',' || amount || ',' || remaining || ',' || "
                    "stock || ',' || description || ',' || ifnull(start_at, 'NULL') || ',' || "
                    "ifnull(end_at, 'NULL') FROM coupons ORDER BY id",
                    "s1,coupon,20,20,207,description of coupon,NULL,NULL|"
                    "s2,coupon,7,7,77,description of coupon,NULL,NULL|"
                    "s1,Coupon,3,3,37,description of Coupon,NULL,NULL");
}

static void test_coupon_sale_window_stored(void **state)
{
    harness_t *h = *state;
    assert_int_equal(do_register(h, "s", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_create_window(h, "s", "w", 2, 1700000000, 1700003600), SK_STORE_OK);
    assert_int_equal(do_create_window(h, "s", "end-only", 2, SK_STORE_NO_TIME, 1600000000),
                     SK_STORE_OK);
    sk_store_coupon_list_t list;
    assert_int_equal(do_list(h, "s", 1, &list), SK_STORE_OK);
    assert_int_equal(list.count, 2);
    assert_int_equal(list.items[0].start_at, 1700000000);
    assert_int_equal(list.items[0].end_at, 1700003600);
    assert_int_equal(list.items[1].start_at, SK_STORE_NO_TIME);
    assert_int_equal(list.items[1].end_at, 1600000000);
    assert_sql_text(h->db_path,
                    "SELECT ifnull(start_at, 'NULL') || ',' || ifnull(end_at, 'NULL') "
                    "FROM coupons ORDER BY id",
                    "1700000000,1700003600|NULL,1600000000");
}

static void test_list_paging(void **state)
{
    harness_t *h = *state;
    char name[32];
    assert_int_equal(do_register(h, "s", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    /* Names whose sorted order is not the creation order. */
    for (int i = 0; i < 25; i++) {
        snprintf(name, sizeof(name), "c%d", (i * 7) % 25);
        assert_int_equal(do_create(h, "s", name, i + 1), SK_STORE_OK);
    }
    sk_store_coupon_list_t list;
    assert_int_equal(do_list(h, "s", 1, &list), SK_STORE_OK);
    assert_int_equal(list.count, 20);
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "c%d", (i * 7) % 25);
        assert_iov(list.items[i].name, name);
        assert_int_equal(list.items[i].amount, i + 1);
    }
    assert_int_equal(do_list(h, "s", 2, &list), SK_STORE_OK);
    assert_int_equal(list.count, 5);
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "c%d", ((i + 20) * 7) % 25);
        assert_iov(list.items[i].name, name);
        assert_int_equal(list.items[i].amount, i + 21);
    }
    assert_int_equal(do_list(h, "s", 3, &list), SK_STORE_OK);
    assert_int_equal(list.count, 0);
    assert_int_equal(do_list(h, "s", 4, &list), SK_STORE_OK);
    assert_int_equal(list.count, 0);
    assert_int_equal(do_list(h, "s", INT64_MAX, &list), SK_STORE_OK);
    assert_int_equal(list.count, 0);
    assert_int_equal(do_list(h, "s", INT64_MAX / 20 + 1, &list), SK_STORE_OK);
    assert_int_equal(list.count, 0);
    /* Any page <= 1 is the first. */
    static const int64_t first_pages[] = {0, -1, -20, INT64_MIN};
    for (size_t p = 0; p < sizeof(first_pages) / sizeof(first_pages[0]); p++) {
        assert_int_equal(do_list(h, "s", first_pages[p], &list), SK_STORE_OK);
        assert_int_equal(list.count, 20);
        assert_iov(list.items[0].name, "c0");
        assert_iov(list.items[19].name, "c8"); /* (19 * 7) % 25 */
    }
}

static void test_list_exact_page_boundary(void **state)
{
    harness_t *h = *state;
    char name[32];
    assert_int_equal(do_register(h, "s", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    sk_store_coupon_list_t list;
    assert_int_equal(do_list(h, "s", 1, &list), SK_STORE_OK);
    assert_int_equal(list.count, 0);
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "n%02d", i);
        assert_int_equal(do_create(h, "s", name, 1), SK_STORE_OK);
    }
    assert_int_equal(do_list(h, "s", 2, &list), SK_STORE_OK);
    assert_int_equal(list.count, 20);
    assert_iov(list.items[0].name, "n20");
    assert_iov(list.items[19].name, "n39");
    assert_int_equal(do_list(h, "s", 3, &list), SK_STORE_OK);
    assert_int_equal(list.count, 0);
}

/* One page of the live sale view's catalog into `op` (empty `seller`: every seller's). */
static sk_store_result_t do_catalog(harness_t *h, const char *seller, int64_t page,
                                    sk_store_coupon_catalog_t *op)
{
    completion_t completion;
    memset(op, 0, sizeof(*op));
    prepare_op(h, &op->op, &completion);
    op->seller = h2o_iovec_init(seller, strlen(seller));
    op->page = page;
    sk_store_coupon_catalog(h->store, h->thread, op);
    wait_done(h, &completion);
    return op->op.result;
}

static void test_catalog(void **state)
{
    harness_t *h = *state;
    char name[32];
    sk_store_coupon_catalog_t catalog;
    assert_int_equal(do_catalog(h, "", 1, &catalog), SK_STORE_OK);
    assert_int_equal(catalog.count, 0);
    assert_int_equal(catalog.total, 0);
    assert_int_equal(do_register(h, "a", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "b", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    /* 120 coupons, the two sellers' in turn; one creation fails and is undone. */
    sk_grant_log__fail_flushes(1); /* a full disk, injected */
    assert_int_equal(do_create(h, "b", "taken", 5), SK_STORE_UNAVAILABLE);
    for (int i = 0; i < 120; i++) {
        snprintf(name, sizeof(name), "n%03d", i);
        assert_int_equal(do_create(h, i % 2 ? "b" : "a", name, i + 1), SK_STORE_OK);
    }
    assert_int_equal(do_grab(h, "c", "a", "n000"), SK_STORE_OK);

    static const size_t counts[] = {50, 50, 20, 0};
    for (int page = 1; page <= 4; page++) {
        assert_int_equal(do_catalog(h, "", page, &catalog), SK_STORE_OK);
        assert_int_equal(catalog.total, 120);
        assert_int_equal(catalog.count, counts[page - 1]);
        for (size_t i = 0; i != catalog.count; i++) {
            int n = (page - 1) * 50 + (int)i;
            snprintf(name, sizeof(name), "n%03d", n);
            assert_iov(catalog.items[i].name, name);
            assert_iov(catalog.items[i].seller, n % 2 ? "b" : "a");
            assert_int_equal(catalog.items[i].amount, n + 1);
            assert_int_equal(catalog.items[i].left, n == 0 ? 0 : n + 1);
        }
    }
    assert_int_equal(do_catalog(h, "", INT64_MAX, &catalog), SK_STORE_OK);
    assert_int_equal(catalog.count, 0);
    assert_int_equal(catalog.total, 120);
    assert_int_equal(do_catalog(h, "", INT64_MIN, &catalog), SK_STORE_OK);
    assert_int_equal(catalog.count, 50);

    /* One seller's: 60 of them, in their creation order. */
    assert_int_equal(do_catalog(h, "b", 2, &catalog), SK_STORE_OK);
    assert_int_equal(catalog.total, 60);
    assert_int_equal(catalog.count, 10);
    assert_iov(catalog.items[0].name, "n101");
    assert_iov(catalog.items[9].name, "n119");
    /* Nobody, a customer, a name that differs in case: no coupons, no error. */
    static const char *const nobody[] = {"x", "c", "A", "a "};
    for (size_t i = 0; i < sizeof(nobody) / sizeof(nobody[0]); i++) {
        assert_int_equal(do_catalog(h, nobody[i], 1, &catalog), SK_STORE_OK);
        assert_int_equal(catalog.count, 0);
        assert_int_equal(catalog.total, 0);
    }
}

/* ---- grabs ---- */

static void test_grab_outcomes_in_precedence_order(void **state)
{
    harness_t *h = *state;
    int64_t now = (int64_t)time(NULL);
    assert_int_equal(do_register(h, "s", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c1", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c2", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c3", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_create(h, "s", "two", 2), SK_STORE_OK);
    assert_int_equal(do_create_window(h, "s", "later", 5, now + 3600, SK_STORE_NO_TIME),
                     SK_STORE_OK);
    assert_int_equal(do_create_window(h, "s", "over", 5, SK_STORE_NO_TIME, now - 10), SK_STORE_OK);
    assert_int_equal(do_create_window(h, "s", "window", 1, 1000, 2000), SK_STORE_OK);

    /* NO_SUCH_COUPON: unknown name, unknown seller, the name under another seller. */
    assert_int_equal(do_grab(h, "c1", "s", "none"), SK_STORE_NO_SUCH_COUPON);
    assert_int_equal(do_grab(h, "c1", "nobody", "two"), SK_STORE_NO_SUCH_COUPON);
    assert_int_equal(do_grab(h, "c1", "c2", "two"), SK_STORE_NO_SUCH_COUPON);
    assert_int_equal(do_grab(h, "c1", "s", "Two"), SK_STORE_NO_SUCH_COUPON);
    /* NOT_STARTED with start_at in the future; ENDED with end_at in the past. */
    assert_int_equal(do_grab(h, "c1", "s", "later"), SK_STORE_NOT_STARTED);
    assert_int_equal(do_grab(h, "c1", "s", "over"), SK_STORE_ENDED);

    /* The window is [start_at, end_at). */
    assert_int_equal(do_grab_at(h, "c1", "s", "window", 999), SK_STORE_NOT_STARTED);
    assert_int_equal(do_grab_at(h, "c1", "s", "window", 2000), SK_STORE_ENDED);
    assert_int_equal(do_grab_at(h, "c1", "s", "window", 1000), SK_STORE_OK);
    /* Sold out now, but outside the window the window answers first... */
    assert_int_equal(do_grab_at(h, "c2", "s", "window", 999), SK_STORE_NOT_STARTED);
    assert_int_equal(do_grab_at(h, "c2", "s", "window", 2000), SK_STORE_ENDED);
    assert_int_equal(do_grab_at(h, "c1", "s", "window", 2001), SK_STORE_ENDED);
    /* ...and inside it SOLD_OUT comes before ALREADY_HELD, even for the holder. */
    assert_int_equal(do_grab_at(h, "c2", "s", "window", 1999), SK_STORE_SOLD_OUT);
    assert_int_equal(do_grab_at(h, "c1", "s", "window", 1999), SK_STORE_SOLD_OUT);

    /* Without a window: OK, ALREADY_HELD while some are left, then SOLD_OUT. */
    assert_int_equal(do_grab(h, "c1", "s", "two"), SK_STORE_OK);
    assert_int_equal(do_grab(h, "c1", "s", "two"), SK_STORE_ALREADY_HELD);
    assert_int_equal(listed_left(h, "s", "two"), 1);
    assert_int_equal(do_grab(h, "c2", "s", "two"), SK_STORE_OK);
    assert_int_equal(do_grab(h, "c3", "s", "two"), SK_STORE_SOLD_OUT);
    assert_int_equal(do_grab(h, "c1", "s", "two"), SK_STORE_SOLD_OUT);
    assert_int_equal(listed_left(h, "s", "two"), 0);

    /* Refusals change nothing. */
    assert_int_equal(listed_left(h, "s", "later"), 5);
    assert_int_equal(listed_left(h, "s", "over"), 5);
    assert_int_equal(sql_int(h->db_path, "SELECT count(*) FROM grants"), 3);
}

static void test_grab_by_unknown_customer(void **state)
{
    harness_t *h = *state;
    assert_int_equal(do_register(h, "s", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_create(h, "s", "c", 3), SK_STORE_OK);
    /* Not among the grab results store.h lists, but what local_grab answers and the api
     * layer maps to 401 "Token is invalid." (a token whose customer is gone). */
    assert_int_equal(do_grab(h, "ghost", "s", "c"), SK_STORE_NOT_FOUND);
    assert_int_equal(listed_left(h, "s", "c"), 3);
}

static void test_grab_shows_in_lists(void **state)
{
    harness_t *h = *state;
    assert_int_equal(do_register(h, "s1", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "s2", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "d", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_create(h, "s1", "a", 10), SK_STORE_OK);
    assert_int_equal(do_create(h, "s1", "b", 10), SK_STORE_OK);
    assert_int_equal(do_create(h, "s2", "a", 10), SK_STORE_OK);

    /* Grab order differs from creation order. */
    assert_int_equal(do_grab(h, "c", "s2", "a"), SK_STORE_OK);
    assert_int_equal(do_grab(h, "c", "s1", "b"), SK_STORE_OK);
    assert_int_equal(do_grab(h, "c", "s1", "a"), SK_STORE_OK);
    assert_int_equal(do_grab(h, "d", "s1", "a"), SK_STORE_OK);

    sk_store_coupon_list_t list;
    assert_int_equal(do_list(h, "c", 1, &list), SK_STORE_OK);
    assert_int_equal(list.kind, SK_USER_CUSTOMER);
    assert_int_equal(list.count, 3);
    assert_iov(list.items[0].name, "a");
    assert_iov(list.items[0].seller, "s2");
    assert_iov(list.items[1].name, "b");
    assert_iov(list.items[1].seller, "s1");
    assert_iov(list.items[2].name, "a");
    assert_iov(list.items[2].seller, "s1");
    assert_iov(list.items[2].description, "description of a");
    assert_int_equal(list.items[2].stock, 107);
    assert_int_equal(do_list(h, "c", 2, &list), SK_STORE_OK);
    assert_int_equal(list.count, 0);

    assert_int_equal(do_list(h, "d", 1, &list), SK_STORE_OK);
    assert_int_equal(list.count, 1);
    assert_iov(list.items[0].seller, "s1");

    /* The sellers' `left` counts every grant, and `amount` stays. */
    assert_int_equal(do_list(h, "s1", 1, &list), SK_STORE_OK);
    assert_int_equal(list.count, 2);
    assert_iov(list.items[0].name, "a");
    assert_int_equal(list.items[0].left, 8);
    assert_int_equal(list.items[0].amount, 10);
    assert_iov(list.items[1].name, "b");
    assert_int_equal(list.items[1].left, 9);
    assert_int_equal(listed_left(h, "s2", "a"), 9);

    assert_sql_text(h->db_path,
                    "SELECT customer || ',' || seller || ',' || coupon FROM grants ORDER BY id",
                    "c,s2,a|c,s1,b|c,s1,a|d,s1,a");
    assert_sql_text(h->db_path, "SELECT remaining FROM coupons ORDER BY id", "8|9|9");
}

static void test_customer_holdings_paging(void **state)
{
    harness_t *h = *state;
    char name[32];
    assert_int_equal(do_register(h, "s", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    for (int i = 0; i < 23; i++) {
        snprintf(name, sizeof(name), "k%02d", i);
        assert_int_equal(do_create(h, "s", name, 1), SK_STORE_OK);
    }
    /* Grab in reverse creation order. */
    for (int i = 22; i >= 0; i--) {
        snprintf(name, sizeof(name), "k%02d", i);
        assert_int_equal(do_grab(h, "c", "s", name), SK_STORE_OK);
    }
    sk_store_coupon_list_t list;
    assert_int_equal(do_list(h, "c", 1, &list), SK_STORE_OK);
    assert_int_equal(list.count, 20);
    assert_iov(list.items[0].name, "k22");
    assert_iov(list.items[19].name, "k03");
    assert_int_equal(do_list(h, "c", 2, &list), SK_STORE_OK);
    assert_int_equal(list.count, 3);
    assert_iov(list.items[0].name, "k02");
    assert_iov(list.items[2].name, "k00");
    assert_int_equal(do_list(h, "c", 3, &list), SK_STORE_OK);
    assert_int_equal(list.count, 0);
}

/* ---- revocations ---- */

static void test_revoke(void **state)
{
    harness_t *h = *state;
    int64_t now = (int64_t)time(NULL);
    uint64_t epoch0 = sk_store_revocation_epoch(h->store);
    assert_int_equal(sk_store_is_revoked(h->store, "00112233445566778899aabbccddeeff"), 0);
    assert_int_equal(sk_store_revocation_epoch(h->store), epoch0);

    assert_int_equal(do_revoke(h, "00112233445566778899aabbccddeeff", now + 3600), SK_STORE_OK);
    assert_int_equal(sk_store_is_revoked(h->store, "00112233445566778899aabbccddeeff"), 1);
    uint64_t epoch1 = sk_store_revocation_epoch(h->store);
    assert_int_not_equal(epoch1, epoch0);
    /* Only that id. */
    assert_int_equal(sk_store_is_revoked(h->store, "00112233445566778899aabbccddeefe"), 0);
    assert_int_equal(sk_store_is_revoked(h->store, "00112233445566778899aabbccddeef"), 0);
    assert_int_equal(sk_store_is_revoked(h->store, ""), 0);

    assert_int_equal(do_revoke(h, "ffeeddccbbaa99887766554433221100", now + 60), SK_STORE_OK);
    uint64_t epoch2 = sk_store_revocation_epoch(h->store);
    assert_int_not_equal(epoch2, epoch1);
    assert_int_not_equal(epoch2, epoch0);
    assert_int_equal(sk_store_is_revoked(h->store, "ffeeddccbbaa99887766554433221100"), 1);
    assert_int_equal(sk_store_is_revoked(h->store, "00112233445566778899aabbccddeeff"), 1);

    /* Revoking twice is fine and keeps one row. */
    assert_int_equal(do_revoke(h, "00112233445566778899aabbccddeeff", now + 3600), SK_STORE_OK);
    assert_int_equal(sk_store_is_revoked(h->store, "00112233445566778899aabbccddeeff"), 1);

    assert_int_equal(sql_int(h->db_path, "SELECT count(*) FROM revoked_tokens"), 2);
    assert_int_equal(sql_int(h->db_path, "SELECT expires_at FROM revoked_tokens WHERE jti = "
                                         "'ffeeddccbbaa99887766554433221100'"),
                     now + 60);
}

/* Tokens carry the user's id: lookups and lists report it, and creation and the grab
 * refuse a name that is not (or no longer) that user. */
static void test_user_ids(void **state)
{
    harness_t *h = *state;
    assert_int_equal(do_register(h, "s", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c", SK_USER_CUSTOMER, HASH_B), SK_STORE_OK);
    int64_t seller = user_id(h, "s"), customer = user_id(h, "c");
    assert_true(seller >= 1 && customer >= 1 && seller != customer);
    assert_int_equal(seller, sql_int(h->db_path, "SELECT id FROM users WHERE username = 's'"));
    assert_int_equal(customer, sql_int(h->db_path, "SELECT id FROM users WHERE username = 'c'"));
    sk_store_coupon_list_t list;
    assert_int_equal(do_list(h, "s", 1, &list), SK_STORE_OK);
    assert_int_equal(list.user_id, seller);
    assert_int_equal(do_list(h, "c", 1, &list), SK_STORE_OK);
    assert_int_equal(list.user_id, customer);

    /* Another id under the seller's name: nothing is made. */
    sk_store_coupon_create_t create;
    completion_t completion;
    memset(&create, 0, sizeof(create));
    prepare_op(h, &create.op, &completion);
    create.seller = h2o_iovec_init(H2O_STRLIT("s"));
    create.name = h2o_iovec_init(H2O_STRLIT("x"));
    create.description = h2o_iovec_init(H2O_STRLIT("d"));
    create.amount = 1;
    create.start_at = create.end_at = SK_STORE_NO_TIME;
    create.seller_id = seller + 100;
    sk_store_coupon_create(h->store, h->thread, &create);
    wait_done(h, &completion);
    assert_int_equal(create.op.result, SK_STORE_NOT_FOUND);
    assert_int_equal(sql_int(h->db_path, "SELECT count(*) FROM coupons"), 0);
    assert_int_equal(do_create(h, "s", "x", 1), SK_STORE_OK);

    /* Another id under the customer's name: nothing is taken. */
    sk_store_grab_t grab;
    memset(&grab, 0, sizeof(grab));
    prepare_op(h, &grab.op, &completion);
    grab.customer = h2o_iovec_init(H2O_STRLIT("c"));
    grab.seller = h2o_iovec_init(H2O_STRLIT("s"));
    grab.name = h2o_iovec_init(H2O_STRLIT("x"));
    grab.now = (int64_t)time(NULL);
    grab.customer_id = seller;
    sk_store_grab(h->store, h->thread, &grab);
    wait_done(h, &completion);
    assert_int_equal(grab.op.result, SK_STORE_NOT_FOUND);
    assert_int_equal(listed_left(h, "s", "x"), 1);
    assert_int_equal(do_grab(h, "c", "s", "x"), SK_STORE_OK);
    assert_int_equal(listed_left(h, "s", "x"), 0);
}

/* ---- the deployment id ---- */

static void assert_valid_deployment_id(const char *id)
{
    assert_non_null(id);
    assert_int_equal(strlen(id), SK_STORE_DEPLOYMENT_ID_LEN);
    assert_int_equal(strspn(id, "0123456789abcdef"), SK_STORE_DEPLOYMENT_ID_LEN);
    assert_true(sk_store_deployment_id_is_valid(id));
}

static void test_deployment_id(void **state)
{
    harness_t *h = *state;
    char first[SK_STORE_DEPLOYMENT_ID_LEN + 1], text[128];
    assert_valid_deployment_id(sk_store_deployment_id(h->store));
    memcpy(first, sk_store_deployment_id(h->store), sizeof(first));
    assert_sql_text(h->db_path, "SELECT value FROM settings WHERE name = 'deployment_id'", first);

    /* Kept across a restart. */
    harness_close_store(h);
    harness_open_store(h);
    assert_string_equal(sk_store_deployment_id(h->store), first);

    /* Another database has another id. */
    harness_t other;
    memset(&other, 0, sizeof(other));
    assert_int_equal(sk_test_store_open(&other, "store-other"), 0);
    assert_valid_deployment_id(sk_store_deployment_id(other.store));
    assert_string_not_equal(sk_store_deployment_id(other.store), first);
    sk_test_store_close(&other);

    /* A database without one (made before ids existed) gets a new one at start. */
    harness_close_store(h);
    sql_exec(h->db_path, "DELETE FROM settings");
    harness_open_store(h);
    assert_valid_deployment_id(sk_store_deployment_id(h->store));
    assert_string_not_equal(sk_store_deployment_id(h->store), first);
    sql_text(h->db_path, "SELECT value FROM settings", text, sizeof(text));
    assert_string_equal(text, sk_store_deployment_id(h->store));

    /* One edited into something that is not an id: refused at start, not trusted. */
    harness_close_store(h);
    sql_exec(h->db_path, "UPDATE settings SET value = 'not-an-id' WHERE name = 'deployment_id'");
    assert_null(sk_store_local_create(h->db_path, 0));
    sql_exec(h->db_path, "DELETE FROM settings");
    harness_open_store(h);
    assert_valid_deployment_id(sk_store_deployment_id(h->store));

    assert_int_equal(sk_store_deployment_id_is_valid(""), 0);
    assert_int_equal(sk_store_deployment_id_is_valid("0123456789abcdef0123456789abcde"), 0);
    assert_int_equal(sk_store_deployment_id_is_valid("0123456789abcdef0123456789abcdef0"), 0);
    assert_int_equal(sk_store_deployment_id_is_valid("0123456789ABCDEF0123456789abcdef"), 0);
    assert_int_equal(sk_store_deployment_id_is_valid("0123456789abcdef0123456789abcdef"), 1);
}

/* ---- pruning expired revocations ---- */

/* At start: revocations past their grace leave SQL and memory; those within it stay. */
static void test_expired_revocations_pruned_at_start(void **state)
{
    harness_t *h = *state;
    int64_t now = (int64_t)time(NULL);
    assert_int_equal(do_revoke(h, "long-gone", now - 3600), SK_STORE_OK);
    assert_int_equal(do_revoke(h, "in-grace", now - SK_STORE_REVOCATION_GRACE / 2), SK_STORE_OK);
    assert_int_equal(do_revoke(h, "live", now + 3600), SK_STORE_OK);
    harness_close_store(h);
    /* Rows written by an older version, or while it was down. */
    sql_exec(h->db_path, "INSERT INTO revoked_tokens (jti, expires_at) VALUES ('ancient', 1)");
    harness_open_store(h);
    assert_sql_text(h->db_path, "SELECT jti FROM revoked_tokens ORDER BY jti", "in-grace|live");
    assert_int_equal(sk_store_is_revoked(h->store, "long-gone"), 0);
    assert_int_equal(sk_store_is_revoked(h->store, "ancient"), 0);
    assert_int_equal(sk_store_is_revoked(h->store, "in-grace"), 1);
    assert_int_equal(sk_store_is_revoked(h->store, "live"), 1);
}

/* While running: the prune timer (SECKILL_REVOCATION_PRUNE_MS shortens it) empties both. */
static void test_expired_revocations_pruned_periodically(void **state)
{
    harness_t *h = *state;
    harness_close_store(h);
    setenv("SECKILL_REVOCATION_PRUNE_MS", "50", 1);
    harness_open_store(h);
    unsetenv("SECKILL_REVOCATION_PRUNE_MS");
    int64_t now = (int64_t)time(NULL);
    assert_int_equal(do_revoke(h, "expired", now - 3600), SK_STORE_OK);
    assert_int_equal(do_revoke(h, "live", now + 3600), SK_STORE_OK);
    assert_int_equal(sk_store_is_revoked(h->store, "expired"), 1);
    for (int i = 0; i < 300 && (sk_store_is_revoked(h->store, "expired") ||
                                sql_int(h->db_path, "SELECT count(*) FROM revoked_tokens") != 1);
         i++)
        h2o_evloop_run(h->loop, 10);
    assert_int_equal(sk_store_is_revoked(h->store, "expired"), 0);
    assert_int_equal(sk_store_is_revoked(h->store, "live"), 1);
    assert_sql_text(h->db_path, "SELECT jti FROM revoked_tokens", "live");
    /* It keeps running: a second expired one goes too. */
    assert_int_equal(do_revoke(h, "expired-2", now - 3600), SK_STORE_OK);
    for (int i = 0; i < 300 && sk_store_is_revoked(h->store, "expired-2"); i++)
        h2o_evloop_run(h->loop, 10);
    assert_int_equal(sk_store_is_revoked(h->store, "expired-2"), 0);
}

/* ---- readiness and stats ---- */

static void test_ready_and_stats(void **state)
{
    harness_t *h = *state;
    assert_int_equal(sk_store_is_ready(h->store), 1);
    assert_int_equal(do_register(h, "s", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_create(h, "s", "x", 3), SK_STORE_OK);
    assert_int_equal(do_grab(h, "c", "s", "x"), SK_STORE_OK);
    assert_int_equal(do_revoke(h, "jti", 1), SK_STORE_OK);
    /* Refusals never reach the journal. */
    assert_int_equal(do_register(h, "c", SK_USER_CUSTOMER, HASH_A), SK_STORE_DUPLICATE);
    assert_int_equal(do_grab(h, "c", "s", "x"), SK_STORE_ALREADY_HELD);

    sk_store_stats_t stats;
    memset(&stats, 0xff, sizeof(stats));
    settle(h->store);
    sk_store_stats(h->store, &stats);
    assert_int_equal(stats.journal_ops, 5);
    assert_int_equal(stats.journal_backlog, 0);
    assert_int_equal(stats.journal_failures, 0);
    /* The applier takes whatever the log holds when it wakes: one to five transactions. */
    assert_in_range(stats.journal_batches, 1, 5);
    uint64_t commits = 0, batches = 0;
    for (int i = 0; i < 8; i++) {
        commits += stats.commit_usec_buckets[i];
        batches += stats.batch_size_buckets[i];
    }
    assert_int_equal(commits, stats.journal_batches);
    assert_int_equal(batches, stats.journal_batches);

    /* Written but not applied yet counts as backlog, at once: a grab answered has its
     * record counted before its answer. */
    assert_int_equal(do_register(h, "c2", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_grab(h, "c2", "s", "x"), SK_STORE_OK);
    sk_store_stats(h->store, &stats);
    assert_in_range(stats.journal_backlog, 0, 2);
    assert_int_equal(stats.journal_ops + stats.journal_backlog, 7);
    settle(h->store);
    sk_store_stats(h->store, &stats);
    assert_int_equal(stats.journal_ops, 7);
}

/* ---- the answer waits for the log ---- */

/* Bytes in the store's grant log directory, all segments together. */
static long long log_bytes(harness_t *h)
{
    char dir[192], path[512];
    snprintf(dir, sizeof(dir), "%s/seckill.db-log", h->dir);
    DIR *listing = opendir(dir);
    assert_non_null(listing);
    long long total = 0;
    struct dirent *item;
    while ((item = readdir(listing)) != NULL) {
        struct stat info;
        snprintf(path, sizeof(path), "%s/%s", dir, item->d_name);
        if (item->d_name[0] != '.' && stat(path, &info) == 0)
            total += info.st_size;
    }
    closedir(listing);
    return total;
}

typedef struct logged_completion {
    completion_t completion;
    harness_t *h;
    long long bytes_at_answer;
} logged_completion_t;

static void note_log_at_answer(sk_store_op_t *op)
{
    logged_completion_t *logged = op->data;
    logged->bytes_at_answer = log_bytes(logged->h);
    count_done(op);
}

static void test_answer_comes_after_the_write(void **state)
{
    harness_t *h = *state;
    assert_int_equal(do_register(h, "s", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_create(h, "s", "x", 3), SK_STORE_OK);
    long long before = log_bytes(h);

    sk_store_grab_t op;
    logged_completion_t logged;
    memset(&op, 0, sizeof(op));
    memset(&logged, 0, sizeof(logged));
    prepare_op(h, &op.op, &logged.completion);
    op.op.on_done = note_log_at_answer;
    op.op.data = &logged;
    logged.h = h;
    op.customer = h2o_iovec_init(H2O_STRLIT("c"));
    op.seller = h2o_iovec_init(H2O_STRLIT("s"));
    op.name = h2o_iovec_init(H2O_STRLIT("x"));
    op.now = (int64_t)time(NULL);
    op.customer_id = user_id(h, "c");
    sk_store_grab(h->store, h->thread, &op);
    /* Taken in memory, but not answered before the turn's write. */
    assert_int_equal(logged.completion.calls, 0);
    assert_int_equal(log_bytes(h), before);
    wait_done(h, &logged.completion);
    assert_int_equal(op.op.result, SK_STORE_OK);
    assert_int_equal(logged.completion.before_return, 0);
    /* When the answer was given, the grant's record was in the file already. */
    assert_true(logged.bytes_at_answer > before);
    assert_int_equal(logged.bytes_at_answer, log_bytes(h));
}

/* ---- restart ---- */

static void build_sale(harness_t *h, int64_t now)
{
    assert_int_equal(do_register(h, "c1", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "s1", SK_USER_SELLER, HASH_B), SK_STORE_OK);
    assert_int_equal(do_register(h, "c2", SK_USER_CUSTOMER, HASH_B), SK_STORE_OK);
    assert_int_equal(do_register(h, "s2", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_create(h, "s1", "a", 3), SK_STORE_OK);
    assert_int_equal(do_create_window(h, "s1", "b", 1, now - 100, now + 100000), SK_STORE_OK);
    assert_int_equal(do_create(h, "s2", "a", 5), SK_STORE_OK);
    assert_int_equal(do_grab(h, "c1", "s2", "a"), SK_STORE_OK);
    assert_int_equal(do_grab(h, "c1", "s1", "a"), SK_STORE_OK);
    assert_int_equal(do_grab(h, "c2", "s1", "b"), SK_STORE_OK);
    assert_int_equal(do_grab(h, "c2", "s1", "a"), SK_STORE_OK);
    assert_int_equal(do_revoke(h, "live-jti", now + 3600), SK_STORE_OK);
    assert_int_equal(do_revoke(h, "old-jti", now - 3600), SK_STORE_OK);
}

static void check_sale_sql(const char *db_path)
{
    assert_sql_text(db_path, "SELECT username || ',' || kind FROM users ORDER BY id",
                    "c1,customer|s1,saler|c2,customer|s2,saler");
    assert_sql_text(db_path,
                    "SELECT seller || ',' || name || ',' || amount || ',' || remaining "
                    "FROM coupons ORDER BY id",
                    "s1,a,3,1|s1,b,1,0|s2,a,5,4");
    assert_sql_text(db_path,
                    "SELECT customer || ',' || seller || ',' || coupon FROM grants ORDER BY id",
                    "c1,s2,a|c1,s1,a|c2,s1,b|c2,s1,a");
    /* The API.md invariant, as an operator would check it. */
    assert_int_equal(sql_int(db_path, "SELECT count(*) FROM coupons c WHERE remaining != amount - "
                                      "(SELECT count(*) FROM grants g WHERE g.seller = c.seller "
                                      "AND g.coupon = c.name)"),
                     0);
    assert_sql_text(db_path, "SELECT jti FROM revoked_tokens ORDER BY jti", "live-jti|old-jti");
}

static void test_reload_after_restart(void **state)
{
    harness_t *h = *state;
    int64_t now = (int64_t)time(NULL);
    build_sale(h, now);
    harness_close_store(h);
    check_sale_sql(h->db_path);

    harness_open_store(h);
    sk_user_kind_t kind;
    const char *hash;
    assert_int_equal(do_find(h, "c1", &kind, &hash), SK_STORE_OK);
    assert_int_equal(kind, SK_USER_CUSTOMER);
    assert_string_equal(hash, HASH_A);
    assert_int_equal(do_find(h, "s1", &kind, &hash), SK_STORE_OK);
    assert_int_equal(kind, SK_USER_SELLER);
    assert_string_equal(hash, HASH_B);
    assert_int_equal(do_find(h, "c2", &kind, &hash), SK_STORE_OK);
    assert_int_equal(kind, SK_USER_CUSTOMER);
    assert_string_equal(hash, HASH_B);
    assert_int_equal(do_find(h, "s2", &kind, &hash), SK_STORE_OK);
    assert_int_equal(kind, SK_USER_SELLER);

    sk_store_coupon_list_t list;
    assert_int_equal(do_list(h, "s1", 1, &list), SK_STORE_OK);
    assert_int_equal(list.kind, SK_USER_SELLER);
    assert_int_equal(list.count, 2);
    assert_iov(list.items[0].name, "a");
    assert_iov(list.items[0].description, "description of a");
    assert_int_equal(list.items[0].amount, 3);
    assert_int_equal(list.items[0].left, 1);
    assert_int_equal(list.items[0].stock, 37);
    assert_int_equal(list.items[0].start_at, SK_STORE_NO_TIME);
    assert_int_equal(list.items[0].end_at, SK_STORE_NO_TIME);
    assert_iov(list.items[1].name, "b");
    assert_int_equal(list.items[1].left, 0);
    assert_int_equal(list.items[1].start_at, now - 100);
    assert_int_equal(list.items[1].end_at, now + 100000);
    assert_int_equal(listed_left(h, "s2", "a"), 4);

    /* Holdings come back in grab order, with their sellers. */
    assert_int_equal(do_list(h, "c1", 1, &list), SK_STORE_OK);
    assert_int_equal(list.kind, SK_USER_CUSTOMER);
    assert_int_equal(list.count, 2);
    assert_iov(list.items[0].seller, "s2");
    assert_iov(list.items[0].name, "a");
    assert_iov(list.items[1].seller, "s1");
    assert_iov(list.items[1].name, "a");
    assert_int_equal(do_list(h, "c2", 1, &list), SK_STORE_OK);
    assert_int_equal(list.count, 2);
    assert_iov(list.items[0].name, "b");
    assert_iov(list.items[1].name, "a");

    /* The holder sets came back too. */
    assert_int_equal(do_grab(h, "c1", "s1", "a"), SK_STORE_ALREADY_HELD);
    assert_int_equal(do_grab(h, "c1", "s2", "a"), SK_STORE_ALREADY_HELD);
    assert_int_equal(do_grab(h, "c1", "s1", "b"), SK_STORE_SOLD_OUT);

    /* Revocations that still matter come back; expired ones left SQL at the start. */
    assert_int_equal(sk_store_is_revoked(h->store, "live-jti"), 1);
    assert_int_equal(sk_store_is_revoked(h->store, "old-jti"), 0);
    assert_sql_text(h->db_path, "SELECT jti FROM revoked_tokens ORDER BY jti", "live-jti");

    /* Names stay taken, and new rows get ids that do not collide with loaded ones. */
    assert_int_equal(do_register(h, "c1", SK_USER_CUSTOMER, HASH_A), SK_STORE_DUPLICATE);
    assert_int_equal(do_create(h, "s1", "a", 9), SK_STORE_DUPLICATE);
    assert_int_equal(do_register(h, "c3", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_create(h, "s1", "c", 2), SK_STORE_OK);
    assert_int_equal(do_grab(h, "c3", "s1", "a"), SK_STORE_OK);
    assert_int_equal(do_grab(h, "c3", "s1", "c"), SK_STORE_OK);
    assert_int_equal(listed_left(h, "s1", "a"), 0);
    assert_int_equal(do_grab(h, "c2", "s1", "c"), SK_STORE_OK);
    assert_int_equal(listed_left(h, "s1", "c"), 0);

    /* And a second restart sees all of it. */
    harness_close_store(h);
    /* (Ids need not be dense: a refused insert may use one up.) */
    assert_sql_text(h->db_path, "SELECT username FROM users ORDER BY id", "c1|s1|c2|s2|c3");
    assert_sql_text(h->db_path,
                    "SELECT seller || ',' || name || ',' || remaining FROM coupons ORDER BY id",
                    "s1,a,0|s1,b,0|s2,a,4|s1,c,0");
    harness_open_store(h);
    assert_int_equal(listed_left(h, "s1", "a"), 0);
    assert_int_equal(listed_left(h, "s1", "c"), 0);
    assert_int_equal(do_list(h, "c3", 1, &list), SK_STORE_OK);
    assert_int_equal(list.count, 2);
    assert_iov(list.items[0].name, "a");
    assert_iov(list.items[1].name, "c");
}

static void test_tampered_remaining_is_fixed(void **state)
{
    harness_t *h = *state;
    assert_int_equal(do_register(h, "s", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c1", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c2", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c3", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_create(h, "s", "five", 5), SK_STORE_OK);
    assert_int_equal(do_create(h, "s", "two", 2), SK_STORE_OK);
    assert_int_equal(do_create(h, "s", "same", 4), SK_STORE_OK);
    assert_int_equal(do_grab(h, "c1", "s", "five"), SK_STORE_OK);
    assert_int_equal(do_grab(h, "c2", "s", "five"), SK_STORE_OK);
    assert_int_equal(do_grab(h, "c1", "s", "two"), SK_STORE_OK);
    assert_int_equal(do_grab(h, "c1", "s", "same"), SK_STORE_OK);
    harness_close_store(h);

    /* Someone edits the database while the service is down: `remaining` lies both ways,
     * and a grant row is added by hand past the amount. */
    sql_exec(h->db_path, "UPDATE coupons SET remaining = 99 WHERE name = 'five';"
                         "UPDATE coupons SET remaining = -7 WHERE name = 'two';"
                         "INSERT INTO grants (id, customer, seller, coupon, granted_at) "
                         "VALUES (1000, 'c2', 's', 'two', 1), (1001, 'c3', 's', 'two', 1);");

    harness_open_store(h);
    /* The grants rows are the truth. */
    assert_int_equal(listed_left(h, "s", "five"), 3);
    assert_int_equal(listed_left(h, "s", "two"), 0);
    assert_int_equal(listed_left(h, "s", "same"), 3);
    /* The SQL copy was rewritten at once, before any new change. */
    assert_sql_text(h->db_path, "SELECT name || ',' || remaining FROM coupons ORDER BY id",
                    "five,3|two,0|same,3");
    assert_int_equal(do_grab(h, "c3", "s", "five"), SK_STORE_OK);
    assert_int_equal(do_grab(h, "c3", "s", "two"), SK_STORE_SOLD_OUT);
    harness_close_store(h);
    assert_sql_text(h->db_path, "SELECT name || ',' || remaining FROM coupons ORDER BY id",
                    "five,2|two,0|same,3");
}

/* ---- kill -9 ---- */

static void test_kill_9_loses_nothing_answered(void **state)
{
    harness_t *h = *state;
    harness_close_store(h);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        /* A store of its own in the same directory; every op below was answered when the
         * process dies, most of them before the applier's next round. */
        harness_open_store(h);
        do_register(h, "s", SK_USER_SELLER, HASH_A);
        do_create(h, "s", "x", 50);
        char name[16];
        for (int i = 0; i != 40; ++i) {
            snprintf(name, sizeof(name), "c%d", i);
            if (do_register(h, name, SK_USER_CUSTOMER, HASH_B) != SK_STORE_OK ||
                do_grab(h, name, "s", "x") != SK_STORE_OK)
                _exit(1);
        }
        do_revoke(h, "jti", (int64_t)time(NULL) + 3600);
        kill(getpid(), SIGKILL);
        _exit(2);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    char log_dir[192];
    snprintf(log_dir, sizeof(log_dir), "%s/seckill.db-log", h->dir);
    DIR *listing = opendir(log_dir);
    assert_non_null(listing);
    int segments = 0;
    for (struct dirent *item; (item = readdir(listing)) != NULL;)
        segments += item->d_name[0] != '.';
    closedir(listing);
    /* The segment it was writing was never closed, so never deleted. */
    assert_true(segments >= 1);
    printf("SQLite held %lld of 40 grants at the kill\n",
           (long long)sql_int(h->db_path, "SELECT count(*) FROM grants"));

    harness_open_store(h);
    assert_int_equal(listed_left(h, "s", "x"), 10);
    assert_int_equal(do_grab(h, "c7", "s", "x"), SK_STORE_ALREADY_HELD);
    assert_int_equal(sk_store_is_revoked(h->store, "jti"), 1);
    assert_int_equal(sql_int(h->db_path, "SELECT count(*) FROM grants"), 40);
    assert_int_equal(sql_int(h->db_path, "SELECT remaining FROM coupons"), 10);
    assert_int_equal(sql_int(h->db_path, "SELECT count(*) FROM users"), 41);
}

/* ---- the grant log refusing a write ---- */

static void test_failed_grant_is_undone(void **state)
{
    harness_t *h = *state;
    assert_int_equal(do_register(h, "s", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c1", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c2", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_create(h, "s", "x", 2), SK_STORE_OK);
    /* The disk is full for c1's turn. */
    sk_grant_log__fail_flushes(1);

    assert_int_equal(do_grab(h, "c1", "s", "x"), SK_STORE_UNAVAILABLE);
    /* Everything the grab took was given back. */
    assert_int_equal(listed_left(h, "s", "x"), 2);
    sk_store_coupon_list_t list;
    assert_int_equal(do_list(h, "c1", 1, &list), SK_STORE_OK);
    assert_int_equal(list.count, 0);
    /* Nothing of it reached SQL, and other customers are unaffected. */
    assert_int_equal(do_grab(h, "c2", "s", "x"), SK_STORE_OK);
    assert_int_equal(listed_left(h, "s", "x"), 1);
    assert_int_equal(sql_int(h->db_path, "SELECT remaining FROM coupons WHERE name = 'x'"), 1);
    assert_int_equal(sql_int(h->db_path, "SELECT count(*) FROM grants WHERE customer = 'c1'"), 0);

    sk_store_stats_t stats;
    sk_store_stats(h->store, &stats);
    assert_int_equal(stats.journal_backlog, 0);

    /* c1 is not a holder (not ALREADY_HELD): the next try gets it. */
    assert_int_equal(do_grab(h, "c1", "s", "x"), SK_STORE_OK);
    assert_int_equal(listed_left(h, "s", "x"), 0);
    assert_int_equal(do_list(h, "c1", 1, &list), SK_STORE_OK);
    assert_int_equal(list.count, 1);
    /* And after a restart exactly the two granted ones are there. */
    harness_close_store(h);
    harness_open_store(h);
    assert_int_equal(listed_left(h, "s", "x"), 0);
    assert_sql_text(h->db_path, "SELECT customer FROM grants ORDER BY id", "c2|c1");
}

/* A grab started without waiting for it; wait with sk_test_run_until on its calls. */
typedef struct started_grab {
    sk_store_grab_t op;
    completion_t completion;
} started_grab_t;

/* Starts a grab without running the loop: `customer_id` is looked up beforehand, since a
 * lookup runs the loop and would end the turn. */
static void start_grab(harness_t *h, started_grab_t *grab, const char *customer,
                       int64_t customer_id, const char *seller, const char *name)
{
    memset(grab, 0, sizeof(*grab));
    prepare_op(h, &grab->op.op, &grab->completion);
    grab->op.customer = h2o_iovec_init(customer, strlen(customer));
    grab->op.seller = h2o_iovec_init(seller, strlen(seller));
    grab->op.name = h2o_iovec_init(name, strlen(name));
    grab->op.now = (int64_t)time(NULL);
    grab->op.customer_id = customer_id;
    sk_store_grab(h->store, h->thread, &grab->op);
    grab->completion.started = 1;
}

static uint64_t grabs_waiting(harness_t *h)
{
    sk_store_stats_t stats;
    sk_store_stats(h->store, &stats);
    return stats.grabs_waiting;
}

/*
 * A grant not written yet is never the ground for an answer that its failure would make
 * false: while c1's grant of the last unit is pending (until the end of the loop turn that
 * took it), c1 grabbing again in that turn is not answered ALREADY_HELD, nor c2 SOLD_OUT:
 * both wait for its outcome. Its write fails (a full disk, injected), the unit comes back,
 * and the two run again in the order they came: c1 takes it in the next turn, and c2 is
 * SOLD_OUT once that grant is written. A list never shows a pending grant.
 */
static void test_no_answer_from_a_pending_grant(void **state)
{
    harness_t *h = *state;
    assert_int_equal(do_register(h, "s", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c1", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c2", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_create(h, "s", "x", 1), SK_STORE_OK);

    int64_t c1 = user_id(h, "c1"), c2 = user_id(h, "c2");
    started_grab_t first, again, other;
    start_grab(h, &first, "c1", c1, "s", "x");
    start_grab(h, &again, "c1", c1, "s", "x");
    start_grab(h, &other, "c2", c2, "s", "x");
    assert_int_equal(first.completion.calls + again.completion.calls + other.completion.calls, 0);
    assert_int_equal(grabs_waiting(h), 2);
    assert_int_equal(listed_now(h, "c1"), 0);

    sk_grant_log__fail_flushes(1);
    assert_int_equal(sk_test_run_until(h->loop, &first.completion.calls, 1), 1);
    assert_int_equal(sk_test_run_until(h->loop, &again.completion.calls, 1), 1);
    assert_int_equal(sk_test_run_until(h->loop, &other.completion.calls, 1), 1);
    assert_int_equal(first.op.op.result, SK_STORE_UNAVAILABLE);
    assert_int_equal(again.op.op.result, SK_STORE_OK);
    assert_int_equal(other.op.op.result, SK_STORE_SOLD_OUT);
    assert_int_equal(grabs_waiting(h), 0);

    sk_store_coupon_list_t list;
    assert_int_equal(do_list(h, "c1", 1, &list), SK_STORE_OK);
    assert_int_equal(list.count, 1);
    assert_int_equal(do_list(h, "c2", 1, &list), SK_STORE_OK);
    assert_int_equal(list.count, 0);
    assert_int_equal(listed_left(h, "s", "x"), 0);
    /* Sold out for good now: every answer is final. */
    assert_int_equal(do_grab(h, "c1", "s", "x"), SK_STORE_SOLD_OUT);
    assert_int_equal(do_grab(h, "c2", "s", "x"), SK_STORE_SOLD_OUT);
}

/* A customer grabbing again while its grant of that coupon is pending waits too, and is
 * ALREADY_HELD once the grant is written; other customers are not held up meanwhile. */
static void test_grab_again_waits_for_a_pending_grant(void **state)
{
    harness_t *h = *state;
    assert_int_equal(do_register(h, "s", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c1", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c2", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_create(h, "s", "x", 5), SK_STORE_OK);

    int64_t c1 = user_id(h, "c1"), c2 = user_id(h, "c2");
    started_grab_t first, again, other;
    start_grab(h, &first, "c1", c1, "s", "x");
    start_grab(h, &again, "c1", c1, "s", "x");
    start_grab(h, &other, "c2", c2, "s", "x"); /* neither held nor sold out: taken at once */
    assert_int_equal(grabs_waiting(h), 1);
    assert_int_equal(sk_test_run_until(h->loop, &again.completion.calls, 1), 1);
    assert_int_equal(sk_test_run_until(h->loop, &first.completion.calls, 1), 1);
    assert_int_equal(sk_test_run_until(h->loop, &other.completion.calls, 1), 1);
    assert_int_equal(first.op.op.result, SK_STORE_OK);
    assert_int_equal(again.op.op.result, SK_STORE_ALREADY_HELD);
    assert_int_equal(other.op.op.result, SK_STORE_OK);
    assert_int_equal(grabs_waiting(h), 0);
    assert_int_equal(do_grab(h, "c1", "s", "x"), SK_STORE_ALREADY_HELD);
    assert_int_equal(listed_left(h, "s", "x"), 3);
}

static void test_failed_coupon_create_is_undone(void **state)
{
    harness_t *h = *state;
    assert_int_equal(do_register(h, "s", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    sk_grant_log__fail_flushes(1);
    assert_int_equal(do_create(h, "s", "x", 5), SK_STORE_UNAVAILABLE);
    sk_store_coupon_list_t list;
    assert_int_equal(do_list(h, "s", 1, &list), SK_STORE_OK);
    assert_int_equal(list.count, 0);
    assert_int_equal(do_grab(h, "c", "s", "x"), SK_STORE_NO_SUCH_COUPON);
    assert_int_equal(sql_int(h->db_path, "SELECT count(*) FROM coupons"), 0);
    /* The name is free again. */
    assert_int_equal(do_create(h, "s", "x", 5), SK_STORE_OK);
    assert_int_equal(do_list(h, "s", 1, &list), SK_STORE_OK);
    assert_int_equal(list.count, 1);
    assert_int_equal(list.items[0].amount, 5);
    assert_int_equal(do_grab(h, "c", "s", "x"), SK_STORE_OK);
}

static void test_failed_register_is_undone(void **state)
{
    harness_t *h = *state;
    sk_grant_log__fail_flushes(1);
    assert_int_equal(do_register(h, "taken", SK_USER_CUSTOMER, HASH_A), SK_STORE_UNAVAILABLE);
    sk_user_kind_t kind;
    const char *hash;
    assert_int_equal(do_find(h, "taken", &kind, &hash), SK_STORE_NOT_FOUND);
    assert_int_equal(do_register(h, "other", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_sql_text(h->db_path, "SELECT username FROM users", "other");
}

static void test_failed_register_retry_does_not_leak(void **state)
{
    harness_t *h = *state;
    sk_grant_log__fail_flushes(2);
    assert_int_equal(do_register(h, "taken", SK_USER_CUSTOMER, HASH_A), SK_STORE_UNAVAILABLE);
    assert_int_equal(do_register(h, "taken", SK_USER_CUSTOMER, HASH_A), SK_STORE_UNAVAILABLE);
    assert_int_equal(do_register(h, "taken", SK_USER_CUSTOMER, HASH_B), SK_STORE_OK);
    sk_user_kind_t kind;
    const char *hash;
    assert_int_equal(do_find(h, "taken", &kind, &hash), SK_STORE_OK);
    assert_string_equal(hash, HASH_B);
}

static void test_ops_after_drain_are_refused(void **state)
{
    harness_t *h = *state;
    assert_int_equal(do_register(h, "s", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_register(h, "c", SK_USER_CUSTOMER, HASH_A), SK_STORE_OK);
    assert_int_equal(do_create(h, "s", "x", 1), SK_STORE_OK);
    assert_int_equal(sk_store_drain(h->store), 0);
    assert_int_equal(do_register(h, "late", SK_USER_CUSTOMER, HASH_A), SK_STORE_UNAVAILABLE);
    assert_int_equal(do_create(h, "s", "y", 1), SK_STORE_UNAVAILABLE);
    assert_int_equal(do_grab(h, "c", "s", "x"), SK_STORE_UNAVAILABLE);
    assert_int_equal(do_revoke(h, "jti", 1), SK_STORE_UNAVAILABLE);
    /* Nothing was taken by the refused grab. */
    assert_int_equal(listed_left(h, "s", "x"), 1);
}

/* ---- a flash sale on four threads ---- */

#define SALE_THREADS 4
#define SALE_CUSTOMERS 400
#define PER_WORKER (SALE_CUSTOMERS / SALE_THREADS)

/* `rounds` coupons "hot_<round>", sold one after the other: in each round every thread
 * starts a grab for each of its customers, after a barrier, so that the threads reach the
 * moment the coupon sells out together. */
typedef struct sale {
    sk_store_t *store;
    int rounds;
    sk_store_result_t *results; /* [round * SALE_CUSTOMERS + customer] */
    int64_t customer_ids[SALE_CUSTOMERS];
    pthread_barrier_t barrier;
    _Atomic int wrong_thread; /* completions delivered on a thread that did not start them */
    _Atomic int timeouts;
} sale_t;

typedef struct sale_worker {
    sale_t *sale;
    int id;
    pthread_t self;
    int done;
    /* Made and cleared by the main thread, so that its chunks go back to the main thread's
     * recycle list rather than to one that dies with the worker. */
    h2o_mem_pool_t pool;
} sale_worker_t;

typedef struct sale_grab {
    sk_store_grab_t op;
    sale_worker_t *worker;
    int slot; /* index into sale->results */
} sale_grab_t;

static void on_sale_grab_done(sk_store_op_t *op)
{
    sale_grab_t *grab = (sale_grab_t *)op;
    sale_worker_t *worker = grab->worker;
    if (!pthread_equal(pthread_self(), worker->self))
        atomic_fetch_add(&worker->sale->wrong_thread, 1);
    worker->sale->results[grab->slot] = op->result;
    ++worker->done;
}

static void *sale_worker_main(void *arg)
{
    sale_worker_t *worker = arg;
    sale_t *sale = worker->sale;
    worker->self = pthread_self();
    h2o_evloop_t *loop = h2o_evloop_create();
    h2o_multithread_queue_t *queue = h2o_multithread_create_queue(loop);
    sk_store_thread_t *thread = sk_store_thread_create(sale->store, loop, queue);
    sale_grab_t *grabs = calloc(PER_WORKER, sizeof(*grabs));
    char(*names)[32] = calloc(PER_WORKER, sizeof(*names));
    char coupon[32];
    if (thread == NULL || grabs == NULL || names == NULL)
        abort(); /* cmocka's asserts are for the main thread only */

    for (int round = 0; round < sale->rounds; round++) {
        snprintf(coupon, sizeof(coupon), "hot_%d", round);
        worker->done = 0;
        pthread_barrier_wait(&sale->barrier);
        for (int i = 0; i < PER_WORKER; i++) {
            int customer = i * SALE_THREADS + worker->id;
            sale_grab_t *grab = &grabs[i];
            memset(grab, 0, sizeof(*grab));
            grab->worker = worker;
            grab->slot = round * SALE_CUSTOMERS + customer;
            grab->op.op.on_done = on_sale_grab_done;
            grab->op.op.pool = &worker->pool;
            snprintf(names[i], sizeof(names[i]), "buyer_%d", customer);
            grab->op.customer = h2o_iovec_init(names[i], strlen(names[i]));
            grab->op.customer_id = sale->customer_ids[customer];
            grab->op.seller = h2o_iovec_init(H2O_STRLIT("seller"));
            grab->op.name = h2o_iovec_init(coupon, strlen(coupon));
            grab->op.now = (int64_t)time(NULL);
            sk_store_grab(sale->store, thread, &grab->op);
        }
        for (int i = 0; worker->done != PER_WORKER && i < 1000; i++)
            h2o_evloop_run(loop, 10);
        if (worker->done != PER_WORKER) {
            atomic_fetch_add(&sale->timeouts, 1);
            abort(); /* ops still in flight point at `grabs`: nothing sane is left to do */
        }
    }

    sk_store_thread_destroy(sale->store, thread);
    sk_test_loop_destroy(loop, queue);
    release_thread_socket_buffers();
    free(names);
    free(grabs);
    return NULL;
}

typedef struct batch_register {
    sk_store_user_register_t op;
    char name[32];
} batch_register_t;

static void count_batch_done(sk_store_op_t *op)
{
    int *done = op->data;
    if (op->result == SK_STORE_OK)
        ++*done;
    else
        *done += 1000000;
}

/* Registers buyer_0 .. buyer_399 all at once: they share journal batches. */
static void register_buyers(harness_t *h)
{
    batch_register_t *registers = calloc(SALE_CUSTOMERS, sizeof(*registers));
    assert_non_null(registers);
    int registered = 0;
    for (int i = 0; i < SALE_CUSTOMERS; i++) {
        batch_register_t *reg = &registers[i];
        snprintf(reg->name, sizeof(reg->name), "buyer_%d", i);
        reg->op.op.on_done = count_batch_done;
        reg->op.op.data = &registered;
        reg->op.op.pool = &h->pool;
        reg->op.username = h2o_iovec_init(reg->name, strlen(reg->name));
        reg->op.kind = SK_USER_CUSTOMER;
        reg->op.password_hash = HASH_A;
        sk_store_user_register(h->store, h->thread, &reg->op);
    }
    for (int i = 0; registered < SALE_CUSTOMERS && i < 1000; i++)
        h2o_evloop_run(h->loop, 10);
    assert_int_equal(registered, SALE_CUSTOMERS);
    free(registers);
}

/* Runs `rounds` sales of coupons of `amount` on SALE_THREADS threads and checks that each
 * granted exactly `amount`, to distinct customers, in memory and in SQL. */
static void run_sale(harness_t *h, int rounds, int amount)
{
    char name[32], query[160];
    assert_int_equal(do_register(h, "seller", SK_USER_SELLER, HASH_A), SK_STORE_OK);
    for (int round = 0; round < rounds; round++) {
        snprintf(name, sizeof(name), "hot_%d", round);
        assert_int_equal(do_create(h, "seller", name, amount), SK_STORE_OK);
    }
    register_buyers(h);

    sale_t *sale = calloc(1, sizeof(*sale));
    assert_non_null(sale);
    sale->store = h->store;
    sale->rounds = rounds;
    sale->results = malloc((size_t)rounds * SALE_CUSTOMERS * sizeof(sale->results[0]));
    assert_non_null(sale->results);
    for (int i = 0; i < SALE_CUSTOMERS; i++) {
        snprintf(name, sizeof(name), "buyer_%d", i);
        sale->customer_ids[i] = user_id(h, name);
        assert_true(sale->customer_ids[i] >= 1);
    }
    for (int i = 0; i < rounds * SALE_CUSTOMERS; i++)
        sale->results[i] = (sk_store_result_t)-1;
    assert_int_equal(pthread_barrier_init(&sale->barrier, NULL, SALE_THREADS), 0);
    sale_worker_t workers[SALE_THREADS];
    pthread_t threads[SALE_THREADS];
    for (int t = 0; t < SALE_THREADS; t++) {
        workers[t] = (sale_worker_t){.sale = sale, .id = t};
        h2o_mem_init_pool(&workers[t].pool);
        assert_int_equal(pthread_create(&threads[t], NULL, sale_worker_main, &workers[t]), 0);
    }
    for (int t = 0; t < SALE_THREADS; t++) {
        assert_int_equal(pthread_join(threads[t], NULL), 0);
        h2o_mem_clear_pool(&workers[t].pool);
    }
    pthread_barrier_destroy(&sale->barrier);
    assert_int_equal(atomic_load(&sale->timeouts), 0);
    assert_int_equal(atomic_load(&sale->wrong_thread), 0);

    for (int round = 0; round < rounds; round++) {
        int granted = 0, sold_out = 0;
        for (int i = 0; i < SALE_CUSTOMERS; i++) {
            sk_store_result_t result = sale->results[round * SALE_CUSTOMERS + i];
            if (result == SK_STORE_OK)
                ++granted;
            else if (result == SK_STORE_SOLD_OUT)
                ++sold_out;
            else
                fail_msg("round %d, buyer_%d: result %d", round, i, (int)result);
        }
        if (granted != amount)
            fail_msg("round %d: %d granted, amount %d", round, granted, amount);
        assert_int_equal(sold_out, SALE_CUSTOMERS - amount);
        snprintf(name, sizeof(name), "hot_%d", round);
        assert_int_equal(listed_left(h, "seller", name), 0);
    }

    /* Each winner, and only a winner, holds the coupon, in memory... */
    for (int i = 0; i < SALE_CUSTOMERS; i++) {
        int won = 0;
        for (int round = 0; round < rounds; round++)
            won += sale->results[round * SALE_CUSTOMERS + i] == SK_STORE_OK;
        snprintf(name, sizeof(name), "buyer_%d", i);
        sk_store_coupon_list_t list;
        assert_int_equal(do_list(h, name, 1, &list), SK_STORE_OK);
        assert_int_equal(list.count, won < SK_STORE_PAGE_SIZE ? won : SK_STORE_PAGE_SIZE);
    }

    /* ...and in SQL, after the store has shut down. */
    harness_close_store(h);
    assert_int_equal(sql_int(h->db_path, "SELECT count(*) FROM grants"), rounds * amount);
    assert_int_equal(sql_int(h->db_path, "SELECT count(*) FROM coupons WHERE remaining != 0"), 0);
    for (int round = 0; round < rounds; round++) {
        snprintf(query, sizeof(query),
                 "SELECT count(DISTINCT customer) FROM grants WHERE coupon = 'hot_%d'", round);
        assert_int_equal(sql_int(h->db_path, query), amount);
    }
    for (int i = 0; i < SALE_CUSTOMERS; i++) {
        int won = 0;
        for (int round = 0; round < rounds; round++)
            won += sale->results[round * SALE_CUSTOMERS + i] == SK_STORE_OK;
        snprintf(query, sizeof(query), "SELECT count(*) FROM grants WHERE customer = 'buyer_%d'",
                 i);
        assert_int_equal(sql_int(h->db_path, query), won);
    }
    free(sale->results);
    free(sale);
}

static void test_concurrent_flash_sale(void **state)
{
    /* The brief's sale: one coupon of 100, 400 buyers on 4 threads. */
    run_sale(*state, 1, 100);
}

static void test_concurrent_sell_out_rounds(void **state)
{
    /* Twenty sell-out moments, each in the middle of a burst from every thread: the race
     * between the lock-free sold-out check and the locked one gets many chances to
     * oversell. (Without the locked check, this test failed 6 runs out of 6.) */
    run_sale(*state, 20, 150);
}

int main(void)
{
    /* Keep the expected warnings (tampered rows, refused inserts) out of the test log. */
    sk_log_set_level(SK_LOG_ERROR);
#define STORE_TEST(name) cmocka_unit_test_setup_teardown(name, setup_harness, teardown_harness)
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_register_and_find),
        STORE_TEST(test_find_completes_synchronously),
        STORE_TEST(test_coupon_create),
        STORE_TEST(test_coupon_sale_window_stored),
        STORE_TEST(test_list_paging),
        STORE_TEST(test_list_exact_page_boundary),
        STORE_TEST(test_catalog),
        STORE_TEST(test_grab_outcomes_in_precedence_order),
        STORE_TEST(test_grab_by_unknown_customer),
        STORE_TEST(test_grab_shows_in_lists),
        STORE_TEST(test_customer_holdings_paging),
        STORE_TEST(test_revoke),
        STORE_TEST(test_user_ids),
        STORE_TEST(test_deployment_id),
        STORE_TEST(test_expired_revocations_pruned_at_start),
        STORE_TEST(test_expired_revocations_pruned_periodically),
        STORE_TEST(test_ready_and_stats),
        STORE_TEST(test_answer_comes_after_the_write),
        STORE_TEST(test_reload_after_restart),
        STORE_TEST(test_tampered_remaining_is_fixed),
        STORE_TEST(test_kill_9_loses_nothing_answered),
        STORE_TEST(test_failed_grant_is_undone),
        STORE_TEST(test_no_answer_from_a_pending_grant),
        STORE_TEST(test_grab_again_waits_for_a_pending_grant),
        STORE_TEST(test_failed_coupon_create_is_undone),
        STORE_TEST(test_failed_register_is_undone),
        STORE_TEST(test_failed_register_retry_does_not_leak),
        STORE_TEST(test_ops_after_drain_are_refused),
        STORE_TEST(test_concurrent_flash_sale),
        STORE_TEST(test_concurrent_sell_out_rounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
