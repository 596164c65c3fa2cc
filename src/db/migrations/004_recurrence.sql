-- Recurring tasks, driven by the task.completed events the service consumes.

-- The ids of consumed events whose effect committed, in the same statement
-- as the effect: a redelivered event finds its id here and does nothing.
-- Text: CloudEvents ids are any non-empty string (ours are UUIDs).
CREATE TABLE inbox (
    event_id     text PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_received ON inbox (received_at);

-- The local wall-clock time of a series' first occurrence (RFC 5545
-- DTSTART): occurrences are computed from it, never from the previous one,
-- so that monthly from Jan 31 gives Feb 28 and then Mar 31 again.
ALTER TABLE tasks ADD COLUMN recurrence_anchor timestamp;

-- A recurring task starts its own series (series_id = its id, occurrence
-- 1) and anchors it at its due time; moving the due time, the zone or the
-- rule re-anchors the series there. BEFORE INSERT sees the identity value.
CREATE FUNCTION tasks_recurrence_bookkeeping() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.recurrence IS NULL OR NEW.due_at IS NULL THEN
        NEW.recurrence_anchor := NULL;
        RETURN NEW;
    END IF;
    IF NEW.series_id IS NULL THEN
        NEW.series_id := NEW.id;
        NEW.occurrence := 1;
    END IF;
    IF TG_OP = 'INSERT' THEN
        NEW.recurrence_anchor := coalesce(NEW.recurrence_anchor, NEW.due_at AT TIME ZONE NEW.timezone);
    ELSIF OLD.recurrence_anchor IS NULL
          OR NEW.due_at IS DISTINCT FROM OLD.due_at
          OR NEW.timezone IS DISTINCT FROM OLD.timezone
          OR NEW.recurrence IS DISTINCT FROM OLD.recurrence THEN
        NEW.recurrence_anchor := NEW.due_at AT TIME ZONE NEW.timezone;
    END IF;
    RETURN NEW;
END
$$;

-- Tasks that do not recur never pay for the trigger.
CREATE TRIGGER tasks_recurrence_insert BEFORE INSERT ON tasks
    FOR EACH ROW WHEN (NEW.recurrence IS NOT NULL)
    EXECUTE FUNCTION tasks_recurrence_bookkeeping();
CREATE TRIGGER tasks_recurrence_update BEFORE UPDATE ON tasks
    FOR EACH ROW WHEN (NEW.recurrence IS NOT NULL OR OLD.recurrence IS NOT NULL)
    EXECUTE FUNCTION tasks_recurrence_bookkeeping();

UPDATE tasks SET series_id = coalesce(series_id, id), occurrence = coalesce(occurrence, 1),
                 recurrence_anchor = due_at AT TIME ZONE timezone
 WHERE recurrence IS NOT NULL AND due_at IS NOT NULL;

-- A task's reminders as stored (the computed remind_at dropped), with
-- absolute ones moved by `shift`: copied to the next occurrence, a
-- reminder keeps its distance to the due time.
CREATE FUNCTION reminders_shifted(reminders jsonb, shift interval) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT coalesce(jsonb_agg(CASE WHEN r ? 'at'
               THEN jsonb_build_object('at', to_char(((r->>'at')::timestamptz + shift) AT TIME ZONE 'UTC',
                                                     'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
               ELSE r - 'remind_at' END ORDER BY n), '[]')
    FROM jsonb_array_elements(coalesce(reminders, '[]')) WITH ORDINALITY AS e(r, n)
    $$;
