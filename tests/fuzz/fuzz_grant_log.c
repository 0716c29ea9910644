/*
 * libFuzzer driver for sk_grant_log_parse (src/store/local/grant_log.c), which reads log
 * segments back at start, whatever a crash or a disk left in them. The bytes are parsed
 * twice: as they are (headers, lengths, checksums and sequences of arbitrary bytes), and
 * cut into payloads (each one a length byte, then that many bytes) framed as records with
 * the right checksum and sequence, so that every payload reaches the record decoder. Every
 * decoded string must lie inside the bytes, C strings must end there, and the parse must
 * account for exactly the records it decoded.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "store/local/grant_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct bounds {
    const char *begin, *end;
    size_t records;
} bounds_t;

static void check_span(const bounds_t *bounds, h2o_iovec_t text)
{
    if (text.len != 0 && (text.base < bounds->begin || text.base + text.len > bounds->end))
        abort();
}

static void check_c_string(const bounds_t *bounds, const char *text)
{
    if (text == NULL || text < bounds->begin || text + strlen(text) >= bounds->end)
        abort();
}

static int check_entry(void *data, sk_journal_entry_t *entry)
{
    bounds_t *bounds = data;
    switch (entry->kind) {
    case SK_JOURNAL_USER:
        check_span(bounds, entry->u.user.username);
        check_c_string(bounds, entry->u.user.password_hash);
        break;
    case SK_JOURNAL_COUPON:
        check_span(bounds, entry->u.coupon.seller);
        check_span(bounds, entry->u.coupon.name);
        check_span(bounds, entry->u.coupon.description);
        break;
    case SK_JOURNAL_GRANT:
        check_span(bounds, entry->u.grant.customer);
        check_span(bounds, entry->u.grant.seller);
        check_span(bounds, entry->u.grant.coupon);
        break;
    case SK_JOURNAL_REVOKE:
        check_c_string(bounds, entry->u.revoke.jti);
        break;
    default:
        abort();
    }
    bounds->records++;
    return 0;
}

static void parse(const char *bytes, size_t size, size_t records_at_most)
{
    bounds_t bounds = {bytes, bytes + size, 0};
    uint64_t next = 1;
    sk_grant_log_stop_t stop;
    size_t consumed =
        sk_grant_log_parse(bytes, size, &next, UINT64_MAX, check_entry, &bounds, &stop);
    if (consumed > size || next != 1 + bounds.records || bounds.records > records_at_most ||
        (stop == SK_GRANT_LOG_END) != (consumed == size))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exact-size copies, so a read past the end is caught. */
    char *raw = malloc(size > 0 ? size : 1);
    if (raw == NULL)
        return 0;
    if (size > 0)
        memcpy(raw, data, size);
    parse(raw, size, size / SK_GRANT_LOG_HEADER_SIZE);
    free(raw);

    size_t framed_size = 0, records = 0;
    for (size_t at = 0; at < size; at += 1 + data[at], ++records)
        framed_size +=
            SK_GRANT_LOG_HEADER_SIZE + (at + 1 + data[at] <= size ? data[at] : size - at - 1);
    char *framed = malloc(framed_size > 0 ? framed_size : 1);
    if (framed == NULL)
        return 0;
    char *out = framed;
    uint64_t sequence = 1;
    for (size_t at = 0; at < size; at += 1 + data[at], ++sequence) {
        uint32_t length = at + 1 + data[at] <= size ? data[at] : (uint32_t)(size - at - 1);
        memcpy(out + 4, &length, 4);
        memcpy(out + 8, &sequence, 8);
        memcpy(out + SK_GRANT_LOG_HEADER_SIZE, data + at + 1, length);
        uint32_t checksum =
            (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)out + 4, (uInt)(12 + length));
        memcpy(out, &checksum, 4);
        out += SK_GRANT_LOG_HEADER_SIZE + length;
    }
    parse(framed, framed_size, records);
    free(framed);
    return 0;
}
