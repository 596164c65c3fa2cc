/* server: HTTP/1.1 connections on libuv, answered in order, within bounds.
 *
 * A connection's life:
 *
 *   OPEN ──(Connection: close, error, drain)──► CLOSING ──(output flushed)──►
 *   LINGERING ──(peer EOF or linger timer)──► CLOSED (uv_close issued)
 *        └──────────(reset, timeout, cut)─────────────────────────┘
 *
 * Requests go into a FIFO as they are parsed; each may finish now or later
 * (a database answer), in any order, but responses leave in FIFO order. A
 * connection frees its memory only when both of its handles have run their
 * close callbacks; requests still in a handler's hands when it closes are
 * marked orphaned and freed when the handler finishes them. */
#include "http/server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "core/uuid.h"
#include "http/parser.h"
#include "http/problem.h"
#include "http/response.h"
#include "ops/metrics.h"

/* Read into one loop-wide buffer: every byte is parsed (and copied where it
 * must outlive the callback) before the next read. */
#define READ_BUFFER_SIZE (64 * 1024)
/* After the last response of a closing connection, unread input is drained
 * for at most this long, so the client sees the response rather than a
 * reset caused by data it sent that we never read (RFC 9112 9.6). */
#define LINGER_MS 1000
#define LINGER_MAX_BYTES (1024 * 1024)
/* Recycled request objects kept for reuse: at most 256 × ~5 buffers of
 * 16 KiB stay allocated after a burst. */
#define REQUEST_POOL_MAX 256
/* A recycled request whose buffers grew past this gives them back. */
#define REQUEST_KEEP_BYTES (16 * 1024)
#define LISTEN_BACKLOG 4096

typedef enum conn_state {
    CONN_OPEN,
    CONN_CLOSING,   /* no more requests; close once output is flushed */
    CONN_LINGERING, /* write side shut; discarding input until EOF or timer */
    CONN_CLOSED,    /* uv_close issued */
} conn_state_t;

typedef enum timer_kind {
    TIMER_NONE,
    TIMER_IDLE,
    TIMER_HEADER,
    TIMER_BODY,
    TIMER_SEND,
    TIMER_LINGER,
} timer_kind_t;

typedef struct conn conn_t;

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    http_server_t *srv;
    http_parser_t *parser;
    conn_state_t state;
    int open_handles;

    http_request_t *queue_head, *queue_tail;
    int queued; /* requests parsed and not yet answered on the wire */

    buf_t out;            /* serialized, not yet handed to uv_write */
    size_t writing;       /* bytes handed to uv_write, not yet completed */
    size_t finished;      /* body bytes of answered requests still queued */
    buf_t backlog;        /* bytes read but not parsed while paused */
    bool reading;
    bool parser_paused;
    bool in_feed;         /* inside conn_feed: writes wait until it ends */
    bool peer_eof;
    size_t lingered;

    timer_kind_t timer_kind;
    uint64_t timer_due;   /* loop time (ms) the timer is armed for */
    uint64_t head_started;
    uint64_t body_started;
    uint64_t last_progress;

    conn_t *prev, *next;  /* server's list of connections */
};

typedef struct write_req {
    uv_write_t req;
    conn_t *conn;
    char *data;
    size_t len;
} write_req_t;

struct http_server {
    uv_loop_t *loop;
    const http_router_t *router;
    uv_tcp_t listener;
    uv_timer_t drain_timer;
    bool listening;
    bool draining;
    bool drain_timer_started;
    int open_handles; /* listener + drain timer */
    http_server_drained_cb drained_cb;
    void *drained_arg;

    http_parser_limits_t limits;
    int max_connections;
    int max_pipeline;
    size_t max_output;
    uint64_t header_timeout_ms, body_timeout_ms, idle_timeout_ms, shutdown_timeout_ms;
    bool access_log;
    char host[256];
    int port;

    conn_t *conns;
    int n_conns;
    http_request_t *free_reqs;
    int n_free_reqs;

    char date[TIMEFMT_HTTP_DATE_LEN + 1];
    int64_t date_second;

