/* events/consumer: librdkafka's high-level consumer on the libuv loop.
 *
 * Decisions, in short:
 *
 *  - Loop integration as in events/producer: rd_kafka_poll_set_consumer sends
 *    every callback (rebalances, errors, logs, statistics, commit results)
 *    through the consumer queue, whose io-event writes to our pipe; a uv_poll
 *    on the pipe and a 100 ms timer call rd_kafka_consumer_poll(rk, 0). It is
 *    never called with a timeout.
 *
 *  - The consumer queue is drained on every wake-up, whether or not a record
 *    is in flight: that serves rebalances and keeps us within
 *    max.poll.interval.ms however long a handler or a retry takes. Records go
 *    to a local FIFO (in poll order, hence in partition order); one at a time
 *    goes to the handler. The FIFO is bounded by pausing the assigned
 *    partitions above FIFO_HIGH records and resuming below FIFO_LOW: a paused
 *    partition resumes fetching right after the last record polled, so
 *    nothing is skipped.
 *
 *  - Offsets: enable.auto.offset.store=false and enable.auto.commit=false. A
 *    record's offset+1 is stored (rd_kafka_offsets_store) only when it is
 *    finished: SUCCESS, or its dead-letter copy acknowledged. Since records
 *    finish in order, the stored offset never passes a record that is not
 *    done. Stored offsets are committed asynchronously with one commit request
 *    in flight at a time (rd_kafka_commit(rk, NULL, 1) commits what is
 *    stored), so a burst of records costs a few commits, not one each; a
 *    failed commit is retried a second later, and close commits what is left.
 *
 *  - Assignment strategy: "range", i.e. the eager protocol, set explicitly.
 *    Cooperative-sticky would move fewer partitions per rebalance, but needs
 *    incremental (un)assign in the rebalance callback, partial revocations
 *    while a record is in flight and "lost" handling, and every member of a
 *    group must use the same protocol. With a few replicas, a handful of
 *    partitions and one record in flight, a stop-the-world rebalance costs a
 *    moment and a possible redelivery (which the idempotent handler absorbs).
 *    range is also Sarama's default, the client under Dapr's Kafka component.
 *
 *  - Rebalance: on revoke, buffered records of the revoked partitions are
 *    dropped (the next owner, possibly us again, fetches them from the
 *    committed offset). A record in flight on a revoked partition is never
 *    committed: a running handler is allowed to finish (its record stays
 *    valid) but its verdict only counts in the metrics; a record waiting for
 *    a retry or for its dead-letter copy is abandoned at once. Offsets stored
 *    but not yet committed are committed (async) before the unassign, which
 *    makes librdkafka forget them; storing for an unassigned partition fails,
 *    so nothing is committed after revocation.
 *
 *  - Close: see consumer.h. librdkafka 2.0.2 has rd_kafka_consumer_close_queue
 *    (since 1.9.0): the group is left asynchronously, its rebalance events
 *    come as events on a queue we poll from the loop, so the blocking
 *    rd_kafka_consumer_close is never called.
 */
#include "events/consumer.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "events/kafka.h"
#include "events/handler.h"
#include "events/producer.h"
#include "ops/metrics.h"

_Static_assert(EVENTS_SUCCESS == 0 && EVENTS_RETRY == 1 && EVENTS_DROP == 2,
               "done's verdict is an events_verdict_t");

#define SAFETY_POLL_MS 100
/* Records taken from librdkafka per wake-up (callbacks do not count). */
#define POLLS_PER_WAKEUP 500
/* Records handled synchronously in one go before yielding to the loop. */
#define HANDLE_BATCH 64
/* Local FIFO bounds: pause the assignment above HIGH, resume at LOW. */
#define FIFO_HIGH 500
#define FIFO_LOW 100
/* Backoff between handler calls after RETRY, and between DLQ produce tries. */
#define RETRY_FIRST_MS 200
#define RETRY_MAX_MS 5000
#define COMMIT_RETRY_MS 1000
/* How long leaving the group may take at close, on top of the deadline. */
#define LEAVE_GRACE_MS 2000
#define STATS_INTERVAL "5000"
/* The same error is logged at most once per this. */
/* The dead-letter producer's local queue: one record at a time, up to 1 MB. */
#define DLQ_QUEUE_MESSAGES 16
#define DLQ_QUEUE_KBYTES 4096

typedef enum group_state {
    GROUP_STARTING,
    GROUP_CONSUMING,
    GROUP_IDLE,
    GROUP_REBALANCING,
} group_state_t;

/* What the record in flight waits for. */
typedef enum phase {
    PHASE_NONE,       /* no record in flight */
    PHASE_HANDLING,   /* the handler's done */
    PHASE_RETRY_WAIT, /* the backoff before the next handler call (work timer) */
    PHASE_DLQ_SENT,   /* the DLQ copy's delivery report */
    PHASE_DLQ_WAIT,   /* the backoff before producing the DLQ copy again (work timer) */
} phase_t;

typedef enum close_stage {
    CLOSE_NONE,
    CLOSE_DRAIN,    /* waiting for the record in flight */
    CLOSE_COMMIT,   /* waiting for the last commit */
    CLOSE_LEAVE,    /* rd_kafka_consumer_close_queue under way */
    CLOSE_PRODUCER, /* the DLQ producer is closing */
    CLOSE_HANDLES,  /* our handles are closing */
    CLOSE_DONE,
} close_stage_t;

/* A handler call: the token. It outlives the consumer if done comes late
 * (c is then NULL and done only frees it). */
typedef struct call {
    events_consumer_t *c;
} call_t;

