/* router: template matching and 404/405 answers. */
#include "http/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/problem.h"
#include "http/response.h"

#define MAX_SEGMENTS 8

typedef struct segment {
    const char *text; /* NULL for a parameter */
    size_t len;
} segment_t;

typedef struct route {
    char *tmpl;
    unsigned methods;
    http_handler_fn handler;
    void *ctx;
    segment_t segs[MAX_SEGMENTS];
    int n_segs;
    int n_params;
} route_t;

struct http_router {
    route_t routes[HTTP_ROUTER_MAX_ROUTES];
    int n_routes;
    http_guard_fn guard;
    void *guard_ctx;
};

void http_router_set_guard(http_router_t *r, http_guard_fn guard, void *ctx)
{
    r->guard = guard;
    r->guard_ctx = ctx;
}

static const char *const method_names[HTTP_METHOD_COUNT] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "",
};

http_router_t *http_router_new(void)
{
    return calloc(1, sizeof(http_router_t));
}

void http_router_free(http_router_t *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_routes; i++)
        free(r->routes[i].tmpl);
    free(r);
}

int http_router_add(http_router_t *r, unsigned methods, const char *tmpl,
                    http_handler_fn handler, void *ctx)
{
    if (r->n_routes >= HTTP_ROUTER_MAX_ROUTES || tmpl[0] != '/')
        return -1;
    route_t *rt = &r->routes[r->n_routes];
    memset(rt, 0, sizeof *rt);
    rt->tmpl = strdup(tmpl);
    if (!rt->tmpl)
        return -1;
    const char *p = rt->tmpl + 1;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (rt->n_segs == MAX_SEGMENTS || len == 0)
            goto malformed;
        segment_t *s = &rt->segs[rt->n_segs++];
        if (p[0] == '{') {
            if (len < 3 || p[len - 1] != '}' || rt->n_params == HTTP_MAX_PARAMS)
                goto malformed;
            s->text = NULL;
            rt->n_params++;
        } else {
            s->text = p;
            s->len = len;
        }
        p += len;
        if (*p == '/') {
            p++;
            if (*p == '\0')
                goto malformed; /* "/a/" would never match a request */
        }
    }
    rt->methods = methods;
    rt->handler = handler;
    rt->ctx = ctx;
    return r->n_routes++;

malformed:
    free(rt->tmpl);
    rt->tmpl = NULL;
    return -1;
}

int http_router_count(const http_router_t *r)
{
    return r->n_routes;
}

const char *http_router_name(const http_router_t *r, int id)
{
    return id >= 0 && id < r->n_routes ? r->routes[id].tmpl : HTTP_ROUTE_UNMATCHED;
}

/* Splits the path into segments; returns the count, or -1 when it has too
 * many or does not start with '/'. A trailing '/' makes an empty last
 * segment, which no template has, so "/healthz/" is 404. */
static int split_path(const char *path, size_t len, segment_t *out)
{
    if (len == 0 || path[0] != '/')
        return -1;
    int n = 0;
    size_t i = 1;
    if (len == 1)
        return 0;
    while (i <= len) {
        size_t start = i;
        while (i < len && path[i] != '/')
            i++;
        if (n == MAX_SEGMENTS)
            return -1;
        out[n].text = path + start;
        out[n].len = i - start;
        n++;
        i++;
    }
    return n;
}

static bool route_matches(const route_t *rt, const segment_t *segs, int n)
{
    if (rt->n_segs != n)
        return false;
    for (int i = 0; i < n; i++) {
        const segment_t *t = &rt->segs[i];
        if (t->text) {
            if (t->len != segs[i].len || memcmp(t->text, segs[i].text, t->len) != 0)
                return false;
        } else if (segs[i].len == 0) {
            return false;
        }
    }
    return true;
}

static void answer_allow(http_request_t *req, unsigned allowed)
{
    char allow[64] = "";
    if (allowed & HTTP_METHOD_BIT(HTTP_METHOD_GET))
        allowed |= HTTP_METHOD_BIT(HTTP_METHOD_HEAD);
    allowed |= HTTP_METHOD_BIT(HTTP_METHOD_OPTIONS);
    size_t used = 0;
    for (int m = 0; m < HTTP_METHOD_OTHER; m++) {
        if (!(allowed & HTTP_METHOD_BIT(m)))
            continue;
        used += (size_t)snprintf(allow + used, sizeof allow - used, "%s%s",
                                 used ? ", " : "", method_names[m]);
    }
    if (req->method == HTTP_METHOD_OPTIONS) {
        http_response_begin(req, 204, NULL);
    } else {
        http_problem_build(req, 405, "method-not-allowed",
                           "the resource does not support this method", NULL, 0);
    }
    /* A fixed, short list of method names always fits. */
    if (http_response_header(req, "Allow", allow) != 0)
        req->res.status = 500;
    http_response_end(req);
}

void http_router_dispatch(const http_router_t *r, http_request_t *req)
{
    segment_t segs[MAX_SEGMENTS];
    int n = split_path(req->path, req->path_len, segs);
    req->route_id = -1;
    req->route_name = HTTP_ROUTE_UNMATCHED;
    if (r->guard && !r->guard(req, r->guard_ctx))
        return;
    if (n < 0) {
        http_problem(req, 404, "not-found", "no resource at this path");
        return;
    }

    unsigned allowed = 0;
    const route_t *chosen = NULL;
    http_method_t want = req->method == HTTP_METHOD_HEAD ? HTTP_METHOD_GET : req->method;
    for (int i = 0; i < r->n_routes; i++) {
        const route_t *rt = &r->routes[i];
        if (!route_matches(rt, segs, n))
            continue;
        allowed |= rt->methods;
        if (!chosen && want != HTTP_METHOD_OTHER && (rt->methods & HTTP_METHOD_BIT(want))) {
            chosen = rt;
            req->route_id = i;
            req->route_name = rt->tmpl;
        }
    }
    if (!chosen) {
        if (allowed) {
            /* The path exists: count it under its route, not "unmatched". */
            for (int i = 0; i < r->n_routes; i++) {
                if (route_matches(&r->routes[i], segs, n)) {
                    req->route_id = i;
                    req->route_name = r->routes[i].tmpl;
                    break;
                }
            }
            answer_allow(req, allowed);
        } else {
            http_problem(req, 404, "not-found", "no resource at this path");
        }
        return;
    }

    /* Decode parameters into scratch. Reserving the whole path first keeps
     * the pointers stable: no append below can move the buffer. */
    buf_clear(&req->scratch);
    if (buf_reserve(&req->scratch, req->path_len + HTTP_MAX_PARAMS) != 0) {
        http_problem(req, 414, "uri-too-long", "request target is too long");
        return;
    }
    req->n_params = 0;
    for (int i = 0; i < n; i++) {
        if (chosen->segs[i].text)
            continue;
        char *dst = req->scratch.data + req->scratch.len;
        long dlen = http__percent_decode_segment(segs[i].text, segs[i].len, dst,
                                                 req->scratch.cap - req->scratch.len);
        if (dlen <= 0) {
            http_problem(req, 400, "bad-path", "a path segment is not valid percent-encoding");
            return;
        }
        req->params[req->n_params] = dst;
        req->param_lens[req->n_params] = (size_t)dlen;
        req->n_params++;
        req->scratch.len += (size_t)dlen + 1;
    }
    chosen->handler(req, chosen->ctx);
}
