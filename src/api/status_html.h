/* The live sale view's page, web/status.html, turned into these bytes at build time by
 * cmake/embed.cmake: the binary reads no file to serve it. */
#ifndef SK_API_STATUS_HTML_H
#define SK_API_STATUS_HTML_H

#include <stddef.h>

extern const unsigned char sk_status_html[]; /* NUL-terminated, not counted in the length */
extern const size_t sk_status_html_len;

#endif
