"""Request smuggling / malformed request corpus (reliability.md, test 30).

Each attack is followed, in the same send, by ``GET /nope-smuggled``. The server
must answer with exactly one 400 (problem+json, Connection: close) and close; the
smuggled request never runs: no second response, no access-log line for it, and
the "unmatched" 404 counter does not move.
"""

import time

import pytest

from conftest import assert_problem, build_request, metric

SMUGGLED = b"GET /nope-smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def req(head_lines, body=b"", start=b"POST /healthz HTTP/1.1"):
    return start + b"\r\n" + b"".join(l + b"\r\n" for l in head_lines) + b"\r\n" + body


H = b"Host: x"

CORPUS = {
    # framing conflicts
    "cl_and_te": req([H, b"Content-Length: 5", b"Transfer-Encoding: chunked"], b"0\r\n\r\n"),
    "te_and_cl": req([H, b"Transfer-Encoding: chunked", b"Content-Length: 5"], b"0\r\n\r\n"),
    "te_chunked_identity": req([H, b"Transfer-Encoding: chunked, identity"], b"0\r\n\r\n"),
    "te_identity": req([H, b"Transfer-Encoding: identity"], b"0\r\n\r\n"),
    "te_identity_with_cl": req([H, b"Transfer-Encoding: identity", b"Content-Length: 3"], b"abc"),
    "cl_differing_duplicates": req([H, b"Content-Length: 3", b"Content-Length: 5"], b"abcde"),
    "cl_plus": req([H, b"Content-Length: +3"], b"abc"),
    "cl_hex": req([H, b"Content-Length: 0x3"], b"abc"),
    "cl_list": req([H, b"Content-Length: 3,3"], b"abc"),
    "cl_negative": req([H, b"Content-Length: -1"], b"abc"),
    "cl_not_number": req([H, b"Content-Length: abc"], b"abc"),
    "cl_space_inside": req([H, b"Content-Length: 1 2"], b"abc"),
    # header syntax
    "space_before_colon_host": req([b"Host : x", b"Content-Length: 0"]),
    "space_before_colon_cl": req([H, b"Content-Length : 3"], b"abc"),
    "obs_fold_sp_cl": req([H, b"X-Foo: bar", b" Content-Length: 38"], start=b"GET /healthz HTTP/1.1"),
    "obs_fold_htab_cl": req([H, b"X-Foo: bar", b"\tContent-Length: 38"], start=b"GET /healthz HTTP/1.1"),
    "obs_fold_harmless": req([H, b"X-Foo: bar", b"  baz"], start=b"GET /healthz HTTP/1.1"),
    "obs_fold_te": req([H, b"X-Foo: bar", b" Transfer-Encoding: chunked"], b"0\r\n\r\n"),
    "header_no_colon": req([H, b"X-NoColon"], start=b"GET /healthz HTTP/1.1"),
    "header_empty_name": req([H, b": value"], start=b"GET /healthz HTTP/1.1"),
    "header_name_bad_char": req([H, b"X(A): b"], start=b"GET /healthz HTTP/1.1"),
    # Host (RFC 9112 section 3.2: a server MUST answer 400)
    "host_missing": b"GET /healthz HTTP/1.1\r\nX-A: b\r\n\r\n",
    "host_duplicate": b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    # line endings
    "bare_lf_everywhere": b"GET /healthz HTTP/1.1\nHost: x\n\n",
    "bare_lf_one_header": b"GET /healthz HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",
    "bare_lf_request_line": b"GET /healthz HTTP/1.1\nHost: x\r\n\r\n",
    "bare_cr_in_header": b"GET /healthz HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n",
    "bare_cr_request_line": b"GET /healthz HTTP/1.1\rHost: x\r\n\r\n",
    # chunked encoding
    "chunk_size_bad": req([H, b"Transfer-Encoding: chunked"], b"zz\r\nabc\r\n0\r\n\r\n"),
    "chunk_size_negative": req([H, b"Transfer-Encoding: chunked"], b"-3\r\nabc\r\n0\r\n\r\n"),
    "chunk_size_overflow": req([H, b"Transfer-Encoding: chunked"],
                               b"fffffffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
    "chunk_missing_crlf": req([H, b"Transfer-Encoding: chunked"], b"3\r\nabcX\r\n0\r\n\r\n"),
    "chunk_data_too_long": req([H, b"Transfer-Encoding: chunked"], b"3\r\nabcdef\r\n0\r\n\r\n"),
    "chunk_ext_nul": req([H, b"Transfer-Encoding: chunked"], b"3;ext\x00=1\r\nabc\r\n0\r\n\r\n"),
    "chunk_ext_bare_lf": req([H, b"Transfer-Encoding: chunked"], b"3;ext\nabc\r\n0\r\n\r\n"),
    # forbidden bytes
    "nul_in_header_value": req([H, b"X-A: a\x00b"], start=b"GET /healthz HTTP/1.1"),
    "del_in_header_value": req([H, b"X-A: a\x7fb"], start=b"GET /healthz HTTP/1.1"),
    "nul_in_header_name": req([H, b"X-\x00A: b"], start=b"GET /healthz HTTP/1.1"),
    "nul_in_url": b"GET /healthz\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    "ctl_in_url": b"GET /health\x01z HTTP/1.1\r\nHost: x\r\n\r\n",
    # request line
    "url_with_space": b"GET /hea lthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_method_char": b"G@T /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "lowercase_version": b"GET /healthz http/1.1\r\nHost: x\r\n\r\n",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
}


def _unmatched_404(server):
    return metric(server.metrics(), "http_requests_total",
                  route="unmatched", method="GET", status="404") or 0


@pytest.mark.parametrize("name", list(CORPUS))
def test_smuggling_corpus(server, name):
    attack = CORPUS[name]
    before = _unmatched_404(server)
    with server.connect() as c:
        try:
            c.send(attack + SMUGGLED, methods=["X", "GET"])
        except (BrokenPipeError, ConnectionResetError):
            pass
        rs, closed = c.read_until_close(timeout=3)
    assert closed, f"{name}: connection left open after {rs!r}"
    assert len(rs) == 1, f"{name}: expected exactly one response, got {[r.status for r in rs]}"
    assert_problem(rs[0], 400)
    assert "close" in rs[0].connection_tokens(), rs[0]
    # the smuggled request never ran
    assert _unmatched_404(server) == before, f"{name}: smuggled request was executed"
    assert not any("nope-smuggled" in l for l in server.logs()), f"{name}: smuggled request logged"
    # and the server is healthy
    assert server.get("/healthz").status == 200


@pytest.mark.parametrize("version", [b" HTTP/1.2", b" HTTP/2.0", b" HTTP/3.0", b" HTTP/1.10",
                                     b" HTTP/0.9", b""])
def test_unsupported_version(server, version):
    """llhttp 8.1 accepts any digit.digit version; the server must refuse anything but
    1.0/1.1 (a missing version is an HTTP/0.9 request): 505 (or 400), one response,
    close."""
    before = _unmatched_404(server)
    with server.connect() as c:
        c.send(b"GET /healthz" + version + b"\r\nHost: x\r\n\r\n" + SMUGGLED, methods=["X", "GET"])
        rs, closed = c.read_until_close(timeout=3)
    assert closed, rs
    assert len(rs) == 1, [r.status for r in rs]
    assert rs[0].status in (400, 505), rs[0]
    assert_problem(rs[0], rs[0].status)
    assert "close" in rs[0].connection_tokens(), rs[0]
    assert _unmatched_404(server) == before


def test_connect_method(server):
    before = _unmatched_404(server)
    with server.connect() as c:
        c.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n" + SMUGGLED,
               methods=["X", "GET"])
        rs, closed = c.read_until_close(timeout=3)
    assert closed, rs
    assert len(rs) == 1, [r.status for r in rs]
    assert rs[0].status in (400, 405), rs[0]
    assert_problem(rs[0], rs[0].status)
    assert "close" in rs[0].connection_tokens(), rs[0]
    assert _unmatched_404(server) == before


