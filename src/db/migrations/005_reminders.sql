-- Reminders that fire: one row per distinct reminder time of an open task,
-- kept in step with tasks.reminders by a trigger, so the scheduler finds
-- the next one by index and claims due ones with row locks.

-- A reminder's time. "at" is absolute. "before" counts back from due_at in
-- the task's zone: its days are calendar days (RFC 5545: nominal), so one
-- day before 09:00 is 09:00 the day before even across a DST change; its
-- hours, minutes and seconds are exact. Until now the days were counted in
-- the server's TimeZone setting, whatever that was.
CREATE FUNCTION reminder_time(r jsonb, due_at timestamptz, tz text) RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN r ? 'at' THEN (r->>'at')::timestamptz
                ELSE ((due_at AT TIME ZONE tz) - date_trunc('day', (r->>'before')::interval))
                         AT TIME ZONE tz
                     - ((r->>'before')::interval - date_trunc('day', (r->>'before')::interval))
           END
    $$;

-- Fired rows stay (until the task goes) so that an edit which keeps a
-- reminder's time, or completing and reopening the task, never fires it
-- twice. Two reminders with the same time are one row: one notification.
CREATE TABLE reminders (
    task_id       bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    remind_at     timestamptz NOT NULL,
    fired_at      timestamptz,
    -- Set by the reminder.due handler once the event came back from the
    -- topic (events/handler.c): proof the notification left the service.
    delivered_at  timestamptz,
    PRIMARY KEY (task_id, remind_at)
);
-- The scheduler's only access path: the earliest unfired reminder.
CREATE INDEX reminders_pending ON reminders (remind_at) WHERE fired_at IS NULL;

-- A task's reminders as the API shows them: the stored input, its computed
-- remind_at, and fired_at once fired. Looked up by time rather than by
-- position, so the answer of the statement that changes the reminders
-- (whose trigger has not run yet) is already right: a kept time shows its
-- fired_at, a new one null.
-- PL/pgSQL, not SQL: a SQL function with a FROM clause is not inlined and
-- is planned afresh in every statement that calls it, while PL/pgSQL keeps
-- its plan for the session (a GET of a task with reminders: 7 500 -> 39 000
-- calls/s in a pgbench of the function alone).
CREATE FUNCTION task_reminders_json(task_id bigint, reminders jsonb, due_at timestamptz, tz text)
    RETURNS json
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    AS $$
BEGIN
    RETURN (
        SELECT coalesce(json_agg(e.r || jsonb_build_object('remind_at', utc_text(x.at),
                                                           'fired_at', utc_text(f.fired_at))
                                 ORDER BY e.n), '[]')
        FROM jsonb_array_elements(reminders) WITH ORDINALITY AS e(r, n)
        CROSS JOIN LATERAL (SELECT reminder_time(e.r, due_at, tz) AS at) x
        LEFT JOIN reminders f ON f.task_id = task_reminders_json.task_id AND f.remind_at = x.at);
END
$$;

CREATE OR REPLACE FUNCTION task_json(t tasks) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT json_build_object(
        'id', t.id,
        'user_id', t.user_id,
        'title', t.title,
        'description', t.description,
        'completed', t.completed,
        'completed_at', to_char(t.completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'priority', t.priority,
        'tags', t.tags,
        'due_at', to_char(t.due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'timezone', t.timezone,
        'recurrence', t.recurrence,
        'recurrence_from', t.recurrence_from,
        'series_id', t.series_id,
        'occurrence', t.occurrence,
        'reminders', CASE WHEN t.reminders = '[]'::jsonb THEN '[]'::json
                          ELSE task_reminders_json(t.id, t.reminders, t.due_at, t.timezone) END,
        'created_at', to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'updated_at', to_char(t.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'version', t.version)
    $$;

DROP FUNCTION reminders_json(jsonb, timestamptz);

-- Copied to the next occurrence, a reminder drops what the server added.
CREATE OR REPLACE FUNCTION reminders_shifted(reminders jsonb, shift interval) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT coalesce(jsonb_agg(CASE WHEN r ? 'at'
               THEN jsonb_build_object('at', to_char(((r->>'at')::timestamptz + shift) AT TIME ZONE 'UTC',
                                                     'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
               ELSE r - 'remind_at' - 'fired_at' END ORDER BY n), '[]')
    FROM jsonb_array_elements(coalesce(reminders, '[]')) WITH ORDINALITY AS e(r, n)
    $$;

-- Keeps the rows in step with the task:
--  - completed: unfired rows go (cancelled);
--  - open: unfired rows whose time is no longer wanted go, missing times
--    are added. A time already in the past is added too and fires at once,
--    late, except when the task is being reopened: what fell due while it
--    was done stays cancelled.
-- Deleting the task deletes its rows (ON DELETE CASCADE). New rows wake
-- every scheduler through NOTIFY (payload: the earliest new time, epoch
-- ms), at commit, so a rolled-back change wakes nobody.
CREATE FUNCTION tasks_reminders_sync() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    wanted timestamptz[];
    earliest timestamptz;
BEGIN
    wanted := CASE WHEN NEW.completed THEN '{}'::timestamptz[]
                   ELSE ARRAY(SELECT reminder_time(e.r, NEW.due_at, NEW.timezone)
                              FROM jsonb_array_elements(NEW.reminders) AS e(r)) END;
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM reminders
         WHERE task_id = NEW.id AND fired_at IS NULL AND remind_at <> ALL (wanted);
    END IF;
    WITH added AS (
        INSERT INTO reminders (task_id, remind_at)
        SELECT DISTINCT NEW.id, w FROM unnest(wanted) AS w
         WHERE w IS NOT NULL
           AND (TG_OP = 'INSERT' OR NOT OLD.completed OR w > clock_timestamp())
        ON CONFLICT (task_id, remind_at) DO NOTHING
        RETURNING remind_at)
    SELECT min(remind_at) INTO earliest FROM added;
    IF earliest IS NOT NULL THEN
        PERFORM pg_notify('todo_reminders', floor(extract(epoch FROM earliest) * 1000)::bigint::text);
    END IF;
    RETURN NULL;
END
$$;

-- Tasks without reminders never pay for it.
CREATE TRIGGER tasks_reminders_insert AFTER INSERT ON tasks
    FOR EACH ROW WHEN (NEW.reminders <> '[]'::jsonb)
    EXECUTE FUNCTION tasks_reminders_sync();
CREATE TRIGGER tasks_reminders_update AFTER UPDATE ON tasks
    FOR EACH ROW WHEN ((OLD.reminders <> '[]'::jsonb OR NEW.reminders <> '[]'::jsonb)
                       AND (OLD.reminders IS DISTINCT FROM NEW.reminders
                            OR OLD.due_at IS DISTINCT FROM NEW.due_at
                            OR OLD.timezone IS DISTINCT FROM NEW.timezone
                            OR OLD.completed IS DISTINCT FROM NEW.completed))
    EXECUTE FUNCTION tasks_reminders_sync();

-- Tasks that exist already: their future reminders are scheduled; past
-- ones are taken as handled by the system this replaces.
INSERT INTO reminders (task_id, remind_at)
SELECT DISTINCT t.id, reminder_time(e.r, t.due_at, t.timezone)
  FROM tasks t CROSS JOIN LATERAL jsonb_array_elements(t.reminders) AS e(r)
 WHERE NOT t.completed AND t.reminders <> '[]'::jsonb
   AND reminder_time(e.r, t.due_at, t.timezone) > clock_timestamp()
ON CONFLICT DO NOTHING;