struct events_consumer {
    uv_loop_t *loop;
    events_consumer_config_t cfg; /* strings point to the owned copies below */
    char *brokers, *group_id, *dlq_topic;
    char *security_protocol, *sasl_mechanism, *sasl_username, *sasl_password;
    char **topics; /* NULL-terminated */

    rd_kafka_t *rk;
    rd_kafka_queue_t *closeq; /* during CLOSE_LEAVE */
    events_producer_t *dlq;
    int pipe_rfd, pipe_wfd;
    uv_poll_t poll;
    uv_timer_t tick; /* safety poll, and close steps */
    uv_timer_t work; /* retry backoff, or a deferred pump */
    int open_handles;

    /* Records polled but not yet handed out: a ring. */
    rd_kafka_message_t **fifo;
    size_t fifo_cap, fifo_head, fifo_len;
    bool paused;
    bool pumping;

    struct {
        rd_kafka_message_t *msg;
        phase_t phase;
        int attempts;    /* handler calls so far */
        int dlq_tries;   /* DLQ produce failures so far */
        bool revoked;    /* its partition was revoked while the handler ran */
        call_t *call;    /* during PHASE_HANDLING */
        int64_t dlq_seq; /* during PHASE_DLQ_SENT */
        char reason[256];
    } cur;
    int64_t last_dlq_seq;

    bool commit_dirty;    /* offsets stored since the last commit request */
    bool commit_inflight; /* a commit request awaits its result */
    uint64_t commit_not_before;

    group_state_t group_state;
    bool brokers_down;

    close_stage_t close_stage;
    uint64_t close_deadline, leave_deadline;
    void (*close_cb)(void *arg);
    void *close_arg;

    uint64_t verdicts[3], retries, dead_lettered;
    int64_t lag;
    events_kafka_errlog_t errlog;
};

/* Lower case, as in the metrics (handler.c, with events_verdict_name, is not
 * linked into this module's test). */
static const char *const verdict_names[] = {"success", "retry", "drop"};

static void pump(events_consumer_t *c);
static void on_work(uv_timer_t *t);
static void on_tick(uv_timer_t *t);

/* ---- logging ---- */

static const char *msg_topic(const rd_kafka_message_t *m)
{
    return m->rkt ? rd_kafka_topic_name(m->rkt) : "";
}

/* Close deadlines in real time: uv_now is the loop's cached time, stale when
 * close is called after the loop was blocked a while. */
static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void set_group_state(events_consumer_t *c, group_state_t s)
{
    static const char *const names[] = {"starting", "consuming", "idle", "rebalancing"};
    if (s == c->group_state)
        return;
    log_info("kafka consumer state", LOG_STR("from", names[c->group_state]),
             LOG_STR("to", names[s]));
    c->group_state = s;
}

/* ---- the FIFO of polled records ---- */

static bool fifo_reserve(events_consumer_t *c)
{
    if (c->fifo_len < c->fifo_cap)
        return true;
    size_t cap = c->fifo_cap ? c->fifo_cap * 2 : 64;
    rd_kafka_message_t **a = malloc(cap * sizeof *a);
    if (!a)
        return false;
    for (size_t i = 0; i < c->fifo_len; i++)
        a[i] = c->fifo[(c->fifo_head + i) % c->fifo_cap];
    free(c->fifo);
    c->fifo = a;
    c->fifo_cap = cap;
    c->fifo_head = 0;
    return true;
}

/* Room must have been reserved. */
static void fifo_push(events_consumer_t *c, rd_kafka_message_t *m)
{
    c->fifo[(c->fifo_head + c->fifo_len) % c->fifo_cap] = m;
    c->fifo_len++;
}

static rd_kafka_message_t *fifo_pop(events_consumer_t *c)
{
    rd_kafka_message_t *m = c->fifo[c->fifo_head];
    c->fifo_head = (c->fifo_head + 1) % c->fifo_cap;
    c->fifo_len--;
    return m;
}

static bool in_list(const rd_kafka_topic_partition_list_t *parts, const rd_kafka_message_t *m)
{
    return !parts || rd_kafka_topic_partition_list_find(parts, msg_topic(m), m->partition);
}

/* Drops the buffered records of these partitions (NULL: all), keeping the
 * order of the others. */
static void fifo_drop(events_consumer_t *c, const rd_kafka_topic_partition_list_t *parts)
{
    size_t dropped = 0;
    for (size_t n = c->fifo_len; n > 0; n--) {
        rd_kafka_message_t *m = fifo_pop(c);
        if (in_list(parts, m)) {
            rd_kafka_message_destroy(m);
            dropped++;
        } else {
            fifo_push(c, m); /* the pop made room */
        }
    }
    if (dropped)
        log_debug("kafka consumer dropped buffered records", LOG_INT("count", dropped));
}

/* Pauses or resumes every assigned partition. */
static void set_paused(events_consumer_t *c, bool pause)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(c->rk, &a) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (a->cnt > 0) {
            rd_kafka_resp_err_t e = pause ? rd_kafka_pause_partitions(c->rk, a)
                                          : rd_kafka_resume_partitions(c->rk, a);
            if (e)
                events_kafka_log_error(&c->errlog, uv_now(c->loop),
                                       pause ? "kafka pause" : "kafka resume", e, rd_kafka_err2str(e));
        }
        rd_kafka_topic_partition_list_destroy(a);
    }
    log_debug(pause ? "kafka consumer paused" : "kafka consumer resumed",
              LOG_INT("buffered", c->fifo_len));
    c->paused = pause;
}

/* ---- offsets ---- */

