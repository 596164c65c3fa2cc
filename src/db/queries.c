/* queries: the SQL text of every prepared statement. */
#include "db/queries.h"

/* Columns a write takes, as parameters $2..$11 (in this order):
 * title, description, completed, priority, tags (JSON array of strings),
 * due_at (UTC text or NULL), timezone, recurrence, recurrence_from,
 * reminders (JSON array). */
#define TASK_VALUES                                                                   \
    "$2, $3, $4::boolean, $5::task_priority,"                                         \
    " tags_from_json($6::jsonb), $7::timestamptz, $8, $9, $10,"                       \
    " $11::jsonb"

#define TASK_COLUMNS                                                                  \
    "title, description, completed, priority, tags, due_at, timezone, recurrence,"    \
    " recurrence_from, reminders"

/* completed_at follows completed: set when it turns true, kept while it
 * stays true, cleared when false. */
#define TASK_INSERT_BODY                                                              \
    "INSERT INTO tasks (user_id, " TASK_COLUMNS ", completed_at)"                     \
    " SELECT $1, " TASK_VALUES ", CASE WHEN $4::boolean THEN clock_timestamp() END"   \
    " RETURNING id, version, user_id, task_json(tasks) AS body"

/* The outbox row of a write, in the same statement as the change (so in
 * the same transaction): FROM names the CTE holding the changed row, TYPE
 * the event type expression, CHANGED the changed-fields expression (NULL
 * for none), TP the traceparent parameter. Each write answers the row's seq
 * and event text last, so the producer gets them without another query. */
#define OUTBOX_INSERT(FROM, TYPE, ID, USER, BODY, CHANGED, TP)                           \
    "ev AS (INSERT INTO outbox (stream, key, event) SELECT 'tasks', " USER ","          \
    " cloudevent(" TYPE ", 'tasks/' || " ID ", " USER ", " TP "::text,"                  \
    " task_event_data(" USER ", " BODY ", " CHANGED ")) FROM " FROM " RETURNING seq, event)"

/* Listing. $1 user, $2 completed (NULL = any), $3 priorities (JSON array of
 * names, or NULL), $4 tags that must all be present, any case (JSON array, or
 * NULL), $5 full-text
 * query (or NULL), $6 due_before, $7 due_after, $8 cursor key (or NULL),
 * $9 cursor id, $10 row limit (one more than the page, to see if more
 * follow). Each row: id, sort key as text (for the next cursor), task JSON.
 * KEY is the sort expression, KEY_TEXT its exact text form, KEY_PARAM the
 * cursor key as a value of KEY's type, CMP '>' or '<', DIR ASC or DESC. */
#define TASK_LIST(KEY, KEY_TEXT, KEY_PARAM, CMP, DIR)                                  \
    "SELECT t.id, " KEY_TEXT " AS k, task_json(t) AS body FROM tasks t"                \
    " WHERE t.user_id = $1"                                                            \
    " AND ($2::boolean IS NULL OR t.completed = $2::boolean)"                          \
    " AND ($3::jsonb IS NULL OR t.priority = ANY("                                     \
    "      ARRAY(SELECT jsonb_array_elements_text($3::jsonb))::task_priority[]))"       \
    " AND ($4::jsonb IS NULL OR t.tags_folded @> fold_tags("                           \
    "      ARRAY(SELECT jsonb_array_elements_text($4::jsonb))))"                        \
    " AND ($5::text IS NULL OR t.search @@ websearch_to_tsquery('simple', $5::text))"  \
    " AND ($6::timestamptz IS NULL OR t.due_at < $6::timestamptz)"                     \
    " AND ($7::timestamptz IS NULL OR t.due_at >= $7::timestamptz)"                    \
    " AND ($8::text IS NULL OR (" KEY ", t.id) " CMP " (" KEY_PARAM ", $9::bigint))"  \
    " ORDER BY " KEY " " DIR ", t.id " DIR " LIMIT $10::integer"

