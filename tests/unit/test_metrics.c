/* Unit tests for ops/metrics and ops/health.
 *
 * Both modules keep process-wide tables, so the tests here read counters as
 * deltas and register collectors and checks that stay harmless for the
 * tests after them. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "http/response.h"
#include "http/router.h"
#include "ops/health.h"
#include "ops/metrics.h"
#include "unit.h"

#define MS(x) ((uint64_t)(x) * 1000000ull)
#define US(x) ((uint64_t)(x) * 1000ull)

static void noop_handler(http_request_t *req, void *ctx)
{
    http_respond(req, 200, NULL, "", 0);
}

static http_router_t *make_router(void)
{
    http_router_t *r = http_router_new();
    CHECK_INT_EQ(http_router_add(r, HTTP_METHOD_BIT(HTTP_METHOD_GET), "/a", noop_handler, NULL), 0);
    CHECK_INT_EQ(http_router_add(r, HTTP_METHOD_BIT(HTTP_METHOD_GET), "/api/{user_id}/tasks",
                                 noop_handler, NULL),
                 1);
    CHECK_INT_EQ(http_router_add(r, HTTP_METHOD_BIT(HTTP_METHOD_GET), "/b", noop_handler, NULL), 2);
    CHECK_INT_EQ(http_router_add(r, HTTP_METHOD_BIT(HTTP_METHOD_GET), "/c", noop_handler, NULL), 3);
    return r;
}

static char rendered[1 << 20];

static const char *render(const http_router_t *r)
{
    buf_t out;
    buf_init(&out, sizeof rendered - 1);
    CHECK_INT_EQ(metrics_render(&out, r), 0);
    memcpy(rendered, out.data, out.len);
    rendered[out.len] = '\0';
    buf_free(&out);
    return rendered;
}

/* The value of the sample whose name and labels are exactly `series`, or -1
 * when there is no such line. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        CHECK(end != NULL);
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
        line = end + 1;
    }
    return -1;
}

static void check_sample(const char *text, const char *series, double want)
{
    double got = sample(text, series);
    if (got != want) {
        unit__diag("#   series: %s\n#   got %.9g, want %.9g\n", series, got, want);
        FAIL("metric sample");
    }
}

/* Every line is a comment or "name{labels} value" with a number. */
static void check_exposition_syntax(const char *text)
{
    int samples = 0;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        CHECK(end != NULL);
        if (line[0] == '#') {
            CHECK(strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0);
        } else {
            const char *sp = memchr(line, ' ', (size_t)(end - line));
            CHECK(sp != NULL);
            char *num_end;
            strtod(sp + 1, &num_end);
            if (num_end != end) {
                unit__diag_bytes("line", line, (size_t)(end - line));
                FAIL("sample value is not a number");
            }
            const char *brace = memchr(line, '{', (size_t)(sp - line));
            if (brace)
                CHECK(sp[-1] == '}');
            samples++;
        }
        line = end + 1;
    }
    CHECK(samples > 0);
}

/* ---- metrics ------------------------------------------------------------- */

static void test_requests_counted_by_route_method_status(void)
{
    http_router_t *r = make_router();
    metrics_http_observe(0, HTTP_METHOD_GET, 200, US(10));
    metrics_http_observe(0, HTTP_METHOD_GET, 200, US(10));
    metrics_http_observe(0, HTTP_METHOD_GET, 200, US(10));
    metrics_http_observe(0, HTTP_METHOD_HEAD, 200, US(10));
    metrics_http_observe(0, HTTP_METHOD_GET, 304, US(10));
    metrics_http_observe(1, HTTP_METHOD_GET, 404, US(10));
    metrics_http_observe(1, HTTP_METHOD_OTHER, 405, US(10));
    const char *text = render(r);
    check_exposition_syntax(text);
    CHECK(strstr(text, "# TYPE http_requests_total counter\n") != NULL);
    check_sample(text, "http_requests_total{route=\"/a\",method=\"GET\",status=\"200\"}", 3);
    check_sample(text, "http_requests_total{route=\"/a\",method=\"HEAD\",status=\"200\"}", 1);
    check_sample(text, "http_requests_total{route=\"/a\",method=\"GET\",status=\"304\"}", 1);
    check_sample(text,
                 "http_requests_total{route=\"/api/{user_id}/tasks\",method=\"GET\",status=\"404\"}",
                 1);
    check_sample(text,
                 "http_requests_total{route=\"/api/{user_id}/tasks\",method=\"OTHER\","
                 "status=\"405\"}",
                 1);
    /* combinations never seen are not rendered */
    CHECK(sample(text, "http_requests_total{route=\"/a\",method=\"POST\",status=\"200\"}") < 0);
    http_router_free(r);
}