static void maybe_commit(events_consumer_t *c)
{
    if (!c->commit_dirty || c->commit_inflight || !c->rk || c->closeq ||
        uv_now(c->loop) < c->commit_not_before)
        return;
    rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, NULL, 1);
    if (e == RD_KAFKA_RESP_ERR__NO_OFFSET) {
        c->commit_dirty = false;
        return;
    }
    if (e) {
        events_kafka_log_error(&c->errlog, uv_now(c->loop), "kafka commit failed", e,
                               rd_kafka_err2str(e));
        c->commit_not_before = uv_now(c->loop) + COMMIT_RETRY_MS;
        return;
    }
    c->commit_dirty = false;
    c->commit_inflight = true;
    log_debug("kafka commit requested");
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    events_consumer_t *c = opaque;
    c->commit_inflight = false;
    log_debug("kafka commit result", LOG_STR("error", rd_kafka_err2name(err)),
              LOG_INT("partitions", offsets ? offsets->cnt : 0));
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return; /* nothing newer than what is committed */
    for (int i = 0; !err && offsets && i < offsets->cnt; i++)
        err = offsets->elems[i].err;
    if (err) {
        /* What failed is still stored: commit it again a little later. */
        events_kafka_log_error(&c->errlog, uv_now(c->loop), "kafka commit failed", err,
                               rd_kafka_err2str(err));
        c->commit_dirty = true;
        c->commit_not_before = uv_now(c->loop) + COMMIT_RETRY_MS;
    }
}

/* The record is finished: its offset+1 may be committed. */
static void store_offset(events_consumer_t *c, const rd_kafka_message_t *m)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, msg_topic(m), m->partition)->offset = m->offset + 1;
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(c->rk, l);
    if (!e)
        e = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (e) { /* __STATE: no longer assigned; the next owner redelivers it */
        log_warn("kafka offset not stored", LOG_STR("topic", msg_topic(m)),
                 LOG_INT("partition", m->partition), LOG_INT("offset", m->offset),
                 LOG_STR("error", rd_kafka_err2name(e)));
        return;
    }
    c->commit_dirty = true;
    maybe_commit(c);
}

/* ---- the record in flight ---- */

/* The record leaves; the caller decides what comes next. */
static void finish(events_consumer_t *c)
{
    rd_kafka_message_destroy(c->cur.msg);
    c->cur.msg = NULL;
    c->cur.phase = PHASE_NONE;
    c->cur.call = NULL;
    /* The close step waits for this (its handles are still open then). */
    if (c->close_stage != CLOSE_NONE && c->close_stage < CLOSE_PRODUCER)
        uv_timer_start(&c->tick, on_tick, 0, SAFETY_POLL_MS);
}

/* Gives the record up without committing it (revocation, close). */
static void abandon(events_consumer_t *c, const char *why)
{
    if (c->cur.phase == PHASE_NONE)
        return;
    const rd_kafka_message_t *m = c->cur.msg;
    log_info("kafka record abandoned, not committed", LOG_STR("why", why),
             LOG_STR("topic", msg_topic(m)), LOG_INT("partition", m->partition),
             LOG_INT("offset", m->offset), LOG_INT("attempts", c->cur.attempts));
    if (c->cur.call)
        c->cur.call->c = NULL; /* its done, if it ever comes, is ignored */
    if (c->cur.phase == PHASE_RETRY_WAIT || c->cur.phase == PHASE_DLQ_WAIT)
        uv_timer_stop(&c->work);
    finish(c);
}

static uint64_t backoff_ms(int tries)
{
    uint64_t ms = RETRY_FIRST_MS;
    for (int i = 1; i < tries && ms < RETRY_MAX_MS; i++)
        ms *= 2;
    return ms < RETRY_MAX_MS ? ms : RETRY_MAX_MS;
}

/* Runs pump from the loop rather than from the current stack. */
static void kick(events_consumer_t *c)
{
    if (c->cur.phase == PHASE_NONE && c->close_stage == CLOSE_NONE)
        uv_timer_start(&c->work, on_work, 0, 0);
}

static void on_done(events_consumer_t *unused, void *token, int verdict, const char *reason);

static void call_handler(events_consumer_t *c)
{
    call_t *call = malloc(sizeof *call);
    if (!call) { /* try again later, without counting an attempt */
        log_error("kafka consumer: out of memory");
        c->cur.phase = PHASE_RETRY_WAIT;
        uv_timer_start(&c->work, on_work, RETRY_MAX_MS, 0);
        return;
    }
    call->c = c;
    const rd_kafka_message_t *m = c->cur.msg;
    c->cur.call = call;
    c->cur.phase = PHASE_HANDLING;
    if (c->cur.attempts++ > 0)
        c->retries++;
    /* May call on_done before returning: nothing of c->cur is used after. */
    c->cfg.handle(c->cfg.ctx, msg_topic(m), m->payload ? (const char *)m->payload : "",
                  m->payload ? m->len : 0, c, call, on_done);
}

static void dlq_failed(events_consumer_t *c, const char *why)
{
    const rd_kafka_message_t *m = c->cur.msg;
    c->cur.dlq_tries++;
    if (c->close_stage != CLOSE_NONE) {
        log_warn("kafka dead-letter produce failed at close", LOG_STR("reason", why));
        abandon(c, "dead-letter produce failed at close");
        return;
    }
    if (c->cur.dlq_tries == 1)
        log_warn("kafka dead-letter produce failed, retrying", LOG_STR("reason", why),
                 LOG_STR("topic", msg_topic(m)), LOG_INT("partition", m->partition),
                 LOG_INT("offset", m->offset));
    else
        events_kafka_log_error(&c->errlog, uv_now(c->loop), "kafka dead-letter produce failed again",
                               RD_KAFKA_RESP_ERR__FAIL, why);
    c->cur.phase = PHASE_DLQ_WAIT;
    uv_timer_start(&c->work, on_work, backoff_ms(c->cur.dlq_tries), 0);
}

