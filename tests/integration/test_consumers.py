"""The event consumers (docs/events.md, "Consuming: recurring tasks"; DESIGN
§6; reference/contracts.md §1.1-§1.6): the Dapr endpoints, the handler's
verdicts, exactly-once occurrences, the database going away, and the
built-in Kafka consumer with its dead-letter topic on the real broker.

Real events come from the service itself: a service without
``KAFKA_BROKERS`` leaves every event in its outbox table, where the tests
read the exact text and post it as the Dapr sidecar would. The recurrence
arithmetic is covered by test_recurrence.py.
"""

import copy
import json
import threading
import time
import uuid

import pytest

from conftest import (TasksClient, assert_problem, metric, new_user, poll, readyz,
                      run_binary, user_token, wait_ready)
from dapr_events import (CE_JSON, RETRY, SUCCESS, assert_verdict, clean,
                         complete_and_event, consumer_env, dapr_module_server, deliver,
                         last_event, occurrence, outbox_count, outbox_events, post_event, raw,
                         task_count)
from pg import PgDatabase

EVENT_WAIT = 90.0           # the built-in consumer on the shared machine's broker

DEFAULT_SUBSCRIPTIONS = [
    {"pubsubname": "kafka-pubsub", "topic": "tasks", "route": "/api/events/tasks",
     "deadLetterTopic": "tasks-dlq"},
    {"pubsubname": "kafka-pubsub", "topic": "reminders", "route": "/api/events/reminders"},
]


@pytest.fixture(scope="module")
def dserver(pg_cluster):
    """One service for the module: no Kafka, EVENTS_CONSUMER=none."""
    yield from dapr_module_server(pg_cluster)


@pytest.fixture
def api(dserver):
    return TasksClient(dserver, new_user("cons"), dserver.db)


def recurring(api, **fields):
    fields.setdefault("title", "recurring")
    fields.setdefault("due_at", "2026-12-01T09:00:00Z")
    fields.setdefault("recurrence", "FREQ=DAILY")
    return api.create_ok(**fields)


def completed_event(api, **fields):
    """A recurring task and the task.completed event of its completion."""
    task = recurring(api, **fields)
    _done, ev = complete_and_event(api, task["id"])
    return task, ev


def created_for(db, user, series_id, n):
    """task.created events in the outbox for occurrence n of a series."""
    return [e for e in outbox_events(db, user, "task.created")
            if e["data"]["task"]["series_id"] == series_id and e["data"]["task"]["occurrence"] == n]


def start_consumer_server(start_server, db, **env):
    s = start_server(**consumer_env(db if isinstance(db, str) else db.url, **env))
    wait_ready(s)
    return s


# --------------------------------------------------------------------------
# 1. GET /dapr/subscribe and the service token
# --------------------------------------------------------------------------

def subscriptions(server):
    r = server.get("/dapr/subscribe")
    assert r.status == 200, r
    assert r.headers.get("content-type", "").split(";")[0].strip() == "application/json", r
    return r.json()


def test_subscribe_in_dapr_mode_lists_both_topics(pg, start_server):
    s = start_consumer_server(start_server, pg, EVENTS_CONSUMER="dapr")
    assert subscriptions(s) == DEFAULT_SUBSCRIPTIONS


def test_subscribe_names_follow_the_configuration(pg, start_server):
    s = start_consumer_server(start_server, pg, EVENTS_CONSUMER="dapr", DAPR_PUBSUB_NAME="pubsub-x",
                              KAFKA_TOPIC_TASKS="t-tasks", KAFKA_TOPIC_REMINDERS="t-rem",
                              KAFKA_TOPIC_DLQ="t-dlq")
    assert subscriptions(s) == [
        {"pubsubname": "pubsub-x", "topic": "t-tasks", "route": "/api/events/tasks",
         "deadLetterTopic": "t-dlq"},
        {"pubsubname": "pubsub-x", "topic": "t-rem", "route": "/api/events/reminders"},
    ]


