/*
 * libFuzzer driver: the Authorization header, as the token check reads it (API.md: a raw
 * token, possibly after spaces, or "Bearer <token>"), against a real local store in a
 * temporary directory. The fuzz bytes are the header alone, and the padding around a token
 * signed here: the check accepts a header exactly when its token text is that token (the
 * signature covers every byte, and base64url with stray bits does not decode), both when
 * it verifies the token and when the cache answers.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/token.h"
#include "store/local/store_local.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW INT64_C(1700000000)

static const uint8_t key[] = "fuzzing-key-fuzzing-key-fuzzing-key!";
static sk_store_t *store;
static sk_token_cache_t *cache;
static char token[SK_JWT_MAX_TOKEN];
static size_t token_len;
static char dir[] = "/tmp/sk-fuzz-authorization-XXXXXX";

static void remove_store(void)
{
    sk_token_cache_destroy(cache);
    sk_store_destroy(store);
    static const char *const names[] = {"seckill.db", "seckill.db-wal", "seckill.db-shm"};
    char path[128];
    for (size_t i = 0; i != sizeof(names) / sizeof(names[0]); ++i) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void set_up(void)
{
    char path[128];
    if (sodium_init() < 0 || mkdtemp(dir) == NULL)
        __builtin_trap();
    snprintf(path, sizeof(path), "%s/seckill.db", dir);
    store = sk_store_local_create(path, 0);
    if (store == NULL)
        __builtin_trap();
    cache = sk_token_cache_create(key, sizeof(key) - 1, store);
    if (cache == NULL)
        __builtin_trap();
    atexit(remove_store);
    sk_jwt_claims_t claims = {.iat = NOW, .nbf = NOW, .exp = NOW + 3600, .uid = 1};
    strcpy(claims.username, "fuzzer");
    strcpy(claims.kind, "customer");
    strcpy(claims.jti, "0123456789abcdef0123456789abcdef");
    memcpy(claims.dep, sk_store_deployment_id(store), SK_JWT_DEP_LEN);
    int len = sk_jwt_sign(key, sizeof(key) - 1, &claims, token, sizeof(token));
    if (len <= 0)
        __builtin_trap();
    token_len = (size_t)len;
}

static void check_header(const char *header, size_t len)
{
    const char *text = header;
    size_t text_len = len;
    sk_token_from_header(&text, &text_len);
    if (text < header || text + text_len > header + len)
        __builtin_trap();
    /* Spaces and tabs go at both ends; after "Bearer " only spaces do (RFC 7235's 1*SP),
     * so a tab there stays and the token is refused. */
    if (text_len != 0 &&
        (text[0] == ' ' || text[text_len - 1] == ' ' || text[text_len - 1] == '\t'))
        __builtin_trap();
    int is_token = text_len == token_len && memcmp(text, token, token_len) == 0;
    for (int pass = 0; pass != 2; ++pass) { /* verified, then from the cache */
        const sk_jwt_claims_t *claims = NULL;
        sk_token_status_t status = sk_token_check(cache, header, len, NOW, &claims);
        if ((status == SK_TOKEN_OK) != is_token)
            __builtin_trap();
        if (status == SK_TOKEN_OK && strcmp(claims->username, "fuzzer") != 0)
            __builtin_trap();
        if (text_len == 0 && status != SK_TOKEN_MISSING)
            __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (store == NULL)
        set_up();
    check_header((const char *)data, size);

    /* data = prefix NUL suffix: the header is prefix + token + suffix */
    const uint8_t *nul = memchr(data, '\0', size);
    size_t prefix_len = nul != NULL ? (size_t)(nul - data) : size;
    size_t suffix_len = nul != NULL ? size - prefix_len - 1 : 0;
    char *header = malloc(prefix_len + token_len + suffix_len);
    if (header == NULL)
        return 0;
    memcpy(header, data, prefix_len);
    memcpy(header + prefix_len, token, token_len);
    if (suffix_len != 0)
        memcpy(header + prefix_len + token_len, nul + 1, suffix_len);
    check_header(header, prefix_len + token_len + suffix_len);
    free(header);
    return 0;
}