/* Instants travel in cursors as integer microseconds since the epoch:
 * exact, and independent of the session's DateStyle and TimeZone. */
#define MICROS_TEXT(col) "(extract(epoch FROM " col ") * 1000000)::bigint::text"
#define MICROS_PARAM "(timestamptz 'epoch' + $8::bigint * interval '1 microsecond')"

/* Undated tasks sort last in both directions: +infinity ascending,
 * -infinity descending. */
#define DUE_KEY(inf) "coalesce(t.due_at, '" inf "'::timestamptz)"
#define DUE_TEXT "coalesce(" MICROS_TEXT("t.due_at") ", 'none')"
#define DUE_PARAM(inf)                                                                \
    "(CASE WHEN $8::text = 'none' THEN '" inf "'::timestamptz"                         \
    " ELSE timestamptz 'epoch' + $8::bigint * interval '1 microsecond' END)"

/* The version check shared by every write: $3 is NULL (no If-Match, or
 * "*") or the list of acceptable versions. */
#define VERSION_OK "($3::bigint[] IS NULL OR cur.version = ANY($3::bigint[]))"

/* A local timestamp as rrule_civil_parse() reads it, milliseconds always. */
#define LOCAL_TEXT(x) "to_char(" x ", 'YYYY-MM-DD HH24:MI:SS.MS')"

/* Update and complete: the row before the change, whole, for the event. */
#define CURRENT_ROW                                                                   \
    "cur AS (SELECT t AS old, t.id, t.version, t.completed FROM tasks t"              \
    " WHERE t.id = $2::bigint AND t.user_id = $1 FOR UPDATE)"
#define UPDATED_ROW "RETURNING t AS new, cur.old, t.id, t.user_id, t.version, task_json(t) AS body"
#define UPDATE_EVENT(TP)                                                               \
    OUTBOX_INSERT("upd", "task_update_type((upd.old).completed, (upd.new).completed)",   \
                  "upd.id", "upd.user_id", "upd.body", "task_changes(upd.old, upd.new)", TP)
#define WRITE_ANSWER                                                                  \
    "SELECT (SELECT count(*) FROM cur), (SELECT count(*) FROM upd),"                  \
    " (SELECT version FROM upd), (SELECT body FROM upd), (SELECT seq FROM ev),"       \
    " (SELECT event FROM ev)"
#define INSERT_EVENT(TP)                                                              \
    OUTBOX_INSERT("ins", "'task.created'", "ins.id", "ins.user_id", "ins.body", "NULL", TP)

const db_statement_t db_outbox_statements[DB_OUTBOX_STMT_COUNT] = {
    /* The relay: $1 after this seq, $2 only rows at least this many ms old,
     * $3 at most this many. Answers seq, stream, key, event, age in s. */
    [DB_OUTBOX_RELAY] = {"outbox_relay",
                         "SELECT seq, stream, key, event,"
                         " extract(epoch FROM clock_timestamp() - created_at)::float8"
                         " FROM outbox WHERE seq > $1::bigint"
                         " AND created_at <= clock_timestamp() - $2::integer * interval '1 ms'"
                         " ORDER BY seq LIMIT $3::integer"},

    /* A follower's own waiting rows: $1 a bigint array literal. Answers
     * as outbox_relay, in seq order. */
    [DB_OUTBOX_READ_SEQS] = {"outbox_read_seqs",
                             "SELECT seq, stream, key, event,"
                             " extract(epoch FROM clock_timestamp() - created_at)::float8"
                             " FROM outbox WHERE seq = ANY($1::bigint[]) ORDER BY seq"},

    /* Kafka acknowledged these ($1, a bigint array literal). */
    [DB_OUTBOX_DELETE] = {"outbox_delete", "DELETE FROM outbox WHERE seq = ANY($1::bigint[])"},

    /* Backlog rows (only when $1 is true: counting scans the table), age
     * of the oldest in s, the lowest and highest seq (NULL: empty). The
     * rest are index lookups. */
    [DB_OUTBOX_STATS] = {"outbox_stats",
                         "SELECT CASE WHEN $1::boolean THEN (SELECT count(*) FROM outbox) END,"
                         " coalesce(extract(epoch FROM clock_timestamp() -"
                         " (SELECT created_at FROM outbox ORDER BY seq LIMIT 1)), 0)::float8,"
                         " (SELECT min(seq) FROM outbox), (SELECT max(seq) FROM outbox)"},

    /* $1 the backend pid that took the lock (0: none). Session-level, so
     * the lock lasts until that connection ends: the same backend still has
     * it (and is not asked again, which would stack another hold), another
     * one means a reconnection, which lost it and must try again. */
    [DB_OUTBOX_TRY_LOCK] = {"leader_try_lock",
                            "SELECT CASE WHEN pg_backend_pid() = $1::integer THEN true"
                            " ELSE pg_try_advisory_lock(" OUTBOX_RELAY_LOCK_KEY ") END,"
                            " pg_backend_pid()"},
};

