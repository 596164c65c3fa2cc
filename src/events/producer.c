/* events/producer: librdkafka's idempotent producer on the libuv loop. */
#include "events/producer.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "events/kafka.h"
#include "ops/metrics.h"

/* seq travels in the message's opaque pointer. */
_Static_assert(sizeof(intptr_t) >= sizeof(int64_t), "seq must fit in a pointer");

#define SAFETY_POLL_MS 100
/* rd_kafka_poll calls per wake-up; the timer picks up anything left. */
#define POLLS_PER_WAKEUP 10
/* How long purged messages may take to come back as failed reports (fatal
 * recovery, close) before the instance is destroyed anyway. */
#define PURGE_GRACE_MS 2000

typedef enum brokers_state { BROKERS_STARTING, BROKERS_UP, BROKERS_DOWN } brokers_state_t;

struct events_producer {
    uv_loop_t *loop;
    events_producer_config_t cfg;
    char *brokers; /* owned: the configured list or the mock cluster's */
    rd_kafka_t *rk;
    rd_kafka_t *mock_rk; /* owns the embedded mock cluster, never produces */
    rd_kafka_mock_cluster_t *mock;
    int pipe_rfd, pipe_wfd;
    uv_poll_t poll;
    uv_timer_t timer;
    int open_handles;

    brokers_state_t brokers_state;
    /* Fatal error seen: sends are refused until the new instance exists. */
    bool recreating;
    bool recreate_purged;
    uint64_t recreate_deadline;

    bool closing;
    bool close_purged;
    uint64_t close_deadline;
    void (*close_cb)(void *arg);
    void *close_arg;

    uint64_t delivered, failed, resets;
    events_kafka_errlog_t errlog;
};

static void set_brokers_state(events_producer_t *p, brokers_state_t s)
{
    if (s == p->brokers_state)
        return;
    if (s == BROKERS_UP)
        log_info("kafka brokers up");
    else if (s == BROKERS_DOWN)
        log_warn("kafka brokers down");
    p->brokers_state = s;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    events_producer_t *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof why);
        if (orig == RD_KAFKA_RESP_ERR_NO_ERROR)
            return;
        log_error("kafka producer fatal error, recreating",
                  LOG_STR("error", rd_kafka_err2name(orig)), LOG_STR("reason", why));
        /* Refuse sends from now on; the purge and destroy happen in service(),
         * outside librdkafka's callback. */
        p->recreating = true;
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        set_brokers_state(p, BROKERS_DOWN);
    events_kafka_log_error(&p->errlog, uv_now(p->loop), "kafka error", err, reason);
}

/* "up" iff a real broker (node id >= 0) is UP: the bootstrap entries and the
 * internal pseudo-broker have node id -1 (the internal one is always "UP").
 * Anything unparsable is ignored. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    events_producer_t *p = opaque;
    json_t *root = json_loadb(json, len, 0, NULL);
    int up = events_kafka_stats_brokers_up(root);
    if (up >= 0 && !p->recreating)
        set_brokers_state(p, up ? BROKERS_UP : BROKERS_DOWN);
    json_decref(root);
    return 0; /* librdkafka frees json */
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    events_producer_t *p = opaque;
    int64_t seq = (int64_t)(intptr_t)m->_private;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        p->delivered++;
        p->cfg.on_delivery(p->cfg.ctx, seq, true, NULL);
    } else {
        p->failed++;
        p->cfg.on_delivery(p->cfg.ctx, seq, false, rd_kafka_err2str(m->err));
    }
}

#define WHO "kafka producer"

/* log.queue: librdkafka's log lines go to a queue we poll instead of being
 * written from its threads. */
