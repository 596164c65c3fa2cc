/* problem: error responses as application/problem+json (RFC 9457).
 *
 * Every error the service sends has "type" (a URN naming the kind of
 * problem, stable for clients to switch on), "title" (the status phrase),
 * "status", "detail" (for people) and, for invalid input, "errors": a list
 * of {"field", "message"}. */
#ifndef TODO_HTTP_PROBLEM_H
#define TODO_HTTP_PROBLEM_H

#include "http/request.h"

#define HTTP_PROBLEM_TYPE_PREFIX "urn:todo-backend:problem:"

typedef struct http_field_error {
    const char *field;
    const char *message;
} http_field_error_t;

/* Responds with a problem and finishes the request. slug names the type
 * ("not-found"); detail is a sentence for people. */
void http_problem(http_request_t *req, int status, const char *slug, const char *detail);
void http_problem_fields(http_request_t *req, int status, const char *slug, const char *detail,
                         const http_field_error_t *errors, int n_errors);
/* Builds the problem into req->res without finishing: for callers that add
 * headers (Allow, Retry-After, WWW-Authenticate) before finishing. */
void http_problem_build(http_request_t *req, int status, const char *slug, const char *detail,
                        const http_field_error_t *errors, int n_errors);

#endif
