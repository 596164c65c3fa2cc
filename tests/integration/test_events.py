"""Task events on a real Kafka broker (DESIGN §5; the transactional outbox).

Black-box: the service is started with ``KAFKA_BROKERS`` pointing at the
session's broker (scripts/kafka, see kafka.py and the ``kafka_node``
fixture); what it publishes is read back from the ``tasks`` topic. Every test
uses users of its own (``new_user()``), so tests sharing the broker only look
at records keyed by their users. Tests that stop the broker start it again in
a ``finally`` block.

The JVM and the service share a small machine: waits are generous and no
test asserts a duration (latencies are printed, not checked), except the
shutdown deadline, with a wide margin.
"""

import datetime
import itertools
import json
import random
import signal
import statistics
import threading
import time
import uuid

import pytest

from conftest import (TS_MS_UTC_RE, UUID_RE, TasksClient, assert_json, assert_metric_types,
                      metric, metric_value, metrics_diagnostics, new_user, poll, readyz,
                      run_binary)

TOPIC = "tasks"
CE_CONTENT_TYPE = b"application/cloudevents+json"
ENVELOPE_KEYS = {"specversion", "id", "source", "type", "subject", "time", "datacontenttype",
                 "partitionkey", "data"}
# The API fields `changed` may name, in the order it names them.
CHANGE_FIELDS = ("title", "description", "completed", "priority", "tags", "due_at", "timezone",
                 "recurrence", "recurrence_from", "reminders")
TYPES_WITH_CHANGED = ("task.updated", "task.completed", "task.uncompleted")

EVENT_WAIT = 90.0          # events of a healthy service and broker
AFTER_OUTAGE_WAIT = 300.0  # everything that waited in the outbox, once the broker is back

METRIC_TYPES = {
    "todo_outbox_backlog": "gauge",
    "todo_outbox_oldest_age_seconds": "gauge",
    "todo_events_delivered_total": "counter",
    "todo_events_failed_total": "counter",
    "todo_events_producer_resets_total": "counter",
    "todo_events_queue_messages": "gauge",
    "todo_events_broker_up": "gauge",
    "todo_outbox_relay_leader": "gauge",
    "todo_events_commit_to_ack_seconds": "histogram",
}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def traceparent():
    """A fresh valid W3C traceparent."""
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"


def expected_changed(before, after):
    return [f for f in CHANGE_FIELDS if before[f] != after[f]]


def parse_ce_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def timed(fn):
    """(response, wall clock before, wall clock after)."""
    t0 = time.time()
    r = fn()
    return r, t0, time.time()


def diagnostics(server):
    """The service's event metrics and readiness, for failure messages."""
    names = [n for n in METRIC_TYPES if n != "todo_events_commit_to_ack_seconds"]
    return metrics_diagnostics(server, names + ["todo_events_commit_to_ack_seconds_count"])


def user_records(reader, user):
    return reader.by_key(user)


def user_events(reader, user):
    """The parsed values of the records keyed by ``user``, in arrival order."""
    out = []
    for r in user_records(reader, user):
        assert r.json_error is None, f"record value is not JSON ({r.json_error}): {r!r}"
        out.append(r.json)
    return out


def dedup(events):
    """Events with a repeated CloudEvents id dropped (at-least-once)."""
    seen = set()
    out = []
    for e in events:
        if e.get("id") in seen:
            continue
        seen.add(e.get("id"))
        out.append(e)
    return out


def wait_user_events(reader, user, count, server=None, timeout=EVENT_WAIT):
    """Wait until ``count`` distinct events keyed by ``user`` arrived; fails
    with what did arrive otherwise. Returns the (distinct) events."""
    reader.wait(lambda _r: len(dedup(user_events(reader, user))) >= count, timeout=timeout)
    evs = dedup(user_events(reader, user))
    assert len(evs) >= count, (
        f"{len(evs)} of {count} events of user {user} on topic {reader.topic} within "
        f"{timeout} s: {[(e.get('type'), e.get('subject')) for e in evs]}; {diagnostics(server)}")
    return evs


def summary(ev):
    task = (ev.get("data") or {}).get("task") or {}
    return (task.get("id"), task.get("version"), ev.get("type"))


def wait_kafka_ok(server, timeout=90.0):
    """Poll /readyz until checks.kafka is "ok" (the producer reached the broker)."""
    last = []

    def ok():
        code, doc = readyz(server)
        last[:] = [code, doc]
        return code == 200 and isinstance(doc, dict) and (doc.get("checks") or {}).get("kafka") == "ok"

    assert poll(ok, timeout=timeout, interval=0.25), \
        f"/readyz never showed checks.kafka == 'ok' within {timeout} s: last {last!r}"


