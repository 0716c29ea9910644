/*
 * JSON bodies for the errors libh2o 2.2.5 answers by itself, before any handler runs:
 * malformed requests (400), bodies over its own limit (413), unknown expectations (417).
 * API.md wants every response body to be JSON with errMsg; h2o writes text/plain and has
 * no hook for it, so this module interposes the two exported h2o functions that write
 * those answers (calls inside libh2o go through its PLT, so the executable's definitions
 * win). Nothing else changes: every other call passes straight through.
 */
#ifndef SK_HTTP_H2O_ERRORS_H
#define SK_HTTP_H2O_ERRORS_H

/* Makes sure the interposing definitions are linked into the executable; call once. */
void sk_http_errors_link(void);

#endif
