/*
 * The live sale view (see status_page.h): GET /status, GET /status.json, and the reporter
 * thread of the distributed deployment.
 *
 * A window is the SK_STORE_SALE_WINDOW whole seconds before the current one. In the
 * distributed deployment a second is shown once REPORT_SETTLE_MS have passed after its
 * end: every instance's reporter adds it REPORT_AT_MS after the end, so the newest second
 * shown holds all of them rather than the quickest instance's alone.
 */
#include "api/status_page.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_internal.h"
#include "api/body.h"
#include "api/status_html.h"
#include "util/error.h"
#include "util/log.h"
#include "util/signals.h"

#define REPORT_AT_MS 100     /* the reporter runs this long after each second's end */
#define REPORT_SETTLE_MS 350 /* distributed: a second is shown this long after its end */

static const char *const outcome_names[SK_STORE_SALE_OUTCOMES] = {"granted", "sold_out",
                                                                  "already_held", "rejected"};

struct sk_status_page {
    sk_metrics_t *metrics;
    sk_store_t *store;
    /* The reporter: started when the store shares figures. */
    pthread_t reporter;
    int reporter_started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping; /* guarded by lock */
    /* What was added to the store of each second (by second modulo the ring), and this
     * turn's increments; the reporter's alone. */
    sk_store_sale_second_t reported[SK_METRICS_SALE_RING];
    sk_store_sale_second_t current[SK_STORE_SALE_WINDOW], increments[SK_STORE_SALE_WINDOW];
};

static int64_t unix_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* ---- the reporter ---- */

/*
 * Adds what this instance counted since the last turn in each second of the window: a
 * second is reported again while answers still arrive in it (a thread that read the clock
 * just before the second ended), and a turn whose call failed is made up by the next.
 */
static void report(sk_status_page_t *page)
{
    int64_t now = (int64_t)time(NULL);
    size_t count = 0;
    for (int64_t second = now - SK_STORE_SALE_WINDOW; second < now; ++second) {
        sk_store_sale_second_t *current = &page->current[count];
        sk_metrics_sale_second(page->metrics, second, current);
        const sk_store_sale_second_t *reported =
            &page->reported[(uint64_t)second % SK_METRICS_SALE_RING];
        int is_same_second = reported->second == second;
        sk_store_sale_second_t *increment = &page->increments[count];
        increment->second = second;
        int changed = 0;
        for (int o = 0; o != SK_STORE_SALE_OUTCOMES; ++o) {
            uint64_t before = is_same_second ? reported->outcomes[o] : 0;
            increment->outcomes[o] =
                current->outcomes[o] > before ? current->outcomes[o] - before : 0;
            changed |= increment->outcomes[o] != 0;
        }
        for (int b = 0; b != SK_STORE_SALE_LATENCY_BUCKETS; ++b) {
            uint64_t before = is_same_second ? reported->latency[b] : 0;
            increment->latency[b] = current->latency[b] > before ? current->latency[b] - before : 0;
            changed |= increment->latency[b] != 0;
        }
        if (changed)
            ++count;
    }
    /* Also with nothing to add: the call says that this instance is there. */
    if (sk_store_sale_publish(page->store, page->increments, count) != 0)
        return;
    for (size_t i = 0; i != count; ++i)
        page->reported[(uint64_t)page->current[i].second % SK_METRICS_SALE_RING] = page->current[i];
}

