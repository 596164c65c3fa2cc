-- pgbench script of the "create" scenario: POST /api/{user}/tasks with a
-- title, priority, tags and due_at; the service fills description (NULL),
-- completed (false), timezone (UTC), recurrence (NULL), recurrence_from
-- (due) and reminders ([]).  pgbench cannot build strings per transaction:
-- the title is a random number, the other values are constants (-D):
-- completed, priority, tags, due_at, timezone, recurrence_from, reminders.
-- The statement also inserts the task.created CloudEvent into the outbox,
-- as the service's does (same statement, same transaction); the traceparent
-- ($12) is NULL, as for a request without a traceparent header.
-- statement: task_insert
-- params: $1=:uid $2=:title $3=NULL $4=:completed $5=:priority $6=:tags $7=:due_at $8=:timezone $9=NULL $10=:recurrence_from $11=:reminders $12=NULL
-- Variables from scripts/bench (pgbench -D): users, user_base, tasks_per_user.
-- The seed gives user "<user_base + u>" (u = 1..users) the task ids
-- (u - 1) * tasks_per_user + 1 .. u * tasks_per_user.
--
-- The last line is the statement of src/db/queries.c named above with its
-- parameters replaced as mapped: scripts/bench re-renders it from the source
-- before each run (bench/pgbench/render.py) and warns if it differs.
\set u random(1, :users)
\set uid :user_base + :u
\set title random(1, 1000000000)
WITH ins AS (INSERT INTO tasks (user_id, title, description, completed, priority, tags, due_at, timezone, recurrence, recurrence_from, reminders, completed_at) SELECT :uid, :title, NULL, :completed::boolean, :priority::task_priority, tags_from_json(:tags::jsonb), :due_at::timestamptz, :timezone, NULL, :recurrence_from, :reminders::jsonb, CASE WHEN :completed::boolean THEN clock_timestamp() END RETURNING id, version, user_id, task_json(tasks) AS body), ev AS (INSERT INTO outbox (stream, key, event) SELECT 'tasks', ins.user_id, cloudevent('task.created', 'tasks/' || ins.id, ins.user_id, NULL::text, task_event_data(ins.user_id, ins.body, NULL)) FROM ins RETURNING seq, event) SELECT ins.id, ins.version, ins.body, ev.seq, ev.event FROM ins, ev;
