/* todo-backend: process wiring, signals and ordered shutdown.
 *
 * One thread, one libuv loop. Start-up: configuration (exit 2 on a bad
 * value), routes, the listener. Shutdown on SIGTERM or SIGINT: readiness
 * fails, the server drains, then every remaining handle is closed through
 * its close callback and uv_loop_close() must return 0. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "api/access.h"
#include "api/dapr.h"
#include "api/tasks.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "crypto/jwt.h"
#include "db/db.h"
#include "db/migrations.h"
#include "db/queries.h"
#include "events/consumer.h"
#include "events/handler.h"
#include "events/outbox.h"
#include "events/reminders.h"
#include "http/router.h"
#include "http/server.h"
#include "ops/health.h"
#include "ops/metrics.h"
#include "version.h"

extern char **environ;

typedef struct app {
    uv_loop_t loop;
    config_t cfg;
    http_router_t *router;
    http_server_t *server;
    db_pool_t *db;
    tasks_api_t *tasks;
    events_outbox_t *outbox;
    events_reminders_t *reminders;
    events_handler_t *handler;
    events_consumer_t *consumer;
    api_dapr_t *dapr;
    uv_timer_t purge_timer;
    uv_signal_t sigterm, sigint;
    uv_prepare_t log_flusher;
    bool stopping;
    uint64_t stop_deadline; /* uv_now() by which shutdown should be over */
} app_t;

static void on_log_flush(uv_prepare_t *h)
{
    (void)h;
    log_flush();
}

static void close_app_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Last step of shutdown: the loop's own handles. */
static void on_db_closed(void *arg)
{
    app_t *app = arg;
    close_app_handle((uv_handle_t *)&app->sigterm);
    close_app_handle((uv_handle_t *)&app->sigint);
    close_app_handle((uv_handle_t *)&app->log_flusher);
    close_app_handle((uv_handle_t *)&app->purge_timer);
}

/* The outbox has delivered (or left in the table) what it held. */
static void on_outbox_closed(void *arg)
{
    app_t *app = arg;
    db_pool_close(app->db, on_db_closed, app);
}

/* Time the consumer's last record and the producer may take at shutdown:
 * what is left of SHUTDOWN_TIMEOUT_MS, less a margin for closing the rest.
 * Nothing is lost past it: an unfinished record is not committed (it comes
 * again), undelivered events stay in the outbox for the next start. */
#define SHUTDOWN_MARGIN_MS 500

static int shutdown_time_left(app_t *app)
{
    int64_t left = (int64_t)app->stop_deadline - (int64_t)uv_now(&app->loop) - SHUTDOWN_MARGIN_MS;
    return left > 0 ? (int)left : 0;
}

/* No record is being handled any more: the outbox can stop. */
static void on_consumer_closed(void *arg)
{
    app_t *app = arg;
    events_outbox_close(app->outbox, shutdown_time_left(app), on_outbox_closed, app);
}

/* The scheduler has stopped; its last claim's events are in the outbox.
 * The consumer goes next (its handler writes through the pool and the
 * outbox), then the outbox, then the pool. */
static void on_reminders_closed(void *arg)
{
    app_t *app = arg;
    if (app->consumer)
        events_consumer_close(app->consumer, shutdown_time_left(app), on_consumer_closed, app);
    else if (app->outbox)
        on_consumer_closed(app);
    else if (app->db)
        db_pool_close(app->db, on_db_closed, app);
    else
        on_db_closed(app);
}

/* Runs once the server has closed every connection and its own handles:
 * no request can need the database any more. */
static void on_server_drained(void *arg)
{
    app_t *app = arg;
    if (app->reminders)
        events_reminders_close(app->reminders, on_reminders_closed, app);
    else
        on_reminders_closed(app);
}

static void on_purge_timer(uv_timer_t *t)
{
    app_t *app = t->data;
    tasks_api_purge(app->tasks);
    events_handler_purge(app->handler);
}

static void on_signal(uv_signal_t *h, int signum)
{
    app_t *app = h->data;
    if (app->stopping) {
        log_warn("second signal: cutting open connections", LOG_INT("signal", signum));
    } else {
        log_info("shutting down", LOG_INT("signal", signum),
                 LOG_INT("deadline_ms", app->cfg.shutdown_timeout_ms));
        app->stopping = true;
        app->stop_deadline = uv_now(&app->loop) + (uint64_t)app->cfg.shutdown_timeout_ms;
    }
    http_server_drain(app->server, on_server_drained, app);
}

