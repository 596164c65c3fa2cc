"""PostgreSQL going away and coming back, on clusters of these tests' own
(the session cluster is never stopped)."""

import re
import signal
import threading
import time

from conftest import (TasksClient, assert_problem, new_user, poll, readyz, wait_ready)
from pg import free_port

# A request may wait DB_QUEUE_TIMEOUT_MS (2 s by default) for a connection
# before it is answered 503: "quickly" means well within this.
ANSWER_WITHIN = 8.0


def assert_unavailable(resp):
    doc = assert_problem(resp, 503)
    assert doc["type"] == "urn:todo-backend:problem:unavailable", doc
    ra = resp.headers.get("retry-after")
    assert ra is not None, f"503 without Retry-After: {resp!r}"
    assert re.fullmatch(r"\d+", ra) or re.search(r"GMT$", ra), ra
    return doc


def timed(fn):
    t0 = time.monotonic()
    r = fn()
    return r, time.monotonic() - t0


def test_restart_during_requests_503_then_recovers(dedicated_pg, start_api_server):
    cluster = dedicated_pg()
    s = start_api_server(cluster.url)
    api = TasksClient(s, new_user())
    durable = api.create_ok(title="written before the restart")

    results = []
    stop = threading.Event()

    def worker():
        i = 0
        while not stop.is_set():
            i += 1
            t0 = time.monotonic()
            try:
                if i % 2:
                    r = api.create({"title": f"during {i}"}, timeout=15)
                else:
                    r = api.list({"limit": "5"}, timeout=15)
                results.append((time.monotonic() - t0, r))
            except (AssertionError, OSError) as e:
                results.append((time.monotonic() - t0, e))
            time.sleep(0.01)

    th = threading.Thread(target=worker, daemon=True)
    th.start()
    try:
        time.sleep(0.3)
        cluster.restart("fast")
        # without restarting the service, requests succeed again
        recovered = poll(lambda: api.list().status == 200 and
                         api.create({"title": "after"}).status == 201, timeout=20, interval=0.1)
    finally:
        stop.set()
        th.join(timeout=20)
    assert recovered, "the service did not recover within 20 s after the restart; stderr:\n" + \
        "\n".join(s.logs()[-30:])
    errors = [(t, e) for t, e in results if isinstance(e, Exception)]
    assert not errors, f"requests that got no answer: {errors[:5]}"
    for elapsed, r in results:
        assert elapsed < ANSWER_WITHIN, f"a request took {elapsed:.1f} s: {r!r}"
        assert r.status in (200, 201, 503), r
        if r.status == 503:
            assert_unavailable(r)
    assert api.get_ok(durable["id"]) == durable
    assert s.alive()


def test_database_stopped_then_started(dedicated_pg, start_api_server):
    cluster = dedicated_pg()
    s = start_api_server(cluster.url)
    api = TasksClient(s, new_user())
    task = api.create_ok(title="before")

    cluster.stop("fast")
    assert poll(lambda: readyz(s)[0] == 503, timeout=10, interval=0.1), \
        f"/readyz still {readyz(s)} 10 s after PostgreSQL stopped"
    code, doc = readyz(s)
    assert code == 503
    db_state = doc["checks"]["database"]
    assert isinstance(db_state, str) and db_state != "ok", doc
    assert doc["status"] != "ready", doc
    assert s.get("/healthz").status == 200                 # liveness does not depend on it

    for call in (lambda: api.list(timeout=15),
                 lambda: api.get(task["id"], timeout=15),
                 lambda: api.create({"title": "while down"}, timeout=15),
                 lambda: api.patch(task["id"], {"title": "while down"}, timeout=15),
                 lambda: api.complete(task["id"], timeout=15),
                 lambda: api.delete(task["id"], timeout=15)):
        r, elapsed = timed(call)
        assert elapsed < ANSWER_WITHIN, f"answered after {elapsed:.1f} s: {r!r}"
        assert_unavailable(r)

    cluster.start()
    wait_ready(s, timeout=20)
    assert readyz(s)[1]["checks"]["database"] == "ok"
    assert api.get_ok(task["id"]) == task                  # nothing above changed it
    api.create_ok(title="after")
    assert s.alive()


def test_service_started_before_the_database(dedicated_pg, start_api_server):
    cluster = dedicated_pg(start=False)
    cluster.port = free_port()
    s = start_api_server(cluster.url, wait=False)
    api = TasksClient(s, new_user())
    code, doc = readyz(s)
    assert code == 503, doc
    assert doc["checks"]["database"] != "ok", doc
    r, elapsed = timed(lambda: api.list(timeout=15))
    assert elapsed < ANSWER_WITHIN
    assert_unavailable(r)
    cluster.start()
    wait_ready(s, timeout=30)
    api.create_ok(title="first")


def test_sigterm_while_the_database_is_down_exits_0(dedicated_pg, start_api_server):
    cluster = dedicated_pg()
    s = start_api_server(cluster.url)
    cluster.stop("immediate")
    assert poll(lambda: readyz(s)[0] == 503, timeout=10, interval=0.1)
    t0 = time.monotonic()
    assert s.stop(signal.SIGTERM, timeout=15) == 0
    assert time.monotonic() - t0 < 12


def _postgres_pids(cluster):
    """The postmaster and every backend of a cluster (children of the
    postmaster, whose pid is the first line of postmaster.pid)."""
    with open(f"{cluster.data}/postmaster.pid") as f:
        master = int(f.readline())
    pids = [master]
    import os
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == master:
                        pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return pids


def test_hung_server_requests_fail_then_recover(dedicated_pg, start_api_server):
    """A PostgreSQL that stops answering (SIGSTOP: no RST, no FIN) must not hang
    requests: past statement_timeout plus a grace period the connection is
    given up, the request gets 503, and the service recovers after SIGCONT."""
    import os
    cluster = dedicated_pg()
    s = start_api_server(cluster.url, DB_STATEMENT_TIMEOUT_MS="1000", DB_QUEUE_TIMEOUT_MS="1000")
    api = TasksClient(s, new_user())
    task = api.create_ok(title="before the hang")
    pids = _postgres_pids(cluster)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        r, took = timed(lambda: api.get(task["id"], timeout=20))
        assert_unavailable(r)
        # statement_timeout 1 s + 2 s grace + sweep interval; far below TCP's minutes
        assert took < ANSWER_WITHIN, f"answered after {took:.1f} s"
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert poll(lambda: api.get(task["id"]).status == 200, timeout=20), "no recovery after SIGCONT"
    assert s.alive()
