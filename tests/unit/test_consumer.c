/* Unit tests for events/consumer against librdkafka's mock cluster (started
 * through the producer's "embedded" mode, as the service does): records in
 * per-partition order and committed, DROP and exhausted RETRY dead-lettered
 * with their headers, retries, close with a record in flight (waited for, or
 * given up at the deadline), metrics and bad configuration.
 *
 * Each test runs its own uv loop until a condition or a deadline timer, so
 * none can hang. Committed offsets and DLQ records are read with plain
 * librdkafka clients. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "core/buf.h"
#include "core/log.h"
#include "events/consumer.h"
#include "events/producer.h"
#include "unit.h"

#define MAX_CALLS 2048

typedef enum mode {
    MODE_SYNC,  /* done before handle returns */
    MODE_ASYNC, /* done from a timer, 1 ms later */
    MODE_HOLD,  /* done when the test says so */
} mode_t_;

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t deadline;
    bool timed_out;
    uv_timer_t responder;
    events_producer_t *p;
    int sent, delivered, failed;
    events_consumer_t *c;
    bool closed;
    mode_t_ mode;
    int n_calls;
    char calls[MAX_CALLS][64];
    char call_topics[MAX_CALLS][32];
    int overlaps; /* a handle call while another was pending */
    /* The pending done (MODE_ASYNC, MODE_HOLD). */
    events_consumer_t *pend_c;
    void *pend_token;
    events_consumer_done_fn pend_done;
    int pend_verdict;
    const char *pend_reason;
    rd_kafka_t *offsets_rk; /* reads committed offsets of the test's group */
    rd_kafka_t *mock_rk;    /* the test's own mock cluster, when it needs one */
    rd_kafka_mock_cluster_t *mock;
} fixture_t;

static void on_delivery(void *ctx, int64_t seq, bool delivered, const char *error)
{
    fixture_t *fx = ctx;
    if (delivered)
        fx->delivered++;
    else
        fx->failed++;
}

static void on_deadline(uv_timer_t *t)
{
    ((fixture_t *)t->data)->timed_out = true;
}

static void on_closed(void *arg)
{
    ((fixture_t *)arg)->closed = true;
}

/* Runs the loop until cond holds or ms pass; check cond afterwards. */
#define RUN_UNTIL(fx, cond, ms)                                            \
    do {                                                                   \
        (fx)->timed_out = false;                                           \
        uv_timer_start(&(fx)->deadline, on_deadline, (ms), 0);             \
        while (!(cond) && !(fx)->timed_out)                                \
            uv_run(&(fx)->loop, UV_RUN_ONCE);                              \
        uv_timer_stop(&(fx)->deadline);                                    \
    } while (0)

/* The verdicts, by value: "drop..." is dropped, "retry-always" always
 * retried, "retry-2" retried twice then a success, anything else a success. */
static int decide(const char *value, int prior_calls, const char **reason)
{
    *reason = NULL;
    if (strncmp(value, "drop", 4) == 0) {
        *reason = "bad event";
        return 2;
    }
    if (strcmp(value, "retry-always") == 0) {
        *reason = "db down";
        return 1;
    }
    if (strcmp(value, "retry-2") == 0 && prior_calls < 2) {
        *reason = "db busy";
        return 1;
    }
    return 0;
}

static void respond(fixture_t *fx)
{
    events_consumer_done_fn done = fx->pend_done;
    void *token = fx->pend_token;
    fx->pend_done = NULL;
    fx->pend_token = NULL;
    done(fx->pend_c, token, fx->pend_verdict, fx->pend_reason);
}

static void on_respond(uv_timer_t *t)
{
    fixture_t *fx = t->data;
    if (fx->pend_done)
        respond(fx);
}

