"""Reminders that fire exactly once, across processes and restarts (issue 7;
docs/events.md; migration 005_reminders.sql).

Black-box, on a real PostgreSQL and the session's real Kafka broker: tasks
get reminders through the API (or, where the point is another process's
write, straight through SQL), and what the scheduler did is read back from
the reminders topic (``KAFKA_TOPIC_REMINDERS``, a topic of the test's or the
module's own, so nothing else writes to it), from the ``reminders`` table and
from the API.

What is checked:

- every reminder fires exactly once: one ``reminder.due`` CloudEvent id per
  (task, reminder time), none missing, none fired twice, with 1000 reminders
  shared by two processes on one database, one of them SIGKILLed midway
  (records repeating an event id are possible after a crash: the outbox is
  at-least-once; they are counted and printed, not failed);
- edits reschedule (the old time never fires), an edit keeping a fired time
  does not fire it again, two reminders with one time are one event;
  deleting or completing a task cancels its reminders and reopening it brings
  back only the future ones; a time already past fires at once, late;
- reminders that fell due while no process ran fire once at the next start,
  late, and never again after another restart;
- another process's write wakes the scheduler through LISTEN/NOTIFY (the
  polling backstop set to an hour), and the backstop alone finds rows added
  without a notification;
- the API (``fired_at``, read-only; ``before`` days counted in the task's
  zone across DST changes), the reminder.due handler (delivery recorded
  once, malformed data dropped) and the ``todo_reminders_*`` metrics.

The JVM, PostgreSQL and the services share a small machine: waits are
generous and no test asserts a duration. Lateness figures (p50/p99) and
duplicate counts are printed (``pytest -s``). A "late" reminder (lateness of
5 s or more) is only asserted where the test itself made the reminder at
least that late (it was due while no process ran, or set in the past).
"""

import datetime
import itertools
import json
import math
import signal
import threading
import time
import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from conftest import (TS_MS_UTC_RE, UUID_RE, TasksClient, assert_json, assert_metric_types,
                      assert_validation, error_fields, metric, metric_value, metrics_diagnostics,
                      module_db_server, new_user, poll, readyz, run_binary, wait_ready)
from dapr_events import CE_JSON, consumer_env, deliver, fmt_utc, local_to_utc, parse_utc

UTC = datetime.timezone.utc

CE_CONTENT_TYPE = CE_JSON.encode()
ENVELOPE_KEYS = {"specversion", "id", "source", "type", "subject", "time", "datacontenttype",
                 "partitionkey", "data"}
DATA_KEYS = {"task_id", "user_id", "title", "due_at", "remind_at", "lateness_ms", "late"}
LATE_MS = 5000              # lateness from which a reminder counts as late

EVENT_WAIT = 90.0           # a reminder that is due, on the topic
BULK_WAIT = 300.0           # the 1000 reminders, a killed process's outbox rows included
DELIVERY_WAIT = 240.0       # delivered_at after a consumer of the group was SIGKILLed

METRIC_TYPES = {
    "todo_reminders_pending": "gauge",
    "todo_reminders_fired_total": "counter",
    "todo_reminders_late_total": "counter",
    "todo_reminders_lateness_seconds": "summary",
    "todo_reminders_delivered_total": "counter",
    "todo_reminders_listening": "gauge",
}
QUANTILES = ("0.5", "0.9", "0.99")

# --------------------------------------------------------------------------
# servers, topics
# --------------------------------------------------------------------------

def topic_env(node, topics):
    return {"KAFKA_BROKERS": node.bootstrap, "KAFKA_TOPIC_TASKS": topics["tasks"],
            "KAFKA_TOPIC_REMINDERS": topics["reminders"], "KAFKA_TOPIC_DLQ": topics["dlq"]}


# The reminders topic has 3 partitions like the real one (per-user order
# only); the others one.
REMINDER_PARTITIONS = {"reminders": 3}


def start_rserver(start_server, db, node=None, topics=None, **env):
    """A ready service on ``db`` (a PgDatabase); with ``node`` and ``topics``
    it publishes to those topics. EVENTS_CONSUMER=none unless given."""
    if node is not None and topics is not None:
        for k, v in topic_env(node, topics).items():
            env.setdefault(k, v)
    env.setdefault("EVENTS_CONSUMER", "none")
    s = start_server(**consumer_env(db.url, **env))
    wait_ready(s)
    s.db = db
    return s


def diagnostics(server):
    """The service's reminder and event metrics, for failure messages."""
    return metrics_diagnostics(
        server, ["todo_reminders_pending", "todo_reminders_fired_total",
                 "todo_reminders_late_total", "todo_reminders_lateness_seconds_count",
                 "todo_reminders_delivered_total", "todo_reminders_listening",
                 "todo_outbox_backlog", "todo_outbox_relay_leader", "todo_events_delivered_total",
                 "todo_events_broker_up", "todo_consumer_records_total"], log_lines=15)


def wait_listening(server, timeout=30.0):
    """Until todo_reminders_listening is 1 (the LISTEN connection is up)."""
    assert poll(lambda: metric_value(server, "todo_reminders_listening") == 1,
                timeout=timeout, interval=0.2), \
        f"todo_reminders_listening never 1 within {timeout} s; {diagnostics(server)}"


def wait_kafka_ok(server, timeout=90.0):
    """Until /readyz shows checks.kafka == "ok" (the producer reached the broker)."""
    def ok():
        code, doc = readyz(server)
        return code == 200 and isinstance(doc, dict) and (doc.get("checks") or {}).get("kafka") == "ok"
    assert poll(ok, timeout=timeout, interval=0.25), \
        f"/readyz never showed checks.kafka == 'ok' within {timeout} s: {readyz(server)!r}"


# --------------------------------------------------------------------------
# time
# --------------------------------------------------------------------------

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)


def iso_ms(ms):
    """Milliseconds since the epoch as the API writes instants (UTC, ms, Z)."""
    return fmt_utc(EPOCH + timedelta(milliseconds=ms))


def ms_of(s):
    """An API instant as exact milliseconds since the epoch."""
    return (parse_utc(s) - EPOCH) // timedelta(milliseconds=1)


def iso_at(t):
    """A wall-clock instant (seconds since the epoch, float) as the API
    writes instants, to the nearest millisecond."""
    return iso_ms(round(t * 1000))


def shift(s, seconds):
    """An API instant moved by ``seconds``, exactly (no float rounding)."""
    return iso_ms(ms_of(s) + round(seconds * 1000))


def iso_in(seconds):
    return iso_at(time.time() + seconds)


def epoch(s):
    return parse_utc(s).timestamp()


def sleep_until(t):
    left = t - time.time()
    if left > 0:
        time.sleep(left)


def percentile(values, q):
    """The nearest-rank percentile of a non-empty list."""
    v = sorted(values)
    return v[max(0, min(len(v) - 1, math.ceil(q * len(v)) - 1))]


def lateness_summary(values):
    if not values:
        return "none"
    return (f"p50 {percentile(values, 0.5):.0f} ms, p90 {percentile(values, 0.9):.0f} ms, "
            f"p99 {percentile(values, 0.99):.0f} ms, max {max(values):.0f} ms "
            f"(n={len(values)})")


# --------------------------------------------------------------------------
# the topic
# --------------------------------------------------------------------------

def due_records(reader, user):
    """The records keyed by ``user`` (reminder.due or not), in arrival order."""
    return reader.by_key(user)


def reminder_key(rec):
    """(task_id, remind_at) of a reminder.due record, or None."""
    ev = rec.json if isinstance(rec.json, dict) else {}
    data = ev.get("data") if isinstance(ev.get("data"), dict) else {}
    if ev.get("type") != "reminder.due":
        return None
    return (data.get("task_id"), data.get("remind_at"))


