"""Black-box harness for the todo-backend HTTP core.

Starts the real binary (``TODO_BACKEND_BIN``, default ``<repo>/build/todo-backend``)
on 127.0.0.1 with an ephemeral port, discovers the port from the JSON
``"msg":"listening"`` log line, and talks to it over raw sockets so that framing,
pipelining and malformed input can be tested exactly.

Standard library + pytest only.
"""

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TODO_BACKEND_BIN", str(REPO / "build" / "todo-backend"))
HOST = "127.0.0.1"

# Every configuration variable of the HTTP core. They are removed from the
# inherited environment so that a developer's shell cannot change a test.
CONFIG_VARS = (
    "PORT", "HOST", "LOG_LEVEL", "LOG_FORMAT", "ACCESS_LOG",
    "MAX_BODY_BYTES", "MAX_HEADER_BYTES", "MAX_URL_BYTES", "MAX_HEADERS",
    "MAX_CONNECTIONS", "MAX_PIPELINE", "MAX_OUTPUT_BYTES",
    "HEADER_TIMEOUT_MS", "BODY_TIMEOUT_MS", "IDLE_TIMEOUT_MS",
    "SHUTDOWN_TIMEOUT_MS",
    # a developer's exported settings must not leak into the servers tests start
    "DATABASE_URL", "DB_POOL_SIZE", "DB_QUEUE_MAX", "DB_QUEUE_TIMEOUT_MS",
    "DB_STATEMENT_TIMEOUT_MS", "DB_CONNECT_TIMEOUT_MS",
    "AUTH_JWT_SECRET", "AUTH_JWT_ISSUER", "AUTH_JWT_AUDIENCE", "AUTH_DISABLED",
    "AUTH_CLOCK_SKEW_S", "APP_API_TOKEN",
    "KAFKA_BROKERS", "KAFKA_TOPIC_TASKS", "KAFKA_TOPIC_REMINDERS", "KAFKA_TOPIC_DLQ",
    "KAFKA_QUEUE_MAX", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD",
    "EVENTS_CONSUMER", "DAPR_PUBSUB_NAME", "EVENTS_MAX_ATTEMPTS", "REMINDERS_POLL_MS",
)

SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
IMF_DATE_RE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$")
RFC3339_UTC_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
PROBLEM_TYPE_RE = re.compile(r"^urn:todo-backend:problem:[a-z0-9-]+$")


def require_binary():
    if not os.path.isfile(BIN) or not os.access(BIN, os.X_OK):
        pytest.fail(f"server binary not found or not executable: {BIN} "
                    f"(build it, or set TODO_BACKEND_BIN)")