    uint64_t accepted, rejected, parse_errors, timeouts;
};

static char read_buffer[READ_BUFFER_SIZE];

static void conn_close(conn_t *c, const char *reason);
static void conn_flush(conn_t *c);
static void conn_feed(conn_t *c, const char *data, size_t len);
static void conn_update_timer(conn_t *c);
static void conn_maybe_resume(conn_t *c);
static void server_maybe_drained(http_server_t *srv);

/* ---- request objects ---------------------------------------------------- */

static http_request_t *request_get(http_server_t *srv)
{
    http_request_t *req = srv->free_reqs;
    if (req) {
        srv->free_reqs = req->next;
        srv->n_free_reqs--;
        http_request_reset(req);
        return req;
    }
    req = malloc(sizeof *req);
    if (req)
        http_request_init(req, srv->limits.max_head, srv->limits.max_body);
    return req;
}

static void request_put(http_server_t *srv, http_request_t *req)
{
    if (srv->n_free_reqs >= REQUEST_POOL_MAX) {
        http_request_free(req);
        free(req);
        return;
    }
    /* Do not let one large upload or response pin memory in the pool. */
    if (req->body.cap > REQUEST_KEEP_BYTES)
        buf_free(&req->body);
    if (req->res.body.cap > REQUEST_KEEP_BYTES)
        buf_free(&req->res.body);
    if (req->head.cap > REQUEST_KEEP_BYTES)
        buf_free(&req->head);
    if (req->scratch.cap > REQUEST_KEEP_BYTES)
        buf_free(&req->scratch);
    if (req->res.headers.cap > REQUEST_KEEP_BYTES)
        buf_free(&req->res.headers);
    req->next = srv->free_reqs;
    srv->free_reqs = req;
    srv->n_free_reqs++;
}

/* ---- helpers ------------------------------------------------------------ */

static const char *server_date(http_server_t *srv)
{
    int64_t now_ms = timefmt_now_ms();
    int64_t sec = now_ms / 1000;
    if (sec != srv->date_second) {
        srv->date_second = sec;
        timefmt_http_date(sec, srv->date);
    }
    return srv->date;
}

