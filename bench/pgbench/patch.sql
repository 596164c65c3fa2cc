-- pgbench script of the "patch" scenario: PATCH /api/{user}/tasks/{id} with
-- {"priority":"low"}: no If-Match ($3 NULL), mask 8 (priority only), the
-- other nine values NULL, as the service sends them; no traceparent ($15
-- NULL). The statement also inserts the task.updated event into the outbox.
-- Extra variable (-D): patch_priority (low).
-- statement: task_update
-- params: $1=:uid $2=:id $3=NULL $4=:mask $5=NULL $6=NULL $7=NULL $8=:patch_priority $9=NULL $10=NULL $11=NULL $12=NULL $13=NULL $14=NULL $15=NULL
-- Variables from scripts/bench (pgbench -D): users, user_base, tasks_per_user.
-- The seed gives user "<user_base + u>" (u = 1..users) the task ids
-- (u - 1) * tasks_per_user + 1 .. u * tasks_per_user.
--
-- The last line is the statement of src/db/queries.c named above with its
-- parameters replaced as mapped: scripts/bench re-renders it from the source
-- before each run (bench/pgbench/render.py) and warns if it differs.
\set u random(1, :users)
\set uid :user_base + :u
\set id (:u - 1) * :tasks_per_user + random(1, :tasks_per_user)
\set mask 8
WITH cur AS (SELECT t AS old, t.id, t.version, t.completed FROM tasks t WHERE t.id = :id::bigint AND t.user_id = :uid FOR UPDATE), upd AS (UPDATE tasks t SET title = CASE WHEN :mask::integer & 1 <> 0 THEN NULL ELSE t.title END, description = CASE WHEN :mask::integer & 2 <> 0 THEN NULL ELSE t.description END, completed = CASE WHEN :mask::integer & 4 <> 0 THEN NULL::boolean ELSE t.completed END, completed_at = CASE WHEN :mask::integer & 4 = 0 THEN t.completed_at   WHEN NULL::boolean THEN coalesce(t.completed_at, clock_timestamp()) END, priority = CASE WHEN :mask::integer & 8 <> 0 THEN :patch_priority::task_priority ELSE t.priority END, tags = CASE WHEN :mask::integer & 16 <> 0   THEN tags_from_json(NULL::jsonb) ELSE t.tags END, due_at = CASE WHEN :mask::integer & 32 <> 0 THEN NULL::timestamptz ELSE t.due_at END, timezone = CASE WHEN :mask::integer & 64 <> 0 THEN NULL ELSE t.timezone END, recurrence = CASE WHEN :mask::integer & 128 <> 0 THEN NULL ELSE t.recurrence END, recurrence_from = CASE WHEN :mask::integer & 256 <> 0 THEN NULL ELSE t.recurrence_from END, reminders = CASE WHEN :mask::integer & 512 <> 0 THEN NULL::jsonb ELSE t.reminders END, updated_at = clock_timestamp(), version = t.version + 1 FROM cur WHERE t.id = cur.id AND (NULL::bigint[] IS NULL OR cur.version = ANY(NULL::bigint[])) RETURNING t AS new, cur.old, t.id, t.user_id, t.version, task_json(t) AS body), ev AS (INSERT INTO outbox (stream, key, event) SELECT 'tasks', upd.user_id, cloudevent(task_update_type((upd.old).completed, (upd.new).completed), 'tasks/' || upd.id, upd.user_id, NULL::text, task_event_data(upd.user_id, upd.body, task_changes(upd.old, upd.new))) FROM upd RETURNING seq, event) SELECT (SELECT count(*) FROM cur), (SELECT count(*) FROM upd), (SELECT version FROM upd), (SELECT body FROM upd), (SELECT seq FROM ev), (SELECT event FROM ev);
