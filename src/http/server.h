/* server: the HTTP/1.1 listener and its connections on a libuv loop.
 *
 * Owns sockets, timers and output; hands complete requests to the router
 * and writes their responses in request order, whenever each finishes.
 * Every bound of the service's HTTP side lives here or in the parser:
 * connection count, requests in flight per connection, unsent output per
 * connection (reading pauses past it), and the header, body, idle and
 * linger timers. */
#ifndef TODO_HTTP_SERVER_H
#define TODO_HTTP_SERVER_H

#include <uv.h>

#include "core/config.h"
#include "http/router.h"

typedef struct http_server http_server_t;
typedef void (*http_server_drained_cb)(void *arg);

http_server_t *http_server_new(uv_loop_t *loop, const config_t *cfg, const http_router_t *router);
/* Binds with SO_REUSEPORT (several processes may share the port), listens,
 * and logs the address. Returns 0, or a negative errno/uv error. */
int http_server_listen(http_server_t *srv);
/* Graceful stop: readiness fails, the listener closes, idle connections
 * close, in-flight requests finish (answered with Connection: close) until
 * the shutdown deadline, after which the rest are cut. cb runs once every
 * handle the server owns is closed. A second call cuts at once. */
void http_server_drain(http_server_t *srv, http_server_drained_cb cb, void *arg);
/* Frees the server after the drained callback ran. */
void http_server_free(http_server_t *srv);
/* Readiness check for ops/health: NULL, or "draining". */
const char *http_server_readiness(void *srv);

#endif
