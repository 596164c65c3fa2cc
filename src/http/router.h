/* router: method + path templates to handlers.
 *
 * Templates are literal segments and "{name}" parameters:
 * "/api/{user_id}/tasks/{id}". A parameter matches one non-empty segment,
 * percent-decoded. HEAD is served by a route's GET handler; a path that
 * matches with another method gets 405 and an Allow header (OPTIONS gets
 * 204 and Allow); no match is 404. */
#ifndef TODO_HTTP_ROUTER_H
#define TODO_HTTP_ROUTER_H

#include "http/request.h"

#define HTTP_ROUTER_MAX_ROUTES 64
#define HTTP_ROUTE_UNMATCHED "unmatched"

typedef void (*http_handler_fn)(http_request_t *req, void *ctx);
typedef struct http_router http_router_t;

http_router_t *http_router_new(void);
void http_router_free(http_router_t *r);
/* methods is a mask of HTTP_METHOD_BIT(); returns the route id, or -1 when
 * the template is malformed or the table is full. */
int http_router_add(http_router_t *r, unsigned methods, const char *tmpl,
                    http_handler_fn handler, void *ctx);
/* A check run before matching; returns false when it has answered. */
typedef bool (*http_guard_fn)(http_request_t *req, void *ctx);
void http_router_set_guard(http_router_t *r, http_guard_fn guard, void *ctx);

/* Matches req, fills route_id, route_name and params, and runs the handler
 * or answers 404/405 itself. */
void http_router_dispatch(const http_router_t *r, http_request_t *req);

int http_router_count(const http_router_t *r);
const char *http_router_name(const http_router_t *r, int id);

#endif
