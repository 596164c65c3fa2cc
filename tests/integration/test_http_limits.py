"""Size limits: 431 / 414 / 413, each a problem+json with Connection: close, then
the connection is closed."""

import socket
import threading
import time

import pytest

from conftest import assert_problem, build_request

LIMITS = dict(MAX_HEADER_BYTES=2048, MAX_URL_BYTES=512, MAX_HEADERS=10, MAX_BODY_BYTES=1024)


@pytest.fixture
def small(start_server):
    return start_server(**LIMITS)


def expect_limit(port_or_server, raw, status, timeout=5.0, smuggle=True):
    """Send raw (plus a request that must never be answered) and expect exactly one
    problem response with Connection: close, then the close."""
    s = port_or_server
    with s.connect() as c:
        try:
            c.send(raw + (build_request("GET", "/nope-after-limit") if smuggle else b""),
                   methods=["X", "GET"])
        except (BrokenPipeError, ConnectionResetError):
            pass     # the server may answer and close while we are still sending
        rs, closed = c.read_until_close(timeout=timeout)
    assert closed, f"connection still open after {status}: {rs!r}"
    assert [r.status for r in rs] == [status], rs
    assert_problem(rs[0], status)
    assert "close" in rs[0].connection_tokens(), rs[0]
    return rs[0]


def ok(s, raw, status):
    with s.connect() as c:
        c.send(raw, methods=["X"])
        r = c.read_response()
    assert r.status == status, r
    return r


# ------------------------------------------------------------------ headers

def test_header_bytes_over_limit_431(small):
    expect_limit(small, build_request("GET", "/healthz", headers=[("X-Big", "a" * 3000)]), 431)


def test_header_bytes_spread_over_many_lines_431(small):
    # 8 headers (under MAX_HEADERS) of 300 bytes each = 2400 > 2048
    expect_limit(small, build_request("GET", "/healthz",
                                      headers=[(f"X-B{i}", "b" * 300) for i in range(8)]), 431)


def test_header_bytes_under_limit_ok(small):
    ok(small, build_request("GET", "/healthz", headers=[("X-Big", "a" * 1500)]), 200)


def test_header_bytes_arriving_slowly_still_counted(small):
    """The limit holds even when the head arrives in many small writes."""
    with small.connect() as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", methods=["GET"])
        try:
            for _ in range(30):
                c.sock.sendall(b"c" * 100)
                time.sleep(0.01)
            c.sock.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        rs, closed = c.read_until_close(timeout=5)
    assert closed and [r.status for r in rs] == [431], rs


def test_header_count_at_limit_ok(small):
    # Host + 9 = exactly MAX_HEADERS (10)
    ok(small, build_request("GET", "/healthz", headers=[(f"X-H{i}", "v") for i in range(9)]), 200)


def test_header_count_over_limit_431(small):
    # Host + 10 = 11 > 10
    expect_limit(small, build_request("GET", "/healthz",
                                      headers=[(f"X-H{i}", "v") for i in range(10)]), 431)


def test_default_header_bytes_limit(server):
    expect_limit(server, build_request("GET", "/healthz", headers=[("X-Big", "a" * 17000)]), 431)
    ok(server, build_request("GET", "/healthz", headers=[("X-Big", "a" * 15000)]), 200)


def test_default_header_count_limit(server):
    ok(server, build_request("GET", "/healthz", headers=[(f"X-H{i}", "v") for i in range(99)]), 200)
    expect_limit(server, build_request("GET", "/healthz",
                                       headers=[(f"X-H{i}", "v") for i in range(100)]), 431)


# ---------------------------------------------------------------------- URL

def test_url_at_limit_ok(small):
    url = "/" + "u" * 511                     # exactly 512 bytes
    ok(small, build_request("GET", url), 404)


def test_url_over_limit_414(small):
    expect_limit(small, build_request("GET", "/" + "u" * 512), 414)   # 513 bytes


def test_url_query_counts(small):
    expect_limit(small, build_request("GET", "/healthz?" + "q" * 600), 414)


def test_default_url_limit(server):
    expect_limit(server, build_request("GET", "/" + "u" * 9000), 414)
    ok(server, build_request("GET", "/" + "u" * 8000), 404)


def test_huge_url_rejected_without_waiting(server):
    """A 100 KiB URL with no end of line: the server must answer (414 or 431) and
    close, not buffer it forever."""
    with server.connect() as c:
        try:
            c.send(b"GET /" + b"u" * 100000, methods=["GET"])
        except (BrokenPipeError, ConnectionResetError):
            pass
        rs, closed = c.read_until_close(timeout=5)
    assert closed
    assert len(rs) == 1 and rs[0].status in (414, 431), rs


# --------------------------------------------------------------------- body

def test_body_at_limit_ok(small):
    with small.connect() as c:
        c.send(build_request("POST", "/healthz", body=b"x" * 1024) + build_request("GET", "/healthz"),
               methods=["POST", "GET"])
        a, b = c.read_responses(2)
    assert a.status == 405 and b.status == 200


def test_content_length_over_limit_answered_without_body(small):
    """Content-Length one byte over the cap: 413 before any body byte is sent."""
    r = expect_limit(small, b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n", 413,
                     smuggle=False)
    assert r.json()["status"] == 413


def test_content_length_huge_answered_without_body(server):
    expect_limit(server, b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n", 413,
                 smuggle=False)
    expect_limit(server, b"POST /healthz HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: 9000000000000\r\n\r\n", 413, smuggle=False)


def test_content_length_over_limit_while_client_keeps_sending(small):
    """The client streams a large body; the server answers 413 and closes instead of
    reading (or waiting for) the rest, and the client does receive the 413."""
    c = small.connect(timeout=10)
    stop = threading.Event()
    sent = [0]

    def sender():
        chunk = b"z" * 65536
        try:
            c.sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n")
            while not stop.is_set() and sent[0] < 50000000:
                c.sock.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    try:
        c.methods.append("POST")
        rs, closed = c.read_until_close(timeout=8)
    finally:
        stop.set()
        try:
            c.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        c.close()
        t.join(5)
    assert closed, "server waited for the body instead of closing"
    assert [r.status for r in rs] == [413], rs
    assert_problem(rs[0], 413)
    assert sent[0] < 50000000, "server read the whole over-limit body"


def test_chunked_total_over_limit_413(small):
    body = b"".join(b"200\r\n" + b"c" * 512 + b"\r\n" for _ in range(3)) + b"0\r\n\r\n"
    expect_limit(small, b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 + body, 413)


def test_chunked_single_huge_chunk_413(small):
    """One chunk announcing 1 MiB; 2000 of its bytes (> cap 1024) are sent and the
    client then waits: the server must not wait for the rest of the chunk."""
    expect_limit(small, b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"100000\r\n" + b"a" * 2000, 413)


def test_chunked_total_at_limit_ok(small):
    body = b"200\r\n" + b"c" * 512 + b"\r\n" + b"200\r\n" + b"d" * 512 + b"\r\n0\r\n\r\n"
    with small.connect() as c:
        c.send(b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body
               + build_request("GET", "/healthz"), methods=["POST", "GET"])
        a, b = c.read_responses(2)
    assert a.status == 405 and b.status == 200


def test_limits_do_not_affect_other_connections(small):
    with small.connect() as good:
        expect_limit(small, build_request("GET", "/" + "u" * 600), 414)
        good.request("GET", "/healthz")
        assert good.read_response().status == 200
