/* request: one HTTP request and the response being built for it.
 *
 * A request owns every byte it refers to: the parser copies the target and
 * headers into `head` and the body into `body`, so nothing points into the
 * socket's read buffer once a callback returns. The server recycles request
 * objects, keeping their buffers' allocations.
 *
 * Life: the parser fills it; the router picks a handler; the handler (now or
 * from a later callback) builds the response and calls http_request_finish(),
 * which hands it back to its owner through on_done. A handler that outlives
 * its client finds req->orphaned set and just finishes. */
#ifndef TODO_HTTP_REQUEST_H
#define TODO_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef enum http_method {
    HTTP_METHOD_GET,
    HTTP_METHOD_HEAD,
    HTTP_METHOD_POST,
    HTTP_METHOD_PUT,
    HTTP_METHOD_PATCH,
    HTTP_METHOD_DELETE,
    HTTP_METHOD_OPTIONS,
    HTTP_METHOD_OTHER, /* parsed but not served: CONNECT, TRACE, WebDAV, ... */
    HTTP_METHOD_COUNT,
} http_method_t;

#define HTTP_METHOD_BIT(m) (1u << (m))

#define HTTP_MAX_PARAMS 4
/* The largest response body a handler may build. */
#define HTTP_RESPONSE_BODY_MAX (8 * 1024 * 1024)
#define HTTP_REQUEST_ID_MAX 128
/* "00-<32 hex>-<16 hex>-<2 hex>" */
#define HTTP_TRACEPARENT_LEN 55

typedef struct http_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} http_header_t;

/* Offsets into request.head while the head is still growing. */
typedef struct http_header_span {
    uint32_t name_off, name_len, value_off, value_len;
} http_header_span_t;

typedef struct http_response {
    int status;
    const char *content_type; /* static string, or NULL for no body type */
    buf_t headers;            /* extra "Name: value\r\n" lines */
    buf_t body;
    bool close; /* send Connection: close and close after it */
} http_response_t;

typedef struct http_request http_request_t;
typedef void (*http_request_done_cb)(http_request_t *req);

struct http_request {
    http_method_t method;
    const char *method_name;
    uint8_t http_major, http_minor;
    bool keep_alive;
    bool expect_continue;
    bool has_body;

    /* The request target as sent (NUL-terminated), then split: path and
     * query point into it and are delimited by their lengths only. */
    const char *target;
    size_t target_len;
    const char *path;
    size_t path_len;
    const char *query; /* NULL when the target has no '?' */
    size_t query_len;

    http_header_t *headers;
    int n_headers;

    buf_t head; /* target and header bytes */
    http_header_span_t *spans;
    int n_spans, spans_cap;
    buf_t body;
    buf_t scratch; /* decoded path parameters */

    char request_id[HTTP_REQUEST_ID_MAX + 1];
    char traceparent[HTTP_TRACEPARENT_LEN + 1]; /* "" when absent or invalid */

    /* Set by the router. */
    int route_id;
    const char *route_name;
    const char *params[HTTP_MAX_PARAMS];
    size_t param_lens[HTTP_MAX_PARAMS];
    int n_params;

    http_response_t res;
    bool finished;
    bool orphaned; /* the connection closed before the response was sent */

    uint64_t start_ns;
    void *owner;
    http_request_done_cb on_done;
    http_request_t *next; /* owner's queue */
};

/* max_head bounds the target plus headers, max_body the body. */
void http_request_init(http_request_t *req, size_t max_head, size_t max_body);
/* Clears everything for reuse, keeping allocations (and the bounds). */
void http_request_reset(http_request_t *req);
void http_request_free(http_request_t *req);

/* Case-insensitive lookup of the first header with that name; NULL when
 * absent. *len gets the value's length. */
const char *http_request_header(const http_request_t *req, const char *name, size_t *len);
/* How many headers carry that name. */
int http_request_header_count(const http_request_t *req, const char *name);
/* Looks a query parameter up, percent-decoding it into out (NUL-terminated).
 * Returns its length, -1 when absent, -2 when malformed or too long. */
long http_request_query(const http_request_t *req, const char *name, char *out, size_t outlen);
/* The router's i-th path parameter, decoded; NULL when absent. */
const char *http_request_param(const http_request_t *req, int i);

/* Accepted request ids are 1..128 bytes of [A-Za-z0-9._:-]. */
bool http_request_id_valid(const char *s, size_t len);
/* W3C trace-context version 00 syntax, not all-zero ids. */
bool http_traceparent_valid(const char *s, size_t len);

/* Percent-decodes a query value ('+' is a space) into out, NUL-terminated.
 * Returns the length, or -1 on a bad escape, an encoded NUL or no room. */
long http_query_decode(const char *in, size_t len, char *out, size_t outlen);

/* For the router: percent-decodes one path segment ('+' stays '+').
 * Returns the length, or -1 on a bad escape, an encoded NUL or no room. */
long http__percent_decode_segment(const char *in, size_t len, char *out, size_t outlen);

/* Hands the request, with its response complete, back to its owner. */
void http_request_finish(http_request_t *req);

#endif