@pytest.mark.parametrize("proto", [b"websocket", b"h2c"])
def test_upgrade_is_not_honoured(server, proto):
    """Upgrade is ignored as RFC 9110 7.8 allows (docs/operations.md): the
    request is answered as plain HTTP/1.1 with Connection: close, and the bytes
    after it are never run as a request."""
    before = _unmatched_404(server)
    with server.connect() as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: " + proto +
               b"\r\n\r\n" + SMUGGLED, methods=["GET", "GET"])
        rs, closed = c.read_until_close(timeout=3)
    assert closed, rs
    assert len(rs) == 1, [r.status for r in rs]
    assert rs[0].status == 200, rs[0]
    assert rs[0].headers.get("connection", "").lower() == "close", rs[0].headers
    assert _unmatched_404(server) == before


def test_malformed_after_good_pipelined_requests(server):
    """Responses to earlier pipelined requests are delivered, then the 400, then close."""
    raw = (build_request("GET", "/healthz", headers=[("X-Request-Id", "g1")]) +
           build_request("GET", "/readyz", headers=[("X-Request-Id", "g2")]) +
           CORPUS["cl_and_te"] + SMUGGLED)
    with server.connect() as c:
        c.send(raw, methods=["GET", "GET", "POST", "GET"])
        rs, closed = c.read_until_close(timeout=3)
    assert closed
    assert [r.status for r in rs] == [200, 200, 400], rs
    assert [r.headers["x-request-id"] for r in rs[:2]] == ["g1", "g2"]


