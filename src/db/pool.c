/* pool: non-blocking libpq connections on the loop, pipelined.
 *
 * A connection's life:
 *
 *   DOWN ─(timer)─► RESOLVING ─► CONNECTING ─► MIGRATING ─► [LOADING_TZ] ─►
 *   PREPARING ─► READY ──(error, EOF)──► DOWN (reconnect after backoff)
 *
 * MIGRATING runs on every connection, in one transaction under an advisory
 * lock: the first applies what is missing, the others wait for the lock and
 * find nothing to do. Until a connection is READY it takes no statements;
 * they wait in the pool's bounded queue.
 *
 * Each connection owns at most one uv_poll_t, on the socket libpq uses now;
 * when PQsocket() changes, the old handle is closed and a new one made.
 * PQfinish() runs only after the poll handle is stopped, so libpq never
 * closes a descriptor libuv still watches. */
#include "db/db.h"

#include <arpa/inet.h>
#include <limits.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "ops/metrics.h"

#define MAX_PARAMS 32
/* Statements in flight on one connection; past it the next connection, or
 * the wait queue, takes them. Deep enough to keep one connection busy. */
#define MAX_DEPTH 64
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define QUEUE_SWEEP_MS 50
#define MIGRATION_LOCK_KEY "7320115"
#define MAX_MIGRATION_VERSION 1024
/* Addresses of a resolved host name handed to libpq, which tries them in
 * order, like it would its own lookup's. */
#define MAX_ADDRESSES 8
/* How long past statement_timeout a statement may stay unanswered before
 * its connection is given up. */
#define STATEMENT_GRACE_MS 2000
/* The statement id of a connection's LISTEN (sent after its prepares);
 * prepares are -1 and below, counting statements. */
#define STMT_LISTEN INT_MIN

typedef enum conn_state {
    DB_CONN_DOWN,
    DB_CONN_RESOLVING,
    DB_CONN_CONNECTING,
    DB_CONN_MIGRATING,
    DB_CONN_LOADING_TZ,
    DB_CONN_PREPARING,
    DB_CONN_READY,
    DB_CONN_CLOSED,
} conn_state_t;

static const char *const state_names[] = {
    "down", "resolving", "connecting", "migrating", "loading time zones", "preparing", "ready", "closed",
};

typedef struct db_query db_query_t;
struct db_query {
    db_query_t *next;
    int stmt;          /* statement id, or -1 for an internal PREPARE */
    int n_params;
    const char *values[MAX_PARAMS];
    char *storage;     /* one allocation holding every parameter */
    db_done_cb cb;
    void *arg;
    uint64_t queued_at;
    uint64_t head_since; /* when it became the oldest in flight: it runs from then */
    PGresult *result;  /* first result of the statement */
    bool results_done; /* PQgetResult gave NULL: only the sync is left */
};

struct db_result {
    PGresult *pg;
};

typedef struct db_conn db_conn_t;

/* A simple-protocol step during start-up: the SQL to send and what to do
 * with its last result. */
typedef void (*step_fn)(db_conn_t *c, PGresult *last);

struct db_conn {
    db_pool_t *pool;
    int index;
    conn_state_t state;
    PGconn *pg;
    uv_poll_t *poll;
    int poll_fd;
    int poll_events;
    uv_timer_t timer; /* connect deadline, or reconnect backoff */
    uv_getaddrinfo_t resolver;
    bool resolver_busy;
    char hostaddr[MAX_ADDRESSES * (INET6_ADDRSTRLEN + 1)]; /* comma list */
    char hostnames[MAX_ADDRESSES * 256];                    /* the name, as often */
    int backoff_ms;

    db_query_t *head, *tail; /* in flight, in send order */
    int depth;

    step_fn step;          /* start-up step awaiting its results */
    PGresult *step_last;
    bool step_failed;
    int migration_next;    /* index into pool->migrations */
    unsigned char applied[MAX_MIGRATION_VERSION + 1];
    bool listening;
};

struct db_pool {
    uv_loop_t *loop;
    char *url;
    char *host;     /* from the URL, when it names a host to resolve */
    char *port;
    int size;
    int queue_max;
    uint64_t queue_timeout_ms;
    int statement_timeout_ms;
    int connect_timeout_ms;
    const db_statement_t *statements;
    int n_statements;
    const db_migration_t *migrations;
    int n_migrations;
    char *listen_sql; /* "LISTEN \"channel\"", or NULL */
    void (*on_notify)(void *arg, const char *payload);
    void *notify_arg;

    db_conn_t *conns;
    db_query_t *queue_head, *queue_tail;
    int queued;
    uv_timer_t sweeper;
    int open_handles;
    bool closing;
    void (*closed_cb)(void *);
    void *closed_arg;

    char **timezones;
    size_t n_timezones;
    const char *last_error_state;

    uint64_t completed, failed, unavailable, reconnects, expired;
};

static void conn_schedule_reconnect(db_conn_t *c);
static void conn_start(db_conn_t *c);
static void conn_drive(db_conn_t *c);
static void pool_dispatch(db_pool_t *pool);
static void pool_maybe_closed(db_pool_t *pool);

