"""The service on PostgreSQL: readiness, migrations (also with several
processes starting at once), and the database settings."""

import json
import re

import pytest

from conftest import (DB_CONFIG_VARS, TasksClient, db_env, migration_files, new_user, readyz,
                      run_binary, wait_ready)


def test_readyz_has_a_database_check(api_server):
    code, doc = readyz(api_server)
    assert code == 200, doc
    assert doc["status"] == "ready", doc
    assert doc["checks"]["database"] == "ok", doc
    assert all(v == "ok" for v in doc["checks"].values()), doc


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
    env.update({"DATABASE_URL": "postgresql://todo@127.0.0.1:1/todo", var: value})
    cp = run_binary(env=env, timeout=3)
    assert cp.returncode == 2, f"{var}={value!r}: exit {cp.returncode}, stderr {cp.stderr!r}"
    lines = [line for line in cp.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and var in lines[0], lines