static void conn_read_start(conn_t *c);
static void conn_read_stop(conn_t *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* Answers waiting their turn count too: a client that pipelines many large
 * requests and reads nothing must not make us hold all their answers. */
static bool conn_output_full(const conn_t *c)
{
    return c->out.len + c->writing + c->finished > c->srv->max_output;
}

/* Whether parsing must stop before the next message. */
static bool conn_must_pause(const conn_t *c)
{
    return c->state != CONN_OPEN || c->queued >= c->srv->max_pipeline || conn_output_full(c);
}

static void queue_push(conn_t *c, http_request_t *req)
{
    req->next = NULL;
    if (c->queue_tail)
        c->queue_tail->next = req;
    else
        c->queue_head = req;
    c->queue_tail = req;
    c->queued++;
}

static http_request_t *queue_pop(conn_t *c)
{
    http_request_t *req = c->queue_head;
    c->queue_head = req->next;
    if (!c->queue_head)
        c->queue_tail = NULL;
    c->queued--;
    if (req->finished)
        c->finished -= req->res.body.len;
    req->next = NULL;
    return req;
}

static void access_log(http_server_t *srv, const http_request_t *req)
{
    if (!srv->access_log || !log_enabled(LOG_INFO))
        return;
    double ms = (double)(uv_hrtime() - req->start_ns) / 1e6;
    log_info("request", LOG_STR("method", req->method_name ? req->method_name : "-"),
             LOG_STRN("path", req->path ? req->path : "-", req->path ? req->path_len : 1),
             LOG_STR("route", req->route_name ? req->route_name : HTTP_ROUTE_UNMATCHED),
             LOG_INT("status", req->res.status), LOG_INT("bytes", req->res.body.len),
             LOG_DOUBLE("duration_ms", ms), LOG_STR("request_id", req->request_id));
}

/* Empties the queue: answered requests go back to the pool; ones still
 * with a handler are orphaned, and freed when the handler finishes them. */
static void conn_drop_queue(conn_t *c)
{
    while (c->queue_head) {
        http_request_t *req = queue_pop(c);
        if (req->finished)
            request_put(c->srv, req);
        else
            req->orphaned = true;
    }
}

/* Moves finished responses at the head of the queue into the output
 * buffer, in order. */
static void conn_collect(conn_t *c)
{
    http_server_t *srv = c->srv;
    while (c->queue_head && c->queue_head->finished && c->state != CONN_CLOSED &&
           c->state != CONN_LINGERING) {
        /* Serialize only while the output has room; the rest wait in the
         * queue until writes complete (on_write collects again). */
        if (c->out.len + c->writing > 0 && c->out.len + c->writing >= srv->max_output)
            break;
        http_request_t *req = queue_pop(c);
        bool close = !req->keep_alive || req->res.close || srv->draining;
        if (http_response_serialize(req, &c->out, server_date(srv), close) != 0) {
            /* The output buffer's bound is far above max_output; this is
             * a response larger than the bound itself. */
            log_error("response does not fit the output buffer",
                      LOG_STR("request_id", req->request_id));
            request_put(srv, req);
            conn_close(c, "response too large");
            return;
        }
        request_put(srv, req);
        if (close) {
            /* Nothing after a closing response is answered. */
            c->state = CONN_CLOSING;
            conn_read_stop(c);
            conn_drop_queue(c);
            break;
        }
    }
}

/* ---- writing ------------------------------------------------------------ */

static void conn_begin_linger(conn_t *c);

static void on_write(uv_write_t *wr, int status)
{
    write_req_t *w = (write_req_t *)wr;
    conn_t *c = w->conn;
    c->writing -= w->len;
    free(w->data);
    free(w);
    if (c->state == CONN_CLOSED)
        return;
    if (status < 0) {
        conn_close(c, uv_strerror(status));
        return;
    }
    c->last_progress = uv_now(c->srv->loop);
    if (c->queue_head && c->queue_head->finished && c->writing == 0) {
        conn_flush(c); /* answers that waited for room */
        if (c->state == CONN_CLOSED || c->state == CONN_LINGERING)
            return;
    }
    if (c->state == CONN_CLOSING && !c->queue_head && c->writing == 0 && c->out.len == 0) {
        conn_begin_linger(c);
        return;
    }
    if (c->srv->draining && c->state == CONN_OPEN && !c->queue_head && c->writing == 0 &&
        c->out.len == 0 && http_parser_idle(c->parser)) {
        conn_close(c, "shutdown"); /* it was mid-write when the drain began */
        return;
    }
    conn_maybe_resume(c);
    conn_update_timer(c);
}

static void conn_flush(conn_t *c)
{
    if (c->state == CONN_CLOSED || c->state == CONN_LINGERING)
        return;
    conn_collect(c);
    if (c->state == CONN_CLOSED)
        return;
    if (c->out.len > 0) {
        write_req_t *w = malloc(sizeof *w);
        if (!w) {
            conn_close(c, "out of memory");
            return;
        }
        w->conn = c;
        w->data = buf_steal(&c->out, &w->len);
        uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
        c->writing += w->len;
        int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
        if (rc < 0) {
            c->writing -= w->len;
            free(w->data);
            free(w);
            conn_close(c, uv_strerror(rc));
            return;
        }
    }
    if (c->state == CONN_CLOSING && !c->queue_head && c->writing == 0 && c->out.len == 0)
        conn_begin_linger(c);
}

/* ---- closing ------------------------------------------------------------ */

static void conn_free(conn_t *c)
{
    http_server_t *srv = c->srv;
    http_parser_free(c->parser);
    buf_free(&c->out);
    buf_free(&c->backlog);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    free(c);
    server_maybe_drained(srv);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->open_handles == 0)
        conn_free(c);
}