static void handle(void *ctx, const char *topic, const char *value, size_t len,
                   events_consumer_t *c, void *token, events_consumer_done_fn done)
{
    fixture_t *fx = ctx;
    char v[64];
    size_t n = len < sizeof v - 1 ? len : sizeof v - 1;
    memcpy(v, value, n);
    v[n] = '\0';
    int prior = 0;
    for (int i = 0; i < fx->n_calls; i++)
        if (strcmp(fx->calls[i], v) == 0)
            prior++;
    if (fx->n_calls < MAX_CALLS) {
        memcpy(fx->calls[fx->n_calls], v, n + 1);
        snprintf(fx->call_topics[fx->n_calls], sizeof fx->call_topics[0], "%s", topic);
    }
    fx->n_calls++;
    const char *reason;
    int verdict = decide(v, prior, &reason);
    if (fx->mode == MODE_SYNC) {
        done(c, token, verdict, reason);
        return;
    }
    if (fx->pend_done)
        fx->overlaps++;
    fx->pend_c = c;
    fx->pend_token = token;
    fx->pend_done = done;
    fx->pend_verdict = verdict;
    fx->pend_reason = reason;
    if (fx->mode == MODE_ASYNC)
        uv_timer_start(&fx->responder, on_respond, 1, 0);
}

/* topics: "name:partitions,..." on an embedded cluster; with own_mock the
 * test keeps the mock cluster's handle (to inject errors) and creates them. */
static void fx_init_mock(fixture_t *fx, const char *topics, bool own_mock)
{
    memset(fx, 0, sizeof *fx);
    CHECK_INT_EQ(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->deadline);
    uv_timer_init(&fx->loop, &fx->responder);
    fx->deadline.data = fx->responder.data = fx;
    const char *brokers = "embedded";
    char err[256] = "";
    if (own_mock) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set_log_cb(conf, NULL); /* quiet: the mock logs from its thread */
        fx->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        CHECK(fx->mock_rk != NULL);
        fx->mock = rd_kafka_mock_cluster_new(fx->mock_rk, 1);
        CHECK(fx->mock != NULL);
        CHECK_INT_EQ(rd_kafka_mock_topic_create(fx->mock, "tasks", 1, 1), 0);
        CHECK_INT_EQ(rd_kafka_mock_topic_create(fx->mock, "tasks-dlq", 1, 1), 0);
        brokers = rd_kafka_mock_cluster_bootstraps(fx->mock);
        topics = NULL;
    }
    events_producer_config_t cfg = {
        .brokers = brokers,
        .queue_max_messages = 10000,
        .queue_max_kbytes = 4096,
        .on_delivery = on_delivery,
        .ctx = fx,
    };
    fx->p = events_producer_new(&fx->loop, &cfg, topics, err, sizeof err);
    if (!fx->p)
        unit__diag("#   err: %s\n", err);
    CHECK(fx->p != NULL);
}

static void fx_init(fixture_t *fx, const char *topics)
{
    fx_init_mock(fx, topics, false);
}

static void produce(fixture_t *fx, const char *topic, const char *key, const char *value)
{
    CHECK_INT_EQ(events_producer_send(fx->p, topic, key, strlen(key), value, strlen(value),
                                      fx->sent),
                 EVENTS_SEND_OK);
    fx->sent++;
    RUN_UNTIL(fx, fx->delivered == fx->sent, 10000);
    CHECK_INT_EQ(fx->delivered, fx->sent);
}

static void fx_consumer(fixture_t *fx, const char *group, const char *const *topics,
                        int max_attempts, mode_t_ mode)
{
    fx->mode = mode;
    fx->closed = false;
    events_consumer_config_t cfg = {
        .brokers = events_producer_bootstraps(fx->p),
        .group_id = group,
        .topics = topics,
        .dlq_topic = "tasks-dlq",
        .max_attempts = max_attempts,
        .handle = handle,
        .ctx = fx,
    };
    char err[256] = "";
    fx->c = events_consumer_new(&fx->loop, &cfg, err, sizeof err);
    if (!fx->c)
        unit__diag("#   err: %s\n", err);
    CHECK(fx->c != NULL);
}

static void close_consumer(fixture_t *fx, int deadline_ms)
{
    events_consumer_close(fx->c, deadline_ms, on_closed, fx);
    RUN_UNTIL(fx, fx->closed, 20000);
    CHECK(fx->closed);
    CHECK_STR_EQ(events_consumer_state(fx->c), "closed");
    events_consumer_free(fx->c);
    fx->c = NULL;
}

