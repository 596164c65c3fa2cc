"""scripts/kafka: a real Kafka node from Maven Central jars.

One start/stop cycle for the whole module (a JVM start costs seconds; the
first run on a machine also downloads the jars). The node runs in a temporary
KAFKA_DIR on a free port, so a developer's .dev/kafka broker is untouched.
Messages go through kcat (Debian's kafkacat), which scripts/kafka installs.

Standard library + pytest only.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from kafka import KafkaNodeError, _bindable, pick_port  # tests/integration/kafka.py

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "kafka"

# First run: Maven downloads about 45 MB; later runs start from the cache.
START_TIMEOUT_S = 900
TOPICS = {"tasks": 6, "reminders": 3, "tasks-dlq": 1}


def script_env(kafka_dir, port):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env["KAFKA_DIR"] = str(kafka_dir)
    env["KAFKA_PORT"] = str(port)
    return env


def run_script(env, *args, timeout=120):
    return subprocess.run([str(SCRIPT), *args], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def kcat_bin():
    k = shutil.which("kcat") or shutil.which("kafkacat")
    if not k:
        pytest.fail("kcat/kafkacat not on PATH (scripts/kafka start should have installed it)")
    return k


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.fixture(scope="module")
def kafka():
    tmp = Path(tempfile.mkdtemp(prefix="kafka-script-test-"))
    try:
        port = pick_port()
    except KafkaNodeError as e:
        pytest.fail(str(e))
    env = script_env(tmp, port)
    t0 = time.monotonic()
    try:
        start = run_script(env, "start", timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        run_script(env, "stop", timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    took = time.monotonic() - t0
    if start.returncode != 0:
        run_script(env, "stop", timeout=120)
        log = tmp / "logs" / "server.log"
        tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.fail(f"scripts/kafka start exited {start.returncode}\n"
                    f"stdout:\n{start.stdout}\nstderr:\n{start.stderr}\nserver.log:\n{tail}")
    try:
        yield {"dir": tmp, "port": port, "env": env, "start": start,
               "address": f"127.0.0.1:{port}", "start_seconds": took}
    finally:
        run_script(env, "stop", timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)


def metadata(address):
    r = subprocess.run([kcat_bin(), "-L", "-J", "-b", address, "-m", "10"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_start_prints_only_the_address(kafka):
    lines = kafka["start"].stdout.splitlines()
    assert lines == [kafka["address"]], kafka["start"].stdout
    # progress went to stderr
    assert "kafka:" in kafka["start"].stderr


def test_state_lives_in_kafka_dir(kafka):
    d = kafka["dir"]
    assert (d / "data" / "meta.properties").is_file()
    assert (d / "logs" / "server.log").is_file()
    assert (d / "server.properties").is_file()
    pid = int((d / "kafka.pid").read_text())
    assert alive(pid)
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"kafka.Kafka" in cmdline
    props = (d / "server.properties").read_text()
    assert f"PLAINTEXT://127.0.0.1:{kafka['port']}" in props
    assert "process.roles=broker,controller" in props


def test_topics_exist_with_their_partition_counts(kafka):
    md = metadata(kafka["address"])
    brokers = md["brokers"]
    assert [b["name"] for b in brokers] == [kafka["address"]], brokers
    found = {t["topic"]: t for t in md["topics"]}
    for name, count in TOPICS.items():
        assert name in found, f"topic {name} missing: {sorted(found)}"
        t = found[name]
        assert "error" not in t or not t["error"], t
        parts = t["partitions"]
        assert len(parts) == count, (name, len(parts))
        assert sorted(p["partition"] for p in parts) == list(range(count))
        assert all(p["leader"] == 1 for p in parts), parts


def test_a_produced_message_can_be_consumed(kafka):
    k = kcat_bin()
    addr = kafka["address"]
    key = f"k-{uuid.uuid4()}"
    value = json.dumps({"specversion": "1.0", "id": str(uuid.uuid4()),
                        "type": "com.example.test", "source": "test"})
    p = subprocess.run([k, "-P", "-b", addr, "-t", "tasks", "-k", key],
                       input=value + "\n", capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    c = subprocess.run([k, "-C", "-b", addr, "-t", "tasks", "-o", "beginning", "-e", "-q",
                        "-f", "%k\t%s\n"],
                       capture_output=True, text=True, timeout=60)
    assert c.returncode == 0, c.stderr
    assert f"{key}\t{value}" in c.stdout.splitlines(), c.stdout


def test_status_is_zero_while_running(kafka):
    r = run_script(kafka["env"], "status")
    assert r.returncode == 0, r.stdout + r.stderr
    assert kafka["address"] in r.stdout


def test_second_start_is_idempotent(kafka):
    pid_before = (kafka["dir"] / "kafka.pid").read_text()
    t0 = time.monotonic()
    r = run_script(kafka["env"], "start")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [kafka["address"]], r.stdout
    assert "already running" in r.stderr
    assert (kafka["dir"] / "kafka.pid").read_text() == pid_before
    assert took < 30, took


def test_stop_then_status_then_stop_again(kafka):
    # Runs last in this module: it ends the node the fixture started.
    env = kafka["env"]
    pid = int((kafka["dir"] / "kafka.pid").read_text())
    r = run_script(env, "stop")
    assert r.returncode == 0, r.stderr
    assert not alive(pid)
    assert not (kafka["dir"] / "kafka.pid").exists()
    assert _bindable(kafka["port"]), "the broker port is still held after stop"

    s = run_script(env, "status")
    assert s.returncode != 0, s.stdout

    again = run_script(env, "stop")
    assert again.returncode == 0, again.stderr
    assert "not running" in again.stderr
