/* Unit tests for http/router: template parsing, matching, parameters,
 * 404/405/OPTIONS answers, HEAD through GET, route ids and names. Requests
 * are built by parsing raw bytes, as the server does. */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "fixture.h"
#include "http/problem.h"
#include "http/response.h"
#include "http/router.h"
#include "unit.h"

/* What the handlers and on_done saw. */
static struct {
    int handler_calls;
    const char *handler_tag; /* the ctx of the handler that ran */
    int done_calls;
} seen;

static void handler(http_request_t *req, void *ctx)
{
    seen.handler_calls++;
    seen.handler_tag = ctx;
    http_respond(req, 200, HTTP_CONTENT_JSON, "{}", 2);
}

static void on_done(http_request_t *req)
{
    CHECK(req->finished);
    seen.done_calls++;
}

enum { R_TASKS, R_TASK, R_HEALTHZ, R_COMPLETE, R_ONLY_DELETE, R_ROOT, R_X_GET, R_X_POST };

static http_router_t *make_router(void)
{
    http_router_t *r = http_router_new();
    CHECK(r != NULL);
    const unsigned get = HTTP_METHOD_BIT(HTTP_METHOD_GET);
    CHECK_INT_EQ(http_router_add(r, get | HTTP_METHOD_BIT(HTTP_METHOD_POST),
                                 "/api/{user_id}/tasks", handler, (void *)(uintptr_t) "tasks"),
                 R_TASKS);
    CHECK_INT_EQ(http_router_add(r,
                                 get | HTTP_METHOD_BIT(HTTP_METHOD_PUT) |
                                     HTTP_METHOD_BIT(HTTP_METHOD_PATCH) |
                                     HTTP_METHOD_BIT(HTTP_METHOD_DELETE),
                                 "/api/{user_id}/tasks/{id}", handler, (void *)(uintptr_t) "task"),
                 R_TASK);
    CHECK_INT_EQ(http_router_add(r, get, "/healthz", handler, (void *)(uintptr_t) "healthz"),
                 R_HEALTHZ);
    CHECK_INT_EQ(http_router_add(r,
                                 HTTP_METHOD_BIT(HTTP_METHOD_PATCH) |
                                     HTTP_METHOD_BIT(HTTP_METHOD_POST),
                                 "/api/{user_id}/tasks/{id}/complete", handler,
                                 (void *)(uintptr_t) "complete"),
                 R_COMPLETE);
    CHECK_INT_EQ(http_router_add(r, HTTP_METHOD_BIT(HTTP_METHOD_DELETE), "/only-delete", handler,
                                 (void *)(uintptr_t) "only-delete"),
                 R_ONLY_DELETE);
    CHECK_INT_EQ(http_router_add(r, get, "/", handler, (void *)(uintptr_t) "root"), R_ROOT);
    /* one path, two routes: each method goes to its own handler */
    CHECK_INT_EQ(http_router_add(r, get, "/x", handler, (void *)(uintptr_t) "x-get"), R_X_GET);
    CHECK_INT_EQ(http_router_add(r, HTTP_METHOD_BIT(HTTP_METHOD_POST), "/x", handler,
                                 (void *)(uintptr_t) "x-post"),
                 R_X_POST);
    CHECK_INT_EQ(http_router_count(r), 8);
    return r;
}

/* Parses "METHOD target" into a request and dispatches it. */
static http_request_t *dispatch(const http_router_t *r, const char *method, const char *target)
{
    char raw[2048];
    bool body = strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                strcmp(method, "PATCH") == 0;
    snprintf(raw, sizeof raw, "%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n", method, target,
             body ? "Content-Length: 0\r\n" : "");
    http_request_t *req = parse_one(raw);
    req->on_done = on_done;
    memset(&seen, 0, sizeof seen);
    http_router_dispatch(r, req);
    CHECK_INT_EQ(seen.done_calls, 1); /* every dispatch finishes the request once */
    return req;
}

static bool has_header_line(const http_request_t *req, const char *line)
{
    const buf_t *h = &req->res.headers;
    size_t n = strlen(line);
    for (size_t i = 0; i + n <= h->len; i++)
        if ((i == 0 || h->data[i - 1] == '\n') && memcmp(h->data + i, line, n) == 0)
            return true;
    return false;
}

static void check_header_line(const http_request_t *req, const char *line)
{
    if (!has_header_line(req, line)) {
        unit__diag_bytes("headers", req->res.headers.data, req->res.headers.len);
        unit__diag_bytes("want", line, strlen(line));
        FAIL("response header missing");
    }
}

