-- pgbench script of the "complete" scenario: POST
-- /api/{user}/tasks/{id}/complete with no body (a toggle: $4 NULL), no
-- If-Match ($3 NULL), no traceparent ($5 NULL). The statement also inserts
-- the task.completed/reopened event into the outbox.
-- statement: task_complete
-- params: $1=:uid $2=:id $3=NULL $4=NULL $5=NULL
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
WITH cur AS (SELECT t AS old, t.id, t.version, t.completed FROM tasks t WHERE t.id = :id::bigint AND t.user_id = :uid FOR UPDATE), upd AS (UPDATE tasks t SET completed = coalesce(NULL::boolean, NOT cur.completed), completed_at = CASE WHEN coalesce(NULL::boolean, NOT cur.completed)   THEN coalesce(t.completed_at, clock_timestamp()) END, updated_at = clock_timestamp(), version = t.version + 1 FROM cur WHERE t.id = cur.id AND (NULL::bigint[] IS NULL OR cur.version = ANY(NULL::bigint[])) RETURNING t AS new, cur.old, t.id, t.user_id, t.version, task_json(t) AS body), ev AS (INSERT INTO outbox (stream, key, event) SELECT 'tasks', upd.user_id, cloudevent(task_update_type((upd.old).completed, (upd.new).completed), 'tasks/' || upd.id, upd.user_id, NULL::text, task_event_data(upd.user_id, upd.body, task_changes(upd.old, upd.new))) FROM upd RETURNING seq, event) SELECT (SELECT count(*) FROM cur), (SELECT count(*) FROM upd), (SELECT version FROM upd), (SELECT body FROM upd), (SELECT seq FROM ev), (SELECT event FROM ev);