/* Lets MAX_CONNECTIONS be reached without EMFILE: each connection is one
 * descriptor, and the soft limit is often far below the hard one. */
static void raise_fd_limit(int want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t need = (rlim_t)want + 64;
    if (rl.rlim_cur < need) {
        rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("cannot raise the open-file limit", LOG_STR("error", strerror(errno)));
    }
    if (rl.rlim_cur < (rlim_t)want)
        log_warn("open-file limit is below MAX_CONNECTIONS", LOG_INT("limit", (long long)rl.rlim_cur),
                 LOG_INT("max_connections", want));
}

static void report_open_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    log_error("handle left open at exit", LOG_STR("type", uv_handle_type_name(h->type)),
              LOG_BOOL("closing", uv_is_closing(h)));
}

static int add_routes(app_t *app)
{
    const unsigned get = HTTP_METHOD_BIT(HTTP_METHOD_GET);
    if (http_router_add(app->router, get, "/healthz", health_handle_live, NULL) < 0 ||
        http_router_add(app->router, get, "/readyz", health_handle_ready, NULL) < 0 ||
        http_router_add(app->router, get, "/metrics", metrics_handle, app->router) < 0)
        return -1;
    /* The event routes first: /api/{user_id}/tasks would take
     * /api/events/tasks otherwise. */
    if (app->dapr && api_dapr_routes(app->dapr, app->router) < 0)
        return -1;
    if (app->tasks && tasks_api_routes(app->tasks, app->router) < 0)
        return -1;
    return 0;
}

/* The outbox's connection LISTENs for the reminders trigger; the
 * scheduler is made after the outbox (it hands its events there). */
static void on_reminders_notify(void *arg, const char *payload)
{
    app_t *app = arg;
    if (app->reminders)
        events_reminders_notified(app->reminders, payload);
}

/* The outbox relay and its producer, and the reminder scheduler; the pool
 * exists. */
static int start_events(app_t *app, const db_config_t *dc)
{
    const config_t *cfg = &app->cfg;
    events_outbox_config_t oc = {
        .brokers = cfg->kafka_brokers,
        .topics = {cfg->kafka_topic_tasks, cfg->kafka_topic_reminders},
        .dlq_topic = cfg->kafka_topic_dlq,
        .queue_max = cfg->kafka_queue_max,
        .security_protocol = config_kafka_protocol_name(cfg->kafka_security_protocol),
        .sasl_mechanism = config_kafka_mechanism_name(cfg->kafka_sasl_mechanism),
        .sasl_username = cfg->kafka_sasl_username,
        .sasl_password = cfg->kafka_sasl_password,
        .db = *dc,
    };
    oc.db.pool_size = 1;
    oc.db.queue_max = 16;
    oc.db.unlisted = true;
    oc.db.listen_channel = DB_REMINDERS_CHANNEL;
    oc.db.on_notify = on_reminders_notify;
    oc.db.notify_arg = app;
    char err[512];
    app->outbox = events_outbox_new(&app->loop, &oc, err, sizeof err);
    if (!app->outbox) {
        fprintf(stderr, "todo-backend: invalid KAFKA_BROKERS or Kafka settings: %s\n", err);
        return -1;
    }
    if (!cfg->kafka_brokers[0])
        log_warn("KAFKA_BROKERS is not set: events are written to the outbox but not published");
    else
        log_info("publishing events", LOG_STR("brokers", events_outbox_bootstraps(app->outbox)),
                 LOG_STR("topic", cfg->kafka_topic_tasks));
    health_add_info("kafka", events_outbox_kafka_state, app->outbox);
    if (metrics_add_collector(events_outbox_collect_metrics, app->outbox) != 0)
        log_warn("metrics collector table full: event metrics not exported");
    events_outbox_start(app->outbox);
    app->reminders = events_reminders_new(&app->loop, app->db, app->outbox,
                                          cfg->reminders_poll_ms);
    if (!app->reminders) {
        fprintf(stderr, "todo-backend: out of memory\n");
        return -1;
    }
    if (metrics_add_collector(events_reminders_collect_metrics, app->reminders) != 0)
        log_warn("metrics collector table full: reminder metrics not exported");
    events_reminders_start(app->reminders);
    return 0;
}