def test_subscribe_flags_work_like_the_variables(pg, start_server):
    s = start_server(args=("--events-consumer", "dapr", "--dapr-pubsub-name", "flagged"),
                     **consumer_env(pg.url))
    wait_ready(s)
    assert [e["pubsubname"] for e in subscriptions(s)] == ["flagged", "flagged"]


@pytest.mark.parametrize("mode", ["kafka", "none", None])
def test_subscribe_is_empty_unless_dapr(pg, start_server, mode):
    # kafka mode without KAFKA_BROKERS: nothing is consumed, nothing subscribed
    s = start_consumer_server(start_server, pg, EVENTS_CONSUMER=mode)
    assert subscriptions(s) == []
    # the POST routes answer in every mode
    api = TasksClient(s, new_user("mode"), pg)
    t = api.create_ok(title="plain")
    deliver(s, raw(last_event(pg, api.user, "task.created", t["id"])), "SUCCESS",
            what=f"EVENTS_CONSUMER={mode}")


def test_subscribe_is_empty_in_kafka_mode_with_a_broker(pg, start_server):
    s = start_consumer_server(start_server, pg, EVENTS_CONSUMER="kafka", KAFKA_BROKERS="embedded")
    assert subscriptions(s) == []


@pytest.mark.parametrize("env", [{"EVENTS_CONSUMER": "sidecar"}, {"EVENTS_CONSUMER": "kafka,dapr"},
                                 {"EVENTS_MAX_ATTEMPTS": "0"}, {"EVENTS_MAX_ATTEMPTS": "101"},
                                 {"EVENTS_MAX_ATTEMPTS": "x"}])
def test_bad_consumer_settings_stop_start_up(env):
    cp = run_binary(env={**{k: None for k in ("EVENTS_CONSUMER", "EVENTS_MAX_ATTEMPTS")}, **env},
                    timeout=5)
    name = next(iter(env))
    assert cp.returncode == 2, f"{env}: exit {cp.returncode}, stderr {cp.stderr!r}"
    lines = [line for line in cp.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and name in lines[0], f"{env}: stderr {cp.stderr!r}"


def test_app_api_token_guards_the_service_routes(pg, start_server):
    token = "dapr-app-token-0123456789"
    s = start_consumer_server(start_server, pg, EVENTS_CONSUMER="dapr", APP_API_TOKEN=token)
    api = TasksClient(s, new_user("tok"), pg)
    t = api.create_ok(title="plain")
    ev = raw(last_event(pg, api.user, "task.created", t["id"]))
    reminder = reminder_event(api.user, t)
    bearer = ("Authorization", f"Bearer {user_token(api.user)}")
    for wrong in ([], [("dapr-api-token", token + "x")], [("dapr-api-token", "")],
                  [("dapr-api-token", token[:-1])], [bearer]):
        r = s.get("/dapr/subscribe", headers=wrong)
        assert_problem(r, 401)
        for route, body in (("tasks", ev), ("reminders", reminder)):
            r = post_event(s, body, route=route, headers=wrong)
            assert_problem(r, 401)
    good = [("dapr-api-token", token)]
    r = s.get("/dapr/subscribe", headers=good)
    assert r.status == 200 and r.json() == DEFAULT_SUBSCRIPTIONS, r
    assert_verdict(post_event(s, ev, headers=good), "SUCCESS", "tasks with the token")
    assert_verdict(post_event(s, reminder, route="reminders", headers=good), "SUCCESS",
                   "reminders with the token")
    # the operational endpoints need no token
    assert s.get("/healthz").status == 200
    assert s.get("/metrics").status == 200


# --------------------------------------------------------------------------
# 2. verdicts
# --------------------------------------------------------------------------

def reminder_event(user, task):
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/todo-backend",
            "type": "reminder.due", "subject": f"tasks/{task['id']}",
            "time": "2026-11-24T10:00:00.000Z", "datacontenttype": "application/json",
            "partitionkey": user,
            "data": {"task_id": task["id"], "user_id": user, "title": task["title"],
                     "due_at": "2026-12-01T09:00:00.000Z", "remind_at": "2026-12-01T08:45:00.000Z"}}


