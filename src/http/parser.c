/* parser: llhttp driven with limits, smuggling checks and request storage. */
#include "http/parser.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

struct http_parser {
    llhttp_t llhttp;
    http_parser_limits_t limits;
    http_parser_hooks_t hooks;
    void *ctx;

    http_request_t *req; /* the message being parsed, NULL between messages */
    size_t head_bytes;
    size_t url_bytes;
    size_t trailer_bytes; /* trailers and chunk extensions */
    bool in_body;
    bool in_trailers;
    /* obs-fold detection. llhttp 8.1 hands a folded continuation line
     * ("\r\n Content-Length: 38") to on_header_value as one more span of the
     * value it continues. A value legitimately arrives in several spans only
     * when the input is split mid-value: the earlier span then ends at the
     * end of one input chunk and the next starts at the start of the next.
     * Any other second span is a fold. */
    const char *chunk_start, *chunk_end;
    bool span_ended_at_chunk_end;
    char prev_chunk_last_non_ws; /* last byte not SP/HT of earlier input */

    /* Bare-LF detection. llhttp 8.1 (even in strict mode) accepts a lone LF
     * as the end of the request line or of the header block, a framing
     * difference a front proxy could be made to disagree with. Every head
     * byte is scanned once: from the message's first method byte to the
     * position where on_headers_complete pauses the parser. */
    bool head_open;        /* scanning: the head, or later the trailers */
    bool head_paused;      /* paused at the end of the head */
    bool trailers_paused;  /* paused at the start of the trailer section */
    http_request_t *done;  /* complete message, handed over after the scan */
    const char *scan_from;
    char prev_head_byte;
    size_t field_len;
    bool value_completed;
    bool in_value;

    int error_status;
    const char *error_detail;
};

/* Per-line framing bytes llhttp does not hand to span callbacks
 * (": " and CRLF); counted so a head of many tiny headers is bounded too. */
#define HEADER_LINE_OVERHEAD 4

static int fail(http_parser_t *p, int status, const char *detail)
{
    if (!p->error_status) {
        p->error_status = status;
        p->error_detail = detail;
    }
    return HPE_USER;
}

static int count_head(http_parser_t *p, size_t n)
{
    p->head_bytes += n;
    if (p->head_bytes > p->limits.max_head)
        return fail(p, 431, "request line and headers are too large");
    return 0;
}

static http_parser_t *parser_of(llhttp_t *l)
{
    return (http_parser_t *)l->data;
}

static int on_message_begin(llhttp_t *l)
{
    http_parser_t *p = parser_of(l);
    p->req = p->hooks.request_alloc(p->ctx);
    if (!p->req)
        return fail(p, 503, "out of memory");
    p->head_bytes = p->url_bytes = p->trailer_bytes = 0;
    p->in_body = p->in_trailers = false;
    p->value_completed = p->in_value = false;
    return 0;
}

static int on_method(llhttp_t *l, const char *at, size_t len)
{
    http_parser_t *p = parser_of(l);
    if (!p->head_open) {
        p->head_open = true;
        p->scan_from = at;
        p->prev_head_byte = 0;
    }
    return count_head(p, len);
}

static int on_url(llhttp_t *l, const char *at, size_t len)
{
    http_parser_t *p = parser_of(l);
    p->url_bytes += len;
    if (p->url_bytes > p->limits.max_url)
        return fail(p, 414, "request target is too long");
    if (count_head(p, len) != 0)
        return HPE_USER;
    if (buf_append(&p->req->head, at, len) != 0)
        return fail(p, 431, "request line and headers are too large");
    p->req->target_len += len;
    return 0;
}

static int on_version(llhttp_t *l, const char *at, size_t len)
{
    (void)at;
    return count_head(parser_of(l), len + HEADER_LINE_OVERHEAD);
}

