/* dapr: the Dapr sidecar's side of pub/sub (DESIGN §6).
 *
 *   GET  /dapr/subscribe           the subscriptions (only with
 *                                  EVENTS_CONSUMER=dapr; [] otherwise, so a
 *                                  sidecar never doubles the built-in
 *                                  consumer)
 *   POST /api/events/tasks         one structured CloudEvent, or a bulk
 *   POST /api/events/reminders     delivery; 200 with {"status": ...}
 *
 * The service guard (api/access) checks dapr-api-token first. Handling is
 * events/handler's, shared with the built-in consumer. */
#ifndef TODO_API_DAPR_H
#define TODO_API_DAPR_H

#include <stdbool.h>

#include "events/handler.h"
#include "http/router.h"

typedef struct api_dapr_config {
    bool subscribe;         /* EVENTS_CONSUMER=dapr */
    const char *pubsub_name;
    const char *topic_tasks, *topic_reminders, *topic_dlq;
} api_dapr_config_t;

typedef struct api_dapr api_dapr_t;

/* The strings must outlive it (they are the configuration's). */
api_dapr_t *api_dapr_new(events_handler_t *handler, const api_dapr_config_t *cfg);
void api_dapr_free(api_dapr_t *d);
/* Adds the routes; call before the user routes, whose /api/{user_id}/...
 * templates would otherwise take /api/events/... first. -1 when full. */
int api_dapr_routes(api_dapr_t *d, http_router_t *router);

#endif
