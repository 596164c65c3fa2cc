/* access: who may touch what -- the one place that decides.
 *
 * User endpoints (/api/{user_id}/...) call api_access_check() first: it
 * verifies the bearer token (crypto/jwt) and binds its subject to the path's
 * user id. Service endpoints (/dapr/..., /api/events/...) are guarded before
 * routing by api_service_guard(): the Dapr sidecar's dapr-api-token must
 * match APP_API_TOKEN when that is set. */
#ifndef TODO_API_ACCESS_H
#define TODO_API_ACCESS_H

#include <stdbool.h>

#include "crypto/jwt.h"
#include "http/request.h"

#define API_USER_ID_MAX 128

typedef struct api_access_config {
    jwt_keys_t keys;
    bool auth_disabled;    /* trust the path's user id: development only */
    const char *app_token; /* NULL or "" = service endpoints are open */
} api_access_config_t;

/* Copies what it needs from cfg (the strings must outlive the process's
 * serving, as the config does). */
void api_access_setup(const api_access_config_t *cfg);

/* Returns the path's user id when the request may proceed; otherwise it
 * has answered (400, 401, 403, or 404 for the reserved id "events") and
 * returns NULL. Param 0 is the user id. */
const char *api_access_check(http_request_t *req);

/* Router guard: false when it answered (401) a service endpoint's request. */
bool api_service_guard(http_request_t *req, void *ctx);

#endif
