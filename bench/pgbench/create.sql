-- pgbench script of the "create" scenario: POST /api/{user}/tasks with a
-- title, priority, tags and due_at; the service fills description (NULL),
-- completed (false), timezone (UTC), recurrence (NULL), recurrence_from
-- (due) and reminders ([]).  pgbench cannot build strings per transaction:
-- the title is a random number, the other values are constants (-D):
-- completed, priority, tags, due_at, timezone, recurrence_from, reminders.
-- statement: task_insert
-- params: $1=:uid $2=:title $3=NULL $4=:completed $5=:priority $6=:tags $7=:due_at $8=:timezone $9=NULL $10=:recurrence_from $11=:reminders
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
INSERT INTO tasks (user_id, title, description, completed, priority, tags, due_at, timezone, recurrence, recurrence_from, reminders, completed_at) SELECT :uid, :title, NULL, :completed::boolean, :priority::task_priority, tags_from_json(:tags::jsonb), :due_at::timestamptz, :timezone, NULL, :recurrence_from, :reminders::jsonb, CASE WHEN :completed::boolean THEN clock_timestamp() END RETURNING id, version, task_json(tasks) AS body;