static void conn_close(conn_t *c, const char *reason)
{
    if (c->state == CONN_CLOSED)
        return;
    c->state = CONN_CLOSED;
    log_debug("connection closed", LOG_STR("reason", reason));
    conn_drop_queue(c);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_shutdown(uv_shutdown_t *sr, int status)
{
    conn_t *c = sr->data;
    if (c->state == CONN_CLOSED)
        return;
    if (status < 0 || c->peer_eof) {
        conn_close(c, status < 0 ? uv_strerror(status) : "done");
        return;
    }
    conn_read_start(c);
}

static void conn_begin_linger(conn_t *c)
{
    c->state = CONN_LINGERING;
    c->timer_kind = TIMER_NONE;
    conn_update_timer(c);
    c->shutdown_req.data = c;
    int rc = uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown);
    if (rc < 0)
        conn_close(c, uv_strerror(rc));
}

/* ---- timers ------------------------------------------------------------- */

static void on_conn_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    http_server_t *srv = c->srv;
    switch (c->timer_kind) {
    case TIMER_HEADER:
    case TIMER_BODY: {
        if (c->state != CONN_OPEN)
            return;
        srv->timeouts++;
        bool in_head = c->timer_kind == TIMER_HEADER;
        http_request_t *req = http_parser_take_request(c->parser);
        log_info("request timed out", LOG_STR("phase", in_head ? "header" : "body"));
        if (!req) {
            conn_close(c, "timeout");
            return;
        }
        c->timer_kind = TIMER_NONE;
        req->start_ns = uv_hrtime();
        if (!req->request_id[0])
            uuid_v4(req->request_id);
        req->keep_alive = false;
        req->res.close = true;
        c->state = CONN_CLOSING;
        conn_read_stop(c);
        queue_push(c, req);
        http_problem(req, 408, "request-timeout",
                     in_head ? "the request head did not arrive in time"
                             : "the request body did not arrive in time");
        return;
    }
    case TIMER_IDLE:
        conn_close(c, "idle");
        return;
    case TIMER_SEND:
        srv->timeouts++;
        conn_close(c, "client stopped reading");
        return;
    case TIMER_LINGER:
        conn_close(c, "linger done");
        return;
    case TIMER_NONE:
        return;
    }
}

/* Arms the single timer for whatever the connection is waiting on. */
static void conn_update_timer(conn_t *c)
{
    if (c->state == CONN_CLOSED)
        return;
    http_server_t *srv = c->srv;
    timer_kind_t kind;
    uint64_t due;
    if (c->state == CONN_LINGERING) {
        if (c->timer_kind == TIMER_LINGER)
            return; /* armed once, when lingering began */
        kind = TIMER_LINGER;
        due = uv_now(srv->loop) + LINGER_MS;
    } else if (c->writing > 0 || c->out.len > 0) {
        kind = TIMER_SEND;
        due = c->last_progress + srv->idle_timeout_ms;
    } else if (!http_parser_idle(c->parser) && !http_parser_in_body(c->parser)) {
        kind = TIMER_HEADER;
        due = c->head_started + srv->header_timeout_ms;
    } else if (http_parser_in_body(c->parser)) {
        kind = TIMER_BODY;
        due = c->body_started + srv->body_timeout_ms;
    } else if (c->queue_head) {
        /* A handler has the request; its own deadlines bound it. */
        kind = TIMER_NONE;
        due = 0;
    } else {
        kind = TIMER_IDLE;
        due = c->last_progress + srv->idle_timeout_ms;
    }
    if (kind == c->timer_kind && due == c->timer_due)
        return;
    c->timer_kind = kind;
    c->timer_due = due;
    if (kind == TIMER_NONE) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = uv_now(srv->loop);
    uv_timer_start(&c->timer, on_conn_timer, due > now ? due - now : 0, 0);
}

/* ---- parser hooks ------------------------------------------------------- */

static void conn_request_done(http_request_t *req);

/* Every request this server hands out is owned by its connection from the
 * start, so any path that answers it (handler, timeout, parse error) ends in
 * conn_request_done. */
static http_request_t *conn_new_request(conn_t *c)
{
    http_request_t *req = request_get(c->srv);
    if (req) {
        req->owner = c;
        req->on_done = conn_request_done;
    }
    return req;
}

