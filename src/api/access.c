/* access: bearer tokens for users, the sidecar's token for service routes. */
#include "api/access.h"

#include <string.h>
#include <strings.h>

#include "core/timefmt.h"
#include "crypto/digest.h"
#include "http/problem.h"
#include "http/response.h"

static api_access_config_t access_cfg;

void api_access_setup(const api_access_config_t *cfg)
{
    access_cfg = *cfg;
}

/* User ids come from an identity provider: opaque strings. We accept any
 * printable, non-space ASCII up to 128 bytes, which covers UUIDs, numeric
 * ids and e-mail-like ids, and keeps ids safe to echo in logs and headers. */
static bool user_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > API_USER_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7F)
            return false;
    return true;
}

/* 401. The body never says which check failed: that would be a guide for
 * forging. RFC 6750 3: no error attribute when no token was sent. */
static void answer_unauthorized(http_request_t *req, bool token_sent)
{
    http_problem_build(req, 401, "unauthorized",
                       token_sent ? "the bearer token is not valid"
                                  : "this endpoint needs an Authorization: Bearer token",
                       NULL, 0);
    if (http_response_header(req, "WWW-Authenticate",
                             token_sent ? "Bearer error=\"invalid_token\"" : "Bearer") != 0)
        req->res.status = 500;
    http_response_end(req);
}

/* Finds the token in "Bearer <token>" (scheme case-insensitive, RFC 9110
 * 11.1); NULL when the header is another scheme or malformed. */
static const char *bearer_token(const char *v, size_t len, size_t *token_len)
{
    if (len < 7 || strncasecmp(v, "Bearer", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
        return NULL;
    size_t i = 6;
    while (i < len && (v[i] == ' ' || v[i] == '\t'))
        i++;
    if (i == len)
        return NULL;
    for (size_t j = i; j < len; j++)
        if (v[j] == ' ' || v[j] == '\t')
            return NULL;
    *token_len = len - i;
    return v + i;
}

const char *api_access_check(http_request_t *req)
{
    const char *user = http_request_param(req, 0);
    size_t user_len = user ? req->param_lens[0] : 0;

    /* /api/events/... is the Dapr delivery namespace, never a user's: a
     * user id "events" (also when percent-encoded) would shadow it. */
    if (user && user_len == 6 && memcmp(user, "events", 6) == 0) {
        http_problem(req, 404, "not-found", "no resource at this path");
        return NULL;
    }

    if (!access_cfg.auth_disabled) {
        int n = http_request_header_count(req, "authorization");
        if (n > 1) {
            http_problem(req, 400, "malformed-request", "more than one Authorization header");
            return NULL;
        }
        size_t len = 0, token_len = 0;
        const char *value = http_request_header(req, "authorization", &len);
        if (!value) {
            answer_unauthorized(req, false);
            return NULL;
        }
        const char *token = bearer_token(value, len, &token_len);
        char subject[JWT_MAX_SUBJECT + 1];
        /* Not time(): glibc reads the kernel's tick-updated coarse clock for it,
         * which trails CLOCK_REALTIME by up to a tick, so a token issued "now"
         * by another process could look issued in the future with no leeway. */
        int64_t now_s = timefmt_now_ms() / 1000;
        if (!token || jwt_verify(&access_cfg.keys, token, token_len, now_s, subject) != 0) {
            answer_unauthorized(req, true);
            return NULL;
        }
        if (!user || strlen(subject) != user_len || memcmp(subject, user, user_len) != 0) {
            http_problem(req, 403, "forbidden", "the token does not grant access to this user's tasks");
            return NULL;
        }
    }
    if (!user || !user_id_valid(user, user_len)) {
        static const http_field_error_t err = {"user_id",
                                               "1-128 printable ASCII characters, no spaces"};
        http_problem_fields(req, 400, "malformed-request", "the user id in the path is not valid",
                            &err, 1);
        return NULL;
    }
    return user;
}

static bool path_has_prefix(const http_request_t *req, const char *prefix)
{
    size_t n = strlen(prefix);
    return req->path_len >= n && memcmp(req->path, prefix, n) == 0;
}

bool api_service_guard(http_request_t *req, void *ctx)
{
    (void)ctx;
    const char *want = access_cfg.app_token;
    if (!want || !*want || !(path_has_prefix(req, "/dapr/") || path_has_prefix(req, "/api/events/")))
        return true;
    size_t len;
    const char *got = http_request_header(req, "dapr-api-token", &len);
    size_t want_len = strlen(want);
    /* Constant time over the expected length; a length mismatch fails too. */
    if (got && len == want_len && digest_equal(got, want, want_len))
        return true;
    http_problem_build(req, 401, "unauthorized", "this endpoint needs the sidecar's dapr-api-token",
                       NULL, 0);
    http_response_end(req);
    return false;
}