static void fx_finish(fixture_t *fx)
{
    if (fx->c)
        close_consumer(fx, 1000);
    if (fx->offsets_rk)
        rd_kafka_destroy(fx->offsets_rk);
    fx->offsets_rk = NULL;
    fx->closed = false;
    events_producer_close(fx->p, 1000, on_closed, fx);
    RUN_UNTIL(fx, fx->closed, 10000);
    CHECK(fx->closed);
    events_producer_free(fx->p);
    uv_close((uv_handle_t *)&fx->deadline, NULL);
    uv_close((uv_handle_t *)&fx->responder, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    CHECK_INT_EQ(uv_loop_close(&fx->loop), 0);
    if (fx->mock)
        rd_kafka_mock_cluster_destroy(fx->mock);
    if (fx->mock_rk)
        rd_kafka_destroy(fx->mock_rk);
}

static rd_kafka_t *plain_client(const char *bootstraps, const char *group)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    CHECK_INT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof err),
                 RD_KAFKA_CONF_OK);
    CHECK_INT_EQ(rd_kafka_conf_set(conf, "group.id", group, err, sizeof err), RD_KAFKA_CONF_OK);
    CHECK_INT_EQ(rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err),
                 RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_log_cb(conf, NULL);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    CHECK(rk != NULL);
    return rk;
}

/* The group's committed offset (-1001 when none). Blocks the test, not the
 * consumer (its threads keep going). */
static int64_t committed(fixture_t *fx, const char *group, const char *topic, int partition)
{
    if (!fx->offsets_rk)
        fx->offsets_rk = plain_client(events_producer_bootstraps(fx->p), group);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    int64_t off = -2;
    if (rd_kafka_committed(fx->offsets_rk, l, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        !l->elems[0].err)
        off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return off;
}

/* Runs the loop until the committed offset is `want` (or 15 s). */
static int64_t wait_committed(fixture_t *fx, const char *group, const char *topic,
                              int partition, int64_t want)
{
    int64_t off = committed(fx, group, topic, partition);
    for (int i = 0; i < 75 && off != want; i++) {
        RUN_UNTIL(fx, false, 200);
        off = committed(fx, group, topic, partition);
    }
    return off;
}

/* Reads the partitions [0, n_partitions) of a topic, from the beginning or
 * (group != NULL) from the group's committed offsets, until `want` records
 * and then `linger_ms` more, or 10 s. */
typedef struct reader {
    rd_kafka_t *rk;
    rd_kafka_message_t *m[16];
    int n;
} reader_t;

static void read_topic(fixture_t *fx, reader_t *r, const char *group, const char *topic,
                       int n_partitions, int want, int linger_ms)
{
    memset(r, 0, sizeof *r);
    r->rk = plain_client(events_producer_bootstraps(fx->p), group ? group : "test-reader");
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n_partitions);
    for (int i = 0; i < n_partitions; i++)
        rd_kafka_topic_partition_list_add(l, topic, i)->offset =
            group ? RD_KAFKA_OFFSET_STORED : RD_KAFKA_OFFSET_BEGINNING;
    CHECK_INT_EQ(rd_kafka_assign(r->rk, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    uint64_t give_up = uv_hrtime() + 10ull * 1000000000;
    while (r->n < 16 && uv_hrtime() < give_up) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, 100);
        if (m && m->err)
            rd_kafka_message_destroy(m);
        else if (m)
            r->m[r->n++] = m;
        if (r->n >= want && want >= 0) {
            uint64_t end = uv_hrtime() + (uint64_t)linger_ms * 1000000;
            if (end < give_up)
                give_up = end;
            want = -1; /* linger once */
        }
    }
}

static void reader_close(reader_t *r)
{
    for (int i = 0; i < r->n; i++)
        rd_kafka_message_destroy(r->m[i]);
    rd_kafka_consumer_close(r->rk);
    rd_kafka_destroy(r->rk);
}

static bool header_is(rd_kafka_message_t *m, const char *name, const char *want)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t len = 0;
    if (rd_kafka_message_headers(m, &h) || rd_kafka_header_get_last(h, name, &v, &len)) {
        unit__diag("#   header %s missing\n", name);
        return false;
    }
    if (len != strlen(want) || memcmp(v, want, len) != 0) {
        unit__diag("#   header %s is \"%.*s\", want \"%s\"\n", name, (int)len, (const char *)v,
                   want);
        return false;
    }
    return true;
}

