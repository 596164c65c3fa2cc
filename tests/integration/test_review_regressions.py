"""Regressions for defects a code review found (each test names its case)."""

import base64
import json
import socket
import subprocess
import threading
import time

import pytest

from conftest import TasksClient, assert_problem, build_request, new_user
from test_tasks_db import release_lock


def test_pipelined_large_lists_all_answered(api_server):
    """Answers finishing out of order must wait for room in the output instead
    of overflowing it: 8 pipelined lists of 50 tasks with ~10 KB descriptions
    each (~0.5 MB per answer) from a client that reads normally all arrive."""
    api = TasksClient(api_server, new_user())
    for i in range(55):
        api.create_ok(title=f"big {i}", description="d" * 10000)
    auth = list(api.auth_headers(api.user))
    reqs = b"".join(build_request("GET", api.tasks_path() + "?limit=50", auth) for _ in range(8))
    with api_server.connect(timeout=20) as c:
        c.send(reqs, methods=["GET"] * 8)
        rs = c.read_responses(8, timeout=30)
    assert [r.status for r in rs] == [200] * 8
    assert all(len(r.json()) == 50 for r in rs)
    assert api_server.alive()


@pytest.mark.parametrize("key", ["notanumber", "1" * 23, "-", ""])
def test_forged_cursor_key_is_400_not_500(api_server, key):
    """The cursor's digest is public; a cursor with a valid digest but a key
    that is not a number must be refused as a bad cursor, never reach a cast."""
    api = TasksClient(api_server, new_user())
    for i in range(3):
        api.create_ok(title=f"t{i}")
    first = api.list({"limit": "1"})
    assert first.status == 200
    link = first.headers["link"]
    cursor = link.split("cursor=")[1].split(">")[0]
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    parts = raw.split("|")
    parts[4] = key
    forged = base64.urlsafe_b64encode("|".join(parts).encode()).rstrip(b"=").decode()
    assert_problem(api.list({"limit": "1", "cursor": forged}), 400)


def test_year_zero_instant_is_422(api_server):
    """0001-01-01T00:30+01:00 is in year 0 UTC, which PostgreSQL cannot store."""
    api = TasksClient(api_server, new_user())
    r = api.create({"title": "t", "due_at": "0001-01-01T00:30:00+01:00"})
    assert_problem(r, 422)
    assert_problem(api.list({"due_before": "0001-01-01T00:30:00+01:00"}), 400)


def test_cursor_of_long_titles_round_trips(api_server):
    """A next-page cursor the server made for 200-emoji titles is accepted back."""
    api = TasksClient(api_server, new_user())
    for i in range(3):
        api.create_ok(title=chr(0x1F600 + i) * 200)
    seen, params = [], {"sort": "title", "limit": "1"}
    for _ in range(5):
        r = api.list(params)
        assert r.status == 200, r
        seen += [t["id"] for t in r.json()]
        link = r.headers.get("link")
        if not link:
            break
        params = dict(params, cursor=link.split("cursor=")[1].split(">")[0])
    assert len(seen) == 3 and len(set(seen)) == 3


def test_blank_lines_do_not_keep_a_connection_alive(start_server):
    """llhttp skips CRLF between requests; sending them must not reset the
    idle timer."""
    s = start_server(IDLE_TIMEOUT_MS="700")
    sock = socket.create_connection(("127.0.0.1", s.port))
    closed_after = None
    t0 = time.monotonic()
    try:
        for _ in range(20):
            try:
                sock.sendall(b"\r\n")
            except OSError:
                closed_after = time.monotonic() - t0
                break
            sock.settimeout(0.25)
            try:
                if sock.recv(1) == b"":
                    closed_after = time.monotonic() - t0
                    break
            except socket.timeout:
                pass
    finally:
        sock.close()
    assert closed_after is not None and closed_after < 3.0, closed_after


def test_queued_statement_does_not_kill_its_connection(pg, start_api_server):
    """With one connection, a statement waiting on a lock for its whole
    statement_timeout must fail alone (503); one queued behind it on the same
    connection has not run long and must succeed (the give-up clock starts
    when a statement becomes the oldest in flight)."""
    s = start_api_server(pg, DB_POOL_SIZE=1, DB_STATEMENT_TIMEOUT_MS=2000)
    api = TasksClient(s, new_user())
    locked = api.create_ok(title="locked")
    free = api.create_ok(title="free")
    p = subprocess.Popen([pg.cluster.psql_bin, "-X", "-q", "-d", pg.url, "-c",
                          f"BEGIN; SELECT * FROM tasks WHERE id = {locked['id']} FOR UPDATE; "
                          "SELECT pg_sleep(30); COMMIT;"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and pg.scalar(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = 'tasks' AND l.mode = 'RowShareLock' AND l.granted") == "0":
            time.sleep(0.02)
        results = {}

        def patch_locked():
            results["locked"] = api.patch(locked["id"], {"title": "x"}, timeout=20)

        th = threading.Thread(target=patch_locked)
        th.start()
        time.sleep(0.3)  # the PATCH is in flight and waiting on the row lock
        results["free"] = api.get(free["id"], timeout=20)
        th.join(20)
        assert_problem(results["locked"], 503)
        assert results["free"].status == 200, results["free"]
        assert "no answer within statement_timeout" not in "".join(s.logs())
    finally:
        p.kill()
        p.wait(timeout=10)


def test_multi_host_url_fails_over_to_the_live_host(pg, start_api_server):
    """A refused first host must be libpq's to judge: it moves on to the next
    host of the connection string (review case 4)."""
    port = pg.url.split("@127.0.0.1:")[1].split("/")[0]
    dbname = pg.url.rsplit("/", 1)[1]
    url = f"postgresql://todo@127.0.0.1:1,127.0.0.1:{port}/{dbname}"
    s = start_api_server(url)  # waits for /readyz 200
    api = TasksClient(s, new_user())
    assert api.create_ok(title="via the second host")["title"] == "via the second host"
