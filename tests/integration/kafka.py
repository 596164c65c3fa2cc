"""A real Kafka broker for the integration tests, and a reader of its topics.

``KafkaNode()`` wraps ``scripts/kafka`` with a temporary ``KAFKA_DIR`` and a
free port (below the ephemeral range, with the next port free too for the
controller, like test_kafka_script.py): ``start()``, ``stop()``, ``kill()``
(SIGKILL, no clean shutdown), ``restart()``, ``is_running()``,
``destroy()``; ``bootstrap`` is ``127.0.0.1:PORT``. Stopping (or killing)
and starting again keeps the data and the port.

``TopicReader`` (``node.reader(topic)``) reads every record of a topic from
offsets recorded when it was made (the end of each partition by default, or
the beginning), keeping them as ``Record``s (key, headers, partition, offset,
parsed JSON value), and waits, within a bound, until a predicate over them
holds.

Standard library plus ``confluent_kafka`` (Debian's python3-confluent-kafka,
installed by ``SETUP_KAFKA=1 scripts/setup``, which ``scripts/kafka start``
runs). It is imported only when a reader or producer is made, so collecting
the tests needs neither it nor a broker.
"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "kafka"

# The first start on a machine downloads the jars; later ones use the cache.
START_TIMEOUT_S = 900
STOP_TIMEOUT_S = 120


class KafkaNodeError(RuntimeError):
    pass


def _bindable(port):
    """Bindable as Kafka binds (Java server sockets use SO_REUSEADDR)."""
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pick_port():
    """A broker port P with P+1 free too (the script's default controller
    port), below the kernel's ephemeral range so that no outgoing connection
    can hold it when the broker binds it again after a stop."""
    lo, hi = 20000, 32000
    try:
        eph_lo = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        hi = min(hi, eph_lo - 2)
    except (OSError, ValueError, IndexError):
        pass
    rng = random.Random()
    for _ in range(200):
        p = rng.randrange(lo, hi)
        if _bindable(p) and _bindable(p + 1):
            return p
    raise KafkaNodeError("no free port pair for Kafka")


class KafkaNode:
    """One single-node Kafka (KRaft) run by scripts/kafka in a temporary
    directory of its own."""

    def __init__(self, prefix="todo-kafka-", port=None):
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.port = port or pick_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        self.env["KAFKA_DIR"] = str(self.dir)
        self.env["KAFKA_PORT"] = str(self.port)
        self.last_start_seconds = None
        self.last_stop_seconds = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def __repr__(self):
        return f"<KafkaNode {self.bootstrap} dir={self.dir}>"

    # -- scripts/kafka --------------------------------------------------------
    def _run(self, *args, timeout):
        try:
            return subprocess.run([str(SCRIPT), *args], env=self.env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise KafkaNodeError(f"scripts/kafka {' '.join(args)} did not finish within "
                                 f"{timeout} s; stderr: {e.stderr!r}")

    def log_tail(self, chars=4000):
        log = self.dir / "logs" / "server.log"
        try:
            return log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self, timeout=START_TIMEOUT_S):
        """Start (or find running) the node; returns the bootstrap address."""
        t0 = time.monotonic()
        cp = self._run("start", timeout=timeout)
        self.last_start_seconds = time.monotonic() - t0
        if cp.returncode != 0:
            raise KafkaNodeError(f"scripts/kafka start exited {cp.returncode}\nstdout:\n"
                                 f"{cp.stdout}\nstderr:\n{cp.stderr}\nserver.log:\n"
                                 f"{self.log_tail()}")
        lines = cp.stdout.splitlines()
        if not lines or lines[-1] != self.bootstrap:
            raise KafkaNodeError(f"scripts/kafka start printed {cp.stdout!r}, "
                                 f"expected {self.bootstrap}")
        return self.bootstrap

    def stop(self, timeout=STOP_TIMEOUT_S):
        t0 = time.monotonic()
        cp = self._run("stop", timeout=timeout)
        self.last_stop_seconds = time.monotonic() - t0
        if cp.returncode != 0:
            raise KafkaNodeError(f"scripts/kafka stop exited {cp.returncode}: {cp.stderr}")

    def pid(self):
        """The broker's pid (from KAFKA_DIR/kafka.pid, checked against its
        command line), or None."""
        try:
            pid = int((self.dir / "kafka.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        if b"kafka.Kafka" in cmdline and str(self.dir / "server.properties").encode() in cmdline:
            return pid
        return None

    def kill(self, timeout=30.0):
        """SIGKILL the broker (no clean shutdown), then let scripts/kafka
        forget it; ``start()`` brings it back on the same port and data."""
        pid = self.pid()
        if pid is None:
            raise KafkaNodeError("kill: the broker is not running")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while self.pid() == pid and _alive(pid):
            if time.monotonic() > deadline:
                raise KafkaNodeError(f"broker pid {pid} survived SIGKILL for {timeout} s")
            time.sleep(0.05)
        self.stop()

    def restart(self):
        self.stop()
        return self.start()

    def is_running(self):
        """The node runs and answers (scripts/kafka status)."""
        return self._run("status", timeout=60).returncode == 0

    def ensure_running(self):
        if not self.is_running():
            self.start()

    def destroy(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- clients --------------------------------------------------------------
    def client_config(self, **extra):
        conf = {"bootstrap.servers": self.bootstrap,
                # no noise on stderr while a test keeps the broker down
                "log_level": 2,
                "error_cb": lambda err: None}
        conf.update(extra)
        return conf

    def fresh_topics(self, prefix, partitions=None):
        """Creates topics of the caller's own, visible in the metadata when
        it returns: {"tasks", "reminders", "dlq"} -> name. One partition
        each (record order is then total) unless ``partitions`` names a
        count for a key."""
        from confluent_kafka.admin import AdminClient, NewTopic
        tag = uuid.uuid4().hex[:10]
        names = {k: f"{prefix}-{k}-{tag}" for k in ("tasks", "reminders", "dlq")}
        admin = AdminClient(self.client_config())
        futures = admin.create_topics(
            [NewTopic(n, num_partitions=(partitions or {}).get(k, 1), replication_factor=1)
             for k, n in names.items()], operation_timeout=30)
        for f in futures.values():
            f.result(timeout=60)
        for n in names.values():
            self.partitions(n)
        return names

    def partitions(self, topic, timeout=30.0):
        """The partition ids of ``topic`` (which must exist)."""
        ck = _ck()
        c = ck.Consumer(self.client_config(**{"group.id": f"meta-{uuid.uuid4().hex}"}))
        try:
            md = c.list_topics(topic, timeout=timeout)
            t = md.topics.get(topic)
            if t is None or t.error is not None or not t.partitions:
                raise KafkaNodeError(f"topic {topic!r} not available on {self.bootstrap}: "
                                     f"{t.error if t is not None else 'absent'}")
            return sorted(t.partitions)
        finally:
            c.close()

    def end_offsets(self, topic, timeout=30.0):
        """{partition: high watermark} of ``topic`` now."""
        ck = _ck()
        c = ck.Consumer(self.client_config(**{"group.id": f"meta-{uuid.uuid4().hex}"}))
        try:
            md = c.list_topics(topic, timeout=timeout)
            t = md.topics.get(topic)
            if t is None or t.error is not None or not t.partitions:
                raise KafkaNodeError(f"topic {topic!r} not available on {self.bootstrap}")
            out = {}
            for p in sorted(t.partitions):
                _lo, hi = c.get_watermark_offsets(ck.TopicPartition(topic, p),
                                                  timeout=timeout, cached=False)
                out[p] = hi
            return out
        finally:
            c.close()

    def reader(self, topic, from_beginning=False, offsets=None):
        """A TopicReader of ``topic`` from ``offsets`` ({partition: offset}),
        else the beginning, else (default) the current end of each partition."""
        if offsets is None:
            if from_beginning:
                offsets = {p: 0 for p in self.partitions(topic)}
            else:
                offsets = self.end_offsets(topic)
        return TopicReader(self, topic, offsets)

    def produce(self, topic, value, key=None, headers=None, timeout=30.0):
        """Produce one record and wait for its acknowledgement; returns
        (partition, offset)."""
        ck = _ck()
        p = ck.Producer(self.client_config(**{"acks": "all"}))
        result = {}

        def done(err, msg):
            result["err"] = err
            if msg is not None and err is None:
                result["at"] = (msg.partition(), msg.offset())

        p.produce(topic, value=value, key=key, headers=headers, on_delivery=done)
        left = p.flush(timeout)
        if left or result.get("err") is not None or "at" not in result:
            raise KafkaNodeError(f"produce to {topic} failed: {result!r} ({left} unsent)")
        return result["at"]


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _ck():
    try:
        import confluent_kafka
    except ImportError as e:   # pragma: no cover - depends on the machine
        raise KafkaNodeError("python3-confluent-kafka is not installed "
                             "(SETUP_KAFKA=1 scripts/setup)") from e
    return confluent_kafka


class Record:
    """One consumed record."""

    __slots__ = ("topic", "partition", "offset", "key", "headers", "value", "json",
                 "json_error", "timestamp")

    def __init__(self, msg):
        self.topic = msg.topic()
        self.partition = msg.partition()
        self.offset = msg.offset()
        self.key = msg.key()
        self.headers = [(k, v) for k, v in (msg.headers() or [])]
        self.value = msg.value()
        self.timestamp = msg.timestamp()
        self.json = None
        self.json_error = None
        try:
            self.json = json.loads(self.value.decode("utf-8")) if self.value is not None else None
        except (ValueError, UnicodeDecodeError) as e:
            self.json_error = repr(e)

    @property
    def key_str(self):
        return self.key.decode("utf-8", "replace") if self.key is not None else None

    def header_values(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self):
        v = self.value[:400] if self.value is not None else None
        return (f"<Record {self.topic}[{self.partition}]@{self.offset} key={self.key!r} "
                f"headers={self.headers!r} value={v!r}>")


class TopicReader:
    """Every record of one topic from fixed start offsets, in arrival order
    (which is offset order within a partition)."""

    def __init__(self, node, topic, offsets):
        self.node = node
        self.topic = topic
        self.start_offsets = dict(offsets)
        self.next_offsets = dict(offsets)   # the next offset to read, per partition
        self.records = []
        self._consumer = None

    def _open(self):
        ck = _ck()
        c = ck.Consumer(self.node.client_config(**{
            "group.id": f"todo-tests-{uuid.uuid4().hex}",   # never committed: assign() only
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 100,
        }))
        c.assign([ck.TopicPartition(self.topic, p, off) for p, off in sorted(self.next_offsets.items())])
        self._consumer = c

    def close(self):
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception:  # noqa: BLE001 - closing after a broker outage may complain
                pass
            self._consumer = None

    def reopen(self):
        """A fresh consumer from where this one got to (after a broker restart)."""
        self.close()
        self._open()

    def fetch(self, timeout=0.5, max_messages=5000):
        """Read what is available now (waiting up to ``timeout``); returns the
        new records."""
        if self._consumer is None:
            self._open()
        new = []
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            msgs = self._consumer.consume(num_messages=max_messages, timeout=min(left, 0.5))
            for m in msgs:
                if m.error() is not None:
                    continue          # transport errors: librdkafka retries by itself
                rec = Record(m)
                self.next_offsets[rec.partition] = rec.offset + 1
                new.append(rec)
            if not msgs or time.monotonic() >= deadline:
                break
        self.records.extend(new)
        return new

    def wait(self, pred, timeout=60.0, interval=0.2):
        """Fetch until ``pred(self.records)`` is truthy or ``timeout`` passes;
        returns the last value of pred."""
        deadline = time.monotonic() + timeout
        while True:
            self.fetch(timeout=interval)
            v = pred(self.records)
            if v or time.monotonic() >= deadline:
                return v

    # -- selections -----------------------------------------------------------
    def by_key(self, key):
        """The records whose key is ``key`` (str or bytes), in arrival order."""
        kb = key.encode("utf-8") if isinstance(key, str) else key
        return [r for r in self.records if r.key == kb]

    def wait_for_key(self, key, count, timeout=60.0):
        """Wait until at least ``count`` records carry ``key``; returns them."""
        self.wait(lambda _recs: len(self.by_key(key)) >= count, timeout=timeout)
        return self.by_key(key)