static bool bytes_are(const void *p, size_t len, const char *want)
{
    return p && len == strlen(want) && memcmp(p, want, len) == 0;
}

static bool metrics_have(fixture_t *fx, const char *line)
{
    buf_t b;
    buf_init(&b, 64 * 1024);
    CHECK_INT_EQ(events_consumer_collect_metrics(&b, fx->c), 0);
    const char *s = buf_cstr(&b);
    char want[160];
    snprintf(want, sizeof want, "\n%s\n", line);
    bool ok = s && strstr(s, want) != NULL;
    if (!ok)
        unit__diag("#   no line \"%s\" in:\n%s", line, s ? s : "(null)");
    buf_free(&b);
    return ok;
}

static int count_calls(fixture_t *fx, const char *value)
{
    int n = 0;
    for (int i = 0; i < fx->n_calls && i < MAX_CALLS; i++)
        if (strcmp(fx->calls[i], value) == 0)
            n++;
    return n;
}

static const char *const tasks_and_reminders[] = {"tasks", "reminders", NULL};
static const char *const tasks_only[] = {"tasks", NULL};

/* 40 keyed records on two partitions and 5 reminders: each handled once, a
 * key's records in order, all committed; a restarted member of the group gets
 * only what is new. */
static void test_order_and_commit(void)
{
    fixture_t fx;
    fx_init(&fx, "tasks:2,reminders:1,tasks-dlq:1");
    for (int i = 0; i < 40; i++) {
        char key[16], value[64];
        snprintf(key, sizeof key, "k%d", i % 5);
        snprintf(value, sizeof value, "{\"seq\":%d,\"key\":%d}", i, i % 5);
        produce(&fx, "tasks", key, value);
    }
    for (int i = 0; i < 5; i++) {
        char value[32];
        snprintf(value, sizeof value, "{\"r\":%d}", i);
        produce(&fx, "reminders", "r", value);
    }
    fx_consumer(&fx, "g-order", tasks_and_reminders, 3, MODE_ASYNC);
    CHECK_STR_EQ(events_consumer_state(fx.c), "starting");
    RUN_UNTIL(&fx, fx.n_calls >= 45, 30000);
    RUN_UNTIL(&fx, false, 300); /* anything extra would show now */
    CHECK_INT_EQ(fx.n_calls, 45);
    CHECK_INT_EQ(fx.overlaps, 0);
    CHECK_STR_EQ(events_consumer_state(fx.c), "consuming");
    int seen[40] = {0}, last[5] = {-1, -1, -1, -1, -1}, reminders = 0, bad = 0;
    for (int i = 0; i < fx.n_calls; i++) {
        int seq, key;
        if (strcmp(fx.call_topics[i], "reminders") == 0) {
            int r;
            if (sscanf(fx.calls[i], "{\"r\":%d}", &r) != 1 || r != reminders)
                bad++;
            reminders++;
        } else if (strcmp(fx.call_topics[i], "tasks") != 0 ||
                   sscanf(fx.calls[i], "{\"seq\":%d,\"key\":%d}", &seq, &key) != 2 || seq < 0 ||
                   seq >= 40 || key != seq % 5 || seq <= last[key]) {
            bad++;
        } else {
            seen[seq]++;
            last[key] = seq;
        }
    }
    CHECK_INT_EQ(bad, 0);
    CHECK_INT_EQ(reminders, 5);
    for (int i = 0; i < 40; i++)
        CHECK_INT_EQ(seen[i], 1);

    /* Committed: the partitions' offsets add up to what was produced. */
    int64_t p0 = committed(&fx, "g-order", "tasks", 0);
    int64_t p1 = committed(&fx, "g-order", "tasks", 1);
    for (int i = 0; i < 75 && p0 + p1 != 40; i++) {
        RUN_UNTIL(&fx, false, 200);
        p0 = committed(&fx, "g-order", "tasks", 0);
        p1 = committed(&fx, "g-order", "tasks", 1);
    }
    CHECK_INT_EQ(p0 + p1, 40);
    CHECK(p0 > 0 && p1 > 0); /* five keys over two partitions */
    CHECK_INT_EQ(wait_committed(&fx, "g-order", "reminders", 0, 5), 5);
    CHECK(metrics_have(&fx, "todo_consumer_records_total{verdict=\"success\"} 45"));
    close_consumer(&fx, 5000);

    /* Where the group resumes (a plain client from the committed offsets;
     * the mock cluster makes a new member of a group that was left wait a
     * session timeout): only what is new. */
    produce(&fx, "tasks", "k1", "late");
    reader_t r;
    read_topic(&fx, &r, "g-order", "tasks", 2, 1, 500);
    CHECK_INT_EQ(r.n, 1);
    CHECK(bytes_are(r.m[0]->payload, r.m[0]->len, "late"));
    reader_close(&r);
    fx_finish(&fx);
}