static int on_url_complete(llhttp_t *l)
{
    http_parser_t *p = parser_of(l);
    /* NUL-terminate the target; header bytes follow it in head. */
    if (buf_append_char(&p->req->head, '\0') != 0)
        return fail(p, 431, "request line and headers are too large");
    return 0;
}

static int on_header_field(llhttp_t *l, const char *at, size_t len)
{
    http_parser_t *p = parser_of(l);
    p->field_len += len;
    if (p->in_trailers) {
        p->in_value = false;
        p->value_completed = false;
        p->trailer_bytes += len + HEADER_LINE_OVERHEAD;
        if (p->trailer_bytes > p->limits.max_head)
            return fail(p, 431, "trailer section is too large");
        return 0; /* trailers are read and ignored */
    }
    http_request_t *req = p->req;
    if (count_head(p, len) != 0)
        return HPE_USER;
    if (p->in_value || req->n_spans == 0 || p->value_completed) {
        /* A new field starts. */
        if (req->n_spans >= p->limits.max_headers)
            return fail(p, 431, "too many header fields");
        if (req->n_spans == req->spans_cap) {
            int cap = req->spans_cap ? req->spans_cap * 2 : 16;
            if (cap > p->limits.max_headers)
                cap = p->limits.max_headers;
            http_header_span_t *s = realloc(req->spans, (size_t)cap * sizeof *s);
            if (!s)
                return fail(p, 503, "out of memory");
            req->spans = s;
            req->spans_cap = cap;
        }
        if (count_head(p, HEADER_LINE_OVERHEAD) != 0)
            return HPE_USER;
        http_header_span_t *s = &req->spans[req->n_spans++];
        s->name_off = (uint32_t)req->head.len;
        s->name_len = 0;
        s->value_off = 0;
        s->value_len = 0;
        p->in_value = false;
        p->value_completed = false;
    }
    if (buf_append(&req->head, at, len) != 0)
        return fail(p, 431, "request line and headers are too large");
    req->spans[req->n_spans - 1].name_len += (uint32_t)len;
    return 0;
}

static int on_header_field_complete(llhttp_t *l)
{
    http_parser_t *p = parser_of(l);
    bool empty = p->field_len == 0;
    p->field_len = 0;
    if (empty)
        return fail(p, 400, "empty header field name");
    return 0;
}

/* See the obs-fold note in struct http_parser. */
static bool is_folded_span(http_parser_t *p, const char *at, bool continues_value)
{
    bool folded;
    if (continues_value)
        return !p->span_ended_at_chunk_end || at != p->chunk_start;
    /* A first span begins after the colon and optional whitespace; a line
     * break in that whitespace ("X:\r\n value") is a fold too. */
    const char *q = at;
    while (q > p->chunk_start && (q[-1] == ' ' || q[-1] == '\t'))
        q--;
    char before = q > p->chunk_start ? q[-1] : p->prev_chunk_last_non_ws;
    folded = before == '\n';
    return folded;
}

static int on_header_value(llhttp_t *l, const char *at, size_t len)
{
    http_parser_t *p = parser_of(l);
    bool continues = p->in_value;
    if (len > 0 && is_folded_span(p, at, continues))
        return fail(p, 400, "obsolete line folding is not accepted");
    p->span_ended_at_chunk_end = at + len == p->chunk_end;
    if (p->in_trailers) {
        p->in_value = true;
        p->trailer_bytes += len;
        if (p->trailer_bytes > p->limits.max_head)
            return fail(p, 431, "trailer section is too large");
        return 0;
    }
    http_request_t *req = p->req;
    if (count_head(p, len) != 0)
        return HPE_USER;
    http_header_span_t *s = &req->spans[req->n_spans - 1];
    if (!p->in_value) {
        s->value_off = (uint32_t)req->head.len;
        p->in_value = true;
    }
    if (buf_append(&req->head, at, len) != 0)
        return fail(p, 431, "request line and headers are too large");
    s->value_len += (uint32_t)len;
    return 0;
}

