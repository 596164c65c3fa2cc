"""Bounded resources: header/body/idle timeouts, connection cap, output bound.

Timeouts are checked as behaviour with generous margins, never as performance."""

import math
import socket
import threading
import time

from conftest import HOST, assert_problem, build_request, metric, parse_responses, poll


def _timeout_response_ok(rs):
    """A timeout may be answered with 408 (problem+json, close) or a silent close."""
    assert len(rs) <= 1, rs
    if rs:
        assert_problem(rs[0], 408)
        assert "close" in rs[0].connection_tokens()


def test_slowloris_closed_by_header_timeout(start_server):
    s = start_server(HEADER_TIMEOUT_MS=1000)
    slow = s.connect()
    stop = threading.Event()
    result = {}

    def dribble():
        t0 = time.monotonic()
        try:
            slow.sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            while not stop.is_set() and time.monotonic() - t0 < 8:
                time.sleep(0.2)
                slow.sock.sendall(b"a")
        except OSError as e:
            result["send_error"] = e

    t = threading.Thread(target=dribble, daemon=True)
    t0 = time.monotonic()
    t.start()
    try:
        # a normal client is served while the slow one is dribbling
        for _ in range(3):
            r = s.get("/healthz")
            assert r.status == 200
            time.sleep(0.1)
        rs, closed = slow.read_until_close(timeout=8)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        t.join(5)
        slow.close()
    assert closed, "slowloris connection still open after 8 s with HEADER_TIMEOUT_MS=1000"
    assert 0.7 <= elapsed <= 4.0, f"closed after {elapsed:.2f} s, expected about 1 s"
    _timeout_response_ok(rs)
    time.sleep(0.2)
    assert s.alive(), f"server died after the header timeout (exit code {s.proc.poll()})"
    assert s.get("/healthz").status == 200


def test_header_timeout_counts_from_first_byte(start_server):
    """A head that is complete before the deadline is served normally."""
    s = start_server(HEADER_TIMEOUT_MS=1000)
    with s.connect() as c:
        c.methods.append("GET")
        for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"X-A: b\r\n", b"\r\n"):
            c.sock.sendall(piece)
            time.sleep(0.15)
        assert c.read_response().status == 200


