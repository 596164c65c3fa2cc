/* handler: see handler.h. Two events have an effect:
 *
 * task.completed of a recurring task creates the next occurrence:
 *   parse + validate ──► RECURRENCE_TIMES (local wall clock, anchor, seen?)
 *                    ──► rrule_next() ──► OCCURRENCE_CREATE (inbox + task +
 *                        its task.created outbox row, one statement)
 *
 * reminder.due records its delivery (reminders.delivered_at, set once):
 * telling a person is a downstream subscriber's job (docs/events.md).
 */
#include "events/handler.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/timefmt.h"
#include "core/timeparse.h"
#include "db/queries.h"
#include "domain/rrule.h"
#include "http/request.h"
#include "ops/metrics.h"

#define EVENT_ID_MAX 128
#define TRACEPARENT_MAX 55

struct events_handler {
    db_pool_t *pool;
    events_outbox_t *outbox;
    uint64_t handled[3]; /* by verdict */
    uint64_t reminders_delivered;
};

/* One event on its way through the two statements. */
typedef struct handling {
    events_handler_t *h;
    events_handled_cb cb;
    void *arg;
    char event_id[EVENT_ID_MAX + 1];
    char traceparent[TRACEPARENT_MAX + 1];
    char *task_json; /* data.task, compact */
    char task_id[24];
    int occurrence;
    rrule_t rule;
    bool from_completion;
    char until[32]; /* UTC instant, "" when none */
    char due[32], completed[32], timezone[128];
    char remind_at[32]; /* reminder.due */
} handling_t;

const char *events_verdict_name(events_verdict_t v)
{
    return v == EVENTS_SUCCESS ? "SUCCESS" : v == EVENTS_RETRY ? "RETRY" : "DROP";
}

static void finish(handling_t *x, events_verdict_t verdict, const char *reason)
{
    x->h->handled[verdict]++;
    if (verdict != EVENTS_SUCCESS)
        log_info("event not handled", LOG_STR("verdict", events_verdict_name(verdict)),
                 LOG_STR("reason", reason), LOG_STR("event_id", x->event_id));
    x->cb(x->arg, verdict, verdict == EVENTS_SUCCESS ? NULL : reason);
    free(x->task_json);
    free(x);
}

/* A database failure: transient unless the event itself was bad. */
static void finish_db_error(handling_t *x, db_status_t status, const db_result_t *res)
{
    if (status == DB_UNAVAILABLE) {
        events_outbox_uncertain(x->h->outbox); /* the occurrence may have committed */
        finish(x, EVENTS_RETRY, "database unavailable");
        return;
    }
    const char *state = db_result_sqlstate(res);
    char reason[256];
    snprintf(reason, sizeof reason, "database error %s: %s", state, db_result_message(res));
    /* Classes 22 and 23: a value in the event PostgreSQL cannot take (a
     * bad zone, an impossible date, a missing title): retrying would fail
     * the same way. The rest (timeouts, conflicts, lost connections) may
     * pass next time. */
    bool bad_event = strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0;
    finish(x, bad_event ? EVENTS_DROP : EVENTS_RETRY, reason);
}

static void on_occurrence_created(void *arg, db_status_t status, const db_result_t *res)
{
    handling_t *x = arg;
    if (status != DB_OK) {
        finish_db_error(x, status, res);
        return;
    }
    if (!db_result_is_null(res, 0, 1)) {
        events_outbox_committed(x->h->outbox, EVENTS_STREAM_TASKS, db_result_value(res, 0, 2),
                                db_result_value(res, 0, 4), db_result_value(res, 0, 3),
                                db_result_length(res, 0, 3));
        log_info("recurring task: next occurrence created", LOG_STR("task_id", x->task_id),
                 LOG_STR("new_task_id", db_result_value(res, 0, 1)),
                 LOG_INT("occurrence", x->occurrence + 1));
    }
    finish(x, EVENTS_SUCCESS, NULL);
}