/* Produces the original record, with its headers and five dlq-* ones, to the
 * DLQ topic; the delivery report finishes it. */
static void dlq_send(events_consumer_t *c)
{
    const rd_kafka_message_t *m = c->cur.msg;
    rd_kafka_headers_t *orig = NULL;
    size_t n_orig = 0;
    /* The message owns orig. */
    if (rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR)
        n_orig = rd_kafka_header_cnt(orig);
    events_header_t *h = calloc(n_orig + 5, sizeof *h);
    if (!h) {
        dlq_failed(c, "out of memory");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < n_orig; i++) {
        const char *name;
        const void *value;
        size_t len;
        if (rd_kafka_header_get_all(orig, i, &name, &value, &len) == RD_KAFKA_RESP_ERR_NO_ERROR)
            h[n++] = (events_header_t){name, value, len};
    }
    char attempts[16], partition[16], offset[24];
    snprintf(attempts, sizeof attempts, "%d", c->cur.attempts);
    snprintf(partition, sizeof partition, "%d", (int)m->partition);
    snprintf(offset, sizeof offset, "%lld", (long long)m->offset);
    const char *topic = msg_topic(m);
    h[n++] = (events_header_t){"dlq-error", c->cur.reason, strlen(c->cur.reason)};
    h[n++] = (events_header_t){"dlq-attempts", attempts, strlen(attempts)};
    h[n++] = (events_header_t){"dlq-original-topic", topic, strlen(topic)};
    h[n++] = (events_header_t){"dlq-original-partition", partition, strlen(partition)};
    h[n++] = (events_header_t){"dlq-original-offset", offset, strlen(offset)};
    int64_t seq = ++c->last_dlq_seq;
    events_send_t r = events_producer_send_with_headers(
        c->dlq, c->cfg.dlq_topic, m->key, m->key_len, m->payload, m->len, h, n, seq);
    free(h);
    if (r == EVENTS_SEND_OK) {
        c->cur.dlq_seq = seq;
        c->cur.phase = PHASE_DLQ_SENT;
        return;
    }
    dlq_failed(c, r == EVENTS_SEND_FULL ? "local queue full" : "producer refused the record");
}

static void dead_letter(events_consumer_t *c, const char *reason, const char *fallback)
{
    snprintf(c->cur.reason, sizeof c->cur.reason, "%s", reason && *reason ? reason : fallback);
    c->cur.dlq_tries = 0;
    dlq_send(c);
}

static void on_dlq_delivery(void *ctx, int64_t seq, bool delivered, const char *error)
{
    events_consumer_t *c = ctx;
    if (c->cur.phase != PHASE_DLQ_SENT || seq != c->cur.dlq_seq)
        return; /* a copy of a record given up since */
    if (!delivered) {
        dlq_failed(c, error ? error : "not delivered");
        return;
    }
    const rd_kafka_message_t *m = c->cur.msg;
    c->dead_lettered++;
    log_warn("kafka record dead-lettered", LOG_STR("reason", c->cur.reason),
             LOG_STR("topic", msg_topic(m)), LOG_INT("partition", m->partition),
             LOG_INT("offset", m->offset), LOG_INT("attempts", c->cur.attempts),
             LOG_STR("dlq", c->cfg.dlq_topic));
    store_offset(c, m);
    finish(c);
    kick(c); /* not from inside the producer's delivery callback */
}

/* The DLQ producer was recreated: a copy not reported is gone. */
static void on_dlq_reset(void *ctx)
{
    events_consumer_t *c = ctx;
    if (c->cur.phase == PHASE_DLQ_SENT)
        dlq_failed(c, "dead-letter producer reset");
}

static void on_done(events_consumer_t *unused, void *token, int verdict, const char *reason)
{
    call_t *call = token;
    events_consumer_t *c = call->c;
    free(call);
    if (!c)
        return; /* given up at close, or the consumer is gone */
    if (c->cur.phase != PHASE_HANDLING || c->cur.call != call) {
        log_error("kafka consumer: done for a record not in flight");
        return;
    }
    c->cur.call = NULL;
    if (verdict < EVENTS_SUCCESS || verdict > EVENTS_DROP) {
        log_error("kafka consumer: unknown verdict, retrying", LOG_INT("verdict", verdict));
        verdict = EVENTS_RETRY; /* as Dapr treats an unknown status */
    }
    c->verdicts[verdict]++;
    const rd_kafka_message_t *m = c->cur.msg;
    if (c->cur.revoked) {
        log_info("kafka partition revoked during handling: offset not committed",
                 LOG_STR("topic", msg_topic(m)), LOG_INT("partition", m->partition),
                 LOG_INT("offset", m->offset),
                 LOG_STR("verdict", verdict_names[verdict]));
        finish(c);
    } else if (verdict == EVENTS_SUCCESS) {
        store_offset(c, m);
        finish(c);
    } else if (verdict == EVENTS_DROP) {
        dead_letter(c, reason, "dropped by the handler");
    } else if (c->cur.attempts >= c->cfg.max_attempts) {
        dead_letter(c, reason, "retries exhausted");
    } else if (c->close_stage != CLOSE_NONE) {
        abandon(c, "retry at close");
    } else {
        uint64_t ms = backoff_ms(c->cur.attempts);
        log_info("kafka record retry", LOG_STR("reason", reason ? reason : ""),
                 LOG_STR("topic", msg_topic(m)), LOG_INT("partition", m->partition),
                 LOG_INT("offset", m->offset), LOG_INT("attempts", c->cur.attempts),
                 LOG_INT("backoff_ms", ms));
        c->cur.phase = PHASE_RETRY_WAIT;
        uv_timer_start(&c->work, on_work, ms, 0);
    }
    if (c->cur.phase == PHASE_NONE)
        pump(c); /* no-op when done came from a handler pump called */
}