def check_event(rec, user, typ, task, changed=None, tp=None, window=None):
    """One record against the contract: key, header, every envelope attribute."""
    assert rec.key == user.encode("utf-8"), f"key {rec.key!r}, expected {user!r}"
    ct = rec.header_values("content-type")
    assert ct == [CE_CONTENT_TYPE], f"content-type headers {ct!r} (all headers {rec.headers!r})"
    assert rec.json_error is None, f"value is not JSON: {rec.json_error}: {rec.value!r}"
    ev = rec.json
    assert isinstance(ev, dict), ev
    keys = set(ENVELOPE_KEYS) | ({"traceparent"} if tp else set())
    assert set(ev) == keys, (f"envelope keys: missing {sorted(keys - set(ev))}, unexpected "
                             f"{sorted(set(ev) - keys)}: {ev!r}")
    assert ev["specversion"] == "1.0", ev
    assert isinstance(ev["id"], str) and UUID_RE.match(ev["id"]), ev["id"]
    assert ev["source"] == "/todo-backend", ev["source"]
    assert ev["type"] == typ, f"type {ev['type']!r}, expected {typ!r}: {ev!r}"
    assert ev["subject"] == f"tasks/{task['id']}", ev["subject"]
    assert isinstance(ev["time"], str) and TS_MS_UTC_RE.match(ev["time"]), ev["time"]
    if window is not None:
        t = parse_ce_time(ev["time"])
        lo, hi = window
        # the commit happens between sending the request and reading its answer
        assert lo - 1.0 <= t <= hi + 1.0, (f"time {ev['time']} outside the request's "
                                           f"[{lo:.3f}, {hi:.3f}] (+-1 s)")
    assert ev["datacontenttype"] == "application/json", ev["datacontenttype"]
    assert ev["partitionkey"] == user, ev["partitionkey"]
    if tp:
        assert ev["traceparent"] == tp, f"traceparent {ev['traceparent']!r}, sent {tp!r}"
    data = ev["data"]
    assert isinstance(data, dict), data
    dkeys = {"user_id", "task"} | ({"changed"} if typ in TYPES_WITH_CHANGED else set())
    assert set(data) == dkeys, f"data keys {sorted(data)}, expected {sorted(dkeys)}"
    assert data["user_id"] == user, data["user_id"]
    assert data["task"] == task, (f"data.task differs from the API's answer:\n event {data['task']!r}"
                                  f"\n   api {task!r}")
    if typ in TYPES_WITH_CHANGED:
        assert data["changed"] == changed, f"changed {data['changed']!r}, expected {changed!r}"
    return ev


def create_many(api, n, title="t"):
    ids = []
    for i in range(n):
        ids.append(api.create_ok(title=f"{title} {i}")["id"])
    return ids


def created_ids(reader, users):
    """{task id: number of task.created records} over the users' records."""
    keys = {u.encode() for u in users}
    out = {}
    for r in reader.records:
        if r.key in keys and r.json and r.json.get("type") == "task.created":
            tid = r.json["data"]["task"]["id"]
            out[tid] = out.get(tid, 0) + 1
    return out


def wait_created(reader, users, ids, server=None, timeout=AFTER_OUTAGE_WAIT):
    """Wait until every task id in ``ids`` has a task.created record; returns
    the per-id counts. Fails naming the missing ones."""
    want = set(ids)
    reader.wait(lambda _r: want <= set(created_ids(reader, users)), timeout=timeout)
    counts = created_ids(reader, users)
    missing = sorted(want - set(counts))
    assert not missing, (f"{len(missing)} of {len(want)} created tasks have no task.created "
                         f"event within {timeout} s (first: {missing[:10]}); "
                         f"{diagnostics(server)}")
    return counts


def check_bulk(reader, users, ids):
    """Every record of ``users``: the key, header and attributes of a
    task.created event for one of ``ids``; one partition per user; per user,
    first occurrences in commit order (each user's creates were sequential,
    so their ids increase). Returns a list of problems."""
    problems = []
    want = set(ids)
    for u in users:
        recs = reader.by_key(u)
        parts = {r.partition for r in recs}
        if len(parts) > 1:
            problems.append(f"user {u}: records on partitions {sorted(parts)}")
        order = []
        seen = set()
        for r in recs:
            ev = r.json if isinstance(r.json, dict) else {}
            data = ev.get("data") if isinstance(ev.get("data"), dict) else {}
            task = data.get("task") if isinstance(data.get("task"), dict) else {}
            if (r.header_values("content-type") != [CE_CONTENT_TYPE]
                    or ev.get("type") != "task.created" or ev.get("partitionkey") != u
                    or data.get("user_id") != u or task.get("user_id") != u
                    or ev.get("subject") != f"tasks/{task.get('id')}"
                    or task.get("id") not in want):
                problems.append(f"user {u}: unexpected record {r!r}")
                continue
            if ev["id"] not in seen:
                seen.add(ev["id"])
                order.append(task["id"])
        if order != sorted(order):
            bad = next(i for i in range(1, len(order)) if order[i] < order[i - 1])
            problems.append(f"user {u}: events not in commit order: task {order[bad]} after "
                            f"{order[bad - 1]} (position {bad} of {len(order)})")
    return problems


def report_duplicates(label, reader, users, ids):
    counts = created_ids(reader, users)
    extra = sum(c - 1 for tid, c in counts.items() if tid in set(ids) and c > 1)
    recs = [r for r in reader.records if r.key in {u.encode() for u in users}]
    ev_ids = [r.json.get("id") for r in recs if r.json]
    dup_ids = len(ev_ids) - len(set(ev_ids))
    print(f"\n[{label}] {len(ids)} tasks created; {len(recs)} records; "
          f"{extra} duplicate task.created records; {dup_ids} records repeating an event id")
    return extra


# --------------------------------------------------------------------------
# 0. the harness itself
# --------------------------------------------------------------------------