/* The body is a problem document of that status. */
static void check_problem(const http_request_t *req, int status, const char *slug)
{
    CHECK_INT_EQ(req->res.status, status);
    CHECK_STR_EQ(req->res.content_type, HTTP_CONTENT_PROBLEM);
    json_error_t err;
    json_t *j = json_loadb(req->res.body.data, req->res.body.len, 0, &err);
    CHECK(j != NULL);
    char type[128];
    snprintf(type, sizeof type, "%s%s", HTTP_PROBLEM_TYPE_PREFIX, slug);
    CHECK_STR_EQ(json_string_value(json_object_get(j, "type")), type);
    CHECK_INT_EQ(json_integer_value(json_object_get(j, "status")), status);
    json_decref(j);
}

/* ---- templates ----------------------------------------------------------- */

static void test_add_rejects_malformed_templates(void)
{
    http_router_t *r = http_router_new();
    static const char *const bad[] = {
        "",               /* empty */
        "healthz",        /* no leading slash */
        "//x",            /* empty segment */
        "/a//b",          /* empty segment */
        "/{}",            /* parameter without a name */
        "/{x",            /* unclosed */
        "/{x}/{y}/{z}/{w}/{v}",   /* five parameters: more than HTTP_MAX_PARAMS */
        "/1/2/3/4/5/6/7/8/9",     /* nine segments */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (http_router_add(r, HTTP_METHOD_BIT(HTTP_METHOD_GET), bad[i], handler, NULL) != -1) {
            unit__diag("#   template: \"%s\"\n", bad[i]);
            FAIL("malformed template accepted");
        }
    }
    CHECK_INT_EQ(http_router_count(r), 0);
    /* the limits themselves are fine */
    CHECK_INT_EQ(http_router_add(r, 1, "/{a}/{b}/{c}/{d}", handler, NULL), 0);
    CHECK_INT_EQ(http_router_add(r, 1, "/1/2/3/4/5/6/7/8", handler, NULL), 1);
    CHECK_INT_EQ(http_router_add(r, 1, "/", handler, NULL), 2);
    CHECK_STR_EQ(http_router_name(r, 0), "/{a}/{b}/{c}/{d}");
    CHECK_STR_EQ(http_router_name(r, 2), "/");
    CHECK_STR_EQ(http_router_name(r, 3), HTTP_ROUTE_UNMATCHED);
    CHECK_STR_EQ(http_router_name(r, -1), HTTP_ROUTE_UNMATCHED);
    http_router_free(r);
}

/* A trailing '/' is an empty last segment, which split_path() gives paths
 * and no template may have ("/a//b" is refused); "/a/" is accepted, named
 * "/a/", and then matches "/a" but not "/a/". */
static void test_add_rejects_trailing_slash_template(void)
{
    http_router_t *r = http_router_new();
    int id = http_router_add(r, HTTP_METHOD_BIT(HTTP_METHOD_GET), "/a/", handler, NULL);
    http_router_free(r);
    CHECK_INT_EQ(id, -1);
}

static void test_table_full(void)
{
    http_router_t *r = http_router_new();
    char tmpl[32];
    for (int i = 0; i < HTTP_ROUTER_MAX_ROUTES; i++) {
        snprintf(tmpl, sizeof tmpl, "/r%d", i);
        CHECK_INT_EQ(http_router_add(r, 1, tmpl, handler, NULL), i);
    }
    CHECK_INT_EQ(http_router_add(r, 1, "/one-more", handler, NULL), -1);
    CHECK_INT_EQ(http_router_count(r), HTTP_ROUTER_MAX_ROUTES);
    http_router_free(r);
    http_router_free(NULL);
}

/* ---- matching ------------------------------------------------------------ */

static void test_literal_match(void)
{
    http_router_t *r = make_router();
    http_request_t *req = dispatch(r, "GET", "/healthz");
    CHECK_INT_EQ(seen.handler_calls, 1);
    CHECK_STR_EQ(seen.handler_tag, "healthz");
    CHECK_INT_EQ(req->route_id, R_HEALTHZ);
    CHECK_STR_EQ(req->route_name, "/healthz");
    CHECK_INT_EQ(req->n_params, 0);
    CHECK_INT_EQ(req->res.status, 200);
    rec_release(req);

    /* the query does not take part */
    req = dispatch(r, "GET", "/healthz?verbose=1");
    CHECK_STR_EQ(seen.handler_tag, "healthz");
    rec_release(req);

    req = dispatch(r, "GET", "/");
    CHECK_STR_EQ(seen.handler_tag, "root");
    CHECK_INT_EQ(req->route_id, R_ROOT);
    rec_release(req);
    http_router_free(r);
}

