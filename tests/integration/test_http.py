"""HTTP/1.1 connection behaviour: keep-alive, close, pipelining, bodies, Expect."""

import time

import pytest

from conftest import assert_common_headers, assert_problem, build_request


def test_keep_alive_by_default(server):
    with server.connect() as c:
        for i in range(3):
            c.request("GET", "/healthz")
            r = c.read_response()
            assert r.status == 200
            assert "close" not in r.connection_tokens()
        assert not c.wait_closed(timeout=0.3)


def test_connection_close(server):
    with server.connect() as c:
        c.request("GET", "/healthz", headers=[("Connection", "close")])
        rs, closed = c.read_until_close(timeout=3)
    assert closed, "server kept the connection open after Connection: close"
    assert len(rs) == 1 and rs[0].status == 200
    assert "close" in rs[0].connection_tokens()


def test_connection_close_pipelined_stops_processing(server):
    """Requests after one carrying Connection: close are not answered."""
    raw = (build_request("GET", "/healthz") +
           build_request("GET", "/readyz", headers=[("Connection", "close")]) +
           build_request("GET", "/nope-after-close"))
    with server.connect() as c:
        c.send(raw, methods=["GET"] * 3)
        rs, closed = c.read_until_close(timeout=3)
    assert closed
    assert [r.status for r in rs] == [200, 200]
    assert "close" in rs[1].connection_tokens()


def test_http10_closes_by_default(server):
    with server.connect() as c:
        c.send(b"GET /healthz HTTP/1.0\r\n\r\n", methods=["GET"])
        rs, closed = c.read_until_close(timeout=3)
    assert closed, "HTTP/1.0 request without keep-alive must close"
    assert len(rs) == 1 and rs[0].status == 200
    assert rs[0].json() == {"status": "ok"}


def test_http10_keep_alive(server):
    with server.connect() as c:
        c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", methods=["GET"])
        r = c.read_response()
        assert r.status == 200
        assert "keep-alive" in r.connection_tokens(), \
            "an HTTP/1.0 client only keeps the connection if the response says keep-alive"
        c.send(b"GET /readyz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", methods=["GET"])
        assert c.read_response().status == 200


def test_100_pipelined_in_order_with_ids(server):
    raw = b""
    expected = []
    for i in range(100):
        path, status = [("/healthz", 200), ("/readyz", 200), (f"/nope-{i}", 404)][i % 3]
        raw += build_request("GET", path, headers=[("X-Request-Id", f"pipe-{i}")])
        expected.append((status, f"pipe-{i}", path))
    with server.connect(timeout=10) as c:
        c.send(raw, methods=["GET"] * 100)
        rs = c.read_responses(100, timeout=15)
        assert not c.wait_closed(timeout=0.2)
        assert c.pending() == b""
    for r, (status, rid, path) in zip(rs, expected):
        assert r.status == status, (path, r)
        assert r.headers["x-request-id"] == rid, (path, r)
        assert_common_headers(r)
        if path == "/healthz":
            assert r.json() == {"status": "ok"}
        elif path == "/readyz":
            assert r.json()["status"] == "ready"


def test_pipeline_beyond_max_pipeline(start_server):
    """MAX_PIPELINE bounds in-flight requests; more pipelined requests are still all
    answered in order (reading pauses, nothing is dropped)."""
    s = start_server(MAX_PIPELINE=2)
    raw = b"".join(build_request("GET", "/healthz" if i % 2 else "/nope",
                                 headers=[("X-Request-Id", f"mp-{i}")]) for i in range(50))
    with s.connect(timeout=10) as c:
        c.send(raw, methods=["GET"] * 50)
        rs = c.read_responses(50, timeout=15)
    assert [r.headers["x-request-id"] for r in rs] == [f"mp-{i}" for i in range(50)]
    assert [r.status for r in rs] == [200 if i % 2 else 404 for i in range(50)]