/* DROP: the record goes to the DLQ at once with its key, value, headers and
 * the five dlq-* headers; the records after it are still handled. */
static void test_drop_dead_letters(void)
{
    fixture_t fx;
    fx_init(&fx, "tasks:1,tasks-dlq:1");
    produce(&fx, "tasks", "k1", "a1");
    produce(&fx, "tasks", "k1", "drop-me");
    produce(&fx, "tasks", "k1", "b1");
    fx_consumer(&fx, "g-drop", tasks_only, 3, MODE_SYNC);
    RUN_UNTIL(&fx, fx.n_calls >= 3, 30000);
    CHECK_INT_EQ(fx.n_calls, 3);
    CHECK_STR_EQ(fx.calls[0], "a1");
    CHECK_STR_EQ(fx.calls[1], "drop-me");
    CHECK_STR_EQ(fx.calls[2], "b1");
    CHECK_INT_EQ(wait_committed(&fx, "g-drop", "tasks", 0, 3), 3);
    CHECK(metrics_have(&fx, "todo_consumer_records_total{verdict=\"success\"} 2"));
    CHECK(metrics_have(&fx, "todo_consumer_records_total{verdict=\"drop\"} 1"));
    CHECK(metrics_have(&fx, "todo_consumer_records_total{verdict=\"retry\"} 0"));
    CHECK(metrics_have(&fx, "todo_consumer_dead_lettered_total 1"));
    CHECK(metrics_have(&fx, "todo_consumer_retries_total 0"));

    reader_t r;
    read_topic(&fx, &r, NULL, "tasks-dlq", 1, 1, 500);
    CHECK_INT_EQ(r.n, 1);
    rd_kafka_message_t *m = r.m[0];
    CHECK(bytes_are(m->key, m->key_len, "k1"));
    CHECK(bytes_are(m->payload, m->len, "drop-me"));
    CHECK(header_is(m, "content-type", "application/cloudevents+json"));
    CHECK(header_is(m, "dlq-error", "bad event"));
    CHECK(header_is(m, "dlq-attempts", "1"));
    CHECK(header_is(m, "dlq-original-topic", "tasks"));
    CHECK(header_is(m, "dlq-original-partition", "0"));
    CHECK(header_is(m, "dlq-original-offset", "1"));
    reader_close(&r);
    fx_finish(&fx);
}

/* RETRY twice then SUCCESS: three calls, no DLQ. RETRY always with
 * max_attempts 3: three calls, then the DLQ with dlq-attempts 3. */