static void test_unmatched_route(void)
{
    http_router_t *r = make_router();
    const char *series = "http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}";
    double before = sample(render(r), series);
    if (before < 0)
        before = 0;
    metrics_http_observe(-1, HTTP_METHOD_GET, 404, US(5));
    metrics_http_observe(-1, HTTP_METHOD_GET, 404, US(5));
    const char *text = render(r);
    check_sample(text, series, before + 2);
    CHECK(sample(text, "http_request_duration_seconds_count{route=\"unmatched\"}") >= 2);
    http_router_free(r);
}

static void test_odd_status_counted_as_500(void)
{
    http_router_t *r = make_router();
    metrics_http_observe(3, HTTP_METHOD_GET, 999, US(5));
    metrics_http_observe(3, HTTP_METHOD_GET, 42, US(5));
    const char *text = render(r);
    check_sample(text, "http_requests_total{route=\"/c\",method=\"GET\",status=\"500\"}", 2);
    CHECK(strstr(text, "status=\"999\"") == NULL);
    CHECK(strstr(text, "status=\"42\"") == NULL);
    http_router_free(r);
}

static void test_histogram_cumulative(void)
{
    http_router_t *r = make_router();
    /* route 2 ("/b") is used by this test only */
    metrics_http_observe(2, HTTP_METHOD_GET, 200, US(50));  /* <= 0.0001 */
    metrics_http_observe(2, HTTP_METHOD_GET, 200, MS(1));   /* exactly 0.001: inclusive */
    metrics_http_observe(2, HTTP_METHOD_GET, 200, MS(3));   /* <= 0.005 */
    metrics_http_observe(2, HTTP_METHOD_GET, 200, MS(2000)); /* <= 2.5 */
    metrics_http_observe(2, HTTP_METHOD_GET, 200, MS(60000)); /* over 10: +Inf only */
    const char *text = render(r);
    check_exposition_syntax(text);
    CHECK(strstr(text, "# TYPE http_request_duration_seconds histogram\n") != NULL);
#define B(le) "http_request_duration_seconds_bucket{route=\"/b\",le=\"" le "\"}"
    check_sample(text, B("0.0001"), 1);
    check_sample(text, B("0.00025"), 1);
    check_sample(text, B("0.0005"), 1);
    check_sample(text, B("0.001"), 2);
    check_sample(text, B("0.0025"), 2);
    check_sample(text, B("0.005"), 3);
    check_sample(text, B("0.01"), 3);
    check_sample(text, B("0.025"), 3);
    check_sample(text, B("0.05"), 3);
    check_sample(text, B("0.1"), 3);
    check_sample(text, B("0.25"), 3);
    check_sample(text, B("0.5"), 3);
    check_sample(text, B("1"), 3);
    check_sample(text, B("2.5"), 4);
    check_sample(text, B("5"), 4);
    check_sample(text, B("10"), 4);
    check_sample(text, B("+Inf"), 5);
#undef B
    check_sample(text, "http_request_duration_seconds_count{route=\"/b\"}", 5);
    double sum = sample(text, "http_request_duration_seconds_sum{route=\"/b\"}");
    CHECK(sum > 62.004049 && sum < 62.004051); /* 0.00005 + 0.001 + 0.003 + 2 + 60 */
    /* bucket lines come in ascending order and never decrease */
    const char *p = strstr(text, "http_request_duration_seconds_bucket{route=\"/b\"");
    double last = -1;
    int buckets = 0;
    while (p && strncmp(p, "http_request_duration_seconds_bucket{route=\"/b\"", 47) == 0) {
        double v = strtod(strchr(p, ' ') + 1, NULL);
        CHECK(v >= last);
        last = v;
        buckets++;
        p = strchr(p, '\n') + 1;
    }
    CHECK_INT_EQ(buckets, 17);
    /* a route with no observations has no histogram lines */
    http_router_t *bigger = http_router_new();
    for (int i = 0; i < 6; i++)
        CHECK(http_router_add(bigger, 1, i == 5 ? "/never" : "/x", noop_handler, NULL) == i);
    text = render(bigger);
    CHECK(strstr(text, "route=\"/never\"") == NULL);
    http_router_free(bigger);
    http_router_free(r);
}

static int collector_fail;
static int collector_calls;

