"""Helpers for the tests of the event consumers (test_consumers.py,
test_recurrence.py): posting CloudEvents to the Dapr routes, reading the
events the service wrote to its outbox, finding occurrences of a series, and
computing expected local-time instants with Python's zoneinfo.

Black-box: a real ``task.completed`` event is obtained by completing a task
through the API on a service without ``KAFKA_BROKERS``, so that the event
waits in the ``outbox`` table, where these helpers read it.
"""

import datetime
import json
from zoneinfo import ZoneInfo

from conftest import db_env, module_db_server

SUCCESS = b'{"status":"SUCCESS"}'
RETRY = b'{"status":"RETRY"}'
DROP = b'{"status":"DROP"}'
VERDICT_BODIES = {"SUCCESS": SUCCESS, "RETRY": RETRY, "DROP": DROP}

CE_JSON = "application/cloudevents+json"
UTC = datetime.timezone.utc

# Variables of the consumer side that conftest's CONFIG_VARS does not strip
# from the inherited environment: pinned here so a developer's shell cannot
# change a test.
CONSUMER_DEFAULTS = {"EVENTS_CONSUMER": None, "DAPR_PUBSUB_NAME": None,
                     "EVENTS_MAX_ATTEMPTS": None}


def consumer_env(url, **env):
    """db_env plus the consumer variables removed unless given."""
    out = dict(CONSUMER_DEFAULTS)
    out.update(env)
    return db_env(url, **out)


def dapr_module_server(pg_cluster, **env):
    """Generator for a module-scoped fixture: a ready service on its own
    database, no Kafka, ``EVENTS_CONSUMER=none`` unless given (the Dapr
    routes answer in every mode)."""
    env.setdefault("EVENTS_CONSUMER", "none")
    yield from module_db_server(pg_cluster, consumer_env, **env)


# --------------------------------------------------------------------------
# posting events
# --------------------------------------------------------------------------

def post_event(server, event, route="tasks", content_type=CE_JSON, headers=(), timeout=15.0):
    """POST one delivery to /api/events/{route}. ``event``: dict/list (sent
    as compact JSON), str or bytes (sent as is). ``content_type=None``: no
    Content-Type header. Returns the Response."""
    if isinstance(event, bytes):
        body = event
    elif isinstance(event, str):
        body = event.encode("utf-8")
    else:
        body = json.dumps(event, separators=(",", ":")).encode("utf-8")
    hdrs = []
    if content_type is not None:
        hdrs.append(("Content-Type", content_type))
    hdrs.extend(headers)
    if not body:
        hdrs.append(("Content-Length", "0"))
    return server.get(f"/api/events/{route}", headers=hdrs, method="POST", body=body,
                      timeout=timeout)


def assert_verdict(resp, verdict, what=""):
    """200, application/json and exactly ``{"status":"<verdict>"}``."""
    want = VERDICT_BODIES[verdict]
    assert resp.status == 200 and resp.body == want, (
        f"{what}: expected 200 {want!r}, got {resp.status} {resp.body!r} ({resp!r})")
    ct = resp.headers.get("content-type", "")
    assert ct.split(";")[0].strip().lower() == "application/json", f"{what}: {resp!r}"


def deliver(server, event, verdict="SUCCESS", route="tasks", what="", **kw):
    r = post_event(server, event, route=route, **kw)
    assert_verdict(r, verdict, what or f"POST /api/events/{route}")
    return r


# --------------------------------------------------------------------------
# the outbox
# --------------------------------------------------------------------------

def _q(s):
    return "'" + str(s).replace("'", "''") + "'"


def outbox_events(db, user, type_=None, task_id=None):
    """The CloudEvents (parsed, with their exact text as ``_text``) the
    service wrote to its outbox for ``user``, in ``seq`` order."""
    where = [f"key = {_q(user)}"]
    if type_ is not None:
        where.append(f"event::jsonb->>'type' = {_q(type_)}")
    if task_id is not None:
        where.append(f"event::jsonb->'data'->'task'->>'id' = {_q(int(task_id))}")
    rows = db.lines("SELECT event FROM outbox WHERE " + " AND ".join(where) + " ORDER BY seq")
    out = []
    for text in rows:
        ev = json.loads(text)
        ev["_text"] = text
        out.append(ev)
    return out


def raw(ev):
    """The exact text of an outbox event (as a producer would send it)."""
    return ev["_text"] if "_text" in ev else json.dumps(ev, separators=(",", ":"))


def clean(ev):
    """A copy of an event without the helper's ``_text``."""
    return {k: v for k, v in ev.items() if k != "_text"}


def last_event(db, user, type_, task_id):
    evs = outbox_events(db, user, type_, task_id)
    assert evs, f"no {type_} event for task {task_id} of {user} in the outbox"
    return evs[-1]


def complete_and_event(api, task_id, db=None):
    """Complete a task through the API ({"completed": true}); return (the
    task in the answer, its task.completed event from the outbox)."""
    r = api.complete(task_id, {"completed": True})
    assert r.status == 200, f"complete {task_id}: {r!r}"
    task = r.json()
    assert task["completed"] is True, task
    ev = last_event(db if db is not None else api.db, api.user, "task.completed", task_id)
    assert ev["data"]["task"] == task, (ev, task)
    return task, ev


# --------------------------------------------------------------------------
# tasks and series
# --------------------------------------------------------------------------

def all_tasks(api):
    tasks, _ = api.list_all({"limit": "100", "sort": "created_at", "order": "asc"})
    return tasks


def series(api, series_id):
    """The tasks of a series (as GET returns them), by occurrence."""
    return sorted((t for t in all_tasks(api) if t["series_id"] == series_id),
                  key=lambda t: (t["occurrence"], t["id"]))


def occurrence(api, series_id, n):
    """The tasks with that series id and occurrence number (a list: the test
    asserts there is exactly one)."""
    return [t for t in all_tasks(api) if t["series_id"] == series_id and t["occurrence"] == n]


def task_count(db, user=None):
    where = f" WHERE user_id = {_q(user)}" if user is not None else ""
    return int(db.scalar("SELECT count(*) FROM tasks" + where))


def outbox_count(db, user=None):
    where = f" WHERE key = {_q(user)}" if user is not None else ""
    return int(db.scalar("SELECT count(*) FROM outbox" + where))


# --------------------------------------------------------------------------
# time
# --------------------------------------------------------------------------

def fmt_utc(dt):
    """An aware datetime as the API writes instants (UTC, milliseconds, Z)."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_utc(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def local_to_utc(naive, tz):
    """The UTC instant of a local wall-clock time in ``tz``, placed the way
    docs/events.md says PostgreSQL places it: a time skipped by a DST change
    moves forward by the gap (the offset in force before the change), a
    repeated one is taken in standard time (the later instant)."""
    zone = ZoneInfo(tz)
    a = naive.replace(tzinfo=zone, fold=0)
    b = naive.replace(tzinfo=zone, fold=1)
    if a.utcoffset() == b.utcoffset():
        return a.astimezone(UTC)
    # round trip: a skipped time does not come back as itself
    back = a.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if back != naive:
        return a.astimezone(UTC)          # gap: the offset before the change
    # repeated: the later instant (standard time after a fall-back)
    return max(a.astimezone(UTC), b.astimezone(UTC))


def local_iso(naive, tz):
    """local_to_utc as the API's string."""
    return fmt_utc(local_to_utc(naive, tz))


def to_local(utc_string, tz):
    return parse_utc(utc_string).astimezone(ZoneInfo(tz))
