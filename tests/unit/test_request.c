/* Unit tests for http/request: query look-up and decoding, request id and
 * traceparent syntax, header look-up, path-segment decoding, init/reset. */
#include <string.h>

#include "fixture.h"
#include "http/request.h"
#include "unit.h"

/* A request whose query is q (NULL: no query at all). */
static void with_query(http_request_t *req, const char *q)
{
    http_request_init(req, 1024, 1024);
    req->query = q;
    req->query_len = q ? strlen(q) : 0;
}

static void test_query_present_and_absent(void)
{
    http_request_t req;
    with_query(&req, "a=1&bb=two&c=&d");
    char out[32];
    CHECK_INT_EQ(http_request_query(&req, "a", out, sizeof out), 1);
    CHECK_STR_EQ(out, "1");
    CHECK_INT_EQ(http_request_query(&req, "bb", out, sizeof out), 3);
    CHECK_STR_EQ(out, "two");
    /* empty value, with and without '=' */
    memset(out, 'X', sizeof out);
    CHECK_INT_EQ(http_request_query(&req, "c", out, sizeof out), 0);
    CHECK_STR_EQ(out, "");
    memset(out, 'X', sizeof out);
    CHECK_INT_EQ(http_request_query(&req, "d", out, sizeof out), 0);
    CHECK_STR_EQ(out, "");
    /* absent, and names that are only prefixes or extensions of a key */
    CHECK_INT_EQ(http_request_query(&req, "e", out, sizeof out), -1);
    CHECK_INT_EQ(http_request_query(&req, "b", out, sizeof out), -1);
    CHECK_INT_EQ(http_request_query(&req, "aa", out, sizeof out), -1);
    CHECK_INT_EQ(http_request_query(&req, "two", out, sizeof out), -1);
    http_request_free(&req);
}

static void test_query_no_query(void)
{
    http_request_t req;
    char out[8];
    with_query(&req, NULL);
    CHECK_INT_EQ(http_request_query(&req, "a", out, sizeof out), -1);
    http_request_free(&req);
    with_query(&req, "");
    CHECK_INT_EQ(http_request_query(&req, "a", out, sizeof out), -1);
    http_request_free(&req);
}

static void test_query_first_of_duplicates_and_empty_pairs(void)
{
    http_request_t req;
    with_query(&req, "&&tag=x&tag=y&");
    char out[8];
    CHECK_INT_EQ(http_request_query(&req, "tag", out, sizeof out), 1);
    CHECK_STR_EQ(out, "x");
    CHECK_INT_EQ(http_request_query(&req, "zz", out, sizeof out), -1);
    http_request_free(&req);
}

static void test_query_decoding(void)
{
    http_request_t req;
    with_query(&req, "q=%41%62+c%2B%2b&sp=a%20b&u=caf%C3%A9&eq=a=b&amp=%26");
    char out[32];
    CHECK_INT_EQ(http_request_query(&req, "q", out, sizeof out), 6);
    CHECK_STR_EQ(out, "Ab c++");
    CHECK_INT_EQ(http_request_query(&req, "sp", out, sizeof out), 3);
    CHECK_STR_EQ(out, "a b");
    CHECK_INT_EQ(http_request_query(&req, "u", out, sizeof out), 5);
    CHECK_STR_EQ(out, "caf\xc3\xa9");
    CHECK_INT_EQ(http_request_query(&req, "eq", out, sizeof out), 3);
    CHECK_STR_EQ(out, "a=b");
    CHECK_INT_EQ(http_request_query(&req, "amp", out, sizeof out), 1);
    CHECK_STR_EQ(out, "&");
    http_request_free(&req);
}

static void test_query_malformed(void)
{
    http_request_t req;
    with_query(&req, "zz=%zz&short=%4&end=%&nul=%00&half=%g1&ok=1");
    char out[32];
    CHECK_INT_EQ(http_request_query(&req, "zz", out, sizeof out), -2);
    CHECK_INT_EQ(http_request_query(&req, "short", out, sizeof out), -2);
    CHECK_INT_EQ(http_request_query(&req, "end", out, sizeof out), -2);
    CHECK_INT_EQ(http_request_query(&req, "nul", out, sizeof out), -2);
    CHECK_INT_EQ(http_request_query(&req, "half", out, sizeof out), -2);
    CHECK_INT_EQ(http_request_query(&req, "ok", out, sizeof out), 1);
    http_request_free(&req);
}

static void test_query_too_long_for_out(void)
{
    http_request_t req;
    with_query(&req, "v=abcd&e=%41%42%43");
    char out[8];
    memset(out, 'X', sizeof out);
    /* 4 bytes need 5 with the NUL */
    CHECK_INT_EQ(http_request_query(&req, "v", out, 4), -2);
    CHECK_INT_EQ(out[4], 'X'); /* nothing written past outlen */
    CHECK_INT_EQ(http_request_query(&req, "v", out, 5), 4);
    CHECK_STR_EQ(out, "abcd");
    /* the bound is on the decoded length, not the encoded one */
    CHECK_INT_EQ(http_request_query(&req, "e", out, 4), 3);
    CHECK_STR_EQ(out, "ABC");
    CHECK_INT_EQ(http_request_query(&req, "e", out, 3), -2);
    http_request_free(&req);
}

