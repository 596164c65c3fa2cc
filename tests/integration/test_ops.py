"""Operational endpoints, error format, request ids, access log, metrics."""

import json
import time

import pytest

from conftest import (RFC3339_UTC_RE, UUID_RE, assert_common_headers, assert_problem,
                      build_request, metric, parse_metrics, poll)


def test_healthz(server):
    r = server.get("/healthz")
    assert r.status == 200
    assert r.headers["content-type"].split(";")[0].strip() == "application/json"
    assert r.json() == {"status": "ok"}
    assert_common_headers(r)


def test_readyz(server):
    r = server.get("/readyz")
    assert r.status == 200
    assert r.headers["content-type"].split(";")[0].strip() == "application/json"
    doc = r.json()
    assert doc["status"] == "ready"
    assert doc["checks"]["http"] == "ok"
    assert all(v == "ok" for v in doc["checks"].values()), doc
    assert_common_headers(r)


def test_query_string_does_not_change_routing(server):
    r = server.get("/healthz?verbose=1&x=%20")
    assert r.status == 200
    assert r.json() == {"status": "ok"}


def test_unknown_path_404_problem(server):
    r = server.get("/nope")
    doc = assert_problem(r, 404)
    assert doc["type"] == "urn:todo-backend:problem:not-found"
    r = server.get("/nope", method="POST", body=b"{}")
    assert_problem(r, 404)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_wrong_method_405_with_allow(server, path, method):
    r = server.get(path, method=method, body=b"x" if method in ("POST", "PUT", "PATCH") else b"")
    assert_problem(r, 405)
    allow = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
    assert {"GET", "HEAD"} <= allow, r.headers
    assert method not in allow, r.headers
    # every method the server advertises really is allowed there
    for m in allow:
        assert server.get(path, method=m).status != 405, (m, r.headers["allow"])


def test_405_keeps_connection_usable(server):
    with server.connect() as c:
        c.request("DELETE", "/healthz")
        c.request("GET", "/healthz")
        a, b = c.read_responses(2)
        assert a.status == 405 and b.status == 200


def test_head_same_headers_no_body(server):
    """HEAD then GET pipelined on one connection: if HEAD carried a body the second
    response would be garbled."""
    for path, status in (("/healthz", 200), ("/readyz", 200), ("/metrics", 200), ("/nope", 404)):
        with server.connect() as c:
            c.send(build_request("HEAD", path) + build_request("GET", path), methods=["HEAD", "GET"])
            h, g = c.read_responses(2)
            # nothing after the GET response: the HEAD really had no body
            assert c.pending() == b""
            assert h.status == g.status == status, (h, g)
            assert h.body == b""
            assert_common_headers(h, head=True)
            assert_common_headers(g)
            assert h.headers.get("content-type") == g.headers.get("content-type")
            if path == "/metrics":   # counters move between the two requests
                assert int(h.headers["content-length"]) > 0
            else:
                assert h.headers["content-length"] == g.headers["content-length"]
                assert int(h.headers["content-length"]) == len(g.body)


def test_head_with_data_after_it_on_the_wire(server):
    """A HEAD answer must not be followed by body bytes (checked via the next request)."""
    with server.connect() as c:
        c.send(build_request("HEAD", "/healthz") * 3 + build_request("GET", "/readyz"),
               methods=["HEAD"] * 3 + ["GET"])
        rs = c.read_responses(4)
        assert [r.status for r in rs] == [200] * 4
        assert rs[3].json()["status"] == "ready"


# ---------------------------------------------------------------- X-Request-Id

@pytest.mark.parametrize("rid", ["abc", "a" * 128, "A-z_0.9:x", "0", "req.1:2-3_4"])
def test_request_id_echoed(server, rid):
    for path in ("/healthz", "/nope"):
        r = server.get(path, headers=[("X-Request-Id", rid)])
        assert r.headers["x-request-id"] == rid
        assert r.header_count("x-request-id") == 1


@pytest.mark.parametrize("rid", ["a" * 129, "has space", "a/b", "<script>", "x;y", "é", "a,b", ""])
def test_invalid_request_id_replaced_by_uuid(server, rid):
    with server.connect() as c:
        c.send(f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: {rid}\r\n\r\n".encode("utf-8"),
               methods=["GET"])
        r = c.read_response()
    assert r.status == 200
    got = r.headers["x-request-id"]
    assert UUID_RE.match(got) and len(got) == 36, got
    assert got != rid


def test_generated_request_ids_are_unique(server):
    ids = set()
    with server.connect() as c:
        for _ in range(20):
            c.request("GET", "/healthz")
        for r in c.read_responses(20):
            assert UUID_RE.match(r.headers["x-request-id"])
            ids.add(r.headers["x-request-id"])
    assert len(ids) == 20


# ------------------------------------------------------------------ access log

def test_access_log_line(server):
    server.get("/healthz", headers=[("X-Request-Id", "acc-log-1")])
    server.get("/nope/acc", headers=[("X-Request-Id", "acc-log-2")])
    a = server.wait_log(lambda j: j.get("msg") == "request" and j.get("request_id") == "acc-log-1")
    b = server.wait_log(lambda j: j.get("msg") == "request" and j.get("request_id") == "acc-log-2")
    assert a is not None and b is not None, server.logs()
    assert a["method"] == "GET" and a["path"] == "/healthz" and a["status"] == 200
    assert b["path"] == "/nope/acc" and b["status"] == 404
    for j in (a, b):
        assert type(j["bytes"]) is int and j["bytes"] > 0, j
        assert isinstance(j["duration_ms"], (int, float)) and j["duration_ms"] >= 0, j
        assert RFC3339_UTC_RE.match(j["ts"]), j
        assert j["level"] in ("info", "warn", "error"), j