def base_env(overrides=None):
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    for k, v in (overrides or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def sanitizer_findings(text):
    return [p for p in SANITIZER_PATTERNS if p in text]


# --------------------------------------------------------------------------
# Server process
# --------------------------------------------------------------------------

class Server:
    """One todo-backend process. Use through the ``start_server`` fixture."""

    def __init__(self, env=None, args=(), wait_listening=True):
        require_binary()
        self.args = [BIN, *args]
        overrides = {"PORT": 0, "HOST": HOST, "LOG_FORMAT": "json"}
        overrides.update(env or {})
        self.env = base_env(overrides)
        self._lines = []          # stderr lines (str, without newline)
        self._out_lines = []      # stdout lines
        self._cond = threading.Condition()
        self.port = None
        self.returncode = None
        self._stopped_by_test = False
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=self.env)
        self.pid = self.proc.pid
        self._threads = [
            threading.Thread(target=self._reader, args=(self.proc.stderr, self._lines), daemon=True),
            threading.Thread(target=self._reader, args=(self.proc.stdout, self._out_lines), daemon=True),
        ]
        for t in self._threads:
            t.start()
        if wait_listening:
            line = self.wait_log(lambda j: j.get("msg") == "listening", timeout=10.0)
            if line is None:
                rc = self.proc.poll()
                self.kill()
                pytest.fail(f"server did not log \"msg\":\"listening\" within 10 s "
                            f"(exit code {rc}); stderr:\n" + "\n".join(self._lines[-50:]))
            self.listening = line
            self.port = int(line["port"])

    # -- output ------------------------------------------------------------
    def _reader(self, stream, sink):
        for raw in iter(stream.readline, b""):
            with self._cond:
                sink.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                self._cond.notify_all()
        stream.close()
        with self._cond:
            self._cond.notify_all()

    def logs(self):
        """stderr lines so far (strings)."""
        with self._cond:
            return list(self._lines)

    def stdout_lines(self):
        with self._cond:
            return list(self._out_lines)

    def json_logs(self):
        out = []
        for line in self.logs():
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if isinstance(j, dict):
                out.append(j)
        return out

    def wait_log(self, pred, timeout=5.0, start=0):
        """Wait for a JSON log line (index >= start) with pred(obj) true."""
        deadline = time.monotonic() + timeout
        idx = start
        with self._cond:
            while True:
                while idx < len(self._lines):
                    line = self._lines[idx]
                    idx += 1
                    try:
                        j = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(j, dict) and pred(j):
                        return j
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if self.proc.poll() is not None and all(not t.is_alive() for t in self._threads):
                    # process gone and all output read: nothing more will come
                    if idx >= len(self._lines):
                        return None
                self._cond.wait(min(left, 0.1))

    # -- process -----------------------------------------------------------
    def alive(self):
        return self.proc.poll() is None

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Wait for exit; returns the exit code or None on timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._join_readers()
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Send ``sig`` (None: send nothing, e.g. after ``send_signal``) and wait;
        returns the exit code (negative = killed by signal).

        Fails the test if the process does not exit within ``timeout`` (it is then
        SIGKILLed)."""
        self._stopped_by_test = True
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.wait(timeout)
        if rc is None:
            self.kill()
            pytest.fail(f"server pid {self.pid} did not exit within {timeout} s after "
                        f"signal {sig!r}; stderr tail:\n" + "\n".join(self.logs()[-30:]))
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.returncode = self.proc.wait()
        self._join_readers()

    def _join_readers(self):
        for t in self._threads:
            t.join(timeout=5)

    def teardown(self):
        """Stop the process if needed; return a list of problems to report."""
        problems = []
        if self.proc.poll() is not None and not self._stopped_by_test:
            rc = self.proc.returncode
            problems.append(f"server pid {self.pid} exited on its own during the test "
                            f"(exit code {rc})")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait(8.0) is None:
                self.kill()
                problems.append(f"server pid {self.pid} ignored SIGTERM at teardown "
                                f"for 8 s (SIGKILLed)")
        self._join_readers()
        text = "\n".join(self.logs() + self.stdout_lines())
        found = sanitizer_findings(text)
        if found:
            problems.append(f"sanitizer report in output of pid {self.pid} ({', '.join(found)}):\n"
                            + text[-6000:])
        return problems

    # -- convenience -------------------------------------------------------
    def connect(self, timeout=5.0, rcvbuf=None):
        return Conn(self.port, timeout=timeout, rcvbuf=rcvbuf)

    def get(self, path, headers=(), method="GET", body=b"", timeout=5.0):
        """One request on a fresh keep-alive connection; returns the Response."""
        with self.connect(timeout=timeout) as c:
            c.request(method, path, headers=headers, body=body)
            return c.read_response(timeout=timeout)

    def metrics(self):
        r = self.get("/metrics")
        assert r.status == 200, r
        return parse_metrics(r.body.decode())


@pytest.fixture
def start_server():
    """Factory: ``start_server(args=(), wait_listening=True, **env)`` -> Server.

    Env values may be ints; ``None`` removes a variable. Every server is stopped at
    teardown and the test fails on sanitizer reports or an unexpected exit."""
    servers = []

    def _start(args=(), wait_listening=True, **env):
        s = Server(env=env, args=args, wait_listening=wait_listening)
        servers.append(s)
        return s

    yield _start
    problems = []
    for s in servers:
        problems.extend(s.teardown())
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def server(start_server):
    """A server with default limits."""
    return start_server()


def run_binary(args=(), env=None, timeout=10.0):
    """Run the binary to completion (for --help, bad configuration...).

    Returns CompletedProcess (text). Fails if it does not exit within timeout
    (e.g. because it started serving) or prints a sanitizer report."""
    require_binary()
    overrides = {"HOST": HOST, "PORT": 0}
    overrides.update(env or {})
    try:
        cp = subprocess.run([BIN, *args], stdin=subprocess.DEVNULL, capture_output=True,
                            env=base_env(overrides), timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{BIN} {' '.join(args)} with {env} did not exit within {timeout} s; "
                    f"stderr: {e.stderr!r}")
    cp.stdout = cp.stdout.decode("utf-8", "replace")
    cp.stderr = cp.stderr.decode("utf-8", "replace")
    found = sanitizer_findings(cp.stdout + cp.stderr)
    if found:
        pytest.fail(f"sanitizer report ({found}):\n{cp.stderr}")
    return cp


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port_open(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


# --------------------------------------------------------------------------
# HTTP/1.1 response parsing
# --------------------------------------------------------------------------

class ProtocolError(Exception):
    pass


class Response:
    def __init__(self, version, status, reason, header_list, body, raw):
        self.version = version
        self.status = status
        self.reason = reason
        self.header_list = header_list          # [(lower-name, value)]
        self.headers = {}
        for k, v in header_list:
            self.headers[k] = v if k not in self.headers else self.headers[k] + ", " + v
        self.body = body
        self.raw = raw

    def header_count(self, name):
        return sum(1 for k, _ in self.header_list if k == name.lower())

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def connection_tokens(self):
        return {t.strip().lower() for t in self.headers.get("connection", "").split(",") if t.strip()}

    def __repr__(self):
        return f"<Response {self.status} {self.headers!r} body={self.body[:300]!r}>"


_STATUS_RE = re.compile(rb"^HTTP/(\d)\.(\d) (\d{3})(?: (.*))?$")


def _decode_chunked(buf, pos):
    """Returns (body, new_pos) or None if incomplete."""
    body = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_field = bytes(buf[pos:eol]).split(b";")[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {size_field!r}")
        pos = eol + 2
        if size == 0:
            # trailers until empty line
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                line = buf[pos:eol]
                pos = eol + 2
                if not line:
                    return bytes(body), pos
        if len(buf) < pos + size + 2:
            return None
        body += buf[pos:pos + size]
        if buf[pos + size:pos + size + 2] != b"\r\n":
            raise ProtocolError("missing CRLF after chunk")
        pos += size + 2


def parse_one(buf, pos=0, head=False, eof=False):
    """Parse one response from buf[pos:]. Returns (Response, new_pos) or None when
    incomplete. ``head``: the response answers a HEAD request (no body).
    ``eof``: the peer closed, so a body without framing ends here."""
    end = buf.find(b"\r\n\r\n", pos)
    if end < 0:
        if eof and len(buf) > pos:
            raise ProtocolError(f"truncated response head: {bytes(buf[pos:pos + 200])!r}")
        return None
    lines = bytes(buf[pos:end]).split(b"\r\n")
    m = _STATUS_RE.match(lines[0])
    if not m:
        raise ProtocolError(f"bad status line {lines[0][:200]!r}")
    version = f"{m.group(1).decode()}.{m.group(2).decode()}"
    status = int(m.group(3))
    reason = (m.group(4) or b"").decode("latin-1")
    hl = []
    for line in lines[1:]:
        if b":" not in line or line[:1] in (b" ", b"\t"):
            raise ProtocolError(f"bad header line {line[:200]!r}")
        k, v = line.split(b":", 1)
        if k != k.strip():
            raise ProtocolError(f"whitespace in header name {k!r}")
        hl.append((k.decode("latin-1").lower(), v.strip().decode("latin-1")))
    headers = dict(hl)
    bpos = end + 4
    if 100 <= status < 200 or status in (204, 304) or head:
        body, npos = b"", bpos
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        r = _decode_chunked(buf, bpos)
        if r is None:
            if eof:
                raise ProtocolError("truncated chunked body")
            return None
        body, npos = r
    elif "content-length" in headers:
        try:
            n = int(headers["content-length"])
        except ValueError:
            raise ProtocolError(f"bad Content-Length {headers['content-length']!r}")
        if len(buf) < bpos + n:
            if eof:
                raise ProtocolError(f"truncated body: want {n}, have {len(buf) - bpos}")
            return None
        body, npos = bytes(buf[bpos:bpos + n]), bpos + n
    else:
        if not eof:
            return None
        body, npos = bytes(buf[bpos:]), len(buf)
    return Response(version, status, reason, hl, body, bytes(buf[pos:npos])), npos


def parse_responses(data, methods=None, eof=True):
    """Split a byte stream into sequential responses.

    ``methods``: the request methods in order (to know which responses answer a
    HEAD); interim 1xx responses do not consume a method. Returns (responses,
    leftover_bytes). With eof=True, trailing garbage raises ProtocolError."""
    out = []
    pos = 0
    mi = 0
    while pos < len(data):
        head = bool(methods) and mi < len(methods) and methods[mi] == "HEAD"
        r = parse_one(data, pos, head=head, eof=eof)
        if r is None:
            break
        resp, pos = r
        out.append(resp)
        if not (100 <= resp.status < 200):
            mi += 1
    return out, bytes(data[pos:])


# --------------------------------------------------------------------------
# Raw connection
# --------------------------------------------------------------------------

def build_request(method, path, headers=(), body=b"", version="HTTP/1.1", host=True):
    if isinstance(headers, dict):
        headers = list(headers.items())
    lines = [f"{method} {path} {version}"]
    names = {k.lower() for k, _ in headers}
    if host and "host" not in names:
        lines.append("Host: 127.0.0.1")
    for k, v in headers:
        lines.append(f"{k}: {v}")
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Conn:
    """A raw client connection with an incremental response reader."""

    def __init__(self, port, timeout=5.0, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((HOST, port))
        self.buf = bytearray()
        self.pos = 0
        self.methods = []       # methods of requests whose final response is pending
        self.closed = False     # peer closed (EOF or reset)
        self.reset = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data, methods=()):
        self.methods.extend(methods)
        self.sock.sendall(data)

    def request(self, method, path, headers=(), body=b"", version="HTTP/1.1"):
        self.send(build_request(method, path, headers, body, version), methods=[method])

    def _fill(self, deadline):
        """Read once. Returns False on timeout, True if data or EOF arrived."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return False
        except ConnectionResetError:
            self.closed = self.reset = True
            return True
        if not data:
            self.closed = True
        else:
            self.buf += data
        return True

    def _try_parse(self):
        head = bool(self.methods) and self.methods[0] == "HEAD"
        r = parse_one(self.buf, self.pos, head=head, eof=self.closed)
        if r is None:
            return None
        resp, self.pos = r
        if not (100 <= resp.status < 200) and self.methods:
            self.methods.pop(0)
        if self.pos > (1 << 20):
            del self.buf[:self.pos]
            self.pos = 0
        return resp

    def read_response(self, timeout=5.0):
        """Next response (interim 1xx included). Raises AssertionError on timeout
        or if the connection closes first."""
        deadline = time.monotonic() + timeout
        while True:
            resp = self._try_parse()
            if resp is not None:
                return resp
            if self.closed:
                raise AssertionError(f"connection closed before a complete response; "
                                     f"pending bytes {bytes(self.buf[self.pos:self.pos + 300])!r}")
            if not self._fill(deadline):
                raise AssertionError(f"no complete response within {timeout} s; pending "
                                     f"bytes {bytes(self.buf[self.pos:self.pos + 300])!r}")

    def read_responses(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            out.append(self.read_response(timeout=max(0.01, deadline - time.monotonic())))
        return out

    def read_until_close(self, timeout=5.0):
        """Read every response until the peer closes or timeout.

        Returns (responses, closed). Trailing unparseable bytes raise."""
        deadline = time.monotonic() + timeout
        out = []
        while True:
            while True:
                resp = self._try_parse()
                if resp is None:
                    break
                out.append(resp)
            if self.closed:
                if self.pos < len(self.buf):
                    raise ProtocolError(f"garbage after responses: "
                                        f"{bytes(self.buf[self.pos:self.pos + 300])!r}")
                return out, True
            if not self._fill(deadline):
                return out, False

    def wait_closed(self, timeout=5.0):
        """True if the peer closes (EOF/reset) within timeout. Data received in the
        meantime is kept in the buffer."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            if not self._fill(deadline):
                return False
        return True

    def pending(self):
        return bytes(self.buf[self.pos:])


def raw_exchange(port, data, timeout=3.0, methods=None):
    """Send raw bytes on a new connection, read all responses until the server
    closes or timeout. Returns (responses, closed)."""
    with Conn(port, timeout=timeout) as c:
        c.send(data, methods=methods or [])
        return c.read_until_close(timeout=timeout)


# --------------------------------------------------------------------------
# Assertions shared by the test modules
# --------------------------------------------------------------------------

def assert_common_headers(resp, head=False):
    """Every final response has Date, Content-Length (matching the body unless
    HEAD) and a well-formed X-Request-Id."""
    assert resp.header_count("date") == 1, f"Date missing/duplicated: {resp!r}"
    assert IMF_DATE_RE.match(resp.headers["date"]), f"bad Date {resp.headers['date']!r}"
    assert resp.header_count("content-length") == 1, f"Content-Length missing: {resp!r}"
    assert "transfer-encoding" not in resp.headers, resp
    cl = int(resp.headers["content-length"])
    if not head:
        assert cl == len(resp.body), resp
    rid = resp.headers.get("x-request-id")
    assert rid is not None, f"X-Request-Id missing: {resp!r}"
    assert CLIENT_ID_RE.match(rid) or UUID_RE.match(rid), f"bad X-Request-Id {rid!r}"


def assert_problem(resp, status):
    """An RFC 9457 problem+json body with our conventions."""
    assert resp.status == status, f"expected {status}, got {resp!r}"
    ct = resp.headers.get("content-type", "")
    assert ct.split(";")[0].strip().lower() == "application/problem+json", resp
    doc = resp.json()
    assert isinstance(doc, dict), doc
    assert PROBLEM_TYPE_RE.match(doc.get("type", "")), doc
    assert isinstance(doc.get("title"), str) and doc["title"], doc
    assert doc.get("status") == status and type(doc["status"]) is int, doc
    assert isinstance(doc.get("detail"), str), doc
    assert_common_headers(resp)
    return doc


# --------------------------------------------------------------------------
# Prometheus text
# --------------------------------------------------------------------------

_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse_metrics(text):
    """Returns a list of (name, labels dict, float value). Raises on bad lines."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise ValueError(f"bad metrics line {line!r}")
        labels = {}
        if m.group(3):
            rest = m.group(3)
            pos = 0
            while pos < len(rest):
                lm = _LABEL_RE.match(rest, pos)
                if not lm:
                    raise ValueError(f"bad labels in {line!r}")
                labels[lm.group(1)] = lm.group(2).encode().decode("unicode_escape")
                pos = lm.end()
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def metric(samples, name, **labels):
    """Sum of samples named ``name`` whose labels include ``labels``; None if none."""
    vals = [v for n, l, v in samples
            if n == name and all(l.get(k) == str(x) for k, x in labels.items())]
    return sum(vals) if vals else None


def assert_metric_types(server, types, quantiles=("0.5", "0.9", "0.99")):
    """Each {name: type} has its '# TYPE' line on /metrics and samples: a
    histogram its _count, _sum and +Inf bucket, a summary its _sum, _count
    and each quantile; returns the samples."""
    r = server.get("/metrics")
    assert r.status == 200, r
    text = r.body.decode()
    for name, typ in types.items():
        assert f"# TYPE {name} {typ}" in text, f"no '# TYPE {name} {typ}' line"
    samples = server.metrics()
    for name, typ in types.items():
        if typ in ("histogram", "summary"):
            for suffix in ("_sum", "_count"):
                assert metric(samples, name + suffix) is not None, name + suffix
        if typ == "histogram":
            assert metric(samples, name + "_bucket", le="+Inf") is not None, name
        elif typ == "summary":
            for q in quantiles:
                assert metric(samples, name, quantile=q) is not None, f"{name}{{quantile={q}}}"
        else:
            assert metric(samples, name) is not None, f"no sample of {name}"
    return samples


def metric_value(server, name, **labels):
    """One scrape of ``server``'s /metrics, summed like ``metric``."""
    return metric(server.metrics(), name, **labels)


def metrics_diagnostics(server, names, log_lines=0):
    """Some metrics, readiness and optionally the log tail of ``server``, for
    failure messages; never raises."""
    if server is None or not server.alive():
        return "(service not running)"
    try:
        samples = server.metrics()
        vals = {n: metric(samples, n) for n in names}
        out = f"metrics {vals}; readyz {readyz(server)}"
        if log_lines:
            logs = [line for line in server.logs() if '"msg":"request"' not in line]
            out += "; log tail:\n" + "\n".join(logs[-log_lines:])
        return out
    except (OSError, AssertionError, ValueError) as e:
        return f"(diagnostics failed: {e!r})"


def poll(fn, timeout=3.0, interval=0.05):
    """Call fn until it returns a truthy value or timeout; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ==========================================================================
# PostgreSQL and the tasks API (tests/integration/test_tasks_*.py)
# ==========================================================================
#
# Everything below is only used by the tasks tests; the fixtures are lazy, so
# the HTTP-core tests never start PostgreSQL.

import base64 as _base64
import hashlib as _hashlib
import hmac as _hmac
import itertools as _itertools
import urllib.parse as _urlparse
import uuid as _uuid

from pg import PgCluster, PgDatabase, PgError  # noqa: E402  (tests/integration/pg.py)

REPO_MIGRATIONS = REPO / "src" / "db" / "migrations"

# Every field of a task in a response (DESIGN §4, docs/api.md "Responses").
TASK_FIELDS = ("id", "user_id", "title", "description", "completed", "completed_at",
               "priority", "tags", "due_at", "timezone", "recurrence", "recurrence_from",
               "series_id", "occurrence", "reminders", "created_at", "updated_at", "version")
# Instants are returned in UTC with exactly milliseconds.
TS_MS_UTC_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture(scope="session")
def pg_cluster():
    """One PostgreSQL cluster for the whole session (destroyed at the end).

    Do not stop or restart it in a test: use ``dedicated_pg`` for that."""
    cluster = PgCluster(prefix="todo-pg-session-")
    try:
        cluster.start()
        yield cluster
    finally:
        for p in _pending_drops:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        cluster.destroy()


_pending_drops = []


@pytest.fixture
def pg(pg_cluster):
    """A fresh, empty database on the session cluster for this test only.

    A ``PgDatabase``: ``.url``, ``.name``, ``.psql(sql)``, ``.scalar(sql)``,
    ``.lines(sql)``, ``.cluster``. It is dropped (in the background, with
    FORCE) after the test; ``api_server`` requests ``pg`` before
    ``start_server``, so its server is stopped first."""
    if not pg_cluster.is_running():
        # a test stopped the shared cluster: bring it back for the others
        pg_cluster.start()
    db = pg_cluster.create_database()
    yield db
    try:
        _pending_drops.append(subprocess.Popen(
            [pg_cluster.psql_bin, "-X", "-q", "-d", pg_cluster.url_for("postgres"),
             "-c", f"DROP DATABASE IF EXISTS {db.name} WITH (FORCE)"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    except OSError:
        pass


@pytest.fixture
def dedicated_pg():
    """Factory: ``dedicated_pg()`` -> a started PgCluster of the test's own (for
    tests that stop or restart PostgreSQL). Destroyed at teardown."""
    clusters = []

    def _make(start=True):
        c = PgCluster(prefix="todo-pg-own-")
        clusters.append(c)
        if start:
            c.start()
        return c

    yield _make
    for c in clusters:
        c.destroy()


DB_CONFIG_VARS = ("DATABASE_URL", "DB_POOL_SIZE", "DB_QUEUE_MAX", "DB_QUEUE_TIMEOUT_MS",
                  "DB_STATEMENT_TIMEOUT_MS", "DB_CONNECT_TIMEOUT_MS")


# ------------------------------------------------------------------ JWT (HS256)

# The shared secret of every service started with a database (>= 32 bytes).
TEST_JWT_SECRET = "todo-backend-integration-tests-hs256-secret-0123456789"


def b64url(data):
    """Unpadded base64url (RFC 7515 §2) of bytes, as str."""
    return _base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_jwt(claims, secret=TEST_JWT_SECRET, header=None):
    """A compact JWS: ``header`` (default ``{"alg":"HS256","typ":"JWT"}``) and
    ``claims`` as JSON objects, signed with HMAC-SHA256 over the exact
    ``header.payload`` bytes."""
    if header is None:
        header = {"alg": "HS256", "typ": "JWT"}
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode("utf-8")) + "."
                     + b64url(json.dumps(claims, separators=(",", ":")).encode("utf-8")))
    mac = _hmac.new(key, signing_input.encode("ascii"), _hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


def user_token(user, secret=TEST_JWT_SECRET, ttl=3600, issuer=None, audience=None, **claims):
    """A valid token for ``user`` (``sub``, ``iat`` now, ``exp`` now + ttl, and
    ``iss``/``aud`` when given); extra ``claims`` are added or override."""
    now = int(time.time())
    body = {"sub": user, "iat": now, "exp": now + ttl}
    if issuer is not None:
        body["iss"] = issuer
    if audience is not None:
        body["aud"] = audience
    body.update(claims)
    return make_jwt(body, secret)


def db_env(url, **env):
    """The service environment for a database URL (test defaults: pool of 2,
    ``AUTH_JWT_SECRET`` = ``TEST_JWT_SECRET``; the other DB_* variables are
    removed from the inherited environment)."""
    out = {k: None for k in DB_CONFIG_VARS}
    out.update({"DATABASE_URL": url, "DB_POOL_SIZE": 2, "AUTH_JWT_SECRET": TEST_JWT_SECRET})
    out.update(env)
    return out


def readyz(server, timeout=5.0):
    """(status, json-or-None) of GET /readyz."""
    r = server.get("/readyz", timeout=timeout)
    try:
        doc = r.json()
    except ValueError:
        doc = None
    return r.status, doc


def wait_ready(server, timeout=15.0):
    """Poll /readyz until 200; fail the test with the last answer otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = readyz(server, timeout=3.0)
            if last[0] == 200:
                return last[1]
        except (OSError, AssertionError) as e:
            last = repr(e)
        if not server.alive():
            pytest.fail(f"server exited while waiting for readiness; stderr:\n"
                        + "\n".join(server.logs()[-40:]))
        if time.monotonic() >= deadline:
            pytest.fail(f"/readyz not 200 within {timeout} s (last: {last!r}); stderr tail:\n"
                        + "\n".join(server.logs()[-40:]))
        time.sleep(0.05)


