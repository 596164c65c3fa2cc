/* Unit tests for http/parser: framing, request storage, every limit, the
 * obs-fold detector, smuggling vectors, pause/resume, upgrade, ownership.
 *
 * Most inputs are parsed three ways (all at once, byte by byte, and split in
 * two at every offset) because the parser's trickiest state, the fold
 * detector, depends on where reads end. */
#include <string.h>

#include "fixture.h"
#include "http/parser.h"
#include "unit.h"

#define S(lit) (lit), (sizeof(lit) - 1)

static void check_header(const http_request_t *req, const char *name, const char *value)
{
    size_t len = 0;
    const char *v = http_request_header(req, name, &len);
    if (!v) {
        unit__diag("#   header: %s\n", name);
        FAIL("header missing");
    }
    CHECK_MEM_EQ(v, len, value);
    CHECK_INT_EQ(v[len], '\0');
}

/* Everything a handler can see of a request is the same in a and b. */
static void check_same_request(const http_request_t *a, const http_request_t *b)
{
    CHECK_INT_EQ(a->method, b->method);
    CHECK_STR_EQ(a->method_name, b->method_name);
    CHECK_INT_EQ(a->http_major, b->http_major);
    CHECK_INT_EQ(a->http_minor, b->http_minor);
    CHECK_INT_EQ(a->keep_alive, b->keep_alive);
    CHECK_INT_EQ(a->expect_continue, b->expect_continue);
    CHECK_INT_EQ(a->has_body, b->has_body);
    CHECK_INT_EQ(a->target_len, b->target_len);
    CHECK(memcmp(a->target, b->target, a->target_len) == 0);
    CHECK_INT_EQ(a->path_len, b->path_len);
    CHECK(memcmp(a->path, b->path, a->path_len) == 0);
    CHECK_INT_EQ(a->query == NULL, b->query == NULL);
    CHECK_INT_EQ(a->query_len, b->query_len);
    if (a->query)
        CHECK(memcmp(a->query, b->query, a->query_len) == 0);
    CHECK_INT_EQ(a->n_headers, b->n_headers);
    for (int i = 0; i < a->n_headers; i++) {
        CHECK_INT_EQ(a->headers[i].name_len, b->headers[i].name_len);
        CHECK(memcmp(a->headers[i].name, b->headers[i].name, a->headers[i].name_len) == 0);
        CHECK_INT_EQ(a->headers[i].value_len, b->headers[i].value_len);
        CHECK(memcmp(a->headers[i].value, b->headers[i].value, a->headers[i].value_len) == 0);
    }
    CHECK_INT_EQ(a->body.len, b->body.len);
    if (a->body.len)
        CHECK(memcmp(a->body.data, b->body.data, a->body.len) == 0);
}

static void check_same_recs(const rec_t *a, const rec_t *b)
{
    CHECK_INT_EQ(a->n, b->n);
    for (int i = 0; i < a->n; i++)
        check_same_request(a->reqs[i], b->reqs[i]);
}

/* Parses data at once, byte by byte and split at every offset; every way
 * must succeed with the same requests. Returns the at-once result in *out. */
static void parse_every_way(const char *data, size_t len, int want_requests, rec_t *out)
{
    parse_outcome_t o = parse_steps(&default_limits, out, data, len, 0);
    if (o.result != HTTP_PARSE_OK)
        unit__diag("#   status %d: %s\n", o.status, o.detail);
    CHECK_INT_EQ(o.result, HTTP_PARSE_OK);
    CHECK_INT_EQ(o.consumed, len);
    CHECK_INT_EQ(out->n, want_requests);

    rec_t bytes = {0};
    o = parse_steps(&default_limits, &bytes, data, len, 1);
    if (o.result != HTTP_PARSE_OK)
        unit__diag("#   byte by byte: status %d: %s\n", o.status, o.detail);
    CHECK_INT_EQ(o.result, HTTP_PARSE_OK);
    check_same_recs(out, &bytes);
    rec_free(&bytes);

    for (size_t split = 1; split < len; split++) {
        rec_t two = {0};
        o = parse_split(&default_limits, &two, data, len, split);
        if (o.result != HTTP_PARSE_OK) {
            unit__diag("#   split at %zu: status %d: %s\n", split, o.status, o.detail);
            unit__diag_bytes("first", data, split);
            unit__diag_bytes("second", data + split, len - split);
        }
        CHECK_INT_EQ(o.result, HTTP_PARSE_OK);
        check_same_recs(out, &two);
        rec_free(&two);
    }
}

/* Parses data every way and expects an error with that status and no
 * completed request. */
static void expect_error_every_way(const http_parser_limits_t *limits, const char *data,
                                   size_t len, int status)
{
    for (size_t split = 0; split <= len; split++) {
        rec_t r = {0};
        /* split 0: all at once; split len: byte by byte */
        parse_outcome_t o = split == 0     ? parse_steps(limits, &r, data, len, 0)
                            : split == len ? parse_steps(limits, &r, data, len, 1)
                                           : parse_split(limits, &r, data, len, split);
        if (o.result != HTTP_PARSE_ERROR || o.status != status || r.n != 0) {
            unit__diag("#   split %zu of %zu: result %d, status %d (%s), %d requests\n", split,
                       len, (int)o.result, o.status, o.detail, r.n);
            unit__diag_bytes("input", data, len);
        }
        rec_free(&r);
        CHECK_INT_EQ(o.result, HTTP_PARSE_ERROR);
        CHECK_INT_EQ(o.status, status);
        CHECK_INT_EQ(r.n, 0);
    }
}

/* ---- well-formed requests ------------------------------------------------ */