static http_request_t *hook_request_alloc(void *ctx)
{
    conn_t *c = ctx;
    c->head_started = uv_now(c->srv->loop);
    return conn_new_request(c);
}

static void hook_on_head(void *ctx, http_request_t *req)
{
    conn_t *c = ctx;
    c->body_started = uv_now(c->srv->loop);
    /* Ask for the body only when every earlier response is out: a 100 sent
     * now would otherwise overtake them. A client that gets no 100 sends
     * the body after its own short wait, as RFC 9110 10.1.1 lets it. */
    if (req->expect_continue && !c->queue_head && c->out.len == 0 && c->writing == 0) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (buf_append(&c->out, cont, sizeof cont - 1) != 0)
            conn_close(c, "out of memory");
    }
}

static bool hook_on_request(void *ctx, http_request_t *req)
{
    conn_t *c = ctx;
    http_server_t *srv = c->srv;
    if (req->orphaned || c->state == CONN_CLOSED) {
        /* The parser is being freed with a half-read request, or the
         * connection closed while its last bytes were being parsed. */
        request_put(srv, req);
        return true;
    }
    req->start_ns = uv_hrtime();
    size_t len;
    const char *id = http_request_header(req, "x-request-id", &len);
    if (id && http_request_id_valid(id, len))
        memcpy(req->request_id, id, len + 1);
    else
        uuid_v4(req->request_id);
    const char *tp = http_request_header(req, "traceparent", &len);
    if (tp && http_traceparent_valid(tp, len))
        memcpy(req->traceparent, tp, len + 1);

    queue_push(c, req);
    http_router_dispatch(srv->router, req);
    return conn_must_pause(c);
}

/* on_done for every request this server hands out. */
static void conn_request_done(http_request_t *req)
{
    conn_t *c = req->owner;
    if (req->orphaned) {
        /* The connection is gone and c may be freed: so may its server's
         * pool be, so the request is freed rather than recycled. */
        http_request_free(req);
        free(req);
        return;
    }
    http_server_t *srv = c->srv;
    c->finished += req->res.body.len;
    metrics_http_observe(req->route_id, req->method, req->res.status, uv_hrtime() - req->start_ns);
    access_log(srv, req);
    if (c->queue_head != req)
        return; /* it waits for the ones before it */
    if (!c->in_feed) {
        conn_flush(c);
        conn_maybe_resume(c);
        conn_update_timer(c);
    }
}

/* ---- reading ------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    *b = uv_buf_init(read_buffer, sizeof read_buffer);
}

/* Answers a framing error once, after the responses before it, and closes. */
static void conn_fail(conn_t *c)
{
    http_server_t *srv = c->srv;
    if (c->state != CONN_OPEN)
        return; /* already answering its last request, or closed */
    srv->parse_errors++;
    int status = http_parser_error_status(c->parser);
    const char *detail = http_parser_error_detail(c->parser);
    http_request_t *req = http_parser_take_request(c->parser);
    if (!req)
        req = conn_new_request(c);
    if (!req) {
        conn_close(c, "out of memory");
        return;
    }
    req->start_ns = uv_hrtime();
    if (!req->request_id[0])
        uuid_v4(req->request_id);
    req->keep_alive = false;
    req->res.close = true;
    c->state = CONN_CLOSING;
    conn_read_stop(c);
    queue_push(c, req);
    log_debug("bad request", LOG_INT("status", status), LOG_STR("detail", detail));
    const char *slug = status == 413   ? "content-too-large"
                       : status == 414 ? "uri-too-long"
                       : status == 431 ? "header-fields-too-large"
                       : status == 417 ? "expectation-failed"
                       : status == 505 ? "http-version-not-supported"
                       : status == 501 ? "not-implemented"
                       : status == 503 ? "unavailable"
                                       : "malformed-request";
    http_problem_build(req, status, slug, detail, NULL, 0);
    if (status == 503 && http_response_header(req, "Retry-After", "1") != 0)
        req->res.status = 503;
    http_response_end(req);
}

