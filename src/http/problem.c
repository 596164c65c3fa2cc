/* problem: RFC 9457 problem details. */
#include "http/problem.h"

#include <string.h>

#include "http/response.h"

void http_problem_build(http_request_t *req, int status, const char *slug, const char *detail,
                        const http_field_error_t *errors, int n_errors)
{
    http_response_begin(req, status, HTTP_CONTENT_PROBLEM);
    buf_t *b = &req->res.body;
    int rc = buf_append_str(b, "{\"type\":\"" HTTP_PROBLEM_TYPE_PREFIX);
    rc = rc ? rc : buf_append_json_escaped(b, slug, strlen(slug));
    rc = rc ? rc : buf_append_str(b, "\",\"title\":");
    rc = rc ? rc : buf_append_json_string(b, http_status_reason(status));
    rc = rc ? rc : buf_printf(b, ",\"status\":%d,\"detail\":", status);
    rc = rc ? rc : buf_append_json_string(b, detail);
    if (n_errors > 0) {
        rc = rc ? rc : buf_append_str(b, ",\"errors\":[");
        for (int i = 0; i < n_errors && !rc; i++) {
            rc = buf_append_str(b, i ? ",{\"field\":" : "{\"field\":");
            rc = rc ? rc : buf_append_json_string(b, errors[i].field);
            rc = rc ? rc : buf_append_str(b, ",\"message\":");
            rc = rc ? rc : buf_append_json_string(b, errors[i].message);
            rc = rc ? rc : buf_append_char(b, '}');
        }
        rc = rc ? rc : buf_append_char(b, ']');
    }
    rc = rc ? rc : buf_append_char(b, '}');
    if (rc) {
        /* Only a list of errors can be this long; a fixed body always fits. */
        buf_clear(b);
        if (buf_append_str(b, "{\"type\":\"" HTTP_PROBLEM_TYPE_PREFIX "internal\","
                                "\"title\":\"Internal Server Error\",\"status\":500,"
                                "\"detail\":\"the error report was too large\"}") != 0)
            buf_clear(b);
        req->res.status = 500;
    }
}

void http_problem_fields(http_request_t *req, int status, const char *slug, const char *detail,
                         const http_field_error_t *errors, int n_errors)
{
    http_problem_build(req, status, slug, detail, errors, n_errors);
    http_request_finish(req);
}

void http_problem(http_request_t *req, int status, const char *slug, const char *detail)
{
    http_problem_fields(req, status, slug, detail, NULL, 0);
}
