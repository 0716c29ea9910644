/* The SQL copy read into memory (see sql_snapshot.h). */
#include "store/distributed/sql_snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

typedef struct load {
    sk_sql_snapshot_t *snapshot;
    int failed;
} load_t;

static char *copy_bytes(const char *bytes, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy != NULL) {
        memcpy(copy, bytes, len);
        copy[len] = '\0';
    }
    return copy;
}

static int member_of(char *out, size_t size, const char *seller, size_t seller_len,
                     const char *name, size_t name_len)
{
    return snprintf(out, size, "%.*s/%.*s", (int)seller_len, seller, (int)name_len, name);
}

static int collect_coupon(void *data, const sk_mysql_coupon_t *row)
{
    load_t *load = data;
    sk_sql_snapshot_t *snapshot = load->snapshot;
    sk_sql_coupon_t *coupon = calloc(1, sizeof(*coupon));
    if (coupon == NULL)
        goto fail;
    if (snapshot->count == snapshot->capacity) {
        size_t capacity = snapshot->capacity ? snapshot->capacity * 2 : 64;
        sk_sql_coupon_t **grown = realloc(snapshot->coupons, capacity * sizeof(*grown));
        if (grown == NULL) {
            free(coupon);
            goto fail;
        }
        snapshot->coupons = grown;
        snapshot->capacity = capacity;
    }
    snapshot->coupons[snapshot->count++] = coupon; /* owned from here on */
    coupon->row = *row;
    coupon->row.seller = copy_bytes(row->seller, row->seller_len);
    coupon->row.name = copy_bytes(row->name, row->name_len);
    coupon->row.description = copy_bytes(row->description, row->description_len);
    if (coupon->row.seller == NULL || coupon->row.name == NULL || coupon->row.description == NULL)
        goto fail;
    char member[2 * 64 + 2];
    int len =
        member_of(member, sizeof(member), row->seller, row->seller_len, row->name, row->name_len);
    if (sk_index_insert(snapshot->by_member, member, (size_t)len, coupon, NULL) == NULL)
        goto fail;
    return 0;
fail:
    load->failed = 1;
    return 1;
}

static int collect_grant(void *data, const sk_mysql_grant_t *grant)
{
    load_t *load = data;
    sk_sql_snapshot_t *snapshot = load->snapshot;
    ++snapshot->grants;
    if (grant->seller_len > 64 || grant->coupon_len > 64)
        return 0;
    char member[2 * 64 + 2];
    int len = member_of(member, sizeof(member), grant->seller, grant->seller_len, grant->coupon,
                        grant->coupon_len);
    sk_sql_coupon_t *coupon = sk_index_find(snapshot->by_member, member, (size_t)len);
    if (coupon == NULL)
        return 0; /* a grant of a coupon that is not in SQL: nothing to load it into */
    if (coupon->customer_count == coupon->customer_capacity) {
        size_t capacity = coupon->customer_capacity ? coupon->customer_capacity * 2 : 16;
        char **customers = realloc(coupon->customers, capacity * sizeof(*customers));
        if (customers == NULL)
            goto fail;
        coupon->customers = customers;
        int64_t *orders = realloc(coupon->orders, capacity * sizeof(*orders));
        if (orders == NULL)
            goto fail;
        coupon->orders = orders;
        coupon->customer_capacity = capacity;
    }
    char *customer = copy_bytes(grant->customer, grant->customer_len);
    if (customer == NULL)
        goto fail;
    coupon->customers[coupon->customer_count] = customer;
    coupon->orders[coupon->customer_count++] = (int64_t)snapshot->grants;
    return 0;
fail:
    load->failed = 1;
    return 1;
}

int sk_sql_snapshot_load(sk_sql_snapshot_t *snapshot, sk_mysql_t *sql)
{
    memset(snapshot, 0, sizeof(*snapshot));
    load_t load = {.snapshot = snapshot};
    int status = SK_ENOMEM;
    snapshot->by_member = sk_index_create();
    if (snapshot->by_member == NULL)
        goto fail;
    if (sk_mysql_coupons_each(sql, collect_coupon, &load) != SK_MYSQL_OK && !load.failed) {
        status = SK_EUNAVAILABLE;
        goto fail;
    }
    if (load.failed)
        goto fail;
    if (sk_mysql_grants_each(sql, collect_grant, &load) != SK_MYSQL_OK && !load.failed) {
        status = SK_EUNAVAILABLE;
        goto fail;
    }
    if (load.failed)
        goto fail;
    return 0;
fail:
    sk_sql_snapshot_dispose(snapshot);
    return status;
}

sk_sql_coupon_t *sk_sql_snapshot_find(sk_sql_snapshot_t *snapshot, const char *member, size_t len)
{
    return sk_index_find(snapshot->by_member, member, len);
}

void sk_sql_snapshot_dispose(sk_sql_snapshot_t *snapshot)
{
    for (size_t i = 0; i != snapshot->count; ++i) {
        sk_sql_coupon_t *coupon = snapshot->coupons[i];
        for (size_t c = 0; c != coupon->customer_count; ++c)
            free(coupon->customers[c]);
        free(coupon->customers);
        free(coupon->orders);
        free((char *)coupon->row.seller);
        free((char *)coupon->row.name);
        free((char *)coupon->row.description);
        free(coupon);
    }
    free(snapshot->coupons);
    if (snapshot->by_member != NULL)
        sk_index_destroy(snapshot->by_member);
    memset(snapshot, 0, sizeof(*snapshot));
}
