"""The service on PostgreSQL: readiness, migrations (also with several
processes starting at once), and the database settings."""

import json
import re
import signal
import subprocess
import threading
import time

import pytest

from conftest import (DB_CONFIG_VARS, TasksClient, assert_problem, db_env, migration_files,
                      new_user, readyz, run_binary, wait_ready)


def test_readyz_has_a_database_check(api_server):
    code, doc = readyz(api_server)
    assert code == 200, doc
    assert doc["status"] == "ready", doc
    assert doc["checks"]["database"] == "ok", doc
    # Kafka is not configured here: shown, but it never makes /readyz fail.
    assert doc["checks"]["kafka"] == "disabled", doc
    assert all(v == "ok" for k, v in doc["checks"].items() if k != "kafka"), doc


def test_migrations_create_the_tables(api_server, pg):
    for table in ("tasks", "idempotency_keys", "schema_migrations"):
        assert pg.scalar(f"SELECT to_regclass('{table}') IS NOT NULL") == "t", table


def migration_rows(db):
    """schema_migrations as a list of dicts, ordered by version."""
    rows = [json.loads(line) for line in db.lines(
        "SELECT to_jsonb(m)::text FROM schema_migrations m")]
    assert rows, "schema_migrations is empty"
    key = "version" if "version" in rows[0] else next(iter(rows[0]))
    return sorted(rows, key=lambda r: str(r[key]).zfill(20)), key


def versions_of_files():
    out = []
    for name in migration_files():
        m = re.match(r"(\d+)", name)
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def start_at_once(start_server, db, n):
    """n processes spawned back to back (not waiting for each to listen)."""
    servers = [start_server(wait_listening=False, **db_env(db.url)) for _ in range(n)]
    for s in servers:
        line = s.wait_log(lambda j: j.get("msg") == "listening", timeout=10)
        assert line is not None, "\n".join(s.logs()[-30:])
        s.port = int(line["port"])
    return servers


@pytest.mark.parametrize("round_", range(3))
def test_processes_starting_at_once_migrate_exactly_once(pg, start_server, round_):
    servers = start_at_once(start_server, pg, 3)
    for s in servers:
        wait_ready(s)
    rows, key = migration_rows(pg)
    versions = [r[key] for r in rows]
    assert len(versions) == len(set(map(str, versions))), f"a migration recorded twice: {rows}"
    files = versions_of_files()
    if files:
        assert len(rows) == len(files), (rows, migration_files())
        assert sorted(int(v) for v in versions) == files, (versions, files)
    # every process serves the API on the one schema
    tasks = [TasksClient(s, new_user()).create_ok(title=f"from {i}") for i, s in enumerate(servers)]
    assert len({t["id"] for t in tasks}) == len(servers)
    # a later start changes nothing
    later = start_at_once(start_server, pg, 1)[0]
    wait_ready(later)
    assert migration_rows(pg)[0] == rows


def test_migrations_survive_a_service_restart(pg, start_api_server):
    s = start_api_server(pg)
    api = TasksClient(s, new_user())
    task = api.create_ok(title="kept")
    before = migration_rows(pg)[0]
    assert s.stop() == 0
    s2 = start_api_server(pg)
    assert migration_rows(pg)[0] == before
    assert TasksClient(s2, api.user).get_ok(task["id"]) == task


# ------------------------------------------------------------------ configuration

def test_help_lists_the_database_settings():
    cp = run_binary(["--help"])
    assert cp.returncode == 0
    for var in DB_CONFIG_VARS:
        assert re.search(rf"\b{var}\b", cp.stdout), f"--help does not mention {var}"


BAD_DB_VALUES = [
    ("DATABASE_URL", "postgresql://todo@127.0.0.1:5432/todo?nonsense_option=1"),
    ("DATABASE_URL", "host=127.0.0.1 port"),
    ("DB_POOL_SIZE", "0"),
    ("DB_POOL_SIZE", "abc"),
    ("DB_POOL_SIZE", "-1"),
    ("DB_QUEUE_MAX", "lots"),
    ("DB_QUEUE_TIMEOUT_MS", "-5"),
    ("DB_STATEMENT_TIMEOUT_MS", "1e3"),
    ("DB_CONNECT_TIMEOUT_MS", "soon"),
]


