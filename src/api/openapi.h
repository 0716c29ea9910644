/*
 * The contract as an OpenAPI document: docs/openapi.json, compiled into the binary by the
 * build (cmake/embed.cmake writes its bytes into a generated C source), so the service
 * serves exactly the document of its source tree and reads no file at run time.
 */
#ifndef SK_API_OPENAPI_H
#define SK_API_OPENAPI_H

#include <stddef.h>

/* The bytes of docs/openapi.json as built in, `sk_openapi_document_len` of them (a NUL
 * follows, not counted). Static data: never freed, safe to read from any thread. */
extern const unsigned char sk_openapi_document[];
extern const size_t sk_openapi_document_len;

#endif
