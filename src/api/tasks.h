/* tasks: the /api/{user_id}/tasks endpoints (docs/api.md).
 *
 * Handlers validate input (api/task_input), run one prepared statement per
 * change through db/, and answer with the task JSON PostgreSQL builds, so a
 * task's shape is defined once, in the task_json() SQL function. Each write
 * statement also writes the change's CloudEvent to the outbox table. */
#ifndef TODO_API_TASKS_H
#define TODO_API_TASKS_H

#include "db/db.h"
#include "events/outbox.h"
#include "events/reminders.h"
#include "http/router.h"

typedef struct tasks_api tasks_api_t;

/* Every write's event is handed to outbox right after its commit; a write
 * that leaves a task with reminders tells the scheduler (may be NULL). */
tasks_api_t *tasks_api_new(db_pool_t *pool, events_outbox_t *outbox,
                           events_reminders_t *reminders);
void tasks_api_free(tasks_api_t *api);
/* Adds every task route; returns -1 when the router is full. */
int tasks_api_routes(tasks_api_t *api, http_router_t *router);
/* Deletes idempotency keys older than a day; call every few minutes. */
void tasks_api_purge(tasks_api_t *api);
#define TASKS_PURGE_EVERY_MS (10 * 60 * 1000)

#endif