@pytest.mark.parametrize("var,value", BAD_DB_VALUES, ids=[f"{v}={x}" for v, x in BAD_DB_VALUES])
def test_bad_database_setting_exits_2_naming_it(var, value):
    env = {k: None for k in DB_CONFIG_VARS}
    env["DATABASE_URL"] = "postgresql://todo@127.0.0.1:1/todo"
    env[var] = value
    cp = run_binary(env=env, timeout=3)
    assert cp.returncode == 2, f"{var}={value!r}: exit {cp.returncode}, stderr {cp.stderr!r}"
    lines = [line for line in cp.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and var in lines[0], lines


# ------------------------------------------------------------------ shutdown, timeouts, bounds

def test_sigterm_with_database_work_exits_0(api_server):
    api = TasksClient(api_server, new_user())
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                api.create({"title": "load"}, timeout=5)
            except (AssertionError, OSError):
                return

    th = threading.Thread(target=load, daemon=True)
    th.start()
    time.sleep(0.3)
    api_server.send_signal(signal.SIGTERM)
    try:
        assert api_server.stop(None, timeout=15) == 0
    finally:
        stop.set()
        th.join(timeout=10)


def hold_lock(db, seconds):
    """A psql session that locks the tasks table for ``seconds``; returns it."""
    p = subprocess.Popen([db.cluster.psql_bin, "-X", "-q", "-d", db.url, "-c",
                          f"BEGIN; LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE; "
                          f"SELECT pg_sleep({seconds}); COMMIT;"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        n = db.scalar("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                      "WHERE c.relname = 'tasks' AND l.mode = 'AccessExclusiveLock' AND l.granted")
        if n != "0":
            return p
        time.sleep(0.02)
    p.kill()
    raise AssertionError("could not take the lock")


def release_lock(db, p):
    db.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE '%LOCK TABLE tasks%' AND pid <> pg_backend_pid()")
    p.wait(timeout=10)


def test_statement_timeout_answers_503(pg, start_api_server):
    s = start_api_server(pg, DB_STATEMENT_TIMEOUT_MS=300)
    api = TasksClient(s, new_user())
    task = api.create_ok(title="locked out")
    p = hold_lock(pg, 30)
    try:
        t0 = time.monotonic()
        r = api.get(task["id"], timeout=20)
        elapsed = time.monotonic() - t0
        # answered because of the timeout, long before the lock goes away
        assert elapsed < 10, elapsed
        doc = assert_problem(r, 503)
        assert doc["type"] == "urn:todo-backend:problem:unavailable", doc
        assert r.headers.get("retry-after"), r
    finally:
        release_lock(pg, p)
    assert api.get_ok(task["id"]) == task


def test_database_wait_queue_is_bounded(pg, start_api_server):
    """With the only connection stuck behind a lock, a burst of requests is
    answered: each either waits for the lock (200) or is refused quickly with
    503 + Retry-After; none is left hanging, and the service works afterwards."""
    s = start_api_server(pg, DB_POOL_SIZE=1, DB_QUEUE_MAX=4, DB_QUEUE_TIMEOUT_MS=300,
                         DB_STATEMENT_TIMEOUT_MS=20000)
    api = TasksClient(s, new_user())
    task = api.create_ok(title="queued")
    n = 90
    results = [None] * n
    p = hold_lock(pg, 30)
    released_at = None
    try:
        def one(i):
            t0 = time.monotonic()
            try:
                r = api.get(task["id"], timeout=30)
            except (AssertionError, OSError) as e:
                r = e
            results[i] = (time.monotonic() - t0, time.monotonic(), r)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        time.sleep(2.5)
        released_at = time.monotonic()
    finally:
        release_lock(pg, p)
    for t in threads:
        t.join(timeout=30)
    refused = 0
    for i, res in enumerate(results):
        assert res is not None, f"request {i} never finished"
        elapsed, done_at, r = res
        assert not isinstance(r, Exception), (i, r)
        assert r.status in (200, 503), (i, r)
        if r.status == 503:
            refused += 1
            assert_problem(r, 503)
            assert r.headers.get("retry-after"), r
            assert done_at < released_at, f"request {i} was refused only after the lock went away"
    # 90 requests, one connection, at most 4 queued: the bound must have refused some
    # unless every one of them fits in flight on the connection at once.
    assert refused > 0 or all(r.status == 200 for _, _, r in results)
    assert api.get_ok(task["id"]) == task
