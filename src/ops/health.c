/* health: /healthz and /readyz. */
#include "ops/health.h"

#include <string.h>

#include "http/problem.h"
#include "http/response.h"

#define MAX_CHECKS 16

static struct {
    const char *name;
    health_check_fn fn;
    void *ctx;
    bool gates; /* false: shown, but never makes the service unready */
} checks[MAX_CHECKS];
static int n_checks;

#define MAX_FLAGS 8
static struct {
    const char *name, *value;
} flags[MAX_FLAGS];
static int n_flags;

int health_add_flag(const char *name, const char *value)
{
    if (n_flags == MAX_FLAGS)
        return -1;
    flags[n_flags].name = name;
    flags[n_flags].value = value;
    n_flags++;
    return 0;
}

static int add_check(const char *name, health_check_fn fn, void *ctx, bool gates)
{
    if (n_checks == MAX_CHECKS)
        return -1;
    checks[n_checks].name = name;
    checks[n_checks].fn = fn;
    checks[n_checks].ctx = ctx;
    checks[n_checks].gates = gates;
    n_checks++;
    return 0;
}

int health_add_check(const char *name, health_check_fn fn, void *ctx)
{
    return add_check(name, fn, ctx, true);
}

int health_add_info(const char *name, health_check_fn fn, void *ctx)
{
    return add_check(name, fn, ctx, false);
}

bool health_ready(void)
{
    for (int i = 0; i < n_checks; i++)
        if (checks[i].gates && checks[i].fn(checks[i].ctx))
            return false;
    return true;
}

void health_handle_live(http_request_t *req, void *ctx)
{
    static const char body[] = "{\"status\":\"ok\"}";
    http_respond(req, 200, HTTP_CONTENT_JSON, body, sizeof body - 1);
}

void health_handle_ready(http_request_t *req, void *ctx)
{
    const char *problems[MAX_CHECKS];
    bool ready = true;
    for (int i = 0; i < n_checks; i++) {
        problems[i] = checks[i].fn(checks[i].ctx);
        if (problems[i] && checks[i].gates)
            ready = false;
    }

    http_response_begin(req, ready ? 200 : 503, HTTP_CONTENT_JSON);
    buf_t *b = &req->res.body;
    int rc = buf_printf(b, "{\"status\":\"%s\",", ready ? "ready" : "unavailable");
    for (int i = 0; i < n_flags && !rc; i++)
        rc = buf_printf(b, "\"%s\":\"%s\",", flags[i].name, flags[i].value);
    rc = rc ? rc : buf_append_str(b, "\"checks\":{");
    for (int i = 0; i < n_checks && !rc; i++) {
        const char *state = problems[i] ? problems[i] : "ok";
        rc = buf_printf(b, "%s\"%s\":\"", i ? "," : "", checks[i].name);
        rc = rc ? rc : buf_append_json_escaped(b, state, strlen(state));
        rc = rc ? rc : buf_append_char(b, '"');
    }
    rc = rc ? rc : buf_append_str(b, "}}");
    if (!rc && !ready)
        rc = http_response_header(req, "Retry-After", "1");
    if (rc) {
        http_problem(req, 500, "internal", "the readiness report exceeded its size bound");
        return;
    }
    http_response_end(req);
}