static int on_header_value_complete(llhttp_t *l)
{
    http_parser_t *p = parser_of(l);
    p->value_completed = true;
    if (p->in_trailers) {
        p->in_value = false;
        return 0;
    }
    if (!p->in_value) {
        /* An empty value: still a header, its value starts here. */
        http_header_span_t *s = &p->req->spans[p->req->n_spans - 1];
        s->value_off = (uint32_t)p->req->head.len;
        p->in_value = true;
    }
    return 0;
}

static http_method_t method_from_llhttp(uint8_t m)
{
    switch (m) {
    case HTTP_GET: return HTTP_METHOD_GET;
    case HTTP_HEAD: return HTTP_METHOD_HEAD;
    case HTTP_POST: return HTTP_METHOD_POST;
    case HTTP_PUT: return HTTP_METHOD_PUT;
    case HTTP_PATCH: return HTTP_METHOD_PATCH;
    case HTTP_DELETE: return HTTP_METHOD_DELETE;
    case HTTP_OPTIONS: return HTTP_METHOD_OPTIONS;
    default: return HTTP_METHOD_OTHER;
    }
}

/* Splits the target into path and query. The absolute form
 * ("http://host/path", RFC 9112 3.2.2) is reduced to its path; the authority
 * is ignored because there is one site per listener. */
static void split_target(http_request_t *req)
{
    const char *t = req->target;
    size_t len = req->target_len;
    const char *path = t;
    if (len > 0 && t[0] != '/') {
        const char *sep = len >= 3 ? strstr(t, "://") : NULL;
        if (sep) {
            const char *slash = strchr(sep + 3, '/');
            const char *q = strchr(sep + 3, '?');
            if (q && (!slash || q < slash))
                slash = NULL;
            path = slash ? slash : "/";
            if (!slash) {
                req->path = "/";
                req->path_len = 1;
                req->query = q ? q + 1 : NULL;
                req->query_len = q ? strlen(q + 1) : 0;
                return;
            }
        }
    }
    size_t plen = len - (size_t)(path - t);
    const char *q = memchr(path, '?', plen);
    req->path = path;
    req->path_len = q ? (size_t)(q - path) : plen;
    req->query = q ? q + 1 : NULL;
    req->query_len = q ? plen - req->path_len - 1 : 0;
}

