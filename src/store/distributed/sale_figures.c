/*
 * The live sale view's figures in the distributed deployment (see store.h, "sale"): every
 * instance adds its grab answers of each second to one Redis hash per second, and the view
 * reads the last minute of them, so that any instance's page shows all of them.
 *
 *   sk:sale:{live}:w:SECOND  hash: g s a r (granted, sold out, already held, rejected) and
 *                            l<i> (latency bucket i) of every instance in that Unix second;
 *                            expires SALE_TTL_S after its last increment
 *   sk:sale:{live}:i         sorted set: instance -> Unix ms of its last report
 *
 * One hash tag for all: each call is one script on one Cluster slot. The keys stand apart
 * from the hot state's (sk:{T}:...), which reconcile and the loader scan for.
 *
 * Publishing is a blocking call on its own connection, made by the api's reporter thread
 * once a second; reading is one script call on the worker's own pipelined client.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>

#include "client/redis/sync.h"
#include "store/distributed/store_redis_internal.h"
#include "util/error.h"
#include "util/log.h"

#define SALE_KEY_PREFIX "sk:sale:{live}:"
#define SALE_INSTANCES_KEY SALE_KEY_PREFIX "i"
#define SALE_TTL_S "120"          /* a second's hash outlives the window twice */
#define SALE_FRESH_MS 3000        /* an instance silent for longer is not counted */
#define SALE_REDIS_TIMEOUT_MS 300 /* a hung Redis holds the reporter this long per call */
#define SALE_KEY_MAX (sizeof(SALE_KEY_PREFIX) + 24)

static const char *const outcome_fields[SK_STORE_SALE_OUTCOMES] = {"g", "s", "a", "r"};

/* KEYS: the instances' set, then one hash per second. ARGV: now (Unix ms), instance, TTL,
 * then for each hash: the number of fields n, then n pairs of field and increment. */
static const char publish_source[] =
    "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - 60000)\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
    "local a = 4\n"
    "for k = 2, #KEYS do\n"
    "  local n = tonumber(ARGV[a])\n"
    "  for i = 1, n do\n"
    "    redis.call('HINCRBY', KEYS[k], ARGV[a + 2 * i - 1], ARGV[a + 2 * i])\n"
    "  end\n"
    "  a = a + 1 + 2 * n\n"
    "  redis.call('EXPIRE', KEYS[k], ARGV[3])\n"
    "end\n"
    "return 1\n";

/* KEYS: the instances' set, then one hash per second. ARGV: the oldest report that counts
 * (Unix ms). Reply: the instances counted, then each hash's fields and values. */
static const char read_source[] = "local out = {redis.call('ZCOUNT', KEYS[1], ARGV[1], '+inf')}\n"
                                  "for k = 2, #KEYS do\n"
                                  "  out[k] = redis.call('HGETALL', KEYS[k])\n"
                                  "end\n"
                                  "return out\n";

void sk__sale_figures_init(sk__redis_store_t *store)
{
    sk_redis_script_init(&store->sale_publish_script, publish_source);
    sk_redis_script_init(&store->sale_read_script, read_source);
}

void sk__sale_figures_dispose(sk__redis_store_t *store)
{
    if (store->sale_redis != NULL)
        sk_redis_sync_close(store->sale_redis);
    store->sale_redis = NULL;
}

static size_t second_key(char *out, int64_t second)
{
    return (size_t)snprintf(out, SALE_KEY_MAX, SALE_KEY_PREFIX "w:%" PRId64, second);
}

static int64_t unix_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* The arguments of one publish call, on the heap: up to a minute of seconds after an
 * outage, each with every field. */
typedef struct publish_call {
    const char **keys, **args;
    size_t *key_lens, *arg_lens;
    char *text; /* the keys' and numbers' bytes */
    size_t key_count, arg_count, text_used, text_size;
} publish_call_t;

/* Appends `prefix` and `value` in decimal to the call's text as the next argument. */
static void add_arg(publish_call_t *call, const char *prefix, uint64_t value)
{
    char *word = call->text + call->text_used;
    int written = snprintf(word, call->text_size - call->text_used, "%s%" PRIu64, prefix, value);
    assert(written >= 0 && (size_t)written < call->text_size - call->text_used);
    call->text_used += (size_t)written + 1;
    call->args[call->arg_count] = word;
    call->arg_lens[call->arg_count++] = (size_t)written;
}