@pytest.fixture
def start_api_server(start_server):
    """Factory: ``start_api_server(db_or_url, wait=True, **env)`` -> Server with
    DATABASE_URL set and DB_POOL_SIZE=2 (overridable), ready unless wait=False."""

    def _start(db, wait=True, **env):
        url = db if isinstance(db, str) else db.url
        s = start_server(**db_env(url, **env))
        if wait:
            wait_ready(s)
        return s

    return _start


@pytest.fixture
def api_server(pg, start_api_server):
    """The service on a fresh database (``pg``), ready (/readyz 200)."""
    s = start_api_server(pg)
    s.db = pg
    return s


_user_seq = _itertools.count(1)


def new_user(prefix="u"):
    """A user id no other test uses (so a shared server still gives a clean list)."""
    return f"{prefix}{next(_user_seq)}x{_uuid.uuid4().hex[:10]}"


_NO_BODY = object()
_PCHAR_SAFE = "!$&'()*+,;=:@-._~"


class TasksClient:
    """Requests to the tasks API of one server, as one user.

    Every request goes through ``request()``; ``auth_headers()`` is the one
    place to add an ``Authorization`` header when JWT authentication lands."""

    def __init__(self, server, user="alice", db=None):
        self.server = server
        self.user = user
        self.db = db if db is not None else getattr(server, "db", None)

    def for_user(self, user):
        return TasksClient(self.server, user, self.db)

    # -- the one place requests are made -----------------------------------
    def auth_headers(self, user):
        """``Authorization: Bearer`` with a valid token for ``user``, signed with
        the server's ``AUTH_JWT_SECRET`` (and its issuer and audience, if set);
        nothing for a server started without a secret."""
        env = getattr(self.server, "env", None) or {}
        secret = env.get("AUTH_JWT_SECRET")
        if not secret:
            return []
        token = user_token(user, secret, issuer=env.get("AUTH_JWT_ISSUER") or None,
                           audience=env.get("AUTH_JWT_AUDIENCE") or None)
        return [("Authorization", f"Bearer {token}")]

    def request(self, method, path, body=_NO_BODY, headers=(), user=None,
                content_type="application/json", timeout=10.0):
        """``body``: a JSON-able value, ``bytes`` (sent as is) or nothing.
        ``content_type=None`` sends no Content-Type. Returns the Response."""
        if isinstance(headers, dict):
            headers = list(headers.items())
        hdrs = list(self.auth_headers(user or self.user))
        if body is _NO_BODY:
            data = b""
        else:
            data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
            if content_type is not None and not any(k.lower() == "content-type" for k, _ in headers):
                hdrs.append(("Content-Type", content_type))
        hdrs.extend(headers)
        if (not data and method in ("POST", "PUT", "PATCH")
                and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hdrs)):
            hdrs.append(("Content-Length", "0"))
        with self.server.connect(timeout=timeout) as c:
            c.request(method, path, headers=hdrs, body=data)
            return c.read_response(timeout=timeout)

    # -- paths ---------------------------------------------------------------
    def tasks_path(self, user=None):
        # RFC 3986 pchar stays as is; anything else is percent-encoded
        return f"/api/{_urlparse.quote(user or self.user, safe=_PCHAR_SAFE)}/tasks"

    def task_path(self, task_id, user=None):
        return f"{self.tasks_path(user)}/{task_id}"

    # -- endpoints -----------------------------------------------------------
    def create(self, body=_NO_BODY, headers=(), **kw):
        return self.request("POST", self.tasks_path(), body, headers=headers, **kw)

    def create_ok(self, **fields):
        """POST a task (fields as keyword arguments); asserts 201; returns the task."""
        fields.setdefault("title", "a task")
        r = self.create(fields)
        assert r.status == 201, f"POST {self.tasks_path()} {fields!r} -> {r!r}"
        return r.json()

    def get(self, task_id, headers=(), **kw):
        return self.request("GET", self.task_path(task_id), headers=headers, **kw)

    def get_ok(self, task_id):
        r = self.get(task_id)
        assert r.status == 200, f"GET {self.task_path(task_id)} -> {r!r}"
        return r.json()

    def put(self, task_id, body, headers=(), **kw):
        return self.request("PUT", self.task_path(task_id), body, headers=headers, **kw)

    def patch(self, task_id, body, headers=(), **kw):
        return self.request("PATCH", self.task_path(task_id), body, headers=headers, **kw)

    def delete(self, task_id, headers=(), **kw):
        return self.request("DELETE", self.task_path(task_id), headers=headers, **kw)

    def complete(self, task_id, body=_NO_BODY, method="POST", headers=(), **kw):
        return self.request(method, self.task_path(task_id) + "/complete", body,
                            headers=headers, **kw)

    def list(self, params=(), **kw):
        """GET the list; ``params``: dict or list of pairs (repeatable keys),
        or a ready query string."""
        if isinstance(params, str):
            qs = params
        else:
            items = list(params.items()) if isinstance(params, dict) else list(params)
            qs = _urlparse.urlencode(items)
        path = self.tasks_path() + (f"?{qs}" if qs else "")
        return self.request("GET", path, **kw)

    def list_ok(self, params=()):
        r = self.list(params)
        assert r.status == 200, f"list {params!r} -> {r!r}"
        return r.json()

    def list_all(self, params=(), max_pages=100, between_pages=None):
        """Follow ``Link: rel="next"``; returns (tasks, responses)."""
        r = self.list(params)
        pages = [r]
        tasks = []
        while True:
            assert r.status == 200, f"list page -> {r!r}"
            tasks.extend(r.json())
            nxt = link_next(r)
            if nxt is None:
                return tasks, pages
            assert len(pages) < max_pages, "too many pages"
            if between_pages:
                between_pages(len(pages))
            r = self.request("GET", nxt)
            pages.append(r)


