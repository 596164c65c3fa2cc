-- Tasks, their full-text index, and the idempotency keys of POST /tasks.
CREATE TYPE task_priority AS ENUM ('low', 'medium', 'high', 'urgent');

-- Lower-cased tags, for case-insensitive filtering through a GIN index.
CREATE FUNCTION fold_tags(tags text[]) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT coalesce(array_agg(lower(t) ORDER BY n), '{}') FROM unnest(tags) WITH ORDINALITY AS u(t, n) $$;

-- Tags as stored: a JSON array of strings, later duplicates (in any case,
-- by the database's lower(), so beyond ASCII) dropped, first spellings kept
-- in their order.
CREATE FUNCTION tags_from_json(tags jsonb) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
    SELECT coalesce(array_agg(t ORDER BY n), '{}')
    FROM (SELECT DISTINCT ON (lower(t)) t, n
          FROM jsonb_array_elements_text(tags) WITH ORDINALITY AS e(t, n)
          ORDER BY lower(t), n) AS firsts
    $$;

-- Instants are returned in UTC with milliseconds: 2026-11-24T10:00:00.123Z.
CREATE FUNCTION utc_text(ts timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

CREATE TABLE tasks (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          text NOT NULL,
    title            text NOT NULL,
    description      text,
    completed        boolean NOT NULL DEFAULT false,
    completed_at     timestamptz,
    priority         task_priority NOT NULL DEFAULT 'medium',
    tags             text[] NOT NULL DEFAULT '{}',
    due_at           timestamptz,
    timezone         text NOT NULL DEFAULT 'UTC',
    recurrence       text,
    recurrence_from  text NOT NULL DEFAULT 'due',
    series_id        bigint,
    occurrence       integer,
    reminders        jsonb NOT NULL DEFAULT '[]',
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    version          integer NOT NULL DEFAULT 1,
    tags_folded      text[] GENERATED ALWAYS AS (fold_tags(tags)) STORED,
    search           tsvector GENERATED ALWAYS AS (
                         to_tsvector('simple', title || ' ' || coalesce(description, ''))) STORED,
    CONSTRAINT tasks_recurrence_needs_due CHECK (recurrence IS NULL OR due_at IS NOT NULL),
    CONSTRAINT tasks_recurrence_from CHECK (recurrence_from IN ('due', 'completion')),
    CONSTRAINT tasks_reminder_needs_due CHECK (due_at IS NOT NULL OR NOT (reminders @? '$[*].before')),
    CONSTRAINT tasks_series_occurrence UNIQUE (series_id, occurrence)
);

-- Keyset paging: one index per sort key, each ending in id for ties.
CREATE INDEX tasks_user_created ON tasks (user_id, created_at, id);
CREATE INDEX tasks_user_updated ON tasks (user_id, updated_at, id);
CREATE INDEX tasks_user_due ON tasks (user_id, (coalesce(due_at, 'infinity')), id);
CREATE INDEX tasks_user_priority ON tasks (user_id, priority, id);
CREATE INDEX tasks_user_title ON tasks (user_id, (title COLLATE "C"), id);
CREATE INDEX tasks_search ON tasks USING gin (search);
CREATE INDEX tasks_tags ON tasks USING gin (tags_folded);

-- The task as the API returns it.
CREATE FUNCTION task_json(t tasks) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT json_build_object(
        'id', t.id,
        'user_id', t.user_id,
        'title', t.title,
        'description', t.description,
        'completed', t.completed,
        'completed_at', utc_text(t.completed_at),
        'priority', t.priority,
        'tags', t.tags,
        'due_at', utc_text(t.due_at),
        'timezone', t.timezone,
        'recurrence', t.recurrence,
        'recurrence_from', t.recurrence_from,
        'series_id', t.series_id,
        'occurrence', t.occurrence,
        'reminders', (
            SELECT coalesce(json_agg(r || jsonb_build_object('remind_at', utc_text(
                       CASE WHEN r ? 'before' THEN t.due_at - (r->>'before')::interval
                            ELSE (r->>'at')::timestamptz END)) ORDER BY n), '[]')
            FROM jsonb_array_elements(t.reminders) WITH ORDINALITY AS e(r, n)),
        'created_at', utc_text(t.created_at),
        'updated_at', utc_text(t.updated_at),
        'version', t.version)
    $$;

-- POST /tasks with an Idempotency-Key: the first answer, kept for replays.
CREATE TABLE idempotency_keys (
    user_id       text NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    task_id       bigint NOT NULL,
    response      text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
