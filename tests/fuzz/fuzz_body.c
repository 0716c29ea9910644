/*
 * libFuzzer driver for src/api/body.c: the bytes are a request body for the JSON reader
 * and, on success, feed the field accessors; the same bytes are also read as a query string.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc tests/fuzz/fuzz_body.c \
 *       src/api/body.c -ljansson -o fuzz_body && ./fuzz_body CORPUS_DIR
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so a read past the end is caught even for an empty input. */
    char *copy = malloc(size > 0 ? size : 1);
    if (copy == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(copy, data, size);
    }

    json_t *object = sk_body_parse_object(copy, size);
    if (object != NULL) {
        if (!json_is_object(object)) {
            abort();
        }
        const char *text;
        size_t len;
        int64_t number;
        (void)sk_body_string(object, "username", &text, &len);
        (void)sk_body_int(json_object_get(object, "amount"), 1, 1000000000, &number);
        (void)sk_body_int(json_object_get(object, "stock"), 0, 9007199254740991, &number);
        if (sk_body_time(json_object_get(object, "start_at"), &number) == 1 && number < 0) {
            abort();
        }
        (void)sk_body_time(json_object_get(object, "end_at"), &number);
        /* Every top-level key must already be folded. */
        const char *key;
        json_t *value;
        json_object_foreach(object, key, value)
        {
            for (const char *p = key; *p != '\0'; p++) {
                if (*p >= 'A' && *p <= 'Z') {
                    abort();
                }
            }
            (void)sk_body_int(value, INT64_MIN, INT64_MAX, &number);
            (void)sk_body_time(value, &number);
        }
        /* jansson's rendering of what we built must read back as the same shape (reals
         * are only approximate, so values are not compared). */
        char *dumped = json_dumps(object, JSON_COMPACT);
        if (dumped == NULL) {
            abort();
        }
        json_t *reparsed = sk_body_parse_object(dumped, strlen(dumped));
        if (reparsed == NULL || json_object_size(reparsed) != json_object_size(object)) {
            abort();
        }
        json_decref(reparsed);
        free(dumped);
        json_decref(object);
    }

    int64_t page;
    if (sk_body_query_page(copy, size, &page) == 0 && page < 1) {
        abort();
    }
    free(copy);
    return 0;
}
