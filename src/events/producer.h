/* events/producer: the Kafka producer, driven by the libuv loop.
 *
 * A thin layer over librdkafka's idempotent producer (acks=all, no reordering,
 * no duplicates from retries) with infinite message timeout: a message waits
 * for the broker however long it is away, because the outbox above us is the
 * durable copy and a timed-out message would leave a gap in a task's events.
 * Back-pressure is the bounded local queue (EVENTS_SEND_FULL), not a timeout.
 *
 * Every librdkafka callback (delivery reports, errors, statistics and its log
 * lines) runs on the loop thread: librdkafka wakes the loop through a pipe
 * (rd_kafka_queue_io_event_enable) watched by a uv_poll_t, and a 100 ms timer
 * polls as a safety net. Nothing here blocks the loop except rd_kafka_destroy,
 * called only after a purge (fatal-error recovery and close), when it has
 * nothing left to wait for but its own threads, and rd_kafka_new (startup and
 * recreation), which waits only for its threads to start. rd_kafka_flush is
 * never called.
 *
 * This module and the other src/events/ files are the only ones that include
 * librdkafka headers.
 *
 *   events_producer_t *p = events_producer_new(loop, &cfg, NULL, err, sizeof err);
 *   events_producer_send(p, "tasks", id, id_len, json, json_len, seq);
 *   ...
 *   events_producer_close(p, 5000, on_closed, p);  // on_closed frees it
 */
#ifndef TODO_EVENTS_PRODUCER_H
#define TODO_EVENTS_PRODUCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"

typedef struct events_producer events_producer_t;

/* One report per message accepted by events_producer_send: delivered (acked by
 * all in-sync replicas) or failed with librdkafka's reason. Runs on the loop
 * thread. */
typedef void (*events_delivery_cb)(void *ctx, int64_t seq, bool delivered, const char *error);
/* The producer hit a fatal error and was destroyed and recreated: every message
 * not yet reported is gone and will never be reported. Runs on the loop thread.
 *
 * Before this is called, the messages the dead instance still held are purged
 * and reported through on_delivery with delivered=false (as far as librdkafka
 * hands them back within 2 s, which in practice is all of them): an owner that
 * counts reports sees its count settle before the reset. A purged message may
 * still have reached the broker (it was in flight); re-sending it from the
 * outbox can duplicate it, which the idempotent consumer absorbs. */
typedef void (*events_reset_cb)(void *ctx);

typedef struct events_producer_config {
    const char *brokers;        /* "host:port,..." or "embedded" */
    int queue_max_messages;     /* librdkafka queue.buffering.max.messages (bound) */
    int queue_max_kbytes;       /* queue.buffering.max.kbytes */
    /* Authentication: security.protocol ("plaintext", "sasl_plaintext",
     * "ssl", "sasl_ssl"; NULL or "" = librdkafka's default) and, for SASL,
     * sasl.mechanisms and the credentials. */
    const char *security_protocol;
    const char *sasl_mechanism;
    const char *sasl_username;
    const char *sasl_password;
    events_delivery_cb on_delivery; /* required */
    events_reset_cb on_reset;       /* may be NULL */
    void *ctx;
} events_producer_config_t;

typedef enum events_send {
    EVENTS_SEND_OK,     /* queued; exactly one on_delivery will follow, unless on_reset comes first */
    EVENTS_SEND_FULL,   /* local queue full: nothing queued, try again later */
    EVENTS_SEND_ERROR,  /* nothing queued (producer being recreated, fatal, bad topic...) */
} events_send_t;

/* NULL with a one-line reason in err on bad configuration. With "embedded",
 * starts librdkafka's mock cluster (one broker) in this process and creates the
 * topics listed in `embedded_topics` ("name:partitions,name:partitions") on it.
 * The mock cluster lives as long as the producer (it survives recreation); it
 * is for development and tests, not durable. */
events_producer_t *events_producer_new(uv_loop_t *loop, const events_producer_config_t *cfg,
                                       const char *embedded_topics, char *err, size_t errlen);
/* The record gets `key` as its key (partitioning: murmur2 like the Java client,
 * so every client maps a task to the same partition), a copy of `value`, and
 * the header content-type: application/cloudevents+json. `seq` comes back in
 * on_delivery. May be called from on_delivery. */
events_send_t events_producer_send(events_producer_t *p, const char *topic, const char *key,
                                   size_t key_len, const char *value, size_t value_len,
                                   int64_t seq);
/* One record header: a NUL-terminated name and `len` value bytes (value NULL:
 * a null header value). */
typedef struct events_header {
    const char *name;
    const void *value;
    size_t len;
} events_header_t;

/* Like events_producer_send, but the record gets exactly these headers (copied,
 * in this order; no content-type is added), and key and value may be NULL (a
 * record without key or value, as a consumed one may be). For the consumer's
 * dead-letter copies, which keep the original record's headers. */
events_send_t events_producer_send_with_headers(events_producer_t *p, const char *topic,
                                                const char *key, size_t key_len,
                                                const char *value, size_t value_len,
                                                const events_header_t *headers,
                                                size_t n_headers, int64_t seq);
/* The bootstrap address actually used (the mock cluster's when embedded), for
 * the consumer that will come later. */
const char *events_producer_bootstraps(const events_producer_t *p);
/* "up" when at least one broker is connected, "down" when none is, "starting" before the
 * first state is known, "recreating" during a fatal-error recovery.
 *
 * Known from librdkafka's statistics (every second): "up" when a real broker
 * (node id >= 0, not a bootstrap or internal pseudo-broker) is in state UP.
 * An "all brokers down" error makes it "down" at once. */
const char *events_producer_state(const events_producer_t *p);
/* Messages in librdkafka's local queue (rd_kafka_outq_len). */
int events_producer_queue_len(const events_producer_t *p);
/* Prometheus lines (ops/metrics collector signature): todo_events_delivered_total,
 * todo_events_failed_total, todo_events_producer_resets_total,
 * todo_events_queue_messages (gauge), todo_events_broker_up (gauge 0/1). */
int events_producer_collect_metrics(buf_t *out, void *producer);
/* Non-blocking shutdown: stops accepting sends, keeps polling on the loop until
 * every queued message is reported or `deadline_ms` passes, then purges what is
 * left (those get on_delivery with delivered=false; librdkafka gets up to 2 s
 * more to hand them back), destroys the producer and closes its handles; cb
 * runs after the last close callback, and the loop then holds nothing of ours.
 * May be called from on_delivery or on_reset; on_reset is not called once
 * closing. */
void events_producer_close(events_producer_t *p, int deadline_ms, void (*cb)(void *arg), void *arg);
/* Frees p; only once close's cb has run (the cb itself may call it). */
void events_producer_free(events_producer_t *p);

/* For tests only: raises a fatal error (as librdkafka would on an
 * OUT_OF_ORDER_SEQUENCE_NUMBER from the broker) to exercise the recovery.
 * Returns 0, or -1 when there is no instance to break. */
int events_producer_test_fatal(events_producer_t *p);

#endif
