/* response: building a response on a request, and writing it as bytes. */
#ifndef TODO_HTTP_RESPONSE_H
#define TODO_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "http/request.h"

#define HTTP_CONTENT_JSON "application/json"
#define HTTP_CONTENT_PROBLEM "application/problem+json"

const char *http_status_reason(int status);

/* Sets the status and content type; the body goes into req->res.body. */
void http_response_begin(http_request_t *req, int status, const char *content_type);
/* Adds "name: value" (both must be free of CR and LF); -1 when full. */
BUF_MUSTCHECK int http_response_header(http_request_t *req, const char *name, const char *value);
/* Sets status, type and body at once and finishes the request. */
void http_respond(http_request_t *req, int status, const char *content_type,
                  const char *body, size_t len);
/* Finishes with whatever is in req->res. Handlers check their appends: a
 * failed one must become a problem (500), never a truncated document. */
void http_response_end(http_request_t *req);

/* Appends the status line, headers and body (none for HEAD, 1xx, 204, 304).
 * date is the cached IMF-fixdate; close adds Connection: close. */
BUF_MUSTCHECK int http_response_serialize(const http_request_t *req, buf_t *out,
                                          const char *date, bool close);

#endif