static void *reporter_main(void *data)
{
    sk_status_page_t *page = data;
    report(page); /* at once: the other instances count this one from now on */
    pthread_mutex_lock(&page->lock);
    while (!page->stopping) {
        /* The wall clock's next second, REPORT_AT_MS in: the same moment on every instance
         * (the condition variable waits on CLOCK_REALTIME). */
        struct timespec now, due;
        clock_gettime(CLOCK_REALTIME, &now);
        due.tv_sec = now.tv_sec + (now.tv_nsec >= REPORT_AT_MS * 1000000L);
        due.tv_nsec = REPORT_AT_MS * 1000000L;
        int waited = 0;
        while (!page->stopping && waited != ETIMEDOUT)
            waited = pthread_cond_timedwait(&page->wake, &page->lock, &due);
        /* A SIGTERM ends the reports at once, while the service drains: a call to a hung
         * Redis then runs out in parallel, not after the drain. */
        if (page->stopping || sk_signals_stop_requested())
            break;
        pthread_mutex_unlock(&page->lock);
        report(page);
        pthread_mutex_lock(&page->lock);
    }
    pthread_mutex_unlock(&page->lock);
    return NULL;
}

sk_status_page_t *sk_status_page_create(sk_metrics_t *metrics, sk_store_t *store)
{
    sk_status_page_t *page = calloc(1, sizeof(*page));
    if (page == NULL) {
        sk_log(SK_LOG_ERROR, "api", "out of memory for the status page");
        return NULL;
    }
    page->metrics = metrics;
    page->store = store;
    pthread_mutex_init(&page->lock, NULL);
    pthread_cond_init(&page->wake, NULL);
    if (sk_store_shares_sale_figures(store)) {
        int error = pthread_create(&page->reporter, NULL, reporter_main, page);
        if (error != 0) {
            sk_log(SK_LOG_ERROR, "api", "pthread_create failed for the sale reporter: %s",
                   strerror(error));
            sk_status_page_destroy(page);
            return NULL;
        }
        page->reporter_started = 1;
    }
    return page;
}

void sk_status_page_destroy(sk_status_page_t *page)
{
    if (page == NULL)
        return;
    if (page->reporter_started) {
        pthread_mutex_lock(&page->lock);
        page->stopping = 1;
        pthread_cond_signal(&page->wake);
        pthread_mutex_unlock(&page->lock);
        pthread_join(page->reporter, NULL);
    }
    pthread_cond_destroy(&page->wake);
    pthread_mutex_destroy(&page->lock);
    free(page);
}

/* ---- GET /status ---- */

/* Nothing is loaded from anywhere but this origin (the page needs nothing from anywhere):
 * no other host can be reached from the page, nor frame it. */
#define PAGE_POLICY                                                                                \
    "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; "                         \
    "style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "              \
    "frame-ancestors 'none'"

static void add_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, value,
                          strlen(value));
}

void sk_api__handle_status(api_request_t *r)
{
    add_header(r->req, "content-security-policy", PAGE_POLICY);
    add_header(r->req, "x-content-type-options", "nosniff");
    add_header(r->req, "cache-control", "no-cache");
    sk_api__send_body(r, 200, "text/html; charset=utf-8",
                      h2o_iovec_init((const char *)sk_status_html, sk_status_html_len));
}

/* ---- GET /status.json ---- */

typedef struct status_request {
    api_request_t *r;
    int64_t page;
    size_t waiting; /* operations still to complete, and one while starting them */
    sk_store_coupon_catalog_t catalog;
    sk_store_sale_read_t sale;
} status_request_t;

/*
 * The answer is written by hand into one buffer: with jansson (an object per coupon and
 * per number, then a printf per number) it cost about 140 us of CPU for a page of 50
 * coupons, most of it malloc and printf; this way a fraction of that.
 */
typedef struct json_out {
    char *bytes;
    size_t len, capacity;
    int failed;
} json_out_t;

static char *reserve(json_out_t *out, size_t more)
{
    if (out->failed)
        return NULL;
    if (out->capacity - out->len < more) {
        size_t capacity = out->capacity * 2 > out->len + more ? out->capacity * 2 : out->len + more;
        char *grown = realloc(out->bytes, capacity);
        if (grown == NULL) {
            out->failed = 1;
            return NULL;
        }
        out->bytes = grown;
        out->capacity = capacity;
    }
    return out->bytes + out->len;
}