static void on_recurrence_times(void *arg, db_status_t status, const db_result_t *res)
{
    handling_t *x = arg;
    if (status != DB_OK) {
        finish_db_error(x, status, res);
        return;
    }
    if (strcmp(db_result_value(res, 0, 0), "t") == 0) {
        finish(x, EVENTS_SUCCESS, NULL); /* seen before: its effect is committed */
        return;
    }
    rrule_civil_t due, anchor, after, next;
    if (rrule_civil_parse(db_result_value(res, 0, 1), &due) != 0) {
        finish(x, EVENTS_DROP, "unreadable due time");
        return;
    }
    anchor = due;
    if (!db_result_is_null(res, 0, 3) && rrule_civil_parse(db_result_value(res, 0, 3), &anchor) != 0)
        anchor = due;
    after = due;
    if (x->from_completion) {
        /* Counted from the completion day, at the series' time of day. */
        rrule_civil_t done;
        if (db_result_is_null(res, 0, 2) || rrule_civil_parse(db_result_value(res, 0, 2), &done) != 0) {
            finish(x, EVENTS_DROP, "recurrence_from=completion without completed_at");
            return;
        }
        anchor.year = done.year;
        anchor.month = done.month;
        anchor.day = done.day;
        after = anchor;
    }
    int rc = rrule_next(&x->rule, &anchor, &after, &next, NULL);
    if (rc == 1 || (rc == 0 && x->rule.count > 0 && x->occurrence + 1 > x->rule.count)) {
        finish(x, EVENTS_SUCCESS, NULL); /* the series is over */
        return;
    }
    if (rc != 0) {
        finish(x, EVENTS_DROP, "the rule has no next occurrence");
        return;
    }
    char next_text[32], anchor_text[32], occurrence[16];
    rrule_civil_format(&next, next_text, sizeof next_text);
    /* From completion, each occurrence anchors the series afresh. */
    rrule_civil_format(x->from_completion ? &next : &anchor, anchor_text, sizeof anchor_text);
    snprintf(occurrence, sizeof occurrence, "%d", x->occurrence + 1);
    const char *values[7] = {x->event_id,  x->task_json,  occurrence,
                             next_text,    anchor_text,   x->until[0] ? x->until : NULL,
                             x->traceparent[0] ? x->traceparent : NULL};
    if (db_query(x->h->pool, DB_EVENT_OCCURRENCE_CREATE, 7, values, on_occurrence_created, x) !=
        DB_OK)
        finish(x, EVENTS_RETRY, "database unavailable");
}

static const char *string_member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* UNTIL as the UTC instant PostgreSQL reads; a date-only UNTIL is its
 * whole day (rrule_parse stores the end of that day). */
static void format_until(const rrule_t *r, char *out, size_t outlen)
{
    out[0] = '\0';
    if (r->has_until && outlen > TIMEFMT_RFC3339_LEN)
        timefmt_rfc3339(r->until_ms, out);
}

/* task.completed: a recurring task gets its next occurrence. */
static void handle_completed(handling_t *x, json_t *task)
{
    const char *rule = string_member(task, "recurrence");
    json_t *completed = json_object_get(task, "completed");
    if (!rule || !json_is_true(completed)) {
        finish(x, EVENTS_SUCCESS, NULL); /* not recurring, or no longer completed */
        return;
    }
    const char *due = string_member(task, "due_at");
    const char *tz = string_member(task, "timezone");
    const char *from = string_member(task, "recurrence_from");
    json_t *id = json_object_get(task, "id");
    json_t *occurrence = json_object_get(task, "occurrence");
    char err[128];
    if (!due || !tz || strlen(tz) >= sizeof x->timezone || !json_is_integer(id) ||
        strlen(due) >= sizeof x->due) {
        finish(x, EVENTS_DROP, "a recurring task needs id, due_at and timezone");
        return;
    }
    /* The snapshot's instants go to PostgreSQL, which would also take
     * words like "yesterday": only RFC 3339 passes. */
    const char *completed_at = string_member(task, "completed_at");
    int64_t ms;
    if (timeparse_rfc3339(due, strlen(due), &ms) != 0 ||
        (completed_at && (strlen(completed_at) >= sizeof x->completed ||
                          timeparse_rfc3339(completed_at, strlen(completed_at), &ms) != 0))) {
        finish(x, EVENTS_DROP, "due_at and completed_at must be RFC 3339 instants");
        return;
    }
    if (!json_is_null(occurrence) && occurrence &&
        (!json_is_integer(occurrence) || json_integer_value(occurrence) < 1 ||
         json_integer_value(occurrence) >= INT32_MAX)) {
        finish(x, EVENTS_DROP, "occurrence must be a positive integer");
        return;
    }
    if (rrule_parse(rule, strlen(rule), &x->rule, err, sizeof err) != 0) {
        finish(x, EVENTS_DROP, "the task's recurrence is not a valid rule");
        return;
    }
    x->from_completion = from && strcmp(from, "completion") == 0;
    x->occurrence = json_is_integer(occurrence) ? (int)json_integer_value(occurrence) : 1;
    snprintf(x->task_id, sizeof x->task_id, "%lld", (long long)json_integer_value(id));
    snprintf(x->due, sizeof x->due, "%s", due);
    snprintf(x->timezone, sizeof x->timezone, "%s", tz);
    snprintf(x->completed, sizeof x->completed, "%s", completed_at ? completed_at : "");
    format_until(&x->rule, x->until, sizeof x->until);
    x->task_json = json_dumps(task, JSON_COMPACT);
    if (!x->task_json) {
        finish(x, EVENTS_RETRY, "out of memory");
        return;
    }
    const char *values[5] = {x->event_id, x->due, x->completed[0] ? x->completed : NULL,
                             x->timezone, x->task_id};
    if (db_query(x->h->pool, DB_EVENT_RECURRENCE_TIMES, 5, values, on_recurrence_times, x) !=
        DB_OK)
        finish(x, EVENTS_RETRY, "database unavailable");
}