static void test_param_capture_decoded(void)
{
    http_router_t *r = make_router();
    http_request_t *req = dispatch(r, "GET", "/api/al%69ce/tasks/7");
    CHECK_STR_EQ(seen.handler_tag, "task");
    CHECK_INT_EQ(req->route_id, R_TASK);
    CHECK_STR_EQ(req->route_name, "/api/{user_id}/tasks/{id}");
    CHECK_INT_EQ(req->n_params, 2);
    CHECK_STR_EQ(http_request_param(req, 0), "alice");
    CHECK_STR_EQ(http_request_param(req, 1), "7");
    CHECK_INT_EQ(req->param_lens[0], 5);
    CHECK_INT_EQ(req->param_lens[1], 1);
    CHECK(http_request_param(req, 2) == NULL);
    rec_release(req);

    /* '+' stays '+', an encoded '/' stays inside its segment */
    req = dispatch(r, "GET", "/api/a+b%2Fc%20d/tasks");
    CHECK_STR_EQ(seen.handler_tag, "tasks");
    CHECK_STR_EQ(http_request_param(req, 0), "a+b/c d");
    rec_release(req);

    /* three levels deep, through the absolute form */
    req = dispatch(r, "PATCH", "http://h/api/bob/tasks/42/complete");
    CHECK_STR_EQ(seen.handler_tag, "complete");
    CHECK_STR_EQ(http_request_param(req, 0), "bob");
    CHECK_STR_EQ(http_request_param(req, 1), "42");
    rec_release(req);
    http_router_free(r);
}

static void test_long_param(void)
{
    http_router_t *r = make_router();
    char target[1200] = "/api/";
    size_t n = strlen(target);
    for (int i = 0; i < 300; i++, n += 3)
        memcpy(target + n, "%41", 3);
    memcpy(target + n, "/tasks", 7);
    http_request_t *req = dispatch(r, "GET", target);
    CHECK_STR_EQ(seen.handler_tag, "tasks");
    CHECK_INT_EQ(req->param_lens[0], 300);
    CHECK_INT_EQ(strlen(http_request_param(req, 0)), 300);
    CHECK_INT_EQ(http_request_param(req, 0)[299], 'A');
    rec_release(req);
    http_router_free(r);
}

static void test_not_found(void)
{
    http_router_t *r = make_router();
    static const char *const paths[] = {
        "/nope", "/healthz/", "/api/alice/tasks/", "/api//tasks", "/api/alice/tasks/7/",
        "/api/alice", "/HEALTHZ", "/healthzz", "/1/2/3/4/5/6/7/8/9/10", "*",
        "//",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        http_request_t *req = dispatch(r, strcmp(paths[i], "*") ? "GET" : "OPTIONS", paths[i]);
        if (seen.handler_calls != 0 || req->res.status != 404)
            unit__diag("#   path: %s -> %d\n", paths[i], req->res.status);
        CHECK_INT_EQ(seen.handler_calls, 0);
        check_problem(req, 404, "not-found");
        CHECK_INT_EQ(req->route_id, -1);
        CHECK_STR_EQ(req->route_name, HTTP_ROUTE_UNMATCHED);
        rec_release(req);
    }
    http_router_free(r);
}

static void test_method_not_allowed(void)
{
    http_router_t *r = make_router();
    http_request_t *req = dispatch(r, "DELETE", "/healthz");
    CHECK_INT_EQ(seen.handler_calls, 0);
    check_problem(req, 405, "method-not-allowed");
    check_header_line(req, "Allow: GET, HEAD, OPTIONS\r\n");
    /* counted under its route, not as "unmatched" */
    CHECK_INT_EQ(req->route_id, R_HEALTHZ);
    CHECK_STR_EQ(req->route_name, "/healthz");
    rec_release(req);

    req = dispatch(r, "POST", "/api/u/tasks/7");
    check_problem(req, 405, "method-not-allowed");
    check_header_line(req, "Allow: GET, HEAD, PUT, PATCH, DELETE, OPTIONS\r\n");
    rec_release(req);

    /* no GET: no HEAD in Allow, and HEAD itself is refused */
    req = dispatch(r, "GET", "/only-delete");
    check_problem(req, 405, "method-not-allowed");
    check_header_line(req, "Allow: DELETE, OPTIONS\r\n");
    rec_release(req);
    req = dispatch(r, "HEAD", "/only-delete");
    CHECK_INT_EQ(req->res.status, 405);
    check_header_line(req, "Allow: DELETE, OPTIONS\r\n");
    rec_release(req);

    /* the union over every route with that path */
    req = dispatch(r, "PUT", "/x");
    check_problem(req, 405, "method-not-allowed");
    check_header_line(req, "Allow: GET, HEAD, POST, OPTIONS\r\n");
    rec_release(req);

    /* a method the service does not know is refused the same way */
    req = dispatch(r, "PROPFIND", "/healthz");
    CHECK_INT_EQ(seen.handler_calls, 0);
    check_problem(req, 405, "method-not-allowed");
    check_header_line(req, "Allow: GET, HEAD, OPTIONS\r\n");
    rec_release(req);
    http_router_free(r);
}

