/* metrics: Prometheus text exposition (format 0.0.4). */
#include "ops/metrics.h"

#include <string.h>

#include "http/problem.h"
#include "http/response.h"

#define ROUTE_SLOTS (HTTP_ROUTER_MAX_ROUTES + 1) /* last: unmatched */
#define STATUS_SLOTS 32
#define MAX_COLLECTORS 16

/* Upper bounds in seconds; the last bucket is +Inf. */
static const double bucket_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                       0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                       1,      2.5,     5,      10};
#define N_BUCKETS (sizeof bucket_bounds / sizeof bucket_bounds[0])

static const char *const method_label[HTTP_METHOD_COUNT] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER",
};

static struct {
    /* Each status code seen gets a slot on first use. */
    int16_t status_slot[600];
    int16_t slot_status[STATUS_SLOTS];
    int n_slots;
    bool slots_ready;
    uint64_t requests[ROUTE_SLOTS][HTTP_METHOD_COUNT][STATUS_SLOTS];
    uint64_t buckets[ROUTE_SLOTS][N_BUCKETS + 1];
    uint64_t count[ROUTE_SLOTS];
    double sum_seconds[ROUTE_SLOTS];
    struct {
        metrics_collector_fn fn;
        void *ctx;
    } collectors[MAX_COLLECTORS];
    int n_collectors;
} m;

static int status_slot(int status)
{
    if (!m.slots_ready) {
        memset(m.status_slot, -1, sizeof m.status_slot);
        m.slots_ready = true;
    }
    if (status < 100 || status > 599)
        status = 500;
    if (m.status_slot[status] >= 0)
        return m.status_slot[status];
    if (m.n_slots == STATUS_SLOTS)
        return -1; /* more distinct codes than any handler emits; not counted */
    m.slot_status[m.n_slots] = (int16_t)status;
    m.status_slot[status] = (int16_t)m.n_slots;
    return m.n_slots++;
}

void metrics_http_observe(int route_id, http_method_t method, int status, uint64_t duration_ns)
{
    int r = route_id >= 0 && route_id < HTTP_ROUTER_MAX_ROUTES ? route_id : HTTP_ROUTER_MAX_ROUTES;
    int s = status_slot(status);
    if (s >= 0)
        m.requests[r][method][s]++;
    double secs = (double)duration_ns / 1e9;
    size_t b = 0;
    while (b < N_BUCKETS && secs > bucket_bounds[b])
        b++;
    m.buckets[r][b]++;
    m.count[r]++;
    m.sum_seconds[r] += secs;
}

int metrics_add_collector(metrics_collector_fn fn, void *ctx)
{
    if (m.n_collectors == MAX_COLLECTORS)
        return -1;
    m.collectors[m.n_collectors].fn = fn;
    m.collectors[m.n_collectors].ctx = ctx;
    m.n_collectors++;
    return 0;
}

static int write_sample(buf_t *out, const char *name, const char *help, const char *type,
                        double value)
{
    return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type,
                      name, value);
}

int metrics_write_gauge(buf_t *out, const char *name, const char *help, double value)
{
    return write_sample(out, name, help, "gauge", value);
}

int metrics_write_counter(buf_t *out, const char *name, const char *help, double value)
{
    return write_sample(out, name, help, "counter", value);
}

int metrics_render(buf_t *out, const http_router_t *router)
{
    int n_routes = http_router_count(router);
    int rc = buf_append_str(out,
                            "# HELP http_requests_total HTTP requests answered, by route "
                            "template, method and status.\n"
                            "# TYPE http_requests_total counter\n");
    for (int r = 0; r < ROUTE_SLOTS && !rc; r++) {
        if (r >= n_routes && r != HTTP_ROUTER_MAX_ROUTES)
            continue;
        const char *route = http_router_name(router, r < n_routes ? r : -1);
        for (int meth = 0; meth < HTTP_METHOD_COUNT; meth++)
            for (int s = 0; s < m.n_slots && !rc; s++)
                if (m.requests[r][meth][s])
                    rc = buf_printf(out,
                                    "http_requests_total{route=\"%s\",method=\"%s\","
                                    "status=\"%d\"} %llu\n",
                                    route, method_label[meth], m.slot_status[s],
                                    (unsigned long long)m.requests[r][meth][s]);
    }
    rc = rc ? rc : buf_append_str(out,
                                  "# HELP http_request_duration_seconds Time from a request's "
                                  "complete arrival to its response being queued.\n"
                                  "# TYPE http_request_duration_seconds histogram\n");
    for (int r = 0; r < ROUTE_SLOTS && !rc; r++) {
        if (!m.count[r])
            continue;
        const char *route = http_router_name(router, r < n_routes ? r : -1);
        uint64_t cumulative = 0;
        for (size_t b = 0; b <= N_BUCKETS && !rc; b++) {
            cumulative += m.buckets[r][b];
            if (b < N_BUCKETS)
                rc = buf_printf(out,
                                "http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
                                "%llu\n",
                                route, bucket_bounds[b], (unsigned long long)cumulative);
            else
                rc = buf_printf(out,
                                "http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                                "%llu\n",
                                route, (unsigned long long)cumulative);
        }
        rc = rc ? rc : buf_printf(out,
                                  "http_request_duration_seconds_sum{route=\"%s\"} %.9f\n"
                                  "http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                                  route, m.sum_seconds[r], route, (unsigned long long)m.count[r]);
    }
    for (int i = 0; i < m.n_collectors && !rc; i++)
        rc = m.collectors[i].fn(out, m.collectors[i].ctx);
    return rc;
}

void metrics_handle(http_request_t *req, void *ctx)
{
    http_response_begin(req, 200, "text/plain; version=0.0.4; charset=utf-8");
    if (metrics_render(&req->res.body, ctx) != 0) {
        http_problem(req, 500, "internal", "metrics exceeded their size bound");
        return;
    }
    http_response_end(req);
}