/* With outlen 0 not even the NUL fits, so every value is "too long" (-2);
 * percent_decode() writes the terminator before checking, one byte past
 * the buffer it was given. */
static void test_query_outlen_zero_writes_nothing(void)
{
    http_request_t req;
    with_query(&req, "c=&v=x");
    char out[4] = "XXX";
    long empty = http_request_query(&req, "c", out, 0);
    long one = http_request_query(&req, "v", out, 0);
    http_request_free(&req);
    CHECK_INT_EQ(one, -2);
    CHECK_INT_EQ(out[0], 'X');
    CHECK_INT_EQ(empty, -2);
}

static void test_query_from_parsed_request(void)
{
    http_request_t *req = parse_one("GET /api/u/tasks?status=pending&q=buy+milk&limit=5 "
                                    "HTTP/1.1\r\nHost: x\r\n\r\n");
    char out[32];
    CHECK_INT_EQ(http_request_query(req, "status", out, sizeof out), 7);
    CHECK_STR_EQ(out, "pending");
    CHECK_INT_EQ(http_request_query(req, "q", out, sizeof out), 8);
    CHECK_STR_EQ(out, "buy milk");
    CHECK_INT_EQ(http_request_query(req, "limit", out, sizeof out), 1);
    CHECK_STR_EQ(out, "5");
    CHECK_INT_EQ(http_request_query(req, "cursor", out, sizeof out), -1);
    rec_release(req);
}

static void test_request_id_valid(void)
{
    char id[HTTP_REQUEST_ID_MAX + 2];
    memset(id, 'a', sizeof id);
    CHECK(!http_request_id_valid(id, 0));
    CHECK(http_request_id_valid(id, 1));
    CHECK(http_request_id_valid(id, 127));
    CHECK(http_request_id_valid(id, 128));
    CHECK(!http_request_id_valid(id, 129));
    const char *good = "AZaz09._:-";
    CHECK(http_request_id_valid(good, strlen(good)));
    CHECK(http_request_id_valid("0f8fad5b-d9cb-469f-a165-70867728950e", 36));
    static const char *const bad[] = {
        "a b", "a/b", "a+b", "a\nb", "a\"b", "a,b", "a;b", "a=b", "a\\b", "\xc3\xa9", "a\tb",
        "a\x7f", "a%20", "a@b", "a~b",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (http_request_id_valid(bad[i], strlen(bad[i]))) {
            unit__diag_bytes("id", bad[i], strlen(bad[i]));
            FAIL("accepted a bad request id");
        }
    }
    /* an embedded NUL counts as a byte, and a bad one */
    CHECK(!http_request_id_valid("ab\0cd", 5));
}

