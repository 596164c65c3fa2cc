/* Unit tests for http/response and http/problem: building a response,
 * header safety, the bytes http_response_serialize writes, and
 * problem+json bodies checked with jansson. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "http/problem.h"
#include "http/response.h"
#include "unit.h"

#define DATE "Tue, 24 Nov 2026 10:00:00 GMT"

static int done_calls;
static void on_done(http_request_t *req)
{
    CHECK(req->finished);
    done_calls++;
}

/* A parsed request, ready to answer. */
static http_request_t *request(const char *raw)
{
    http_request_t *req = parse_one(raw);
    req->on_done = on_done;
    snprintf(req->request_id, sizeof req->request_id, "%s", "rid-1");
    done_calls = 0;
    return req;
}

static http_request_t *get_request(void)
{
    return request("GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
}

/* Serializes req and compares the whole output. */
static void check_serialized(const http_request_t *req, bool close, const char *want)
{
    buf_t out;
    buf_init(&out, 1 << 20);
    CHECK_INT_EQ(http_response_serialize(req, &out, DATE, close), 0);
    CHECK_MEM_EQ(out.data, out.len, want);
    buf_free(&out);
}

static json_t *parse_json_body(const http_request_t *req)
{
    json_error_t err;
    json_t *j = json_loadb(req->res.body.data, req->res.body.len, 0, &err);
    if (!j) {
        unit__diag("#   jansson: %s at %d\n", err.text, err.position);
        unit__diag_bytes("body", req->res.body.data, req->res.body.len);
        FAIL("body is not valid JSON");
    }
    return j;
}

/* ---- serialization ------------------------------------------------------- */

static void test_serialize_200_json(void)
{
    http_request_t *req = get_request();
    http_respond(req, 200, HTTP_CONTENT_JSON, "{\"a\":1}", 7);
    CHECK_INT_EQ(done_calls, 1);
    CHECK(req->finished);
    check_serialized(req, false,
                     "HTTP/1.1 200 OK\r\n"
                     "Date: " DATE "\r\n"
                     "X-Request-Id: rid-1\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: 7\r\n"
                     "\r\n"
                     "{\"a\":1}");
    rec_release(req);
}

static void test_serialize_extra_headers_and_close(void)
{
    http_request_t *req = request("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    http_response_begin(req, 201, HTTP_CONTENT_JSON);
    CHECK_INT_EQ(http_response_header(req, "Location", "/api/u/tasks/1"), 0);
    CHECK_INT_EQ(http_response_header(req, "ETag", "\"1\""), 0);
    CHECK_INT_EQ(buf_append_str(&req->res.body, "{}"), 0);
    http_response_end(req);
    CHECK_INT_EQ(done_calls, 1);
    check_serialized(req, true,
                     "HTTP/1.1 201 Created\r\n"
                     "Date: " DATE "\r\n"
                     "X-Request-Id: rid-1\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: 2\r\n"
                     "Connection: close\r\n"
                     "Location: /api/u/tasks/1\r\n"
                     "ETag: \"1\"\r\n"
                     "\r\n"
                     "{}");
    rec_release(req);
}

static void test_serialize_head(void)
{
    http_request_t *req = request("HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n");
    http_respond(req, 200, HTTP_CONTENT_JSON, "{\"a\":1}", 7);
    /* the length of the body a GET would get, and no body */
    check_serialized(req, false,
                     "HTTP/1.1 200 OK\r\n"
                     "Date: " DATE "\r\n"
                     "X-Request-Id: rid-1\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: 7\r\n"
                     "\r\n");
    rec_release(req);
}

static void test_serialize_204_304_1xx(void)
{
    http_request_t *req = request("DELETE /x HTTP/1.1\r\nHost: x\r\n\r\n");
    http_respond(req, 204, HTTP_CONTENT_JSON, "ignored", 7);
    check_serialized(req, false,
                     "HTTP/1.1 204 No Content\r\n"
                     "Date: " DATE "\r\n"
                     "X-Request-Id: rid-1\r\n"
                     "\r\n");
    rec_release(req);

    req = get_request();
    http_response_begin(req, 304, NULL);
    CHECK_INT_EQ(http_response_header(req, "ETag", "\"7\""), 0);
    http_response_end(req);
    check_serialized(req, false,
                     "HTTP/1.1 304 Not Modified\r\n"
                     "Date: " DATE "\r\n"
                     "X-Request-Id: rid-1\r\n"
                     "ETag: \"7\"\r\n"
                     "\r\n");
    rec_release(req);

    req = get_request();
    http_response_begin(req, 100, NULL);
    check_serialized(req, false,
                     "HTTP/1.1 100 Continue\r\n"
                     "Date: " DATE "\r\n"
                     "X-Request-Id: rid-1\r\n"
                     "\r\n");
    rec_release(req);
}

static void test_serialize_no_content_type(void)
{
    /* A 200 with no type still says how long it is. */
    http_request_t *req = get_request();
    http_respond(req, 200, NULL, "", 0);
    check_serialized(req, false,
                     "HTTP/1.1 200 OK\r\n"
                     "Date: " DATE "\r\n"
                     "X-Request-Id: rid-1\r\n"
                     "Content-Length: 0\r\n"
                     "\r\n");
    rec_release(req);
}

static void test_serialize_http10(void)
{
    http_request_t *req = request("GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    http_respond(req, 200, HTTP_CONTENT_JSON, "[]", 2);
    check_serialized(req, false,
                     "HTTP/1.1 200 OK\r\n"
                     "Date: " DATE "\r\n"
                     "X-Request-Id: rid-1\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: 2\r\n"
                     "Connection: keep-alive\r\n"
                     "\r\n"
                     "[]");
    /* closing wins over keep-alive */
    check_serialized(req, true,
                     "HTTP/1.1 200 OK\r\n"
                     "Date: " DATE "\r\n"
                     "X-Request-Id: rid-1\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: 2\r\n"
                     "Connection: close\r\n"
                     "\r\n"
                     "[]");
    rec_release(req);
}

static void test_serialize_appends_and_rolls_back(void)
{
    http_request_t *req = get_request();
    http_respond(req, 200, HTTP_CONTENT_JSON, "{\"a\":1}", 7);
    /* appends after what is already queued (pipelined responses) */
    buf_t out;
    buf_init(&out, 4096);
    CHECK_INT_EQ(buf_append_str(&out, "previous"), 0);
    CHECK_INT_EQ(http_response_serialize(req, &out, DATE, false), 0);
    CHECK_MEM_EQ(out.data, 8, "previous");
    CHECK_MEM_EQ(out.data + 8, 17, "HTTP/1.1 200 OK\r\n");
    size_t one = out.len - 8;
    buf_free(&out);

    /* too small for the whole response: nothing of it is left behind */
    buf_init(&out, 8 + one - 1);
    CHECK_INT_EQ(buf_append_str(&out, "previous"), 0);
    CHECK_INT_EQ(http_response_serialize(req, &out, DATE, false), -1);
    CHECK_MEM_EQ(out.data, out.len, "previous");
    buf_free(&out);
    rec_release(req);
}

static void test_header_rejects_crlf(void)
{
    http_request_t *req = get_request();
    http_response_begin(req, 200, HTTP_CONTENT_JSON);
    CHECK_INT_EQ(http_response_header(req, "X-Ok", "fine"), 0);
    size_t before = req->res.headers.len;
    CHECK_INT_EQ(http_response_header(req, "X-Bad", "a\r\nSet-Cookie: x=1"), -1);
    CHECK_INT_EQ(http_response_header(req, "X-Bad", "a\nb"), -1);
    CHECK_INT_EQ(http_response_header(req, "X-Bad", "a\rb"), -1);
    CHECK_INT_EQ(http_response_header(req, "X-Bad\r\nX-Evil", "v"), -1);
    CHECK_INT_EQ(http_response_header(req, "X-Bad:", "v"), -1);
    CHECK_INT_EQ(req->res.headers.len, before);
    CHECK_MEM_EQ(req->res.headers.data, req->res.headers.len, "X-Ok: fine\r\n");
    http_response_end(req);
    rec_release(req);
}

static void test_header_bound(void)
{
    http_request_t *req = get_request();
    http_response_begin(req, 200, HTTP_CONTENT_JSON);
    char value[1000];
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    int added = 0;
    while (http_response_header(req, "X-Fill", value) == 0)
        added++;
    CHECK(added >= 7);  /* 8 KiB of response headers */
    CHECK(added < 100);
    /* a failed add leaves no partial line behind */
    CHECK_INT_EQ(req->res.headers.len, (size_t)added * (strlen("X-Fill: \r\n") + 999));
    http_response_end(req);
    rec_release(req);
}

static void test_status_reasons(void)
{
    CHECK_STR_EQ(http_status_reason(200), "OK");
    CHECK_STR_EQ(http_status_reason(201), "Created");
    CHECK_STR_EQ(http_status_reason(204), "No Content");
    CHECK_STR_EQ(http_status_reason(400), "Bad Request");
    CHECK_STR_EQ(http_status_reason(404), "Not Found");
    CHECK_STR_EQ(http_status_reason(405), "Method Not Allowed");
    CHECK_STR_EQ(http_status_reason(413), "Content Too Large");
    CHECK_STR_EQ(http_status_reason(414), "URI Too Long");
    CHECK_STR_EQ(http_status_reason(417), "Expectation Failed");
    CHECK_STR_EQ(http_status_reason(422), "Unprocessable Content");
    CHECK_STR_EQ(http_status_reason(431), "Request Header Fields Too Large");
    CHECK_STR_EQ(http_status_reason(503), "Service Unavailable");
    CHECK_STR_EQ(http_status_reason(505), "HTTP Version Not Supported");
    CHECK_STR_EQ(http_status_reason(418), "Unknown");
    CHECK_STR_EQ(http_status_reason(0), "Unknown");
    CHECK_STR_EQ(http_status_reason(-1), "Unknown");
}

static void test_respond_body_too_large(void)
{
    size_t big = HTTP_RESPONSE_BODY_MAX + 1; /* over the response body bound */
    char *body = malloc(big);
    CHECK(body != NULL);
    memset(body, 'x', big);
    http_request_t *req = get_request();
    http_respond(req, 200, HTTP_CONTENT_JSON, body, big);
    free(body);
    CHECK_INT_EQ(done_calls, 1); /* finished once, as the problem */
    CHECK_INT_EQ(req->res.status, 500);
    CHECK_STR_EQ(req->res.content_type, HTTP_CONTENT_PROBLEM);
    json_t *j = parse_json_body(req);
    CHECK_STR_EQ(json_string_value(json_object_get(j, "type")),
                 HTTP_PROBLEM_TYPE_PREFIX "response-too-large");
    json_decref(j);
    rec_release(req);
}


/* ---- problem+json -------------------------------------------------------- */

static void test_problem_body(void)
{
    http_request_t *req = get_request();
    http_problem(req, 404, "not-found", "no task 7");
    CHECK_INT_EQ(done_calls, 1);
    CHECK_INT_EQ(req->res.status, 404);
    CHECK_STR_EQ(req->res.content_type, HTTP_CONTENT_PROBLEM);
    json_t *j = parse_json_body(req);
    CHECK_STR_EQ(json_string_value(json_object_get(j, "type")),
                 "urn:todo-backend:problem:not-found");
    CHECK_STR_EQ(json_string_value(json_object_get(j, "title")), "Not Found");
    CHECK(json_is_integer(json_object_get(j, "status")));
    CHECK_INT_EQ(json_integer_value(json_object_get(j, "status")), 404);
    CHECK_STR_EQ(json_string_value(json_object_get(j, "detail")), "no task 7");
    CHECK(json_object_get(j, "errors") == NULL);
    CHECK_INT_EQ(json_object_size(j), 4);
    json_decref(j);

    buf_t out;
    buf_init(&out, 4096);
    CHECK_INT_EQ(http_response_serialize(req, &out, DATE, false), 0);
    CHECK(strstr(buf_cstr(&out), "\r\nContent-Type: application/problem+json\r\n") != NULL);
    buf_free(&out);
    rec_release(req);
}

static void test_problem_title_is_reason_phrase(void)
{
    static const int statuses[] = {400, 405, 413, 414, 415, 422, 431, 500, 503, 505};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        http_request_t *req = get_request();
        http_problem(req, statuses[i], "x", "d");
        json_t *j = parse_json_body(req);
        CHECK_STR_EQ(json_string_value(json_object_get(j, "title")),
                     http_status_reason(statuses[i]));
        CHECK_INT_EQ(json_integer_value(json_object_get(j, "status")), statuses[i]);
        json_decref(j);
        rec_release(req);
    }
}

static void test_problem_fields(void)
{
    http_request_t *req = request("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    static const http_field_error_t errors[] = {
        {"title", "must be 1 to 200 characters"},
        {"tags[3]", "duplicate \"tag\""},
    };
    http_problem_fields(req, 422, "validation", "the task is not valid", errors, 2);
    CHECK_INT_EQ(done_calls, 1);
    json_t *j = parse_json_body(req);
    CHECK_STR_EQ(json_string_value(json_object_get(j, "type")),
                 HTTP_PROBLEM_TYPE_PREFIX "validation");
    CHECK_STR_EQ(json_string_value(json_object_get(j, "title")), "Unprocessable Content");
    json_t *arr = json_object_get(j, "errors");
    CHECK(json_is_array(arr));
    CHECK_INT_EQ(json_array_size(arr), 2);
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(arr, 0), "field")), "title");
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(arr, 0), "message")),
                 "must be 1 to 200 characters");
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(arr, 1), "field")), "tags[3]");
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(arr, 1), "message")),
                 "duplicate \"tag\"");
    json_decref(j);
    rec_release(req);

    /* zero errors: no "errors" member at all */
    req = get_request();
    http_problem_fields(req, 400, "bad", "d", errors, 0);
    j = parse_json_body(req);
    CHECK(json_object_get(j, "errors") == NULL);
    json_decref(j);
    rec_release(req);
}

