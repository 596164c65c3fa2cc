-- The transactional outbox: every change to a task writes its CloudEvent
-- here in the same statement as the change, so a committed change always
-- has its event, whatever happens to Kafka or to the process afterwards.
-- A row is deleted once Kafka has acknowledged it (its absence is its
-- "published" mark), so the table holds only the backlog.
CREATE TABLE outbox (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- 'tasks' or 'reminders': the configured topic names are applied when
    -- the row is sent, so renaming a topic needs no data migration.
    stream      text NOT NULL CHECK (stream IN ('tasks', 'reminders')),
    key         text NOT NULL,
    event       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The API fields of a task whose values differ between two versions, in a
-- fixed order (completed_at, updated_at and version follow from others).
CREATE FUNCTION task_changes(a tasks, b tasks) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT array_remove(ARRAY[
        CASE WHEN a.title IS DISTINCT FROM b.title THEN 'title' END,
        CASE WHEN a.description IS DISTINCT FROM b.description THEN 'description' END,
        CASE WHEN a.completed IS DISTINCT FROM b.completed THEN 'completed' END,
        CASE WHEN a.priority IS DISTINCT FROM b.priority THEN 'priority' END,
        CASE WHEN a.tags IS DISTINCT FROM b.tags THEN 'tags' END,
        CASE WHEN a.due_at IS DISTINCT FROM b.due_at THEN 'due_at' END,
        CASE WHEN a.timezone IS DISTINCT FROM b.timezone THEN 'timezone' END,
        CASE WHEN a.recurrence IS DISTINCT FROM b.recurrence THEN 'recurrence' END,
        CASE WHEN a.recurrence_from IS DISTINCT FROM b.recurrence_from THEN 'recurrence_from' END,
        CASE WHEN a.reminders IS DISTINCT FROM b.reminders THEN 'reminders' END
    ]::text[], NULL)
    $$;

-- The event type of an update: a flip of completed names itself.
CREATE FUNCTION task_update_type(was_completed boolean, now_completed boolean) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN now_completed AND NOT was_completed THEN 'task.completed'
                WHEN was_completed AND NOT now_completed THEN 'task.uncompleted'
                ELSE 'task.updated' END
    $$;

-- A structured-mode CloudEvent 1.0 (DESIGN section 5), as text so the bytes
-- on Kafka are exactly these. traceparent appears only when given. time is
-- the statement's clock, in UTC with milliseconds.
CREATE FUNCTION cloudevent(type text, subject text, partitionkey text, traceparent text,
                           data json) RETURNS text
    LANGUAGE sql VOLATILE PARALLEL SAFE
    AS $$
    SELECT '{"specversion":"1.0","id":"' || gen_random_uuid()
        || '","source":"/todo-backend","type":' || to_json(type)
        || ',"subject":' || to_json(subject)
        || ',"time":"' || to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
        || '","datacontenttype":"application/json","partitionkey":' || to_json(partitionkey)
        || coalesce(',"traceparent":' || to_json(traceparent), '')
        || ',"data":' || data::text || '}'
    $$;

-- The outbox row of one task event. changed is NULL for created and deleted.
CREATE FUNCTION task_event_data(user_id text, body json, changed text[]) RETURNS json
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN changed IS NULL
                THEN json_build_object('user_id', user_id, 'task', body)
                ELSE json_build_object('user_id', user_id, 'task', body, 'changed', changed) END
    $$;