static void conn_feed(conn_t *c, const char *data, size_t len)
{
    c->in_feed = true;
    while (len > 0 && c->state == CONN_OPEN) {
        size_t used = 0;
        http_parse_result_t r = http_parser_feed(c->parser, data, len, &used);
        if (r == HTTP_PARSE_OK)
            break;
        if (r == HTTP_PARSE_PAUSED) {
            data += used;
            len -= used;
            c->parser_paused = true;
            if (c->state == CONN_OPEN && len > 0 &&
                buf_append(&c->backlog, data, len) != 0) {
                conn_close(c, "backlog overflow");
                break;
            }
            conn_read_stop(c);
            break;
        }
        if (r == HTTP_PARSE_UPGRADE) {
            /* The protocol switch is not supported: the request was
             * answered as plain HTTP, and what follows it is not HTTP. */
            if (c->state == CONN_OPEN) {
                c->state = CONN_CLOSING;
                conn_read_stop(c);
            }
            break;
        }
        conn_fail(c);
        break;
    }
    c->in_feed = false;
    conn_flush(c);
    conn_update_timer(c);
}

static void conn_maybe_resume(conn_t *c)
{
    if (c->state != CONN_OPEN || conn_must_pause(c))
        return;
    if (c->parser_paused) {
        c->parser_paused = false;
        http_parser_resume(c->parser);
        if (c->backlog.len > 0) {
            /* Feed from a detached copy: a new pause refills c->backlog. */
            buf_t pending = c->backlog;
            buf_init(&c->backlog, pending.max);
            conn_feed(c, pending.data, pending.len);
            buf_free(&pending);
        }
    }
    if (c->state == CONN_OPEN && !c->parser_paused && !c->peer_eof)
        conn_read_start(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    conn_t *c = s->data;
    if (c->state == CONN_CLOSED)
        return;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF) {
            conn_close(c, uv_strerror((int)nread));
            return;
        }
        c->peer_eof = true;
        conn_read_stop(c);
        if (c->state == CONN_LINGERING) {
            conn_close(c, "done");
            return;
        }
        /* The client finished sending; answer what it sent, then close. */
        if (c->state == CONN_OPEN)
            c->state = CONN_CLOSING;
        if (!c->queue_head && c->writing == 0 && c->out.len == 0)
            conn_close(c, "peer closed");
        else
            conn_flush(c);
        return;
    }
    if (c->state == CONN_LINGERING) {
        c->lingered += (size_t)nread;
        if (c->lingered > LINGER_MAX_BYTES)
            conn_close(c, "linger limit");
        return;
    }
    conn_feed(c, b->base, (size_t)nread);
    /* Bytes count as progress only when they start or continue a request:
     * llhttp skips blank lines between requests, and a client sending CRLF
     * every second must not hold its connection open forever. */
    if (c->state == CONN_OPEN && (!http_parser_idle(c->parser) || c->queue_head)) {
        c->last_progress = uv_now(c->srv->loop);
        conn_update_timer(c);
    }
}

static void conn_read_start(conn_t *c)
{
    if (!c->reading && c->state != CONN_CLOSED) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = true;
    }
}

/* ---- accepting ---------------------------------------------------------- */

static void on_reject_closed(uv_handle_t *h)
{
    free(h);
}

/* Accepts the pending connection and closes it at once. Leaving it in the
 * backlog would only make the client wait for the same answer, and libuv
 * stops watching the listener until uv_accept() is called. */
static void reject_connection(http_server_t *srv, uv_stream_t *listener)
{
    srv->rejected++;
    uv_tcp_t *t = malloc(sizeof *t);
    if (!t)
        return; /* nothing to accept with; the next readiness event retries */
    uv_tcp_init(srv->loop, t);
    (void)uv_accept(listener, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_reject_closed);
}

