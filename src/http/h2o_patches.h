/*
 * Where libh2o 2.2.5's HTTP/1 handling falls short of API.md, corrected at the exported
 * functions it calls through its PLT (so the executable's definitions win):
 *
 * - JSON bodies for the errors h2o answers by itself before any handler runs: malformed
 *   requests (400), bodies over its own limit (413), unknown expectations (417). h2o
 *   writes text/plain and has no hook for it.
 * - Ambiguous message framing refused as malformed (400, connection closed): two different
 *   Content-Length values, or Content-Length with Transfer-Encoding (RFC 9112 6.1, 6.3).
 *   h2o picks one, which is how requests are smuggled past a proxy that picked the other.
 * - Folded header lines (obs-fold, RFC 9112 5.2) refused the same way: h2o reads only the
 *   first line's part of the value, a proxy that unfolds reads all of it.
 *
 * Every other call passes straight through.
 */
#ifndef SK_HTTP_H2O_PATCHES_H
#define SK_HTTP_H2O_PATCHES_H

/* Makes sure the interposing definitions are linked into the executable; call once. */
void sk_http_patches_link(void);

#endif