static void test_simple_get(void)
{
    static const char raw[] = "GET /api/alice/tasks?status=all&limit=5 HTTP/1.1\r\n"
                              "Host: example.com\r\n"
                              "X-Request-Id: abc-123\r\n"
                              "Accept: */*\r\n"
                              "\r\n";
    rec_t r = {0};
    parse_every_way(S(raw), 1, &r);
    CHECK_INT_EQ(r.n_head, 1);
    http_request_t *req = r.reqs[0];
    CHECK_INT_EQ(req->method, HTTP_METHOD_GET);
    CHECK_STR_EQ(req->method_name, "GET");
    CHECK_INT_EQ(req->http_major, 1);
    CHECK_INT_EQ(req->http_minor, 1);
    CHECK(req->keep_alive);
    CHECK(!req->has_body);
    CHECK(!req->expect_continue);
    CHECK_MEM_EQ(req->target, req->target_len, "/api/alice/tasks?status=all&limit=5");
    CHECK_STR_EQ(req->target, "/api/alice/tasks?status=all&limit=5");
    CHECK_MEM_EQ(req->path, req->path_len, "/api/alice/tasks");
    CHECK_MEM_EQ(req->query, req->query_len, "status=all&limit=5");
    CHECK_STR_EQ(req->query, "status=all&limit=5");
    CHECK_INT_EQ(req->n_headers, 3);
    CHECK_MEM_EQ(req->headers[0].name, req->headers[0].name_len, "Host");
    CHECK_STR_EQ(req->headers[0].name, "Host");
    check_header(req, "host", "example.com");
    check_header(req, "x-request-id", "abc-123");
    check_header(req, "ACCEPT", "*/*");
    CHECK_INT_EQ(req->body.len, 0);
    CHECK(!req->finished);
    CHECK(!req->orphaned);
    rec_free(&r);
}

/* request.h: the target is NUL-terminated; path and query are delimited
 * by their lengths only. */