static void on_reminder_delivered(void *arg, db_status_t status, const db_result_t *res)
{
    handling_t *x = arg;
    if (status == DB_UNAVAILABLE) {
        finish(x, EVENTS_RETRY, "database unavailable");
        return;
    }
    if (status != DB_OK) {
        finish_db_error(x, status, res);
        return;
    }
    /* No row: delivered before (a redelivery), or the task is gone. */
    if (db_result_rows(res) == 1)
        x->h->reminders_delivered++;
    finish(x, EVENTS_SUCCESS, NULL);
}

/* reminder.due: marks the reminder delivered. Idempotent by itself (only
 * an undelivered row changes), so no inbox entry is needed. */
static void handle_reminder(handling_t *x, json_t *data)
{
    json_t *id = json_object_get(data, "task_id");
    const char *remind_at = string_member(data, "remind_at");
    if (!json_is_integer(id) || json_integer_value(id) < 1) {
        finish(x, EVENTS_DROP, "data.task_id must be a positive integer");
        return;
    }
    int64_t ms;
    if (!remind_at || strlen(remind_at) >= sizeof x->remind_at ||
        timeparse_rfc3339(remind_at, strlen(remind_at), &ms) != 0) {
        finish(x, EVENTS_DROP, "data.remind_at must be an RFC 3339 instant");
        return;
    }
    snprintf(x->task_id, sizeof x->task_id, "%lld", (long long)json_integer_value(id));
    snprintf(x->remind_at, sizeof x->remind_at, "%s", remind_at);
    const char *values[2] = {x->task_id, x->remind_at};
    if (db_query(x->h->pool, DB_REMINDER_DELIVERED, 2, values, on_reminder_delivered, x) != DB_OK)
        finish(x, EVENTS_RETRY, "database unavailable");
}

static bool known_task_type(const char *type)
{
    static const char *const types[] = {"task.created", "task.updated", "task.completed",
                                        "task.uncompleted", "task.deleted"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(type, types[i]) == 0)
            return true;
    return false;
}

/* The attributes every event must carry (CloudEvents 1.0 required ones
 * plus what this service relies on); NULL when fine, else why not. */