/* ---- queries ----------------------------------------------------------- */

static db_query_t *query_new(int stmt, int n_params, const char *const *values, db_done_cb cb,
                             void *arg)
{
    if (n_params < 0 || n_params > MAX_PARAMS)
        return NULL;
    size_t total = 0;
    for (int i = 0; i < n_params; i++)
        if (values[i])
            total += strlen(values[i]) + 1;
    db_query_t *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->storage = total ? malloc(total) : NULL;
    if (total && !q->storage) {
        free(q);
        return NULL;
    }
    char *p = q->storage;
    for (int i = 0; i < n_params; i++) {
        if (!values[i]) {
            q->values[i] = NULL;
            continue;
        }
        size_t n = strlen(values[i]) + 1;
        memcpy(p, values[i], n);
        q->values[i] = p;
        p += n;
    }
    q->stmt = stmt;
    q->n_params = n_params;
    q->cb = cb;
    q->arg = arg;
    return q;
}

static void query_free(db_query_t *q)
{
    if (q->result)
        PQclear(q->result);
    free(q->storage);
    free(q);
}

/* Runs the caller's callback and frees the query. */
static void query_complete(db_pool_t *pool, db_query_t *q, db_status_t status)
{
    db_result_t res = {.pg = q->result};
    if (status == DB_OK)
        pool->completed++;
    else if (status == DB_QUERY_ERROR)
        pool->failed++;
    else
        pool->unavailable++;
    if (q->cb)
        q->cb(q->arg, status, &res);
    query_free(q);
}

/* ---- polling ----------------------------------------------------------- */

static void on_poll(uv_poll_t *h, int status, int events);

static void on_poll_closed(uv_handle_t *h)
{
    db_pool_t *pool = h->data;
    free(h);
    pool->open_handles--;
    pool_maybe_closed(pool);
}

static void conn_stop_poll(db_conn_t *c)
{
    if (c->poll) {
        c->poll->data = c->pool;
        uv_close((uv_handle_t *)c->poll, on_poll_closed);
        c->poll = NULL;
        c->poll_fd = -1;
        c->poll_events = 0;
    }
}

/* Watches libpq's current socket for `events`, re-creating the handle when
 * the socket changed (libpq may switch sockets while connecting). */
static int conn_watch(db_conn_t *c, int events)
{
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return -1;
    if (c->poll && c->poll_fd != fd)
        conn_stop_poll(c);
    if (!c->poll) {
        c->poll = malloc(sizeof *c->poll);
        if (!c->poll)
            return -1;
        if (uv_poll_init_socket(c->pool->loop, c->poll, fd) != 0) {
            free(c->poll);
            c->poll = NULL;
            return -1;
        }
        c->pool->open_handles++;
        c->poll->data = c;
        c->poll_fd = fd;
        c->poll_events = 0;
    }
    if (events != c->poll_events) {
        if (uv_poll_start(c->poll, events, on_poll) != 0)
            return -1;
        c->poll_events = events;
    }
    return 0;
}

/* ---- failure and reconnection ------------------------------------------ */

static void conn_fail(db_conn_t *c, const char *why)
{
    db_pool_t *pool = c->pool;
    if (c->state == DB_CONN_DOWN || c->state == DB_CONN_CLOSED)
        return;
    const char *detail = c->pg ? PQerrorMessage(c->pg) : "";
    char msg[256];
    snprintf(msg, sizeof msg, "%s", detail);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    if (pool->closing) {
        log_debug("database connection closed", LOG_INT("conn", c->index));
    } else {
        log_warn("database connection lost", LOG_INT("conn", c->index),
                 LOG_STR("phase", state_names[c->state]), LOG_STR("reason", why),
                 LOG_STR("error", msg));
        pool->last_error_state = "unavailable";
    }

    conn_stop_poll(c);
    uv_timer_stop(&c->timer);
    if (c->step_last) {
        PQclear(c->step_last);
        c->step_last = NULL;
    }
    c->step = NULL;
    /* In-flight statements have an unknown outcome: fail them. */
    db_query_t *q = c->head;
    c->head = c->tail = NULL;
    c->depth = 0;
    c->state = pool->closing ? DB_CONN_CLOSED : DB_CONN_DOWN;
    c->listening = false;
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    while (q) {
        db_query_t *next = q->next;
        if (q->stmt >= 0)
            query_complete(pool, q, DB_UNAVAILABLE);
        else
            query_free(q);
        q = next;
    }
    if (!pool->closing)
        conn_schedule_reconnect(c);
}

static void on_reconnect_timer(uv_timer_t *t)
{
    db_conn_t *c = t->data;
    if (c->state == DB_CONN_DOWN)
        conn_start(c);
}

static void conn_schedule_reconnect(db_conn_t *c)
{
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (c->backoff_ms > BACKOFF_MAX_MS)
        c->backoff_ms = BACKOFF_MAX_MS;
    c->pool->reconnects++;
    uv_timer_start(&c->timer, on_reconnect_timer, (uint64_t)c->backoff_ms, 0);
}