static void test_retries(void)
{
    fixture_t fx;
    fx_init(&fx, "tasks:1,tasks-dlq:1");
    produce(&fx, "tasks", "k1", "retry-2");
    produce(&fx, "tasks", "k1", "retry-always");
    produce(&fx, "tasks", "k1", "after");
    fx_consumer(&fx, "g-retry", tasks_only, 3, MODE_ASYNC);
    RUN_UNTIL(&fx, count_calls(&fx, "after") >= 1, 30000);
    RUN_UNTIL(&fx, false, 300);
    CHECK_INT_EQ(fx.n_calls, 7);
    CHECK_INT_EQ(fx.overlaps, 0);
    const char *want[] = {"retry-2",      "retry-2",      "retry-2",     "retry-always",
                          "retry-always", "retry-always", "after"};
    for (int i = 0; i < 7; i++)
        CHECK_STR_EQ(fx.calls[i], want[i]);
    CHECK_INT_EQ(wait_committed(&fx, "g-retry", "tasks", 0, 3), 3);
    CHECK(metrics_have(&fx, "todo_consumer_records_total{verdict=\"success\"} 2"));
    CHECK(metrics_have(&fx, "todo_consumer_records_total{verdict=\"retry\"} 5"));
    CHECK(metrics_have(&fx, "todo_consumer_records_total{verdict=\"drop\"} 0"));
    CHECK(metrics_have(&fx, "todo_consumer_retries_total 4"));
    CHECK(metrics_have(&fx, "todo_consumer_dead_lettered_total 1"));

    reader_t r;
    read_topic(&fx, &r, NULL, "tasks-dlq", 1, 1, 500);
    CHECK_INT_EQ(r.n, 1);
    rd_kafka_message_t *m = r.m[0];
    CHECK(bytes_are(m->payload, m->len, "retry-always"));
    CHECK(bytes_are(m->key, m->key_len, "k1"));
    CHECK(header_is(m, "dlq-error", "db down"));
    CHECK(header_is(m, "dlq-attempts", "3"));
    CHECK(header_is(m, "dlq-original-topic", "tasks"));
    CHECK(header_is(m, "dlq-original-partition", "0"));
    CHECK(header_is(m, "dlq-original-offset", "1"));
    reader_close(&r);
    fx_finish(&fx);
}

/* Close waits for the handler's done, commits, and the loop closes clean. */
static void test_close_waits_for_in_flight(void)
{
    fixture_t fx;
    fx_init(&fx, "tasks:1,tasks-dlq:1");
    produce(&fx, "tasks", "k1", "held");
    produce(&fx, "tasks", "k1", "never");
    fx_consumer(&fx, "g-close", tasks_only, 3, MODE_HOLD);
    RUN_UNTIL(&fx, fx.n_calls >= 1, 30000);
    CHECK_INT_EQ(fx.n_calls, 1);
    CHECK(fx.pend_done != NULL);

    events_consumer_close(fx.c, 10000, on_closed, &fx);
    RUN_UNTIL(&fx, fx.closed, 700);
    CHECK(!fx.closed);
    CHECK_STR_EQ(events_consumer_state(fx.c), "closing");
    respond(&fx);
    RUN_UNTIL(&fx, fx.closed, 20000);
    CHECK(fx.closed);
    CHECK_INT_EQ(fx.n_calls, 1); /* nothing handed out after close */
    CHECK_STR_EQ(events_consumer_state(fx.c), "closed");
    events_consumer_free(fx.c);
    fx.c = NULL;
    CHECK_INT_EQ(committed(&fx, "g-close", "tasks", 0), 1);
    fx_finish(&fx);
}

/* A handler that outlives the close deadline: the record is given up
 * uncommitted, and its late done (after free) is ignored. */
static void test_close_deadline_gives_up(void)
{
    fixture_t fx;
    fx_init(&fx, "tasks:1,tasks-dlq:1");
    produce(&fx, "tasks", "k1", "slow");
    fx_consumer(&fx, "g-late", tasks_only, 3, MODE_HOLD);
    RUN_UNTIL(&fx, fx.n_calls >= 1, 30000);
    CHECK_INT_EQ(fx.n_calls, 1);
    close_consumer(&fx, 300);
    CHECK(fx.pend_done != NULL);
    respond(&fx); /* the consumer is freed: must not be touched */
    CHECK_INT_EQ(committed(&fx, "g-late", "tasks", 0), RD_KAFKA_OFFSET_INVALID);
    fx_finish(&fx);
}

/* More records than the consumer buffers (it pauses fetching, then resumes
 * where it stopped): every record once, each key's in order. */
