/*
 * For the fuzz drivers of the Redis reply parsers: fuzz bytes read as RESP by hiredis's own
 * reader, so the parsers get reply trees of exactly the shapes a Redis connection can hand
 * them (any nesting, nil, errors, integers, binary strings), not hand-made structs.
 */
#ifndef SK_FUZZ_RESP_REPLIES_H
#define SK_FUZZ_RESP_REPLIES_H

#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <stddef.h>
#include <stdint.h>

#define SK_FUZZ_MAX_ELEMENTS 4096

/* 0 when some "*N" in `data` announces more than SK_FUZZ_MAX_ELEMENTS elements: hiredis
 * 0.14 allocates an array as soon as it reads its header and has no limit of its own, so
 * such an input would only measure malloc. (A "*N" inside a string counts too: skipping an
 * input is always safe.) */
static inline int sk_fuzz_arrays_are_small(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i != size; ++i) {
        if (data[i] != '*')
            continue;
        uint64_t count = 0;
        for (size_t j = i + 1; j != size && j - i <= 12 && data[j] >= '0' && data[j] <= '9'; ++j)
            count = count * 10 + (uint64_t)(data[j] - '0');
        if (count > SK_FUZZ_MAX_ELEMENTS)
            return 0;
    }
    return 1;
}

/* Calls `on_reply` for each complete reply in `data` (none once the bytes stop being RESP);
 * the reply is freed after the call. */
static inline void sk_fuzz_each_reply(const uint8_t *data, size_t size,
                                      void (*on_reply)(redisReply *reply, void *arg), void *arg)
{
    if (!sk_fuzz_arrays_are_small(data, size))
        return;
    redisReader *reader = redisReaderCreate();
    if (reader == NULL)
        return;
    if (redisReaderFeed(reader, (const char *)data, size) == REDIS_OK) {
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(reader, &reply) != REDIS_OK || reply == NULL)
                break;
            on_reply(reply, arg);
            freeReplyObject(reply);
        }
    }
    redisReaderFree(reader);
}

#endif