static void on_connection(uv_stream_t *listener, int status)
{
    http_server_t *srv = listener->data;
    if (status < 0) {
        log_warn("accept failed", LOG_STR("error", uv_strerror(status)));
        return;
    }
    if (srv->draining)
        return;
    if (srv->n_conns >= srv->max_connections) {
        reject_connection(srv, listener);
        return;
    }
    static const http_parser_hooks_t hooks = {
        .request_alloc = hook_request_alloc,
        .on_head = hook_on_head,
        .on_request = hook_on_request,
    };
    conn_t *c = calloc(1, sizeof *c);
    if (c) {
        c->srv = srv;
        c->parser = http_parser_new(&srv->limits, &hooks, c);
    }
    if (!c || !c->parser) {
        free(c); /* out of memory */
        reject_connection(srv, listener);
        return;
    }
    /* Room for the output bound plus one response of the largest size. */
    buf_init(&c->out, srv->max_output + HTTP_RESPONSE_BODY_MAX + 64 * 1024);
    buf_init(&c->backlog, READ_BUFFER_SIZE);
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c, "accept failed");
        return;
    }
    srv->accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    c->last_progress = uv_now(srv->loop);
    conn_read_start(c);
    conn_update_timer(c);
}

/* ---- metrics ------------------------------------------------------------ */

static int collect_metrics(buf_t *out, void *ctx)
{
    http_server_t *srv = ctx;
    int rc = metrics_write_gauge(out, "http_connections_open", "Client connections open.",
                                 srv->n_conns);
    rc = rc ? rc : metrics_write_counter(out, "http_connections_accepted_total",
                                         "Client connections accepted.", (double)srv->accepted);
    rc = rc ? rc : metrics_write_counter(out, "http_connections_rejected_total",
                                         "Connections closed at once because MAX_CONNECTIONS "
                                         "were open.",
                                         (double)srv->rejected);
    rc = rc ? rc : metrics_write_counter(out, "http_malformed_requests_total",
                                         "Requests answered 4xx/5xx by the parser before "
                                         "routing (framing, limits).",
                                         (double)srv->parse_errors);
    rc = rc ? rc : metrics_write_counter(out, "http_timeouts_total",
                                         "Connections cut by the header, body or send timeout.",
                                         (double)srv->timeouts);
    return rc;
}

/* ---- server ------------------------------------------------------------- */

http_server_t *http_server_new(uv_loop_t *loop, const config_t *cfg, const http_router_t *router)
{
    http_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return NULL;
    srv->loop = loop;
    srv->router = router;
    srv->limits.max_url = (size_t)cfg->max_url_bytes;
    srv->limits.max_head = (size_t)cfg->max_header_bytes;
    srv->limits.max_body = (size_t)cfg->max_body_bytes;
    srv->limits.max_headers = cfg->max_headers;
    srv->max_connections = cfg->max_connections;
    srv->max_pipeline = cfg->max_pipeline;
    srv->max_output = (size_t)cfg->max_output_bytes;
    srv->header_timeout_ms = (uint64_t)cfg->header_timeout_ms;
    srv->body_timeout_ms = (uint64_t)cfg->body_timeout_ms;
    srv->idle_timeout_ms = (uint64_t)cfg->idle_timeout_ms;
    srv->shutdown_timeout_ms = (uint64_t)cfg->shutdown_timeout_ms;
    srv->access_log = cfg->access_log;
    snprintf(srv->host, sizeof srv->host, "%s", cfg->host);
    srv->port = cfg->port;
    srv->date_second = -1;
    uv_tcp_init(loop, &srv->listener);
    uv_timer_init(loop, &srv->drain_timer);
    srv->listener.data = srv;
    srv->drain_timer.data = srv;
    srv->open_handles = 2;
    if (metrics_add_collector(collect_metrics, srv) != 0)
        log_warn("metrics collector table full: connection metrics not exported");
    return srv;
}