def test_harness_reads_back_what_it_produces(kafka_broker, tasks_topic):
    key = new_user("harness")
    value = json.dumps({"n": 1, "k": key}).encode()
    part, off = kafka_broker.produce(TOPIC, value, key=key.encode(),
                                     headers=[("content-type", CE_CONTENT_TYPE)])
    kafka_broker.produce(TOPIC, b"not json", key=key.encode())
    recs = tasks_topic.wait_for_key(key, 2, timeout=30)
    assert len(recs) == 2, recs
    assert (recs[0].partition, recs[0].offset) == (part, off)
    assert recs[0].json == {"n": 1, "k": key}
    assert recs[0].header_values("content-type") == [CE_CONTENT_TYPE]
    assert recs[1].json is None and recs[1].json_error and recs[1].value == b"not json"
    assert recs[1].partition == part and recs[1].offset == off + 1   # same key, same partition


# --------------------------------------------------------------------------
# 1. the envelope of every change type
# --------------------------------------------------------------------------

def test_envelope_of_every_change_type(pg, start_events_server, tasks_topic):
    s = start_events_server(pg)
    user = new_user("env")
    api = TasksClient(s, user, pg)
    steps = []   # (label, type, task in the API's answer, changed, traceparent, window)

    def step(label, typ, fn, changed=None, tp=None, status=200):
        r, t0, t1 = timed(fn)
        task = assert_json(r, status)
        steps.append((label, typ, task, changed, tp, (t0, t1)))
        return task

    tp1 = traceparent()
    t = step("create", "task.created",
             lambda: api.create({"title": "envelope", "description": "d1", "priority": "high",
                                 "tags": ["a", "b"], "due_at": "2030-01-02T03:04:05Z",
                                 "timezone": "Europe/Berlin"},
                                headers=[("traceparent", tp1)]),
             tp=tp1, status=201)
    tid = t["id"]

    # description sent with its current value: not a change
    prev = t
    t = step("patch", "task.updated",
             lambda: api.patch(tid, {"title": "envelope 2", "description": "d1", "tags": ["b"]},
                               headers=[("traceparent",
                                         "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01")]))
    steps[-1] = steps[-1][:3] + (expected_changed(prev, t),) + steps[-1][4:]
    assert steps[-1][3] == ["title", "tags"], steps[-1][3]

    prev = t
    tp2 = traceparent()
    t = step("put", "task.updated",
             lambda: api.put(tid, {"title": "put", "priority": "low",
                                   "due_at": "2030-01-02T03:04:05Z", "timezone": "UTC"},
                             headers=[("traceparent", tp2)]),
             tp=tp2)
    steps[-1] = steps[-1][:3] + (expected_changed(prev, t),) + steps[-1][4:]
    assert steps[-1][3] == ["title", "description", "priority", "tags", "timezone"], steps[-1][3]

    t = step("complete (toggle)", "task.completed", lambda: api.complete(tid),
             changed=["completed"])
    assert t["completed"] is True
    step("complete {completed:true} when already completed", "task.updated",
         lambda: api.complete(tid, {"completed": True}), changed=[])
    t = step("uncomplete (PATCH .../complete toggle)", "task.uncompleted",
             lambda: api.complete(tid, method="PATCH"), changed=["completed"])
    assert t["completed"] is False
    t = step("PATCH completed=true", "task.completed",
             lambda: api.patch(tid, {"completed": True, "priority": "urgent"}),
             changed=["completed", "priority"])
    prev = t
    t = step("PUT uncompleting", "task.uncompleted",
             lambda: api.put(tid, {"title": "put", "due_at": "2030-01-02T03:04:05Z"}))
    steps[-1] = steps[-1][:3] + (expected_changed(prev, t),) + steps[-1][4:]
    assert steps[-1][3] == ["completed", "priority"], steps[-1][3]
    t = step("PUT unchanged fields, completed true", "task.completed",
             lambda: api.put(tid, {"title": "put", "due_at": "2030-01-02T03:04:05Z",
                                   "completed": True}),
             changed=["completed"])

    snapshot = api.get_ok(tid)
    assert snapshot == t
    tp3 = traceparent()
    r, t0, t1 = timed(lambda: api.delete(tid, headers=[("traceparent", tp3)]))
    assert r.status == 204, r
    steps.append(("delete", "task.deleted", snapshot, None, tp3, (t0, t1)))

    wait_user_events(tasks_topic, user, len(steps), s)
    recs = user_records(tasks_topic, user)
    got = [(r.json or {}).get("type") for r in recs]
    assert got == [st[1] for st in steps], f"event types {got}, expected {[st[1] for st in steps]}"

    problems = []
    ids = set()
    for rec, (label, typ, task, changed, tp, window) in zip(recs, steps):
        try:
            ev = check_event(rec, user, typ, task, changed, tp, window)
            assert ev["id"] not in ids, f"event id {ev['id']} repeated"
            ids.add(ev["id"])
        except AssertionError as e:
            problems.append(f"{label}: {e}")
    assert not problems, "\n".join(problems)
    # one user: one partition
    assert len({r.partition for r in recs}) == 1, [(r.partition, r.offset) for r in recs]
    # the deleted task's last snapshot keeps the version it had
    assert recs[-1].json["data"]["task"]["version"] == snapshot["version"]


