/* db: PostgreSQL for the rest of the service, without libpq in sight.
 *
 * A fixed pool of non-blocking libpq connections on the loop, each in
 * pipeline mode so one connection carries many requests' statements at once
 * (one sync per statement, so one failing statement aborts only itself).
 * Statements are prepared on every connection when it connects; callers
 * name them by id (db/queries.h). A statement that finds no connection with
 * room waits in a bounded queue with a deadline. Lost connections are
 * re-established with backoff while the service keeps running; statements
 * that were in flight on them fail with DB_UNAVAILABLE (their outcome is
 * unknown, which is what Idempotency-Key retries are for).
 *
 * Only db/ includes libpq-fe.h. */
#ifndef TODO_DB_DB_H
#define TODO_DB_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "core/buf.h"

typedef struct db_pool db_pool_t;
typedef struct db_result db_result_t;

typedef enum db_status {
    DB_OK,          /* the statement ran; res holds its rows */
    DB_UNAVAILABLE, /* no connection, queue full or deadline passed, connection lost */
    DB_QUERY_ERROR, /* the server rejected it; see db_result_sqlstate() */
} db_status_t;

/* res is valid only during the call. */
typedef void (*db_done_cb)(void *arg, db_status_t status, const db_result_t *res);

typedef struct db_config {
    const char *url;  /* libpq URI or key=value string */
    int pool_size;
    int queue_max;
    int queue_timeout_ms;
    int statement_timeout_ms;
    int connect_timeout_ms;
    bool unlisted; /* a helper pool: kept out of /metrics (names would clash) */
    /* When set (a plain lower-case identifier, or db_pool_new refuses
     * it), every connection LISTENs on this channel once connected,
     * and on_notify gets each notification's payload. It also gets NULL
     * each time a connection starts listening: notifications sent while
     * none listened are lost, so the listener should look afresh. */
    const char *listen_channel;
    void (*on_notify)(void *arg, const char *payload);
    void *notify_arg;
} db_config_t;

typedef struct db_statement {
    const char *name;
    const char *sql;
} db_statement_t;

typedef struct db_migration {
    int version;
    const char *name;
    const char *sql;
} db_migration_t;

/* Checks a connection string's syntax (no connection is made). Returns 0,
 * or -1 with libpq's reason, on one line, in err. */
int db_url_check(const char *url, char *err, size_t errlen);

/* NULL when out of memory or when cfg->listen_channel is not plain. */
db_pool_t *db_pool_new(uv_loop_t *loop, const db_config_t *cfg,
                       const db_statement_t *statements, int n_statements,
                       const db_migration_t *migrations, int n_migrations);
/* Starts connecting; returns at once. */
void db_pool_start(db_pool_t *pool);
/* Sends (or queues) prepared statement `stmt` with text parameters (NULL
 * value = SQL NULL). Parameters are copied. Returns DB_OK when the callback
 * will run, or DB_UNAVAILABLE at once (queue full, pool closing): then the
 * callback never runs. Note that with DB_OK the callback may already have
 * run (with DB_UNAVAILABLE) before db_query returns, when sending found the
 * connection dead: touch nothing the callback frees after a DB_OK. */
db_status_t db_query(db_pool_t *pool, int stmt, int n_params, const char *const *values,
                     db_done_cb cb, void *arg);
/* Closes every connection (in-flight statements fail) and the pool's
 * handles; cb runs when all are closed. Then db_pool_free(). */
void db_pool_close(db_pool_t *pool, void (*cb)(void *arg), void *arg);
void db_pool_free(db_pool_t *pool);

/* True when a connection of a pool with listen_channel is listening. */
bool db_pool_listening(const db_pool_t *pool);
/* Readiness check: NULL when a connection is ready, else a word. */
const char *db_pool_readiness(void *pool);
/* Metrics collector (ops/metrics). */
int db_pool_collect_metrics(buf_t *out, void *pool);
/* True when name is in PostgreSQL's pg_timezone_names (loaded once after
 * the first connection). */
bool db_pool_timezone_known(const char *name, void *pool);

int db_result_rows(const db_result_t *res);
bool db_result_is_null(const db_result_t *res, int row, int col);
const char *db_result_value(const db_result_t *res, int row, int col);
size_t db_result_length(const db_result_t *res, int row, int col);
/* Five-character SQLSTATE of a DB_QUERY_ERROR, "" otherwise. */
const char *db_result_sqlstate(const db_result_t *res);
const char *db_result_constraint(const db_result_t *res);
const char *db_result_message(const db_result_t *res);

#endif