static void test_backlog_paused_and_resumed(void)
{
    enum { N = 1500, KEYS = 7 };
    fixture_t *fx = calloc(1, sizeof *fx); /* big: MAX_CALLS values */
    CHECK(fx != NULL);
    fx_init(fx, "tasks:2,tasks-dlq:1");
    for (int i = 0; i < N; i++) {
        char key[16], value[64];
        int kn = snprintf(key, sizeof key, "k%d", i % KEYS);
        int vn = snprintf(value, sizeof value, "{\"seq\":%d,\"key\":%d}", i, i % KEYS);
        CHECK_INT_EQ(events_producer_send(fx->p, "tasks", key, (size_t)kn, value, (size_t)vn, i),
                     EVENTS_SEND_OK);
    }
    fx->sent = N;
    RUN_UNTIL(fx, fx->delivered == N, 20000);
    CHECK_INT_EQ(fx->delivered, N);
    fx_consumer(fx, "g-backlog", tasks_only, 3, MODE_ASYNC);
    RUN_UNTIL(fx, fx->n_calls >= N, 60000);
    RUN_UNTIL(fx, false, 300);
    CHECK_INT_EQ(fx->n_calls, N);
    CHECK_INT_EQ(fx->overlaps, 0);
    static int seen[N];
    int last[KEYS], bad = 0;
    memset(seen, 0, sizeof seen);
    for (int k = 0; k < KEYS; k++)
        last[k] = -1;
    for (int i = 0; i < fx->n_calls && i < MAX_CALLS; i++) {
        int seq, key;
        if (sscanf(fx->calls[i], "{\"seq\":%d,\"key\":%d}", &seq, &key) != 2 || seq < 0 ||
            seq >= N || key != seq % KEYS || seq <= last[key]) {
            bad++;
            continue;
        }
        seen[seq]++;
        last[key] = seq;
    }
    CHECK_INT_EQ(bad, 0);
    int once = 0;
    for (int i = 0; i < N; i++)
        once += seen[i] == 1;
    CHECK_INT_EQ(once, N);
    int64_t p0 = committed(fx, "g-backlog", "tasks", 0);
    int64_t p1 = committed(fx, "g-backlog", "tasks", 1);
    for (int i = 0; i < 75 && p0 + p1 != N; i++) {
        RUN_UNTIL(fx, false, 200);
        p0 = committed(fx, "g-backlog", "tasks", 0);
        p1 = committed(fx, "g-backlog", "tasks", 1);
    }
    CHECK_INT_EQ(p0 + p1, N);
    fx_finish(fx);
    free(fx);
}

/* The DLQ produce fails (the broker rejects it) twice: retried, the original
 * is committed only after the copy is acknowledged, and the copy lands once. */
