/* libFuzzer target: arbitrary bytes through the parser, router and response
 * serializer, exactly as the server strings them together, minus sockets.
 *
 * The first input byte picks how the rest is cut into reads, so split
 * headers, split chunk sizes and split folds are explored too. Every
 * finished request is serialized and checked to start with a status line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "http/parser.h"
#include "http/problem.h"
#include "http/response.h"
#include "http/router.h"
#include "ops/health.h"
#include "ops/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static http_router_t *router;
static buf_t out;
static int pending; /* requests handed out and not yet finished */

static void on_done(http_request_t *req)
{
    buf_clear(&out);
    if (http_response_serialize(req, &out, "Thu, 01 Jan 1970 00:00:00 GMT", !req->keep_alive) == 0 &&
        (out.len < 12 || memcmp(out.data, "HTTP/1.1 ", 9) != 0))
        abort();
    http_request_free(req);
    free(req);
    pending--;
}

static http_request_t *alloc_request(void *ctx)
{
    (void)ctx;
    http_request_t *req = malloc(sizeof *req);
    if (!req)
        return NULL;
    http_request_init(req, 16 * 1024, 64 * 1024);
    req->on_done = on_done;
    pending++;
    return req;
}

static void on_head(void *ctx, http_request_t *req)
{
    (void)ctx;
    (void)req;
}

static bool on_request(void *ctx, http_request_t *req)
{
    (void)ctx;
    if (req->orphaned) {
        http_request_free(req);
        free(req);
        pending--;
        return true;
    }
    memcpy(req->request_id, "fuzz", 5);
    http_router_dispatch(router, req);
    return false;
}

static void echo_params(http_request_t *req, void *ctx)
{
    (void)ctx;
    http_response_begin(req, 200, HTTP_CONTENT_JSON);
    for (int i = 0; i < req->n_params; i++)
        if (buf_append_json_escaped(&req->res.body, req->params[i], strlen(req->params[i])) != 0)
            break;
    char q[256];
    (void)http_request_query(req, "q", q, sizeof q);
    http_response_end(req);
}

static void setup(void)
{
    router = http_router_new();
    const unsigned get = HTTP_METHOD_BIT(HTTP_METHOD_GET);
    if (http_router_add(router, get, "/healthz", health_handle_live, NULL) < 0 ||
        http_router_add(router, get, "/readyz", health_handle_ready, NULL) < 0 ||
        http_router_add(router, get, "/metrics", metrics_handle, router) < 0 ||
        http_router_add(router, get | HTTP_METHOD_BIT(HTTP_METHOD_POST) | HTTP_METHOD_BIT(HTTP_METHOD_PATCH),
                        "/api/{user_id}/tasks/{id}", echo_params, NULL) < 0)
        abort();
    buf_init(&out, 8 * 1024 * 1024);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!router)
        setup();
    if (size == 0)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1; /* 1..17 bytes, or all at once */
    if (data[0] >= 200)
        step = size;
    data++;
    size--;

    http_parser_limits_t limits = {.max_url = 2048, .max_head = 8192, .max_body = 32768,
                                   .max_headers = 32};
    http_parser_hooks_t hooks = {.request_alloc = alloc_request, .on_head = on_head,
                                 .on_request = on_request};
    http_parser_t *p = http_parser_new(&limits, &hooks, NULL);
    const char *in = (const char *)data;
    size_t left = size;
    while (left > 0) {
        size_t n = left < step ? left : step;
        size_t used = 0;
        http_parse_result_t r = http_parser_feed(p, in, n, &used);
        if (r == HTTP_PARSE_ERROR) {
            int status = http_parser_error_status(p);
            if (status < 400 || status > 599)
                abort();
            http_request_t *req = http_parser_take_request(p);
            if (!req)
                req = alloc_request(NULL);
            http_problem(req, status, "malformed-request", http_parser_error_detail(p));
            break;
        }
        if (r == HTTP_PARSE_UPGRADE)
            break;
        if (r == HTTP_PARSE_PAUSED) {
            http_parser_resume(p);
            n = used;
        }
        in += n;
        left -= n;
    }
    http_parser_free(p);
    if (pending != 0)
        abort(); /* every request handed out must come back exactly once */
    return 0;
}