int sk__sale_publish(sk_store_t *super, const sk_store_sale_second_t *seconds, size_t count)
{
    sk__redis_store_t *store = (sk__redis_store_t *)super;
    enum { FIELDS = SK_STORE_SALE_OUTCOMES + SK_STORE_SALE_LATENCY_BUCKETS };
    size_t max_args = 3 + count * (1 + 2 * FIELDS);
    publish_call_t call = {0};
    call.keys = malloc((count + 1) * sizeof(*call.keys));
    call.key_lens = malloc((count + 1) * sizeof(*call.key_lens));
    call.args = malloc(max_args * sizeof(*call.args));
    call.arg_lens = malloc(max_args * sizeof(*call.arg_lens));
    call.text_size = (count + 1) * SALE_KEY_MAX + max_args * 24 + sizeof(store->consumer);
    call.text = malloc(call.text_size);
    int status = SK_EUNAVAILABLE;
    if (call.keys == NULL || call.key_lens == NULL || call.args == NULL || call.arg_lens == NULL ||
        call.text == NULL)
        goto done;

    call.keys[0] = SALE_INSTANCES_KEY;
    call.key_lens[0] = strlen(SALE_INSTANCES_KEY);
    call.key_count = 1;
    add_arg(&call, "", (uint64_t)unix_ms());
    call.args[call.arg_count] = store->consumer;
    call.arg_lens[call.arg_count++] = strlen(store->consumer);
    call.args[call.arg_count] = SALE_TTL_S;
    call.arg_lens[call.arg_count++] = strlen(SALE_TTL_S);
    for (size_t i = 0; i != count; ++i) {
        const sk_store_sale_second_t *second = &seconds[i];
        char *key = call.text + call.text_used;
        size_t key_len = second_key(key, second->second);
        call.text_used += key_len + 1;
        call.keys[call.key_count] = key;
        call.key_lens[call.key_count++] = key_len;
        uint64_t fields = 0;
        for (int o = 0; o != SK_STORE_SALE_OUTCOMES; ++o)
            fields += second->outcomes[o] != 0;
        for (int b = 0; b != SK_STORE_SALE_LATENCY_BUCKETS; ++b)
            fields += second->latency[b] != 0;
        add_arg(&call, "", fields);
        for (int o = 0; o != SK_STORE_SALE_OUTCOMES; ++o) {
            if (second->outcomes[o] == 0)
                continue;
            call.args[call.arg_count] = outcome_fields[o];
            call.arg_lens[call.arg_count++] = 1;
            add_arg(&call, "", second->outcomes[o]);
        }
        for (int b = 0; b != SK_STORE_SALE_LATENCY_BUCKETS; ++b) {
            if (second->latency[b] == 0)
                continue;
            add_arg(&call, "l", (uint64_t)b);
            add_arg(&call, "", second->latency[b]);
        }
    }

    if (store->sale_redis == NULL) {
        char error[256];
        store->sale_redis = sk_redis_sync_connect(&store->redis_config, SALE_REDIS_TIMEOUT_MS,
                                                  error, sizeof(error));
        if (store->sale_redis == NULL) {
            sk_log(SK_LOG_WARN, "store", "sale figures: Redis unreachable: %s", error);
            goto done;
        }
    }
    redisReply *reply =
        sk_redis_sync_eval(store->sale_redis, &store->sale_publish_script, (int)call.key_count,
                           call.keys, call.key_lens, (int)call.arg_count, call.args, call.arg_lens);
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
        status = 0;
    else
        sk_log(SK_LOG_WARN, "store", "sale figures: Redis did not take them: %s",
               reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply->str : "no answer");
    if (reply != NULL)
        freeReplyObject(reply);
done:
    free(call.keys);
    free(call.key_lens);
    free(call.args);
    free(call.arg_lens);
    free(call.text);
    return status;
}

static void complete_sale_read(sk_store_sale_read_t *op, sk_store_result_t result)
{
    op->op.result = result;
    op->op.on_done(&op->op);
}

/* Adds one second's HGETALL reply (field, value, ...) to the op. */
static void add_second(sk_store_sale_read_t *op, size_t index, const redisReply *fields)
{
    if (fields->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t f = 0; f + 1 < fields->elements; f += 2) {
        const redisReply *name = fields->element[f];
        int64_t value = sk__redis_reply_int(fields->element[f + 1], 0);
        if (name->type != REDIS_REPLY_STRING || name->len == 0 || value <= 0)
            continue;
        if (name->str[0] == 'l') {
            char *end;
            unsigned long bucket = strtoul(name->str + 1, &end, 10);
            if (end != name->str + 1 && *end == '\0' && bucket < SK_STORE_SALE_LATENCY_BUCKETS)
                op->latency[bucket] += (uint64_t)value;
            continue;
        }
        for (int o = 0; o != SK_STORE_SALE_OUTCOMES; ++o) {
            if (name->len == 1 && name->str[0] == outcome_fields[o][0])
                op->outcomes[index][o] += (uint64_t)value;
        }
    }
}

static void on_sale_read(void *data, redisReply *reply)
{
    sk_store_sale_read_t *op = data;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 1 + SK_STORE_SALE_WINDOW) {
        complete_sale_read(op, SK_STORE_UNAVAILABLE);
        return;
    }
    /* The instance asking is there, whether its reporter has run yet or not. */
    op->instances = reply->element[0]->type == REDIS_REPLY_INTEGER ? reply->element[0]->integer : 0;
    if (op->instances < 1)
        op->instances = 1;
    for (size_t i = 0; i != SK_STORE_SALE_WINDOW; ++i)
        add_second(op, i, reply->element[1 + i]);
    complete_sale_read(op, SK_STORE_OK);
}

void sk__sale_read(sk_store_thread_t *thread, sk_store_sale_read_t *op)
{
    op->op._thread = thread;
    memset(op->outcomes, 0, sizeof(op->outcomes));
    memset(op->latency, 0, sizeof(op->latency));
    op->instances = 0;
    char text[SK_STORE_SALE_WINDOW][SALE_KEY_MAX];
    const char *keys[1 + SK_STORE_SALE_WINDOW] = {SALE_INSTANCES_KEY};
    size_t key_lens[1 + SK_STORE_SALE_WINDOW] = {strlen(SALE_INSTANCES_KEY)};
    for (size_t i = 0; i != SK_STORE_SALE_WINDOW; ++i) {
        key_lens[1 + i] = second_key(text[i], op->first_second + (int64_t)i);
        keys[1 + i] = text[i];
    }
    char since[24];
    const char *args[] = {since};
    size_t arg_lens[] = {
        (size_t)snprintf(since, sizeof(since), "%" PRId64, unix_ms() - SALE_FRESH_MS)};
    sk_redis_async_eval(thread->redis, &thread->store->sale_read_script, 1 + SK_STORE_SALE_WINDOW,
                        keys, key_lens, 1, args, arg_lens, on_sale_read, op);
}
