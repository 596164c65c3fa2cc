/* Unit tests for events/producer against librdkafka's mock cluster: delivery
 * and what lands on the topic (key, value, header, per-key order), a broker
 * outage, the bounded queue, fatal-error recovery, close with undeliverable
 * messages, bad configuration and metrics.
 *
 * Each test runs its own uv loop until a condition or a deadline timer, so
 * none can hang. Tests that need to stop the broker own their mock cluster
 * (its own rd_kafka_t); the others use the producer's "embedded" mode. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "core/buf.h"
#include "core/log.h"
#include "events/producer.h"
#include "unit.h"

#define TOPIC "events"
#define MAX_SEQ 512

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t deadline;
    bool timed_out;
    events_producer_t *p;
    int reports, delivered, failed;
    int seen[MAX_SEQ];
    int failed_while_recreating;
    int sends_refused_while_recreating;
    int resets;
    int reports_at_reset;
    bool closed;
    rd_kafka_t *mock_rk; /* the test's own mock cluster, when it needs one */
    rd_kafka_mock_cluster_t *mock;
} fixture_t;

static void on_delivery(void *ctx, int64_t seq, bool delivered, const char *error)
{
    fixture_t *fx = ctx;
    fx->reports++;
    if (seq >= 0 && seq < MAX_SEQ)
        fx->seen[seq]++;
    if (delivered) {
        fx->delivered++;
        return;
    }
    fx->failed++;
    if (strcmp(events_producer_state(fx->p), "recreating") == 0) {
        fx->failed_while_recreating++;
        /* Sending from a report is allowed; during recovery it is refused. */
        if (events_producer_send(fx->p, TOPIC, "k", 1, "v", 1, MAX_SEQ - 1) == EVENTS_SEND_ERROR)
            fx->sends_refused_while_recreating++;
    }
}

static void on_reset(void *ctx)
{
    fixture_t *fx = ctx;
    fx->resets++;
    fx->reports_at_reset = fx->reports;
}

static void on_closed(void *arg)
{
    ((fixture_t *)arg)->closed = true;
}

static void on_deadline(uv_timer_t *t)
{
    ((fixture_t *)t->data)->timed_out = true;
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

static void fx_init(fixture_t *fx)
{
    memset(fx, 0, sizeof *fx);
    CHECK_INT_EQ(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->deadline);
    fx->deadline.data = fx;
}

/* A one-broker mock cluster of the test's own, with TOPIC on it. */
static const char *fx_mock(fixture_t *fx, int partitions)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, NULL); /* quiet: the mock logs from its thread */
    fx->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    CHECK(fx->mock_rk != NULL);
    fx->mock = rd_kafka_mock_cluster_new(fx->mock_rk, 1);
    CHECK(fx->mock != NULL);
    CHECK_INT_EQ(rd_kafka_mock_topic_create(fx->mock, TOPIC, partitions, 1), 0);
    return rd_kafka_mock_cluster_bootstraps(fx->mock);
}

static void fx_producer(fixture_t *fx, const char *brokers, int queue_max, const char *topics)
{
    events_producer_config_t cfg = {
        .brokers = brokers,
        .queue_max_messages = queue_max,
        .queue_max_kbytes = 1024,
        .on_delivery = on_delivery,
        .on_reset = on_reset,
        .ctx = fx,
    };
    char err[256] = "";
    fx->p = events_producer_new(&fx->loop, &cfg, topics, err, sizeof err);
    if (!fx->p)
        unit__diag("#   err: %s\n", err);
    CHECK(fx->p != NULL);
}

static bool state_is(fixture_t *fx, const char *s)
{
    return strcmp(events_producer_state(fx->p), s) == 0;
}