_LINK_RE = re.compile(r'<([^>]*)>\s*((?:;\s*[^;,]+)*)')


def link_next(resp):
    """The path+query of ``Link: <…>; rel="next"``, or None (absolute URLs are
    reduced to their path and query)."""
    value = resp.headers.get("link")
    if not value:
        return None
    for m in _LINK_RE.finditer(value):
        params = m.group(2)
        if re.search(r';\s*rel\s*=\s*"?([^";]*\s)?next(\s[^";]*)?"?', params):
            target = m.group(1)
            parts = _urlparse.urlsplit(target)
            return parts.path + (f"?{parts.query}" if parts.query else "")
    return None


def query_params(path):
    """The query parameters of a path as a list of pairs."""
    return _urlparse.parse_qsl(_urlparse.urlsplit(path).query, keep_blank_values=True)


def assert_task(task, user=None, **expected):
    """Every field present with the right type and format; ``expected`` values equal."""
    assert isinstance(task, dict), task
    missing = [f for f in TASK_FIELDS if f not in task]
    assert not missing, f"task lacks {missing}: {task!r}"
    assert type(task["id"]) is int and task["id"] > 0, task
    assert isinstance(task["user_id"], str), task
    if user is not None:
        assert task["user_id"] == user, task
    assert isinstance(task["title"], str) and task["title"], task
    assert task["description"] is None or isinstance(task["description"], str), task
    assert type(task["completed"]) is bool, task
    if task["completed"]:
        assert isinstance(task["completed_at"], str) and TS_MS_UTC_RE.match(task["completed_at"]), task
    else:
        assert task["completed_at"] is None, task
    assert task["priority"] in ("low", "medium", "high", "urgent"), task
    assert isinstance(task["tags"], list) and all(isinstance(t, str) for t in task["tags"]), task
    assert task["due_at"] is None or TS_MS_UTC_RE.match(task["due_at"]), task
    assert isinstance(task["timezone"], str) and task["timezone"], task
    assert task["recurrence"] is None or isinstance(task["recurrence"], str), task
    assert task["recurrence_from"] in ("due", "completion"), task
    for f in ("series_id", "occurrence"):
        assert task[f] is None or type(task[f]) is int, task
    assert isinstance(task["reminders"], list), task
    for rem in task["reminders"]:
        assert isinstance(rem, dict) and ("before" in rem) != ("at" in rem), task
        assert isinstance(rem.get("remind_at"), str) and TS_MS_UTC_RE.match(rem["remind_at"]), task
    for f in ("created_at", "updated_at"):
        assert isinstance(task[f], str) and TS_MS_UTC_RE.match(task[f]), task
    assert type(task["version"]) is int and task["version"] >= 1, task
    for k, v in expected.items():
        assert task[k] == v, f"{k}: expected {v!r}, got {task[k]!r} in {task!r}"
    return task


