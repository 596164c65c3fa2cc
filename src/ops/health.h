/* health: liveness and readiness.
 *
 * /healthz answers 200 while the loop runs: a process that can answer it is
 * alive. /readyz asks every registered check; each returns NULL when its
 * dependency is ready or a short word saying why not ("draining",
 * "connecting"), and any such word makes the answer 503. */
#ifndef TODO_OPS_HEALTH_H
#define TODO_OPS_HEALTH_H

#include "http/request.h"

typedef const char *(*health_check_fn)(void *ctx);

/* Returns -1 when the table (16) is full. */
int health_add_check(const char *name, health_check_fn fn, void *ctx);
/* Like a check, shown among the checks, but its word never makes the
 * answer 503: for a dependency the service copes without (Kafka: events
 * wait in the outbox). */
int health_add_info(const char *name, health_check_fn fn, void *ctx);
/* A fact shown on /readyz as a top-level field ("auth": "disabled") that
 * does not make the service unready. Returns -1 when the table (8) is full. */
int health_add_flag(const char *name, const char *value);
/* True when every check passes. */
bool health_ready(void);
void health_handle_live(http_request_t *req, void *ctx);
void health_handle_ready(http_request_t *req, void *ctx);

#endif
