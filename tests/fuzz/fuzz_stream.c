/*
 * libFuzzer driver: the persister's parser of grant stream entries (the replies of
 * XREADGROUP and XAUTOCLAIM, see hot_state.h for the entry format). The input is RESP;
 * each reply is read both as XREADGROUP's [[key, [entries]]] and as XAUTOCLAIM's
 * [cursor, [entries], ...]. Every grant that comes out must be one the grab script could
 * have written; a malformed one must be skipped, never half-read.
 *
 * The parser is static in persister.c, so this driver compiles that file into itself (as
 * h2o's unit tests do with theirs). It then defines every symbol persister.o would, and
 * the linker never pulls persister.o out of sk_core. Its log lines are compiled out: it
 * logs every malformed grant, millions of lines at fuzzing speed.
 */
#include "util/log.h"
/* The arguments stay evaluated, unused: a parameter only logged must not become unused. */
static inline void quiet_log(int level, const char *module, ...)
{
    (void)level;
    (void)module;
}
#define sk_log(level, module, ...) quiet_log(level, module, __VA_ARGS__)
#include "../../src/store/distributed/persister.c"

#include "resp_replies.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int inside(const char *part, size_t len, const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_STRING)
        return part >= reply->str && part + len <= reply->str + reply->len;
    if (reply->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i != reply->elements; ++i)
            if (inside(part, len, reply->element[i]))
                return 1;
    return 0;
}

static void check_part(const char *part, size_t len, const redisReply *reply)
{
    if (len == 0 || memchr(part, '\n', len) != NULL || !inside(part, len, reply))
        __builtin_trap();
}

static void check_batch(const step_batch_t *batch, const redisReply *reply)
{
    for (size_t i = 0; i != batch->grant_count; ++i) {
        const sk_mysql_grant_t *grant = &batch->grants[i].grant;
        check_part(grant->customer, grant->customer_len, reply);
        check_part(grant->seller, grant->seller_len, reply);
        check_part(grant->coupon, grant->coupon_len, reply);
        if (grant->remaining < 0 || grant->granted_at < 0 || batch->grants[i].order < 0)
            __builtin_trap();
    }
    for (unsigned shard = 0; shard != SK_HOT_SHARDS; ++shard)
        for (size_t i = 0; i != batch->id_count[shard]; ++i)
            if (!inside(batch->ids[shard][i], batch->id_lens[shard][i], reply))
                __builtin_trap();
}

static void dispose_batch(step_batch_t *batch)
{
    for (unsigned shard = 0; shard != SK_HOT_SHARDS; ++shard) {
        free(batch->ids[shard]);
        free(batch->id_lens[shard]);
    }
    free(batch->grants);
}

static void parse_as(const redisReply *entries, const redisReply *reply)
{
    step_batch_t batch = {0};
    if (add_entries(&batch, 3, entries) == 0)
        check_batch(&batch, reply);
    dispose_batch(&batch);
}

static void on_reply(redisReply *reply, void *arg)
{
    (void)arg;
    /* XREADGROUP, the shape read_shard accepts */
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2)
        parse_as(reply->element[0]->element[1], reply);
    /* XAUTOCLAIM, the shape claim_shard accepts */
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2)
        parse_as(reply->element[1], reply);
    /* and any reply as the entries themselves */
    parse_as(reply, reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sk_fuzz_each_reply(data, size, on_reply, NULL);
    return 0;
}