static int test_collector(buf_t *out, void *ctx)
{
    collector_calls++;
    if (collector_fail)
        return -1;
    int rc = metrics_write_gauge(out, "todo_test_queue_depth", "Items waiting.", 42);
    rc = rc ? rc : metrics_write_counter(out, "todo_test_events_total", "Events sent.", 0.5);
    rc = rc ? rc : buf_append_str(out, (const char *)ctx);
    return rc;
}

static void test_collector_output_appended(void)
{
    http_router_t *r = make_router();
    collector_fail = 0;
    collector_calls = 0;
    CHECK_INT_EQ(metrics_add_collector(test_collector, (void *)(uintptr_t) "todo_test_raw 7\n"), 0);
    const char *text = render(r);
    CHECK_INT_EQ(collector_calls, 1);
    check_exposition_syntax(text);
    const char *g = strstr(text, "# HELP todo_test_queue_depth Items waiting.\n"
                                 "# TYPE todo_test_queue_depth gauge\n"
                                 "todo_test_queue_depth 42\n");
    CHECK(g != NULL);
    CHECK(strstr(text, "# TYPE todo_test_events_total counter\ntodo_test_events_total 0.5\n") != NULL);
    /* after the built-in families, and ending the output */
    CHECK(g > strstr(text, "http_request_duration_seconds"));
    size_t len = strlen(text);
    CHECK(len > 16 && strcmp(text + len - 16, "todo_test_raw 7\n") == 0);

    /* a failing collector fails the render */
    collector_fail = 1;
    buf_t out;
    buf_init(&out, 1 << 20);
    CHECK_INT_EQ(metrics_render(&out, r), -1);
    buf_free(&out);
    collector_fail = 0;
    http_router_free(r);
}

static void test_render_too_small(void)
{
    http_router_t *r = make_router();
    metrics_http_observe(0, HTTP_METHOD_GET, 200, US(1));
    buf_t out;
    buf_init(&out, 64);
    CHECK_INT_EQ(metrics_render(&out, r), -1);
    buf_free(&out);
    http_router_free(r);
}

static int handle_done;
static void on_done(http_request_t *req)
{
    handle_done++;
}