static void test_path_nul_terminated_with_query(void)
{
    http_request_t *req = parse_one("GET /tasks?limit=5 HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_MEM_EQ(req->path, req->path_len, "/tasks");
    CHECK_MEM_EQ(req->query, req->query_len, "limit=5");
    char target_end = req->target[req->target_len];
    rec_release(req);
    CHECK_INT_EQ(target_end, '\0');
}

static void test_path_without_query(void)
{
    http_request_t *req = parse_one("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_STR_EQ(req->path, "/healthz");
    CHECK_INT_EQ(req->path_len, 8);
    CHECK(req->query == NULL);
    CHECK_INT_EQ(req->query_len, 0);
    rec_release(req);

    req = parse_one("GET /p? HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_MEM_EQ(req->path, req->path_len, "/p");
    CHECK(req->query != NULL); /* present but empty */
    CHECK_INT_EQ(req->query_len, 0);
    rec_release(req);
}

static void test_keep_alive_rules(void)
{
    http_request_t *req = parse_one("GET / HTTP/1.0\r\nHost: x\r\n\r\n");
    CHECK_INT_EQ(req->http_minor, 0);
    CHECK(!req->keep_alive);
    rec_release(req);
    req = parse_one("GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
    CHECK(req->keep_alive);
    rec_release(req);
    req = parse_one("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(!req->keep_alive);
    rec_release(req);
    req = parse_one("GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, Close\r\n\r\n");
    CHECK(!req->keep_alive);
    rec_release(req);
}

static void test_absolute_form(void)
{
    http_request_t *req = parse_one("GET http://h/p?q HTTP/1.1\r\nHost: h\r\n\r\n");
    CHECK_MEM_EQ(req->target, req->target_len, "http://h/p?q");
    CHECK_MEM_EQ(req->path, req->path_len, "/p");
    CHECK_MEM_EQ(req->query, req->query_len, "q");
    rec_release(req);

    req = parse_one("GET http://example.com:8080/api/u/tasks HTTP/1.1\r\nHost: h\r\n\r\n");
    CHECK_MEM_EQ(req->path, req->path_len, "/api/u/tasks");
    CHECK(req->query == NULL);
    rec_release(req);

    /* no path at all: "/" */
    req = parse_one("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n");
    CHECK_MEM_EQ(req->path, req->path_len, "/");
    CHECK(req->query == NULL);
    rec_release(req);

    /* a query straight after the authority, with a '/' inside it */
    req = parse_one("GET http://h?next=/x HTTP/1.1\r\nHost: h\r\n\r\n");
    CHECK_MEM_EQ(req->path, req->path_len, "/");
    CHECK_MEM_EQ(req->query, req->query_len, "next=/x");
    rec_release(req);
}

static void test_methods(void)
{
    static const struct {
        const char *raw;
        http_method_t method;
        const char *name;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", HTTP_METHOD_GET, "GET"},
        {"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", HTTP_METHOD_HEAD, "HEAD"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", HTTP_METHOD_POST, "POST"},
        {"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", HTTP_METHOD_PUT, "PUT"},
        {"PATCH / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", HTTP_METHOD_PATCH, "PATCH"},
        {"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", HTTP_METHOD_DELETE, "DELETE"},
        {"OPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n", HTTP_METHOD_OPTIONS, "OPTIONS"},
        {"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", HTTP_METHOD_OPTIONS, "OPTIONS"},
        {"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", HTTP_METHOD_OTHER, "TRACE"},
        {"PROPFIND / HTTP/1.1\r\nHost: x\r\n\r\n", HTTP_METHOD_OTHER, "PROPFIND"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_request_t *req = parse_one(cases[i].raw);
        CHECK_INT_EQ(req->method, cases[i].method);
        CHECK_STR_EQ(req->method_name, cases[i].name);
        rec_release(req);
    }
}

static void test_post_content_length(void)
{
    static const char raw[] = "POST /api/u/tasks HTTP/1.1\r\n"
                              "Host: x\r\n"
                              "Content-Type: application/json\r\n"
                              "Content-Length: 17\r\n"
                              "\r\n"
                              "{\"title\":\"milk\"}\n";
    rec_t r = {0};
    parse_every_way(S(raw), 1, &r);
    http_request_t *req = r.reqs[0];
    CHECK_INT_EQ(req->method, HTTP_METHOD_POST);
    CHECK(req->has_body);
    CHECK(r.head_had_body);
    CHECK_INT_EQ(r.body_len_at_head, 0); /* on_head runs before the body */
    CHECK_MEM_EQ(req->body.data, req->body.len, "{\"title\":\"milk\"}\n");
    check_header(req, "content-length", "17");
    rec_free(&r);
}

static void test_content_length_zero(void)
{
    http_request_t *req = parse_one("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    CHECK(!req->has_body);
    CHECK_INT_EQ(req->body.len, 0);
    rec_release(req);
}

static void test_chunked_with_trailers(void)
{
    static const char raw[] = "POST /t HTTP/1.1\r\n"
                              "Host: x\r\n"
                              "Transfer-Encoding: chunked\r\n"
                              "\r\n"
                              "5\r\nhello\r\n"
                              "6;ext=1\r\n world\r\n"
                              "A\r\n0123456789\r\n"
                              "0\r\n"
                              "X-Trailer: yes\r\n"
                              "X-Other: also\r\n"
                              "\r\n";
    rec_t r = {0};
    parse_every_way(S(raw), 1, &r);
    http_request_t *req = r.reqs[0];
    CHECK(req->has_body);
    CHECK_MEM_EQ(req->body.data, req->body.len, "hello world0123456789");
    CHECK_INT_EQ(req->n_headers, 2);
    CHECK(http_request_header(req, "x-trailer", NULL) == NULL);
    CHECK(http_request_header(req, "x-other", NULL) == NULL);
    check_header(req, "transfer-encoding", "chunked");
    CHECK(req->keep_alive);
    rec_free(&r);
}

static void test_chunked_empty_body(void)
{
    http_request_t *req =
        parse_one("POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    CHECK(req->has_body);
    CHECK_INT_EQ(req->body.len, 0);
    rec_release(req);
}

static void test_header_values_trimmed(void)
{
    static const char raw[] = "GET / HTTP/1.1\r\n"
                              "Host:   spaced  \r\n"
                              "X-Tab:\tv\t \r\n"
                              "X-Inner: a  b\r\n"
                              "X-Empty:\r\n"
                              "X-Blank:    \r\n"
                              "\r\n";
    rec_t r = {0};
    parse_every_way(S(raw), 1, &r);
    http_request_t *req = r.reqs[0];
    check_header(req, "host", "spaced");
    check_header(req, "x-tab", "v");
    check_header(req, "x-inner", "a  b");
    check_header(req, "x-empty", "");
    check_header(req, "x-blank", "");
    CHECK_INT_EQ(req->n_headers, 5);
    rec_free(&r);
}

static void test_many_headers_every_way(void)
{
    /* 100 headers (the limit) forces the span table to grow several times,
     * also when every byte arrives alone. */
    static char raw[8192];
    size_t n = (size_t)snprintf(raw, sizeof raw, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 1; i < 100; i++)
        n += (size_t)snprintf(raw + n, sizeof raw - n, "X-H%d: value-%d\r\n", i, i);
    n += (size_t)snprintf(raw + n, sizeof raw - n, "\r\n");
    rec_t r = {0};
    parse_every_way(raw, n, 1, &r);
    http_request_t *req = r.reqs[0];
    CHECK_INT_EQ(req->n_headers, 100);
    check_header(req, "x-h1", "value-1");
    check_header(req, "x-h57", "value-57");
    check_header(req, "x-h99", "value-99");
    rec_free(&r);
}

static void test_legit_split_value_never_folds(void)
{
    /* Values with inner spaces and tabs, a Connection token list and a long
     * value: split at every offset, none may look like a fold. */
    static const char raw[] = "PUT /api/u/tasks/7 HTTP/1.1\r\n"
                              "Host: api.example.com:8080\r\n"
                              "User-Agent: test client \t/ 1.0\r\n"
                              "Connection: keep-alive, te\r\n"
                              "TE: trailers\r\n"
                              "If-Match: \"3\"\r\n"
                              "Authorization: Bearer aaaa.bbbb.cccc\r\n"
                              "Content-Length: 2\r\n"
                              "\r\n"
                              "{}";
    rec_t r = {0};
    parse_every_way(S(raw), 1, &r);
    check_header(r.reqs[0], "user-agent", "test client \t/ 1.0");
    check_header(r.reqs[0], "authorization", "Bearer aaaa.bbbb.cccc");
    CHECK_MEM_EQ(r.reqs[0]->body.data, r.reqs[0]->body.len, "{}");
    rec_free(&r);
}

/* ---- pipelining ---------------------------------------------------------- */

static const char pipeline_a[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
static const char pipeline_b[] = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
static const char pipeline_c[] = "GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

static void test_pipelined_pause_resume(void)
{
    char raw[256];
    size_t la = strlen(pipeline_a), lb = strlen(pipeline_b), lc = strlen(pipeline_c);
    memcpy(raw, pipeline_a, la);
    memcpy(raw + la, pipeline_b, lb);
    memcpy(raw + la + lb, pipeline_c, lc);
    size_t len = la + lb + lc;

    rec_t r = {.pause = true};
    http_parser_t *p = http_parser_new(&default_limits, &rec_hooks, &r);
    CHECK(http_parser_idle(p));
    size_t used = 0;
    CHECK_INT_EQ(http_parser_feed(p, raw, len, &used), HTTP_PARSE_PAUSED);
    CHECK_INT_EQ(used, la);
    CHECK_INT_EQ(r.n, 1);
    CHECK(http_parser_idle(p));
    http_parser_resume(p);
    size_t off = used;
    CHECK_INT_EQ(http_parser_feed(p, raw + off, len - off, &used), HTTP_PARSE_PAUSED);
    CHECK_INT_EQ(used, lb);
    CHECK_INT_EQ(r.n, 2);
    http_parser_resume(p);
    off += used;
    /* The last message ends exactly at the end of the input. */
    http_parse_result_t res = http_parser_feed(p, raw + off, len - off, &used);
    CHECK(res == HTTP_PARSE_PAUSED || res == HTTP_PARSE_OK);
    CHECK_INT_EQ(used, lc);
    CHECK_INT_EQ(r.n, 3);
    http_parser_resume(p);
    http_parser_free(p);

    CHECK_MEM_EQ(r.reqs[0]->path, r.reqs[0]->path_len, "/a");
    CHECK_MEM_EQ(r.reqs[1]->path, r.reqs[1]->path_len, "/b");
    CHECK_MEM_EQ(r.reqs[1]->body.data, r.reqs[1]->body.len, "abc");
    CHECK_MEM_EQ(r.reqs[2]->path, r.reqs[2]->path_len, "/c");
    CHECK(r.reqs[0]->keep_alive);
    CHECK(r.reqs[1]->keep_alive);
    CHECK(!r.reqs[2]->keep_alive);
    CHECK_INT_EQ(r.n_alloc, 3);
    CHECK_INT_EQ(r.n_orphaned, 0);
    rec_free(&r);
}

static void test_pipelined_pause_then_partial(void)
{
    /* A pause in the middle of a feed, then the rest arrives in two reads
     * split inside the second request's head. */
    char raw[256];
    size_t la = strlen(pipeline_a), lb = strlen(pipeline_b);
    memcpy(raw, pipeline_a, la);
    memcpy(raw + la, pipeline_b, lb);
    size_t cut = la + 10;

    rec_t r = {.pause = true};
    http_parser_t *p = http_parser_new(&default_limits, &rec_hooks, &r);
    size_t used = 0;
    CHECK_INT_EQ(http_parser_feed(p, raw, cut, &used), HTTP_PARSE_PAUSED);
    CHECK_INT_EQ(used, la);
    http_parser_resume(p);
    CHECK_INT_EQ(http_parser_feed(p, raw + la, cut - la, &used), HTTP_PARSE_OK);
    CHECK_INT_EQ(used, cut - la);
    CHECK(!http_parser_idle(p));
    CHECK(!http_parser_in_body(p));
    http_parse_result_t res = http_parser_feed(p, raw + cut, la + lb - cut, &used);
    CHECK(res == HTTP_PARSE_PAUSED || res == HTTP_PARSE_OK);
    CHECK_INT_EQ(r.n, 2);
    http_parser_free(p);
    CHECK_MEM_EQ(r.reqs[1]->body.data, r.reqs[1]->body.len, "abc");
    rec_free(&r);
}

static void test_pipelined_without_pause(void)
{
    char raw[256];
    size_t la = strlen(pipeline_a), lb = strlen(pipeline_b), lc = strlen(pipeline_c);
    memcpy(raw, pipeline_a, la);
    memcpy(raw + la, pipeline_b, lb);
    memcpy(raw + la + lb, pipeline_c, lc);
    rec_t r = {0};
    parse_every_way(raw, la + lb + lc, 3, &r);
    CHECK_MEM_EQ(r.reqs[2]->path, r.reqs[2]->path_len, "/c");
    rec_free(&r);
}

/* ---- limits -------------------------------------------------------------- */

static void test_limit_url(void)
{
    http_parser_limits_t lim = default_limits;
    lim.max_url = 20;
    /* "/" + 19 = 20 bytes: at the limit */
    static const char ok[] = "GET /aaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: x\r\n\r\n";
    rec_t r = {0};
    parse_outcome_t o = parse_steps(&lim, &r, S(ok), 1);
    CHECK_INT_EQ(o.result, HTTP_PARSE_OK);
    CHECK_INT_EQ(r.n, 1);
    CHECK_INT_EQ(r.reqs[0]->target_len, 20);
    rec_free(&r);
    static const char over[] = "GET /aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: x\r\n\r\n";
    expect_error_every_way(&lim, S(over), 414);
}

static void test_limit_head(void)
{
    http_parser_limits_t lim = default_limits;
    lim.max_head = 200;
    char raw[512];
    int n = snprintf(raw, sizeof raw, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %0300d\r\n\r\n", 0);
    expect_error_every_way(&lim, raw, (size_t)n, 431);
    /* many small headers are counted with their framing too */
    n = snprintf(raw, sizeof raw, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 40; i++)
        n += snprintf(raw + n, sizeof raw - (size_t)n, "A: b\r\n");
    n += snprintf(raw + n, sizeof raw - (size_t)n, "\r\n");
    rec_t r = {0};
    parse_outcome_t o = parse_steps(&lim, &r, raw, (size_t)n, 0);
    CHECK_INT_EQ(o.result, HTTP_PARSE_ERROR);
    CHECK_INT_EQ(o.status, 431);
    rec_free(&r);
    /* well under the limit passes */
    static const char ok[] = "GET / HTTP/1.1\r\nHost: x\r\nX-Small: yes\r\n\r\n";
    o = parse_steps(&lim, &r, S(ok), 0);
    CHECK_INT_EQ(o.result, HTTP_PARSE_OK);
    CHECK_INT_EQ(r.n, 1);
    rec_free(&r);
}

static void test_limit_header_count(void)
{
    http_parser_limits_t lim = default_limits;
    lim.max_headers = 8;
    char raw[512];
    int n = snprintf(raw, sizeof raw, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 1; i < 8; i++)
        n += snprintf(raw + n, sizeof raw - (size_t)n, "H%d: v\r\n", i);
    int at_limit = n;
    n += snprintf(raw + n, sizeof raw - (size_t)n, "\r\n");
    rec_t r = {0};
    parse_outcome_t o = parse_steps(&lim, &r, raw, (size_t)n, 1);
    CHECK_INT_EQ(o.result, HTTP_PARSE_OK);
    CHECK_INT_EQ(r.n, 1);
    CHECK_INT_EQ(r.reqs[0]->n_headers, 8);
    rec_free(&r);
    n = at_limit + snprintf(raw + at_limit, sizeof raw - (size_t)at_limit, "H8: v\r\n\r\n");
    expect_error_every_way(&lim, raw, (size_t)n, 431);
}

static void test_limit_content_length(void)
{
    http_parser_limits_t lim = default_limits;
    lim.max_body = 10;
    static const char ok[] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789";
    rec_t r = {0};
    parse_outcome_t o = parse_steps(&lim, &r, S(ok), 0);
    CHECK_INT_EQ(o.result, HTTP_PARSE_OK);
    CHECK_INT_EQ(r.n, 1);
    rec_free(&r);
    /* refused from the header alone, before any body byte */
    static const char over[] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n";
    expect_error_every_way(&lim, S(over), 413);
    static const char huge[] =
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999\r\n\r\n";
    expect_error_every_way(&lim, S(huge), 413);
}

static void test_limit_chunked_total(void)
{
    http_parser_limits_t lim = default_limits;
    lim.max_body = 10;
    static const char ok[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n";
    rec_t r = {0};
    parse_outcome_t o = parse_steps(&lim, &r, S(ok), 1);
    CHECK_INT_EQ(o.result, HTTP_PARSE_OK);
    CHECK_INT_EQ(r.n, 1);
    CHECK_INT_EQ(r.reqs[0]->body.len, 10);
    rec_free(&r);
    static const char two[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "6\r\n012345\r\n6\r\n6789ab\r\n0\r\n\r\n";
    expect_error_every_way(&lim, S(two), 413);
    static const char one[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "b\r\n";
    expect_error_every_way(&lim, S(one), 413);
    static const char many[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "1\r\na\r\n1\r\nb\r\n1\r\nc\r\n1\r\nd\r\n1\r\ne\r\n1\r\nf\r\n"
                               "1\r\ng\r\n1\r\nh\r\n1\r\ni\r\n1\r\nj\r\n1\r\nk\r\n0\r\n\r\n";
    expect_error_every_way(&lim, S(many), 413);
}

static void test_limit_trailers(void)
{
    http_parser_limits_t lim = default_limits;
    lim.max_head = 200;
    char raw[1024];
    int n = snprintf(raw, sizeof raw,
                     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "1\r\na\r\n0\r\nX-Trailer: %0300d\r\n\r\n",
                     0);
    expect_error_every_way(&lim, raw, (size_t)n, 431);
}

/* ---- obs-fold and other header syntax ------------------------------------ */

static void test_obs_fold_sp(void)
{
    static const char raw[] = "GET / HTTP/1.1\r\nHost: x\r\nX-Foo: bar\r\n Content-Length: 38\r\n\r\n";
    expect_error_every_way(&default_limits, S(raw), 400);
}

static void test_obs_fold_htab(void)
{
    static const char raw[] =
        "GET / HTTP/1.1\r\nHost: x\r\nX-Foo: bar\r\n\tContent-Length: 38\r\n\r\n";
    expect_error_every_way(&default_limits, S(raw), 400);
}

static void test_obs_fold_harmless_and_first_header(void)
{
    static const char harmless[] = "GET / HTTP/1.1\r\nHost: x\r\nX-Foo: bar\r\n  baz\r\n\r\n";
    expect_error_every_way(&default_limits, S(harmless), 400);
    static const char first[] = "GET / HTTP/1.1\r\nHost: x\r\n baz\r\n\r\n";
    expect_error_every_way(&default_limits, S(first), 400);
}

static void test_obs_fold_empty_value(void)
{
    static const char raw[] = "GET / HTTP/1.1\r\nHost: x\r\nX-Foo:\r\n bar\r\n\r\n";
    expect_error_every_way(&default_limits, S(raw), 400);
    static const char tab[] = "GET / HTTP/1.1\r\nHost: x\r\nX-Foo:  \r\n\tbar\r\n\r\n";
    expect_error_every_way(&default_limits, S(tab), 400);
}

static void test_obs_fold_in_trailer(void)
{
    static const char raw[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "1\r\na\r\n0\r\nX-T: a\r\n Content-Length: 5\r\n\r\n";
    expect_error_every_way(&default_limits, S(raw), 400);
}

static void test_cl_and_te(void)
{
    static const char a[] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    expect_error_every_way(&default_limits, S(a), 400);
    static const char b[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                            "Content-Length: 5\r\n\r\n0\r\n\r\n";
    expect_error_every_way(&default_limits, S(b), 400);
}

static void test_duplicate_content_length(void)
{
    static const char raw[] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                              "Content-Length: 5\r\n\r\nabcde";
    expect_error_every_way(&default_limits, S(raw), 400);
}

static void test_transfer_encoding_not_chunked_last(void)
{
    static const char a[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n"
                            "\r\n0\r\n\r\n";
    expect_error_every_way(&default_limits, S(a), 400);
    static const char b[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n"
                            "\r\n0\r\n\r\n";
    expect_error_every_way(&default_limits, S(b), 400);
}

static void test_bare_lf(void)
{
    static const char everywhere[] = "GET / HTTP/1.1\nHost: x\n\n";
    expect_error_every_way(&default_limits, S(everywhere), 400);
    static const char one_header[] = "GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n";
    expect_error_every_way(&default_limits, S(one_header), 400);
    static const char request_line[] = "GET / HTTP/1.1\nHost: x\r\n\r\n";
    expect_error_every_way(&default_limits, S(request_line), 400);
    static const char end_of_head[] = "GET / HTTP/1.1\r\nHost: x\r\n\n";
    expect_error_every_way(&default_limits, S(end_of_head), 400);
}

static void test_space_before_colon(void)
{
    static const char host[] = "GET / HTTP/1.1\r\nHost : x\r\n\r\n";
    expect_error_every_way(&default_limits, S(host), 400);
    static const char cl[] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc";
    expect_error_every_way(&default_limits, S(cl), 400);
}

/* The parser-level part of tests/integration/test_http_smuggling.py: each
 * input, followed by a smuggled request, gives one 400 and no request. */
static void test_smuggling_corpus(void)
{
#define SMUGGLED "GET /nope-smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
#define POSTH "POST / HTTP/1.1\r\nHost: x\r\n"
#define GETH "GET / HTTP/1.1\r\nHost: x\r\n"
    static const struct {
        const char *name;
        const char *raw;
        size_t len;
    } corpus[] = {
#define C(name, lit) {name, lit SMUGGLED, sizeof(lit SMUGGLED) - 1}
        C("te_identity_with_cl", POSTH "Transfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc"),
        C("cl_plus", POSTH "Content-Length: +3\r\n\r\nabc"),
        C("cl_hex", POSTH "Content-Length: 0x3\r\n\r\nabc"),
        C("cl_list", POSTH "Content-Length: 3,3\r\n\r\nabc"),
        C("cl_negative", POSTH "Content-Length: -1\r\n\r\nabc"),
        C("cl_not_number", POSTH "Content-Length: abc\r\n\r\nabc"),
        C("cl_space_inside", POSTH "Content-Length: 1 2\r\n\r\nabc"),
        C("cl_same_duplicates", POSTH "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
        C("obs_fold_te", POSTH "X-Foo: bar\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        C("header_no_colon", GETH "X-NoColon\r\n\r\n"),
        C("header_empty_name", GETH ": value\r\n\r\n"),
        C("header_name_bad_char", GETH "X(A): b\r\n\r\n"),
        C("bare_cr_in_header", "GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n"),
        C("bare_cr_request_line", "GET / HTTP/1.1\rHost: x\r\n\r\n"),
        C("chunk_size_bad", POSTH "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
        C("chunk_size_negative", POSTH "Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n"),
        C("chunk_size_overflow", POSTH "Transfer-Encoding: chunked\r\n\r\n"
                                       "fffffffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
        C("chunk_missing_crlf", POSTH "Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n"),
        C("chunk_data_too_long", POSTH "Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n"),
        C("chunk_ext_bare_lf", POSTH "Transfer-Encoding: chunked\r\n\r\n3;ext\nabc\r\n0\r\n\r\n"),
        C("del_in_header_value", GETH "X-A: a\x7f" "b\r\n\r\n"),
        C("ctl_in_url", "GET /health\x01z HTTP/1.1\r\nHost: x\r\n\r\n"),
        C("url_with_space", "GET /hea lthz HTTP/1.1\r\nHost: x\r\n\r\n"),
        C("bad_method_char", "G@T / HTTP/1.1\r\nHost: x\r\n\r\n"),
        C("lowercase_version", "GET / http/1.1\r\nHost: x\r\n\r\n"),
        C("garbage", "\x16\x03\x01\x02\x01\x01\x01\x01\xfc\x03\x03\r\n\r\n"),
        C("unknown_method", "FOO / HTTP/1.1\r\nHost: x\r\n\r\n"),
        C("no_target", "GET HTTP/1.1\r\nHost: x\r\n\r\n"),
#undef C
        /* NUL bytes, written with an explicit length */
        {"nul_in_header_value", GETH "X-A: a\0b\r\n\r\n" SMUGGLED,
         sizeof(GETH "X-A: a\0b\r\n\r\n" SMUGGLED) - 1},
        {"nul_in_header_name", GETH "X-\0A: b\r\n\r\n" SMUGGLED,
         sizeof(GETH "X-\0A: b\r\n\r\n" SMUGGLED) - 1},
        {"nul_in_url", "GET /healthz\0 HTTP/1.1\r\nHost: x\r\n\r\n" SMUGGLED,
         sizeof("GET /healthz\0 HTTP/1.1\r\nHost: x\r\n\r\n" SMUGGLED) - 1},
        {"chunk_ext_nul", POSTH "Transfer-Encoding: chunked\r\n\r\n3;ext\0=1\r\nabc\r\n0\r\n\r\n" SMUGGLED,
         sizeof(POSTH "Transfer-Encoding: chunked\r\n\r\n3;ext\0=1\r\nabc\r\n0\r\n\r\n" SMUGGLED) - 1},
    };
#undef SMUGGLED
#undef POSTH
#undef GETH
    int failures = 0;
    for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
        for (int way = 0; way < 2; way++) {
            rec_t r = {0};
            parse_outcome_t o = parse_steps(&default_limits, &r, corpus[i].raw, corpus[i].len,
                                            way ? 1 : 0);
            if (o.result != HTTP_PARSE_ERROR || o.status != 400 || r.n != 0) {
                unit__diag("#   %s%s: result %d, status %d (%s), %d requests\n",
                           corpus[i].name, way ? " (byte by byte)" : "", (int)o.result,
                           o.status, o.detail, r.n);
                failures++;
            }
            rec_free(&r);
        }
    }
    CHECK_INT_EQ(failures, 0);
}

/* ---- versions, Expect, Upgrade ------------------------------------------- */

static void test_unsupported_versions_505(void)
{
    /* parser.h: the violations become 400, 413, 414, 431 or 505; a
     * well-formed version other than 1.0 and 1.1 is 505 ("only HTTP/1.0 and
     * HTTP/1.1 are served"). llhttp 8.1 itself accepts 0.9, 1.0, 1.1 and 2.0
     * and rejects the others with HPE_INVALID_VERSION; the two routes must
     * give the same answer. */
    static const char *const versions[] = {"HTTP/2.0", "HTTP/0.9", "HTTP/1.2", "HTTP/3.0",
                                           "HTTP/9.9"};
    int failures = 0;
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        char raw[128];
        int n = snprintf(raw, sizeof raw, "GET / %s\r\nHost: x\r\n\r\n", versions[i]);
        for (int way = 0; way < 2; way++) {
            rec_t r = {0};
            parse_outcome_t o = parse_steps(&default_limits, &r, raw, (size_t)n, way ? 1 : 0);
            if (o.result != HTTP_PARSE_ERROR || o.status != 505 || r.n != 0) {
                unit__diag("#   %s%s: result %d, status %d (%s), %d requests\n", versions[i],
                           way ? " (byte by byte)" : "", (int)o.result, o.status, o.detail,
                           r.n);
                failures++;
            }
            rec_free(&r);
        }
    }
    CHECK_INT_EQ(failures, 0);
}

static void test_missing_or_odd_version_refused(void)
{
    /* Not 1.0/1.1 either way: the integration suite accepts 400 or 505. */
    static const char *const raws[] = {
        "GET /\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.10\r\nHost: x\r\n\r\n",
        "GET / HTTP/11\r\nHost: x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof raws / sizeof raws[0]; i++) {
        rec_t r = {0};
        parse_outcome_t o = parse_steps(&default_limits, &r, raws[i], strlen(raws[i]), 0);
        if (o.result != HTTP_PARSE_ERROR)
            unit__diag_bytes("raw", raws[i], strlen(raws[i]));
        CHECK_INT_EQ(o.result, HTTP_PARSE_ERROR);
        CHECK(o.status == 400 || o.status == 505);
        CHECK_INT_EQ(r.n, 0);
        rec_free(&r);
    }
}

static void test_expect_continue(void)
{
    static const char raw[] = "POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                              "Expect: 100-continue\r\n\r\n{}";
    rec_t r = {0};
    parse_every_way(S(raw), 1, &r);
    CHECK(r.head_expect_continue); /* known at on_head, before the body */
    CHECK(r.reqs[0]->expect_continue);
    rec_free(&r);

    http_request_t *req = parse_one("POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                    "Expect: 100-Continue\r\n\r\n2\r\n{}\r\n0\r\n\r\n");
    CHECK(req->expect_continue);
    rec_release(req);

    /* Without a body there is nothing to continue with. */
    req = parse_one("GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n");
    CHECK(!req->expect_continue);
    rec_release(req);
    req = parse_one("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                    "Expect: 100-continue\r\n\r\n");
    CHECK(!req->expect_continue);
    rec_release(req);
}

static void test_expect_other_417(void)
{
    static const char raw[] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                              "Expect: foo\r\n\r\n{}";
    expect_error_every_way(&default_limits, S(raw), 417);
    static const char near[] = "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continued\r\n\r\n";
    expect_error_every_way(&default_limits, S(near), 417);
}

static void test_upgrade(void)
{
    static const char head[] = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                               "Upgrade: websocket\r\n\r\n";
    static const char raw[] = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                              "Upgrade: websocket\r\n\r\n\x81\x05hello";
    rec_t r = {0};
    http_parser_t *p = http_parser_new(&default_limits, &rec_hooks, &r);
    size_t used = 0;
    CHECK_INT_EQ(http_parser_feed(p, S(raw), &used), HTTP_PARSE_UPGRADE);
    CHECK_INT_EQ(used, strlen(head));
    http_parser_free(p);
    /* The upgrade request itself was complete and handed over. */
    CHECK_INT_EQ(r.n, 1);
    CHECK_MEM_EQ(r.reqs[0]->path, r.reqs[0]->path_len, "/ws");
    /* The switch is never performed: answer, then close (parser.c). */
    CHECK(!r.reqs[0]->keep_alive);
    CHECK_INT_EQ(r.n_orphaned, 0);
    rec_free(&r);

    /* the same, byte by byte */
    p = http_parser_new(&default_limits, &rec_hooks, &r);
    http_parse_result_t res = HTTP_PARSE_OK;
    size_t off = 0;
    for (; off < sizeof raw - 1 && res == HTTP_PARSE_OK; off++)
        res = http_parser_feed(p, raw + off, 1, &used);
    CHECK_INT_EQ(res, HTTP_PARSE_UPGRADE);
    CHECK_INT_EQ(off, strlen(head));
    http_parser_free(p);
    CHECK_INT_EQ(r.n, 1);
    rec_free(&r);
}

static void test_host_rules(void)
{
    /* RFC 9112 3.2: exactly one Host in HTTP/1.1, at most one in 1.0. */
    static const char missing[] = "GET / HTTP/1.1\r\nX-A: b\r\n\r\n";
    expect_error_every_way(&default_limits, S(missing), 400);
    static const char twice[] = "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
    expect_error_every_way(&default_limits, S(twice), 400);
    static const char twice_10[] = "GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n";
    expect_error_every_way(&default_limits, S(twice_10), 400);
    http_request_t *req = parse_one("GET / HTTP/1.0\r\n\r\n");
    CHECK_INT_EQ(req->n_headers, 0);
    rec_release(req);
}

static void test_transfer_codings(void)
{
    /* Only chunked is implemented: other codings before it are 501. */
    static const char gzip[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n"
                               "\r\n0\r\n\r\n";
    expect_error_every_way(&default_limits, S(gzip), 501);
    static const char two[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    expect_error_every_way(&default_limits, S(two), 400);
    http_request_t *req = parse_one("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n"
                                    "\r\n1\r\nz\r\n0\r\n\r\n");
    CHECK_MEM_EQ(req->body.data, req->body.len, "z");
    rec_release(req);
}

static void test_connect_refused(void)
{
    static const char raw[] = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    expect_error_every_way(&default_limits, S(raw), 400);
}

static void test_chunk_extensions_bounded(void)
{
    http_parser_limits_t lim = default_limits;
    lim.max_head = 200;
    char raw[1024];
    int n = snprintf(raw, sizeof raw,
                     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "1;name=%0300d\r\na\r\n0\r\n\r\n",
                     0);
    expect_error_every_way(&lim, raw, (size_t)n, 431);
    /* small extensions are read and ignored (llhttp 8.1 takes only one
     * extension per chunk line: "1;a=b;c" is a 400 there) */
    http_request_t *req = parse_one("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                    "\r\n1;a=b\r\nz\r\n1;c\r\ny\r\n1;q=\"v w\"\r\nx\r\n"
                                    "0;last\r\n\r\n");
    CHECK_MEM_EQ(req->body.data, req->body.len, "zyx");
    rec_release(req);
}

/* The bare-LF rule ("line ends must be CRLF") after the head: chunk lines
 * and trailer lines. */
static void expect_400_both_ways(const char *name, const char *raw, size_t len, int *failures)
{
    for (int way = 0; way < 2; way++) {
        rec_t r = {0};
        parse_outcome_t o = parse_steps(&default_limits, &r, raw, len, way ? 1 : 0);
        if (o.result != HTTP_PARSE_ERROR || o.status != 400 || r.n != 0) {
            unit__diag("#   %s%s: result %d, status %d (%s), %d requests\n", name,
                       way ? " (byte by byte)" : "", (int)o.result, o.status, o.detail, r.n);
            (*failures)++;
        }
        rec_free(&r);
    }
}

#define CHUNKED_HEAD "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"

static void test_bare_lf_in_chunk_lines(void)
{
    static const struct {
        const char *name, *raw;
    } cases[] = {
        {"chunk_size_line", CHUNKED_HEAD "3\nabc\r\n0\r\n\r\n"},
        {"chunk_data_end", CHUNKED_HEAD "3\r\nabc\n0\r\n\r\n"},
        {"last_chunk_line", CHUNKED_HEAD "3\r\nabc\r\n0\n\r\n"},
        {"trailer_line", CHUNKED_HEAD "3\r\nabc\r\n0\r\nX-T: y\n\r\n"},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_400_both_ways(cases[i].name, cases[i].raw, strlen(cases[i].raw), &failures);
    CHECK_INT_EQ(failures, 0);
}

/* The bare-LF check covers the head only (parser.c scans "from the
 * message's first method byte to ... on_headers_complete"). llhttp 8.1 also
 * takes a lone LF as the empty line that ends the trailer section, so
 * "0\r\n\n" ends a chunked body here while a CRLF-strict proxy still reads
 * trailers: what follows runs as a second, smuggled request. */
static void test_bare_lf_ending_trailer_section(void)
{
    static const char smuggle[] = CHUNKED_HEAD "3\r\nabc\r\n0\r\n\n"
                                               "GET /nope-smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char after_field[] = CHUNKED_HEAD "3\r\nabc\r\n0\r\nX-T: y\r\n\n";
    int failures = 0;
    expect_400_both_ways("end_of_trailers (+ smuggled GET)", S(smuggle), &failures);
    expect_400_both_ways("end_of_trailers_after_field", S(after_field), &failures);
    CHECK_INT_EQ(failures, 0);
}

/* ---- ownership and state ------------------------------------------------- */

static void test_free_with_request_in_progress(void)
{
    static const char partial_head[] = "GET / HTTP/1.1\r\nHost: x\r\nX-Hal";
    rec_t r = {0};
    http_parser_t *p = http_parser_new(&default_limits, &rec_hooks, &r);
    size_t used = 0;
    CHECK_INT_EQ(http_parser_feed(p, S(partial_head), &used), HTTP_PARSE_OK);
    CHECK(!http_parser_idle(p));
    CHECK(!http_parser_in_body(p));
    http_parser_free(p); /* hands the request back: rec_on_request frees it */
    CHECK_INT_EQ(r.n_alloc, 1);
    CHECK_INT_EQ(r.n_orphaned, 1);
    CHECK_INT_EQ(r.n, 0);

    static const char partial_body[] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc";
    p = http_parser_new(&default_limits, &rec_hooks, &r);
    CHECK_INT_EQ(http_parser_feed(p, S(partial_body), &used), HTTP_PARSE_OK);
    CHECK(!http_parser_idle(p));
    CHECK(http_parser_in_body(p));
    CHECK_INT_EQ(r.n_head, 1);
    http_parser_free(p);
    CHECK_INT_EQ(r.n_orphaned, 2);
    CHECK_INT_EQ(r.n, 0);

    http_parser_free(NULL); /* allowed */
}

static void test_idle_between_messages(void)
{
    rec_t r = {0};
    http_parser_t *p = http_parser_new(&default_limits, &rec_hooks, &r);
    CHECK(http_parser_idle(p));
    CHECK(!http_parser_in_body(p));
    size_t used = 0;
    CHECK_INT_EQ(http_parser_feed(p, pipeline_a, strlen(pipeline_a), &used), HTTP_PARSE_OK);
    CHECK(http_parser_idle(p));
    CHECK(!http_parser_in_body(p));
    CHECK_INT_EQ(r.n, 1);
    /* An empty read changes nothing. */
    CHECK_INT_EQ(http_parser_feed(p, "", 0, &used), HTTP_PARSE_OK);
    CHECK_INT_EQ(used, 0);
    CHECK(http_parser_idle(p));
    http_parser_free(p);
    CHECK_INT_EQ(r.n_orphaned, 0);
    rec_free(&r);
}

static void test_error_hands_over_request(void)
{
    static const char raw[] = "GET / HTTP/1.1\r\nHost : x\r\n\r\n";
    rec_t r = {0};
    http_parser_t *p = http_parser_new(&default_limits, &rec_hooks, &r);
    size_t used = 0;
    CHECK_INT_EQ(http_parser_feed(p, S(raw), &used), HTTP_PARSE_ERROR);
    CHECK_INT_EQ(http_parser_error_status(p), 400);
    CHECK(http_parser_error_detail(p) != NULL);
    CHECK(strlen(http_parser_error_detail(p)) > 0);
    http_request_t *req = http_parser_take_request(p);
    CHECK(req != NULL); /* the caller answers on it */
    CHECK(http_parser_take_request(p) == NULL); /* only once */
    http_parser_free(p);
    CHECK_INT_EQ(r.n_orphaned, 0); /* taken, so not handed back */
    rec_release(req);

    /* An error before any message began has no request to hand over. */
    p = http_parser_new(&default_limits, &rec_hooks, &r);
    CHECK_INT_EQ(http_parser_feed(p, S("\r\n\r\n\x01"), &used), HTTP_PARSE_ERROR);
    CHECK_INT_EQ(http_parser_error_status(p), 400);
    req = http_parser_take_request(p);
    rec_release(req);
    http_parser_free(p);
}

static void test_error_on_second_pipelined_request(void)
{
    static const char raw[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /b HTTP/1.1\r\nHost : x\r\n\r\n";
    rec_t r = {0};
    parse_outcome_t o = parse_steps(&default_limits, &r, S(raw), 0);
    CHECK_INT_EQ(o.result, HTTP_PARSE_ERROR);
    CHECK_INT_EQ(o.status, 400);
    CHECK_INT_EQ(r.n, 1); /* the first one was complete and stays valid */
    CHECK_MEM_EQ(r.reqs[0]->path, r.reqs[0]->path_len, "/a");
    CHECK(o.had_partial);
    rec_free(&r);
}

static void test_alloc_failure(void)
{
    rec_t r = {.fail_alloc = true};
    parse_outcome_t o = parse_steps(&default_limits, &r, S("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    CHECK_INT_EQ(o.result, HTTP_PARSE_ERROR);
    CHECK_INT_EQ(o.status, 503);
    CHECK(!o.had_partial);
    CHECK_INT_EQ(r.n, 0);
}

UNIT_MAIN(
    UNIT_TEST(test_simple_get),
    UNIT_TEST(test_path_nul_terminated_with_query),
    UNIT_TEST(test_path_without_query),
    UNIT_TEST(test_keep_alive_rules),
    UNIT_TEST(test_absolute_form),
    UNIT_TEST(test_methods),
    UNIT_TEST(test_post_content_length),
    UNIT_TEST(test_content_length_zero),
    UNIT_TEST(test_chunked_with_trailers),
    UNIT_TEST(test_chunked_empty_body),
    UNIT_TEST(test_header_values_trimmed),
    UNIT_TEST(test_many_headers_every_way),
    UNIT_TEST(test_legit_split_value_never_folds),
    UNIT_TEST(test_pipelined_pause_resume),
    UNIT_TEST(test_pipelined_pause_then_partial),
    UNIT_TEST(test_pipelined_without_pause),
    UNIT_TEST(test_limit_url),
    UNIT_TEST(test_limit_head),
    UNIT_TEST(test_limit_header_count),
    UNIT_TEST(test_limit_content_length),
    UNIT_TEST(test_limit_chunked_total),
    UNIT_TEST(test_limit_trailers),
    UNIT_TEST(test_obs_fold_sp),
    UNIT_TEST(test_obs_fold_htab),
    UNIT_TEST(test_obs_fold_harmless_and_first_header),
    UNIT_TEST(test_obs_fold_empty_value),
    UNIT_TEST(test_obs_fold_in_trailer),
    UNIT_TEST(test_cl_and_te),
    UNIT_TEST(test_duplicate_content_length),
    UNIT_TEST(test_transfer_encoding_not_chunked_last),
    UNIT_TEST(test_bare_lf),
    UNIT_TEST(test_space_before_colon),
    UNIT_TEST(test_smuggling_corpus),
    UNIT_TEST(test_unsupported_versions_505),
    UNIT_TEST(test_missing_or_odd_version_refused),
    UNIT_TEST(test_expect_continue),
    UNIT_TEST(test_expect_other_417),
    UNIT_TEST(test_upgrade),
    UNIT_TEST(test_host_rules),
    UNIT_TEST(test_transfer_codings),
    UNIT_TEST(test_connect_refused),
    UNIT_TEST(test_chunk_extensions_bounded),
    UNIT_TEST(test_bare_lf_in_chunk_lines),
    UNIT_TEST(test_bare_lf_ending_trailer_section),
    UNIT_TEST(test_free_with_request_in_progress),
    UNIT_TEST(test_idle_between_messages),
    UNIT_TEST(test_error_hands_over_request),
    UNIT_TEST(test_error_on_second_pipelined_request),
    UNIT_TEST(test_alloc_failure),
)