def ids_by_reminder(records):
    """{(task_id, remind_at): set of CloudEvent ids} over reminder.due records."""
    out = {}
    for r in records:
        k = reminder_key(r)
        if k is not None:
            out.setdefault(k, set()).add(r.json.get("id"))
    return out


def first_records(records):
    """The first record of each CloudEvent id (re-sends dropped)."""
    seen = set()
    out = []
    for r in records:
        i = (r.json or {}).get("id")
        if i in seen:
            continue
        seen.add(i)
        out.append(r)
    return out


def wait_reminders(reader, user, want, server=None, timeout=EVENT_WAIT):
    """Wait until every (task_id, remind_at) in ``want`` has a reminder.due
    record keyed by ``user``; fails naming the missing ones. Returns
    {(task_id, remind_at): [first record of each event id]}."""
    want = set(want)
    reader.wait(lambda _r: want <= set(ids_by_reminder(due_records(reader, user))),
                timeout=timeout)
    got = ids_by_reminder(due_records(reader, user))
    missing = sorted(want - set(got), key=str)
    assert not missing, (
        f"{len(missing)} of {len(want)} reminders of user {user} have no reminder.due on "
        f"{reader.topic} within {timeout} s: {missing[:10]}; on the topic: "
        f"{sorted(got, key=str)[:10]}; {diagnostics(server)}")
    out = {}
    for r in first_records(due_records(reader, user)):
        k = reminder_key(r)
        if k is not None:
            out.setdefault(k, []).append(r)
    return out


def settle(reader, seconds=2.0):
    """Read whatever else arrives within ``seconds``."""
    reader.wait(lambda _r: False, timeout=seconds)


def reminder_problems(rec, user=None, task=None, remind_at=None):
    """Problems of one record against the reminder.due contract (key,
    header, envelope, data); an empty list when it is right."""
    p = []
    if rec.header_values("content-type") != [CE_CONTENT_TYPE]:
        p.append(f"content-type headers {rec.header_values('content-type')!r}")
    if rec.json_error is not None or not isinstance(rec.json, dict):
        return p + [f"value is not a JSON object: {rec.json_error} {rec.value[:200]!r}"]
    ev = rec.json
    keys = set(ev)
    if not (ENVELOPE_KEYS <= keys <= ENVELOPE_KEYS | {"traceparent"}):
        p.append(f"envelope keys: missing {sorted(ENVELOPE_KEYS - keys)}, unexpected "
                 f"{sorted(keys - ENVELOPE_KEYS - {'traceparent'})}")
    data = ev.get("data") if isinstance(ev.get("data"), dict) else {}
    want_user = user if user is not None else data.get("user_id")
    if rec.key != (want_user or "").encode():
        p.append(f"key {rec.key!r}, expected {want_user!r}")
    if ev.get("specversion") != "1.0" or ev.get("source") != "/todo-backend":
        p.append(f"specversion/source {ev.get('specversion')!r} {ev.get('source')!r}")
    if ev.get("type") != "reminder.due":
        p.append(f"type {ev.get('type')!r}")
    if not (isinstance(ev.get("id"), str) and UUID_RE.match(ev["id"])):
        p.append(f"id {ev.get('id')!r} is not a UUID")
    if not (isinstance(ev.get("time"), str) and TS_MS_UTC_RE.match(ev["time"])):
        p.append(f"time {ev.get('time')!r}")
    if ev.get("datacontenttype") != "application/json":
        p.append(f"datacontenttype {ev.get('datacontenttype')!r}")
    if ev.get("partitionkey") != want_user:
        p.append(f"partitionkey {ev.get('partitionkey')!r}, expected {want_user!r}")
    if set(data) != DATA_KEYS:
        p.append(f"data keys {sorted(data)}, expected {sorted(DATA_KEYS)}")
        return p
    if type(data["task_id"]) is not int:
        p.append(f"data.task_id {data['task_id']!r} is not an integer")
    if ev.get("subject") != f"tasks/{data['task_id']}":
        p.append(f"subject {ev.get('subject')!r} for task {data['task_id']!r}")
    if data["user_id"] != want_user:
        p.append(f"data.user_id {data['user_id']!r}")
    if not (isinstance(data["remind_at"], str) and TS_MS_UTC_RE.match(data["remind_at"])):
        p.append(f"data.remind_at {data['remind_at']!r}")
    if not (data["due_at"] is None or (isinstance(data["due_at"], str)
                                       and TS_MS_UTC_RE.match(data["due_at"]))):
        p.append(f"data.due_at {data['due_at']!r}")
    if type(data["lateness_ms"]) is not int:
        p.append(f"data.lateness_ms {data['lateness_ms']!r} is not an integer")
    elif type(data["late"]) is not bool or data["late"] != (data["lateness_ms"] >= LATE_MS):
        p.append(f"data.late {data['late']!r} with lateness_ms {data['lateness_ms']}")
    if task is not None:
        for f, v in (("task_id", task["id"]), ("title", task["title"]), ("due_at", task["due_at"])):
            if data[f] != v:
                p.append(f"data.{f} {data[f]!r}, the task has {v!r}")
    if remind_at is not None and data["remind_at"] != remind_at:
        p.append(f"data.remind_at {data['remind_at']!r}, expected {remind_at!r}")
    return p


def check_reminder(rec, user=None, task=None, remind_at=None):
    p = reminder_problems(rec, user, task, remind_at)
    assert not p, f"reminder.due record {rec!r}:\n  " + "\n  ".join(p)
    return rec.json["data"]


def only_event(got, key, what=""):
    """The data of the one event id of reminder ``key`` in ``got`` (from
    wait_reminders); fails if it fired more than once."""
    recs = got.get(key, [])
    assert len(recs) == 1, (f"{what}: reminder {key} fired {len(recs)} times (event ids "
                            f"{[r.json['id'] for r in recs]})")
    return recs[0].json["data"]


def view(task):
    """A task's reminders as (kind, remind_at, fired_at): the service may
    write a ``before`` duration in another form (PT90M as PT1H30M)."""
    return [("at" if "at" in r else "before", r.get("remind_at"), r.get("fired_at"))
            for r in task["reminders"]]


# --------------------------------------------------------------------------
# the database
# --------------------------------------------------------------------------

def reminder_rows(db, task_id):
    """[(remind_at, fired_at or None, delivered_at or None)] of a task's rows."""
    out = []
    for line in db.lines(f"SELECT utc_text(remind_at) || '|' || coalesce(utc_text(fired_at), '')"
                         f" || '|' || coalesce(utc_text(delivered_at), '') FROM reminders"
                         f" WHERE task_id = {int(task_id)} ORDER BY remind_at"):
        a, f, d = line.split("|")
        out.append((a, f or None, d or None))
    return out


def wait_fired_in_db(db, task_id, remind_at, timeout=EVENT_WAIT, server=None):
    """Until the task's row for ``remind_at`` has fired_at; returns it."""
    def fired():
        for a, f, _d in reminder_rows(db, task_id):
            if a == remind_at and f:
                return f
        return None
    f = poll(fired, timeout=timeout, interval=0.2)
    assert f, (f"reminder {remind_at} of task {task_id} not fired within {timeout} s: rows "
               f"{reminder_rows(db, task_id)}; {diagnostics(server)}")
    return f


def sql_quote(s):
    return "'" + str(s).replace("'", "''") + "'"


def insert_task_sql(db, user, title, reminders_sql="'[]'::jsonb"):
    """INSERT a task straight into the table (not through any service's
    API); ``reminders_sql`` is an SQL expression. Returns its id."""
    out = db.psql(f"INSERT INTO tasks (user_id, title, reminders) VALUES "
                  f"({sql_quote(user)}, {sql_quote(title)}, {reminders_sql}) RETURNING id")
    ids = [line.strip() for line in out.splitlines() if line.strip().isdigit()]
    assert len(ids) == 1, f"INSERT ... RETURNING id printed {out!r}"
    return int(ids[0])