static int on_headers_complete(llhttp_t *l)
{
    http_parser_t *p = parser_of(l);
    http_request_t *req = p->req;

    if (l->http_major != 1 || l->http_minor > 1)
        return fail(p, 505, "only HTTP/1.0 and HTTP/1.1 are served");

    /* Freeze the head: offsets become pointers now that it stops growing.
     * The extra NUL after each value lets handlers use C string calls. */
    size_t n = (size_t)req->n_spans;
    if (n) {
        http_header_t *h = realloc(req->headers, n * sizeof *h);
        if (!h)
            return fail(p, 503, "out of memory");
        req->headers = h;
    }
    /* Terminate each value in place: values are followed by the next
     * field's name in head, so copy them into a terminated layout. */
    size_t raw_len = req->head.len;
    if (buf_reserve(&req->head, raw_len + n * 2) != 0)
        return fail(p, 431, "request line and headers are too large");
    for (size_t i = 0; i < n; i++) {
        http_header_span_t *s = &req->spans[i];
        size_t name_at = req->head.len;
        if (buf_append(&req->head, req->head.data + s->name_off, s->name_len) != 0 ||
            buf_append_char(&req->head, '\0') != 0)
            return fail(p, 431, "request line and headers are too large");
        size_t value_at = req->head.len;
        if (buf_append(&req->head, req->head.data + s->value_off, s->value_len) != 0 ||
            buf_append_char(&req->head, '\0') != 0)
            return fail(p, 431, "request line and headers are too large");
        s->name_off = (uint32_t)name_at;
        s->value_off = (uint32_t)value_at;
    }
    char *base = req->head.data;
    for (size_t i = 0; i < n; i++) {
        http_header_span_t *s = &req->spans[i];
        req->headers[i].name = base + s->name_off;
        req->headers[i].name_len = s->name_len;
        req->headers[i].value = base + s->value_off;
        /* llhttp keeps trailing whitespace in the value; RFC 9110 says it
         * is not part of it. */
        size_t vl = s->value_len;
        while (vl && (base[s->value_off + vl - 1] == ' ' || base[s->value_off + vl - 1] == '\t'))
            vl--;
        req->headers[i].value_len = vl;
        base[s->value_off + vl] = '\0';
    }
    req->n_headers = (int)n;
    req->target = base;

    req->http_major = l->http_major;
    req->http_minor = l->http_minor;
    req->method_name = llhttp_method_name((llhttp_method_t)l->method);
    req->method = method_from_llhttp(l->method);
    split_target(req);

    if ((l->flags & F_CONTENT_LENGTH) && l->content_length > p->limits.max_body)
        return fail(p, 413, "request body is too large");
    req->has_body = (l->flags & (F_CONTENT_LENGTH | F_CHUNKED)) &&
                    ((l->flags & F_CHUNKED) || l->content_length > 0);

    size_t elen;
    const char *expect = http_request_header(req, "expect", &elen);
    if (expect) {
        if (elen == 12 && strncasecmp(expect, "100-continue", 12) == 0)
            req->expect_continue = req->has_body;
        else
            return fail(p, 417, "only Expect: 100-continue is understood");
    }

    /* RFC 9112 3.2: exactly one Host in HTTP/1.1, at most one in 1.0. Two
     * differing Hosts are a classic way to make a proxy and us disagree. */
    int hosts = http_request_header_count(req, "host");
    if (hosts > 1 || (hosts == 0 && req->http_minor == 1))
        return fail(p, 400, hosts ? "more than one Host header" : "missing Host header");

    /* Only "chunked" is understood (RFC 9112 6.1: 501 for other codings
     * such as "gzip, chunked"); a final coding other than chunked leaves the
     * length unknown, and llhttp answers that with an error (400) itself. */
    int codings = http_request_header_count(req, "transfer-encoding");
    if (codings > 1)
        return fail(p, 400, "more than one Transfer-Encoding header");
    if (codings == 1 && (l->flags & F_CHUNKED)) {
        size_t tlen;
        const char *te = http_request_header(req, "transfer-encoding", &tlen);
        if (tlen != 7 || strncasecmp(te, "chunked", 7) != 0)
            return fail(p, 501, "only the chunked transfer coding is implemented");
    }

    if (l->method == HTTP_CONNECT)
        return fail(p, 400, "CONNECT is not supported");

    p->in_body = true;
    p->in_value = false;
    p->value_completed = false;
    /* Pause so http_parser_feed learns where the head ends; it checks the
     * head's line ends, tells the hooks, and resumes. */
    p->head_paused = true;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *l, const char *at, size_t len)
{
    http_parser_t *p = parser_of(l);
    if (p->req->body.len + len > p->limits.max_body ||
        buf_append(&p->req->body, at, len) != 0)
        return fail(p, 413, "request body is too large");
    return 0;
}

/* Chunk extensions are parsed and ignored, but bounded like trailers. */
static int on_chunk_extension(llhttp_t *l, const char *at, size_t len)
{
    http_parser_t *p = parser_of(l);
    (void)at;
    p->trailer_bytes += len;
    if (p->trailer_bytes > p->limits.max_head)
        return fail(p, 431, "chunk extensions are too large");
    return 0;
}

static int on_chunk_complete(llhttp_t *l)
{
    (void)l;
    return 0;
}