static void on_connect_timeout(uv_timer_t *t)
{
    db_conn_t *c = t->data;
    if (c->state != DB_CONN_READY && c->state != DB_CONN_DOWN)
        conn_fail(c, "connect timeout");
}

/* ---- start-up steps (simple protocol) ---------------------------------- */

static void step_send(db_conn_t *c, const char *sql, step_fn next)
{
    c->step = next;
    c->step_failed = false;
    if (!PQsendQuery(c->pg, sql)) {
        conn_fail(c, "send failed");
        return;
    }
    conn_drive(c);
}

static void step_send_params(db_conn_t *c, const char *sql, int n, const char *const *values,
                             step_fn next)
{
    c->step = next;
    c->step_failed = false;
    if (!PQsendQueryParams(c->pg, sql, n, NULL, values, NULL, NULL, 0)) {
        conn_fail(c, "send failed");
        return;
    }
    conn_drive(c);
}

static void step_prepare(db_conn_t *c);
static void step_migrate_next(db_conn_t *c);

static void step_timezones_loaded(db_conn_t *c, PGresult *last)
{
    db_pool_t *pool = c->pool;
    if (!pool->timezones && last && PQresultStatus(last) == PGRES_TUPLES_OK) {
        int rows = PQntuples(last);
        pool->timezones = calloc((size_t)rows + 1, sizeof(char *));
        for (int i = 0; pool->timezones && i < rows; i++) {
            char *name = strdup(PQgetvalue(last, i, 0));
            if (name)
                pool->timezones[pool->n_timezones++] = name;
        }
    }
    step_prepare(c);
}

static void step_committed(db_conn_t *c, PGresult *last)
{
    (void)last;
    if (!c->pool->timezones) {
        c->state = DB_CONN_LOADING_TZ;
        /* Sorted so that db_pool_timezone_known() can bisect. */
        step_send(c, "SELECT name FROM pg_timezone_names ORDER BY name COLLATE \"C\"",
                  step_timezones_loaded);
        return;
    }
    step_prepare(c);
}

static void step_recorded(db_conn_t *c, PGresult *last)
{
    (void)last;
    step_migrate_next(c);
}

static void step_applied(db_conn_t *c, PGresult *last)
{
    (void)last;
    const db_migration_t *m = &c->pool->migrations[c->migration_next];
    char version[16];
    snprintf(version, sizeof version, "%d", m->version);
    const char *values[2] = {version, m->name};
    log_info("migration applied", LOG_INT("version", m->version), LOG_STR("name", m->name));
    c->migration_next++;
    step_send_params(c, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, values,
                     step_recorded);
}

/* Applies the next migration this database lacks, or commits. */
static void step_migrate_next(db_conn_t *c)
{
    db_pool_t *pool = c->pool;
    while (c->migration_next < pool->n_migrations &&
           c->applied[pool->migrations[c->migration_next].version])
        c->migration_next++;
    if (c->migration_next < pool->n_migrations) {
        step_send(c, pool->migrations[c->migration_next].sql, step_applied);
        return;
    }
    step_send(c, "COMMIT", step_committed);
}

static void step_versions_read(db_conn_t *c, PGresult *last)
{
    memset(c->applied, 0, sizeof c->applied);
    if (last && PQresultStatus(last) == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(last); i++) {
            int v = atoi(PQgetvalue(last, i, 0));
            if (v > 0 && v <= MAX_MIGRATION_VERSION)
                c->applied[v] = 1;
        }
    }
    c->migration_next = 0;
    step_migrate_next(c);
}

static void step_begin_migrations(db_conn_t *c)
{
    c->state = DB_CONN_MIGRATING;
    /* One transaction: the lock is held until COMMIT, so a second process
     * starting now waits here and then finds every migration applied. */
    step_send(c,
              "BEGIN;"
              "SET LOCAL statement_timeout = 0;"
              "SET LOCAL lock_timeout = 0;"
              "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK_KEY ");"
              "CREATE TABLE IF NOT EXISTS schema_migrations ("
              " version integer PRIMARY KEY,"
              " name text NOT NULL,"
              " applied_at timestamptz NOT NULL DEFAULT now());"
              "SELECT version FROM schema_migrations ORDER BY version",
              step_versions_read);
}

/* ---- pipeline ---------------------------------------------------------- */

static void conn_push(db_conn_t *c, db_query_t *q)
{
    q->next = NULL;
    if (c->tail) {
        c->tail->next = q;
    } else {
        c->head = q;
        q->head_since = uv_now(c->pool->loop);
    }
    c->tail = q;
    c->depth++;
}

/* Sends one statement and its sync; the reply is matched in FIFO order. */
static bool conn_send(db_conn_t *c, db_query_t *q)
{
    int ok;
    if (q->stmt == STMT_LISTEN) {
        ok = PQsendQueryParams(c->pg, c->pool->listen_sql, 0, NULL, NULL, NULL, NULL, 0);
    } else if (q->stmt < 0) {
        const db_statement_t *s = &c->pool->statements[-q->stmt - 1];
        ok = PQsendPrepare(c->pg, s->name, s->sql, 0, NULL);
    } else {
        ok = PQsendQueryPrepared(c->pg, c->pool->statements[q->stmt].name, q->n_params,
                                 q->values, NULL, NULL, 0);
    }
    if (!ok || !PQpipelineSync(c->pg))
        return false;
    conn_push(c, q);
    return true;
}