int http_server_listen(http_server_t *srv)
{
    char port[16];
    snprintf(port, sizeof port, "%d", srv->port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
    };
    struct addrinfo *res = NULL;
    /* Runs once before the loop serves anything, so a blocking lookup of
     * HOST cannot stall a request. */
    int gai = getaddrinfo(srv->host, port, &hints, &res);
    if (gai != 0) {
        log_error("cannot resolve HOST", LOG_STR("host", srv->host), LOG_STR("error", gai_strerror(gai)));
        return -EINVAL;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = 0;
    if (fd < 0) {
        err = -errno;
        goto out;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
        err = -errno;
        close(fd);
        goto out;
    }
    err = uv_tcp_open(&srv->listener, fd);
    if (err == 0)
        err = uv_listen((uv_stream_t *)&srv->listener, LISTEN_BACKLOG, on_connection);
    if (err != 0)
        goto out;
    srv->listening = true;

    struct sockaddr_storage addr;
    int addrlen = sizeof addr;
    char host[INET6_ADDRSTRLEN] = "?";
    int bound_port = srv->port;
    if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&addr, &addrlen) == 0) {
        if (addr.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&addr, host, sizeof host);
            bound_port = ntohs(((struct sockaddr_in *)&addr)->sin_port);
        } else {
            uv_ip6_name((struct sockaddr_in6 *)&addr, host, sizeof host);
            bound_port = ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
        }
    }
    srv->port = bound_port;
    log_info("listening", LOG_STR("host", host), LOG_INT("port", bound_port));
out:
    freeaddrinfo(res);
    if (err)
        log_error("cannot listen", LOG_STR("host", srv->host), LOG_INT("port", srv->port),
                  LOG_STR("error", uv_strerror(err)));
    return err;
}

const char *http_server_readiness(void *arg)
{
    http_server_t *srv = arg;
    if (srv->draining)
        return "draining";
    if (!srv->listening)
        return "not listening";
    return NULL;
}

static void on_server_handle_closed(uv_handle_t *h)
{
    http_server_t *srv = h->data;
    srv->open_handles--;
    server_maybe_drained(srv);
}

static void server_maybe_drained(http_server_t *srv)
{
    if (!srv->draining || srv->n_conns > 0)
        return;
    if (!uv_is_closing((uv_handle_t *)&srv->drain_timer))
        uv_close((uv_handle_t *)&srv->drain_timer, on_server_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&srv->listener))
        uv_close((uv_handle_t *)&srv->listener, on_server_handle_closed);
    if (srv->open_handles == 0 && srv->drained_cb) {
        http_server_drained_cb cb = srv->drained_cb;
        srv->drained_cb = NULL;
        cb(srv->drained_arg);
    }
}

static void cut_all(http_server_t *srv)
{
    conn_t *c = srv->conns;
    while (c) {
        conn_t *next = c->next;
        conn_close(c, "shutdown deadline");
        c = next;
    }
}

static void on_drain_deadline(uv_timer_t *t)
{
    http_server_t *srv = t->data;
    log_warn("shutdown deadline passed; cutting connections", LOG_INT("open", srv->n_conns));
    cut_all(srv);
}

void http_server_drain(http_server_t *srv, http_server_drained_cb cb, void *arg)
{
    if (srv->draining) {
        cut_all(srv);
        return;
    }
    srv->draining = true;
    srv->drained_cb = cb;
    srv->drained_arg = arg;
    srv->listening = false;
    /* Stop accepting now; the listener handle closes with the drain timer.
     * Closing the socket at once lets a process sharing the port take the
     * new connections. */
    if (!uv_is_closing((uv_handle_t *)&srv->listener))
        uv_close((uv_handle_t *)&srv->listener, on_server_handle_closed);
    uv_timer_start(&srv->drain_timer, on_drain_deadline, srv->shutdown_timeout_ms, 0);

    conn_t *c = srv->conns;
    while (c) {
        conn_t *next = c->next;
        bool idle = !c->queue_head && http_parser_idle(c->parser) && c->writing == 0 &&
                    c->out.len == 0;
        if (idle && c->state == CONN_OPEN)
            conn_close(c, "shutdown");
        c = next;
    }
    server_maybe_drained(srv);
}

void http_server_free(http_server_t *srv)
{
    if (!srv)
        return;
    while (srv->free_reqs) {
        http_request_t *req = srv->free_reqs;
        srv->free_reqs = req->next;
        http_request_free(req);
        free(req);
    }
    free(srv);
}