/* Closes the producer, then everything else; the loop must close cleanly. */
static void fx_finish(fixture_t *fx, int deadline_ms)
{
    if (fx->p) {
        events_producer_close(fx->p, deadline_ms, on_closed, fx);
        RUN_UNTIL(fx, fx->closed, 10000);
        CHECK(fx->closed);
        events_producer_free(fx->p);
        fx->p = NULL;
    }
    uv_close((uv_handle_t *)&fx->deadline, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    CHECK_INT_EQ(uv_loop_close(&fx->loop), 0);
    if (fx->mock)
        rd_kafka_mock_cluster_destroy(fx->mock);
    if (fx->mock_rk)
        rd_kafka_destroy(fx->mock_rk);
    fx->mock = NULL;
    fx->mock_rk = NULL;
}

static events_send_t send_seq(fixture_t *fx, int seq)
{
    char key[32], value[64];
    int kn = snprintf(key, sizeof key, "task-%d", seq % 7);
    int vn = snprintf(value, sizeof value, "{\"seq\":%d,\"key\":%d}", seq, seq % 7);
    return events_producer_send(fx->p, TOPIC, key, (size_t)kn, value, (size_t)vn, seq);
}

static void send_all_ok(fixture_t *fx, int from, int to)
{
    for (int i = from; i < to; i++)
        CHECK_INT_EQ(send_seq(fx, i), EVENTS_SEND_OK);
}

/* 100 keyed messages, delivered once each, read back with a plain consumer. */
static void deliver_100(fixture_t *fx)
{
    fx_init(fx);
    fx_producer(fx, "embedded", 1000, TOPIC ":4,other:1");
    CHECK(strncmp(events_producer_bootstraps(fx->p), "embedded", 8) != 0);
    send_all_ok(fx, 1, 101);
    RUN_UNTIL(fx, fx->reports == 100, 10000);
    CHECK_INT_EQ(fx->reports, 100);
    CHECK_INT_EQ(fx->delivered, 100);
    for (int i = 1; i <= 100; i++)
        CHECK_INT_EQ(fx->seen[i], 1);
    RUN_UNTIL(fx, state_is(fx, "up"), 5000);
    CHECK_STR_EQ(events_producer_state(fx->p), "up");
    CHECK_INT_EQ(events_producer_queue_len(fx->p), 0);
}

static void test_deliver_and_consume(void)
{
    fixture_t fx;
    deliver_100(&fx);

    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    CHECK_INT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", events_producer_bootstraps(fx.p),
                                   err, sizeof err), RD_KAFKA_CONF_OK);
    CHECK_INT_EQ(rd_kafka_conf_set(conf, "group.id", "test", err, sizeof err), RD_KAFKA_CONF_OK);
    CHECK_INT_EQ(rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err),
                 RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_log_cb(conf, NULL);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    CHECK(c != NULL);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(4);
    for (int i = 0; i < 4; i++)
        rd_kafka_topic_partition_list_add(parts, TOPIC, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    CHECK_INT_EQ(rd_kafka_assign(c, parts), 0);
    rd_kafka_topic_partition_list_destroy(parts);

    int got = 0, bad = 0;
    int partition_of[7], last_seq[7];
    for (int k = 0; k < 7; k++)
        partition_of[k] = last_seq[k] = -1;
    uint64_t give_up = uv_hrtime() + 15ull * 1000000000;
    while (got < 100 && uv_hrtime() < give_up) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        got++;
        int seq = -1, key = -1, kk = -1;
        char text[128];
        size_t n = m->len < sizeof text - 1 ? m->len : sizeof text - 1;
        memcpy(text, m->payload, n);
        text[n] = '\0';
        char keytext[32];
        size_t kn = m->key_len < sizeof keytext - 1 ? m->key_len : sizeof keytext - 1;
        memcpy(keytext, m->key, kn);
        keytext[kn] = '\0';
        const void *hv = NULL;
        size_t hlen = 0;
        rd_kafka_headers_t *hdrs = NULL;
        if (sscanf(text, "{\"seq\":%d,\"key\":%d}", &seq, &key) != 2 ||
            sscanf(keytext, "task-%d", &kk) != 1 || kk != key || key < 0 || key > 6 ||
            rd_kafka_message_headers(m, &hdrs) != 0 ||
            rd_kafka_header_get_last(hdrs, "content-type", &hv, &hlen) != 0 ||
            hlen != strlen("application/cloudevents+json") ||
            memcmp(hv, "application/cloudevents+json", hlen) != 0) {
            bad++;
        } else {
            /* One partition per key, and the key's messages in send order. */
            if (partition_of[key] == -1)
                partition_of[key] = m->partition;
            if (partition_of[key] != m->partition || seq <= last_seq[key])
                bad++;
            last_seq[key] = seq;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    CHECK_INT_EQ(got, 100);
    CHECK_INT_EQ(bad, 0);
    fx_finish(&fx, 1000);
}

static void test_metrics(void)
{
    fixture_t fx;
    deliver_100(&fx);
    buf_t b;
    buf_init(&b, 64 * 1024);
    CHECK_INT_EQ(events_producer_collect_metrics(&b, fx.p), 0);
    const char *s = buf_cstr(&b);
    CHECK(s != NULL);
    CHECK(strstr(s, "# TYPE todo_events_delivered_total counter\n") != NULL);
    CHECK(strstr(s, "\ntodo_events_delivered_total 100\n") != NULL);
    CHECK(strstr(s, "\ntodo_events_failed_total 0\n") != NULL);
    CHECK(strstr(s, "\ntodo_events_producer_resets_total 0\n") != NULL);
    CHECK(strstr(s, "# TYPE todo_events_queue_messages gauge\n") != NULL);
    CHECK(strstr(s, "\ntodo_events_queue_messages 0\n") != NULL);
    CHECK(strstr(s, "# TYPE todo_events_broker_up gauge\n") != NULL);
    CHECK(strstr(s, "\ntodo_events_broker_up 1\n") != NULL);
    buf_free(&b);
    fx_finish(&fx, 1000);
}

/* Messages wait out an outage (infinite message timeout) and go when the
 * broker is back. */
static void test_broker_down_then_up(void)
{
    fixture_t fx;
    fx_init(&fx);
    fx_producer(&fx, fx_mock(&fx, 2), 1000, NULL);
    send_all_ok(&fx, 1, 6);
    RUN_UNTIL(&fx, fx.delivered == 5 && state_is(&fx, "up"), 10000);
    CHECK_INT_EQ(fx.delivered, 5);
    CHECK_STR_EQ(events_producer_state(fx.p), "up");

    CHECK_INT_EQ(rd_kafka_mock_broker_set_down(fx.mock, 1), 0);
    send_all_ok(&fx, 6, 26);
    RUN_UNTIL(&fx, false, 1500);
    RUN_UNTIL(&fx, state_is(&fx, "down"), 5000);
    CHECK_STR_EQ(events_producer_state(fx.p), "down");
    CHECK_INT_EQ(fx.reports, 5);
    CHECK(events_producer_queue_len(fx.p) >= 20);

    CHECK_INT_EQ(rd_kafka_mock_broker_set_up(fx.mock, 1), 0);
    RUN_UNTIL(&fx, fx.reports == 25 && state_is(&fx, "up"), 30000);
    CHECK_INT_EQ(fx.reports, 25);
    CHECK_INT_EQ(fx.delivered, 25);
    CHECK_INT_EQ(fx.resets, 0);
    for (int i = 1; i <= 25; i++)
        CHECK_INT_EQ(fx.seen[i], 1);
    CHECK_STR_EQ(events_producer_state(fx.p), "up");
    fx_finish(&fx, 1000);
}

/* The local queue is the bound: FULL, not an unbounded backlog. */
static void test_queue_full(void)
{
    fixture_t fx;
    fx_init(&fx);
    fx_producer(&fx, fx_mock(&fx, 2), 10, NULL);
    CHECK_INT_EQ(send_seq(&fx, 1), EVENTS_SEND_OK);
    RUN_UNTIL(&fx, fx.delivered == 1, 10000);
    CHECK_INT_EQ(fx.delivered, 1);

    CHECK_INT_EQ(rd_kafka_mock_broker_set_down(fx.mock, 1), 0);
    send_all_ok(&fx, 2, 12);
    CHECK_INT_EQ(send_seq(&fx, 12), EVENTS_SEND_FULL);
    RUN_UNTIL(&fx, false, 500);
    CHECK_INT_EQ(send_seq(&fx, 12), EVENTS_SEND_FULL);
    CHECK_INT_EQ(fx.reports, 1);

    CHECK_INT_EQ(rd_kafka_mock_broker_set_up(fx.mock, 1), 0);
    RUN_UNTIL(&fx, fx.reports == 11, 30000);
    CHECK_INT_EQ(fx.delivered, 11);
    CHECK_INT_EQ(send_seq(&fx, 12), EVENTS_SEND_OK);
    RUN_UNTIL(&fx, fx.reports == 12, 10000);
    CHECK_INT_EQ(fx.delivered, 12);
    for (int i = 1; i <= 12; i++)
        CHECK_INT_EQ(fx.seen[i], 1);
    fx_finish(&fx, 1000);
}

/* A fatal error: what the dead instance held is reported failed, then
 * on_reset, then a new instance delivers again. */
static void test_fatal_error_recreates(void)
{
    fixture_t fx;
    fx_init(&fx);
    fx_producer(&fx, fx_mock(&fx, 2), 1000, NULL);
    send_all_ok(&fx, 1, 4);
    RUN_UNTIL(&fx, fx.delivered == 3, 10000);
    CHECK_INT_EQ(fx.delivered, 3);

    /* Messages stuck behind an outage when the error strikes. */
    CHECK_INT_EQ(rd_kafka_mock_broker_set_down(fx.mock, 1), 0);
    send_all_ok(&fx, 4, 9);
    CHECK_INT_EQ(events_producer_test_fatal(fx.p), 0);
    RUN_UNTIL(&fx, fx.resets > 0, 10000);
    CHECK_INT_EQ(fx.resets, 1);
    CHECK_INT_EQ(fx.reports, 8);
    CHECK_INT_EQ(fx.reports_at_reset, 8); /* every report came before the reset */
    CHECK_INT_EQ(fx.failed, 5);
    CHECK_INT_EQ(fx.failed_while_recreating, 5);
    CHECK_INT_EQ(fx.sends_refused_while_recreating, 5);
    for (int i = 4; i <= 8; i++)
        CHECK_INT_EQ(fx.seen[i], 1);
    CHECK(!state_is(&fx, "recreating"));

    CHECK_INT_EQ(rd_kafka_mock_broker_set_up(fx.mock, 1), 0);
    send_all_ok(&fx, 9, 14);
    RUN_UNTIL(&fx, fx.reports == 13, 30000);
    CHECK_INT_EQ(fx.delivered, 8);
    CHECK_INT_EQ(fx.resets, 1);

    buf_t b;
    buf_init(&b, 64 * 1024);
    CHECK_INT_EQ(events_producer_collect_metrics(&b, fx.p), 0);
    CHECK(strstr(buf_cstr(&b), "\ntodo_events_producer_resets_total 1\n") != NULL);
    CHECK(strstr(buf_cstr(&b), "\ntodo_events_failed_total 5\n") != NULL);
    buf_free(&b);
    fx_finish(&fx, 1000);
}

/* Close never waits for the broker past its deadline; what is left is
 * reported failed, and the loop closes. */
static void test_close_with_broker_down(void)
{
    fixture_t fx;
    fx_init(&fx);
    fx_producer(&fx, fx_mock(&fx, 2), 1000, NULL);
    send_all_ok(&fx, 1, 2);
    RUN_UNTIL(&fx, fx.delivered == 1, 10000);
    CHECK_INT_EQ(fx.delivered, 1);
    CHECK_INT_EQ(rd_kafka_mock_broker_set_down(fx.mock, 1), 0);
    send_all_ok(&fx, 2, 12);

    uint64_t t0 = uv_hrtime();
    events_producer_close(fx.p, 500, on_closed, &fx);
    CHECK_INT_EQ(events_producer_send(fx.p, TOPIC, "k", 1, "v", 1, 99), EVENTS_SEND_ERROR);
    RUN_UNTIL(&fx, fx.closed, 10000);
    CHECK(fx.closed);
    printf("# close took %.0f ms (deadline 500 ms)\n", (double)(uv_hrtime() - t0) / 1e6);
    CHECK_INT_EQ(fx.reports, 11);
    CHECK_INT_EQ(fx.failed, 10);
    for (int i = 2; i <= 11; i++)
        CHECK_INT_EQ(fx.seen[i], 1);
    fx_finish(&fx, 0);
}

static void test_bad_config(void)
{
    uv_loop_t loop;
    CHECK_INT_EQ(uv_loop_init(&loop), 0);
    fixture_t fx;
    memset(&fx, 0, sizeof fx);
    struct {
        const char *brokers;
        int queue_max;
        const char *topics;
    } cases[] = {
        {"", 100, NULL},
        {NULL, 100, NULL},
        {"127.0.0.1:9092", 0, NULL},
        {"127.0.0.1:9092", -5, NULL},
        {"embedded", 100, "events"},
        {"embedded", 100, "events:0"},
        {"embedded", 100, ":3"},
        {"embedded", 100, "events:3,"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        events_producer_config_t cfg = {
            .brokers = cases[i].brokers,
            .queue_max_messages = cases[i].queue_max,
            .queue_max_kbytes = 1024,
            .on_delivery = on_delivery,
            .ctx = &fx,
        };
        char err[256] = "";
        events_producer_t *p = events_producer_new(&loop, &cfg, cases[i].topics, err, sizeof err);
        if (p)
            unit__diag("#   case %zu accepted\n", i);
        CHECK(p == NULL);
        CHECK(err[0] != '\0');
        printf("# %s\n", err);
    }
    events_producer_config_t cfg = {.brokers = "x:1", .queue_max_messages = 1,
                                    .queue_max_kbytes = 1};
    char err[256] = "";
    CHECK(events_producer_new(&loop, &cfg, NULL, err, sizeof err) == NULL); /* no on_delivery */
    CHECK(err[0] != '\0');
    CHECK_INT_EQ(uv_loop_close(&loop), 0); /* nothing was left on the loop */
}

int main(int argc, char **argv)
{
    log_setup(LOG_WARN, LOG_FORMAT_TEXT, 2);
    static const unit_test_t tests[] = {
        UNIT_TEST(test_deliver_and_consume),
        UNIT_TEST(test_broker_down_then_up),
        UNIT_TEST(test_queue_full),
        UNIT_TEST(test_fatal_error_recreates),
        UNIT_TEST(test_close_with_broker_down),
        UNIT_TEST(test_bad_config),
        UNIT_TEST(test_metrics),
    };
    int rc = unit_run(tests, sizeof tests / sizeof tests[0], argc, argv);
    log_flush();
    return rc;
}