def test_obs_fold_split_across_packets(server):
    """The fold detector must work when CRLF and the SP arrive in different reads."""
    with server.connect() as c:
        c.methods += ["X"]
        c.sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Foo: bar\r\n")
        time.sleep(0.1)
        c.sock.sendall(b" Content-Length: 38\r\n\r\n" + SMUGGLED)
        rs, closed = c.read_until_close(timeout=3)
    assert closed and len(rs) == 1, rs
    assert_problem(rs[0], 400)


def test_unknown_transfer_coding_is_501(server):
    """RFC 9112 6.1: a coding the server does not implement, even before a final
    chunked, is 501; the connection closes and the smuggled request never runs."""
    before = _unmatched_404(server)
    with server.connect() as c:
        c.send(req([H, b"Transfer-Encoding: gzip, chunked"], b"0\r\n\r\n") + SMUGGLED,
               methods=["POST", "GET"])
        rs, closed = c.read_until_close(timeout=3)
    assert closed and len(rs) == 1, rs
    assert_problem(rs[0], 501)
    assert _unmatched_404(server) == before


def test_chunk_extensions_are_bounded(start_server):
    """Chunk extensions are not stored, but they count against MAX_HEADER_BYTES
    so a body cannot be padded without limit."""
    s = start_server(MAX_HEADER_BYTES="1024", MAX_BODY_BYTES="1024")
    ext = b";x=" + b"a" * 4096
    with s.connect() as c:
        c.send(req([H, b"Transfer-Encoding: chunked"], b"1" + ext + b"\r\nz\r\n0\r\n\r\n"),
               methods=["POST"])
        rs, closed = c.read_until_close(timeout=3)
    assert closed and len(rs) == 1, rs
    assert_problem(rs[0], 431)
    # a short extension is fine
    with s.connect() as c:
        c.send(req([H, b"Transfer-Encoding: chunked"], b"1;x=y\r\nz\r\n0\r\n\r\n"),
               methods=["POST"])
        r = c.read_response()
    assert r.status == 405
