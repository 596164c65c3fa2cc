/* reminders: the scheduler that fires each due reminder exactly once.
 *
 * Every process runs one; they coordinate only through PostgreSQL. Each
 * sleeps on one uv_timer until the earliest unfired reminder (asking the
 * database how far away it is), then claims what is due in one statement
 * (db/queries.c, reminders_claim): the rows are locked with SKIP LOCKED, so
 * two processes waking together split the work instead of queueing, marked
 * fired, and their reminder.due events go into the outbox, all in one
 * transaction. The claiming statement is the lease: if it fails, times
 * out (statement_timeout) or its process dies, the transaction rolls back
 * and the rows are the next claim's; once it commits, the events are in
 * the outbox, which publishes them whatever happens to this process.
 *
 * The sleep is cut short by a local write that touched reminders, by a
 * NOTIFY from the trigger that adds reminder rows (any process's writes,
 * through the outbox's listening connection), and it never exceeds the
 * polling backstop, which covers a notification lost while no connection
 * listened. A reminder that fell due while nothing ran is simply due at
 * start and fires then, marked late. */
#ifndef TODO_EVENTS_REMINDERS_H
#define TODO_EVENTS_REMINDERS_H

#include <uv.h>

#include "core/buf.h"
#include "db/db.h"
#include "events/outbox.h"

typedef struct events_reminders events_reminders_t;

/* poll_ms: the backstop (REMINDERS_POLL_MS). */
events_reminders_t *events_reminders_new(uv_loop_t *loop, db_pool_t *db, events_outbox_t *outbox,
                                         int poll_ms);
void events_reminders_start(events_reminders_t *r);
/* A write of this process changed some task's reminders (or its due time). */
void events_reminders_changed(events_reminders_t *r);
/* db_config_t.on_notify of the listening pool: payload is the earliest new
 * reminder's time, or NULL when listening (re)started. */
void events_reminders_notified(void *r, const char *payload);
/* ops/metrics collector. */
int events_reminders_collect_metrics(buf_t *out, void *r);
/* Stops scheduling; a claim in flight finishes (its events reach the
 * outbox); then cb. Call before the outbox and the pool close. */
void events_reminders_close(events_reminders_t *r, void (*cb)(void *arg), void *arg);
void events_reminders_free(events_reminders_t *r);

#endif