def test_patch_without_effect_is_task_updated_with_empty_changed(pg, start_events_server,
                                                                   tasks_topic):
    """PUT/PATCH -> task.updated; a merge patch that changes no value names
    nothing in `changed` (the task as answered is the event's task)."""
    s = start_events_server(pg)
    user = new_user("noop")
    api = TasksClient(s, user, pg)
    t = api.create_ok(title="same", priority="low")
    r, t0, t1 = timed(lambda: api.patch(t["id"], {"title": "same", "priority": "low"}))
    after = assert_json(r, 200)
    wait_user_events(tasks_topic, user, 2, s)
    recs = user_records(tasks_topic, user)
    check_event(recs[0], user, "task.created", t)
    check_event(recs[1], user, "task.updated", after, [], None, (t0, t1))


# --------------------------------------------------------------------------
# 2. failed writes and idempotent replays emit nothing
# --------------------------------------------------------------------------

def test_failed_writes_and_idempotent_replays_emit_nothing(pg, start_events_server, tasks_topic):
    s = start_events_server(pg)
    user = new_user("fail")
    api = TasksClient(s, user, pg)
    a = api.create_ok(title="a")
    wrong = [("If-Match", f'"{a["version"] + 7}"')]
    failures = [
        ("PATCH missing", lambda: api.patch(a["id"] + 100000, {"title": "x"}), 404),
        ("PUT missing", lambda: api.put(a["id"] + 100000, {"title": "x"}), 404),
        ("DELETE missing", lambda: api.delete(a["id"] + 100000), 404),
        ("complete missing", lambda: api.complete(a["id"] + 100000), 404),
        ("PATCH If-Match", lambda: api.patch(a["id"], {"title": "x"}, headers=wrong), 412),
        ("PUT If-Match", lambda: api.put(a["id"], {"title": "x"}, headers=wrong), 412),
        ("DELETE If-Match", lambda: api.delete(a["id"], headers=wrong), 412),
        ("complete If-Match", lambda: api.complete(a["id"], headers=wrong), 412),
        ("PATCH invalid", lambda: api.patch(a["id"], {"title": ""}), 422),
        ("PUT invalid", lambda: api.put(a["id"], {"title": "x", "priority": "huge"}), 422),
        ("POST invalid", lambda: api.create({"title": "x", "version": 3}), 422),
        ("POST malformed", lambda: api.create(b'{"title": "x"'), 400),
        ("PATCH malformed", lambda: api.patch(a["id"], b'{"title": '), 400),
    ]
    for label, fn, status in failures:
        r = fn()
        assert r.status == status, f"{label}: {r!r}"

    key = f"k-{uuid.uuid4().hex}"
    first = api.create({"title": "idem"}, headers=[("Idempotency-Key", key)])
    assert first.status == 201, first
    for _ in range(3):
        again = api.create({"title": "idem"}, headers=[("Idempotency-Key", key)])
        assert again.status == 201 and again.json() == first.json(), again
    reused = api.create({"title": "other body"}, headers=[("Idempotency-Key", key)])
    assert reused.status == 422, reused
    sentinel = api.create_ok(title="sentinel")

    evs = wait_user_events(tasks_topic, user, 3, s)
    # the sentinel is the last write: everything before it on the partition has arrived
    tasks_topic.wait(lambda _r: any(summary(e)[0] == sentinel["id"]
                                    for e in user_events(tasks_topic, user)), timeout=EVENT_WAIT)
    evs = user_events(tasks_topic, user)
    assert [summary(e) for e in evs] == [
        (a["id"], 1, "task.created"),
        (first.json()["id"], 1, "task.created"),
        (sentinel["id"], 1, "task.created"),
    ], [summary(e) for e in evs]


# --------------------------------------------------------------------------
# 3. per-user order
# --------------------------------------------------------------------------

def test_events_of_each_user_arrive_in_commit_order(pg, start_events_server, tasks_topic):
    s = start_events_server(pg)
    rng = random.Random(20261124)
    users = [new_user(f"ord{i}") for i in range(5)]
    clients = {u: TasksClient(s, u, pg) for u in users}
    live = {u: {} for u in users}          # task id -> completed
    expected = {u: [] for u in users}      # (task id, version, type) in acknowledgement order

    for rnd in range(10):
        order = users[:]
        rng.shuffle(order)
        for u in order:
            api = clients[u]
            ops = ["create"] if not live[u] else ["create", "patch", "put", "complete",
                                                  "complete", "delete"]
            op = rng.choice(ops)
            if op == "create":
                t = api.create_ok(title=f"{u} r{rnd}")
                live[u][t["id"]] = False
                expected[u].append((t["id"], t["version"], "task.created"))
                continue
            tid = rng.choice(sorted(live[u]))
            if op == "patch":
                t = assert_json(api.patch(tid, {"title": f"p{rnd}"}), 200)
                expected[u].append((tid, t["version"], "task.updated"))
            elif op == "put":
                t = assert_json(api.put(tid, {"title": f"q{rnd}"}), 200)
                typ = "task.uncompleted" if live[u][tid] else "task.updated"
                live[u][tid] = False
                expected[u].append((tid, t["version"], typ))
            elif op == "complete":
                t = assert_json(api.complete(tid), 200)
                assert t["completed"] != live[u][tid]
                live[u][tid] = t["completed"]
                expected[u].append((tid, t["version"],
                                    "task.completed" if t["completed"] else "task.uncompleted"))
            else:
                before = api.get_ok(tid)
                r = api.delete(tid)
                assert r.status == 204, r
                del live[u][tid]
                expected[u].append((tid, before["version"], "task.deleted"))

    problems = []
    for u in users:
        evs = wait_user_events(tasks_topic, u, len(expected[u]), s)
        got = [summary(e) for e in evs]
        if got != expected[u]:
            problems.append(f"user {u}: events (id, version, type)\n  got      {got}\n"
                            f"  expected {expected[u]}")
        parts = {r.partition for r in user_records(tasks_topic, u)}
        if len(parts) != 1:
            problems.append(f"user {u}: records on partitions {sorted(parts)}")
    assert not problems, "\n".join(problems)
    # no fault happened: nothing should have been sent twice
    dups = {u: len(user_records(tasks_topic, u)) - len(dedup(user_events(tasks_topic, u)))
            for u in users}
    assert not any(dups.values()), f"duplicate records without any fault: {dups}"


