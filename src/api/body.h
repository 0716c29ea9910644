/*
 * Request bodies and query strings: untrusted input, read by the rules of API.md
 * "Conventions".
 *
 * A body is a JSON object (RFC 8259, valid UTF-8). Field names match case-insensitively
 * and the last occurrence of a field wins, as the original's Go decoder did, so the parser
 * hands back a jansson object whose keys are folded to lower case and which holds, for each
 * folded key, the value of its last occurrence. Nesting deeper than SK_BODY_MAX_DEPTH is
 * refused. Integers that do not fit in int64 are kept as JSON reals, so that they fail
 * sk_body_int() as a wrong format instead of failing the whole body.
 * All calls are thread-safe and keep no state.
 */
#ifndef SK_API_BODY_H
#define SK_API_BODY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define SK_BODY_MAX_DEPTH 32

/* Parses `len` bytes of `data`. Returns a new reference (json_decref it), or NULL when the
 * bytes are not one JSON object (malformed, not an object, invalid UTF-8, too deep). */
json_t *sk_body_parse_object(const char *data, size_t len);

/* A string field: sets *out to its bytes (borrowed from `object`) and *len, returns 0;
 * returns SK_EINVAL when the field is absent, null or not a string. */
int sk_body_string(json_t *object, const char *folded_name, const char **out, size_t *len);

/*
 * An integer field, given as a JSON integer or a string holding one: an optional '-' then
 * decimal digits only. Returns 0 and sets *out when that holds and min <= value <= max;
 * SK_EINVAL otherwise (absent, null, real, "1e2", "+1", " 1", out of range, ...).
 */
int sk_body_int(json_t *value, int64_t min, int64_t max, int64_t *out);

/*
 * A sale-window time: an integer as in sk_body_int (Unix seconds, >= 0), or an RFC 3339
 * string ("2026-11-25T10:00:00Z", "...+02:00", optional fraction, which is truncated).
 * Three outcomes, so the caller can tell "no bound" from "a bad one": returns 1 and sets
 * *out when present and valid, 0 when absent or null, SK_EINVAL when invalid.
 */
int sk_body_time(json_t *value, int64_t *out);

/*
 * The `page` query parameter from a raw query string (the part after '?', may be NULL):
 * the first `page=` wins; absent or empty means 1; any integer <= 1 means 1; a number too
 * large for int64 but made of digits means "past the end" (INT64_MAX). Returns 0 and sets
 * *page, or SK_EINVAL when the value is not an integer. Percent-encoding is decoded first.
 */
int sk_body_query_page(const char *query, size_t query_len, int64_t *page);

/*
 * The query parameter `name` from a raw query string (may be NULL), decoded ('+' is a
 * space, %XX a byte) into `out` (NUL-terminated, `out_size` bytes) with its length in
 * *len: the first occurrence wins. Returns 1 when present (empty included), 0 when absent
 * (*len 0), SK_EINVAL when its value is badly escaped or does not fit.
 */
int sk_body_query_string(const char *query, size_t query_len, const char *name, char *out,
                         size_t out_size, size_t *len);

#endif
