-- Seed data for the tasks-API scenarios of scripts/bench.
--
--   psql -X -v ON_ERROR_STOP=1 -v users=64 -v per_user=200 -v user_base=10000 \
--        -f bench/seed.sql DATABASE_URL
--
-- Runs after the service has applied its migrations (the schema is
-- src/db/migrations/). User "<user_base + u>" (u = 1..users) gets the task
-- ids (u - 1) * per_user + 1 .. u * per_user, given explicitly so that
-- bench/tasks.lua and bench/pgbench/*.sql can compute valid (user, id)
-- pairs; the identity sequence is then moved past them for the creates.
--
-- Values vary deterministically (a hash of user and number): titles from
-- word lists, a quarter completed, 0-3 tags, all four priorities, 80 % with a
-- due date, 30 % with a description, 20 % with a reminder, created_at spread
-- over 2025.
\set ON_ERROR_STOP on

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM tasks) THEN
        RAISE EXCEPTION 'bench/seed.sql: tasks is not empty';
    END IF;
END $$;

BEGIN;
INSERT INTO tasks (id, user_id, title, description, completed, completed_at, priority, tags,
                   due_at, reminders, created_at, updated_at)
OVERRIDING SYSTEM VALUE
SELECT (u - 1) * :per_user + n,
       (:user_base + u)::text,
       (ARRAY['Buy', 'Call', 'Email', 'Fix', 'Plan', 'Review', 'Write', 'Clean', 'Book', 'Pay',
              'Read', 'Send', 'Check', 'Renew', 'Order', 'Prepare'])[1 + h % 16]
           || ' ' ||
       (ARRAY['milk', 'the plumber', 'quarterly report', 'invoice 42', 'slides', 'garden hose',
              'train tickets', 'rent', 'chapter 3', 'newsletter', 'car insurance', 'budget',
              'dentist', 'passport', 'groceries', 'backup'])[1 + h / 16 % 16]
           || ' #' || n,
       CASE WHEN h / 256 % 10 < 3
            THEN 'Notes for task ' || n || ': check the details and the deadline before starting.'
       END,
       h / 2560 % 4 = 0,
       CASE WHEN h / 2560 % 4 = 0 THEN created + interval '3 days' END,
       (ARRAY['low', 'medium', 'high', 'urgent']::task_priority[])[1 + h / 10240 % 4],
       -- 0 to 3 consecutive tags of the pool (an empty slice when 0).
       (ARRAY['work', 'home', 'errand', 'health', 'finance', 'reading', 'travel', 'family',
              'someday', 'Urgent-ish'])[1 + h / 40960 % 8 : h / 40960 % 8 + h / 327680 % 4],
       CASE WHEN h / 1310720 % 5 <> 0 THEN due END,
       CASE WHEN h / 1310720 % 5 = 1 THEN '[{"before": "PT15M"}]'::jsonb ELSE '[]'::jsonb END,
       created,
       created
FROM (SELECT u, n,
             hashtext(u || ':' || n)::bigint & 2147483647 AS h,
             timestamptz '2025-01-01 00:00:00+00' + (n * 37 + u) * interval '1 hour' AS created,
             timestamptz '2026-01-01 09:00:00+00'
                 + (hashtext(n || ':' || u)::bigint & 2147483647) % 20000 * interval '1 hour'
                 AS due
      FROM generate_series(1, :users) AS u, generate_series(1, :per_user) AS n) AS s;

SELECT setval(pg_get_serial_sequence('tasks', 'id'), (SELECT max(id) FROM tasks));
COMMIT;

VACUUM ANALYZE tasks;

SELECT count(*) AS tasks, count(DISTINCT user_id) AS users, min(id) AS min_id, max(id) AS max_id,
       count(*) FILTER (WHERE completed) AS completed, count(*) FILTER (WHERE due_at IS NULL) AS undated
FROM tasks;