static int on_chunk_header(llhttp_t *l)
{
    http_parser_t *p = parser_of(l);
    /* A zero-length chunk ends the body; header callbacks after it are
     * trailers, whose line ends are scanned like the head's: pause so the
     * feed loop learns where they start. */
    if (l->content_length == 0) {
        p->in_trailers = true;
        p->trailers_paused = true;
        return HPE_PAUSED;
    }
    if (p->req->body.len + l->content_length > p->limits.max_body)
        return fail(p, 413, "request body is too large");
    return 0;
}

static int on_message_complete(llhttp_t *l)
{
    http_parser_t *p = parser_of(l);
    http_request_t *req = p->req;
    /* A protocol switch is never performed: the request is answered as
     * HTTP/1.1 and the connection closed, since what follows is not HTTP/1.1
     * (RFC 9110 7.8 lets a server ignore Upgrade). */
    req->keep_alive = llhttp_should_keep_alive(l) != 0 && !l->upgrade;
    p->req = NULL;
    p->in_body = false;
    p->in_trailers = false;
    /* Handed over by the feed loop once the trailers' line ends are known
     * to be clean. */
    p->done = req;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_method = on_method,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_version = on_version,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_chunk_extension_name = on_chunk_extension,
    .on_chunk_extension_value = on_chunk_extension,
    .on_chunk_complete = on_chunk_complete,
    .on_message_complete = on_message_complete,
};

http_parser_t *http_parser_new(const http_parser_limits_t *limits,
                               const http_parser_hooks_t *hooks, void *ctx)
{
    http_parser_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->limits = *limits;
    p->hooks = *hooks;
    p->ctx = ctx;
    llhttp_init(&p->llhttp, HTTP_REQUEST, &settings);
    p->llhttp.data = p;
    /* Every lenient flag stays off: they exist for broken peers and each
     * one reopens a request-smuggling hole. */
    llhttp_set_lenient_headers(&p->llhttp, 0);
    llhttp_set_lenient_chunked_length(&p->llhttp, 0);
    llhttp_set_lenient_keep_alive(&p->llhttp, 0);
    llhttp_set_lenient_transfer_encoding(&p->llhttp, 0);
    return p;
}

void http_parser_free(http_parser_t *p)
{
    if (!p)
        return;
    if (p->req) {
        p->req->on_done = NULL;
        /* Unfinished request: the owner's allocator gave it; give it back. */
        http_request_t *req = p->req;
        p->req = NULL;
        req->orphaned = true;
        p->hooks.on_request(p->ctx, req);
    }
    free(p);
}

static const char *llhttp_error_detail(llhttp_errno_t err)
{
    switch (err) {
    case HPE_INVALID_METHOD: return "invalid method";
    case HPE_INVALID_URL: return "invalid request target";
    case HPE_INVALID_VERSION: return "invalid HTTP version";
    case HPE_INVALID_HEADER_TOKEN: return "invalid header field";
    case HPE_INVALID_CONTENT_LENGTH: return "invalid Content-Length";
    case HPE_UNEXPECTED_CONTENT_LENGTH: return "conflicting Content-Length or Transfer-Encoding";
    case HPE_INVALID_TRANSFER_ENCODING: return "invalid Transfer-Encoding";
    case HPE_INVALID_CHUNK_SIZE: return "invalid chunk size";
    case HPE_CR_EXPECTED: return "CR expected";
    case HPE_LF_EXPECTED: return "LF expected";
    case HPE_UNEXPECTED_SPACE: return "unexpected whitespace";
    case HPE_INVALID_CONSTANT: return "invalid protocol constant";
    case HPE_STRICT: return "malformed request";
    default: return "malformed request";
    }
}

static void note_last_non_ws(http_parser_t *p, const char *from, const char *to)
{
    for (const char *q = to; q > from; q--) {
        if (q[-1] != ' ' && q[-1] != '\t') {
            p->prev_chunk_last_non_ws = q[-1];
            return;
        }
    }
}

