/* access: the path-user check. */
#include "api/access.h"

#include <string.h>

#include "http/problem.h"

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

const char *api_access_check(http_request_t *req)
{
    const char *user = http_request_param(req, 0);
    if (!user || !user_id_valid(user, req->param_lens[0])) {
        static const http_field_error_t err = {"user_id",
                                               "1-128 printable ASCII characters, no spaces"};
        http_problem_fields(req, 400, "malformed-request", "the user id in the path is not valid",
                            &err, 1);
        return NULL;
    }
    return user;
}
