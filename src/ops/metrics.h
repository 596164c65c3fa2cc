/* metrics: counters and histograms rendered in Prometheus text format.
 *
 * HTTP requests are counted by route template (never by raw path, so the
 * label set stays bounded), method and status, and timed in one latency
 * histogram per route. Other modules add their own lines through
 * collectors called at scrape time. */
#ifndef TODO_OPS_METRICS_H
#define TODO_OPS_METRICS_H

#include <stdint.h>

#include "core/buf.h"
#include "http/request.h"
#include "http/router.h"

typedef int (*metrics_collector_fn)(buf_t *out, void *ctx);

/* route_id -1 is "unmatched". */
void metrics_http_observe(int route_id, http_method_t method, int status, uint64_t duration_ns);
/* Adds a collector; returns -1 when the table (16) is full. */
int metrics_add_collector(metrics_collector_fn fn, void *ctx);
/* Renders everything; -1 when out's bound is too small. */
int metrics_render(buf_t *out, const http_router_t *router);
/* GET /metrics; ctx is the router. */
void metrics_handle(http_request_t *req, void *ctx);

/* Helpers for collectors: "# HELP/# TYPE" then one sample. */
int metrics_write_gauge(buf_t *out, const char *name, const char *help, double value);
int metrics_write_counter(buf_t *out, const char *name, const char *help, double value);

#endif