static rd_kafka_conf_t *base_conf(events_producer_t *p, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_log_cb(conf, events_kafka_on_log);
    if (events_kafka_conf_set(conf, WHO, "log.queue", "true", err, errlen) ||
        events_kafka_conf_set(conf, WHO, "client.id", "todo-backend", err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

/* Wires a new instance to the loop: its logs and every callback come through
 * the main queue, which writes a byte to our pipe when it gets work. */
static int attach(rd_kafka_t *rk, int wfd, char *err, size_t errlen)
{
    rd_kafka_resp_err_t e = rd_kafka_set_log_queue(rk, NULL);
    if (e) {
        snprintf(err, errlen, "kafka log queue: %s", rd_kafka_err2str(e));
        return -1;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_get_main(rk);
    rd_kafka_queue_io_event_enable(q, wfd, "1", 1);
    rd_kafka_queue_destroy(q); /* our reference only; the queue lives on */
    return 0;
}

static rd_kafka_t *create_producer(events_producer_t *p, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = base_conf(p, err, errlen);
    if (!conf)
        return NULL;
    char maxmsgs[16], maxkb[16];
    snprintf(maxmsgs, sizeof maxmsgs, "%d", p->cfg.queue_max_messages);
    snprintf(maxkb, sizeof maxkb, "%d", p->cfg.queue_max_kbytes);
    /* Idempotence implies acks=all, retries forever and at most 5 in flight
     * without reordering. murmur2_random is the Java client's partitioner, so
     * every client agrees on key -> partition. */
    const char *const settings[][2] = {
        {"bootstrap.servers", p->brokers},
        {"enable.idempotence", "true"},
        {"message.timeout.ms", "0"},
        {"queue.buffering.max.messages", maxmsgs},
        {"queue.buffering.max.kbytes", maxkb},
        {"linger.ms", "5"},
        {"partitioner", "murmur2_random"},
        {"statistics.interval.ms", "1000"},
    };
    events_kafka_auth_t auth = {p->cfg.security_protocol, p->cfg.sasl_mechanism,
                                p->cfg.sasl_username, p->cfg.sasl_password};
    if (events_kafka_conf_all(conf, WHO, settings, sizeof settings / sizeof settings[0], err,
                              errlen) ||
        events_kafka_conf_auth(conf, WHO, &auth, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    /* lz4 is built into Debian's librdkafka 2.0.2; another build may lack it. */
    char ignored[256];
    if (rd_kafka_conf_set(conf, "compression.type", "lz4", ignored, sizeof ignored) !=
        RD_KAFKA_CONF_OK)
        (void)rd_kafka_conf_set(conf, "compression.type", "none", ignored, sizeof ignored);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_stats_cb(conf, on_stats);

    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!rk) {
        snprintf(err, errlen, "kafka producer: %s", why);
        rd_kafka_conf_destroy(conf); /* rd_kafka_new owns it only on success */
        return NULL;
    }
    if (attach(rk, p->pipe_wfd, err, errlen)) {
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

/* "name:partitions,..." onto the mock cluster. */
static int create_topics(rd_kafka_mock_cluster_t *mock, const char *spec, char *err,
                         size_t errlen)
{
    if (!spec || !*spec)
        return 0;
    for (const char *s = spec;;) {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        char item[256];
        if (n == 0 || n >= sizeof item) {
            snprintf(err, errlen, "embedded topics: bad entry in \"%s\"", spec);
            return -1;
        }
        memcpy(item, s, n);
        item[n] = '\0';
        char *colon = strchr(item, ':');
        char *tail = NULL;
        long parts = colon ? strtol(colon + 1, &tail, 10) : 0;
        if (!colon || colon == item || tail == colon + 1 || *tail || parts < 1 || parts > 1000) {
            snprintf(err, errlen, "embedded topics: \"%s\" is not name:partitions", item);
            return -1;
        }
        *colon = '\0';
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mock, item, (int)parts, 1);
        if (e) {
            snprintf(err, errlen, "embedded topic %s: %s", item, rd_kafka_err2str(e));
            return -1;
        }
        if (!end)
            return 0;
        s = end + 1;
    }
}

/* The mock cluster hangs off its own instance so that it outlives producer
 * recreation. */
static int start_mock(events_producer_t *p, const char *topics, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = base_conf(p, err, errlen);
    if (!conf)
        return -1;
    char why[512];
    /* This instance never connects anywhere: its warning that no
     * bootstrap.servers is set would only mislead. */
    if (rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka mock client: %s", why);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    p->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!p->mock_rk) {
        snprintf(err, errlen, "kafka mock client: %s", why);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    if (attach(p->mock_rk, p->pipe_wfd, err, errlen))
        return -1;
    p->mock = rd_kafka_mock_cluster_new(p->mock_rk, 1);
    if (!p->mock) {
        snprintf(err, errlen, "kafka mock cluster: could not start");
        return -1;
    }
    if (create_topics(p->mock, topics, err, errlen))
        return -1;
    p->brokers = strdup(rd_kafka_mock_cluster_bootstraps(p->mock));
    if (!p->brokers) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static void destroy_instances(events_producer_t *p)
{
    if (p->rk)
        rd_kafka_destroy(p->rk);
    p->rk = NULL;
    if (p->mock)
        rd_kafka_mock_cluster_destroy(p->mock);
    p->mock = NULL;
    if (p->mock_rk)
        rd_kafka_destroy(p->mock_rk);
    p->mock_rk = NULL;
}

static void poll_instance(rd_kafka_t *rk)
{
    for (int i = 0; rk && i < POLLS_PER_WAKEUP; i++)
        if (rd_kafka_poll(rk, 0) == 0)
            break;
}

static void on_handle_closed(uv_handle_t *h)
{
    events_producer_t *p = h->data;
    if (--p->open_handles > 0)
        return;
    close(p->pipe_rfd);
    close(p->pipe_wfd);
    p->pipe_rfd = p->pipe_wfd = -1;
    if (p->close_cb)
        p->close_cb(p->close_arg);
}

/* Fatal-error recovery, one step per service(): purge, let the purged messages
 * come back as failed reports, then destroy and recreate. */
static void recreate_step(events_producer_t *p)
{
    uint64_t now = uv_now(p->loop);
    if (p->rk) {
        if (!p->recreate_purged) {
            rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT |
                                      RD_KAFKA_PURGE_F_NON_BLOCKING);
            p->recreate_purged = true;
            p->recreate_deadline = now + PURGE_GRACE_MS;
            return;
        }
        int left = rd_kafka_outq_len(p->rk);
        if (left > 0 && now < p->recreate_deadline)
            return;
        if (left > 0)
            log_warn("kafka producer destroyed with unreported messages", LOG_INT("count", left));
        rd_kafka_destroy(p->rk); /* after the purge: only joins its threads */
        p->rk = NULL;
    }
    char err[512];
    p->rk = create_producer(p, err, sizeof err);
    if (!p->rk) { /* retried on the next tick */
        events_kafka_log_error(&p->errlog, uv_now(p->loop), "kafka error", RD_KAFKA_RESP_ERR__FATAL, err);
        return;
    }
    p->recreating = false;
    p->recreate_purged = false;
    p->brokers_state = BROKERS_STARTING;
    p->resets++;
    log_warn("kafka producer recreated", LOG_INT("resets", (long long)p->resets));
    if (p->cfg.on_reset)
        p->cfg.on_reset(p->cfg.ctx);
}

/* Close, one step per service(): wait for reports until the deadline, then
 * purge and wait a little for those reports, then tear down. */
static void close_step(events_producer_t *p)
{
    uint64_t now = uv_now(p->loop);
    int left = p->rk ? rd_kafka_outq_len(p->rk) : 0;
    if (left > 0 && now < p->close_deadline)
        return;
    if (left > 0 && !p->close_purged) {
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT |
                                  RD_KAFKA_PURGE_F_NON_BLOCKING);
        p->close_purged = true;
        p->close_deadline = now + PURGE_GRACE_MS;
        return;
    }
    if (left > 0)
        log_warn("kafka producer closed with unreported messages", LOG_INT("count", left));
    destroy_instances(p);
    uv_poll_stop(&p->poll);
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->poll, on_handle_closed);
    uv_close((uv_handle_t *)&p->timer, on_handle_closed);
}

/* Everything librdkafka asked for, then the state machine steps that must run
 * outside its callbacks. */
static void service(events_producer_t *p)
{
    if (p->open_handles < 2)
        return; /* closed already */
    poll_instance(p->rk);
    poll_instance(p->mock_rk);
    if (p->closing)
        close_step(p);
    else if (p->recreating)
        recreate_step(p);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    events_producer_t *p = h->data;
    char drain[64];
    while (read(p->pipe_rfd, drain, sizeof drain) > 0) {
    }
    service(p);
}

static void on_tick(uv_timer_t *t)
{
    service(t->data);
}

events_producer_t *events_producer_new(uv_loop_t *loop, const events_producer_config_t *cfg,
                                       const char *embedded_topics, char *err, size_t errlen)
{
    if (!cfg->brokers || !*cfg->brokers) {
        snprintf(err, errlen, "kafka brokers: empty");
        return NULL;
    }
    if (cfg->queue_max_messages < 1 || cfg->queue_max_kbytes < 1) {
        snprintf(err, errlen, "kafka queue bounds must be at least 1");
        return NULL;
    }
    if (!cfg->on_delivery) {
        snprintf(err, errlen, "kafka producer: no delivery callback");
        return NULL;
    }
    events_producer_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->loop = loop;
    p->cfg = *cfg;
    p->cfg.brokers = NULL; /* p->brokers is the owned copy */
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        free(p);
        return NULL;
    }
    p->pipe_rfd = fds[0];
    p->pipe_wfd = fds[1];

    if (strcmp(cfg->brokers, "embedded") == 0) {
        if (start_mock(p, embedded_topics, err, errlen))
            goto fail;
    } else if (!(p->brokers = strdup(cfg->brokers))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!(p->rk = create_producer(p, err, errlen)))
        goto fail;
    int rc = uv_poll_init(loop, &p->poll, p->pipe_rfd);
    if (rc) {
        snprintf(err, errlen, "uv_poll_init: %s", uv_strerror(rc));
        goto fail;
    }
    uv_timer_init(loop, &p->timer);
    p->poll.data = p->timer.data = p;
    p->open_handles = 2;
    uv_poll_start(&p->poll, UV_READABLE, on_readable);
    uv_timer_start(&p->timer, on_tick, SAFETY_POLL_MS, SAFETY_POLL_MS);
    return p;

fail:
    destroy_instances(p);
    close(p->pipe_rfd);
    close(p->pipe_wfd);
    free(p->brokers);
    free(p);
    return NULL;
}

events_send_t events_producer_send(events_producer_t *p, const char *topic, const char *key,
                                   size_t key_len, const char *value, size_t value_len,
                                   int64_t seq)
{
    static const char content_type[] = "application/cloudevents+json";
    const events_header_t h = {"content-type", content_type, sizeof content_type - 1};
    return events_producer_send_with_headers(p, topic, key, key_len, value, value_len, &h, 1,
                                             seq);
}

events_send_t events_producer_send_with_headers(events_producer_t *p, const char *topic,
                                                const char *key, size_t key_len,
                                                const char *value, size_t value_len,
                                                const events_header_t *headers,
                                                size_t n_headers, int64_t seq)
{
    if (p->closing || p->recreating || !p->rk)
        return EVENTS_SEND_ERROR;
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(n_headers);
    for (size_t i = 0; i < n_headers; i++)
        rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value,
                            headers[i].value ? (ssize_t)headers[i].len : 0);
    /* The casts through uintptr_t drop const for librdkafka's void * slots:
     * RD_KAFKA_MSG_F_COPY means it only reads (and copies) them. On success
     * the record owns hdrs. */
    /* produceva rather than producev: the latter's macros are GNU statement
     * expressions, which -Wpedantic refuses under clang. */
    const rd_kafka_vu_t vus[] = {
        {.vtype = RD_KAFKA_VTYPE_TOPIC, .u.cstr = topic},
        {.vtype = RD_KAFKA_VTYPE_KEY, .u.mem = {(void *)(uintptr_t)key, key ? key_len : 0}},
        {.vtype = RD_KAFKA_VTYPE_VALUE,
         .u.mem = {(void *)(uintptr_t)value, value ? value_len : 0}},
        {.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY},
        {.vtype = RD_KAFKA_VTYPE_HEADERS, .u.headers = hdrs},
        {.vtype = RD_KAFKA_VTYPE_OPAQUE, .u.ptr = (void *)(intptr_t)seq},
    };
    rd_kafka_error_t *error = rd_kafka_produceva(p->rk, vus, sizeof vus / sizeof vus[0]);
    rd_kafka_resp_err_t e = error ? rd_kafka_error_code(error) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (error)
        rd_kafka_error_destroy(error);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_headers_destroy(hdrs);
    switch (e) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return EVENTS_SEND_OK;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        return EVENTS_SEND_FULL;
    case RD_KAFKA_RESP_ERR__FATAL:
        /* error_cb will say so on the next poll too; refuse sends now. */
        p->recreating = true;
        return EVENTS_SEND_ERROR;
    default:
        events_kafka_log_error(&p->errlog, uv_now(p->loop), "kafka error", e, "produce");
        return EVENTS_SEND_ERROR;
    }
}

const char *events_producer_bootstraps(const events_producer_t *p)
{
    return p->brokers;
}

const char *events_producer_state(const events_producer_t *p)
{
    if (p->recreating)
        return "recreating";
    switch (p->brokers_state) {
    case BROKERS_UP:
        return "up";
    case BROKERS_DOWN:
        return "down";
    case BROKERS_STARTING:
        break;
    }
    return "starting";
}

int events_producer_queue_len(const events_producer_t *p)
{
    return p->rk ? rd_kafka_outq_len(p->rk) : 0;
}

int events_producer_collect_metrics(buf_t *out, void *producer)
{
    const events_producer_t *p = producer;
    int rc = metrics_write_counter(out, "todo_events_delivered_total",
                                   "Events acknowledged by the Kafka brokers.",
                                   (double)p->delivered);
    rc = rc ? rc
            : metrics_write_counter(out, "todo_events_failed_total",
                                    "Events reported as not delivered (purged or rejected).",
                                    (double)p->failed);
    rc = rc ? rc
            : metrics_write_counter(out, "todo_events_producer_resets_total",
                                    "Kafka producer recreations after a fatal error.",
                                    (double)p->resets);
    rc = rc ? rc
            : metrics_write_gauge(out, "todo_events_queue_messages",
                                  "Events in the Kafka producer's local queue.",
                                  (double)events_producer_queue_len(p));
    rc = rc ? rc
            : metrics_write_gauge(out, "todo_events_broker_up",
                                  "1 when a Kafka broker is connected.",
                                  p->brokers_state == BROKERS_UP && !p->recreating ? 1 : 0);
    return rc;
}

void events_producer_close(events_producer_t *p, int deadline_ms, void (*cb)(void *arg), void *arg)
{
    if (p->closing)
        return;
    p->closing = true;
    p->close_cb = cb;
    p->close_arg = arg;
    p->close_deadline = uv_now(p->loop) + (uint64_t)(deadline_ms > 0 ? deadline_ms : 0);
    /* The next step runs from the timer, never from here: we may be inside a
     * librdkafka callback (on_delivery), where destroying is forbidden. */
    uv_timer_start(&p->timer, on_tick, 0, SAFETY_POLL_MS);
}

void events_producer_free(events_producer_t *p)
{
    if (!p)
        return;
    free(p->brokers);
    free(p);
}

int events_producer_test_fatal(events_producer_t *p)
{
    if (!p->rk)
        return -1;
    return rd_kafka_test_fatal_error(p->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                     "test") == RD_KAFKA_RESP_ERR_NO_ERROR
               ? 0
               : -1;
}