/* True when [from, to) holds an LF not preceded by CR. */
static bool has_bare_lf(http_parser_t *p, const char *from, const char *to)
{
    char prev = p->prev_head_byte;
    for (const char *q = from; q < to; q++) {
        if (*q == '\n' && prev != '\r')
            return true;
        prev = *q;
    }
    p->prev_head_byte = prev;
    return false;
}

http_parse_result_t http_parser_feed(http_parser_t *p, const char *data, size_t len,
                                     size_t *consumed)
{
    const char *cur = data, *end = data + len;
    for (;;) {
        p->chunk_start = cur;
        p->chunk_end = end;
        if (p->head_open)
            p->scan_from = cur;
        p->head_paused = false;
        p->trailers_paused = false;
        llhttp_errno_t err = llhttp_execute(&p->llhttp, cur, (size_t)(end - cur));
        const char *stop = err == HPE_OK ? end : llhttp_get_error_pos(&p->llhttp);
        note_last_non_ws(p, cur, stop);
        *consumed = (size_t)(stop - data);

        if (p->head_open && !p->error_status) {
            if (has_bare_lf(p, p->scan_from, stop)) {
                fail(p, 400, "line ends must be CRLF");
                if (p->done) {
                    /* Its trailers were bad: the message is not answered. */
                    p->req = p->done;
                    p->done = NULL;
                }
                return HTTP_PARSE_ERROR;
            }
            if (p->head_paused || p->done)
                p->head_open = false;
        }
        if (err == HPE_PAUSED && p->head_paused) {
            p->hooks.on_head(p->ctx, p->req);
            llhttp_resume(&p->llhttp);
            cur = stop;
            continue; /* even with no bytes left: a bodiless message completes now */
        }
        if (err == HPE_PAUSED && p->trailers_paused) {
            p->head_open = true;
            p->scan_from = stop;
            p->prev_head_byte = '\n';
            llhttp_resume(&p->llhttp);
            cur = stop;
            continue;
        }
        if (err == HPE_PAUSED && p->done) {
            http_request_t *req = p->done;
            p->done = NULL;
            bool pause = p->hooks.on_request(p->ctx, req);
            llhttp_resume(&p->llhttp);
            if (pause)
                return HTTP_PARSE_PAUSED;
            cur = stop;
            continue; /* even with no bytes left: an upgrade is reported now */
        }

        switch (err) {
        case HPE_OK:
            return HTTP_PARSE_OK;
        case HPE_PAUSED:
            return HTTP_PARSE_PAUSED;
        case HPE_PAUSED_UPGRADE:
            return HTTP_PARSE_UPGRADE;
        case HPE_USER:
            if (!p->error_status)
                fail(p, 400, "malformed request");
            return HTTP_PARSE_ERROR;
        default:
            *consumed = len;
            /* A well-formed version we do not serve is 505; a malformed
             * one (or a bad byte after it) is 400. */
            if (err == HPE_INVALID_VERSION &&
                strcmp(llhttp_get_error_reason(&p->llhttp), "Invalid HTTP version") == 0)
                fail(p, 505, "only HTTP/1.0 and HTTP/1.1 are served");
            else
                fail(p, 400, llhttp_error_detail(err));
            return HTTP_PARSE_ERROR;
        }
    }
}

void http_parser_resume(http_parser_t *p)
{
    llhttp_resume(&p->llhttp);
}

int http_parser_error_status(const http_parser_t *p)
{
    return p->error_status;
}

const char *http_parser_error_detail(const http_parser_t *p)
{
    return p->error_detail ? p->error_detail : "malformed request";
}

http_request_t *http_parser_take_request(http_parser_t *p)
{
    http_request_t *req = p->req;
    p->req = NULL;
    return req;
}

bool http_parser_idle(const http_parser_t *p)
{
    return p->req == NULL;
}

bool http_parser_in_body(const http_parser_t *p)
{
    return p->req != NULL && p->in_body;
}
