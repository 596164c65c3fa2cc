/* queries: every SQL statement the service runs, by id.
 *
 * All are prepared on each connection when it connects, and run with text
 * parameters only: no SQL is ever built from request data. The parameter
 * lists are documented beside each statement in queries.c. */
#ifndef TODO_DB_QUERIES_H
#define TODO_DB_QUERIES_H

#include "db/db.h"

typedef enum db_stmt {
    DB_TASK_INSERT,
    DB_TASK_INSERT_IDEMPOTENT,
    DB_IDEMPOTENCY_LOOKUP,
    DB_IDEMPOTENCY_PURGE,
    DB_TASK_GET,
    DB_TASK_UPDATE,
    DB_TASK_COMPLETE,
    DB_TASK_DELETE,
    /* Consumed events (events/handler). */
    DB_EVENT_RECURRENCE_TIMES,
    DB_EVENT_OCCURRENCE_CREATE,
    DB_INBOX_PURGE,
    DB_REMINDER_DELIVERED,
    /* The reminder scheduler (events/reminders). */
    DB_REMINDERS_CLAIM,
    DB_REMINDERS_NEXT,
    DB_REMINDERS_PENDING,
    /* Listing: one statement per sort key and direction. */
    DB_TASK_LIST_CREATED_ASC,
    DB_TASK_LIST_CREATED_DESC,
    DB_TASK_LIST_UPDATED_ASC,
    DB_TASK_LIST_UPDATED_DESC,
    DB_TASK_LIST_DUE_ASC,
    DB_TASK_LIST_DUE_DESC,
    DB_TASK_LIST_PRIORITY_ASC,
    DB_TASK_LIST_PRIORITY_DESC,
    DB_TASK_LIST_TITLE_ASC,
    DB_TASK_LIST_TITLE_DESC,
    DB_STMT_COUNT,
} db_stmt_t;

extern const db_statement_t db_statements[DB_STMT_COUNT];

/* The outbox's own connection (events/outbox): its reads, deletes and the
 * relay's leader lock never queue behind, or in front of, requests'
 * statements in the main pool's pipelines. */
typedef enum db_outbox_stmt {
    DB_OUTBOX_RELAY,
    DB_OUTBOX_READ_SEQS,
    DB_OUTBOX_DELETE,
    DB_OUTBOX_STATS,
    DB_OUTBOX_TRY_LOCK,
    DB_OUTBOX_STMT_COUNT,
} db_outbox_stmt_t;

/* Any fixed number; it only has to differ from the migration lock's. */
#define OUTBOX_RELAY_LOCK_KEY "7320116"

extern const db_statement_t db_outbox_statements[DB_OUTBOX_STMT_COUNT];

/* The channel the reminders trigger notifies (migration 005). */
#define DB_REMINDERS_CHANNEL "todo_reminders"

#endif