/* Hands out buffered records while none is in flight. */
static void pump(events_consumer_t *c)
{
    if (c->pumping)
        return;
    c->pumping = true;
    for (int n = 0; c->close_stage == CLOSE_NONE && c->cur.phase == PHASE_NONE && c->fifo_len;
         n++) {
        if (n == HANDLE_BATCH) {
            kick(c);
            break;
        }
        c->cur.msg = fifo_pop(c);
        c->cur.attempts = 0;
        c->cur.revoked = false;
        c->cur.reason[0] = '\0';
        call_handler(c);
    }
    if (c->paused && c->fifo_len <= FIFO_LOW && c->close_stage == CLOSE_NONE)
        set_paused(c, false);
    c->pumping = false;
}

static void on_work(uv_timer_t *t)
{
    events_consumer_t *c = t->data;
    switch (c->cur.phase) {
    case PHASE_RETRY_WAIT:
        if (c->close_stage != CLOSE_NONE)
            abandon(c, "retry at close");
        else
            call_handler(c);
        break;
    case PHASE_DLQ_WAIT:
        if (c->close_stage != CLOSE_NONE)
            abandon(c, "dead-letter retry at close");
        else
            dlq_send(c);
        break;
    case PHASE_NONE:
        pump(c);
        break;
    case PHASE_HANDLING:
    case PHASE_DLQ_SENT:
        break;
    }
}

/* ---- librdkafka callbacks ---- */

static void log_partitions(const char *msg, const rd_kafka_topic_partition_list_t *parts,
                           bool lost)
{
    if (!log_enabled(LOG_INFO))
        return;
    char text[512];
    size_t o = 0;
    text[0] = '\0';
    for (int i = 0; parts && i < parts->cnt && o < sizeof text; i++) {
        int w = snprintf(text + o, sizeof text - o, "%s%s[%d]", i ? "," : "",
                         parts->elems[i].topic, (int)parts->elems[i].partition);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    log_emit(LOG_INFO, msg, LOG_STR("partitions", text), LOG_INT("count", parts ? parts->cnt : 0),
             LOG_BOOL("lost", lost), LOG_END);
}

/* Partitions leave us: nothing of theirs is handed out or committed any more. */
static void revoke_partitions(events_consumer_t *c, rd_kafka_topic_partition_list_t *parts)
{
    fifo_drop(c, parts);
    if (c->cur.phase != PHASE_NONE && in_list(parts, c->cur.msg)) {
        if (c->cur.phase == PHASE_HANDLING)
            c->cur.revoked = true; /* the handler finishes; its commit is dropped */
        else
            abandon(c, "partition revoked");
    }
    /* A paused partition stays paused in librdkafka: leave none behind. */
    if (c->paused && parts && parts->cnt > 0)
        (void)rd_kafka_resume_partitions(c->rk, parts);
}

/* Eager protocol ("range"): assign replaces the whole assignment, revoke
 * clears it. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    events_consumer_t *c = opaque;
    rd_kafka_resp_err_t e;
    switch (err) {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        log_partitions("kafka partitions assigned", parts, false);
        if ((e = rd_kafka_assign(rk, parts)))
            log_error("kafka assign failed", LOG_STR("error", rd_kafka_err2name(e)));
        else if (c->paused && parts->cnt > 0)
            (void)rd_kafka_pause_partitions(rk, parts);
        if (c->close_stage == CLOSE_NONE)
            set_group_state(c, parts->cnt > 0 ? GROUP_CONSUMING : GROUP_IDLE);
        break;
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        log_partitions("kafka partitions revoked", parts, rd_kafka_assignment_lost(rk));
        revoke_partitions(c, parts);
        /* The unassign forgets stored offsets: commit them first (queued
         * before the unassign, while our generation is still current). */
        if (c->commit_dirty && !rd_kafka_assignment_lost(rk) &&
            rd_kafka_commit(rk, NULL, 1) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            c->commit_dirty = false;
            c->commit_inflight = true;
        }
        if ((e = rd_kafka_assign(rk, NULL)))
            log_error("kafka unassign failed", LOG_STR("error", rd_kafka_err2name(e)));
        if (c->close_stage == CLOSE_NONE)
            set_group_state(c, GROUP_REBALANCING);
        break;
    default:
        log_warn("kafka rebalance error", LOG_STR("error", rd_kafka_err2name(err)));
        revoke_partitions(c, NULL);
        (void)rd_kafka_assign(rk, NULL);
        if (c->close_stage == CLOSE_NONE)
            set_group_state(c, GROUP_REBALANCING);
        break;
    }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    events_consumer_t *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof why);
        log_error("kafka consumer fatal error", LOG_STR("error", rd_kafka_err2name(orig)),
                  LOG_STR("reason", why));
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && !c->brokers_down) {
        c->brokers_down = true;
        log_warn("kafka consumer: brokers down");
    }
    events_kafka_log_error(&c->errlog, uv_now(c->loop), "kafka consumer error", err, reason);
}

