/* events/consumer: the built-in Kafka consumer, driven by the libuv loop.
 *
 * A librdkafka high-level consumer in a consumer group: it hands every record
 * of the subscribed topics to a handler, one record at a time (so records of a
 * partition are handled in order), and commits a record's offset only after
 * the handler's verdict:
 *
 *  - SUCCESS: the offset is committed.
 *  - RETRY: the same record is handled again after a backoff (200 ms doubling
 *    to 5 s) up to max_attempts handler calls in all; then it is dead-lettered.
 *  - DROP: dead-lettered at once (as Dapr does with a deadLetterTopic).
 *
 * Dead-lettering produces the original record (key, value, headers) to the DLQ
 * topic with the headers dlq-error, dlq-attempts, dlq-original-topic,
 * dlq-original-partition and dlq-original-offset added, and commits the
 * original's offset only once the DLQ copy is acknowledged; a failed DLQ
 * produce is retried with backoff, never skipped. Delivery is therefore at
 * least once: after a crash or a rebalance a record may be handled again,
 * which the idempotent handler absorbs.
 *
 * Every librdkafka callback runs on the loop thread (the consumer queue wakes
 * the loop through a pipe, plus a 100 ms safety timer, as in events/producer);
 * nothing here blocks the loop except rd_kafka_new (startup) and
 * rd_kafka_destroy once the consumer has left its group (close).
 *
 *   events_consumer_t *c = events_consumer_new(loop, &cfg, err, sizeof err);
 *   ...  cfg.handle(ctx, topic, value, len, c, token, done) ... done(c, token, verdict, reason);
 *   events_consumer_close(c, 5000, on_closed, c);  // on_closed frees it
 */
#ifndef TODO_EVENTS_CONSUMER_H
#define TODO_EVENTS_CONSUMER_H

#include <stddef.h>
#include <uv.h>

#include "core/buf.h"

typedef struct events_consumer events_consumer_t;

/* The verdict for the record behind `token`: an events_verdict_t
 * (events/handler.h: 0 SUCCESS, 1 RETRY, 2 DROP); reason (may be NULL) goes to
 * the logs and to the dlq-error header. Must be called exactly once per handle
 * call, on the loop thread, possibly before handle returns. */
typedef void (*events_consumer_done_fn)(events_consumer_t *c, void *token, int verdict,
                                        const char *reason);
/* Called on the loop for each record. `value` (len bytes, not NUL-terminated;
 * "" for a record without value) stays valid until done is called or the
 * consumer's close deadline passes, whichever comes first. The consumer hands
 * out no other record until done is called. */
typedef void (*events_consumer_handle_fn)(void *ctx, const char *topic, const char *value,
                                          size_t len, events_consumer_t *c, void *token,
                                          events_consumer_done_fn done);

typedef struct events_consumer_config {
    const char *brokers;       /* bootstrap list ("embedded": pass the producer's bootstraps) */
    const char *group_id;      /* "todo-backend" */
    const char *const *topics; /* NULL-terminated: tasks, reminders */
    const char *dlq_topic;     /* tasks-dlq */
    int max_attempts;          /* handler calls per record before a RETRY is dead-lettered (>= 1) */
    /* As in events_producer_config_t. */
    const char *security_protocol, *sasl_mechanism, *sasl_username, *sasl_password;
    events_consumer_handle_fn handle; /* required */
    void *ctx;
} events_consumer_config_t;

/* Creates the consumer and its dead-letter producer and subscribes; records
 * start coming once the group has assigned partitions. NULL with a one-line
 * reason in err on bad configuration. The strings in cfg are copied. */
events_consumer_t *events_consumer_new(uv_loop_t *loop, const events_consumer_config_t *cfg,
                                       char *err, size_t errlen);
/* "starting" (no assignment yet), "consuming" (partitions assigned), "idle"
 * (in the group with no partitions), "rebalancing", "down" (no broker
 * reachable), "closing", "closed". Informational, for /readyz. */
const char *events_consumer_state(const events_consumer_t *c);
/* ops/metrics collector: todo_consumer_records_total{verdict=success|retry|drop}
 * (handler verdicts), todo_consumer_retries_total (handler calls repeated
 * after a RETRY), todo_consumer_dead_lettered_total (acknowledged DLQ copies),
 * todo_consumer_lag (gauge: records behind the committed offsets of the
 * assigned partitions, from librdkafka's statistics; 0 until known). */
int events_consumer_collect_metrics(buf_t *out, void *c);
/* Non-blocking shutdown: hands out no more records, waits (up to deadline_ms)
 * for the record in flight (its handler's done, or its DLQ acknowledgement; a
 * record waiting for a retry is abandoned, uncommitted), commits the stored
 * offsets, leaves the group (rd_kafka_consumer_close_queue, served on the
 * loop; about 2 s more at most), destroys the consumer, closes the DLQ
 * producer and every handle; then cb. A done that comes after the deadline is
 * ignored (even after events_consumer_free). May be called from the handler or
 * from done. */
void events_consumer_close(events_consumer_t *c, int deadline_ms, void (*cb)(void *arg),
                           void *arg);
/* Frees c; only once close's cb has run (the cb itself may call it). */
void events_consumer_free(events_consumer_t *c);

#endif
