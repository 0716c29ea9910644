/* Percent-decoding (see percent.h). */
#include "util/percent.h"

#include <string.h>

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

ssize_t sk_percent_decode(const char *text, size_t len, char *out, size_t out_size)
{
    size_t used = 0;
    for (size_t i = 0; i < len; ++i) {
        char c = text[i];
        if (c == '%') {
            int high = i + 2 < len ? hex_value(text[i + 1]) : -1;
            int low = high >= 0 ? hex_value(text[i + 2]) : -1;
            if (low < 0)
                return -1;
            c = (char)(high * 16 + low);
            i += 2;
        }
        if (used == out_size)
            return -1;
        out[used++] = c;
    }
    return (ssize_t)used;
}

ssize_t sk_percent_decode_cstring(const char *text, size_t len, char *out, size_t out_size)
{
    if (out_size == 0)
        return -1;
    ssize_t used = sk_percent_decode(text, len, out, out_size - 1);
    if (used < 0 || memchr(out, '\0', (size_t)used) != NULL)
        return -1;
    out[used] = '\0';
    return used;
}