def assert_etag(resp, task=None):
    """A strong ETag ``"<version>"`` matching the task in the body."""
    task = task if task is not None else resp.json()
    assert resp.header_count("etag") == 1, f"ETag missing or repeated: {resp!r}"
    assert resp.headers["etag"] == f'"{task["version"]}"', (resp.headers["etag"], task)


def assert_json(resp, status):
    assert resp.status == status, f"expected {status}, got {resp!r}"
    ct = resp.headers.get("content-type", "")
    assert ct.split(";")[0].strip().lower() == "application/json", resp
    assert_common_headers(resp)
    return resp.json()


def error_fields(doc):
    """The field names of a problem document's ``errors`` list."""
    errs = doc.get("errors")
    assert isinstance(errs, list) and errs, f"problem without errors: {doc!r}"
    for e in errs:
        assert isinstance(e, dict) and isinstance(e.get("field"), str), doc
        assert isinstance(e.get("message"), str) and e["message"], doc
    return [e["field"] for e in errs]


def field_named(fields, name):
    """True if one of ``fields`` names ``name`` or something inside it
    (``tags[3]``, ``tags.3``, ``reminders/0/before``...)."""
    for f in fields:
        f = f.lstrip("/").lstrip("$.")
        if f == name or re.match(re.escape(name) + r"[\[./]", f):
            return True
    return False


