-- pgbench script of the "get" scenario: GET /api/{user}/tasks/{id}.
-- statement: task_get
-- params: $1=:uid $2=:id
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
SELECT t.version, task_json(t) FROM tasks t WHERE t.id = :id::bigint AND t.user_id = :uid;