def db_ms(db, sql_interval):
    return float(db.scalar(f"SELECT extract(epoch FROM {sql_interval}) * 1000"))


# --------------------------------------------------------------------------
# module fixtures: one service with topics of its own for the tests that do
# not kill or restart anything (each test uses users of its own)
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rtopics(kafka_node):
    kafka_node.ensure_running()
    return kafka_node.fresh_topics("rem", REMINDER_PARTITIONS)


@pytest.fixture(scope="module")
def rserver(pg_cluster, kafka_node, rtopics):
    """One service for the module on its own database, publishing to the
    module's topics; it consumes nothing (EVENTS_CONSUMER=none), so the
    handler tests deliver through the Dapr routes."""
    yield from module_db_server(pg_cluster, consumer_env, EVENTS_CONSUMER="none",
                                **topic_env(kafka_node, rtopics))


@pytest.fixture(scope="module")
def rreader(kafka_node, rtopics):
    reader = kafka_node.reader(rtopics["reminders"], from_beginning=True)
    yield reader
    reader.close()


@pytest.fixture(scope="module")
def treader(kafka_node, rtopics):
    reader = kafka_node.reader(rtopics["tasks"], from_beginning=True)
    yield reader
    reader.close()


@pytest.fixture
def api(rserver, kafka_node):
    kafka_node.ensure_running()
    return TasksClient(rserver, new_user("rem"), rserver.db)


# --------------------------------------------------------------------------
# 1. 1000 reminders, two processes, one SIGKILLed midway
# --------------------------------------------------------------------------

BULK_N = 1000
BULK_USERS = 8
BULK_FIRST_S = 5.0          # the first reminder, after the creation started
BULK_SPREAD_S = 55.0        # ... and the last one this much later
BULK_KILL_AT_S = 30.0       # the SIGKILL, after the creation started
BULK_THREADS = 8