def assert_validation(resp, *fields, kind="validation-failed"):
    """422 problem+json whose ``errors`` name every field in ``fields``."""
    doc = assert_problem(resp, 422)
    assert doc["type"] == f"urn:todo-backend:problem:{kind}", doc
    if fields:
        names = error_fields(doc)
        for f in fields:
            assert field_named(names, f), f"errors do not name {f!r}: {doc!r}"
    return doc


def task_row(db, task_id):
    """The task's row as PostgreSQL stores it (jsonb text), or '' if absent."""
    return db.scalar(f"SELECT to_jsonb(t)::text FROM tasks t WHERE t.id = {int(task_id)}")


def migration_files():
    """The migration files of the repository (src/db/migrations/*.sql)."""
    return sorted(p.name for p in REPO_MIGRATIONS.glob("*.sql")) if REPO_MIGRATIONS.is_dir() else []


@pytest.fixture(scope="module")
def shared_api_server(pg_cluster):
    """One service per test module on its own database of the session cluster.

    For tests that only need a clean slate per *user* (see ``api``): much
    faster than a server per test. ``.db`` is its PgDatabase."""
    yield from module_db_server(pg_cluster, db_env)


def module_db_server(pg_cluster, make_env, **env):
    """Generator for module-scoped fixtures: a ready server (environment from
    ``make_env(url, **env)``) on a database of its own, dropped afterwards;
    sanitizer findings or an early death fail the module."""
    db = pg_cluster.create_database()
    s = Server(env=make_env(db.url, **env))
    try:
        wait_ready(s)
        s.db = db
        yield s
    finally:
        problems = s.teardown()
        try:
            db.drop()
        except PgError:
            pass
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def api(shared_api_server):
    """A TasksClient for a user of its own on the module's shared server
    (``api.db`` is the database, ``api.for_user(new_user())`` another user)."""
    return TasksClient(shared_api_server, new_user(), shared_api_server.db)


