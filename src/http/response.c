/* response: status reasons, response building and serialization. */
#include "http/response.h"

#include <string.h>

#include "http/problem.h"

const char *http_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

void http_response_begin(http_request_t *req, int status, const char *content_type)
{
    req->res.status = status;
    req->res.content_type = content_type;
    buf_clear(&req->res.body);
}

int http_response_header(http_request_t *req, const char *name, const char *value)
{
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return -1;
    buf_t *h = &req->res.headers;
    size_t mark = h->len;
    if (buf_append_str(h, name) != 0 || buf_append(h, ": ", 2) != 0 ||
        buf_append_str(h, value) != 0 || buf_append(h, "\r\n", 2) != 0) {
        h->len = mark;
        return -1;
    }
    return 0;
}

void http_respond(http_request_t *req, int status, const char *content_type,
                  const char *body, size_t len)
{
    http_response_begin(req, status, content_type);
    if (buf_append(&req->res.body, body, len) != 0) {
        http_problem(req, 500, "response-too-large", "the response exceeded its size bound");
        return;
    }
    http_request_finish(req);
}

void http_response_end(http_request_t *req)
{
    http_request_finish(req);
}

static bool status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

int http_response_serialize(const http_request_t *req, buf_t *out, const char *date, bool close)
{
    const http_response_t *res = &req->res;
    size_t mark = out->len;
    int rc = buf_append(out, "HTTP/1.1 ", 9);
    rc = rc ? rc : buf_append_u64(out, (unsigned)res->status);
    rc = rc ? rc : buf_append_char(out, ' ');
    rc = rc ? rc : buf_append_str(out, http_status_reason(res->status));
    rc = rc ? rc : buf_append_str(out, "\r\nDate: ");
    rc = rc ? rc : buf_append_str(out, date);
    rc = rc ? rc : buf_append_str(out, "\r\nX-Request-Id: ");
    rc = rc ? rc : buf_append_str(out, req->request_id);
    rc = rc ? rc : buf_append(out, "\r\n", 2);
    if (res->content_type && status_has_body(res->status)) {
        rc = rc ? rc : buf_append_str(out, "Content-Type: ");
        rc = rc ? rc : buf_append_str(out, res->content_type);
        rc = rc ? rc : buf_append(out, "\r\n", 2);
    }
    if (status_has_body(res->status)) {
        rc = rc ? rc : buf_append_str(out, "Content-Length: ");
        rc = rc ? rc : buf_append_u64(out, res->body.len);
        rc = rc ? rc : buf_append(out, "\r\n", 2);
    }
    if (close)
        rc = rc ? rc : buf_append_str(out, "Connection: close\r\n");
    else if (req->http_minor == 0)
        rc = rc ? rc : buf_append_str(out, "Connection: keep-alive\r\n");
    rc = rc ? rc : buf_append(out, res->headers.data, res->headers.len);
    rc = rc ? rc : buf_append(out, "\r\n", 2);
    if (status_has_body(res->status) && req->method != HTTP_METHOD_HEAD)
        rc = rc ? rc : buf_append(out, res->body.data, res->body.len);
    if (rc)
        out->len = mark;
    return rc;
}
