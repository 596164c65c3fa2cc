/* access: who may touch /api/{user_id}/... -- the one place that decides.
 *
 * Every user endpoint calls api_access_check() first. Today it checks that
 * the path's user id is well formed; the authentication issue binds it to
 * the bearer token's subject here, and nowhere else. */
#ifndef TODO_API_ACCESS_H
#define TODO_API_ACCESS_H

#include <stdbool.h>

#include "http/request.h"

#define API_USER_ID_MAX 128

/* Returns the path's user id when the request may proceed; otherwise it
 * has answered (400/401/403) and returns NULL. Param 0 is the user id. */
const char *api_access_check(http_request_t *req);

#endif