# ==========================================================================
# Kafka (tests/integration/test_events.py)
# ==========================================================================
#
# One real broker (scripts/kafka, tests/integration/kafka.py) for the whole
# session, started on first use. Tests share its topics, so each one reads
# only the records keyed by its own users (new_user()).


@pytest.fixture(scope="session")
def kafka_node():
    """The session's KafkaNode (``.bootstrap``, ``.start()``, ``.stop()``,
    ``.reader(topic)``). A test that stops it must start it again in a
    ``finally`` block (``kafka_broker`` also does so at teardown)."""
    from kafka import KafkaNode, KafkaNodeError   # tests/integration/kafka.py
    node = KafkaNode(prefix="todo-kafka-session-")
    try:
        try:
            node.start()
        except KafkaNodeError as e:
            pytest.fail(str(e), pytrace=False)
        yield node
    finally:
        node.destroy()


@pytest.fixture
def kafka_broker(kafka_node):
    """The session broker, running; started again at teardown if the test
    left it stopped."""
    kafka_node.ensure_running()
    yield kafka_node
    if not kafka_node.is_running():
        kafka_node.start()


@pytest.fixture
def tasks_topic(kafka_broker):
    """A TopicReader of the ``tasks`` topic from its end at the test's start."""
    reader = kafka_broker.reader("tasks")
    yield reader
    reader.close()


@pytest.fixture
def start_events_server(start_api_server, kafka_broker):
    """Factory: ``start_events_server(db_or_url, wait=True, **env)`` -> a ready
    service publishing to the session broker (``KAFKA_BROKERS`` set unless
    given). It consumes nothing (``EVENTS_CONSUMER=none`` unless given): the
    publishing tests must not join the shared consumer group."""

    def _start(db, wait=True, **env):
        env.setdefault("KAFKA_BROKERS", kafka_broker.bootstrap)
        env.setdefault("EVENTS_CONSUMER", "none")
        s = start_api_server(db, wait=wait, **env)
        s.db = db if not isinstance(db, str) else None
        return s

    return _start