static void test_head_served_by_get(void)
{
    http_router_t *r = make_router();
    http_request_t *req = dispatch(r, "HEAD", "/healthz");
    CHECK_INT_EQ(seen.handler_calls, 1);
    CHECK_STR_EQ(seen.handler_tag, "healthz");
    CHECK_INT_EQ(req->method, HTTP_METHOD_HEAD); /* the handler sees HEAD */
    CHECK_INT_EQ(req->route_id, R_HEALTHZ);
    rec_release(req);

    req = dispatch(r, "HEAD", "/api/carol/tasks/9");
    CHECK_STR_EQ(seen.handler_tag, "task");
    CHECK_STR_EQ(http_request_param(req, 0), "carol");
    rec_release(req);
    http_router_free(r);
}

static void test_same_path_two_routes(void)
{
    http_router_t *r = make_router();
    http_request_t *req = dispatch(r, "GET", "/x");
    CHECK_STR_EQ(seen.handler_tag, "x-get");
    CHECK_INT_EQ(req->route_id, R_X_GET);
    rec_release(req);
    req = dispatch(r, "POST", "/x");
    CHECK_STR_EQ(seen.handler_tag, "x-post");
    CHECK_INT_EQ(req->route_id, R_X_POST);
    rec_release(req);
    http_router_free(r);
}

static void test_options(void)
{
    http_router_t *r = make_router();
    http_request_t *req = dispatch(r, "OPTIONS", "/healthz");
    CHECK_INT_EQ(seen.handler_calls, 0);
    CHECK_INT_EQ(req->res.status, 204);
    CHECK_INT_EQ(req->res.body.len, 0);
    check_header_line(req, "Allow: GET, HEAD, OPTIONS\r\n");
    CHECK_INT_EQ(req->route_id, R_HEALTHZ);
    rec_release(req);

    req = dispatch(r, "OPTIONS", "/api/u/tasks");
    CHECK_INT_EQ(req->res.status, 204);
    check_header_line(req, "Allow: GET, HEAD, POST, OPTIONS\r\n");
    rec_release(req);

    req = dispatch(r, "OPTIONS", "/nope");
    CHECK_INT_EQ(req->res.status, 404);
    rec_release(req);
    http_router_free(r);
}

static void test_bad_escapes_in_params(void)
{
    http_router_t *r = make_router();
    static const char *const targets[] = {
        "/api/%zz/tasks", "/api/al%00ce/tasks", "/api/%/tasks", "/api/a%4/tasks",
        "/api/alice/tasks/%g0", "/api/%00/tasks",
    };
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        http_request_t *req = dispatch(r, "GET", targets[i]);
        if (seen.handler_calls != 0 || req->res.status != 400)
            unit__diag("#   target: %s -> %d\n", targets[i], req->res.status);
        CHECK_INT_EQ(seen.handler_calls, 0);
        check_problem(req, 400, "bad-path");
        rec_release(req);
    }
    http_router_free(r);
}

static void test_dispatch_resets_route(void)
{
    /* A recycled request that matched before and now matches nothing must
     * not keep its old route. */
    http_router_t *r = make_router();
    http_request_t *req = parse_one("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    req->on_done = on_done;
    req->route_id = 3;
    req->route_name = "/stale";
    memset(&seen, 0, sizeof seen);
    http_router_dispatch(r, req);
    CHECK_INT_EQ(req->route_id, -1);
    CHECK_STR_EQ(req->route_name, HTTP_ROUTE_UNMATCHED);
    rec_release(req);
    http_router_free(r);
}

UNIT_MAIN(
    UNIT_TEST(test_add_rejects_malformed_templates),
    UNIT_TEST(test_add_rejects_trailing_slash_template),
    UNIT_TEST(test_table_full),
    UNIT_TEST(test_literal_match),
    UNIT_TEST(test_param_capture_decoded),
    UNIT_TEST(test_long_param),
    UNIT_TEST(test_not_found),
    UNIT_TEST(test_method_not_allowed),
    UNIT_TEST(test_head_served_by_get),
    UNIT_TEST(test_same_path_two_routes),
    UNIT_TEST(test_options),
    UNIT_TEST(test_bad_escapes_in_params),
    UNIT_TEST(test_dispatch_resets_route),
)