static void step_prepare(db_conn_t *c)
{
    c->state = DB_CONN_PREPARING;
    c->step = NULL;
    if (!PQenterPipelineMode(c->pg)) {
        conn_fail(c, "cannot enter pipeline mode");
        return;
    }
    for (int i = 0; i < c->pool->n_statements; i++) {
        db_query_t *q = query_new(-i - 1, 0, NULL, NULL, NULL);
        if (!q || !conn_send(c, q)) {
            if (q)
                query_free(q);
            conn_fail(c, "cannot prepare statements");
            return;
        }
    }
    if (c->pool->listen_sql) {
        db_query_t *q = query_new(STMT_LISTEN, 0, NULL, NULL, NULL);
        if (!q || !conn_send(c, q)) {
            if (q)
                query_free(q);
            conn_fail(c, "cannot listen");
            return;
        }
    }
    conn_drive(c);
}

static void conn_became_ready(db_conn_t *c)
{
    c->state = DB_CONN_READY;
    c->backoff_ms = 0;
    uv_timer_stop(&c->timer);
    c->pool->last_error_state = NULL;
    log_info("database connection ready", LOG_INT("conn", c->index));
    pool_dispatch(c->pool);
}

/* Reads every result that is complete and hands finished statements back. */
static void conn_read_pipeline(db_conn_t *c)
{
    while (c->head && c->state != DB_CONN_DOWN) {
        if (PQisBusy(c->pg))
            return;
        PGresult *r = PQgetResult(c->pg);
        db_query_t *q = c->head;
        if (!r) {
            if (q->results_done)
                return; /* waiting for the sync */
            q->results_done = true;
            continue;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_PIPELINE_SYNC) {
            if (!q->result)
                q->result = r;
            else
                PQclear(r);
            continue;
        }
        PQclear(r);
        c->head = q->next;
        if (c->head)
            c->head->head_since = uv_now(c->pool->loop);
        else
            c->tail = NULL;
        c->depth--;
        ExecStatusType qs = q->result ? PQresultStatus(q->result) : PGRES_FATAL_ERROR;
        bool ok = qs == PGRES_TUPLES_OK || qs == PGRES_COMMAND_OK;
        if (q->stmt == STMT_LISTEN) {
            /* A failure is not worth the connection: the listener's
             * backstop polls. */
            if (!ok)
                log_warn("cannot listen for notifications", LOG_STR("sql", c->pool->listen_sql),
                         LOG_STR("error", q->result ? PQresultErrorMessage(q->result) : "none"));
            query_free(q);
            if (!c->head && c->state == DB_CONN_PREPARING)
                conn_became_ready(c);
            c->listening = ok;
            if (ok && c->pool->on_notify)
                c->pool->on_notify(c->pool->notify_arg, NULL);
            continue;
        }
        if (q->stmt < 0) {
            if (!ok) {
                log_error("cannot prepare statement",
                          LOG_STR("name", c->pool->statements[-q->stmt - 1].name),
                          LOG_STR("error", q->result ? PQresultErrorMessage(q->result) : "none"));
                query_free(q);
                conn_fail(c, "prepare failed");
                return;
            }
            query_free(q);
            if (!c->head && c->state == DB_CONN_PREPARING)
                conn_became_ready(c);
            continue;
        }
        query_complete(c->pool, q, ok ? DB_OK : DB_QUERY_ERROR);
        /* The callback may have sent more; room also frees for the queue. */
        if (c->pool->queued && c->state == DB_CONN_READY)
            pool_dispatch(c->pool);
    }
}

/* Reads results of a start-up step; runs its continuation at the end. */
static void conn_read_step(db_conn_t *c)
{
    while (c->step) {
        if (PQisBusy(c->pg))
            return;
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            step_fn next = c->step;
            PGresult *last = c->step_last;
            c->step_last = NULL;
            c->step = NULL;
            if (c->step_failed) {
                if (last)
                    PQclear(last);
                conn_fail(c, "start-up statement failed");
                return;
            }
            next(c, last);
            if (last)
                PQclear(last);
            return;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
            log_error("database start-up statement failed", LOG_STR("phase", state_names[c->state]),
                      LOG_STR("error", PQresultErrorMessage(r)));
            c->step_failed = true;
        }
        if (c->step_last)
            PQclear(c->step_last);
        c->step_last = r;
    }
}

/* Hands over the notifications libpq has parsed (reading results parses
 * them too, so this runs after every read). The listener must not close
 * the pool from its callback. */
static void conn_deliver_notifications(db_conn_t *c)
{
    PGnotify *n;
    while (c->pg && (n = PQnotifies(c->pg)) != NULL) {
        if (c->pool->on_notify && !c->pool->closing)
            c->pool->on_notify(c->pool->notify_arg, n->extra ? n->extra : "");
        PQfreemem(n);
    }
}