const db_statement_t db_statements[DB_STMT_COUNT] = {
    /* $1 user, $2..$11 TASK_VALUES, $12 traceparent. Answers id, version,
     * body, outbox seq, event. */
    [DB_TASK_INSERT] = {"task_insert",
                        "WITH ins AS (" TASK_INSERT_BODY "), " INSERT_EVENT("$12")
                        " SELECT ins.id, ins.version, ins.body, ev.seq, ev.event FROM ins, ev"},

    /* As task_insert, then $13 key, $14 request hash: the answer is kept
     * with the key in the same statement, so a crash cannot separate them.
     * A concurrent duplicate fails on the key's primary key (23505), and
     * the caller replays the winner's answer (and no second event exists:
     * the failed statement's outbox row went with it). */
    [DB_TASK_INSERT_IDEMPOTENT] =
        {"task_insert_idempotent",
         "WITH ins AS (" TASK_INSERT_BODY "), " INSERT_EVENT("$12") ","
         " key AS (INSERT INTO idempotency_keys (user_id, key, request_hash, task_id, response)"
         " SELECT $1, $13, $14, ins.id, ins.body::text FROM ins)"
         " SELECT ins.id, ins.version, ins.body, ev.seq, ev.event FROM ins, ev"},

    /* $1 user, $2 key: the kept answer if younger than a day. */
    [DB_IDEMPOTENCY_LOOKUP] = {"idempotency_lookup",
                               "SELECT request_hash, task_id, response FROM idempotency_keys"
                               " WHERE user_id = $1 AND key = $2"
                               " AND created_at > now() - interval '24 hours'"},

    /* Keys expire after a day; run now and then. */
    [DB_IDEMPOTENCY_PURGE] = {"idempotency_purge",
                              "DELETE FROM idempotency_keys"
                              " WHERE created_at <= now() - interval '24 hours'"},

    /* $1 user, $2 id. */
    [DB_TASK_GET] = {"task_get",
                     "SELECT t.version, task_json(t) FROM tasks t"
                     " WHERE t.id = $2::bigint AND t.user_id = $1"},

    /* $1 user, $2 id, $3 versions (If-Match), $4 mask of the fields to set
     * (bits as task_field_t), then $5..$14 the values in TASK_VALUES order,
     * $15 traceparent. Answers found (0/1), updated (0/1), version, body,
     * outbox seq and event. */
    [DB_TASK_UPDATE] =
        {"task_update",
         "WITH " CURRENT_ROW ","
         " upd AS (UPDATE tasks t SET"
         " title = CASE WHEN $4::integer & 1 <> 0 THEN $5 ELSE t.title END,"
         " description = CASE WHEN $4::integer & 2 <> 0 THEN $6 ELSE t.description END,"
         " completed = CASE WHEN $4::integer & 4 <> 0 THEN $7::boolean ELSE t.completed END,"
         " completed_at = CASE WHEN $4::integer & 4 = 0 THEN t.completed_at"
         "   WHEN $7::boolean THEN coalesce(t.completed_at, clock_timestamp()) END,"
         " priority = CASE WHEN $4::integer & 8 <> 0 THEN $8::task_priority ELSE t.priority END,"
         " tags = CASE WHEN $4::integer & 16 <> 0"
         "   THEN tags_from_json($9::jsonb) ELSE t.tags END,"
         " due_at = CASE WHEN $4::integer & 32 <> 0 THEN $10::timestamptz ELSE t.due_at END,"
         " timezone = CASE WHEN $4::integer & 64 <> 0 THEN $11 ELSE t.timezone END,"
         " recurrence = CASE WHEN $4::integer & 128 <> 0 THEN $12 ELSE t.recurrence END,"
         " recurrence_from = CASE WHEN $4::integer & 256 <> 0 THEN $13 ELSE t.recurrence_from END,"
         " reminders = CASE WHEN $4::integer & 512 <> 0 THEN $14::jsonb ELSE t.reminders END,"
         " updated_at = clock_timestamp(), version = t.version + 1"
         " FROM cur WHERE t.id = cur.id AND " VERSION_OK " " UPDATED_ROW "),"
         " " UPDATE_EVENT("$15") " " WRITE_ANSWER},

    /* $1 user, $2 id, $3 versions, $4 completed (NULL = toggle), $5
     * traceparent. Answers as task_update. */
    [DB_TASK_COMPLETE] =
        {"task_complete",
         "WITH " CURRENT_ROW ","
         " upd AS (UPDATE tasks t SET"
         " completed = coalesce($4::boolean, NOT cur.completed),"
         " completed_at = CASE WHEN coalesce($4::boolean, NOT cur.completed)"
         "   THEN coalesce(t.completed_at, clock_timestamp()) END,"
         " updated_at = clock_timestamp(), version = t.version + 1"
         " FROM cur WHERE t.id = cur.id AND " VERSION_OK " " UPDATED_ROW "),"
         " " UPDATE_EVENT("$5") " " WRITE_ANSWER},

    /* $1 user, $2 id, $3 versions, $4 traceparent. Answers found, deleted,
     * outbox seq, event (whose task is the last snapshot). */
    [DB_TASK_DELETE] = {"task_delete",
                        "WITH cur AS (SELECT id, version FROM tasks"
                        " WHERE id = $2::bigint AND user_id = $1 FOR UPDATE),"
                        " del AS (DELETE FROM tasks t USING cur"
                        " WHERE t.id = cur.id AND " VERSION_OK
                        " RETURNING t.id, t.user_id, task_json(t) AS body),"
                        " " OUTBOX_INSERT("del", "'task.deleted'", "del.id", "del.user_id",
                                          "del.body", "NULL", "$4")
                        " SELECT (SELECT count(*) FROM cur), (SELECT count(*) FROM del),"
                        " (SELECT seq FROM ev), (SELECT event FROM ev)"},

    /* A completed recurring task's times as local wall clock in its zone:
     * $1 event id, $2 due_at, $3 completed_at, $4 time zone, $5 task id.
     * Answers: event already handled, local due, local completion, the
     * series anchor (NULL when the task is gone). */
    [DB_EVENT_RECURRENCE_TIMES] =
        {"event_recurrence_times",
         "SELECT EXISTS (SELECT 1 FROM inbox WHERE event_id = $1),"
         " " LOCAL_TEXT("$2::timestamptz AT TIME ZONE $4") ","
         " " LOCAL_TEXT("$3::timestamptz AT TIME ZONE $4") ","
         " (SELECT " LOCAL_TEXT("recurrence_anchor") " FROM tasks WHERE id = $5::bigint)"},

    /* The next occurrence of a series, exactly once: $1 event id, $2 the
     * completed task as the event carried it (JSON), $3 its occurrence
     * number, $4 its local due time, $5 the series anchor (local), $6 UNTIL
     * (or NULL), $7 traceparent. The event id, the task and its task.created
     * event commit together; a seen event id or an existing (series_id,
     * occurrence) makes it a no-op. Answers: new event id recorded (0/1),
     * new task id, outbox seq, event, user id. */
    [DB_EVENT_OCCURRENCE_CREATE] =
        {"event_occurrence_create",
         "WITH inbox AS (INSERT INTO inbox (event_id) VALUES ($1)"
         " ON CONFLICT DO NOTHING RETURNING event_id),"
         " src AS (SELECT $2::jsonb AS t, $4::timestamp AT TIME ZONE ($2::jsonb->>'timezone') AS due),"
         " ins AS (INSERT INTO tasks (user_id, title, description, priority, tags, due_at, timezone,"
         " recurrence, recurrence_from, reminders, series_id, occurrence, recurrence_anchor)"
         " SELECT t->>'user_id', t->>'title', t->>'description', (t->>'priority')::task_priority,"
         " tags_from_json(t->'tags'), due, t->>'timezone', t->>'recurrence', t->>'recurrence_from',"
         " reminders_shifted(t->'reminders', due - (t->>'due_at')::timestamptz),"
         " coalesce((t->>'series_id')::bigint, (t->>'id')::bigint), $3::integer, $5::timestamp"
         " FROM src, inbox WHERE $6::timestamptz IS NULL OR due <= $6::timestamptz"
         " ON CONFLICT (series_id, occurrence) DO NOTHING"
         " RETURNING id, version, user_id, task_json(tasks) AS body),"
         " " INSERT_EVENT("$7")
         " SELECT (SELECT count(*) FROM inbox), (SELECT id FROM ins), (SELECT seq FROM ev),"
         " (SELECT event FROM ev), (SELECT user_id FROM ins)"},

    /* Inbox entries older than a week: occurrences stay unique per series
     * without them. */
    [DB_INBOX_PURGE] = {"inbox_purge",
                        "DELETE FROM inbox WHERE received_at < now() - interval '7 days'"},

    /* reminder.due came back: $1 task id, $2 remind_at. Answers a row only
     * the first time (a redelivery finds delivered_at set); a reminder
     * whose task is gone answers none either. */
    [DB_REMINDER_DELIVERED] = {"reminder_delivered",
                               "UPDATE reminders SET delivered_at = clock_timestamp()"
                               " WHERE task_id = $1::bigint AND remind_at = $2::timestamptz"
                               " AND delivered_at IS NULL RETURNING 1"},

    /* Fires up to $1 due reminders: claims them (rows another process is
     * claiming right now are skipped, not waited for), marks them fired
     * and writes their reminder.due events to the outbox, in one statement
     * and so one transaction: a claim that fails or dies with its
     * connection leaves them unfired for the next claim. $2: lateness (ms)
     * from which one counts as late. Answers per reminder: outbox seq, key,
     * event, lateness in ms, in seq order. */
    [DB_REMINDERS_CLAIM] =
        {"reminders_claim",
         "WITH due AS (SELECT task_id, remind_at FROM reminders"
         " WHERE fired_at IS NULL AND remind_at <= clock_timestamp()"
         " ORDER BY remind_at LIMIT $1::integer FOR UPDATE SKIP LOCKED),"
         " fired AS (UPDATE reminders r SET fired_at = clock_timestamp() FROM due"
         " WHERE r.task_id = due.task_id AND r.remind_at = due.remind_at"
         " RETURNING r.task_id, r.remind_at,"
         " floor(extract(epoch FROM r.fired_at - r.remind_at) * 1000)::bigint AS lateness),"
         " ev AS (INSERT INTO outbox (stream, key, event)"
         " SELECT 'reminders', t.user_id, cloudevent('reminder.due', 'tasks/' || t.id, t.user_id,"
         " NULL, json_build_object('task_id', t.id, 'user_id', t.user_id, 'title', t.title,"
         " 'due_at', utc_text(t.due_at), 'remind_at', utc_text(f.remind_at),"
         " 'lateness_ms', f.lateness, 'late', f.lateness >= $2::bigint))"
         " FROM fired f JOIN tasks t ON t.id = f.task_id ORDER BY f.remind_at, f.task_id"
         " RETURNING seq, key, event)"
         " SELECT seq, key, event, (event::json #>> '{data,lateness_ms}')::bigint FROM ev"
         " ORDER BY seq"},

    /* The earliest unfired reminder: ms from now until it is due (by the
     * database's clock, so the hosts' clocks never matter; <= 0: due) and
     * its time in ms since the epoch (to compare NOTIFY payloads with).
     * NULLs: none. */
    [DB_REMINDERS_NEXT] = {"reminders_next",
                           "SELECT ceil(extract(epoch FROM m - clock_timestamp()) * 1000)::bigint,"
                           " floor(extract(epoch FROM m) * 1000)::bigint"
                           " FROM (SELECT min(remind_at) AS m FROM reminders"
                           " WHERE fired_at IS NULL) s"},

    /* Unfired reminders, for /metrics (an index-only count). */
    [DB_REMINDERS_PENDING] = {"reminders_pending",
                              "SELECT count(*) FROM reminders WHERE fired_at IS NULL"},

    [DB_TASK_LIST_CREATED_ASC] = {"task_list_created_asc",
                                  TASK_LIST("t.created_at", MICROS_TEXT("t.created_at"),
                                            MICROS_PARAM, ">", "ASC")},
    [DB_TASK_LIST_CREATED_DESC] = {"task_list_created_desc",
                                   TASK_LIST("t.created_at", MICROS_TEXT("t.created_at"),
                                             MICROS_PARAM, "<", "DESC")},
    [DB_TASK_LIST_UPDATED_ASC] = {"task_list_updated_asc",
                                  TASK_LIST("t.updated_at", MICROS_TEXT("t.updated_at"),
                                            MICROS_PARAM, ">", "ASC")},
    [DB_TASK_LIST_UPDATED_DESC] = {"task_list_updated_desc",
                                   TASK_LIST("t.updated_at", MICROS_TEXT("t.updated_at"),
                                             MICROS_PARAM, "<", "DESC")},
    [DB_TASK_LIST_DUE_ASC] = {"task_list_due_asc",
                              TASK_LIST(DUE_KEY("infinity"), DUE_TEXT, DUE_PARAM("infinity"), ">",
                                        "ASC")},
    [DB_TASK_LIST_DUE_DESC] = {"task_list_due_desc",
                               TASK_LIST(DUE_KEY("-infinity"), DUE_TEXT, DUE_PARAM("-infinity"),
                                         "<", "DESC")},
    [DB_TASK_LIST_PRIORITY_ASC] = {"task_list_priority_asc",
                                   TASK_LIST("t.priority", "t.priority::text",
                                             "$8::task_priority", ">", "ASC")},
    [DB_TASK_LIST_PRIORITY_DESC] = {"task_list_priority_desc",
                                    TASK_LIST("t.priority", "t.priority::text",
                                              "$8::task_priority", "<", "DESC")},
    [DB_TASK_LIST_TITLE_ASC] = {"task_list_title_asc",
                                TASK_LIST("(t.title COLLATE \"C\")", "t.title",
                                          "($8::text COLLATE \"C\")", ">", "ASC")},
    [DB_TASK_LIST_TITLE_DESC] = {"task_list_title_desc",
                                 TASK_LIST("(t.title COLLATE \"C\")", "t.title",
                                           "($8::text COLLATE \"C\")", "<", "DESC")},
};
