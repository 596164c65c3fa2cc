/* parser: HTTP/1.1 request framing on top of llhttp, with our limits.
 *
 * The only file that includes llhttp.h. llhttp itself enforces no sizes and
 * (in Debian's 8.1) accepts obs-fold header continuations, so this layer
 * counts bytes in every span callback and turns each violation into the
 * status the client gets: 400, 413, 414, 431 or 505. After an error the
 * connection's framing is lost: the caller answers once and closes. */
#ifndef TODO_HTTP_PARSER_H
#define TODO_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>

#include "http/request.h"

typedef struct http_parser http_parser_t;

typedef struct http_parser_limits {
    size_t max_url;
    size_t max_head; /* request line + headers (and, separately, trailers) */
    size_t max_body;
    int max_headers;
} http_parser_limits_t;

typedef struct http_parser_hooks {
    /* A request object for the message that is starting. */
    http_request_t *(*request_alloc)(void *ctx);
    /* The head is complete and valid (body not read yet). */
    void (*on_head)(void *ctx, http_request_t *req);
    /* The whole message is in; ownership of req passes to the callee.
     * Return true to pause parsing right after this message. */
    bool (*on_request)(void *ctx, http_request_t *req);
} http_parser_hooks_t;

typedef enum http_parse_result {
    HTTP_PARSE_OK,      /* all input consumed */
    HTTP_PARSE_PAUSED,  /* on_request asked to pause; *consumed says where */
    HTTP_PARSE_UPGRADE, /* a message asked to switch protocols: stop parsing */
    HTTP_PARSE_ERROR,   /* see http_parser_error_* */
} http_parse_result_t;

http_parser_t *http_parser_new(const http_parser_limits_t *limits,
                               const http_parser_hooks_t *hooks, void *ctx);
void http_parser_free(http_parser_t *p);

/* Feeds bytes. On HTTP_PARSE_PAUSED or _UPGRADE, *consumed is how many were
 * used; the rest belongs to later messages (or to the other protocol). */
http_parse_result_t http_parser_feed(http_parser_t *p, const char *data, size_t len,
                                     size_t *consumed);
/* Continues after HTTP_PARSE_PAUSED; feed the remaining bytes next. */
void http_parser_resume(http_parser_t *p);

/* After HTTP_PARSE_ERROR: the status to answer with and a short reason. */
int http_parser_error_status(const http_parser_t *p);
const char *http_parser_error_detail(const http_parser_t *p);
/* The request whose parsing failed, if one had begun (the caller answers
 * on it and takes ownership), else NULL. */
http_request_t *http_parser_take_request(http_parser_t *p);

/* Between messages (nothing of the next request received yet). */
bool http_parser_idle(const http_parser_t *p);
/* The head is complete and the body is being read. */
bool http_parser_in_body(const http_parser_t *p);

#endif