def test_valid_events_succeed_with_the_exact_body(api, dserver):
    plain = api.create_ok(title="plain")
    created = last_event(api.db, api.user, "task.created", plain["id"])
    r = post_event(dserver, raw(created))
    assert r.status == 200 and r.body == SUCCESS, r
    assert r.headers["content-type"].split(";")[0] == "application/json", r
    _t, done = complete_and_event(api, plain["id"])
    n = task_count(api.db, api.user)
    deliver(dserver, raw(done), "SUCCESS", what="task.completed of a non-recurring task")
    deliver(dserver, reminder_event(api.user, plain), "SUCCESS", route="reminders",
            what="reminder.due")
    assert task_count(api.db, api.user) == n


def _del(path):
    def f(ev):
        obj = ev
        for k in path[:-1]:
            obj = obj[k]
        del obj[path[-1]]
        return ev
    return f


def _set(path, value):
    def f(ev):
        obj = ev
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = value
        return ev
    return f


# (name, route, mutation of the parsed event, or a function of the raw text -> bytes)
DROP_CASES = [
    ("not-json", "tasks", lambda text: b"this is not JSON"),
    ("truncated-json", "tasks", lambda text: text[: len(text) // 2].encode()),
    ("empty-body", "tasks", lambda text: b""),
    ("json-array", "tasks", lambda text: b"[]"),
    ("json-string", "tasks", lambda text: json.dumps(text).encode()),
    ("missing-specversion", "tasks", _del(["specversion"])),
    ("missing-id", "tasks", _del(["id"])),
    ("missing-source", "tasks", _del(["source"])),
    ("missing-type", "tasks", _del(["type"])),
    ("specversion-2.0", "tasks", _set(["specversion"], "2.0")),
    ("specversion-0.3", "tasks", _set(["specversion"], "0.3")),
    ("unknown-type", "tasks", _set(["type"], "task.exploded")),
    ("dapr-type", "tasks", _set(["type"], "com.dapr.event.sent")),
    ("reminder-type-on-tasks", "tasks", _set(["type"], "reminder.due")),
    ("task-type-on-reminders", "reminders", lambda ev: ev),
    ("no-data", "tasks", _del(["data"])),
    ("data-without-task", "tasks", _del(["data", "task"])),
    ("data-without-user", "tasks", _del(["data", "user_id"])),
    ("user-id-mismatch", "tasks", _set(["data", "user_id"], "somebody-else")),
    ("task-user-id-mismatch", "tasks", _set(["data", "task", "user_id"], "somebody-else")),
    ("unknown-time-zone", "tasks", _set(["data", "task", "timezone"], "Mars/Olympus_Mons")),
    # PostgreSQL would read "yesterday" as a date: only RFC 3339 may pass
    ("due-at-a-word", "tasks", _set(["data", "task", "due_at"], "yesterday")),
    ("completed-at-a-word", "tasks", _set(["data", "task", "completed_at"], "now")),
    ("occurrence-a-string", "tasks", _set(["data", "task", "occurrence"], "2")),
    ("occurrence-zero", "tasks", _set(["data", "task", "occurrence"], 0)),
    ("recurrence-not-a-rule", "tasks", _set(["data", "task", "recurrence"], "FREQ=HOURLY")),
]


def test_event_ids_need_not_be_uuids(api, dserver):
    """CloudEvents ids are any non-empty string: one that is not a UUID is
    handled (and de-duplicated) like ours."""
    task, ev = completed_event(api)
    body = copy.deepcopy(clean(ev))
    body["id"] = "evt-123/not a uuid"
    text = json.dumps(body, separators=(",", ":"))
    deliver(dserver, text, "SUCCESS", what="a non-UUID event id")
    deliver(dserver, text, "SUCCESS", what="the same non-UUID event again")
    assert len(occurrence(api, task["id"], 2)) == 1
    assert api.db.scalar("SELECT count(*) FROM inbox WHERE event_id = 'evt-123/not a uuid'") == "1"


@pytest.mark.parametrize("name,route,mutate", DROP_CASES, ids=[c[0] for c in DROP_CASES])
def test_drop_cases_answer_drop_and_change_nothing(api, dserver, name, route, mutate):
    task, ev = completed_event(api)
    text = raw(ev)
    if mutate.__code__.co_varnames[:1] == ("text",):
        body = mutate(text)
    else:
        body = json.dumps(mutate(copy.deepcopy(clean(ev))), separators=(",", ":")).encode()
    tasks_before = task_count(api.db)
    outbox_before = outbox_count(api.db)
    inbox_before = int(api.db.scalar("SELECT count(*) FROM inbox"))
    r = post_event(dserver, body, route=route)
    assert_verdict(r, "DROP", f"{name}: body {body[:300]!r}")
    assert task_count(api.db) == tasks_before, f"{name}: a task was created"
    assert outbox_count(api.db) == outbox_before, f"{name}: an event was written"
    assert int(api.db.scalar("SELECT count(*) FROM inbox")) == inbox_before, \
        f"{name}: the event id was recorded"
    # the unmutated event (same id) still has its effect: the DROP recorded nothing
    deliver(dserver, text, "SUCCESS", what=f"{name}: the original event afterwards")
    assert len(occurrence(api, task["id"], 2)) == 1


CONTENT_TYPES_OK = ["application/cloudevents+json", "application/json",
                    "application/json; charset=utf-8", "application/json;charset=UTF-8",
                    "application/cloudevents+json; charset=utf-8", "Application/JSON"]


@pytest.mark.parametrize("ct", CONTENT_TYPES_OK)
def test_accepted_content_types(api, dserver, ct):
    task, ev = completed_event(api)
    deliver(dserver, raw(ev), "SUCCESS", content_type=ct, what=f"Content-Type: {ct}")
    assert len(occurrence(api, task["id"], 2)) == 1


@pytest.mark.parametrize("ct", ["text/plain", "application/octet-stream", "application/xml",
                                "application/x-www-form-urlencoded", "application/jsonx", None])
def test_other_content_types_are_415(api, dserver, ct):
    task, ev = completed_event(api)
    for route in ("tasks", "reminders"):
        r = post_event(dserver, raw(ev), route=route, content_type=ct)
        assert_problem(r, 415)
    assert occurrence(api, task["id"], 2) == []


def test_event_routes_are_post_only(dserver):
    for path in ("/api/events/tasks", "/api/events/reminders"):
        r = dserver.get(path)
        assert r.status in (404, 405), r
        if r.status == 405:
            assert "POST" in r.headers.get("allow", ""), r
    r = dserver.get("/dapr/subscribe", method="POST", body=b"{}",
                    headers=[("Content-Type", "application/json")])
    assert r.status == 405, r


# --------------------------------------------------------------------------
# 3. bulk deliveries
# --------------------------------------------------------------------------

def bulk(entries, topic="tasks"):
    """A Dapr bulk delivery (contracts §1.6)."""
    return {"id": str(uuid.uuid4()), "type": "com.dapr.event.sent.bulk", "topic": topic,
            "pubsubname": "kafka-pubsub", "metadata": {},
            "entries": [{"entryId": eid, "event": ev, "contentType": CE_JSON, "metadata": {}}
                        for eid, ev in entries]}


def test_bulk_answers_one_status_per_entry_in_order(api, dserver):
    plain = api.create_ok(title="plain")
    good = clean(last_event(api.db, api.user, "task.created", plain["id"]))
    task, rec = completed_event(api)
    rec = clean(rec)
    no_type = copy.deepcopy(good)
    del no_type["type"]
    wrong_user = copy.deepcopy(rec)
    wrong_user["data"]["user_id"] = "intruder"
    reminder = copy.deepcopy(good)
    reminder["type"] = "reminder.due"
    entries = [("e1", good), ("e2", "eyJzcGVjdmVyc2lvbiI6IjEuMCJ9"), ("e3", no_type),
               ("e4", rec), ("e5", wrong_user), ("e6", reminder), ("e7", good)]
    n = task_count(api.db, api.user)
    r = post_event(dserver, bulk(entries), content_type="application/json")
    assert r.status == 200, r
    assert r.headers["content-type"].split(";")[0] == "application/json", r
    assert r.json() == {"statuses": [
        {"entryId": "e1", "status": "SUCCESS"}, {"entryId": "e2", "status": "DROP"},
        {"entryId": "e3", "status": "DROP"}, {"entryId": "e4", "status": "SUCCESS"},
        {"entryId": "e5", "status": "DROP"}, {"entryId": "e6", "status": "DROP"},
        {"entryId": "e7", "status": "SUCCESS"}]}, r.body
    assert task_count(api.db, api.user) == n + 1
    assert len(occurrence(api, task["id"], 2)) == 1


def test_bulk_on_the_reminders_route(api, dserver):
    plain = api.create_ok(title="plain")
    task_ev = clean(last_event(api.db, api.user, "task.created", plain["id"]))
    r = post_event(dserver, bulk([("r1", reminder_event(api.user, plain)), ("r2", task_ev)],
                                 topic="reminders"), route="reminders",
                   content_type="application/json")
    assert r.status == 200, r
    assert r.json() == {"statuses": [{"entryId": "r1", "status": "SUCCESS"},
                                     {"entryId": "r2", "status": "DROP"}]}, r.body


def test_empty_bulk(dserver):
    r = post_event(dserver, bulk([]), content_type="application/json")
    assert r.status == 200 and r.json() == {"statuses": []}, r


# --------------------------------------------------------------------------
# 5. exactly once
# --------------------------------------------------------------------------

def concurrently(fns):
    results = [None] * len(fns)
    barrier = threading.Barrier(len(fns))

    def run(i):
        barrier.wait()
        try:
            results[i] = fns[i]()
        except Exception as e:  # noqa: BLE001 - reported by the caller
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def assert_one_occurrence(api, task):
    occ = occurrence(api, task["id"], 2)
    assert len(occ) == 1, f"expected one occurrence 2 of series {task['id']}, got {occ!r}"
    created = created_for(api.db, api.user, task["id"], 2)
    assert len(created) == 1, f"expected one task.created for it, got {len(created)}"
    assert occurrence(api, task["id"], 3) == []
    return occ[0]


def test_same_event_three_times_at_once_makes_one_occurrence(api, dserver):
    task, ev = completed_event(api)
    text = raw(ev)
    n = task_count(api.db, api.user)
    results = concurrently([lambda: post_event(dserver, text) for _ in range(3)])
    for r in results:
        assert not isinstance(r, Exception), results
        assert_verdict(r, "SUCCESS", "concurrent delivery")
    assert task_count(api.db, api.user) == n + 1
    assert_one_occurrence(api, task)
    # a later redelivery does nothing either
    deliver(dserver, text, "SUCCESS", what="redelivery")
    assert task_count(api.db, api.user) == n + 1


def test_complete_uncomplete_complete_makes_one_occurrence(api, dserver):
    task = recurring(api)
    _t, first = complete_and_event(api, task["id"])
    assert api.complete(task["id"], {"completed": False}).status == 200
    _t, second = complete_and_event(api, task["id"])
    assert first["id"] != second["id"]
    n = task_count(api.db, api.user)
    deliver(dserver, raw(first), "SUCCESS", what="first completion")
    deliver(dserver, raw(second), "SUCCESS", what="second completion")
    assert task_count(api.db, api.user) == n + 1
    assert_one_occurrence(api, task)


def test_two_completions_delivered_at_once_make_one_occurrence(api, dserver):
    task = recurring(api)
    _t, first = complete_and_event(api, task["id"])
    assert api.complete(task["id"], {"completed": False}).status == 200
    _t, second = complete_and_event(api, task["id"])
    n = task_count(api.db, api.user)
    results = concurrently([lambda e=e: post_event(dserver, raw(e))
                            for e in (first, second, first, second)])
    for r in results:
        assert not isinstance(r, Exception), results
        assert_verdict(r, "SUCCESS", "concurrent deliveries of two completions")
    assert task_count(api.db, api.user) == n + 1
    assert_one_occurrence(api, task)


def test_bulk_with_the_same_event_twice_makes_one_occurrence(api, dserver):
    task, ev = completed_event(api)
    n = task_count(api.db, api.user)
    r = post_event(dserver, bulk([("a", clean(ev)), ("b", clean(ev))]),
                   content_type="application/json")
    assert r.status == 200 and r.json() == {"statuses": [{"entryId": "a", "status": "SUCCESS"},
                                                         {"entryId": "b", "status": "SUCCESS"}]}, r
    assert task_count(api.db, api.user) == n + 1
    assert_one_occurrence(api, task)


def test_replay_after_the_inbox_entry_expired_makes_nothing(api, dserver):
    task, ev = completed_event(api)
    deliver(dserver, raw(ev), "SUCCESS")
    nxt = assert_one_occurrence(api, task)
    # what the week-long retention would do
    api.db.psql(f"DELETE FROM inbox WHERE event_id = '{ev['id']}'")
    deliver(dserver, raw(ev), "SUCCESS", what="replay after expiry")
    assert assert_one_occurrence(api, task) == nxt


def test_occurrence_of_another_users_event_stays_with_that_user(api, dserver):
    """The new task belongs to the event's user, and nobody else sees it."""
    task, ev = completed_event(api)
    deliver(dserver, raw(ev), "SUCCESS")
    nxt = assert_one_occurrence(api, task)
    assert nxt["user_id"] == api.user
    other = api.for_user(new_user("other"))
    assert other.list_ok() == []
    assert other.get(nxt["id"]).status == 404


# --------------------------------------------------------------------------
# 6. database down -> RETRY
# --------------------------------------------------------------------------

def test_database_down_is_retry_then_success(dedicated_pg, start_server):
    cluster = dedicated_pg()
    db = PgDatabase(cluster, "todo")
    s = start_consumer_server(start_server, cluster.url, EVENTS_CONSUMER="none",
                              DB_QUEUE_TIMEOUT_MS=500, DB_CONNECT_TIMEOUT_MS=1000)
    api = TasksClient(s, new_user("down"), db)
    task, ev = completed_event(api)
    plain = api.create_ok(title="plain")
    plain_ev = raw(last_event(db, api.user, "task.created", plain["id"]))
    text = raw(ev)

    cluster.stop("fast")
    try:
        assert poll(lambda: readyz(s)[0] == 503, timeout=10, interval=0.1), readyz(s)
        t0 = time.monotonic()
        r = post_event(s, text, timeout=20)
        took = time.monotonic() - t0
        assert_verdict(r, "RETRY", "recurring task.completed while the database is down")
        assert took < 8.0, f"RETRY after {took:.1f} s"
        # malformed events are still DROP: their verdict needs no database
        assert_verdict(post_event(s, b"not json"), "DROP", "not JSON while down")
        # events with nothing to do need no database either
        r = post_event(s, plain_ev, timeout=20)
        assert r.status == 200 and r.body in (SUCCESS, RETRY), r
        # bulk: the entry that needs the database is RETRY, the others keep theirs
        r = post_event(s, bulk([("x", clean(ev)), ("y", "cmF3")]), content_type="application/json",
                       timeout=20)
        assert r.status == 200 and r.json() == {"statuses": [
            {"entryId": "x", "status": "RETRY"}, {"entryId": "y", "status": "DROP"}]}, r
    finally:
        cluster.start()
    wait_ready(s, timeout=30)
    last = []

    def success():
        r = post_event(s, text, timeout=20)
        last[:] = [r]
        return r.status == 200 and r.body == SUCCESS

    assert poll(success, timeout=30, interval=0.5), f"no SUCCESS after the restart: {last!r}"
    assert_verdict(last[0], "SUCCESS")
    occ = occurrence(api, task["id"], 2)
    assert len(occ) == 1, occ
    assert occ[0]["due_at"] == "2026-12-02T09:00:00.000Z", occ
    assert s.alive()


# --------------------------------------------------------------------------
# 7. the built-in Kafka consumer on the real broker
# --------------------------------------------------------------------------

def consumer_server(start_server, db, node, topics, **env):
    """A service with the built-in consumer on the session broker and the
    test's topics; skips the test when the binary has no built-in consumer."""
    s = start_consumer_server(start_server, db, EVENTS_CONSUMER="kafka",
                              KAFKA_BROKERS=node.bootstrap, KAFKA_TOPIC_TASKS=topics["tasks"],
                              KAFKA_TOPIC_REMINDERS=topics["reminders"],
                              KAFKA_TOPIC_DLQ=topics["dlq"], **env)
    names = {n for n, _l, _v in s.metrics()}
    if "todo_consumer_records_total" not in names:
        pytest.skip(f"the binary ({s.args[0]}) has no built-in Kafka consumer yet: with "
                    f"EVENTS_CONSUMER=kafka and KAFKA_BROKERS set, /metrics has no "
                    f"todo_consumer_records_total")
    return s


def consumer_diagnostics(s):
    try:
        samples = s.metrics()
        vals = {n: metric(samples, n) for n in ("todo_consumer_records_total",
                                                "todo_consumer_retries_total",
                                                "todo_consumer_dead_lettered_total",
                                                "todo_consumer_lag", "todo_events_delivered_total",
                                                "todo_outbox_backlog")}
        logs = [line for line in s.logs() if '"msg":"request"' not in line]
        return f"metrics {vals}; readyz {readyz(s)}; log tail:\n" + "\n".join(logs[-20:])
    except (OSError, AssertionError, ValueError) as e:
        return f"(diagnostics failed: {e!r})"


def wait_occurrence(api, task, n=2, server=None, timeout=EVENT_WAIT):
    found = poll(lambda: occurrence(api, task["id"], n), timeout=timeout, interval=0.25)
    assert found, (f"occurrence {n} of series {task['id']} did not appear within {timeout} s; "
                   f"{consumer_diagnostics(server) if server else ''}")
    assert len(found) == 1, found
    return found[0]


def task_created_on_topic(reader, user, task_id, timeout=EVENT_WAIT):
    def pick(_recs):
        return [r for r in reader.by_key(user)
                if r.json and r.json.get("type") == "task.created"
                and r.json["data"]["task"]["id"] == task_id]
    got = reader.wait(pick, timeout=timeout)
    assert got, (f"no task.created for task {task_id} on {reader.topic} within {timeout} s; "
                 f"records of {user}: {reader.by_key(user)!r}")
    return got[0]


def test_builtin_consumer_creates_the_next_occurrence(pg, start_server, kafka_broker):
    topics = kafka_broker.fresh_topics("cons")
    reader = kafka_broker.reader(topics["tasks"], from_beginning=True)
    try:
        s = consumer_server(start_server, pg, kafka_broker, topics)
        api = TasksClient(s, new_user("kc"), pg)
        task = recurring(api, title="builtin", due_at="2026-12-01T09:00:00Z")
        assert api.complete(task["id"], {"completed": True}).status == 200
        nxt = wait_occurrence(api, task, server=s)
        assert nxt["due_at"] == "2026-12-02T09:00:00.000Z", nxt
        assert nxt["title"] == "builtin" and nxt["series_id"] == task["id"], nxt
        rec = task_created_on_topic(reader, api.user, nxt["id"])
        assert rec.json["data"]["task"] == api.get_ok(nxt["id"]), rec
        assert rec.header_values("content-type") == [b"application/cloudevents+json"], rec
        # the task.completed was handled once: no second occurrence comes
        time.sleep(2)
        assert len(occurrence(api, task["id"], 2)) == 1
        assert occurrence(api, task["id"], 3) == []
    finally:
        reader.close()


def test_builtin_consumer_dead_letters_poison_and_moves_on(pg, start_server, kafka_broker):
    topics = kafka_broker.fresh_topics("poison")
    user = new_user("poison")
    poison = b"\x00\xffthis is not a CloudEvent"
    headers = [("content-type", b"application/cloudevents+json"), ("x-test", b"kept")]
    part, off = kafka_broker.produce(topics["tasks"], poison, key=user.encode(), headers=headers)
    dlq = kafka_broker.reader(topics["dlq"], from_beginning=True)
    tasks = kafka_broker.reader(topics["tasks"], from_beginning=True)
    try:
        s = consumer_server(start_server, pg, kafka_broker, topics)
        api = TasksClient(s, user, pg)
        # a valid event after the poison, on the same (only) partition
        task = recurring(api, title="after the poison")
        assert api.complete(task["id"], {"completed": True}).status == 200

        got = dlq.wait(lambda recs: [r for r in recs if r.key == user.encode()], timeout=EVENT_WAIT)
        assert got, f"nothing on {topics['dlq']} within {EVENT_WAIT} s; {consumer_diagnostics(s)}"
        assert len(got) == 1, got
        d = got[0]
        assert d.value == poison, d
        assert d.key == user.encode(), d
        for k, v in headers:
            assert d.header_values(k) == [v], f"original header {k} not kept: {d.headers!r}"
        assert len(d.header_values("dlq-error")) == 1 and d.header_values("dlq-error")[0], d
        assert d.header_values("dlq-attempts") == [b"1"], d         # DROP: no retry
        assert d.header_values("dlq-original-topic") == [topics["tasks"].encode()], d
        assert d.header_values("dlq-original-partition") == [str(part).encode()], d
        assert d.header_values("dlq-original-offset") == [str(off).encode()], d

        nxt = wait_occurrence(api, task, server=s)
        task_created_on_topic(tasks, user, nxt["id"])
        # exactly one dead letter for it, even after a while
        time.sleep(2)
        dlq.fetch(timeout=1)
        assert len([r for r in dlq.records if r.key == user.encode()]) == 1, dlq.records
    finally:
        dlq.close()
        tasks.close()


def test_builtin_consumer_dead_letters_after_max_attempts_then_replay_works(
        dedicated_pg, start_server, kafka_broker):
    """RETRY (database down) is retried until EVENTS_MAX_ATTEMPTS handler
    calls failed, then dead-lettered with dlq-attempts = that number; its
    value produced to the tasks topic again is handled once the database is
    back (docs/events.md, "Dead letters")."""
    cluster = dedicated_pg()
    db = PgDatabase(cluster, "todo")
    # the event: from a service without Kafka, so that nothing consumes it yet
    s0 = start_consumer_server(start_server, cluster.url, EVENTS_CONSUMER="none")
    api0 = TasksClient(s0, new_user("retry"), db)
    task, ev = completed_event(api0)
    s0.stop()
    # the next service would publish what waits in the outbox (and then
    # consume it at once): this test delivers the event itself
    db.psql("DELETE FROM outbox")

    topics = kafka_broker.fresh_topics("retry")
    dlq = kafka_broker.reader(topics["dlq"], from_beginning=True)
    try:
        s = consumer_server(start_server, cluster.url, kafka_broker, topics,
                            EVENTS_MAX_ATTEMPTS=3, DB_QUEUE_TIMEOUT_MS=500,
                            DB_CONNECT_TIMEOUT_MS=1000)
        api = TasksClient(s, api0.user, db)
        cluster.stop("fast")
        try:
            part, off = kafka_broker.produce(topics["tasks"], raw(ev).encode(),
                                             key=api.user.encode())
            got = dlq.wait(lambda recs: [r for r in recs if r.key == api.user.encode()],
                           timeout=EVENT_WAIT)
            assert got, f"nothing dead-lettered within {EVENT_WAIT} s; {consumer_diagnostics(s)}"
            d = got[0]
            assert d.value == raw(ev).encode(), d
            assert d.header_values("dlq-attempts") == [b"3"], d
            assert d.header_values("dlq-original-offset") == [str(off).encode()], d
            assert d.header_values("dlq-original-partition") == [str(part).encode()], d
            assert d.header_values("dlq-error") and d.header_values("dlq-error")[0], d
        finally:
            cluster.start()
        wait_ready(s, timeout=30)
        assert occurrence(api, task["id"], 2) == []
        kafka_broker.produce(topics["tasks"], d.value, key=d.key)        # the replay
        nxt = wait_occurrence(api, task, server=s)
        assert nxt["due_at"] == "2026-12-02T09:00:00.000Z", nxt
    finally:
        dlq.close()