static void put(json_out_t *out, const char *text, size_t len)
{
    char *at = reserve(out, len);
    if (at == NULL)
        return;
    memcpy(at, text, len);
    out->len += len;
}

#define PUT_LITERAL(out, literal) put(out, literal, sizeof(literal) - 1)

static void put_int(json_out_t *out, int64_t value)
{
    char digits[24], *end = digits + sizeof(digits), *at = end;
    uint64_t magnitude = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;
    do {
        *--at = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (value < 0)
        *--at = '-';
    put(out, at, (size_t)(end - at));
}

/* A JSON string of UTF-8 bytes (the API admits no other): quotes, backslashes and control
 * characters escaped. */
static void put_string(json_out_t *out, h2o_iovec_t text)
{
    static const char hex[] = "0123456789abcdef";
    char *at = reserve(out, text.len * 6 + 2);
    if (at == NULL)
        return;
    char *start = at;
    *at++ = '"';
    for (size_t i = 0; i != text.len; ++i) {
        unsigned char c = (unsigned char)text.base[i];
        if (c == '"' || c == '\\') {
            *at++ = '\\';
            *at++ = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            *at++ = '\\';
            *at++ = 'u';
            *at++ = '0';
            *at++ = '0';
            *at++ = hex[c >> 4];
            *at++ = hex[c & 15];
        } else {
            *at++ = (char)c;
        }
    }
    *at++ = '"';
    out->len += (size_t)(at - start);
}

/* Milliseconds with microseconds, or null. */
static void put_latency(json_out_t *out, const uint64_t *latency, double quantile)
{
    double usec = sk_metrics_latency_quantile(latency, quantile);
    if (usec < 0) {
        PUT_LITERAL(out, "null");
        return;
    }
    int64_t whole_usec = (int64_t)llround(usec);
    char text[32];
    int len = snprintf(text, sizeof(text), "%" PRId64 ".%03" PRId64, whole_usec / 1000,
                       whole_usec % 1000);
    put(out, text, (size_t)len);
}

static void answer(status_request_t *ctx)
{
    api_request_t *r = ctx->r;
    const sk_store_sale_read_t *sale = &ctx->sale;
    if (ctx->catalog.op.result != SK_STORE_OK || sale->op.result != SK_STORE_OK) {
        sk_api__send_unavailable(r);
        return;
    }
    json_out_t out = {malloc(4096), 0, 4096, 0};
    if (out.bytes == NULL) {
        sk_api__send_unavailable(r);
        return;
    }
    PUT_LITERAL(&out, "{\"errMsg\":\"\",\"coupons\":[");
    for (size_t i = 0; i != ctx->catalog.count; ++i) {
        const sk_store_coupon_item_t *item = &ctx->catalog.items[i];
        if (i != 0)
            PUT_LITERAL(&out, ",");
        PUT_LITERAL(&out, "{\"seller\":");
        put_string(&out, item->seller);
        PUT_LITERAL(&out, ",\"name\":");
        put_string(&out, item->name);
        PUT_LITERAL(&out, ",\"amount\":");
        put_int(&out, item->amount);
        PUT_LITERAL(&out, ",\"left\":");
        put_int(&out, item->left);
        PUT_LITERAL(&out, "}");
    }
    int64_t total = ctx->catalog.total;
    PUT_LITERAL(&out, "],\"page\":");
    put_int(&out, ctx->page);
    PUT_LITERAL(&out, ",\"pages\":");
    put_int(&out, (total + SK_STORE_CATALOG_PAGE_SIZE - 1) / SK_STORE_CATALOG_PAGE_SIZE);
    PUT_LITERAL(&out, ",\"total\":");
    put_int(&out, total);
    PUT_LITERAL(&out, ",\"page_size\":");
    put_int(&out, SK_STORE_CATALOG_PAGE_SIZE);
    PUT_LITERAL(&out, ",\"window_seconds\":");
    put_int(&out, SK_STORE_SALE_WINDOW);
    PUT_LITERAL(&out, ",\"window_end\":");
    put_int(&out, sale->first_second + SK_STORE_SALE_WINDOW - 1);
    PUT_LITERAL(&out, ",\"grabs\":{");
    for (int o = 0; o != SK_STORE_SALE_OUTCOMES; ++o) {
        if (o != 0)
            PUT_LITERAL(&out, ",");
        PUT_LITERAL(&out, "\"");
        put(&out, outcome_names[o], strlen(outcome_names[o]));
        PUT_LITERAL(&out, "\":[");
        for (int i = 0; i != SK_STORE_SALE_WINDOW; ++i) {
            if (i != 0)
                PUT_LITERAL(&out, ",");
            put_int(&out, (int64_t)sale->outcomes[i][o]);
        }
        PUT_LITERAL(&out, "]");
    }
    PUT_LITERAL(&out, "},\"latency_ms\":{\"p50\":");
    put_latency(&out, sale->latency, 0.5);
    PUT_LITERAL(&out, ",\"p99\":");
    put_latency(&out, sale->latency, 0.99);
    PUT_LITERAL(&out, "},\"instances\":");
    put_int(&out, sale->instances);
    if (sk_store_shares_sale_figures(r->thread->api->store))
        PUT_LITERAL(&out, ",\"deployment\":\"distributed\"}");
    else
        PUT_LITERAL(&out, ",\"deployment\":\"embedded\"}");
    if (out.failed) {
        free(out.bytes);
        sk_api__send_unavailable(r);
        return;
    }
    add_header(r->req, "cache-control", "no-store");
    sk_api__send_json(r, 200, h2o_iovec_init(out.bytes, out.len));
    free(out.bytes);
}

static void on_part_done(sk_store_op_t *op)
{
    status_request_t *ctx = op->data;
    if (--ctx->waiting == 0)
        answer(ctx);
}

void sk_api__handle_status_data(api_request_t *r)
{
    status_request_t *ctx = h2o_mem_alloc_pool(&r->req->pool, sizeof(*ctx));
    memset(ctx, 0, sizeof(*ctx));
    ctx->r = r;
    if (sk_body_query_page(r->route.query.base, r->route.query.len, &ctx->page) != 0) {
        sk_api__send_error(r, 400, "Wrong format of page.");
        return;
    }
    /* A seller that cannot be one (a bad escape, too long) is a seller with no coupons. */
    char seller[SK_STORE_MAX_NAME + 1];
    size_t seller_len = 0;
    int found = sk_body_query_string(r->route.query.base, r->route.query.len, "seller", seller,
                                     sizeof(seller), &seller_len);
    if (found < 0) {
        memcpy(seller, "/", 2); /* no user is called that */
        seller_len = 1;
    }
    sk_api_t *api = r->thread->api;
    int shared = sk_store_shares_sale_figures(api->store);
    int64_t end_ms = unix_ms() - (shared ? REPORT_SETTLE_MS : 0);
    ctx->sale.first_second = end_ms / 1000 - SK_STORE_SALE_WINDOW;
    ctx->waiting = 1;

    ctx->catalog.seller = h2o_strdup(&r->req->pool, seller, seller_len);
    ctx->catalog.page = ctx->page;
    ctx->catalog.op.on_done = on_part_done;
    ctx->catalog.op.data = ctx;
    ctx->catalog.op.pool = &r->req->pool;
    ++ctx->waiting;
    sk_store_coupon_catalog(api->store, r->thread->store, &ctx->catalog);
    if (shared) {
        ctx->sale.op.on_done = on_part_done;
        ctx->sale.op.data = ctx;
        ctx->sale.op.pool = &r->req->pool;
        ++ctx->waiting;
        sk_store_sale_read(api->store, r->thread->store, &ctx->sale);
    } else {
        sk_metrics_sale_window(api->metrics, &ctx->sale);
        ctx->sale.op.result = SK_STORE_OK;
    }
    if (--ctx->waiting == 0)
        answer(ctx);
}