/* Flushes, reads what arrived, and re-arms the poll handle. */
static void conn_drive(db_conn_t *c)
{
    if (!c->pg || c->state == DB_CONN_DOWN || c->state == DB_CONN_CLOSED)
        return;
    int flush = PQflush(c->pg);
    if (flush < 0) {
        conn_fail(c, "write failed");
        return;
    }
    if (c->step)
        conn_read_step(c);
    else
        conn_read_pipeline(c);
    if (!c->pg || c->state == DB_CONN_DOWN || c->state == DB_CONN_CLOSED)
        return;
    conn_deliver_notifications(c);
    if (!c->pg || c->state == DB_CONN_DOWN || c->state == DB_CONN_CLOSED)
        return;
    flush = PQflush(c->pg);
    if (flush < 0) {
        conn_fail(c, "write failed");
        return;
    }
    if (conn_watch(c, UV_READABLE | (flush ? UV_WRITABLE : 0)) != 0)
        conn_fail(c, "cannot watch socket");
}

static void conn_connect_poll(db_conn_t *c)
{
    /* libpq may have closed the socket and opened another with the same
     * descriptor number: re-register, so the poller watches the new one. */
    if (c->poll) {
        uv_poll_stop(c->poll);
        c->poll_events = 0;
    }
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        if (conn_watch(c, UV_READABLE) != 0)
            conn_fail(c, "cannot watch socket");
        return;
    case PGRES_POLLING_WRITING:
        if (conn_watch(c, UV_WRITABLE) != 0)
            conn_fail(c, "cannot watch socket");
        return;
    case PGRES_POLLING_OK:
        /* Connected: migrations may legitimately wait (for another
         * process's lock), so the connect deadline ends here. */
        uv_timer_stop(&c->timer);
        if (PQsetnonblocking(c->pg, 1) != 0) {
            conn_fail(c, "cannot set non-blocking mode");
            return;
        }
        step_begin_migrations(c);
        return;
    case PGRES_POLLING_FAILED:
    default:
        conn_fail(c, "connect failed");
        return;
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    db_conn_t *c = h->data;
    (void)events;
    if (c->state == DB_CONN_CONNECTING) {
        /* An error event (a refused connect) is libpq's to judge: it may
         * move on to the next host or address of the connection string. */
        conn_connect_poll(c);
        return;
    }
    if (status < 0) {
        conn_fail(c, uv_strerror(status));
        return;
    }
    if (!PQconsumeInput(c->pg)) {
        conn_fail(c, "read failed");
        return;
    }
    conn_drive(c);
}

/* ---- connecting -------------------------------------------------------- */

static void on_notice(void *arg, const char *message)
{
    db_conn_t *c = arg;
    size_t n = strlen(message);
    while (n && message[n - 1] == '\n')
        n--;
    log_info("database notice", LOG_INT("conn", c->index), LOG_STRN("message", message, n));
}

static void conn_connect(db_conn_t *c)
{
    db_pool_t *pool = c->pool;
    char options[128];
    /* Notices (e.g. "already exists, skipping") are not for the log. */
    snprintf(options, sizeof options, "-c statement_timeout=%d -c client_min_messages=warning",
             pool->statement_timeout_ms);
    const char *keys[12], *values[12];
    int n = 0;
    keys[n] = "dbname", values[n++] = pool->url;
    keys[n] = "options", values[n++] = options;
    keys[n] = "application_name", values[n++] = "todo-backend";
    /* GSSAPI negotiation would reconnect behind our back and may block on
     * Kerberos look-ups; it is never used here. */
    keys[n] = "gssencmode", values[n++] = "disable";
    /* Notice a vanished server within ~20 s even when idle. */
    keys[n] = "keepalives_idle", values[n++] = "10";
    keys[n] = "keepalives_interval", values[n++] = "5";
    keys[n] = "keepalives_count", values[n++] = "2";
    if (c->hostaddr[0]) {
        keys[n] = "host", values[n++] = c->hostnames;
        keys[n] = "hostaddr", values[n++] = c->hostaddr;
    }
    keys[n] = NULL, values[n] = NULL;

    c->state = DB_CONN_CONNECTING;
    c->pg = PQconnectStartParams(keys, values, 1);
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_fail(c, "connect failed");
        return;
    }
    /* libpq would print server notices on stderr, between our JSON lines. */
    PQsetNoticeProcessor(c->pg, on_notice, c);
    uv_timer_start(&c->timer, on_connect_timeout, (uint64_t)pool->connect_timeout_ms, 0);
    /* libpq starts in the "writing" state: wait for the socket to connect. */
    if (conn_watch(c, UV_WRITABLE) != 0)
        conn_fail(c, "cannot watch socket");
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    db_conn_t *c = req->data;
    c->resolver_busy = false;
    if (c->state != DB_CONN_RESOLVING) {
        uv_freeaddrinfo(res);
        if (c->pool->closing)
            pool_maybe_closed(c->pool);
        return;
    }
    if (status != 0 || !res) {
        uv_freeaddrinfo(res);
        log_warn("cannot resolve database host", LOG_STR("host", c->pool->host),
                 LOG_STR("error", uv_strerror(status)));
        c->state = DB_CONN_CONNECTING; /* so conn_fail reschedules */
        conn_fail(c, "host lookup failed");
        return;
    }
    /* Every address, so a dead first one (::1 when the server listens on
     * 127.0.0.1, one of several A records) does not stop us. libpq wants as
     * many host names as addresses, for TLS and error messages. */
    size_t a = 0, h = 0;
    int n = 0;
    for (struct addrinfo *ai = res; ai && n < MAX_ADDRESSES; ai = ai->ai_next) {
        char ip[INET6_ADDRSTRLEN];
        if (ai->ai_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)ai->ai_addr, ip, sizeof ip);
        else if (ai->ai_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)ai->ai_addr, ip, sizeof ip);
        else
            continue;
        a += (size_t)snprintf(c->hostaddr + a, sizeof c->hostaddr - a, "%s%s", n ? "," : "", ip);
        h += (size_t)snprintf(c->hostnames + h, sizeof c->hostnames - h, "%s%s", n ? "," : "",
                              c->pool->host);
        n++;
    }
    uv_freeaddrinfo(res);
    if (n == 0 || h >= sizeof c->hostnames) {
        c->hostaddr[0] = c->hostnames[0] = '\0';
        c->state = DB_CONN_CONNECTING;
        conn_fail(c, "host lookup gave no usable address");
        return;
    }
    conn_connect(c);
}

