/* reminders: see reminders.h. The cycle:
 *
 *   timer ─► claim ─► hand rows to the outbox ─► look (next due) ─► timer
 *                 └─ full batch: claim again at once
 *   NOTIFY / local change ─► look (only when it may be earlier than known)
 *
 * At most one claim and one look are in flight; a look asked for while one
 * runs is run again after it, since that one may have missed the change. */
#include "events/reminders.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "db/queries.h"
#include "domain/reminders.h"
#include "ops/metrics.h"

/* The pending count (a database-wide index count) is refreshed this often. */
#define STATS_MS 10000
/* After a failed statement (database down): try again this soon, or at the
 * backstop if that is sooner. */
#define ERROR_RETRY_MS 1000

struct events_reminders {
    uv_loop_t *loop;
    db_pool_t *db;
    events_outbox_t *outbox;
    int64_t poll_ms;

    uv_timer_t wake, stats;
    bool claiming, looking, look_again, counting;
    /* What the claim before the next look fired; -1 when that look was
     * asked for by a notification or a local change instead. */
    int claimed;
    int64_t known_at_ms; /* the earliest unfired reminder we know of (db clock) */

    int64_t pending;
    uint64_t fired, late, failed_claims;
    double lateness_sum_s;
    reminders_window_t window;

    bool closing;
    int open_handles;
    void (*closed_cb)(void *);
    void *closed_arg;
};

static void look(events_reminders_t *r);
static void maybe_closed(events_reminders_t *r);

static void sleep_for(events_reminders_t *r, int64_t ms);

static void on_wake(uv_timer_t *t);

static void on_claimed(void *arg, db_status_t status, const db_result_t *res)
{
    events_reminders_t *r = arg;
    r->claiming = false;
    if (status != DB_OK) {
        r->failed_claims++;
        if (status == DB_UNAVAILABLE)
            events_outbox_uncertain(r->outbox); /* it may have committed */
        else
            log_warn("reminder claim failed", LOG_STR("error", db_result_message(res)));
        if (r->closing)
            maybe_closed(r);
        else
            sleep_for(r, ERROR_RETRY_MS);
        return;
    }
    int rows = db_result_rows(res);
    for (int i = 0; i < rows; i++) {
        events_outbox_committed(r->outbox, EVENTS_STREAM_REMINDERS, db_result_value(res, i, 0),
                                db_result_value(res, i, 1), db_result_value(res, i, 2),
                                db_result_length(res, i, 2));
        int64_t lateness = strtoll(db_result_value(res, i, 3), NULL, 10);
        if (lateness < 0)
            lateness = 0;
        reminders_window_add(&r->window, lateness);
        r->lateness_sum_s += (double)lateness / 1000.0;
        r->fired++;
        if (lateness >= REMINDERS_LATE_MS)
            r->late++;
    }
    if (rows > 0)
        log_debug("reminders fired", LOG_INT("count", rows));
    if (r->closing) {
        maybe_closed(r);
        return;
    }
    r->claimed = rows;
    look(r);
}

static void claim(events_reminders_t *r)
{
    if (r->claiming || r->closing)
        return;
    char batch[16], late[16];
    snprintf(batch, sizeof batch, "%d", REMINDERS_BATCH);
    snprintf(late, sizeof late, "%d", REMINDERS_LATE_MS);
    const char *values[2] = {batch, late};
    r->claiming = true;
    if (db_query(r->db, DB_REMINDERS_CLAIM, 2, values, on_claimed, r) != DB_OK) {
        r->claiming = false;
        sleep_for(r, ERROR_RETRY_MS);
    }
}

static void on_wake(uv_timer_t *t)
{
    claim(t->data);
}

static void sleep_for(events_reminders_t *r, int64_t ms)
{
    if (r->closing)
        return;
    if (ms > r->poll_ms)
        ms = r->poll_ms;
    if (ms < 0)
        ms = 0;
    /* The loop's clock was read when this iteration began; the delay is
     * from now. Measured from the stale reading, the timer would fire
     * early, the claim would find nothing due yet, and the look after it
     * would take the reminder for another process's (a 25 ms pause). */
    uv_update_time(r->loop);
    uv_timer_start(&r->wake, on_wake, (uint64_t)ms, 0);
}

static void on_looked(void *arg, db_status_t status, const db_result_t *res)
{
    events_reminders_t *r = arg;
    r->looking = false;
    if (r->closing) {
        maybe_closed(r);
        return;
    }
    reminders_pass_t pass = {.after_claim = r->claimed >= 0, .claimed = r->claimed};
    r->claimed = -1;
    if (status != DB_OK) {
        if (status == DB_QUERY_ERROR)
            log_warn("reminder look-up failed", LOG_STR("error", db_result_message(res)));
        sleep_for(r, ERROR_RETRY_MS);
        return;
    }
    if (r->look_again) {
        /* A change arrived while this ran and may be missing from it. */
        r->look_again = false;
        look(r);
        return;
    }
    pass.pending = !db_result_is_null(res, 0, 0);
    if (pass.pending) {
        pass.due_in_ms = strtoll(db_result_value(res, 0, 0), NULL, 10);
        r->known_at_ms = strtoll(db_result_value(res, 0, 1), NULL, 10);
    } else {
        r->known_at_ms = REMINDERS_NONE;
    }
    if (r->claiming)
        return; /* its own look follows */
    sleep_for(r, reminders_sleep_ms(&pass, r->poll_ms));
}

