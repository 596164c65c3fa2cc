-- pgbench script of the "list" scenario: GET /api/{user}/tasks?limit=50
-- (no filters, no cursor, default sort created_at desc: $2..$9 are NULL;
-- $10 is the page size plus one, as the service asks for one row more).
-- statement: task_list_created_desc
-- params: $1=:uid $2=NULL $3=NULL $4=NULL $5=NULL $6=NULL $7=NULL $8=NULL $9=NULL $10=:lim
-- Variables from scripts/bench (pgbench -D): users, user_base, tasks_per_user.
-- The seed gives user "<user_base + u>" (u = 1..users) the task ids
-- (u - 1) * tasks_per_user + 1 .. u * tasks_per_user.
--
-- The last line is the statement of src/db/queries.c named above with its
-- parameters replaced as mapped: scripts/bench re-renders it from the source
-- before each run (bench/pgbench/render.py) and warns if it differs.
\set u random(1, :users)
\set uid :user_base + :u
\set lim 51
SELECT t.id, (extract(epoch FROM t.created_at) * 1000000)::bigint::text AS k, task_json(t) AS body FROM tasks t WHERE t.user_id = :uid AND (NULL::boolean IS NULL OR t.completed = NULL::boolean) AND (NULL::jsonb IS NULL OR t.priority = ANY(      ARRAY(SELECT jsonb_array_elements_text(NULL::jsonb))::task_priority[])) AND (NULL::jsonb IS NULL OR t.tags_folded @> fold_tags(      ARRAY(SELECT jsonb_array_elements_text(NULL::jsonb)))) AND (NULL::text IS NULL OR t.search @@ websearch_to_tsquery('simple', NULL::text)) AND (NULL::timestamptz IS NULL OR t.due_at < NULL::timestamptz) AND (NULL::timestamptz IS NULL OR t.due_at >= NULL::timestamptz) AND (NULL::text IS NULL OR (t.created_at, t.id) < ((timestamptz 'epoch' + NULL::bigint * interval '1 microsecond'), NULL::bigint)) ORDER BY t.created_at DESC, t.id DESC LIMIT :lim::integer;
