/* request: storage, header and query look-ups for one HTTP request. */
#include "http/request.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Headers hold at most a Link with the client's query (MAX_URL_BYTES) and a
 * cursor. Task lists are the largest bodies: 100 tasks whose 10 000-character
 * descriptions may each grow sixfold when control characters are escaped. */
#define RESPONSE_HEADERS_MAX (32 * 1024)
#define RESPONSE_BODY_MAX HTTP_RESPONSE_BODY_MAX

void http_request_init(http_request_t *req, size_t max_head, size_t max_body)
{
    memset(req, 0, sizeof *req);
    /* The head holds the raw bytes and then a NUL-terminated copy of each
     * name and value (see parser.c), so twice the limit plus slack. */
    buf_init(&req->head, 2 * max_head + 4096);
    buf_init(&req->body, max_body);
    buf_init(&req->scratch, max_head + 1024);
    buf_init(&req->res.headers, RESPONSE_HEADERS_MAX);
    buf_init(&req->res.body, RESPONSE_BODY_MAX);
    req->route_id = -1;
}

void http_request_reset(http_request_t *req)
{
    buf_t head = req->head, body = req->body, scratch = req->scratch;
    buf_t rh = req->res.headers, rb = req->res.body;
    http_header_span_t *spans = req->spans;
    int spans_cap = req->spans_cap;
    http_header_t *headers = req->headers;

    memset(req, 0, sizeof *req);
    buf_clear(&head);
    buf_clear(&body);
    buf_clear(&scratch);
    buf_clear(&rh);
    buf_clear(&rb);
    req->head = head;
    req->body = body;
    req->scratch = scratch;
    req->res.headers = rh;
    req->res.body = rb;
    req->spans = spans;
    req->spans_cap = spans_cap;
    req->headers = headers;
    req->route_id = -1;
}

void http_request_free(http_request_t *req)
{
    buf_free(&req->head);
    buf_free(&req->body);
    buf_free(&req->scratch);
    buf_free(&req->res.headers);
    buf_free(&req->res.body);
    free(req->spans);
    free(req->headers);
    req->spans = NULL;
    req->headers = NULL;
}

const char *http_request_header(const http_request_t *req, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (int i = 0; i < req->n_headers; i++) {
        const http_header_t *h = &req->headers[i];
        if (h->name_len == n && strncasecmp(h->name, name, n) == 0) {
            if (len)
                *len = h->value_len;
            return h->value;
        }
    }
    return NULL;
}

int http_request_header_count(const http_request_t *req, const char *name)
{
    size_t n = strlen(name);
    int count = 0;
    for (int i = 0; i < req->n_headers; i++)
        if (req->headers[i].name_len == n && strncasecmp(req->headers[i].name, name, n) == 0)
            count++;
    return count;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes in[0..len) into out; '+' means space in queries only.
 * Returns the decoded length, or -1 on a bad escape, a NUL, or no room. */
static long percent_decode(const char *in, size_t len, char *out, size_t outlen, bool plus_is_space)
{
    size_t o = 0;
    if (outlen == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (len - i < 3)
                return -1;
            int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0' || o + 1 >= outlen)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

long http_request_query(const http_request_t *req, const char *name, char *out, size_t outlen)
{
    if (!req->query)
        return -1;
    size_t name_len = strlen(name);
    const char *p = req->query, *end = req->query + req->query_len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        const char *key_end = eq ? eq : pair_end;
        if ((size_t)(key_end - p) == name_len && memcmp(p, name, name_len) == 0) {
            const char *v = eq ? eq + 1 : pair_end;
            long n = percent_decode(v, (size_t)(pair_end - v), out, outlen, true);
            return n < 0 ? -2 : n;
        }
        p = pair_end + 1;
    }
    return -1;
}

const char *http_request_param(const http_request_t *req, int i)
{
    return i >= 0 && i < req->n_params ? req->params[i] : NULL;
}

bool http_request_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > HTTP_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

static bool lower_hex_run(const char *s, size_t n, bool *all_zero)
{
    *all_zero = true;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        if (c != '0')
            *all_zero = false;
    }
    return true;
}

bool http_traceparent_valid(const char *s, size_t len)
{
    bool zero;
    if (len != HTTP_TRACEPARENT_LEN || s[2] != '-' || s[35] != '-' || s[52] != '-')
        return false;
    if (!lower_hex_run(s, 2, &zero) || s[0] != '0' || s[1] != '0')
        return false;
    if (!lower_hex_run(s + 3, 32, &zero) || zero)
        return false;
    if (!lower_hex_run(s + 36, 16, &zero) || zero)
        return false;
    return lower_hex_run(s + 53, 2, &zero);
}

void http_request_finish(http_request_t *req)
{
    req->finished = true;
    req->on_done(req);
}

long http_query_decode(const char *in, size_t len, char *out, size_t outlen)
{
    return percent_decode(in, len, out, outlen, true);
}

long http__percent_decode_segment(const char *in, size_t len, char *out, size_t outlen)
{
    return percent_decode(in, len, out, outlen, false);
}
