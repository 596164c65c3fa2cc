"""Command line and configuration validation."""

import json
import re

import pytest

from conftest import CONFIG_VARS, RFC3339_UTC_RE, free_port, run_binary, wait_port_open


def test_help_lists_every_variable_and_exits_0():
    cp = run_binary(["--help"])
    assert cp.returncode == 0, cp
    for var in CONFIG_VARS:
        assert re.search(rf"\b{var}\b", cp.stdout), f"--help does not mention {var}:\n{cp.stdout}"


def test_version():
    cp = run_binary(["--version"])
    assert cp.returncode == 0, cp
    assert re.fullmatch(r"todo-backend \S+\n?", cp.stdout), repr(cp.stdout)


def test_unknown_flag_exits_2():
    cp = run_binary(["--no-such-flag"])
    assert cp.returncode == 2, cp
    assert cp.stderr.strip(), "an unknown flag should be reported on stderr"


BAD_VALUES = [
    ("PORT", "abc"),
    ("PORT", "70000"),
    ("PORT", "-1"),
    ("PORT", "80x"),
    ("LOG_FORMAT", "xml"),
    ("LOG_LEVEL", "verbose"),
    ("ACCESS_LOG", "yes-please"),
    ("MAX_BODY_BYTES", "-1"),
    ("MAX_BODY_BYTES", "1k"),
    ("MAX_BODY_BYTES", "99999999999999999999999999"),
    ("MAX_HEADER_BYTES", "abc"),
    ("MAX_URL_BYTES", "-5"),
    ("MAX_HEADERS", "x"),
    ("MAX_CONNECTIONS", "-1"),
    ("MAX_PIPELINE", "1.5"),
    ("MAX_OUTPUT_BYTES", "lots"),
    ("HEADER_TIMEOUT_MS", "soon"),
    ("BODY_TIMEOUT_MS", "-10"),
    ("IDLE_TIMEOUT_MS", "1e3"),
    ("SHUTDOWN_TIMEOUT_MS", "abc"),
]


@pytest.mark.parametrize("var,value", BAD_VALUES, ids=[f"{v}={x!r}" for v, x in BAD_VALUES])
def test_bad_env_value_exits_2_with_one_line(var, value):
    cp = run_binary(env={var: value}, timeout=5)
    assert cp.returncode == 2, f"{var}={value!r}: exit {cp.returncode}, stderr {cp.stderr!r}"
    lines = [l for l in cp.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected exactly one stderr line, got {lines!r}"
    assert var in lines[0], f"message does not name {var}: {lines[0]!r}"


@pytest.mark.parametrize("flag,var", [
    ("--max-body-bytes=-1", "MAX_BODY_BYTES"),
    ("--port=abc", "PORT"),
    ("--log-format=xml", "LOG_FORMAT"),
])
def test_bad_flag_value_exits_2_with_one_line(flag, var):
    cp = run_binary([flag], timeout=5)
    assert cp.returncode == 2, cp
    lines = [l for l in cp.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, lines
    name = flag[2:].split("=")[0]
    assert var in lines[0] or name in lines[0], lines[0]


def test_flags_configure_the_server(start_server):
    """--flags work like the environment: port, host and log format from flags."""
    port = free_port()
    s = start_server(args=[f"--port={port}", "--host=127.0.0.1", "--log-format=json",
                           "--max-url-bytes=300"],
                     PORT=None, HOST=None, LOG_FORMAT=None)
    assert s.port == port
    assert s.get("/healthz").status == 200
    assert s.get("/" + "a" * 299).status == 404
    assert s.get("/" + "a" * 300).status == 414


def test_listening_line(server):
    line = server.listening
    assert line["level"] == "info"
    assert line["host"] == "127.0.0.1"
    assert isinstance(line["port"], int) and 0 < line["port"] < 65536
    assert RFC3339_UTC_RE.match(line["ts"]), line


def test_log_format_text_is_not_json(start_server):
    s = start_server(LOG_FORMAT="text", wait_listening=False, PORT=free_port())
    assert wait_port_open(int(s.env["PORT"])), s.logs()
    assert s.stop() == 0
    lines = [l for l in s.logs() if l.strip()]
    assert any("listening" in l for l in lines), lines
    for l in lines:
        try:
            obj = json.loads(l)
        except ValueError:
            continue
        assert not isinstance(obj, dict), f"LOG_FORMAT=text produced a JSON line: {l!r}"


def test_log_level_error_suppresses_info(start_server):
    port = free_port()
    s = start_server(LOG_LEVEL="error", PORT=port, wait_listening=False)
    assert wait_port_open(port), s.logs()
    s.port = port
    assert s.get("/healthz").status == 200
    assert s.get("/nope").status == 404
    assert s.stop() == 0
    for j in s.json_logs():
        assert j.get("level") == "error", f"LOG_LEVEL=error printed {j}"