static void test_problem_escapes_hostile_text(void)
{
    http_request_t *req = get_request();
    static const http_field_error_t errors[] = {{"a\"b\\c", "line\nbreak\x01\xff"}};
    http_problem_fields(req, 400, "sl\"ug", "say \"hi\"\\ \t\r\n\x1f and \xc3\xa9 \xed\xa0\x80",
                        errors, 1);
    json_t *j = parse_json_body(req);
    CHECK_STR_EQ(json_string_value(json_object_get(j, "type")),
                 HTTP_PROBLEM_TYPE_PREFIX "sl\"ug");
    CHECK_STR_EQ(json_string_value(json_object_get(j, "detail")),
                 "say \"hi\"\\ \t\r\n\x1f and \xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    json_t *e = json_array_get(json_object_get(j, "errors"), 0);
    CHECK_STR_EQ(json_string_value(json_object_get(e, "field")), "a\"b\\c");
    CHECK_STR_EQ(json_string_value(json_object_get(e, "message")), "line\nbreak\x01\xef\xbf\xbd");
    json_decref(j);
    /* no raw control byte reached the body */
    for (size_t i = 0; i < req->res.body.len; i++)
        CHECK((unsigned char)req->res.body.data[i] >= 0x20);
    rec_release(req);
}

static void test_problem_build_then_headers(void)
{
    http_request_t *req = get_request();
    http_problem_build(req, 503, "unavailable", "the database is connecting", NULL, 0);
    CHECK_INT_EQ(done_calls, 0); /* not finished yet */
    CHECK(!req->finished);
    CHECK_INT_EQ(http_response_header(req, "Retry-After", "1"), 0);
    http_response_end(req);
    CHECK_INT_EQ(done_calls, 1);
    buf_t out;
    buf_init(&out, 4096);
    CHECK_INT_EQ(http_response_serialize(req, &out, DATE, false), 0);
    const char *s = buf_cstr(&out);
    CHECK(strncmp(s, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
    CHECK(strstr(s, "\r\nRetry-After: 1\r\n") != NULL);
    buf_free(&out);
    json_t *j = parse_json_body(req);
    CHECK_INT_EQ(json_integer_value(json_object_get(j, "status")), 503);
    json_decref(j);
    rec_release(req);
}

static void test_problem_replaces_partial_body(void)
{
    http_request_t *req = get_request();
    http_response_begin(req, 200, HTTP_CONTENT_JSON);
    CHECK_INT_EQ(buf_append_str(&req->res.body, "[{\"half\":"), 0);
    http_problem(req, 500, "internal", "failed half way");
    json_t *j = parse_json_body(req);
    CHECK_INT_EQ(json_integer_value(json_object_get(j, "status")), 500);
    json_decref(j);
    rec_release(req);
}

static void test_problem_too_many_errors(void)
{
    /* An errors list larger than the body bound: a fixed 500 instead. */
    enum { N = HTTP_RESPONSE_BODY_MAX / 1000 + 100 };
    static char message[1001];
    memset(message, 'm', sizeof message - 1);
    http_field_error_t *errors = malloc(N * sizeof *errors);
    CHECK(errors != NULL);
    for (int i = 0; i < N; i++) {
        errors[i].field = "f";
        errors[i].message = message;
    }
    http_request_t *req = get_request();
    http_problem_fields(req, 422, "validation", "too much", errors, N);
    free(errors);
    CHECK_INT_EQ(done_calls, 1);
    CHECK_INT_EQ(req->res.status, 500);
    json_t *j = parse_json_body(req);
    CHECK_INT_EQ(json_integer_value(json_object_get(j, "status")), 500);
    CHECK_STR_EQ(json_string_value(json_object_get(j, "type")),
                 HTTP_PROBLEM_TYPE_PREFIX "internal");
    json_decref(j);
    rec_release(req);
}

UNIT_MAIN(
    UNIT_TEST(test_serialize_200_json),
    UNIT_TEST(test_serialize_extra_headers_and_close),
    UNIT_TEST(test_serialize_head),
    UNIT_TEST(test_serialize_204_304_1xx),
    UNIT_TEST(test_serialize_no_content_type),
    UNIT_TEST(test_serialize_http10),
    UNIT_TEST(test_serialize_appends_and_rolls_back),
    UNIT_TEST(test_header_rejects_crlf),
    UNIT_TEST(test_header_bound),
    UNIT_TEST(test_status_reasons),
    UNIT_TEST(test_respond_body_too_large),
    UNIT_TEST(test_problem_body),
    UNIT_TEST(test_problem_title_is_reason_phrase),
    UNIT_TEST(test_problem_fields),
    UNIT_TEST(test_problem_escapes_hostile_text),
    UNIT_TEST(test_problem_build_then_headers),
    UNIT_TEST(test_problem_replaces_partial_body),
    UNIT_TEST(test_problem_too_many_errors),
)
