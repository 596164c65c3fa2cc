"""The PostgreSQL harness itself: tests/integration/pg.py, the fixtures, and
scripts/pg. These pass without the tasks API."""

import os
import shutil
import subprocess
import tempfile

from conftest import REPO, TasksClient, new_user, wait_ready
from pg import PgError, free_port


def test_cluster_psql_restart_stop_start(dedicated_pg):
    c = dedicated_pg()
    assert c.url == f"postgresql://todo@127.0.0.1:{c.port}/todo"
    assert c.psql("SELECT current_user, current_database()").strip() == "todo|todo"
    settings = c.psql("SELECT name || '=' || setting FROM pg_settings WHERE name IN "
                      "('fsync', 'max_connections', 'listen_addresses', 'server_encoding') "
                      "ORDER BY name").split()
    assert settings == ["fsync=on", "listen_addresses=127.0.0.1", "max_connections=200",
                        "server_encoding=UTF8"], settings
    c.psql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before restart')")
    port = c.port
    c.restart()
    assert c.port == port and c.is_running()
    assert c.psql("SELECT v FROM kept").strip() == "before restart"
    c.stop()
    assert not c.is_running()
    c.start()
    assert c.port == port
    assert c.psql("SELECT count(*) FROM kept").strip() == "1"
    # errors are raised, not swallowed
    try:
        c.psql("SELECT * FROM no_such_table")
    except PgError as e:
        assert "no_such_table" in str(e)
    else:
        raise AssertionError("psql error not raised")
    base = c.base
    c.destroy()
    assert not os.path.exists(base)


def test_pg_fixture_gives_an_empty_database_per_test(pg, pg_cluster):
    assert pg.cluster is pg_cluster
    assert pg.url == f"postgresql://todo@127.0.0.1:{pg_cluster.port}/{pg.name}"
    assert pg.scalar("SELECT current_database()") == pg.name
    assert pg.scalar("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN "
                     "('pg_catalog', 'information_schema')") == "0"
    pg.psql("CREATE TABLE scratch (v int)")   # gone for the next test


def test_pg_fixture_really_is_fresh(pg):
    assert pg.scalar("SELECT to_regclass('scratch') IS NULL") == "t"


def test_tasks_client_builds_paths(server):
    c = TasksClient(server, "alice")
    assert c.tasks_path() == "/api/alice/tasks"
    assert c.task_path(7) == "/api/alice/tasks/7"
    assert c.for_user("bob").tasks_path() == "/api/bob/tasks"
    assert c.auth_headers("alice") == []
    assert new_user() != new_user()


def test_api_server_fixture_is_ready(api_server):
    assert api_server.env["DATABASE_URL"] == api_server.db.url
    assert api_server.env["DB_POOL_SIZE"] == "2"
    assert wait_ready(api_server, timeout=1) is not None


def test_scripts_pg_in_a_scratch_checkout():
    """scripts/pg start|status|url|psql|stop, run from a copy of the script so
    that the developer's own .dev/pg is not touched."""
    work = tempfile.mkdtemp(prefix="todo-scripts-pg-")
    try:
        os.chmod(work, 0o700)   # the script must make it traversable for todo-pg
        os.makedirs(os.path.join(work, "scripts"))
        script = os.path.join(work, "scripts", "pg")
        shutil.copy2(REPO / "scripts" / "pg", script)
        port = free_port()
        env = dict(os.environ, PG_PORT=str(port))

        def run(*args, check=True):
            cp = subprocess.run([script, *args], capture_output=True, text=True, env=env,
                                timeout=60, stdin=subprocess.DEVNULL)
            if check:
                assert cp.returncode == 0, (args, cp)
            return cp

        url = f"postgresql://todo@127.0.0.1:{port}/todo"
        assert run("status", check=False).returncode != 0
        cp = run("start")
        assert cp.stdout.strip().splitlines()[-1] == url, cp
        assert run("start").stdout.strip().splitlines()[-1] == url      # idempotent
        assert run("status").returncode == 0
        assert run("url").stdout.strip() == url
        out = run("psql", "-X", "-A", "-t", "-c", "SHOW fsync").stdout.strip()
        assert out == "on"
        assert os.path.isdir(os.path.join(work, ".dev", "pg", "data"))
        assert os.path.isdir(os.path.join(work, ".dev", "pg", "log"))
        run("stop")
        assert run("status", check=False).returncode != 0
        run("stop")                                                      # idempotent
        assert run("bogus", check=False).returncode == 2
    finally:
        subprocess.run([os.path.join(work, "scripts", "pg"), "stop"], capture_output=True,
                       timeout=60)
        shutil.rmtree(work, ignore_errors=True)