/* A consumed record on its way through the handler. */
typedef struct consumed {
    events_consumer_t *consumer;
    void *token;
    events_consumer_done_fn done;
} consumed_t;

static void on_record_handled(void *arg, events_verdict_t verdict, const char *reason)
{
    consumed_t *x = arg;
    x->done(x->consumer, x->token, (int)verdict, reason);
    free(x);
}

/* The built-in consumer hands records to the same handler as Dapr. */
static void on_record(void *ctx, const char *topic, const char *value, size_t len,
                      events_consumer_t *c, void *token, events_consumer_done_fn done)
{
    app_t *app = ctx;
    consumed_t *x = malloc(sizeof *x);
    if (!x) {
        done(c, token, EVENTS_RETRY, "out of memory");
        return;
    }
    *x = (consumed_t){c, token, done};
    events_stream_t stream = strcmp(topic, app->cfg.kafka_topic_reminders) == 0
                                 ? EVENTS_STREAM_REMINDERS
                                 : EVENTS_STREAM_TASKS;
    events_handle(app->handler, stream, value, len, on_record_handled, x);
}

static const char *consumer_state(void *arg)
{
    const char *state = events_consumer_state(arg);
    return strcmp(state, "consuming") == 0 ? NULL : state;
}

/* EVENTS_CONSUMER=kafka: the built-in consumer, group todo-backend. */
static int start_consumer(app_t *app)
{
    const config_t *cfg = &app->cfg;
    if (cfg->events_consumer != CONFIG_CONSUMER_KAFKA)
        return 0;
    if (!cfg->kafka_brokers[0]) {
        log_warn("EVENTS_CONSUMER=kafka without KAFKA_BROKERS: nothing is consumed");
        return 0;
    }
    const char *topics[] = {cfg->kafka_topic_tasks, cfg->kafka_topic_reminders, NULL};
    events_consumer_config_t cc = {
        .brokers = events_outbox_bootstraps(app->outbox),
        .group_id = "todo-backend",
        .topics = topics,
        .dlq_topic = cfg->kafka_topic_dlq,
        .max_attempts = cfg->events_max_attempts,
        .security_protocol = config_kafka_protocol_name(cfg->kafka_security_protocol),
        .sasl_mechanism = config_kafka_mechanism_name(cfg->kafka_sasl_mechanism),
        .sasl_username = cfg->kafka_sasl_username,
        .sasl_password = cfg->kafka_sasl_password,
        .handle = on_record,
        .ctx = app,
    };
    char err[512];
    app->consumer = events_consumer_new(&app->loop, &cc, err, sizeof err);
    if (!app->consumer) {
        fprintf(stderr, "todo-backend: cannot start the Kafka consumer: %s\n", err);
        return -1;
    }
    health_add_info("consumer", consumer_state, app->consumer);
    if (metrics_add_collector(events_consumer_collect_metrics, app->consumer) != 0)
        log_warn("metrics collector table full: consumer metrics not exported");
    return 0;
}