static void test_traceparent_valid(void)
{
    static const char good[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    CHECK_INT_EQ(strlen(good), HTTP_TRACEPARENT_LEN);
    CHECK(http_traceparent_valid(good, strlen(good)));
    CHECK(http_traceparent_valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", 55));
    CHECK(http_traceparent_valid("00-00000000000000000000000000000001-0000000000000001-ff", 55));

    static const char *const bad[] = {
        /* other versions */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        /* upper-case hex anywhere */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
        /* all-zero ids */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        /* wrong separators */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "00 4bf92f3577b34da6a3ce929d0e0e4736 00f067aa0ba902b7 01",
        /* not hex */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        /* separators moved: right length, wrong layout */
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (http_traceparent_valid(bad[i], strlen(bad[i]))) {
            unit__diag_bytes("traceparent", bad[i], strlen(bad[i]));
            FAIL("accepted a bad traceparent");
        }
    }
    /* wrong lengths */
    CHECK(!http_traceparent_valid(good, 54));
    CHECK(!http_traceparent_valid(good, 0));
    static const char longer[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01a";
    CHECK(!http_traceparent_valid(longer, strlen(longer)));
    static const char shorter[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01";
    CHECK(!http_traceparent_valid(shorter, strlen(shorter)));
}

static void test_percent_decode_segment(void)
{
    char out[16];
    CHECK_INT_EQ(http__percent_decode_segment("al%69ce", 7, out, sizeof out), 5);
    CHECK_STR_EQ(out, "alice");
    CHECK_INT_EQ(http__percent_decode_segment("a+b", 3, out, sizeof out), 3);
    CHECK_STR_EQ(out, "a+b"); /* '+' is not a space in a path */
    CHECK_INT_EQ(http__percent_decode_segment("a%2Fb", 5, out, sizeof out), 3);
    CHECK_STR_EQ(out, "a/b");
    CHECK_INT_EQ(http__percent_decode_segment("", 0, out, sizeof out), 0);
    CHECK_STR_EQ(out, "");
    CHECK_INT_EQ(http__percent_decode_segment("%zz", 3, out, sizeof out), -1);
    CHECK_INT_EQ(http__percent_decode_segment("%4", 2, out, sizeof out), -1);
    CHECK_INT_EQ(http__percent_decode_segment("a%", 2, out, sizeof out), -1);
    CHECK_INT_EQ(http__percent_decode_segment("a%00b", 5, out, sizeof out), -1);
    /* room for 3 bytes and the NUL, not for 4 */
    CHECK_INT_EQ(http__percent_decode_segment("abc", 3, out, 4), 3);
    CHECK_INT_EQ(http__percent_decode_segment("abcd", 4, out, 4), -1);
    /* only len bytes are read */
    CHECK_INT_EQ(http__percent_decode_segment("abcdef", 2, out, sizeof out), 2);
    CHECK_STR_EQ(out, "ab");
}

static void test_header_lookup(void)
{
    http_request_t *req = parse_one("GET / HTTP/1.1\r\nHost: example.com\r\nX-Tag: one\r\n"
                                    "x-tag: two\r\nX-Empty:\r\nContent-Type: text/plain\r\n\r\n");
    size_t len = 99;
    const char *v = http_request_header(req, "HOST", &len);
    CHECK_MEM_EQ(v, len, "example.com");
    CHECK_STR_EQ(v, "example.com"); /* values are NUL-terminated */
    v = http_request_header(req, "X-TAG", &len);
    CHECK_STR_EQ(v, "one"); /* the first of several */
    CHECK_INT_EQ(http_request_header_count(req, "x-tag"), 2);
    CHECK_INT_EQ(http_request_header_count(req, "host"), 1);
    CHECK_INT_EQ(http_request_header_count(req, "absent"), 0);
    v = http_request_header(req, "x-empty", &len);
    CHECK(v != NULL);
    CHECK_INT_EQ(len, 0);
    CHECK_STR_EQ(v, "");
    CHECK(http_request_header(req, "absent", &len) == NULL);
    CHECK(http_request_header(req, "X-Ta", NULL) == NULL); /* no prefix match */
    CHECK(http_request_header(req, "Content-Type", NULL) != NULL); /* len may be NULL */
    rec_release(req);
}

static void test_init_and_reset(void)
{
    http_request_t req;
    http_request_init(&req, 1000, 500);
    CHECK_INT_EQ(req.route_id, -1);
    CHECK_INT_EQ(req.n_headers, 0);
    CHECK(req.path == NULL);
    CHECK(!req.finished);
    CHECK_INT_EQ(req.body.max, 500);
    CHECK(req.head.max >= 1000);
    CHECK(http_request_param(&req, 0) == NULL);
    CHECK(http_request_param(&req, -1) == NULL);

    CHECK_INT_EQ(buf_append_str(&req.body, "body"), 0);
    CHECK_INT_EQ(buf_append_str(&req.res.body, "response"), 0);
    CHECK_INT_EQ(buf_append_str(&req.head, "head"), 0);
    char *body_data = req.body.data;
    req.route_id = 3;
    req.finished = true;
    req.res.status = 200;
    req.n_params = 1;
    req.params[0] = "x";
    http_request_reset(&req);
    CHECK_INT_EQ(req.route_id, -1);
    CHECK(!req.finished);
    CHECK_INT_EQ(req.res.status, 0);
    CHECK_INT_EQ(req.n_params, 0);
    CHECK(http_request_param(&req, 0) == NULL);
    CHECK_INT_EQ(req.body.len, 0);
    CHECK_INT_EQ(req.res.body.len, 0);
    CHECK_INT_EQ(req.head.len, 0);
    CHECK(req.body.data == body_data); /* allocation kept */
    CHECK_INT_EQ(req.body.max, 500);   /* and the bounds */
    http_request_free(&req);
    http_request_free(&req); /* freeing twice is harmless */
}

static int done_calls;
static void count_done(http_request_t *req)
{
    CHECK(req->finished);
    done_calls++;
}

static void test_finish_calls_on_done(void)
{
    http_request_t req;
    http_request_init(&req, 100, 100);
    req.on_done = count_done;
    done_calls = 0;
    http_request_finish(&req);
    CHECK_INT_EQ(done_calls, 1);
    CHECK(req.finished);
    http_request_free(&req);
}

UNIT_MAIN(
    UNIT_TEST(test_query_present_and_absent),
    UNIT_TEST(test_query_no_query),
    UNIT_TEST(test_query_first_of_duplicates_and_empty_pairs),
    UNIT_TEST(test_query_decoding),
    UNIT_TEST(test_query_malformed),
    UNIT_TEST(test_query_too_long_for_out),
    UNIT_TEST(test_query_outlen_zero_writes_nothing),
    UNIT_TEST(test_query_from_parsed_request),
    UNIT_TEST(test_request_id_valid),
    UNIT_TEST(test_traceparent_valid),
    UNIT_TEST(test_percent_decode_segment),
    UNIT_TEST(test_header_lookup),
    UNIT_TEST(test_init_and_reset),
    UNIT_TEST(test_finish_calls_on_done),
)