/* Asks the database for the next reminder, then sleeps until it. */
static void look(events_reminders_t *r)
{
    if (r->closing)
        return;
    if (r->looking) {
        r->look_again = true;
        return;
    }
    r->looking = true;
    if (db_query(r->db, DB_REMINDERS_NEXT, 0, NULL, on_looked, r) != DB_OK) {
        r->looking = false;
        sleep_for(r, ERROR_RETRY_MS);
    }
}

void events_reminders_notified(void *arg, const char *payload)
{
    events_reminders_t *r = arg;
    if (!r || r->closing)
        return;
    if (r->looking) {
        r->look_again = true;
        return;
    }
    /* A claim running now looks afterwards, and this change committed
     * before the notification was sent, so that look will see it. */
    if (r->claiming)
        return;
    if (reminders_wakes(reminders_payload_ms(payload), r->known_at_ms))
        look(r);
}

void events_reminders_changed(events_reminders_t *r)
{
    events_reminders_notified(r, NULL);
}

static void on_counted(void *arg, db_status_t status, const db_result_t *res)
{
    events_reminders_t *r = arg;
    r->counting = false;
    if (status == DB_OK && db_result_rows(res) == 1)
        r->pending = strtoll(db_result_value(res, 0, 0), NULL, 10);
    if (r->closing)
        maybe_closed(r);
}

static void on_stats(uv_timer_t *t)
{
    events_reminders_t *r = t->data;
    if (r->counting || r->closing)
        return;
    r->counting = true;
    if (db_query(r->db, DB_REMINDERS_PENDING, 0, NULL, on_counted, r) != DB_OK)
        r->counting = false;
}

events_reminders_t *events_reminders_new(uv_loop_t *loop, db_pool_t *db, events_outbox_t *outbox,
                                         int poll_ms)
{
    events_reminders_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->loop = loop;
    r->db = db;
    r->outbox = outbox;
    r->poll_ms = poll_ms > 0 ? poll_ms : 1;
    r->known_at_ms = REMINDERS_NONE;
    r->claimed = -1;
    r->pending = -1;
    uv_timer_init(loop, &r->wake);
    uv_timer_init(loop, &r->stats);
    r->wake.data = r->stats.data = r;
    r->open_handles = 2;
    return r;
}

void events_reminders_start(events_reminders_t *r)
{
    /* Whatever fell due while nothing ran is due now: the first look
     * finds it and the claim fires it, late. The pool queues both until
     * a connection is ready. */
    look(r);
    uv_timer_start(&r->stats, on_stats, 0, STATS_MS);
}

int events_reminders_collect_metrics(buf_t *out, void *arg)
{
    events_reminders_t *r = arg;
    int rc = 0;
    if (r->pending >= 0)
        rc = metrics_write_gauge(out, "todo_reminders_pending",
                                 "Unfired reminders in the database (counted every 10 s)",
                                 (double)r->pending);
    rc = rc ? rc
            : metrics_write_counter(out, "todo_reminders_fired_total",
                                    "Reminders this process fired", (double)r->fired);
    rc = rc ? rc
            : metrics_write_counter(out, "todo_reminders_late_total",
                                    "Reminders this process fired at least 5 s after their time",
                                    (double)r->late);
    rc = rc ? rc
            : metrics_write_counter(out, "todo_reminders_claims_failed_total",
                                    "Claim statements that failed (database unavailable or error)",
                                    (double)r->failed_claims);
    rc = rc ? rc
            : metrics_write_gauge(out, "todo_reminders_listening",
                                  "1 when a connection LISTENs for other processes' reminders",
                                  events_outbox_listening(r->outbox));
    rc = rc ? rc
            : buf_append_str(out, "# HELP todo_reminders_lateness_seconds From a reminder's time "
                                  "to its firing, over the last 1024 this process fired\n"
                                  "# TYPE todo_reminders_lateness_seconds summary\n");
    static const double quantiles[] = {0.5, 0.9, 0.99};
    for (size_t i = 0; i < sizeof quantiles / sizeof quantiles[0] && !rc; i++)
        rc = buf_printf(out, "todo_reminders_lateness_seconds{quantile=\"%g\"} %.3f\n",
                        quantiles[i],
                        (double)reminders_window_quantile(&r->window, quantiles[i]) / 1000.0);
    rc = rc ? rc
            : buf_printf(out,
                         "todo_reminders_lateness_seconds_sum %.3f\n"
                         "todo_reminders_lateness_seconds_count %" PRIu64 "\n",
                         r->lateness_sum_s, r->fired);
    return rc;
}

static void on_handle_closed(uv_handle_t *h)
{
    events_reminders_t *r = h->data;
    r->open_handles--;
    maybe_closed(r);
}

static void maybe_closed(events_reminders_t *r)
{
    if (!r->closing || r->claiming || r->looking || r->counting)
        return;
    if (r->open_handles == 2) {
        uv_close((uv_handle_t *)&r->wake, on_handle_closed);
        uv_close((uv_handle_t *)&r->stats, on_handle_closed);
        return;
    }
    if (r->open_handles == 0 && r->closed_cb) {
        void (*cb)(void *) = r->closed_cb;
        r->closed_cb = NULL;
        cb(r->closed_arg);
    }
}

void events_reminders_close(events_reminders_t *r, void (*cb)(void *arg), void *arg)
{
    r->closing = true;
    r->closed_cb = cb;
    r->closed_arg = arg;
    uv_timer_stop(&r->wake);
    uv_timer_stop(&r->stats);
    maybe_closed(r);
}

void events_reminders_free(events_reminders_t *r)
{
    free(r);
}
