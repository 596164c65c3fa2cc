/* fixture: requests built the way the server builds them, by feeding raw
 * bytes to the parser, for the parser, router, response and metrics tests.
 *
 * A rec_t is the parser's context: its hooks allocate requests with
 * malloc + http_request_init, count the callbacks, keep every completed
 * request in order, and can ask the parser to pause after each one. An
 * unfinished request handed back by http_parser_free (req->orphaned) is
 * freed at once. rec_free() releases everything. */
#ifndef TODO_TESTS_FIXTURE_H
#define TODO_TESTS_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include "http/parser.h"
#include "http/request.h"
#include "unit.h"

#define REC_MAX 64

typedef struct rec {
    http_request_t *reqs[REC_MAX];
    int n;
    int n_alloc;
    int n_head;
    int n_orphaned;
    bool pause;              /* on_request asks to pause after each message */
    bool fail_alloc;         /* request_alloc returns NULL */
    bool head_expect_continue; /* what on_head saw on the last head */
    bool head_had_body;
    size_t body_len_at_head;
} rec_t;

static const http_parser_limits_t default_limits = {
    .max_url = 8192,
    .max_head = 16384,
    .max_body = 1024 * 1024,
    .max_headers = 100,
};

__attribute__((unused)) static http_request_t *rec_alloc(void *ctx)
{
    rec_t *r = ctx;
    if (r->fail_alloc)
        return NULL;
    http_request_t *req = malloc(sizeof *req);
    if (!req)
        return NULL;
    /* The server sizes requests from the same limits as the parser. */
    http_request_init(req, default_limits.max_head, default_limits.max_body);
    r->n_alloc++;
    return req;
}

__attribute__((unused)) static void rec_on_head(void *ctx, http_request_t *req)
{
    rec_t *r = ctx;
    r->n_head++;
    r->head_expect_continue = req->expect_continue;
    r->head_had_body = req->has_body;
    r->body_len_at_head = req->body.len;
}

__attribute__((unused)) static void rec_release(http_request_t *req)
{
    if (!req)
        return;
    http_request_free(req);
    free(req);
}

__attribute__((unused)) static bool rec_on_request(void *ctx, http_request_t *req)
{
    rec_t *r = ctx;
    if (req->orphaned) {
        r->n_orphaned++;
        rec_release(req);
        return false;
    }
    if (r->n == REC_MAX) {
        rec_release(req);
        return r->pause;
    }
    r->reqs[r->n++] = req;
    return r->pause;
}

static const http_parser_hooks_t rec_hooks = {
    .request_alloc = rec_alloc,
    .on_head = rec_on_head,
    .on_request = rec_on_request,
};

__attribute__((unused)) static void rec_free(rec_t *r)
{
    for (int i = 0; i < r->n; i++)
        rec_release(r->reqs[i]);
    r->n = 0;
}

/* The outcome of parsing one input completely. */
typedef struct parse_outcome {
    http_parse_result_t result;
    size_t consumed; /* total over all feeds */
    int status;      /* http_parser_error_status() after an error */
    char detail[128];
    bool had_partial; /* an errored request was handed to the caller */
} parse_outcome_t;

/* Feeds data in pieces of at most step bytes (0: all at once), resuming
 * after pauses, until everything is consumed or a feed stops with an
 * upgrade or an error. The parser is freed before returning. */
__attribute__((unused)) static parse_outcome_t parse_steps(const http_parser_limits_t *limits,
                                                           rec_t *r, const char *data,
                                                           size_t len, size_t step)
{
    parse_outcome_t o = {.result = HTTP_PARSE_OK};
    http_parser_t *p = http_parser_new(limits, &rec_hooks, r);
    CHECK(p != NULL);
    size_t off = 0;
    while (off < len) {
        size_t n = step == 0 || len - off < step ? len - off : step;
        size_t used = 0;
        o.result = http_parser_feed(p, data + off, n, &used);
        CHECK(used <= n);
        off += o.result == HTTP_PARSE_ERROR ? n : used;
        o.consumed = off;
        if (o.result == HTTP_PARSE_PAUSED) {
            http_parser_resume(p);
            continue;
        }
        if (o.result != HTTP_PARSE_OK)
            break;
    }
    if (o.result == HTTP_PARSE_ERROR) {
        o.status = http_parser_error_status(p);
        snprintf(o.detail, sizeof o.detail, "%s", http_parser_error_detail(p));
        http_request_t *req = http_parser_take_request(p);
        o.had_partial = req != NULL;
        rec_release(req);
    }
    http_parser_free(p);
    return o;
}

/* Feeds the bytes in two pieces, split at `split`. */
__attribute__((unused)) static parse_outcome_t parse_split(const http_parser_limits_t *limits,
                                                           rec_t *r, const char *data,
                                                           size_t len, size_t split)
{
    parse_outcome_t o = {.result = HTTP_PARSE_OK};
    http_parser_t *p = http_parser_new(limits, &rec_hooks, r);
    CHECK(p != NULL);
    size_t used = 0;
    o.result = http_parser_feed(p, data, split, &used);
    while (o.result == HTTP_PARSE_PAUSED) {
        http_parser_resume(p);
        size_t more = 0;
        o.result = http_parser_feed(p, data + used, split - used, &more);
        used += more;
    }
    if (o.result == HTTP_PARSE_OK) {
        o.consumed = used;
        used = 0;
        o.result = http_parser_feed(p, data + split, len - split, &used);
        while (o.result == HTTP_PARSE_PAUSED) {
            http_parser_resume(p);
            size_t more = 0;
            size_t done = split + used;
            o.result = http_parser_feed(p, data + done, len - done, &more);
            used += more;
        }
        o.consumed += used;
    }
    if (o.result == HTTP_PARSE_ERROR) {
        o.status = http_parser_error_status(p);
        snprintf(o.detail, sizeof o.detail, "%s", http_parser_error_detail(p));
        http_request_t *req = http_parser_take_request(p);
        o.had_partial = req != NULL;
        rec_release(req);
    }
    http_parser_free(p);
    return o;
}

/* Parses exactly one complete request from a C string; the caller owns it
 * (rec_release). */
__attribute__((unused)) static http_request_t *parse_one(const char *raw)
{
    rec_t r = {0};
    parse_outcome_t o = parse_steps(&default_limits, &r, raw, strlen(raw), 0);
    if (o.result != HTTP_PARSE_OK || r.n != 1) {
        unit__diag_bytes("raw", raw, strlen(raw));
        unit__diag("#   result %d, status %d (%s), %d requests\n", (int)o.result, o.status,
                   o.detail, r.n);
        rec_free(&r);
        FAIL("could not parse the fixture request");
    }
    return r.reqs[0];
}

#endif
