/*
 * Error codes shared by every module. A call that can fail returns 0 or one of these
 * negative values; business outcomes (sold out, expired token, ...) are result enums of
 * their own modules, not errors.
 */
#ifndef SK_UTIL_ERROR_H
#define SK_UTIL_ERROR_H

enum {
    SK_OK = 0,
    SK_ENOMEM = -1,       /* an allocation failed */
    SK_EINVAL = -2,       /* an argument or input was malformed */
    SK_EIO = -3,          /* a system call or a backend failed */
    SK_EUNAVAILABLE = -4, /* a backend does not answer: the client gets 503 */
    SK_ECANCELED = -5     /* given up because the process is stopping */
};

/* A static string naming `code`, for log lines. */
const char *sk_error_name(int code);

#endif