def test_pipeline_with_bodies_and_head(server):
    raw = (build_request("GET", "/healthz") +
           build_request("POST", "/healthz", body=b"hello") +
           build_request("HEAD", "/readyz") +
           build_request("POST", "/readyz", headers=[("Transfer-Encoding", "chunked")],
                         body=b"3\r\nabc\r\n0\r\n\r\n") +
           build_request("GET", "/readyz"))
    with server.connect() as c:
        c.send(raw, methods=["GET", "POST", "HEAD", "POST", "GET"])
        rs = c.read_responses(5)
        assert c.pending() == b""
    assert [r.status for r in rs] == [200, 405, 200, 405, 200]
    assert rs[2].body == b""
    assert rs[4].json()["status"] == "ready"


def test_content_length_body_then_next_request(server):
    with server.connect() as c:
        c.send(build_request("POST", "/healthz", body=b"hello world"), methods=["POST"])
        time.sleep(0.05)
        c.request("GET", "/healthz")
        a, b = c.read_responses(2)
    assert_problem(a, 405)
    assert b.status == 200


def test_body_split_across_writes(server):
    with server.connect() as c:
        c.send(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhel", methods=["POST"])
        time.sleep(0.1)
        c.send(b"lo")
        time.sleep(0.1)
        c.send(b"world" + build_request("GET", "/healthz"), methods=["GET"])
        a, b = c.read_responses(2)
    assert a.status == 405 and b.status == 200


def test_chunked_body_then_next_request(server):
    body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    raw = (b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body +
           build_request("GET", "/healthz"))
    with server.connect() as c:
        c.send(raw, methods=["POST", "GET"])
        a, b = c.read_responses(2)
        assert not c.closed
    assert_problem(a, 405)
    assert b.status == 200 and b.json() == {"status": "ok"}


def test_chunked_body_with_trailers(server):
    raw = (b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n0\r\nX-Trailer: yes\r\n\r\n" + build_request("GET", "/readyz"))
    with server.connect() as c:
        c.send(raw, methods=["POST", "GET"])
        a, b = c.read_responses(2)
    assert a.status == 405 and b.status == 200


def test_chunked_body_byte_by_byte(server):
    raw = (b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n" + build_request("GET", "/healthz"))
    with server.connect() as c:
        c.methods += ["POST", "GET"]
        for i in range(len(raw)):
            c.sock.sendall(raw[i:i + 1])
        a, b = c.read_responses(2)
    assert a.status == 405 and b.status == 200


def test_expect_100_continue(server):
    with server.connect() as c:
        c.send(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
               b"Expect: 100-continue\r\n\r\n", methods=["POST"])
        interim = c.read_response(timeout=3)
        assert interim.status == 100, interim
        assert interim.version == "1.1"
        c.send(b"hello")
        final = c.read_response()
        assert_problem(final, 405)
        c.request("GET", "/healthz")
        assert c.read_response().status == 200


def test_expect_100_continue_too_large(start_server):
    s = start_server(MAX_BODY_BYTES=1024)
    with s.connect() as c:
        c.send(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n"
               b"Expect: 100-continue\r\n\r\n", methods=["POST"])
        rs, closed = c.read_until_close(timeout=5)
    assert [r.status for r in rs] == [413], rs
    assert closed
    assert_problem(rs[0], 413)
    assert "close" in rs[0].connection_tokens()


def test_zero_length_post(server):
    with server.connect() as c:
        c.send(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" +
               build_request("GET", "/healthz"), methods=["POST", "GET"])
        a, b = c.read_responses(2)
    assert a.status == 405 and b.status == 200


def test_large_body_at_default_limit_is_read(server):
    """Exactly MAX_BODY_BYTES (default 1 MiB) is accepted and fully consumed."""
    body = b"b" * 1048576
    with server.connect(timeout=10) as c:
        c.send(build_request("POST", "/healthz", body=body) + build_request("GET", "/healthz"),
               methods=["POST", "GET"])
        a, b = c.read_responses(2, timeout=15)
    assert a.status == 405 and b.status == 200