static void conn_start(db_conn_t *c)
{
    db_pool_t *pool = c->pool;
    c->hostaddr[0] = c->hostnames[0] = '\0';
    if (pool->host && strlen(pool->host) < 255) {
        /* libpq would resolve the name with a blocking getaddrinfo() inside
         * PQconnectPoll; resolve it on libuv's thread pool instead. */
        c->state = DB_CONN_RESOLVING;
        c->resolver.data = c;
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        if (uv_getaddrinfo(pool->loop, &c->resolver, on_resolved, pool->host, NULL, &hints) == 0) {
            c->resolver_busy = true;
            return;
        }
        c->state = DB_CONN_CONNECTING;
        conn_fail(c, "host lookup failed");
        return;
    }
    conn_connect(c);
}

/* ---- the pool ---------------------------------------------------------- */

/* Finds the host to resolve: set only when the URL names a host that is
 * neither numeric nor a socket directory, and gives no hostaddr. */
static void pool_find_host(db_pool_t *pool)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(pool->url, &err);
    if (!opts) {
        PQfreemem(err);
        return;
    }
    const char *host = NULL, *hostaddr = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            hostaddr = o->val;
    }
    /* libpq falls back to these when the string names none. */
    if (!host || !*host)
        host = getenv("PGHOST");
    if (!hostaddr || !*hostaddr)
        hostaddr = getenv("PGHOSTADDR");
    unsigned char buf[sizeof(struct in6_addr)];
    if (host && *host && (!hostaddr || !*hostaddr) && host[0] != '/' && host[0] != '@' &&
        !strchr(host, ',') &&
        inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1)
        pool->host = strdup(host);
    PQconninfoFree(opts);
}

int db_url_check(const char *url, char *err, size_t errlen)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &msg);
    if (opts) {
        PQconninfoFree(opts);
        return 0;
    }
    snprintf(err, errlen, "%s", msg ? msg : "not a connection string");
    for (char *p = err; *p; p++)
        if (*p == '\n')
            *p = *(p + 1) ? ' ' : '\0';
    PQfreemem(msg);
    return -1;
}

static void on_sweep(uv_timer_t *t);

/* LISTEN takes no parameters, so the channel is written into the SQL; only
 * a plain lower-case identifier (at most NAMEDATALEN - 1 bytes) is let in,
 * which cannot end its quotes or change its meaning. */
