/* outbox: from committed outbox rows to acknowledged Kafka records.
 *
 * Every write statement inserts its CloudEvent into the outbox table in the
 * same transaction as the change (db/queries.c); this module moves rows
 * from there to Kafka and deletes them once Kafka has acknowledged them.
 *
 *  - Direct: right after a commit the writer hands the row here and it goes
 *    to the producer at once, so an event normally leaves within one loop
 *    turn of its commit and no request ever waits for Kafka.
 *  - Relay: rows nobody handed over (a full local queue, a failed delivery,
 *    a producer reset, a crashed process) are read back from the table in
 *    seq order and sent. While this process has such a backlog it stops
 *    direct hand-offs, so one task's events keep their order. Only the
 *    process holding a PostgreSQL advisory lock (the leader) relays, so
 *    two replicas never race each other over the same rows.
 *  - Acknowledged rows are deleted in batches; an unacknowledged row stays,
 *    whatever happens to Kafka or to this process.
 *
 * Delivery is therefore at least once: a crash between Kafka's ack and the
 * delete, or a replica's queued copy racing the leader's after an outage,
 * repeats an event with the same id. */
#ifndef TODO_EVENTS_OUTBOX_H
#define TODO_EVENTS_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "core/buf.h"
#include "db/db.h"

typedef struct events_outbox events_outbox_t;

/* An outbox row's stream; the configuration names its topic. */
typedef enum events_stream {
    EVENTS_STREAM_TASKS,
    EVENTS_STREAM_REMINDERS,
    EVENTS_STREAM_COUNT,
} events_stream_t;

typedef struct events_outbox_config {
    const char *brokers; /* "" = publishing off (rows still written), "embedded" = mock */
    const char *topics[EVENTS_STREAM_COUNT];
    const char *dlq_topic; /* created on the embedded cluster */
    int queue_max;         /* messages in the producer's local queue */
    const char *security_protocol, *sasl_mechanism, *sasl_username, *sasl_password;
    /* Its own one-connection pool: relay reads, deletes, statistics and the
     * leader lock, apart from the requests' pipelines (a backlog count or
     * a 500-row read would otherwise hold up the requests queued behind it
     * on a shared connection). */
    db_config_t db;
} events_outbox_config_t;

/* NULL with a one-line reason in err (bad producer configuration, memory). */
events_outbox_t *events_outbox_new(uv_loop_t *loop, const events_outbox_config_t *cfg, char *err,
                                   size_t errlen);
void events_outbox_start(events_outbox_t *o);
/* A write committed outbox row `seq` (decimal text) with this key and event. */
void events_outbox_committed(events_outbox_t *o, events_stream_t stream, const char *seq,
                             const char *key, const char *event, size_t event_len);
/* A write's outcome is unknown (its connection died): its row may have
 * committed without being handed over, so the leader reads the table
 * before its next hand-off. */
void events_outbox_uncertain(events_outbox_t *o);
/* /readyz entry (never makes the service unready: the outbox absorbs a
 * Kafka outage): NULL when a broker is connected, else a word. */
const char *events_outbox_kafka_state(void *o);
/* True when its connection LISTENs (events_outbox_config_t.db's
 * listen_channel). */
bool events_outbox_listening(const events_outbox_t *o);
/* The bootstrap servers in use (the mock cluster's when embedded); "" when
 * publishing is off. */
const char *events_outbox_bootstraps(const events_outbox_t *o);
/* ops/metrics collector. */
int events_outbox_collect_metrics(buf_t *out, void *o);
/* Stops relaying, lets the producer deliver what it holds for up to
 * deadline_ms, deletes what was acknowledged, closes its connection (which
 * releases the leader lock) and every handle; then cb. */
void events_outbox_close(events_outbox_t *o, int deadline_ms, void (*cb)(void *arg), void *arg);
void events_outbox_free(events_outbox_t *o);

#endif