# --------------------------------------------------------------------------
# 4. the broker stopped for 30 s while 2 000 tasks are created
# --------------------------------------------------------------------------

OUTAGE_S = 30.0
OUTAGE_TASKS = 2000        # created while the broker is down
OUTAGE_RATE = 80.0         # creates per second, before, during and after the outage
OUTAGE_THREADS = 4


def test_broker_outage_loses_nothing(pg, start_events_server, kafka_broker, tasks_topic):
    """Creates run at a steady rate; the broker is stopped (scripts/kafka
    stop) while they run, stays down for 30 s and 2 000 creates, and comes
    back while they still run: every request succeeds, /readyz stays 200,
    and every committed change reaches the topic."""
    s = start_events_server(pg, DB_POOL_SIZE=4)
    wait_kafka_ok(s)
    users = [new_user(f"out{i}") for i in range(OUTAGE_THREADS)]
    # one event before the outage, so the reader is known to be working
    warm = TasksClient(s, users[0], pg).create_ok(title="before the outage")
    wait_user_events(tasks_topic, users[0], 1, s)

    results = [[] for _ in users]   # per thread: (start, end, status, task id, bad response)
    errors = []
    samples = []                    # (seconds since stop, readyz code, kafka, backlog)
    stop_creating = threading.Event()
    seq = itertools.count()
    t_start = time.monotonic()

    def creator(k):
        api = TasksClient(s, users[k], pg)
        while not stop_creating.is_set():
            i = next(seq)
            wait = t_start + i / OUTAGE_RATE - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            t0 = time.monotonic()
            try:
                r = api.create({"title": f"outage {i}"}, timeout=30)
            except (AssertionError, OSError) as e:
                errors.append((i, repr(e)))
                continue
            tid = r.json()["id"] if r.status == 201 else None
            results[k].append((t0, time.monotonic(), r.status, tid,
                               r if r.status != 201 else None))

    def sample(since):
        try:
            code, doc = readyz(s, timeout=10)
            kafka_state = ((doc or {}).get("checks") or {}).get("kafka")
        except (OSError, AssertionError) as e:
            code, kafka_state = repr(e), None
        try:
            backlog = metric_value(s, "todo_outbox_backlog")
        except (OSError, AssertionError, ValueError) as e:
            backlog = repr(e)
        samples.append((round(time.monotonic() - since, 1), code, kafka_state, backlog))

    def created_between(lo, hi):
        return sum(1 for res in results for x in res if x[2] == 201 and x[0] >= lo and x[1] <= hi)

    threads = [threading.Thread(target=creator, args=(k,), daemon=True)
               for k in range(OUTAGE_THREADS)]
    for th in threads:
        th.start()
    stopped_at = start_at = None
    try:
        time.sleep(2.0)
        kafka_broker.stop()
        stopped_at = time.monotonic()
        while (time.monotonic() - stopped_at < OUTAGE_S
               or created_between(stopped_at, time.monotonic()) < OUTAGE_TASKS):
            sample(stopped_at)
            time.sleep(1.0)
            assert time.monotonic() - stopped_at < 300, "creates too slow to reach the count"
        sample(stopped_at)
    finally:
        start_at = time.monotonic()
        kafka_broker.start()
        restarted_at = time.monotonic()
        time.sleep(3.0)                      # creates go on while the producer reconnects
        stop_creating.set()
        for th in threads:
            th.join(timeout=60)

    allres = [x for res in results for x in res]
    during = [x for x in allres if x[0] >= stopped_at and x[1] <= start_at]
    ids = [x[3] for x in allres if x[3] is not None]
    bad = [x for x in allres if x[2] != 201]
    for label, group in (("all", allres), ("while the broker was down", during)):
        lat = sorted(x[1] - x[0] for x in group)
        if lat:
            p50 = statistics.median(lat)
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(f"\n[outage] {len(lat)} creates ({label}): p50 {p50 * 1000:.1f} ms, "
                  f"p99 {p99 * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms", end="")
    print(f"\n[outage] broker stop took {kafka_broker.last_stop_seconds:.1f} s, start "
          f"{kafka_broker.last_start_seconds:.1f} s; broker down for {start_at - stopped_at:.1f} s")
    print(f"[outage] samples (s since stop, readyz, kafka, backlog): {samples}")

    problems = []
    if errors:
        problems.append(f"{len(errors)} requests got no answer: {errors[:5]}")
    if bad:
        problems.append(f"{len(bad)} creates not 201: {[(x[2], x[4]) for x in bad[:5]]}")
    if len(during) < OUTAGE_TASKS:
        problems.append(f"only {len(during)} creates answered while the broker was down "
                        f"(wanted {OUTAGE_TASKS})")
    not_ready = [x for x in samples if x[1] != 200]
    if not_ready:
        problems.append(f"/readyz not 200 while only Kafka was down: {not_ready[:5]}")
    late = [x for x in samples if x[0] >= 10.0]
    if not late:
        problems.append("no /readyz sample 10 s or more into the outage")
    still_ok = [x for x in late if x[2] == "ok"]
    if still_ok:
        problems.append(f"checks.kafka still 'ok' 10 s or more after the broker stopped: "
                        f"{still_ok[:5]}")
    backlogs = [x[3] for x in samples if isinstance(x[3], float)]
    if not backlogs or max(backlogs) <= 0:
        problems.append(f"todo_outbox_backlog never above 0 during the outage: {samples}")

    # everything committed reaches the topic once the broker is back
    try:
        counts = wait_created(tasks_topic, users, ids, s)
        print(f"[outage] all {len(ids)} events on the topic "
              f"{time.monotonic() - restarted_at:.1f} s after the broker was back")
        report_duplicates("outage", tasks_topic, users, ids)
        assert warm["id"] in counts
        problems.extend(check_bulk(tasks_topic, users, ids + [warm["id"]]))
    except AssertionError as e:
        problems.append(str(e))
    if not poll(lambda: metric_value(s, "todo_outbox_backlog") == 0, timeout=60, interval=0.5):
        problems.append(f"todo_outbox_backlog not back to 0 within 60 s after delivery: "
                        f"{diagnostics(s)}")
    assert not problems, "\n".join(problems)
    assert s.alive()