static bool plain_identifier(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

db_pool_t *db_pool_new(uv_loop_t *loop, const db_config_t *cfg,
                       const db_statement_t *statements, int n_statements,
                       const db_migration_t *migrations, int n_migrations)
{
    if (cfg->listen_channel && !plain_identifier(cfg->listen_channel))
        return NULL;
    db_pool_t *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pool->loop = loop;
    pool->url = strdup(cfg->url);
    pool->size = cfg->pool_size;
    pool->queue_max = cfg->queue_max;
    pool->queue_timeout_ms = (uint64_t)cfg->queue_timeout_ms;
    pool->statement_timeout_ms = cfg->statement_timeout_ms;
    pool->connect_timeout_ms = cfg->connect_timeout_ms;
    pool->statements = statements;
    pool->n_statements = n_statements;
    pool->migrations = migrations;
    pool->n_migrations = n_migrations;
    pool->on_notify = cfg->on_notify;
    pool->notify_arg = cfg->notify_arg;
    if (cfg->listen_channel) {
        size_t n = strlen(cfg->listen_channel) + sizeof "LISTEN \"\"";
        pool->listen_sql = malloc(n);
        if (pool->listen_sql)
            snprintf(pool->listen_sql, n, "LISTEN \"%s\"", cfg->listen_channel);
    }
    pool->conns = calloc((size_t)pool->size, sizeof *pool->conns);
    if (!pool->url || !pool->conns || (cfg->listen_channel && !pool->listen_sql)) {
        free(pool->listen_sql);
        free(pool->url);
        free(pool->conns);
        free(pool);
        return NULL;
    }
    pool_find_host(pool);
    for (int i = 0; i < pool->size; i++) {
        db_conn_t *c = &pool->conns[i];
        c->pool = pool;
        c->index = i;
        c->poll_fd = -1;
        c->state = DB_CONN_DOWN;
        uv_timer_init(loop, &c->timer);
        c->timer.data = c;
        pool->open_handles++;
    }
    uv_timer_init(loop, &pool->sweeper);
    pool->sweeper.data = pool;
    pool->open_handles++;
    pool->last_error_state = "connecting";
    if (!cfg->unlisted && metrics_add_collector(db_pool_collect_metrics, pool) != 0)
        log_warn("metrics collector table full: database metrics not exported");
    return pool;
}

void db_pool_start(db_pool_t *pool)
{
    uv_timer_start(&pool->sweeper, on_sweep, QUEUE_SWEEP_MS, QUEUE_SWEEP_MS);
    for (int i = 0; i < pool->size; i++)
        conn_start(&pool->conns[i]);
}

/* The ready connection with the fewest statements in flight, if any has
 * room. */
static db_conn_t *pool_pick(db_pool_t *pool)
{
    db_conn_t *best = NULL;
    for (int i = 0; i < pool->size; i++) {
        db_conn_t *c = &pool->conns[i];
        if (c->state == DB_CONN_READY && c->depth < MAX_DEPTH && (!best || c->depth < best->depth))
            best = c;
    }
    return best;
}

static void pool_dispatch(db_pool_t *pool)
{
    db_conn_t *touched[64];
    int n_touched = 0;
    while (pool->queue_head) {
        db_conn_t *c = pool_pick(pool);
        if (!c)
            break;
        db_query_t *q = pool->queue_head;
        pool->queue_head = q->next;
        if (!pool->queue_head)
            pool->queue_tail = NULL;
        pool->queued--;
        if (!conn_send(c, q)) {
            query_complete(pool, q, DB_UNAVAILABLE);
            conn_fail(c, "send failed");
            continue;
        }
        bool seen = false;
        for (int i = 0; i < n_touched; i++)
            seen = seen || touched[i] == c;
        if (!seen && n_touched < 64)
            touched[n_touched++] = c;
    }
    for (int i = 0; i < n_touched; i++)
        conn_drive(touched[i]);
}

db_status_t db_query(db_pool_t *pool, int stmt, int n_params, const char *const *values,
                     db_done_cb cb, void *arg)
{
    if (pool->closing || stmt < 0 || stmt >= pool->n_statements)
        return DB_UNAVAILABLE;
    db_conn_t *c = pool->queued ? NULL : pool_pick(pool);
    if (!c && pool->queued >= pool->queue_max) {
        pool->unavailable++;
        return DB_UNAVAILABLE;
    }
    db_query_t *q = query_new(stmt, n_params, values, cb, arg);
    if (!q)
        return DB_UNAVAILABLE;
    if (c) {
        if (!conn_send(c, q)) {
            query_free(q);
            conn_fail(c, "send failed");
            return DB_UNAVAILABLE;
        }
        conn_drive(c);
        return DB_OK;
    }
    q->queued_at = uv_now(pool->loop);
    if (pool->queue_tail)
        pool->queue_tail->next = q;
    else
        pool->queue_head = q;
    pool->queue_tail = q;
    pool->queued++;
    return DB_OK;
}

/* Fails statements that waited past the deadline for a connection, and
 * connections whose oldest statement has run (since it became the oldest:
 * a connection runs its statements one after another) long past
 * statement_timeout: the server enforces that timeout itself, so silence
 * beyond it means a hung server or a dead network path, which TCP may take
 * minutes to notice. */
static void on_sweep(uv_timer_t *t)
{
    db_pool_t *pool = t->data;
    uint64_t now = uv_now(pool->loop);
    uint64_t limit = (uint64_t)pool->statement_timeout_ms + STATEMENT_GRACE_MS;
    for (int i = 0; i < pool->size; i++) {
        db_conn_t *c = &pool->conns[i];
        if (c->state == DB_CONN_READY && c->head && now - c->head->head_since > limit)
            conn_fail(c, "no answer within statement_timeout");
    }
    while (pool->queue_head && now - pool->queue_head->queued_at >= pool->queue_timeout_ms) {
        db_query_t *q = pool->queue_head;
        pool->queue_head = q->next;
        if (!pool->queue_head)
            pool->queue_tail = NULL;
        pool->queued--;
        pool->expired++;
        query_complete(pool, q, DB_UNAVAILABLE);
    }
}

static void on_pool_handle_closed(uv_handle_t *h)
{
    db_pool_t *pool = h->data;
    pool->open_handles--;
    pool_maybe_closed(pool);
}

static void pool_maybe_closed(db_pool_t *pool)
{
    if (!pool->closing || pool->open_handles > 0)
        return;
    for (int i = 0; i < pool->size; i++)
        if (pool->conns[i].resolver_busy)
            return; /* on_resolved will call again */
    if (pool->closed_cb) {
        void (*cb)(void *) = pool->closed_cb;
        pool->closed_cb = NULL;
        cb(pool->closed_arg);
    }
}

void db_pool_close(db_pool_t *pool, void (*cb)(void *arg), void *arg)
{
    pool->closing = true;
    pool->closed_cb = cb;
    pool->closed_arg = arg;
    while (pool->queue_head) {
        db_query_t *q = pool->queue_head;
        pool->queue_head = q->next;
        pool->queued--;
        query_complete(pool, q, DB_UNAVAILABLE);
    }
    pool->queue_tail = NULL;
    for (int i = 0; i < pool->size; i++) {
        db_conn_t *c = &pool->conns[i];
        if (c->resolver_busy)
            uv_cancel((uv_req_t *)&c->resolver);
        if (c->pg)
            conn_fail(c, "shutdown");
        c->state = DB_CONN_CLOSED;
        c->timer.data = pool;
        uv_close((uv_handle_t *)&c->timer, on_pool_handle_closed);
    }
    pool->sweeper.data = pool;
    uv_close((uv_handle_t *)&pool->sweeper, on_pool_handle_closed);
}

void db_pool_free(db_pool_t *pool)
{
    if (!pool)
        return;
    for (size_t i = 0; i < pool->n_timezones; i++)
        free(pool->timezones[i]);
    free(pool->timezones);
    free(pool->conns);
    free(pool->url);
    free(pool->host);
    free(pool->listen_sql);
    free(pool);
}

bool db_pool_listening(const db_pool_t *pool)
{
    for (int i = 0; i < pool->size; i++)
        if (pool->conns[i].listening)
            return true;
    return false;
}

const char *db_pool_readiness(void *arg)
{
    db_pool_t *pool = arg;
    for (int i = 0; i < pool->size; i++)
        if (pool->conns[i].state == DB_CONN_READY)
            return NULL;
    return pool->last_error_state ? pool->last_error_state : "connecting";
}

bool db_pool_timezone_known(const char *name, void *arg)
{
    db_pool_t *pool = arg;
    size_t lo = 0, hi = pool->n_timezones;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int cmp = strcmp(pool->timezones[mid], name);
        if (cmp == 0)
            return true;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

int db_pool_collect_metrics(buf_t *out, void *arg)
{
    db_pool_t *pool = arg;
    int ready = 0, busy = 0;
    for (int i = 0; i < pool->size; i++) {
        if (pool->conns[i].state == DB_CONN_READY)
            ready++;
        busy += pool->conns[i].depth;
    }
    int rc = metrics_write_gauge(out, "db_pool_size", "Configured database connections.", pool->size);
    rc = rc ? rc : metrics_write_gauge(out, "db_pool_ready", "Database connections ready.", ready);
    rc = rc ? rc : metrics_write_gauge(out, "db_statements_in_flight",
                                       "Statements sent and not yet answered.", busy);
    rc = rc ? rc : metrics_write_gauge(out, "db_statements_waiting",
                                       "Statements waiting for a connection.", pool->queued);
    rc = rc ? rc : metrics_write_counter(out, "db_statements_completed_total",
                                         "Statements that ran.", (double)pool->completed);
    rc = rc ? rc : metrics_write_counter(out, "db_statements_failed_total",
                                         "Statements the server rejected.", (double)pool->failed);
    rc = rc ? rc : metrics_write_counter(out, "db_statements_unavailable_total",
                                         "Statements failed for want of a connection (queue full, "
                                         "deadline, connection lost).",
                                         (double)pool->unavailable);
    rc = rc ? rc : metrics_write_counter(out, "db_statements_expired_total",
                                         "Statements that waited past DB_QUEUE_TIMEOUT_MS.",
                                         (double)pool->expired);
    rc = rc ? rc : metrics_write_counter(out, "db_reconnects_total",
                                         "Reconnection attempts scheduled.", (double)pool->reconnects);
    return rc;
}

/* ---- results ----------------------------------------------------------- */

int db_result_rows(const db_result_t *res)
{
    return res && res->pg ? PQntuples(res->pg) : 0;
}

bool db_result_is_null(const db_result_t *res, int row, int col)
{
    return !res || !res->pg || PQgetisnull(res->pg, row, col);
}

const char *db_result_value(const db_result_t *res, int row, int col)
{
    return res && res->pg ? PQgetvalue(res->pg, row, col) : "";
}

size_t db_result_length(const db_result_t *res, int row, int col)
{
    return res && res->pg ? (size_t)PQgetlength(res->pg, row, col) : 0;
}

const char *db_result_sqlstate(const db_result_t *res)
{
    const char *s = res && res->pg ? PQresultErrorField(res->pg, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

const char *db_result_constraint(const db_result_t *res)
{
    const char *s = res && res->pg ? PQresultErrorField(res->pg, PG_DIAG_CONSTRAINT_NAME) : NULL;
    return s ? s : "";
}

const char *db_result_message(const db_result_t *res)
{
    const char *s = res && res->pg ? PQresultErrorField(res->pg, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    return s ? s : "";
}