def test_access_log_disabled(start_server):
    s = start_server(ACCESS_LOG=0)
    for path in ("/healthz", "/nope", "/metrics"):
        s.get(path)
    assert s.stop() == 0          # flushes everything
    assert s.wait_log(lambda j: j.get("msg") == "stopped", timeout=0.1) is not None
    assert not [j for j in s.json_logs() if j.get("msg") == "request"], s.logs()


def test_every_log_line_is_json(server):
    server.get("/healthz")
    server.get("/nope")
    server.get("/healthz", method="POST", body=b"x")
    assert server.stop() == 0
    lines = [l for l in server.logs() if l.strip()]
    assert lines
    for l in lines:
        obj = json.loads(l)
        assert isinstance(obj, dict), l
        assert RFC3339_UTC_RE.match(obj["ts"]), l
        assert obj["level"] in ("debug", "info", "warn", "error"), l
        assert isinstance(obj["msg"], str), l


# --------------------------------------------------------------------- metrics

def test_metrics_format(server):
    r = server.get("/metrics")
    assert r.status == 200
    ct = r.headers["content-type"]
    assert ct.split(";")[0].strip() == "text/plain", ct
    assert "version=0.0.4" in ct.replace(" ", ""), ct
    samples = parse_metrics(r.body.decode())   # raises on malformed lines
    names = {n for n, _, _ in samples}
    for n in ("http_connections_open", "http_connections_rejected_total"):
        assert n in names, n
    assert metric(samples, "http_connections_rejected_total") == 0
    text = r.body.decode()
    assert "# TYPE http_requests_total counter" in text
    assert "# TYPE http_request_duration_seconds histogram" in text
    assert "# TYPE http_connections_open gauge" in text


def test_metrics_request_counter_counts_exactly(server):
    before = metric(server.metrics(), "http_requests_total",
                    route="/healthz", method="GET", status="200") or 0
    for _ in range(3):
        assert server.get("/healthz").status == 200
    after = metric(server.metrics(), "http_requests_total",
                   route="/healthz", method="GET", status="200")
    assert after == before + 3


def test_metrics_unmatched_route_no_path_labels(server):
    before = metric(server.metrics(), "http_requests_total",
                    route="unmatched", method="GET", status="404") or 0
    for i in range(4):
        assert server.get(f"/nope-cardinality-{i}").status == 404
    r = server.get("/metrics")
    samples = parse_metrics(r.body.decode())
    assert metric(samples, "http_requests_total", route="unmatched",
                  method="GET", status="404") == before + 4
    assert b"nope-cardinality" not in r.body, "raw paths must not become label values"


def test_metrics_histogram(server):
    for _ in range(5):
        server.get("/healthz")
    samples = server.metrics()
    buckets = [(l, v) for n, l, v in samples
               if n == "http_request_duration_seconds_bucket" and l.get("route") == "/healthz"]
    assert buckets, "no histogram buckets for /healthz"
    # group by the label set without 'le'
    series = {}
    for l, v in buckets:
        key = tuple(sorted((k, x) for k, x in l.items() if k != "le"))
        series.setdefault(key, []).append((float(l["le"]), v))
    total = 0
    for key, bs in series.items():
        bs.sort()
        assert bs[-1][0] == float("inf"), f"no le=\"+Inf\" bucket for {key}"
        counts = [v for _, v in bs]
        assert counts == sorted(counts), f"buckets not cumulative: {bs}"
        labels = dict(key)
        count = metric(samples, "http_request_duration_seconds_count", **labels)
        s = metric(samples, "http_request_duration_seconds_sum", **labels)
        assert count == bs[-1][1], (key, count, bs[-1])
        assert s is not None and s >= 0
        total += count
    assert total >= 5


def test_metrics_connections_open_gauge(server):
    base = metric(server.metrics(), "http_connections_open")
    assert base is not None and base >= 1      # the scrape's own connection
    conns = [server.connect() for _ in range(3)]
    try:
        for c in conns:
            c.request("GET", "/healthz")
            assert c.read_response().status == 200
        now = metric(server.metrics(), "http_connections_open")
        assert now >= base + 3, (base, now)
    finally:
        for c in conns:
            c.close()
    assert poll(lambda: metric(server.metrics(), "http_connections_open") <= base), \
        "http_connections_open did not go back down after the clients closed"


# ---------------------------------------------------- Date / Content-Length

def test_common_headers_on_many_kinds_of_response(start_server):
    s = start_server(MAX_BODY_BYTES=16, MAX_URL_BYTES=256, MAX_HEADERS=8)
    cases = [
        (build_request("GET", "/healthz"), 200),
        (build_request("GET", "/nope"), 404),
        (build_request("POST", "/healthz", body=b"1"), 405),
        (build_request("POST", "/healthz", body=b"x" * 17), 413),
        (build_request("GET", "/" + "u" * 300), 414),
        (build_request("GET", "/healthz", headers=[(f"X-H{i}", "v") for i in range(10)]), 431),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n", 400),
    ]
    for raw, status in cases:
        with s.connect() as c:
            c.send(raw, methods=["X"])
            r = c.read_response()
            assert r.status == status, (raw[:80], r)
            assert_common_headers(r)
            if status >= 400:
                assert_problem(r, status)