def test_broker_killed_under_load_loses_nothing(pg, start_events_server, kafka_broker,
                                                tasks_topic):
    """The broker SIGKILLed while creates stream in (records in flight, no
    clean shutdown), started again a few seconds later: nothing is lost, each
    user's events keep their commit order (duplicates are reported)."""
    s = start_events_server(pg)
    wait_kafka_ok(s)
    users = [new_user(f"bk{i}") for i in range(2)]
    ids, errors = [], []
    stop_creating = threading.Event()

    def creator(k):
        api = TasksClient(s, users[k], pg)
        i = 0
        while not stop_creating.is_set():
            i += 1
            try:
                r = api.create({"title": f"load {i}"}, timeout=30)
            except (AssertionError, OSError) as e:
                errors.append(repr(e))
                continue
            if r.status == 201:
                ids.append(r.json()["id"])
            else:
                errors.append(repr(r))
            time.sleep(0.01)

    threads = [threading.Thread(target=creator, args=(k,), daemon=True) for k in range(2)]
    for th in threads:
        th.start()
    try:
        time.sleep(2.0)
        kafka_broker.kill()
        time.sleep(5.0)
    finally:
        kafka_broker.start()
        time.sleep(3.0)
        stop_creating.set()
        for th in threads:
            th.join(timeout=60)
    assert not errors, errors[:5]
    wait_created(tasks_topic, users, ids, s)
    report_duplicates("broker-kill", tasks_topic, users, ids)
    problems = check_bulk(tasks_topic, users, ids)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------
# 5, 6. the service dies or stops while the broker is down
# --------------------------------------------------------------------------

CRASH_TASKS = 100


def test_sigkill_while_broker_down_then_restart_publishes_everything(
        pg, start_events_server, kafka_broker, tasks_topic):
    s = start_events_server(pg)
    wait_kafka_ok(s)
    user = new_user("kill")
    api = TasksClient(s, user, pg)
    kafka_broker.stop()
    try:
        ids = create_many(api, CRASH_TASKS, "before SIGKILL")
        assert s.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        kafka_broker.start()
    s2 = start_events_server(pg)
    wait_created(tasks_topic, [user], ids, s2)
    report_duplicates("sigkill", tasks_topic, [user], ids)
    problems = check_bulk(tasks_topic, [user], ids)
    assert not problems, "\n".join(problems)
    assert poll(lambda: metric_value(s2, "todo_outbox_backlog") == 0, timeout=60, interval=0.5), \
        diagnostics(s2)


SHUTDOWN_TIMEOUT_MS = 3000
SHUTDOWN_MARGIN_S = 5.0


def test_sigterm_while_broker_down_exits_in_time_and_rows_go_out_later(
        pg, start_events_server, kafka_broker, tasks_topic):
    s = start_events_server(pg, SHUTDOWN_TIMEOUT_MS=SHUTDOWN_TIMEOUT_MS)
    wait_kafka_ok(s)
    user = new_user("term")
    api = TasksClient(s, user, pg)
    kafka_broker.stop()
    try:
        ids = create_many(api, CRASH_TASKS, "before SIGTERM")
        t0 = time.monotonic()
        # Server.stop fails the test if the process is still there after the bound
        rc = s.stop(signal.SIGTERM, timeout=SHUTDOWN_TIMEOUT_MS / 1000 + SHUTDOWN_MARGIN_S)
        took = time.monotonic() - t0
        print(f"\n[sigterm] exited {rc} after {took:.2f} s (SHUTDOWN_TIMEOUT_MS "
              f"{SHUTDOWN_TIMEOUT_MS})")
        assert rc == 0, f"exit code {rc} on SIGTERM; stderr tail:\n" + "\n".join(s.logs()[-20:])
    finally:
        kafka_broker.start()
    s2 = start_events_server(pg)
    wait_created(tasks_topic, [user], ids, s2)
    report_duplicates("sigterm", tasks_topic, [user], ids)
    problems = check_bulk(tasks_topic, [user], ids)
    assert not problems, "\n".join(problems)


