/*
 * The request-head guard (see parse_guard.h), around libh2o 2.2.5's phr_parse_request().
 */
#include "http/parse_guard.h"

#include <string.h>
#include <strings.h>

#include "http/interpose.h"

typedef int (*parse_request_fn)(const char *, size_t, const char **, size_t *, const char **,
                                size_t *, int *, struct phr_header *, size_t *, size_t);

/* Whether the head frames its body ambiguously; `headers` as picohttpparser gives them. */
static int framing_is_ambiguous(const struct phr_header *headers, size_t count)
{
    const struct phr_header *length = NULL;
    int has_transfer_encoding = 0;
    for (size_t i = 0; i != count; ++i) {
        if (headers[i].name_len == 14 && strncasecmp(headers[i].name, "content-length", 14) == 0) {
            if (length != NULL && (length->value_len != headers[i].value_len ||
                                   memcmp(length->value, headers[i].value, length->value_len)))
                return 1;
            length = &headers[i];
        } else if (headers[i].name_len == 17 &&
                   strncasecmp(headers[i].name, "transfer-encoding", 17) == 0) {
            has_transfer_encoding = 1;
        }
    }
    return length != NULL && has_transfer_encoding;
}

/*
 * Whether a header line was folded onto the next (a line starting with SP or HTAB).
 * picohttpparser accepts it as a header of its own with a NULL name, and h2o 2.2.5 keeps
 * that as a header with an empty name while the line above it keeps only its first part:
 * "Content-Length: 2\r\n 0" frames a body of 2 bytes, where a proxy that unfolds reads
 * "2 0".
 */
static int has_folded_line(const struct phr_header *headers, size_t count)
{
    for (size_t i = 0; i != count; ++i) {
        if (headers[i].name == NULL || headers[i].name_len == 0)
            return 1;
    }
    return 0;
}

int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len)
{
    static _Atomic(void *) cache;
    parse_request_fn real_parse = (parse_request_fn)sk_interpose_next(&cache, "phr_parse_request");
    int result = real_parse(buf, len, method, method_len, path, path_len, minor_version, headers,
                            num_headers, last_len);
    if (result > 0 &&
        (has_folded_line(headers, *num_headers) || framing_is_ambiguous(headers, *num_headers)))
        return -1;
    return result;
}