static void test_metrics_handle(void)
{
    http_router_t *r = make_router();
    http_request_t *req = parse_one("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    req->on_done = on_done;
    handle_done = 0;
    metrics_handle(req, r);
    CHECK_INT_EQ(handle_done, 1);
    CHECK_INT_EQ(req->res.status, 200);
    CHECK_STR_EQ(req->res.content_type, "text/plain; version=0.0.4; charset=utf-8");
    CHECK_STR_EQ(buf_cstr(&req->res.body), render(r));
    rec_release(req);
    http_router_free(r);
}

static void test_collector_table_full(void)
{
    /* Runs after the tests that render: the extra collectors write nothing. */
    collector_fail = 0;
    int added = 0;
    while (metrics_add_collector(test_collector, (void *)(uintptr_t) "") == 0 && added < 100)
        added++;
    CHECK_INT_EQ(added, 15); /* the table holds 16, one was taken before */
    CHECK_INT_EQ(metrics_add_collector(test_collector, NULL), -1);
}

/* ---- health -------------------------------------------------------------- */

static const char *check_state(void *ctx)
{
    return *(const char **)ctx;
}

static const char *db_state, *kafka_state;

static http_request_t *ready_request(void)
{
    http_request_t *req = parse_one("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    req->on_done = on_done;
    handle_done = 0;
    health_handle_ready(req, NULL);
    CHECK_INT_EQ(handle_done, 1);
    return req;
}

static json_t *body_json(const http_request_t *req)
{
    json_error_t err;
    json_t *j = json_loadb(req->res.body.data, req->res.body.len, 0, &err);
    if (!j) {
        unit__diag_bytes("body", req->res.body.data, req->res.body.len);
        FAIL("body is not valid JSON");
    }
    return j;
}

static bool has_retry_after(const http_request_t *req)
{
    const buf_t *h = &req->res.headers;
    return h->len >= 15 && memmem(h->data, h->len, "Retry-After: 1\r\n", 16) != NULL;
}

static void test_ready_without_checks(void)
{
    CHECK(health_ready());
    http_request_t *req = ready_request();
    CHECK_INT_EQ(req->res.status, 200);
    json_t *j = body_json(req);
    CHECK_STR_EQ(json_string_value(json_object_get(j, "status")), "ready");
    CHECK(json_is_object(json_object_get(j, "checks")));
    CHECK_INT_EQ(json_object_size(json_object_get(j, "checks")), 0);
    json_decref(j);
    CHECK(!has_retry_after(req));
    rec_release(req);
}

static void test_ready_reflects_checks(void)
{
    db_state = NULL;
    kafka_state = "connecting";
    CHECK_INT_EQ(health_add_check("db", check_state, &db_state), 0);
    CHECK_INT_EQ(health_add_check("kafka", check_state, &kafka_state), 0);
    CHECK(!health_ready());

    http_request_t *req = ready_request();
    CHECK_INT_EQ(req->res.status, 503);
    CHECK_STR_EQ(req->res.content_type, HTTP_CONTENT_JSON);
    json_t *j = body_json(req);
    CHECK_STR_EQ(json_string_value(json_object_get(j, "status")), "unavailable");
    json_t *checks = json_object_get(j, "checks");
    CHECK_STR_EQ(json_string_value(json_object_get(checks, "db")), "ok");
    CHECK_STR_EQ(json_string_value(json_object_get(checks, "kafka")), "connecting");
    json_decref(j);
    CHECK(has_retry_after(req));
    rec_release(req);

    /* both failing, one with a hostile word */
    db_state = "draining \"now\"\n";
    req = ready_request();
    CHECK_INT_EQ(req->res.status, 503);
    j = body_json(req);
    checks = json_object_get(j, "checks");
    CHECK_STR_EQ(json_string_value(json_object_get(checks, "db")), "draining \"now\"\n");
    json_decref(j);
    rec_release(req);

    /* all ready again */
    db_state = NULL;
    kafka_state = NULL;
    CHECK(health_ready());
    req = ready_request();
    CHECK_INT_EQ(req->res.status, 200);
    j = body_json(req);
    CHECK_STR_EQ(json_string_value(json_object_get(j, "status")), "ready");
    checks = json_object_get(j, "checks");
    CHECK_STR_EQ(json_string_value(json_object_get(checks, "db")), "ok");
    CHECK_STR_EQ(json_string_value(json_object_get(checks, "kafka")), "ok");
    json_decref(j);
    CHECK(!has_retry_after(req));
    rec_release(req);
}

static void test_live(void)
{
    kafka_state = "down"; /* liveness ignores readiness */
    http_request_t *req = parse_one("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    req->on_done = on_done;
    handle_done = 0;
    health_handle_live(req, NULL);
    CHECK_INT_EQ(handle_done, 1);
    CHECK_INT_EQ(req->res.status, 200);
    json_t *j = body_json(req);
    CHECK_STR_EQ(json_string_value(json_object_get(j, "status")), "ok");
    json_decref(j);
    rec_release(req);
    kafka_state = NULL;
}

static char *huge_state;

static void test_check_table_full_and_oversized_report(void)
{
    /* 2 checks exist; fill the table with ones that report huge_state. */
    huge_state = NULL;
    int added = 0;
    while (health_add_check("big", check_state, &huge_state) == 0 && added < 100)
        added++;
    CHECK_INT_EQ(added, 14);
    CHECK_INT_EQ(health_add_check("one-more", check_state, &db_state), -1);
    CHECK(health_ready());

    /* 14 states of 700 KiB: a report over the 8 MiB body bound is a 500 */
    size_t n = 700 * 1024;
    huge_state = malloc(n + 1);
    CHECK(huge_state != NULL);
    memset(huge_state, 's', n);
    huge_state[n] = '\0';
    http_request_t *req = ready_request();
    free(huge_state);
    huge_state = NULL;
    CHECK_INT_EQ(req->res.status, 500);
    CHECK_STR_EQ(req->res.content_type, HTTP_CONTENT_PROBLEM);
    json_t *j = body_json(req);
    CHECK_INT_EQ(json_integer_value(json_object_get(j, "status")), 500);
    json_decref(j);
    rec_release(req);
}

UNIT_MAIN(
    UNIT_TEST(test_requests_counted_by_route_method_status),
    UNIT_TEST(test_unmatched_route),
    UNIT_TEST(test_odd_status_counted_as_500),
    UNIT_TEST(test_histogram_cumulative),
    UNIT_TEST(test_collector_output_appended),
    UNIT_TEST(test_render_too_small),
    UNIT_TEST(test_metrics_handle),
    UNIT_TEST(test_collector_table_full),
    UNIT_TEST(test_ready_without_checks),
    UNIT_TEST(test_ready_reflects_checks),
    UNIT_TEST(test_live),
    UNIT_TEST(test_check_table_full_and_oversized_report),
)