def test_sigterm_with_broker_up_flushes_before_exit(pg, start_events_server, tasks_topic):
    """SHUTDOWN_TIMEOUT_MS bounds the shutdown, producer flush included: with
    the broker up, what was committed before SIGTERM is on the topic without
    any later start."""
    s = start_events_server(pg, SHUTDOWN_TIMEOUT_MS=SHUTDOWN_TIMEOUT_MS)
    wait_kafka_ok(s)
    user = new_user("flush")
    ids = create_many(TasksClient(s, user, pg), 50, "before a clean stop")
    rc = s.stop(signal.SIGTERM, timeout=SHUTDOWN_TIMEOUT_MS / 1000 + SHUTDOWN_MARGIN_S)
    assert rc == 0, f"exit code {rc}; stderr tail:\n" + "\n".join(s.logs()[-20:])
    wait_created(tasks_topic, [user], ids, None, timeout=EVENT_WAIT)
    problems = check_bulk(tasks_topic, [user], ids)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------
# 7. a tiny local queue
# --------------------------------------------------------------------------

def test_small_queue_max_with_broker_down(pg, start_events_server, kafka_broker, tasks_topic):
    s = start_events_server(pg, KAFKA_QUEUE_MAX=10)
    wait_kafka_ok(s)
    user = new_user("qmax")
    api = TasksClient(s, user, pg)
    queue_samples = []
    kafka_broker.stop()
    try:
        ids = []
        for i in range(200):
            ids.append(api.create_ok(title=f"q {i}")["id"])
            if i % 20 == 0:
                queue_samples.append(metric_value(s, "todo_events_queue_messages"))
        queue_samples.append(metric_value(s, "todo_events_queue_messages"))
    finally:
        kafka_broker.start()
    print(f"\n[queue-max] todo_events_queue_messages while down: {queue_samples}")
    assert all(v is not None and v <= 10 for v in queue_samples), \
        f"local queue above KAFKA_QUEUE_MAX=10: {queue_samples}"
    wait_created(tasks_topic, [user], ids, s)
    report_duplicates("queue-max", tasks_topic, [user], ids)
    problems = check_bulk(tasks_topic, [user], ids)
    assert not problems, "\n".join(problems)
    assert poll(lambda: metric_value(s, "todo_outbox_backlog") == 0, timeout=60, interval=0.5), \
        diagnostics(s)


# --------------------------------------------------------------------------
# 8. one relay leader among processes on one database
# --------------------------------------------------------------------------

def leaders(servers):
    return [metric_value(x, "todo_outbox_relay_leader") for x in servers]


def one_leader(servers):
    ls = leaders(servers)
    return ls.count(1) == 1 and ls.count(0) == len(ls) - 1


def test_one_relay_leader_and_failover(pg, start_events_server, tasks_topic):
    a = start_events_server(pg)
    b = start_events_server(pg)
    assert poll(lambda: one_leader([a, b]), timeout=30, interval=0.5), \
        f"todo_outbox_relay_leader of the two processes: {leaders([a, b])}"
    # and it stays so
    for _ in range(5):
        time.sleep(0.5)
        assert one_leader([a, b]), leaders([a, b])
    leader, other = (a, b) if leaders([a, b])[0] == 1 else (b, a)

    # both publish their own commits
    user = new_user("lead")
    ids = [TasksClient(leader, user, pg).create_ok(title="via leader")["id"],
           TasksClient(other, user, pg).create_ok(title="via follower")["id"]]
    wait_created(tasks_topic, [user], ids, other, timeout=EVENT_WAIT)

    assert leader.stop(signal.SIGKILL) == -signal.SIGKILL
    t0 = time.monotonic()
    assert poll(lambda: metric_value(other, "todo_outbox_relay_leader") == 1,
                timeout=60, interval=0.5), \
        f"the survivor did not become relay leader within 60 s: {diagnostics(other)}"
    print(f"\n[leader] survivor took the relay lock {time.monotonic() - t0:.1f} s after SIGKILL")
    ids.append(TasksClient(other, user, pg).create_ok(title="after failover")["id"])
    wait_created(tasks_topic, [user], ids, other, timeout=EVENT_WAIT)