/* The pool, the outbox and the tasks API, when DATABASE_URL is set. */
static int start_database(app_t *app)
{
    if (!app->cfg.database_url[0]) {
        log_warn("DATABASE_URL is not set: the tasks API is disabled");
        return 0;
    }
    db_config_t dc = {
        .url = app->cfg.database_url,
        .pool_size = app->cfg.db_pool_size,
        .queue_max = app->cfg.db_queue_max,
        .queue_timeout_ms = app->cfg.db_queue_timeout_ms,
        .statement_timeout_ms = app->cfg.db_statement_timeout_ms,
        .connect_timeout_ms = app->cfg.db_connect_timeout_ms,
    };
    app->db = db_pool_new(&app->loop, &dc, db_statements, DB_STMT_COUNT, db_migrations,
                          db_n_migrations);
    if (!app->db) {
        fprintf(stderr, "todo-backend: out of memory\n");
        return -1;
    }
    health_add_check("database", db_pool_readiness, app->db);
    db_pool_start(app->db);
    if (start_events(app, &dc) != 0)
        return -1;
    app->tasks = tasks_api_new(app->db, app->outbox, app->reminders);
    app->handler = events_handler_new(app->db, app->outbox);
    const config_t *cfg = &app->cfg;
    api_dapr_config_t dapr = {
        .subscribe = cfg->events_consumer == CONFIG_CONSUMER_DAPR,
        .pubsub_name = cfg->dapr_pubsub_name,
        .topic_tasks = cfg->kafka_topic_tasks,
        .topic_reminders = cfg->kafka_topic_reminders,
        .topic_dlq = cfg->kafka_topic_dlq,
    };
    app->dapr = app->handler ? api_dapr_new(app->handler, &dapr) : NULL;
    if (!app->tasks || !app->dapr) {
        fprintf(stderr, "todo-backend: out of memory\n");
        return -1;
    }
    if (metrics_add_collector(events_handler_collect_metrics, app->handler) != 0)
        log_warn("metrics collector table full: handler metrics not exported");
    return start_consumer(app);
}

static jwt_keys_t jwt_keys_from(const config_t *cfg)
{
    return (jwt_keys_t){
        .secret = (const unsigned char *)cfg->auth_jwt_secret,
        .secret_len = strlen(cfg->auth_jwt_secret),
        .issuer = cfg->auth_jwt_issuer[0] ? cfg->auth_jwt_issuer : NULL,
        .audience = cfg->auth_jwt_audience[0] ? cfg->auth_jwt_audience : NULL,
        .leeway_s = cfg->auth_clock_skew_s,
    };
}

static int secret_check(const config_t *cfg)
{
    if (strlen(cfg->auth_jwt_secret) >= JWT_MIN_SECRET)
        return 0;
    fprintf(stderr,
            "todo-backend: AUTH_JWT_SECRET must be at least %d bytes (it signs user tokens; "
            "AUTH_DISABLED=1 turns authentication off for development)\n",
            JWT_MIN_SECRET);
    return 2;
}

/* "30s", "15m", "1h", "7d" -> seconds; -1 when malformed or over a year. */
static long parse_ttl(const char *s)
{
    char *end;
    long n = strtol(s, &end, 10);
    if (end == s || n <= 0 || end[0] == '\0' || end[1] != '\0')
        return -1;
    long unit = end[0] == 's' ? 1 : end[0] == 'm' ? 60 : end[0] == 'h' ? 3600 : end[0] == 'd' ? 86400 : 0;
    if (unit == 0 || n > 366L * 86400 / unit)
        return -1;
    return n * unit;
}

/* todo-backend token --user ID [--ttl 1h]: a token for people and scripts,
 * signed with the configured secret. */
static int run_token_command(int argc, char **argv)
{
    const char *user = NULL, *ttl_text = "1h";
    for (int i = 2; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (strcmp(argv[i], "--user") == 0 && has_value) {
            user = argv[++i];
        } else if (strncmp(argv[i], "--user=", 7) == 0) {
            user = argv[i] + 7;
        } else if (strcmp(argv[i], "--ttl") == 0 && has_value) {
            ttl_text = argv[++i];
        } else if (strncmp(argv[i], "--ttl=", 6) == 0) {
            ttl_text = argv[i] + 6;
        } else {
            fprintf(stderr, "usage: todo-backend token --user ID [--ttl 30s|15m|1h|7d]\n");
            return 2;
        }
    }
    long ttl = parse_ttl(ttl_text);
    if (!user || !*user || strlen(user) > JWT_MAX_SUBJECT || ttl < 0) {
        fprintf(stderr, "todo-backend: token needs --user (1-%d bytes) and a --ttl like 1h\n",
                JWT_MAX_SUBJECT);
        return 2;
    }
    static config_t cfg;
    char err[512];
    char *no_args[] = {argv[0], NULL};
    if (config_load(&cfg, environ, 1, no_args, err, sizeof err) != CONFIG_OK) {
        fprintf(stderr, "todo-backend: %s\n", err);
        return 2;
    }
    if (secret_check(&cfg) != 0)
        return 2;
    jwt_keys_t keys = jwt_keys_from(&cfg);
    char *token = jwt_sign(&keys, user, timefmt_now_ms() / 1000, ttl);
    if (!token) {
        fprintf(stderr, "todo-backend: cannot sign the token\n");
        return 1;
    }
    printf("%s\n", token);
    free(token);
    return 0;
}