def test_thousand_reminders_two_processes_one_sigkilled(pg, start_server, kafka_broker, capsys):
    """1000 tasks of 8 users, created concurrently through two processes on
    one database and one broker (each with the built-in consumer, so
    delivery is recorded too), their reminders due 5 to 60 s later, in
    creation order (so each is set ahead of its time whatever the creation
    rate). Half are ``at`` reminders of undated tasks, half ``before``
    reminders of a due date. 30 s in, one process is SIGKILLed. Every
    reminder must reach the topic with exactly one event id, be marked fired
    and, in the end, delivered."""
    topics = kafka_broker.fresh_topics("bulk", REMINDER_PARTITIONS)
    reader = kafka_broker.reader(topics["reminders"], from_beginning=True)
    try:
        env = dict(EVENTS_CONSUMER="kafka", DB_POOL_SIZE=4)
        servers = [start_rserver(start_server, pg, kafka_broker, topics, **env) for _ in range(2)]
        for s in servers:
            wait_kafka_ok(s)
            wait_listening(s)
        users = [new_user(f"bulk{i}") for i in range(BULK_USERS)]
        clients = [[TasksClient(s, u, pg) for u in users] for s in servers]

        base = time.time()
        plan = [base + BULK_FIRST_S + i * BULK_SPREAD_S / BULK_N for i in range(BULK_N)]
        results = {}            # i -> task (the API's answer)
        errors = []
        counter = itertools.count()
        lock = threading.Lock()

        def creator():
            while True:
                with lock:
                    i = next(counter)
                if i >= BULK_N:
                    return
                c = clients[i % 2][i % BULK_USERS]
                at = iso_at(plan[i])
                if i % 4 < 2:
                    body = {"title": f"bulk {i}", "reminders": [{"at": at}]}
                else:
                    due = shift(at, 600)
                    body = {"title": f"bulk {i}", "due_at": due, "reminders": [{"before": "PT10M"}]}
                try:
                    r = c.create(body, timeout=30)
                except (AssertionError, OSError) as e:
                    errors.append(f"task {i}: {e!r}")
                    continue
                if r.status != 201:
                    errors.append(f"task {i}: {r!r}")
                    continue
                t = r.json()
                results[i] = t
                if t["reminders"][0]["remind_at"] != at:
                    errors.append(f"task {i}: remind_at {t['reminders'][0]['remind_at']}, "
                                  f"expected {at}")
                if time.time() >= plan[i]:
                    errors.append(f"task {i} was created after its reminder's time")

        threads = [threading.Thread(target=creator, daemon=True) for _ in range(BULK_THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
        created_in = time.time() - base
        print(f"\n[bulk] {len(results)} tasks created in {created_in:.1f} s "
              f"({BULK_THREADS} threads, two processes)")
        assert not errors, f"{len(errors)} creation problems: {errors[:5]}"
        assert len(results) == BULK_N

        want = {(t["id"], t["reminders"][0]["remind_at"]): t for t in results.values()}
        tasks_by_id = {t["id"]: t for t in results.values()}

        # midway: SIGKILL the process that is not the relay leader, so that
        # its committed but unsent outbox rows wait for the survivor's sweep
        sleep_until(base + BULK_KILL_AT_S)
        leaders = [metric_value(s, "todo_outbox_relay_leader") for s in servers]
        fired_by = [metric_value(s, "todo_reminders_fired_total") for s in servers]
        victim_i = 1 if leaders[0] == 1 else 0
        victim, survivor = servers[victim_i], servers[1 - victim_i]
        assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
        killed_at = time.time()
        db_fired = int(pg.scalar("SELECT count(*) FROM reminders WHERE fired_at IS NOT NULL"))
        print(f"[bulk] SIGKILLed process {victim_i} (relay leader: {leaders[victim_i]}) "
              f"{killed_at - base:.1f} s in; fired so far by the two: {fired_by}; "
              f"fired in the database: {db_fired}")

        # every reminder on the topic
        def all_there(_r):
            got = set()
            for u in users:
                got |= set(ids_by_reminder(reader.by_key(u)))
            return want.keys() <= got
        reader.wait(all_there, timeout=BULK_WAIT)
        print(f"[bulk] all on the topic {time.time() - killed_at:.1f} s after the SIGKILL"
              if all_there(None) else "[bulk] NOT all on the topic")

        recs = [r for u in users for r in reader.by_key(u)]
        ids = ids_by_reminder(recs)
        missing = sorted(set(want) - set(ids), key=str)
        twice = {k: v for k, v in ids.items() if len(v) > 1}
        unknown = sorted(set(ids) - set(want), key=str)
        resent = len(recs) - len({(r.json or {}).get("id") for r in recs})
        print(f"[bulk] {len(recs)} records for {len(want)} reminders: {len(missing)} missing, "
              f"{len(twice)} fired more than once, {resent} records re-sending an event id")

        problems = []
        if missing:
            problems.append(f"{len(missing)} reminders never on the topic (first "
                            f"{missing[:5]}); fired in the database: "
                            f"{pg.scalar('SELECT count(*) FROM reminders WHERE fired_at IS NOT NULL')}"
                            f"; {diagnostics(survivor)}")
        if twice:
            problems.append(f"{len(twice)} reminders fired more than once (distinct event ids): "
                            f"{list(twice.items())[:5]}")
        if unknown:
            problems.append(f"reminder.due for unknown reminders: {unknown[:5]}")
        shape = []
        lateness_ev = []
        for r in first_records(recs):
            k = reminder_key(r)
            t = tasks_by_id.get(k[0]) if k else None
            p = reminder_problems(r, task=t, remind_at=k[1] if k else None)
            if t is not None and r.key != t["user_id"].encode():
                p.append(f"key {r.key!r} for a task of {t['user_id']}")
            if p:
                shape.append(f"{r!r}: {p}")
            elif k in want:
                lateness_ev.append(r.json["data"]["lateness_ms"])
        if shape:
            problems.append(f"{len(shape)} records break the contract: {shape[:3]}")

        # the database: every row fired, once; lateness as the database saw it
        rows = pg.lines("SELECT task_id || '|' || utc_text(remind_at) || '|' || "
                        "coalesce(floor(extract(epoch FROM fired_at - remind_at) * 1000)::text, '')"
                        " FROM reminders")
        db_late = {}
        for line in rows:
            tid, at, late = line.split("|")
            db_late[(int(tid), at)] = float(late) if late else None
        if set(db_late) != set(want):
            problems.append(f"reminders rows differ from the reminders made: "
                            f"{len(set(want) - set(db_late))} missing, "
                            f"{len(set(db_late) - set(want))} extra")
        unfired = [k for k, v in db_late.items() if v is None]
        if unfired:
            problems.append(f"{len(unfired)} rows without fired_at: {unfired[:5]}")
        mismatch = []
        first_of = {}
        for r in first_records(recs):
            first_of.setdefault(reminder_key(r), r)
        for k, recs_k in ids.items():
            if k in db_late and db_late[k] is not None and len(recs_k) == 1:
                ev = first_of[k].json
                if abs(ev["data"]["lateness_ms"] - db_late[k]) > 1:
                    mismatch.append((k, ev["data"]["lateness_ms"], db_late[k]))
        if mismatch:
            problems.append(f"{len(mismatch)} events whose lateness_ms differs from the "
                            f"database's fired_at - remind_at: {mismatch[:5]}")
        late_n = sum(1 for x in lateness_ev if x >= LATE_MS)
        print(f"[bulk] lateness from the events: {lateness_summary(lateness_ev)}; "
              f"{late_n} late (>= {LATE_MS} ms)")
        print(f"[bulk] lateness from the database: "
              f"{lateness_summary([v for v in db_late.values() if v is not None])}")
        # The issue asks for these figures to be reported: shown even
        # without -s, so every CI log carries them.
        with capsys.disabled():
            print(f"\n[reminders] {len(want)} reminders, two processes, one SIGKILLed "
                  f"{killed_at - base:.0f} s in: {len(missing)} missing, {len(twice)} fired "
                  f"twice, {resent} records re-sending an event id; lateness (fired_at - "
                  f"remind_at) {lateness_summary(lateness_ev)}")
        samples = survivor.metrics()
        print(f"[bulk] survivor metrics: fired {metric(samples, 'todo_reminders_fired_total')}, "
              f"late {metric(samples, 'todo_reminders_late_total')}, lateness quantiles "
              f"{[metric(samples, 'todo_reminders_lateness_seconds', quantile=q) for q in QUANTILES]}"
              f" s, pending {metric(samples, 'todo_reminders_pending')}")

        # delivery recorded by the consumers (the survivor takes over the
        # victim's partitions once the group notices it is gone)
        t_del = time.monotonic()

        def undelivered():
            return int(pg.scalar("SELECT count(*) FROM reminders WHERE delivered_at IS NULL"))
        left = poll(lambda: undelivered() == 0, timeout=DELIVERY_WAIT, interval=1.0)
        print(f"[bulk] delivered_at set for all: {bool(left)} "
              f"({time.monotonic() - t_del:.1f} s after the topic check); survivor's "
              f"todo_reminders_delivered_total {metric_value(survivor, 'todo_reminders_delivered_total')}")
        if not left:
            problems.append(f"{undelivered()} reminders without delivered_at {DELIVERY_WAIT} s "
                            f"after all were on the topic; {diagnostics(survivor)}")
        assert not problems, "\n".join(problems)
        assert survivor.alive(), "the surviving process died"
    finally:
        reader.close()


# --------------------------------------------------------------------------
# 2. edits reschedule; a fired time never fires again
# --------------------------------------------------------------------------

def test_moving_a_reminder_fires_only_the_new_time(api, rserver, rreader):
    """Two tasks whose reminder is 3 s ahead; one gets a due date 6 s later
    (its ``before`` reminder moves with it), the other a new ``at``. Each
    fires once, at the new time; the old times never fire."""
    t0 = time.time()
    due_old, due_new = iso_at(t0 + 13), iso_at(t0 + 19)
    a = api.create_ok(title="moved by its due date", due_at=due_old,
                      reminders=[{"before": "PT10S"}])
    b = api.create_ok(title="moved reminder", reminders=[{"at": iso_at(t0 + 3)}])
    old_a, old_b = a["reminders"][0]["remind_at"], b["reminders"][0]["remind_at"]
    a2 = assert_json(api.patch(a["id"], {"due_at": due_new}), 200)
    new_b = iso_at(t0 + 9)
    b2 = assert_json(api.patch(b["id"], {"reminders": [{"at": new_b}]}), 200)
    assert time.time() < t0 + 3, "precondition: the edits must come before the old time"
    new_a = a2["reminders"][0]["remind_at"]
    assert old_a == shift(due_old, -10) and new_a == shift(due_new, -10), (old_a, new_a)
    assert b2["reminders"] == [{"at": new_b, "remind_at": new_b, "fired_at": None}], b2
    # the rows moved
    assert reminder_rows(api.db, a["id"]) == [(new_a, None, None)]
    assert reminder_rows(api.db, b["id"]) == [(new_b, None, None)]

    got = wait_reminders(rreader, api.user, {(a["id"], new_a), (b["id"], new_b)}, rserver)
    settle(rreader)
    got = ids_by_reminder(due_records(rreader, api.user))
    assert set(got) == {(a["id"], new_a), (b["id"], new_b)}, \
        f"reminders fired: {sorted(got)}; the old times were {old_a}, {old_b}"
    assert all(len(v) == 1 for v in got.values()), got
    for rec in first_records(due_records(rreader, api.user)):
        data = check_reminder(rec, api.user)
        print(f"\n[move] task {data['task_id']}: lateness {data['lateness_ms']} ms")
    for t, at in ((a, new_a), (b, new_b)):
        rows = reminder_rows(api.db, t["id"])
        assert len(rows) == 1 and rows[0][0] == at and rows[0][1], rows
        shown = api.get_ok(t["id"])["reminders"]
        assert shown[0]["remind_at"] == at and shown[0]["fired_at"] == rows[0][1], shown


def test_changing_the_zone_moves_a_day_reminder(api):
    """``before`` days are calendar days in the task's zone: a new zone
    moves the row. Due 2027-10-31T12:00Z, P1D before: in Berlin (the day
    after the end of summer time) 2027-10-30T11:00Z, in New York (still on
    summer time) 2027-10-30T12:00Z."""
    t = api.create_ok(title="zone", due_at="2027-10-31T12:00:00Z", timezone="Europe/Berlin",
                      reminders=[{"before": "P1D"}])
    assert t["reminders"][0]["remind_at"] == "2027-10-30T11:00:00.000Z", t
    assert reminder_rows(api.db, t["id"]) == [("2027-10-30T11:00:00.000Z", None, None)]
    t2 = assert_json(api.patch(t["id"], {"timezone": "America/New_York"}), 200)
    assert t2["reminders"][0]["remind_at"] == "2027-10-30T12:00:00.000Z", t2
    assert reminder_rows(api.db, t["id"]) == [("2027-10-30T12:00:00.000Z", None, None)]
    # an edit of something else keeps the row as it is
    assert_json(api.patch(t["id"], {"title": "zone 2", "priority": "high"}), 200)
    assert reminder_rows(api.db, t["id"]) == [("2027-10-30T12:00:00.000Z", None, None)]


def test_an_edit_keeping_a_fired_time_does_not_fire_it_again(api, rserver, rreader):
    """Fire one reminder; then rename the task, restate the same time as a
    ``before`` of a new due date, and add a second reminder: only the second
    fires, the first keeps its fired_at throughout."""
    t1 = iso_in(2)
    t = api.create_ok(title="fire once", reminders=[{"at": t1}])
    assert t["reminders"] == [{"at": t1, "remind_at": t1, "fired_at": None}], t
    got = wait_reminders(rreader, api.user, {(t["id"], t1)}, rserver)
    check_reminder(got[(t["id"], t1)][0], api.user, t, t1)
    f1 = wait_fired_in_db(api.db, t["id"], t1, server=rserver)
    shown = api.get_ok(t["id"])
    assert shown["reminders"] == [{"at": t1, "remind_at": t1, "fired_at": f1}], shown
    assert epoch(f1) >= epoch(t1), (f1, t1)

    renamed = assert_json(api.patch(t["id"], {"title": "renamed"}), 200)
    assert renamed["reminders"][0]["fired_at"] == f1, renamed
    # the same instant, now as "one hour before the due date"
    due = shift(t1, 3600)
    restated = assert_json(api.patch(t["id"], {"due_at": due,
                                               "reminders": [{"before": "PT1H"}]}), 200)
    assert view(restated) == [("before", t1, f1)], restated
    t2 = iso_in(2)
    both = assert_json(api.patch(t["id"], {"reminders": [{"before": "PT1H"}, {"at": t2}]}), 200)
    assert view(both) == [("before", t1, f1), ("at", t2, None)], both
    assert both["reminders"][1]["at"] == t2, both

    got = wait_reminders(rreader, api.user, {(t["id"], t1), (t["id"], t2)}, rserver)
    settle(rreader)
    ids = ids_by_reminder(due_records(rreader, api.user))
    assert {k: len(v) for k, v in ids.items()} == {(t["id"], t1): 1, (t["id"], t2): 1}, \
        f"expected the first time once and the new one once: {ids}"
    check_reminder(got[(t["id"], t2)][0], api.user, both, t2)
    assert got[(t["id"], t2)][0].json["data"]["title"] == "renamed"
    f2 = wait_fired_in_db(api.db, t["id"], t2, server=rserver)
    rows = reminder_rows(api.db, t["id"])
    assert rows == [(t1, f1, None), (t2, f2, None)], rows
    final = api.get_ok(t["id"])["reminders"]
    assert [r["fired_at"] for r in final] == [f1, f2], final


def test_two_reminders_with_one_time_fire_once(api, rserver, rreader):
    """``{"before": "PT10S"}`` of a due date and ``{"at": due - 10 s}`` are
    one time: one row, one event; both show the same fired_at."""
    due = iso_in(12)
    at = shift(due, -10)
    t = api.create_ok(title="twice the same", due_at=due,
                      reminders=[{"before": "PT10S"}, {"at": at}, {"at": at}])
    assert [r["remind_at"] for r in t["reminders"]] == [at, at, at], t
    assert reminder_rows(api.db, t["id"]) == [(at, None, None)]
    sentinel = api.create_ok(title="sentinel", reminders=[{"at": shift(at, 1)}])
    s_at = sentinel["reminders"][0]["remind_at"]
    wait_reminders(rreader, api.user, {(t["id"], at), (sentinel["id"], s_at)}, rserver)
    settle(rreader, 1.0)
    ids = ids_by_reminder(due_records(rreader, api.user))
    assert len(ids[(t["id"], at)]) == 1, f"one time fired {len(ids[(t['id'], at)])} times"
    f = wait_fired_in_db(api.db, t["id"], at, server=rserver)
    assert [r["fired_at"] for r in api.get_ok(t["id"])["reminders"]] == [f, f, f]


def test_a_time_already_past_fires_at_once_marked_late(api, rserver, rreader):
    """Created with a time 30 s ago, or edited to add one 20 s ago: each
    fires at once, with late=true and a lateness of at least that much."""
    past_created = iso_in(-30)
    a = api.create_ok(title="created late", reminders=[{"at": past_created}])
    b = api.create_ok(title="edited late", due_at=iso_in(3600), reminders=[{"before": "PT30M"}])
    past_edit = iso_in(-20)
    b2 = assert_json(api.patch(b["id"], {"reminders": [{"before": "PT30M"}, {"at": past_edit}]}),
                     200)
    got = wait_reminders(rreader, api.user, {(a["id"], past_created), (b["id"], past_edit)},
                         rserver)
    da = check_reminder(got[(a["id"], past_created)][0], api.user, a, past_created)
    db_ = check_reminder(got[(b["id"], past_edit)][0], api.user, b2, past_edit)
    print(f"\n[past] lateness {da['lateness_ms']} ms (30 s ago), {db_['lateness_ms']} ms (20 s ago)")
    assert da["late"] is True and da["lateness_ms"] >= 30000, da
    assert db_["late"] is True and db_["lateness_ms"] >= 20000, db_
    assert da["due_at"] is None and db_["due_at"] == b2["due_at"], (da, db_)
    # the hour-ahead one did not fire
    rows = reminder_rows(api.db, b["id"])
    assert [r[1] is None for r in rows] == [False, True], rows


# --------------------------------------------------------------------------
# 3. deleting or completing cancels; reopening brings back future times only
# --------------------------------------------------------------------------

def test_delete_and_complete_cancel_and_reopen_restores_only_future_times(api, rserver, rreader):
    t0 = time.time()
    at1, at2 = iso_at(t0 + 5), iso_at(t0 + 12)
    deleted = api.create_ok(title="deleted", reminders=[{"at": at1}])
    done = api.create_ok(title="completed", reminders=[{"at": at1}])
    reopened = api.create_ok(title="completed, reopened", reminders=[{"at": at1}, {"at": at2}])
    s1 = api.create_ok(title="sentinel 1", reminders=[{"at": iso_at(t0 + 6)}])
    assert api.delete(deleted["id"]).status == 204
    assert assert_json(api.complete(done["id"], {"completed": True}), 200)["completed"] is True
    assert assert_json(api.complete(reopened["id"], {"completed": True}), 200)["completed"] is True
    assert time.time() < t0 + 4, ("precondition: the delete and the completions must come "
                                  "well before the reminders' time (the machine is too slow)")
    # cancelled: the deleted task's rows went with it, the completed tasks'
    # unfired rows were deleted
    assert reminder_rows(api.db, deleted["id"]) == []
    assert reminder_rows(api.db, done["id"]) == []
    assert reminder_rows(api.db, reopened["id"]) == []

    # wait until the sentinel (due after at1) fired, then reopen both
    wait_reminders(rreader, api.user, {(s1["id"], s1["reminders"][0]["remind_at"])}, rserver)
    assert time.time() < t0 + 10, "precondition: reopening must come before the second time"
    assert assert_json(api.complete(done["id"], {"completed": False}), 200)["completed"] is False
    r = assert_json(api.complete(reopened["id"], {"completed": False}), 200)
    assert r["completed"] is False
    # only the time still ahead came back
    assert reminder_rows(api.db, done["id"]) == []
    assert reminder_rows(api.db, reopened["id"]) == [(at2, None, None)]
    s2 = api.create_ok(title="sentinel 2", reminders=[{"at": iso_at(t0 + 14)}])

    wait_reminders(rreader, api.user, {(reopened["id"], at2),
                                       (s2["id"], s2["reminders"][0]["remind_at"])}, rserver)
    settle(rreader)
    ids = ids_by_reminder(due_records(rreader, api.user))
    fired_tasks = sorted(k for k in ids if k[0] in (deleted["id"], done["id"], reopened["id"]))
    assert fired_tasks == [(reopened["id"], at2)], (
        f"of the cancelled reminders only the reopened task's later time may fire; fired: "
        f"{fired_tasks}")
    assert all(len(v) == 1 for v in ids.values()), ids
    assert reminder_rows(api.db, done["id"]) == []
    rows = reminder_rows(api.db, reopened["id"])
    assert len(rows) == 1 and rows[0][0] == at2 and rows[0][1], rows
    shown = api.get_ok(reopened["id"])["reminders"]
    assert [x["fired_at"] is None for x in shown] == [True, False], shown


# --------------------------------------------------------------------------
# 4. reminders due while no process ran fire once at the next start
# --------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_reminders_due_while_down_fire_once_at_the_next_start(pg, start_server, kafka_broker, sig):
    topics = kafka_broker.fresh_topics("restart", REMINDER_PARTITIONS)
    reader = kafka_broker.reader(topics["reminders"], from_beginning=True)
    try:
        s1 = start_rserver(start_server, pg, kafka_broker, topics)
        user = new_user("down")
        api = TasksClient(s1, user, pg)
        t0 = time.time()
        tasks = [api.create_ok(title=f"due while down {i}",
                               reminders=[{"at": iso_at(t0 + 5 + i * 0.1)}])
                 for i in range(4)]
        tasks.append(api.create_ok(title="before, due while down", due_at=iso_at(t0 + 63),
                                   reminders=[{"before": "PT1M"}]))
        want = {(t["id"], t["reminders"][0]["remind_at"]) for t in tasks}
        s1.stop(sig)
        unfired = pg.scalar("SELECT count(*) FROM reminders WHERE fired_at IS NULL")
        assert unfired == str(len(want)), (
            f"precondition: the process must stop before the reminders' time; "
            f"{unfired} of {len(want)} unfired ({time.time() - t0:.1f} s after the first create)")
        last = max(epoch(a) for _tid, a in want)
        sleep_until(last + 7)           # every one is now more than LATE_MS overdue

        s2 = start_rserver(start_server, pg, kafka_broker, topics)
        got = wait_reminders(reader, user, want, s2)
        problems = []
        for t in tasks:
            k = (t["id"], t["reminders"][0]["remind_at"])
            try:
                data = only_event(got, k, "after the restart")
                check_reminder(got[k][0], user, t, k[1])
                assert data["late"] is True and data["lateness_ms"] >= LATE_MS, data
            except AssertionError as e:
                problems.append(str(e))
        assert not problems, "\n".join(problems)
        lat = [got[k][0].json["data"]["lateness_ms"] for k in want]
        print(f"\n[restart {sig.name}] fired at the next start: {lateness_summary(lat)}")
        fired = {t["id"]: reminder_rows(pg, t["id"]) for t in tasks}
        assert all(r[1] for rows in fired.values() for r in rows), fired

        # another restart: nothing fires again (a sentinel made on the new
        # process proves its scheduler ran)
        s2.stop(signal.SIGTERM)
        s3 = start_rserver(start_server, pg, kafka_broker, topics)
        sentinel = TasksClient(s3, user, pg).create_ok(title="sentinel", reminders=[{"at": iso_in(1)}])
        s_key = (sentinel["id"], sentinel["reminders"][0]["remind_at"])
        wait_reminders(reader, user, {s_key}, s3)
        settle(reader)
        ids = ids_by_reminder(reader.by_key(user))
        assert set(ids) == want | {s_key}, sorted(ids)
        again = {k: v for k, v in ids.items() if len(v) > 1}
        assert not again, f"fired again after another restart: {again}"
        assert {t["id"]: reminder_rows(pg, t["id"]) for t in tasks} == fired
        recs = reader.by_key(user)
        print(f"[restart {sig.name}] {len(recs)} records, "
              f"{len(recs) - len({r.json['id'] for r in recs})} re-sending an event id")
    finally:
        reader.close()


# --------------------------------------------------------------------------
# 5. another process's write: LISTEN/NOTIFY; the polling backstop
# --------------------------------------------------------------------------

def test_a_task_inserted_by_sql_fires_through_notify(pg, start_server):
    """The polling backstop set to an hour: a task inserted straight into
    the table (its trigger notifies) must still fire. A reminder an hour
    ahead is inserted first, so the scheduler's timer is armed for it and
    only the notification can bring it forward. No Kafka: the event waits
    in the outbox."""
    s = start_rserver(start_server, pg, REMINDERS_POLL_MS=3600000)
    wait_listening(s)
    user = new_user("notify")
    far = insert_task_sql(pg, user, "an hour ahead", reminders_sql=(
        "jsonb_build_array(jsonb_build_object('at', utc_text(clock_timestamp() + interval '1 hour')))"))
    time.sleep(0.5)
    tid = insert_task_sql(pg, user, "inserted by SQL", reminders_sql=(
        "jsonb_build_array(jsonb_build_object('at', utc_text(clock_timestamp() + interval '2 s')))"))
    [(at, _f, _d)] = reminder_rows(pg, tid)
    f = wait_fired_in_db(pg, tid, at, timeout=60, server=s)
    late = db_ms(pg, f"'{f}'::timestamptz - '{at}'::timestamptz")
    print(f"\n[notify] fired {late:.0f} ms after its time")
    ev = pg.lines(f"SELECT event FROM outbox WHERE stream = 'reminders' AND key = {sql_quote(user)}")
    assert len(ev) == 1, ev
    data = json.loads(ev[0])["data"]
    assert data["task_id"] == tid and data["remind_at"] == at and data["title"] == "inserted by SQL", data
    assert data["due_at"] is None and data["user_id"] == user, data
    assert reminder_rows(pg, far)[0][1] is None
    assert poll(lambda: metric_value(s, "todo_reminders_fired_total") == 1, timeout=5), \
        diagnostics(s)


def test_the_polling_backstop_finds_rows_added_without_notify(pg, start_server):
    """REMINDERS_POLL_MS=200 and a row inserted straight into ``reminders``
    (for a task without reminders, so no trigger and no notification): the
    poll alone must find it."""
    s = start_rserver(start_server, pg, REMINDERS_POLL_MS=200)
    wait_listening(s)
    user = new_user("poll")
    tid = insert_task_sql(pg, user, "row added by hand")
    at = pg.scalar(f"INSERT INTO reminders (task_id, remind_at) VALUES ({tid}, "
                   f"date_trunc('milliseconds', clock_timestamp() + interval '1 s')) "
                   f"RETURNING utc_text(remind_at)").splitlines()[0]
    f = wait_fired_in_db(pg, tid, at, timeout=60, server=s)
    print(f"\n[poll] fired {db_ms(pg, f'{sql_quote(f)}::timestamptz - {sql_quote(at)}::timestamptz'):.0f} "
          f"ms after its time")
    ev = pg.lines(f"SELECT event FROM outbox WHERE stream = 'reminders' AND key = {sql_quote(user)}")
    assert len(ev) == 1 and json.loads(ev[0])["data"]["task_id"] == tid, ev


# --------------------------------------------------------------------------
# 6. the API
# --------------------------------------------------------------------------

def test_fired_at_appears_after_firing(api, rserver):
    at = iso_in(1.5)
    t = api.create_ok(title="shape", due_at=iso_in(3600),
                      reminders=[{"at": at}, {"before": "PT10M"}])
    assert t["reminders"][0] == {"at": at, "remind_at": at, "fired_at": None}, t
    assert t["reminders"][1]["fired_at"] is None and "before" in t["reminders"][1], t
    f = wait_fired_in_db(api.db, t["id"], at, server=rserver)
    shown = api.get_ok(t["id"])
    assert shown["reminders"][0] == {"at": at, "remind_at": at, "fired_at": f}, shown
    assert TS_MS_UTC_RE.match(f) and epoch(f) >= epoch(at), f
    assert shown["reminders"][1]["fired_at"] is None, shown
    listed = [x for x in api.list_ok() if x["id"] == t["id"]]
    assert listed and listed[0]["reminders"] == shown["reminders"], listed


def test_fired_at_is_read_only(api):
    at = "2030-01-01T00:00:00Z"
    for body in ({"title": "t", "reminders": [{"at": at, "fired_at": at}]},
                 {"title": "t", "reminders": [{"at": at, "fired_at": None}]}):
        doc = assert_validation(api.create(body), "reminders")
        assert any("fired_at" in f for f in error_fields(doc)), doc
        assert any("read-only" in e["message"] for e in doc["errors"]
                   if "fired_at" in e["field"]), doc
    doc = assert_validation(api.create({"title": "t", "fired_at": at}), "fired_at")
    t = api.create_ok(title="mine", reminders=[{"at": at}])
    bad = {"title": "u", "reminders": [{"at": at, "fired_at": at}]}
    assert_validation(api.put(t["id"], bad), "reminders")
    assert_validation(api.patch(t["id"], {"reminders": bad["reminders"]}), "reminders")
    # a task as GET returns it cannot be PUT back as is (remind_at and
    # fired_at are the server's)
    shown = api.get_ok(t["id"])
    assert_validation(api.put(t["id"], {"title": "u", "reminders": shown["reminders"]}),
                      "reminders")
    assert api.get_ok(t["id"]) == shown


def expected_before(due, tz, days, seconds):
    """``before`` = days (calendar days on the wall clock of ``tz``) plus an
    exact number of seconds, computed with zoneinfo."""
    local = parse_utc(due).astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    return fmt_utc(local_to_utc(local - timedelta(days=days), tz) - timedelta(seconds=seconds))


# (zone, due (UTC), before, expected remind_at (UTC), days, exact seconds)
DST_CASES = [
    # 09:00 on the day summer time starts: the day before, 09:00 was winter time
    ("Europe/Berlin", "2027-03-28T07:00:00.000Z", "P1D", "2027-03-27T08:00:00.000Z", 1, 0),
    # 24 hours are exact
    ("Europe/Berlin", "2027-03-28T07:00:00.000Z", "PT24H", "2027-03-27T07:00:00.000Z", 0, 86400),
    # a day on the wall clock, then two exact hours
    ("Europe/Berlin", "2027-03-28T07:00:00.000Z", "P1DT2H", "2027-03-27T06:00:00.000Z", 1, 7200),
    # a week is seven calendar days
    ("Europe/Berlin", "2027-03-31T07:00:00.000Z", "P1W", "2027-03-24T08:00:00.000Z", 7, 0),
    # the day summer time ends
    ("Europe/Berlin", "2027-10-31T08:00:00.000Z", "P1D", "2027-10-30T07:00:00.000Z", 1, 0),
    ("America/New_York", "2027-11-07T14:00:00.000Z", "P1D", "2027-11-06T13:00:00.000Z", 1, 0),
    # minutes across the skipped hour are exact
    ("Europe/Berlin", "2027-03-28T01:30:00.000Z", "PT90M", "2027-03-28T00:00:00.000Z", 0, 5400),
    # one day before 02:30 on the 29th is a wall time the night skipped
    ("Europe/Berlin", "2027-03-29T00:30:00.000Z", "P1D", "2027-03-28T01:30:00.000Z", 1, 0),
    # UTC has no DST: P1D is 24 h
    ("UTC", "2027-03-28T07:00:00.000Z", "P1D", "2027-03-27T07:00:00.000Z", 1, 0),
]


@pytest.mark.parametrize("tz,due,before,want,days,secs", DST_CASES,
                         ids=[f"{c[0]}-{c[1][:10]}-{c[2]}" for c in DST_CASES])
def test_before_days_are_calendar_days_in_the_task_zone(api, tz, due, before, want, days, secs):
    assert expected_before(due, tz, days, secs) == want, "the test's own table is inconsistent"
    t = api.create_ok(title="dst", due_at=due, timezone=tz, reminders=[{"before": before}])
    assert view(t) == [("before", want, None)], (
        f"{before} before {due} in {tz}: expected remind_at {want}, the service answered "
        f"{t['reminders']}")
    assert reminder_rows(api.db, t["id"]) == [(want, None, None)]
    assert api.get_ok(t["id"])["reminders"] == t["reminders"]


# --------------------------------------------------------------------------
# recurring tasks: the next occurrence has its own reminders
# --------------------------------------------------------------------------

def test_the_next_occurrence_fires_its_shifted_reminders(api, rserver, rreader, treader):
    """A daily task due a day ago (+30 s): its reminders were due a day ago
    and fire at once, late. Completing it (its task.completed delivered
    through the Dapr route, as the sidecar would) makes the next occurrence,
    due in 30 s, whose reminders (one ``before``, one ``at`` shifted by the
    day) fire in 10 and 15 s."""
    due = iso_at(time.time() - 86400 + 30)
    at = shift(due, -15)
    first = api.create_ok(title="daily", due_at=due, recurrence="FREQ=DAILY",
                          reminders=[{"before": "PT20S"}, {"at": at}])
    first_keys = {(first["id"], r["remind_at"]) for r in first["reminders"]}
    got = wait_reminders(rreader, api.user, first_keys, rserver)
    for k in first_keys:
        d = only_event(got, k, "first occurrence")
        assert d["late"] is True, d

    done = assert_json(api.complete(first["id"], {"completed": True}), 200)

    def completed_rec(_r):
        return [r for r in treader.by_key(api.user)
                if r.json and r.json.get("type") == "task.completed"
                and r.json["data"]["task"]["id"] == first["id"]]
    recs = treader.wait(completed_rec, timeout=EVENT_WAIT)
    assert recs, f"no task.completed of task {first['id']} on {treader.topic}; {diagnostics(rserver)}"
    assert recs[0].json["data"]["task"] == done
    deliver(rserver, recs[0].value, "SUCCESS", what="task.completed of the daily task")
    nxt = [t for t in api.list_ok({"status": "pending"}) if t["series_id"] == first["id"]
           and t["occurrence"] == 2]
    assert len(nxt) == 1, nxt
    nxt = nxt[0]
    new_due = shift(due, 86400)
    assert nxt["due_at"] == new_due, nxt
    want = [shift(new_due, -20), shift(at, 86400)]
    assert [r["remind_at"] for r in nxt["reminders"]] == want, nxt
    assert [r["fired_at"] for r in nxt["reminders"]] == [None, None], nxt
    keys = {(nxt["id"], w) for w in want}
    got = wait_reminders(rreader, api.user, keys, rserver)
    for k in keys:
        d = only_event(got, k, "next occurrence")
        check_reminder(got[k][0], api.user, nxt, k[1])
        print(f"\n[recurring] next occurrence's reminder {k[1]}: lateness {d['lateness_ms']} ms")
    # the first occurrence's reminders did not fire again
    settle(rreader, 1.0)
    ids = ids_by_reminder(due_records(rreader, api.user))
    assert all(len(v) == 1 for v in ids.values()), ids


# --------------------------------------------------------------------------
# 7. the reminder.due handler (Dapr route)
# --------------------------------------------------------------------------

def delivered(server):
    return metric_value(server, "todo_reminders_delivered_total")


def test_handler_records_delivery_once(api, rserver, rreader):
    at = iso_in(-1)
    t = api.create_ok(title="deliver me", reminders=[{"at": at}])
    got = wait_reminders(rreader, api.user, {(t["id"], at)}, rserver)
    rec = got[(t["id"], at)][0]
    assert reminder_rows(api.db, t["id"])[0][2] is None, "delivered without a consumer?"
    n0 = delivered(rserver)
    assert n0 is not None, f"no todo_reminders_delivered_total; {diagnostics(rserver)}"

    deliver(rserver, rec.value, "SUCCESS", route="reminders", what="first delivery")
    rows = reminder_rows(api.db, t["id"])
    assert len(rows) == 1 and rows[0][2], f"delivered_at not set: {rows}"
    d1 = rows[0][2]
    assert epoch(d1) >= epoch(rows[0][1]), rows
    assert poll(lambda: delivered(rserver) == n0 + 1, timeout=5), (n0, delivered(rserver))

    # the same event again, and a re-published copy with another id
    deliver(rserver, rec.value, "SUCCESS", route="reminders", what="redelivery")
    copy_ = dict(rec.json, id=str(uuid.uuid4()))
    deliver(rserver, copy_, "SUCCESS", route="reminders", what="another id, same reminder")
    time.sleep(0.3)
    assert reminder_rows(api.db, t["id"])[0][2] == d1, "delivered_at changed on a redelivery"
    assert delivered(rserver) == n0 + 1, (n0, delivered(rserver))

    # a task that is gone: nothing to record
    assert api.delete(t["id"]).status == 204
    deliver(rserver, dict(rec.json, id=str(uuid.uuid4())), "SUCCESS", route="reminders",
            what="reminder of a deleted task")
    assert delivered(rserver) == n0 + 1


def _with_data(ev, **changes):
    out = json.loads(json.dumps(ev))
    out["id"] = str(uuid.uuid4())
    for k, v in changes.items():
        if v is _DEL:
            del out["data"][k]
        else:
            out["data"][k] = v
    return out


_DEL = object()

BAD_DATA = [
    ("no-task-id", {"task_id": _DEL}),
    ("task-id-string", {"task_id": "TASK"}),
    ("task-id-fraction", {"task_id": 1.5}),
    ("task-id-null", {"task_id": None}),
    ("no-remind-at", {"remind_at": _DEL}),
    ("remind-at-a-word", {"remind_at": "yesterday"}),
    ("remind-at-a-number", {"remind_at": 1700000000000}),
    ("remind-at-a-date", {"remind_at": "2026-11-25"}),
]


@pytest.mark.parametrize("name,changes", BAD_DATA, ids=[c[0] for c in BAD_DATA])
def test_handler_drops_malformed_reminder_data(api, rserver, rreader, name, changes):
    at = iso_in(-1)
    t = api.create_ok(title=f"bad {name}", reminders=[{"at": at}])
    got = wait_reminders(rreader, api.user, {(t["id"], at)}, rserver)
    ev = got[(t["id"], at)][0].json
    if name == "task-id-string":
        changes = {"task_id": str(t["id"])}
    n0 = delivered(rserver)
    deliver(rserver, _with_data(ev, **changes), "DROP", route="reminders", what=name)
    assert reminder_rows(api.db, t["id"])[0][2] is None
    assert delivered(rserver) == n0
    # the event itself is fine
    deliver(rserver, ev, "SUCCESS", route="reminders", what=f"{name}: the original")
    assert reminder_rows(api.db, t["id"])[0][2] is not None


def test_reminder_due_on_the_tasks_route_is_dropped(api, rserver, rreader):
    at = iso_in(-1)
    t = api.create_ok(title="wrong route", reminders=[{"at": at}])
    got = wait_reminders(rreader, api.user, {(t["id"], at)}, rserver)
    deliver(rserver, got[(t["id"], at)][0].value, "DROP", route="tasks", what="tasks route")
    assert reminder_rows(api.db, t["id"])[0][2] is None


# --------------------------------------------------------------------------
# 8. metrics
# --------------------------------------------------------------------------

def test_reminder_metrics_have_their_types(rserver):
    samples = assert_metric_types(rserver, METRIC_TYPES, QUANTILES)
    assert metric(samples, "todo_reminders_listening") == 1, diagnostics(rserver)


def test_reminder_metrics_move(api, rserver, rreader):
    db = api.db
    m0 = rserver.metrics()
    db_t0 = db.scalar("SELECT utc_text(clock_timestamp())")
    on_time = [api.create_ok(title=f"metric {i}", reminders=[{"at": iso_in(1.5 + i * 0.2)}])
               for i in range(3)]
    late = api.create_ok(title="metric late", reminders=[{"at": iso_in(-8)}])
    keys = {(t["id"], t["reminders"][0]["remind_at"]) for t in on_time + [late]}
    wait_reminders(rreader, api.user, keys, rserver)
    for tid, at in keys:
        wait_fired_in_db(db, tid, at, server=rserver)

    # what fired since db_t0, as the database saw it
    rows = db.lines(f"SELECT extract(epoch FROM fired_at - remind_at) FROM reminders "
                    f"WHERE fired_at >= '{db_t0}'::timestamptz")
    lat = [float(x) for x in rows]
    n_late = sum(1 for x in lat if x * 1000 >= LATE_MS)
    assert len(lat) >= len(keys), lat

    def deltas():
        m1 = rserver.metrics()
        return {n: (metric(m1, n) or 0) - (metric(m0, n) or 0)
                for n in ("todo_reminders_fired_total", "todo_reminders_late_total",
                          "todo_reminders_lateness_seconds_count",
                          "todo_reminders_lateness_seconds_sum")}, m1
    ok = poll(lambda: deltas()[0]["todo_reminders_fired_total"] == len(lat), timeout=10)
    d, m1 = deltas()
    print(f"\n[metrics] fired {len(lat)} ({n_late} late); deltas {d}; quantiles "
          f"{[metric(m1, 'todo_reminders_lateness_seconds', quantile=q) for q in QUANTILES]}")
    assert ok, f"todo_reminders_fired_total moved by {d}, {len(lat)} fired"
    assert d["todo_reminders_late_total"] == n_late, (d, n_late, lat)
    assert d["todo_reminders_lateness_seconds_count"] == len(lat), d
    assert abs(d["todo_reminders_lateness_seconds_sum"] - sum(lat)) <= 0.002 * len(lat) + 1e-6, \
        (d, sum(lat))
    qs = [metric(m1, "todo_reminders_lateness_seconds", quantile=q) for q in QUANTILES]
    assert all(q is not None and q >= 0 for q in qs) and qs == sorted(qs), qs

    # pending: database-wide, refreshed every 10 s
    def pending_is(n):
        return metric_value(rserver, "todo_reminders_pending") == n

    def db_pending():
        return int(db.scalar("SELECT count(*) FROM reminders WHERE fired_at IS NULL"))
    p0 = db_pending()
    assert poll(lambda: pending_is(db_pending()), timeout=30, interval=0.5), \
        f"todo_reminders_pending {metric_value(rserver, 'todo_reminders_pending')}, database {p0}"
    a = api.create_ok(title="pending a", due_at=iso_in(7200),
                      reminders=[{"before": "PT1H"}, {"before": "PT30M"}])
    b = api.create_ok(title="pending b", reminders=[{"at": iso_in(3600)}, {"at": iso_in(3601)}])
    assert db_pending() == p0 + 4
    assert poll(lambda: pending_is(p0 + 4), timeout=30, interval=0.5), \
        f"todo_reminders_pending {metric_value(rserver, 'todo_reminders_pending')}, expected {p0 + 4}"
    assert api.delete(a["id"]).status == 204
    assert assert_json(api.complete(b["id"], {"completed": True}), 200)["completed"] is True
    assert db_pending() == p0
    assert poll(lambda: pending_is(p0), timeout=30, interval=0.5), \
        f"todo_reminders_pending {metric_value(rserver, 'todo_reminders_pending')}, expected {p0}"


# --------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["99", "3600001", "0", "-1", "abc", "5s"])
def test_bad_reminders_poll_ms_exits_2_with_one_line(value):
    cp = run_binary(env={"REMINDERS_POLL_MS": value}, timeout=5)
    assert cp.returncode == 2, f"REMINDERS_POLL_MS={value!r}: exit {cp.returncode}, {cp.stderr!r}"
    lines = [line for line in cp.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "REMINDERS_POLL_MS" in lines[0], lines


def test_help_lists_reminders_poll_ms():
    cp = run_binary(["--help"])
    assert cp.returncode == 0, cp
    assert "REMINDERS_POLL_MS" in cp.stdout, "--help does not list REMINDERS_POLL_MS"