def test_follower_catches_up_its_own_rows_in_order(pg, start_events_server, kafka_broker,
                                                   tasks_topic):
    """A process that is not the relay leader and cannot hand its commits
    over (broker down, a local queue of 10) sends its own waiting rows
    itself once it can, in seq order: every version of every task arrives,
    each task's versions in increasing order, and the follower resumes
    direct hand-offs."""
    a = start_events_server(pg)
    assert poll(lambda: metric_value(a, "todo_outbox_relay_leader") == 1, timeout=30,
                interval=0.5), diagnostics(a)
    follower = start_events_server(pg, KAFKA_QUEUE_MAX=10)
    wait_kafka_ok(follower)
    assert metric_value(follower, "todo_outbox_relay_leader") == 0, diagnostics(follower)
    user = new_user("follow")
    api = TasksClient(follower, user, pg)
    ids = [api.create_ok(title=f"t{i}")["id"] for i in range(4)]
    kafka_broker.stop()
    try:
        for round_ in range(15):
            for tid in ids:
                r = api.patch(tid, {"title": f"t{tid} r{round_}"})
                assert r.status == 200, r
    finally:
        kafka_broker.start()
    want = {(tid, v) for tid in ids for v in range(2, 17)}

    def versions_seen(_r=None):
        return {(e["data"]["task"]["id"], e["data"]["task"]["version"])
                for e in user_events(tasks_topic, user) if e["type"] == "task.updated"}

    tasks_topic.wait(lambda _r: want <= versions_seen(), timeout=AFTER_OUTAGE_WAIT)
    missing = sorted(want - versions_seen())
    assert not missing, f"{len(missing)} updates never arrived (first {missing[:5]}); " \
                        f"{diagnostics(follower)}"
    for tid in ids:
        seen = [e["data"]["task"]["version"] for e in dedup(user_events(tasks_topic, user))
                if e["data"]["task"]["id"] == tid]
        assert seen == sorted(seen), f"task {tid}: versions out of order {seen}"
    # the follower sent them itself (its queue held 10 of the 60)
    assert metric_value(follower, "todo_outbox_relayed_total") >= 50, diagnostics(follower)
    # and it hands off directly again: the next write's event comes at once
    ids.append(api.create_ok(title="after")["id"])
    wait_created(tasks_topic, [user], ids, follower, timeout=EVENT_WAIT)
    assert poll(lambda: metric_value(follower, "todo_outbox_backlog") == 0, timeout=60,
                interval=0.5), diagnostics(follower)


# --------------------------------------------------------------------------
# 9, 10. embedded and disabled
# --------------------------------------------------------------------------

def test_embedded_mock_cluster(pg, start_api_server):
    s = start_api_server(pg, KAFKA_BROKERS="embedded")
    api = TasksClient(s, new_user("emb"), pg)
    n = 20
    for i in range(n):
        api.create_ok(title=f"embedded {i}")
    assert poll(lambda: (metric_value(s, "todo_events_delivered_total") or 0) >= n,
                timeout=60, interval=0.25), \
        f"todo_events_delivered_total did not reach {n}: {diagnostics(s)}"
    assert poll(lambda: metric_value(s, "todo_outbox_backlog") == 0, timeout=30, interval=0.25), \
        diagnostics(s)
    wait_kafka_ok(s, timeout=30)
    samples = s.metrics()
    assert metric(samples, "todo_events_delivered_total") == n, diagnostics(s)
    assert metric(samples, "todo_events_failed_total") == 0, diagnostics(s)
    assert metric(samples, "todo_events_broker_up") == 1, diagnostics(s)
    assert metric(samples, "todo_outbox_relay_leader") == 1, diagnostics(s)
    assert metric(samples, "todo_events_commit_to_ack_seconds_count") == n, diagnostics(s)
    assert metric(samples, "todo_events_commit_to_ack_seconds_bucket", le="+Inf") == n


def test_event_metrics_are_exposed_with_their_types(pg, start_api_server):
    s = start_api_server(pg, KAFKA_BROKERS="embedded")
    assert_metric_types(s, METRIC_TYPES)


def test_kafka_unset_writes_work_and_readyz_says_disabled(api_server):
    api = TasksClient(api_server, new_user("off"))
    t = api.create_ok(title="no kafka")
    assert assert_json(api.patch(t["id"], {"title": "still none"}), 200)["version"] == 2
    assert api.delete(t["id"]).status == 204
    code, doc = readyz(api_server)
    assert code == 200, doc
    assert doc["checks"]["kafka"] == "disabled", doc


# --------------------------------------------------------------------------
# 11. configuration
# --------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "abc", "-5", "10x"])
def test_bad_kafka_queue_max_exits_2_with_one_line(value):
    cp = run_binary(env={"KAFKA_QUEUE_MAX": value}, timeout=5)
    assert cp.returncode == 2, f"KAFKA_QUEUE_MAX={value!r}: exit {cp.returncode}, {cp.stderr!r}"
    lines = [line for line in cp.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one stderr line, got {lines!r}"
    assert "KAFKA_QUEUE_MAX" in lines[0], lines[0]


def test_bad_kafka_queue_max_flag_exits_2():
    cp = run_binary(["--kafka-queue-max=0"], timeout=5)
    assert cp.returncode == 2, cp
    lines = [line for line in cp.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "KAFKA_QUEUE_MAX" in lines[0] or "kafka-queue-max" in lines[0], lines[0]


def test_help_lists_the_kafka_settings():
    cp = run_binary(["--help"])
    assert cp.returncode == 0, cp
    for var in ("KAFKA_BROKERS", "KAFKA_TOPIC_TASKS", "KAFKA_TOPIC_REMINDERS", "KAFKA_TOPIC_DLQ",
                "KAFKA_QUEUE_MAX"):
        assert var in cp.stdout, f"--help does not list {var}"
