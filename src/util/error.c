/* Names for the shared error codes, used only in log lines. */
#include "util/error.h"

const char *sk_error_name(int code)
{
    switch (code) {
    case SK_OK:
        return "ok";
    case SK_ENOMEM:
        return "out of memory";
    case SK_EINVAL:
        return "invalid input";
    case SK_EIO:
        return "I/O error";
    case SK_EUNAVAILABLE:
        return "backend unavailable";
    case SK_ECANCELED:
        return "canceled: stopping";
    default:
        return "unknown error";
    }
}