def test_body_timeout(start_server):
    s = start_server(BODY_TIMEOUT_MS=1000, HEADER_TIMEOUT_MS=10000)
    with s.connect() as c:
        t0 = time.monotonic()
        c.send(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello", methods=["POST"])
        rs, closed = c.read_until_close(timeout=8)
        elapsed = time.monotonic() - t0
    assert closed, "stalled body not closed within 8 s with BODY_TIMEOUT_MS=1000"
    assert 0.7 <= elapsed <= 5.0, elapsed
    _timeout_response_ok(rs)
    time.sleep(0.2)
    assert s.alive(), f"server died after the body timeout (exit code {s.proc.poll()})"
    assert s.get("/healthz").status == 200


def test_idle_keepalive_closed(start_server):
    s = start_server(IDLE_TIMEOUT_MS=500)
    with s.connect() as c:
        c.request("GET", "/healthz")
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.wait_closed(timeout=6), "idle connection not closed with IDLE_TIMEOUT_MS=500"
        elapsed = time.monotonic() - t0
        assert c.pending() == b"", "no response expected on an idle close"
    assert 0.3 <= elapsed <= 3.0, elapsed
    time.sleep(0.2)
    assert s.get("/healthz").status == 200


def test_idle_timer_reset_by_activity(start_server):
    s = start_server(IDLE_TIMEOUT_MS=500)
    with s.connect() as c:
        for _ in range(6):              # ~1.5 s of activity, each gap < idle timeout
            c.request("GET", "/healthz")
            assert c.read_response().status == 200
            time.sleep(0.25)
        assert not c.closed


def test_connection_cap(start_server):
    s = start_server(MAX_CONNECTIONS=5)
    conns = []
    served, rejected = [], []
    try:
        for i in range(10):
            c = s.connect(timeout=5)
            conns.append(c)
            try:
                c.request("GET", "/healthz", headers=[("X-Request-Id", f"cap-{i}")])
            except OSError:
                pass
            rs, closed = c.read_until_close(timeout=0.5)
            if rs:
                assert rs[0].status in (200, 503), rs
                if rs[0].status == 200:
                    served.append(i)
            if closed and not any(r.status == 200 for r in rs):
                rejected.append(i)
            elif not rs:
                # neither served nor closed within 0.5 s: wait longer to tell which
                if c.wait_closed(timeout=3):
                    rejected.append(i)
        assert len(served) <= 5, f"served {served} with MAX_CONNECTIONS=5"
        assert served == [0, 1, 2, 3, 4], f"served {served}, rejected {rejected}"
        assert rejected == [5, 6, 7, 8, 9], f"extras must be closed promptly; rejected {rejected}"
    finally:
        for c in conns:
            c.close()

    # after the clients went away, new connections are served again
    def healthy():
        try:
            return s.get("/healthz", timeout=2).status == 200
        except (AssertionError, OSError):
            return False

    assert poll(healthy, timeout=5), "server does not serve new connections after the cap"
    samples = s.metrics()
    assert metric(samples, "http_connections_rejected_total") >= 5
    assert metric(samples, "http_connections_open") <= 5


def test_output_bound_with_non_reading_client(start_server):
    """A client pipelining many GET /metrics without reading: the server must stop
    reading (MAX_OUTPUT_BYTES) rather than buffer every response in memory; when the
    client finally reads, every response arrives, in order."""
    s = start_server(MAX_OUTPUT_BYTES=65536, ASAN_OPTIONS="quarantine_size_mb=8")
    size = len(s.get("/metrics").raw)
    bound_kib = 64 * 1024                                  # 64 MiB over the baseline
    # enough requests that buffering all answers would need >= 4x the bound
    n = min(300000, max(20000, math.ceil(4 * bound_kib * 1024 / size)))
    baseline = s.rss_kib()
    payload = b"".join(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Request-Id: om-%d\r\n\r\n" % i
                       for i in range(n))

    c = s.connect(timeout=60)
    sent = [0]
    done = threading.Event()

    def sender():
        view = memoryview(payload)
        try:
            while sent[0] < len(payload):
                sent[0] += c.sock.send(view[sent[0]:sent[0] + 65536])
        except OSError:
            pass
        done.set()

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    peak = baseline
    last, still = -1, 0
    deadline = time.monotonic() + 20
    # sample RSS until the sender finished or made no progress for ~1 s
    while time.monotonic() < deadline:
        peak = max(peak, s.rss_kib())
        if done.is_set():
            break
        if sent[0] == last:
            still += 1
            if still >= 10:
                break
        else:
            last, still = sent[0], 0
        time.sleep(0.1)
    for _ in range(5):
        peak = max(peak, s.rss_kib())
        time.sleep(0.1)
    growth_kib = peak - baseline

    # the server still serves other clients meanwhile
    assert s.get("/healthz").status == 200

    # now read everything: all n responses arrive, in order
    buf = b""
    count = 0
    c.sock.settimeout(30)
    read_deadline = time.monotonic() + 60
    try:
        while count < n and time.monotonic() < read_deadline:
            data = c.sock.recv(1 << 20)
            if not data:
                break
            rs, buf = parse_responses(buf + data, eof=False)
            for r in rs:
                assert r.status == 200, r
                assert r.headers["x-request-id"] == f"om-{count}", (count, r.headers)
                count += 1
    finally:
        t.join(10)
        c.close()
    assert growth_kib < bound_kib, (
        f"RSS grew by {growth_kib / 1024:.0f} MiB while the client did not read "
        f"({n} requests, {size} B per response)")
    assert count == n, f"got {count} of {n} responses"
    assert s.get("/healthz").status == 200