static void test_dlq_produce_retried(void)
{
    fixture_t fx;
    fx_init_mock(&fx, NULL, true);
    produce(&fx, "tasks", "k1", "drop-1");
    produce(&fx, "tasks", "k1", "after");
    /* The next two Produce requests (ApiKey 0) fail: the DLQ copy's. */
    rd_kafka_mock_push_request_errors(fx.mock, 0, 2, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    fx_consumer(&fx, "g-dlqfail", tasks_only, 3, MODE_SYNC);
    RUN_UNTIL(&fx, fx.n_calls >= 1, 30000);
    CHECK_INT_EQ(fx.n_calls, 1);
    RUN_UNTIL(&fx, fx.n_calls >= 2, 30000);
    CHECK_INT_EQ(fx.n_calls, 2);
    CHECK_STR_EQ(fx.calls[1], "after");
    CHECK(metrics_have(&fx, "todo_consumer_dead_lettered_total 1"));
    CHECK_INT_EQ(wait_committed(&fx, "g-dlqfail", "tasks", 0, 2), 2);
    reader_t r;
    read_topic(&fx, &r, NULL, "tasks-dlq", 1, 1, 500);
    CHECK_INT_EQ(r.n, 1);
    CHECK(bytes_are(r.m[0]->payload, r.m[0]->len, "drop-1"));
    CHECK(header_is(r.m[0], "dlq-attempts", "1"));
    reader_close(&r);
    fx_finish(&fx);
}

static void test_metrics_format(void)
{
    fixture_t fx;
    fx_init(&fx, "tasks:1,tasks-dlq:1");
    fx_consumer(&fx, "g-metrics", tasks_only, 3, MODE_SYNC);
    buf_t b;
    buf_init(&b, 64 * 1024);
    CHECK_INT_EQ(events_consumer_collect_metrics(&b, fx.c), 0);
    const char *s = buf_cstr(&b);
    CHECK(s != NULL);
    CHECK(strstr(s, "# TYPE todo_consumer_records_total counter\n") != NULL);
    CHECK(strstr(s, "\ntodo_consumer_records_total{verdict=\"success\"} 0\n") != NULL);
    CHECK(strstr(s, "\ntodo_consumer_records_total{verdict=\"retry\"} 0\n") != NULL);
    CHECK(strstr(s, "\ntodo_consumer_records_total{verdict=\"drop\"} 0\n") != NULL);
    CHECK(strstr(s, "# TYPE todo_consumer_retries_total counter\n") != NULL);
    CHECK(strstr(s, "# TYPE todo_consumer_dead_lettered_total counter\n") != NULL);
    CHECK(strstr(s, "# TYPE todo_consumer_lag gauge\n") != NULL);
    CHECK(strstr(s, "\ntodo_consumer_lag 0\n") != NULL);
    buf_free(&b);
    buf_t tiny;
    buf_init(&tiny, 16);
    CHECK(events_consumer_collect_metrics(&tiny, fx.c) != 0); /* bound too small */
    buf_free(&tiny);
    fx_finish(&fx);
}

static void test_bad_config(void)
{
    uv_loop_t loop;
    CHECK_INT_EQ(uv_loop_init(&loop), 0);
    const char *const none[] = {NULL};
    const char *const empty_name[] = {"", NULL};
    struct {
        const char *brokers, *group;
        const char *const *topics;
        const char *dlq;
        int max_attempts;
        bool handler;
        const char *security;
    } cases[] = {
        {"", "g", tasks_only, "dlq", 3, true, NULL},
        {NULL, "g", tasks_only, "dlq", 3, true, NULL},
        {"embedded", "g", tasks_only, "dlq", 3, true, NULL},
        {"127.0.0.1:9", "", tasks_only, "dlq", 3, true, NULL},
        {"127.0.0.1:9", "g", NULL, "dlq", 3, true, NULL},
        {"127.0.0.1:9", "g", none, "dlq", 3, true, NULL},
        {"127.0.0.1:9", "g", empty_name, "dlq", 3, true, NULL},
        {"127.0.0.1:9", "g", tasks_only, "", 3, true, NULL},
        {"127.0.0.1:9", "g", tasks_only, "dlq", 0, true, NULL},
        {"127.0.0.1:9", "g", tasks_only, "dlq", 3, false, NULL},
        {"127.0.0.1:9", "g", tasks_only, "dlq", 3, true, "carrier-pigeon"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        events_consumer_config_t cfg = {
            .brokers = cases[i].brokers,
            .group_id = cases[i].group,
            .topics = cases[i].topics,
            .dlq_topic = cases[i].dlq,
            .max_attempts = cases[i].max_attempts,
            .security_protocol = cases[i].security,
            .handle = cases[i].handler ? handle : NULL,
        };
        char err[256] = "";
        events_consumer_t *c = events_consumer_new(&loop, &cfg, err, sizeof err);
        if (c)
            unit__diag("#   case %zu accepted\n", i);
        CHECK(c == NULL);
        CHECK(err[0] != '\0');
        printf("# %s\n", err);
    }
    CHECK_INT_EQ(uv_loop_close(&loop), 0); /* nothing was left on the loop */
}

int main(int argc, char **argv)
{
    /* TEST_LOG_LEVEL=debug shows the consumer's own lines. */
    const char *level = getenv("TEST_LOG_LEVEL");
    int l = level ? log_level_parse(level) : -1;
    log_setup(l >= 0 ? (log_level_t)l : LOG_WARN, LOG_FORMAT_TEXT, 2);
    static const unit_test_t tests[] = {
        UNIT_TEST(test_order_and_commit),
        UNIT_TEST(test_drop_dead_letters),
        UNIT_TEST(test_retries),
        UNIT_TEST(test_close_waits_for_in_flight),
        UNIT_TEST(test_close_deadline_gives_up),
        UNIT_TEST(test_backlog_paused_and_resumed),
        UNIT_TEST(test_dlq_produce_retried),
        UNIT_TEST(test_metrics_format),
        UNIT_TEST(test_bad_config),
    };
    int rc = unit_run(tests, sizeof tests / sizeof tests[0], argc, argv);
    log_flush();
    return rc;
}
