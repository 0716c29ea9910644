/*
 * Percent-decoding (RFC 3986 "%XX"), for request paths and for the credentials in the
 * --redis and --mysql URLs: one decoder, so that both read escapes the same way.
 */
#ifndef SK_UTIL_PERCENT_H
#define SK_UTIL_PERCENT_H

#include <stddef.h>
#include <sys/types.h>

/* Decodes the `len` bytes at `text` into `out`, which holds `out_size` bytes (`len` is
 * always enough). Returns the decoded length, or -1 for a broken escape ("%" not followed
 * by two hex digits) or a result longer than out_size. Decoded NUL bytes are kept: callers
 * that need C strings refuse them. No NUL is appended. */
ssize_t sk_percent_decode(const char *text, size_t len, char *out, size_t out_size);

/* The same into a NUL-terminated C string: -1 also when the result holds a NUL byte or
 * does not fit with its terminator. */
ssize_t sk_percent_decode_cstring(const char *text, size_t len, char *out, size_t out_size);

#endif