static const char *envelope_problem(json_t *doc, events_stream_t stream)
{
    if (!json_is_object(doc))
        return "the event is not a JSON object";
    const char *specversion = string_member(doc, "specversion");
    const char *id = string_member(doc, "id");
    const char *type = string_member(doc, "type");
    if (!specversion || !id || !string_member(doc, "source") || !type)
        return "missing a required attribute (specversion, id, source, type)";
    if (strcmp(specversion, "1.0") != 0)
        return "specversion is not 1.0";
    if (!id[0] || strlen(id) > EVENT_ID_MAX)
        return "id is empty or too long";
    if (stream == EVENTS_STREAM_TASKS && !known_task_type(type))
        return "unknown event type for the tasks topic";
    if (stream == EVENTS_STREAM_REMINDERS && strcmp(type, "reminder.due") != 0)
        return "unknown event type for the reminders topic";
    json_t *data = json_object_get(doc, "data");
    if (!json_is_object(data))
        return "data is missing or not an object";
    if (stream == EVENTS_STREAM_TASKS) {
        json_t *task = json_object_get(data, "task");
        const char *user = string_member(data, "user_id");
        if (!json_is_object(task) || !user)
            return "data needs user_id and task";
        const char *owner = string_member(task, "user_id");
        if (!owner || strcmp(owner, user) != 0)
            return "data.task.user_id differs from data.user_id";
    }
    return NULL;
}

void events_handle(events_handler_t *h, events_stream_t stream, const char *event, size_t len,
                   events_handled_cb cb, void *arg)
{
    handling_t *x = calloc(1, sizeof *x);
    if (!x) {
        h->handled[EVENTS_RETRY]++;
        cb(arg, EVENTS_RETRY, "out of memory");
        return;
    }
    x->h = h;
    x->cb = cb;
    x->arg = arg;
    json_error_t jerr;
    json_t *doc = json_loadb(event, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        finish(x, EVENTS_DROP, "the event is not valid JSON");
        return;
    }
    const char *problem = envelope_problem(doc, stream);
    if (problem) {
        json_decref(doc);
        finish(x, EVENTS_DROP, problem);
        return;
    }
    snprintf(x->event_id, sizeof x->event_id, "%s", string_member(doc, "id"));
    /* Carried into the new occurrence's event only when well-formed. */
    const char *tp = string_member(doc, "traceparent");
    if (tp && strlen(tp) == TRACEPARENT_MAX && http_traceparent_valid(tp, TRACEPARENT_MAX))
        memcpy(x->traceparent, tp, TRACEPARENT_MAX + 1);
    const char *type = string_member(doc, "type");
    if (strcmp(type, "task.completed") == 0)
        handle_completed(x, json_object_get(json_object_get(doc, "data"), "task"));
    else if (strcmp(type, "reminder.due") == 0)
        handle_reminder(x, json_object_get(doc, "data"));
    else
        finish(x, EVENTS_SUCCESS, NULL); /* nothing to do for the others */
    json_decref(doc);
}

events_handler_t *events_handler_new(db_pool_t *pool, events_outbox_t *outbox)
{
    events_handler_t *h = calloc(1, sizeof *h);
    if (h) {
        h->pool = pool;
        h->outbox = outbox;
    }
    return h;
}

void events_handler_free(events_handler_t *h)
{
    free(h);
}

static void on_inbox_purged(void *arg, db_status_t status, const db_result_t *res)
{
    (void)arg;
    if (status == DB_QUERY_ERROR)
        log_warn("inbox purge failed", LOG_STR("error", db_result_message(res)));
}

void events_handler_purge(events_handler_t *h)
{
    (void)db_query(h->pool, DB_INBOX_PURGE, 0, NULL, on_inbox_purged, NULL);
}

int events_handler_collect_metrics(buf_t *out, void *arg)
{
    events_handler_t *h = arg;
    int rc = buf_append_str(out, "# HELP todo_events_handled_total Consumed events by verdict\n"
                                 "# TYPE todo_events_handled_total counter\n");
    for (int v = 0; v < 3 && !rc; v++) {
        char lower[8];
        const char *name = events_verdict_name((events_verdict_t)v);
        size_t i = 0;
        for (; name[i] && i + 1 < sizeof lower; i++)
            lower[i] = (char)(name[i] | 0x20);
        lower[i] = '\0';
        rc = buf_printf(out, "todo_events_handled_total{verdict=\"%s\"} %llu\n", lower,
                        (unsigned long long)h->handled[v]);
    }
    rc = rc ? rc
            : metrics_write_counter(out, "todo_reminders_delivered_total",
                                    "reminder.due events this process received first (a "
                                    "redelivery is not counted)",
                                    (double)h->reminders_delivered);
    return rc;
}