int main(int argc, char **argv)
{
    static app_t app;
    char err[512];
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return run_token_command(argc, argv);
    switch (config_load(&app.cfg, environ, argc, argv, err, sizeof err)) {
    case CONFIG_OK:
        break;
    case CONFIG_HELP:
        config_print_help(stdout, "todo-backend");
        return 0;
    case CONFIG_VERSION:
        printf("todo-backend %s\n", TODO_VERSION);
        return 0;
    case CONFIG_ERROR:
        fprintf(stderr, "todo-backend: %s\n", err);
        return 2;
    }
    if (app.cfg.database_url[0] && db_url_check(app.cfg.database_url, err, sizeof err) != 0) {
        fprintf(stderr, "todo-backend: invalid DATABASE_URL: %s\n", err);
        return 2;
    }
    /* User endpoints exist only with a database; then they need the key. */
    if (app.cfg.database_url[0] && !app.cfg.auth_disabled && secret_check(&app.cfg) != 0)
        return 2;
    log_setup((log_level_t)app.cfg.log_level, (log_format_t)app.cfg.log_format, 2);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(app.cfg.max_connections);

    int rc = uv_loop_init(&app.loop);
    if (rc != 0) {
        fprintf(stderr, "todo-backend: uv_loop_init: %s\n", uv_strerror(rc));
        return 1;
    }
    uv_timer_init(&app.loop, &app.purge_timer);
    app.purge_timer.data = &app;
    if (start_database(&app) != 0)
        return 2;
    if (app.tasks) {
        uv_timer_start(&app.purge_timer, on_purge_timer, TASKS_PURGE_EVERY_MS, TASKS_PURGE_EVERY_MS);
        uv_unref((uv_handle_t *)&app.purge_timer);
    }
    app.router = http_router_new();
    if (!app.router || add_routes(&app) != 0) {
        fprintf(stderr, "todo-backend: cannot build the route table\n");
        return 1;
    }
    app.server = http_server_new(&app.loop, &app.cfg, app.router);
    if (!app.server) {
        fprintf(stderr, "todo-backend: out of memory\n");
        return 1;
    }
    health_add_check("http", http_server_readiness, app.server);
    api_access_setup(&(api_access_config_t){
        .keys = jwt_keys_from(&app.cfg),
        .auth_disabled = app.cfg.auth_disabled,
        .app_token = app.cfg.app_api_token,
    });
    http_router_set_guard(app.router, api_service_guard, NULL);
    if (app.cfg.auth_disabled) {
        log_warn("AUTH_DISABLED=1: user endpoints trust the path's user id WITHOUT a token; "
                 "never run this way outside development");
        health_add_flag("auth", "disabled");
    }

    uv_prepare_init(&app.loop, &app.log_flusher);
    uv_prepare_start(&app.log_flusher, on_log_flush);
    uv_unref((uv_handle_t *)&app.log_flusher);
    uv_signal_init(&app.loop, &app.sigterm);
    uv_signal_init(&app.loop, &app.sigint);
    app.sigterm.data = app.sigint.data = &app;
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sigint, on_signal, SIGINT);

    int exit_code = 0;
    if (http_server_listen(app.server) != 0) {
        exit_code = 1;
        app.stopping = true;
        http_server_drain(app.server, on_server_drained, &app);
    }

    uv_run(&app.loop, UV_RUN_DEFAULT);

    rc = uv_loop_close(&app.loop);
    if (rc != 0) {
        uv_walk(&app.loop, report_open_handle, NULL);
        log_error("event loop closed with handles open", LOG_STR("error", uv_strerror(rc)));
        exit_code = 1;
    }
    http_server_free(app.server);
    tasks_api_free(app.tasks);
    api_dapr_free(app.dapr);
    events_consumer_free(app.consumer);
    events_handler_free(app.handler);
    events_reminders_free(app.reminders);
    events_outbox_free(app.outbox);
    db_pool_free(app.db);
    http_router_free(app.router);
    if (exit_code == 0)
        log_info("stopped");
    log_flush();
    return exit_code;
}