/* Brokers up iff a real broker (node id >= 0) is UP; lag: the sum of
 * consumer_lag over the partitions being fetched. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    events_consumer_t *c = opaque;
    json_t *root = json_loadb(json, len, 0, NULL);
    int up = events_kafka_stats_brokers_up(root);
    if (up >= 0) {
        if (up && c->brokers_down)
            log_info("kafka consumer: brokers up");
        c->brokers_down = !up;
    }
    json_t *topics = json_object_get(root, "topics");
    if (json_is_object(topics)) {
        int64_t lag = 0;
        const char *tname, *pname;
        json_t *t, *p;
        json_object_foreach(topics, tname, t) {
            json_t *parts = json_object_get(t, "partitions");
            if (!json_is_object(parts))
                continue;
            json_object_foreach(parts, pname, p) {
                const char *fs = json_string_value(json_object_get(p, "fetch_state"));
                json_t *l = json_object_get(p, "consumer_lag");
                if (strcmp(pname, "-1") != 0 && fs && strcmp(fs, "active") == 0 &&
                    json_is_integer(l) && json_integer_value(l) > 0)
                    lag += json_integer_value(l);
            }
        }
        c->lag = lag;
    }
    json_decref(root);
    return 0;
}

/* ---- polling ---- */

static void take(events_consumer_t *c, rd_kafka_message_t *m)
{
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            events_kafka_log_error(&c->errlog, uv_now(c->loop), "kafka consumer error", m->err,
                                   rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    if (c->close_stage != CLOSE_NONE) {
        rd_kafka_message_destroy(m); /* not committed: redelivered after restart */
        return;
    }
    fifo_push(c, m);
}

static void poll_consumer(events_consumer_t *c)
{
    for (int i = 0; i < POLLS_PER_WAKEUP; i++) {
        if (!fifo_reserve(c)) { /* leave records in librdkafka until memory is back */
            log_error("kafka consumer: out of memory");
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 0);
        if (!m)
            break;
        take(c, m);
        /* Records of paused partitions still queued are discarded by
         * librdkafka: polling on only serves callbacks. */
        if (!c->paused && c->fifo_len >= FIFO_HIGH && c->close_stage == CLOSE_NONE)
            set_paused(c, true);
    }
}

/* During CLOSE_LEAVE: the group's events come here (event API: a rebalance
 * is an event, not a rebalance_cb call). */
static void poll_close_queue(events_consumer_t *c)
{
    for (int i = 0; i < POLLS_PER_WAKEUP; i++) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(c->closeq, 0);
        if (!ev)
            break;
        switch (rd_kafka_event_type(ev)) {
        case RD_KAFKA_EVENT_REBALANCE:
            on_rebalance(c->rk, rd_kafka_event_error(ev), rd_kafka_event_topic_partition_list(ev),
                         c);
            break;
        case RD_KAFKA_EVENT_LOG: {
            const char *fac = "", *str = "";
            int level = 6;
            if (rd_kafka_event_log(ev, &fac, &str, &level) == 0)
                events_kafka_on_log(c->rk, level, fac, str);
            break;
        }
        case RD_KAFKA_EVENT_ERROR:
            events_kafka_log_error(&c->errlog, uv_now(c->loop), "kafka consumer error",
                                   rd_kafka_event_error(ev), rd_kafka_event_error_string(ev));
            break;
        default:
            break;
        }
        rd_kafka_event_destroy(ev);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    events_consumer_t *c = h->data;
    if (--c->open_handles > 0)
        return;
    close(c->pipe_rfd);
    close(c->pipe_wfd);
    c->pipe_rfd = c->pipe_wfd = -1;
    c->close_stage = CLOSE_DONE;
    log_info("kafka consumer closed");
    if (c->close_cb)
        c->close_cb(c->close_arg);
}

static void on_dlq_closed(void *arg)
{
    events_consumer_t *c = arg;
    c->close_stage = CLOSE_HANDLES;
    uv_poll_stop(&c->poll);
    uv_timer_stop(&c->tick);
    uv_timer_stop(&c->work);
    uv_close((uv_handle_t *)&c->poll, on_handle_closed);
    uv_close((uv_handle_t *)&c->tick, on_handle_closed);
    uv_close((uv_handle_t *)&c->work, on_handle_closed);
}

static void destroy_consumer(events_consumer_t *c, bool left)
{
    if (c->closeq)
        rd_kafka_queue_destroy(c->closeq);
    c->closeq = NULL;
    if (c->rk)
        rd_kafka_destroy_flags(c->rk, left ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    c->rk = NULL;
}

/* One step per service(): drain, commit, leave, then the DLQ producer and
 * the handles. */
static void close_step(events_consumer_t *c)
{
    uint64_t now = now_ms();
    switch (c->close_stage) {
    case CLOSE_DRAIN:
        fifo_drop(c, NULL);
        if (c->cur.phase == PHASE_RETRY_WAIT || c->cur.phase == PHASE_DLQ_WAIT)
            abandon(c, "retry pending at close");
        if (c->cur.phase != PHASE_NONE && now < c->close_deadline)
            return;
        if (c->cur.phase != PHASE_NONE)
            abandon(c, "close deadline passed");
        c->close_stage = CLOSE_COMMIT;
        __attribute__((fallthrough));
    case CLOSE_COMMIT: {
        maybe_commit(c);
        if ((c->commit_dirty || c->commit_inflight) && now < c->close_deadline)
            return;
        if (c->commit_dirty || c->commit_inflight)
            log_warn("kafka consumer closing with offsets not committed");
        c->close_stage = CLOSE_LEAVE;
        c->leave_deadline = now + LEAVE_GRACE_MS;
        c->closeq = rd_kafka_queue_new(c->rk);
        rd_kafka_queue_io_event_enable(c->closeq, c->pipe_wfd, "1", 1);
        rd_kafka_error_t *error = rd_kafka_consumer_close_queue(c->rk, c->closeq);
        if (error) {
            log_warn("kafka consumer close", LOG_STR("error", rd_kafka_error_string(error)));
            rd_kafka_error_destroy(error);
            c->leave_deadline = now; /* destroy without leaving */
        }
        return;
    }
    case CLOSE_LEAVE: {
        bool left = rd_kafka_consumer_closed(c->rk);
        if (!left && now < c->leave_deadline)
            return;
        if (!left)
            log_warn("kafka consumer did not leave its group in time");
        destroy_consumer(c, left);
        c->close_stage = CLOSE_PRODUCER;
        int ms = c->close_deadline > now ? (int)(c->close_deadline - now) : 0;
        events_producer_close(c->dlq, ms, on_dlq_closed, c);
        return;
    }
    case CLOSE_NONE:
    case CLOSE_PRODUCER:
    case CLOSE_HANDLES:
    case CLOSE_DONE:
        return;
    }
}

static void service(events_consumer_t *c)
{
    if (c->close_stage >= CLOSE_PRODUCER)
        return;
    if (c->closeq)
        poll_close_queue(c);
    else
        poll_consumer(c);
    if (c->close_stage != CLOSE_NONE) {
        close_step(c);
        return;
    }
    maybe_commit(c);
    pump(c);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    events_consumer_t *c = h->data;
    char drain[64];
    while (read(c->pipe_rfd, drain, sizeof drain) > 0) {
    }
    service(c);
}

static void on_tick(uv_timer_t *t)
{
    service(t->data);
}

/* ---- setup ---- */

static rd_kafka_t *create_consumer(events_consumer_t *c, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_log_cb(conf, events_kafka_on_log);
    /* Offsets are stored and committed by us, after the verdict; a new group
     * starts at the beginning, so nothing published before the first start is
     * missed. The local prefetch is kept small: records wait in Kafka. */
    const char *const settings[][2] = {
        {"bootstrap.servers", c->brokers},
        {"group.id", c->group_id},
        {"client.id", "todo-backend"},
        {"log.queue", "true"},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"enable.partition.eof", "false"},
        {"partition.assignment.strategy", "range"},
        {"queued.min.messages", "1000"},
        {"queued.max.messages.kbytes", "8192"},
        {"statistics.interval.ms", STATS_INTERVAL},
    };
    events_kafka_auth_t auth = {c->security_protocol, c->sasl_mechanism, c->sasl_username,
                                c->sasl_password};
    if (events_kafka_conf_all(conf, "kafka consumer", settings,
                              sizeof settings / sizeof settings[0], err, errlen) ||
        events_kafka_conf_auth(conf, "kafka consumer", &auth, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_stats_cb(conf, on_stats);

    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (!rk) {
        snprintf(err, errlen, "kafka consumer: %s", why);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    /* Logs to the main queue, the main queue into the consumer queue, and
     * the consumer queue wakes the loop. */
    rd_kafka_resp_err_t e = rd_kafka_set_log_queue(rk, NULL);
    if (!e)
        e = rd_kafka_poll_set_consumer(rk);
    if (e) {
        snprintf(err, errlen, "kafka consumer queue: %s", rd_kafka_err2str(e));
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        return NULL;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
    rd_kafka_queue_io_event_enable(q, c->pipe_wfd, "1", 1);
    rd_kafka_queue_destroy(q); /* our reference only */

    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(4);
    for (char **t = c->topics; *t; t++)
        rd_kafka_topic_partition_list_add(topics, *t, RD_KAFKA_PARTITION_UA);
    e = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        snprintf(err, errlen, "kafka subscribe: %s", rd_kafka_err2str(e));
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        return NULL;
    }
    return rk;
}

static char *dup_opt(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

static void free_strings(events_consumer_t *c)
{
    free(c->brokers);
    free(c->group_id);
    free(c->dlq_topic);
    free(c->security_protocol);
    free(c->sasl_mechanism);
    free(c->sasl_username);
    free(c->sasl_password);
    for (char **t = c->topics; t && *t; t++)
        free(*t);
    free(c->topics);
}

static void free_producer(void *p)
{
    events_producer_free(p);
}

static const char *check_config(const events_consumer_config_t *cfg)
{
    if (!cfg->brokers || !*cfg->brokers)
        return "kafka consumer: brokers empty";
    if (strcmp(cfg->brokers, "embedded") == 0)
        return "kafka consumer: pass the embedded cluster's bootstrap address, not \"embedded\"";
    if (!cfg->group_id || !*cfg->group_id)
        return "kafka consumer: group id empty";
    if (!cfg->topics || !cfg->topics[0])
        return "kafka consumer: no topics";
    for (const char *const *t = cfg->topics; *t; t++)
        if (!**t)
            return "kafka consumer: empty topic name";
    if (!cfg->dlq_topic || !*cfg->dlq_topic)
        return "kafka consumer: dead-letter topic empty";
    if (cfg->max_attempts < 1)
        return "kafka consumer: max attempts must be at least 1";
    if (!cfg->handle)
        return "kafka consumer: no handler";
    return NULL;
}

events_consumer_t *events_consumer_new(uv_loop_t *loop, const events_consumer_config_t *cfg,
                                       char *err, size_t errlen)
{
    const char *bad = check_config(cfg);
    if (bad) {
        snprintf(err, errlen, "%s", bad);
        return NULL;
    }
    events_consumer_t *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->loop = loop;
    c->pipe_rfd = c->pipe_wfd = -1;
    bool oom = false;
    c->brokers = dup_opt(cfg->brokers, &oom);
    c->group_id = dup_opt(cfg->group_id, &oom);
    c->dlq_topic = dup_opt(cfg->dlq_topic, &oom);
    c->security_protocol = dup_opt(cfg->security_protocol, &oom);
    c->sasl_mechanism = dup_opt(cfg->sasl_mechanism, &oom);
    c->sasl_username = dup_opt(cfg->sasl_username, &oom);
    c->sasl_password = dup_opt(cfg->sasl_password, &oom);
    size_t n = 0;
    while (cfg->topics[n])
        n++;
    c->topics = calloc(n + 1, sizeof *c->topics);
    if (!c->topics)
        oom = true;
    for (size_t i = 0; c->topics && i < n; i++)
        c->topics[i] = dup_opt(cfg->topics[i], &oom);
    if (oom) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    c->cfg = *cfg;
    c->cfg.brokers = c->brokers;
    c->cfg.group_id = c->group_id;
    c->cfg.topics = (const char *const *)c->topics;
    c->cfg.dlq_topic = c->dlq_topic;
    c->cfg.security_protocol = c->security_protocol;
    c->cfg.sasl_mechanism = c->sasl_mechanism;
    c->cfg.sasl_username = c->sasl_username;
    c->cfg.sasl_password = c->sasl_password;

    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    c->pipe_rfd = fds[0];
    c->pipe_wfd = fds[1];

    events_producer_config_t pcfg = {
        .brokers = c->brokers,
        .queue_max_messages = DLQ_QUEUE_MESSAGES,
        .queue_max_kbytes = DLQ_QUEUE_KBYTES,
        .security_protocol = c->security_protocol,
        .sasl_mechanism = c->sasl_mechanism,
        .sasl_username = c->sasl_username,
        .sasl_password = c->sasl_password,
        .on_delivery = on_dlq_delivery,
        .on_reset = on_dlq_reset,
        .ctx = c,
    };
    if (!(c->rk = create_consumer(c, err, errlen)))
        goto fail;
    if (!(c->dlq = events_producer_new(loop, &pcfg, NULL, err, errlen)))
        goto fail;
    int rc = uv_poll_init(loop, &c->poll, c->pipe_rfd);
    if (rc) {
        snprintf(err, errlen, "uv_poll_init: %s", uv_strerror(rc));
        /* The producer is on the loop now: it closes, then frees itself. */
        events_producer_close(c->dlq, 0, free_producer, c->dlq);
        goto fail;
    }
    uv_timer_init(loop, &c->tick);
    uv_timer_init(loop, &c->work);
    c->poll.data = c->tick.data = c->work.data = c;
    c->open_handles = 3;
    uv_poll_start(&c->poll, UV_READABLE, on_readable);
    uv_timer_start(&c->tick, on_tick, SAFETY_POLL_MS, SAFETY_POLL_MS);
    log_info("kafka consumer started", LOG_STR("group", c->group_id),
             LOG_STR("brokers", c->brokers), LOG_STR("dlq", c->dlq_topic));
    return c;

fail:
    if (c->rk)
        rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    if (c->pipe_rfd >= 0) {
        close(c->pipe_rfd);
        close(c->pipe_wfd);
    }
    free_strings(c);
    free(c);
    return NULL;
}

const char *events_consumer_state(const events_consumer_t *c)
{
    if (c->close_stage == CLOSE_DONE)
        return "closed";
    if (c->close_stage != CLOSE_NONE)
        return "closing";
    if (c->brokers_down)
        return "down";
    switch (c->group_state) {
    case GROUP_CONSUMING:
        return "consuming";
    case GROUP_IDLE:
        return "idle";
    case GROUP_REBALANCING:
        return "rebalancing";
    case GROUP_STARTING:
        break;
    }
    return "starting";
}

int events_consumer_collect_metrics(buf_t *out, void *arg)
{
    const events_consumer_t *c = arg;
    int rc = buf_append_str(out, "# HELP todo_consumer_records_total Handler verdicts on "
                                 "consumed Kafka records.\n"
                                 "# TYPE todo_consumer_records_total counter\n");
    for (int v = 0; v < 3 && !rc; v++)
        rc = buf_printf(out, "todo_consumer_records_total{verdict=\"%s\"} %llu\n", verdict_names[v],
                        (unsigned long long)c->verdicts[v]);
    rc = rc ? rc
            : metrics_write_counter(out, "todo_consumer_retries_total",
                                    "Handler calls repeated after a RETRY verdict.",
                                    (double)c->retries);
    rc = rc ? rc
            : metrics_write_counter(out, "todo_consumer_dead_lettered_total",
                                    "Records copied to the dead-letter topic and acknowledged.",
                                    (double)c->dead_lettered);
    rc = rc ? rc
            : metrics_write_gauge(out, "todo_consumer_lag",
                                  "Records behind the committed offsets of the assigned "
                                  "partitions.",
                                  (double)c->lag);
    return rc;
}

void events_consumer_close(events_consumer_t *c, int deadline_ms, void (*cb)(void *arg),
                           void *arg)
{
    if (c->close_stage != CLOSE_NONE)
        return;
    log_info("kafka consumer closing", LOG_BOOL("in_flight", c->cur.phase != PHASE_NONE));
    c->close_stage = CLOSE_DRAIN;
    c->close_cb = cb;
    c->close_arg = arg;
    c->close_deadline = now_ms() + (uint64_t)(deadline_ms > 0 ? deadline_ms : 0);
    /* Never from here: we may be inside the handler or a callback. */
    uv_timer_start(&c->tick, on_tick, 0, SAFETY_POLL_MS);
}

void events_consumer_free(events_consumer_t *c)
{
    if (!c)
        return;
    if (c->cur.call)
        c->cur.call->c = NULL;
    if (c->cur.msg)
        rd_kafka_message_destroy(c->cur.msg);
    free(c->fifo);
    events_producer_free(c->dlq);
    free_strings(c);
    free(c);
}
