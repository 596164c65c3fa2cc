/* handler: what the service does with an event it consumes.
 *
 * One entry point for both deliveries: the Dapr sidecar's HTTP push
 * (api/dapr) and the built-in Kafka consumer (events/consumer). The
 * verdicts are Dapr's: SUCCESS (done, or nothing to do), RETRY (a transient
 * failure: the database is unavailable) and DROP (malformed, missing a
 * required attribute, or a type this stream does not carry; retrying cannot
 * help).
 *
 * Handling is idempotent: an effect is committed in the same statement as
 * the event's id in the inbox table, and a recurring task's occurrences are
 * unique per (series_id, occurrence), so a redelivered, concurrently
 * delivered or replayed event changes nothing more. */
#ifndef TODO_EVENTS_HANDLER_H
#define TODO_EVENTS_HANDLER_H

#include <stddef.h>

#include "core/buf.h"
#include "db/db.h"
#include "events/outbox.h"

typedef struct events_handler events_handler_t;

typedef enum events_verdict {
    EVENTS_SUCCESS,
    EVENTS_RETRY,
    EVENTS_DROP,
} events_verdict_t;

/* reason: for logs and dead-letter headers; NULL on SUCCESS. Valid only
 * during the call. */
typedef void (*events_handled_cb)(void *arg, events_verdict_t verdict, const char *reason);

events_handler_t *events_handler_new(db_pool_t *pool, events_outbox_t *outbox);
void events_handler_free(events_handler_t *h);

/* Handles one structured-mode CloudEvent (the JSON bytes) that came from
 * `stream`'s topic. cb runs exactly once, possibly before this returns. */
void events_handle(events_handler_t *h, events_stream_t stream, const char *event, size_t len,
                   events_handled_cb cb, void *arg);

/* "SUCCESS", "RETRY", "DROP": the words of Dapr's contract. */
const char *events_verdict_name(events_verdict_t v);

/* Deletes inbox entries older than a week (occurrences stay unique per
 * series without them); call every few minutes. */
void events_handler_purge(events_handler_t *h);

/* ops/metrics collector: handled events by verdict. */
int events_handler_collect_metrics(buf_t *out, void *h);

#endif
