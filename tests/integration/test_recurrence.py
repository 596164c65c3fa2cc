"""Recurring tasks through the Dapr route (docs/events.md, "Consuming:
recurring tasks", "The next occurrence").

The service runs without Kafka (``EVENTS_CONSUMER=none``): completing a task
through the API leaves its ``task.completed`` event in the outbox table; the
test posts that exact event to ``POST /api/events/tasks`` (as the Dapr
sidecar would) and looks at the next occurrence through the API. Walking a
series means completing each new occurrence and feeding its event back.

Expected due times are computed here, independently, with zoneinfo and the
calendar rules docs/events.md states; no expectation is derived from the
service's own arithmetic.
"""

import calendar
import datetime
from datetime import timedelta

import pytest

from conftest import TasksClient, assert_task, new_user
from dapr_events import (complete_and_event, dapr_module_server, deliver, fmt_utc,
                         last_event, local_iso, occurrence, outbox_events, parse_utc,
                         raw, series, task_count, to_local)

D = datetime.datetime


@pytest.fixture(scope="module")
def rserver(pg_cluster):
    yield from dapr_module_server(pg_cluster)


@pytest.fixture
def api(rserver):
    return TasksClient(rserver, new_user("rec"), rserver.db)


def next_of(api, server, task, what=""):
    """Complete ``task``, deliver its task.completed event, and return the
    one task with the same series and occurrence + 1."""
    _done, ev = complete_and_event(api, task["id"])
    deliver(server, raw(ev), "SUCCESS", what=what or f"task.completed of {task['id']}")
    found = occurrence(api, task["series_id"], task["occurrence"] + 1)
    assert len(found) == 1, (f"{what}: expected exactly one occurrence "
                             f"{task['occurrence'] + 1} of series {task['series_id']}, "
                             f"found {found!r}")
    return found[0]


def walk(api, server, first, steps, what=""):
    """The due_at of ``steps`` occurrences after ``first``."""
    got = []
    cur = first
    for i in range(steps):
        cur = next_of(api, server, cur, what=f"{what} step {i + 1}")
        got.append(cur["due_at"])
    return got, cur


# --------------------------------------------------------------------------
# what the next occurrence is made of
# --------------------------------------------------------------------------

def test_next_occurrence_copies_the_task_and_emits_task_created(api, rserver):
    tz = "Europe/Berlin"
    due = local_iso(D(2026, 12, 1, 9, 0), tz)            # winter: no DST change in between
    at = fmt_utc(parse_utc(due) - timedelta(days=1, hours=2, minutes=30))
    first = api.create_ok(title="Water the plants", description="the big one, too",
                          priority="high", tags=["home", "Garden"], due_at=due, timezone=tz,
                          recurrence="FREQ=WEEKLY", reminders=[{"before": "PT15M"}, {"at": at}])
    assert_task(first, series_id=first["id"], occurrence=1)
    before = task_count(api.db, api.user)

    nxt = next_of(api, rserver, first, "weekly")
    assert task_count(api.db, api.user) == before + 1

    new_due = local_iso(D(2026, 12, 8, 9, 0), tz)
    assert_task(nxt, user=api.user, title=first["title"], description=first["description"],
                priority="high", tags=first["tags"], timezone=tz,
                recurrence=first["recurrence"], recurrence_from="due",
                series_id=first["id"], occurrence=2, due_at=new_due,
                completed=False, completed_at=None, version=1)
    assert nxt["id"] != first["id"]
    shift = parse_utc(new_due) - parse_utc(due)
    assert shift == timedelta(days=7)
    assert nxt["reminders"] == [
        {"before": "PT15M", "remind_at": fmt_utc(parse_utc(new_due) - timedelta(minutes=15)),
         "fired_at": None},
        {"at": fmt_utc(parse_utc(at) + shift), "remind_at": fmt_utc(parse_utc(at) + shift),
         "fired_at": None},
    ], nxt["reminders"]
    assert api.get_ok(nxt["id"]) == nxt

    # its own task.created, with the task exactly as the API returns it
    created = outbox_events(api.db, api.user, "task.created", nxt["id"])
    assert len(created) == 1, created
    ev = created[0]
    assert ev["specversion"] == "1.0" and ev["source"] == "/todo-backend", ev
    assert ev["subject"] == f"tasks/{nxt['id']}" and ev["partitionkey"] == api.user, ev
    assert ev["data"] == {"user_id": api.user, "task": nxt}, ev["data"]
    # the completed task itself is not touched by the handler
    done = api.get_ok(first["id"])
    assert done["completed"] is True and done["series_id"] == first["id"], done


def test_non_recurring_and_uncompleted_events_create_nothing(api, rserver):
    plain = api.create_ok(title="once", due_at="2026-12-01T09:00:00Z")
    _t, ev = complete_and_event(api, plain["id"])
    rec = api.create_ok(title="rec", due_at="2026-12-01T09:00:00Z", recurrence="FREQ=DAILY")
    api.complete(rec["id"], {"completed": True})
    assert api.complete(rec["id"], {"completed": False}).status == 200
    unc = last_event(api.db, api.user, "task.uncompleted", rec["id"])
    created = last_event(api.db, api.user, "task.created", rec["id"])
    assert api.patch(rec["id"], {"title": "renamed"}).status == 200
    updated = last_event(api.db, api.user, "task.updated", rec["id"])
    gone = api.create_ok(title="gone", due_at="2026-12-01T09:00:00Z", recurrence="FREQ=DAILY")
    assert api.delete(gone["id"]).status == 204
    deleted = last_event(api.db, api.user, "task.deleted", gone["id"])
    n = task_count(api.db, api.user)
    for e in (ev, unc, created, updated, deleted):
        deliver(rserver, raw(e), "SUCCESS", what=e["type"])
    assert task_count(api.db, api.user) == n
    assert occurrence(api, rec["id"], 2) == []


# --------------------------------------------------------------------------
# the due time of the next occurrences
# --------------------------------------------------------------------------

def add_months_clamped(d, n):
    y, m = divmod(d.month - 1 + n, 12)
    y += d.year
    m += 1
    return d.replace(year=y, month=m, day=min(d.day, calendar.monthrange(y, m)[1]))


def months_with_day(start, n, day):
    """Dates with that day of month, months lacking it skipped."""
    out = []
    y, m = start.year, start.month
    while len(out) < n:
        m += 1
        if m > 12:
            y, m = y + 1, 1
        if calendar.monthrange(y, m)[1] >= day:
            out.append(start.replace(year=y, month=m, day=day))
    return out


def nth_weekday(y, m, weekday, nth):
    """The nth (1..5, or -1 for the last) weekday of a month, or None."""
    days = [d for d in range(1, calendar.monthrange(y, m)[1] + 1)
            if datetime.date(y, m, d).weekday() == weekday]
    if nth < 0:
        return datetime.date(y, m, days[nth])
    return datetime.date(y, m, days[nth - 1]) if len(days) >= nth else None


def monthly_nth(start, n, weekday, nth):
    out = []
    y, m = start.year, start.month
    while len(out) < n:
        m += 1
        if m > 12:
            y, m = y + 1, 1
        d = nth_weekday(y, m, weekday, nth)
        if d is not None:
            out.append(D(d.year, d.month, d.day, start.hour, start.minute))
    return out


def yearly_clamped(start, n):
    out = []
    for k in range(1, n + 1):
        y = start.year + k
        out.append(start.replace(year=y, day=min(start.day, calendar.monthrange(y, start.month)[1])))
    return out


def every(start, n, delta):
    return [start + delta * k for k in range(1, n + 1)]


def first_friday_last(y, m):
    return nth_weekday(y, m, calendar.FRIDAY, -1)


_jan31 = D(2027, 1, 31, 9, 0)
_lastfri = first_friday_last(2026, 1)
_5tu = next(D(y, m, d.day, 10, 0) for y, m in ((2026, mm) for mm in range(1, 13))
            for d in [nth_weekday(y, m, calendar.TUESDAY, 5)] if d is not None)

# (id, timezone, rule, first local due time, expected local due times of the next ones)
CASES = [
    # month ends do not drift: Feb 28, then Mar 31 again (and the UTC offset
    # changes at the end of March)
    ("monthly-jan31", "Europe/Berlin", "FREQ=MONTHLY", _jan31,
     [add_months_clamped(_jan31, k) for k in (1, 2, 3)]),
    # BYMONTHDAY=31 skips the months without a 31st
    ("bymonthday-31", "Europe/Berlin", "FREQ=MONTHLY;BYMONTHDAY=31", _jan31,
     months_with_day(_jan31, 3, 31)),
    # 09:00 stays 09:00 across the spring-forward night (2027-03-28)
    ("daily-spring-forward", "Europe/Berlin", "FREQ=DAILY", D(2027, 3, 26, 9, 0),
     every(D(2027, 3, 26, 9, 0), 4, timedelta(days=1))),
    # ... and across the fall-back night (2026-10-25)
    ("daily-fall-back", "Europe/Berlin", "FREQ=DAILY", D(2026, 10, 23, 9, 0),
     every(D(2026, 10, 23, 9, 0), 4, timedelta(days=1))),
    # weekly across the end of DST in New York (2026-11-01)
    ("weekly-new-york", "America/New_York", "FREQ=WEEKLY", D(2026, 10, 25, 9, 0),
     every(D(2026, 10, 25, 9, 0), 3, timedelta(weeks=1))),
    # Feb 29 -> Feb 28 in common years, Feb 29 again in the next leap year
    ("yearly-feb29", "Asia/Tokyo", "FREQ=YEARLY", D(2028, 2, 29, 9, 0),
     yearly_clamped(D(2028, 2, 29, 9, 0), 4)),
    # the last Friday of every month (London: the offset changes on 2026-03-29)
    ("monthly-last-friday", "Europe/London", "FREQ=MONTHLY;BYDAY=-1FR",
     D(_lastfri.year, _lastfri.month, _lastfri.day, 17, 0),
     monthly_nth(D(_lastfri.year, _lastfri.month, _lastfri.day, 17, 0), 3, calendar.FRIDAY, -1)),
    # a fifth Tuesday: the months without one are skipped
    ("monthly-fifth-tuesday", "America/New_York", "FREQ=MONTHLY;BYDAY=5TU", _5tu,
     monthly_nth(_5tu, 3, calendar.TUESDAY, 5)),
    # every other week
    ("weekly-interval-2", "Australia/Sydney", "FREQ=WEEKLY;INTERVAL=2", D(2026, 9, 27, 8, 0),
     every(D(2026, 9, 27, 8, 0), 3, timedelta(weeks=2))),
    # a local time the spring-forward night skips moves forward by the gap;
    # the next day it is 02:30 again
    ("daily-skipped-time", "Europe/Berlin", "FREQ=DAILY", D(2027, 3, 27, 2, 30),
     every(D(2027, 3, 27, 2, 30), 2, timedelta(days=1))),
    # a local time the fall-back night repeats is taken in standard time
    ("daily-repeated-time", "Europe/Berlin", "FREQ=DAILY", D(2026, 10, 24, 2, 30),
     every(D(2026, 10, 24, 2, 30), 2, timedelta(days=1))),
]


@pytest.mark.parametrize("name,tz,rule,start,expected", CASES, ids=[c[0] for c in CASES])
def test_due_time_of_next_occurrences(api, rserver, name, tz, rule, start, expected):
    first = api.create_ok(title=name, due_at=local_iso(start, tz), timezone=tz, recurrence=rule)
    assert first["due_at"] == local_iso(start, tz), first
    got, _last = walk(api, rserver, first, len(expected), what=name)
    want = [local_iso(e, tz) for e in expected]
    assert got == want, (
        f"{name} ({rule} in {tz} from {start}):\n expected {want}\n"
        f"      got {got}\n (local: {[str(to_local(g, tz)) for g in got]})")


def test_daily_fall_back_offsets_are_what_berlin_says(api, rserver):
    """A plain statement of the DST case, without helpers: 09:00 Berlin is
    07:00Z in summer time and 08:00Z in winter time."""
    first = api.create_ok(title="dst", due_at="2026-10-24T07:00:00Z", timezone="Europe/Berlin",
                          recurrence="FREQ=DAILY")
    got, _ = walk(api, rserver, first, 2, what="fall-back")
    assert got == ["2026-10-25T08:00:00.000Z", "2026-10-26T08:00:00.000Z"], got


def test_count_ends_the_series(api, rserver):
    first = api.create_ok(title="twice", due_at="2026-12-01T09:00:00Z", recurrence="FREQ=DAILY;COUNT=2")
    second = next_of(api, rserver, first, "COUNT=2")
    assert second["due_at"] == "2026-12-02T09:00:00.000Z", second
    n = task_count(api.db, api.user)
    _t, ev = complete_and_event(api, second["id"])
    deliver(rserver, raw(ev), "SUCCESS", what="completion of the last occurrence")
    assert task_count(api.db, api.user) == n, series(api, first["id"])
    assert occurrence(api, first["id"], 3) == []
    assert outbox_events(api.db, api.user, "task.created")[-1]["data"]["task"]["id"] == second["id"]


def test_until_is_inclusive(api, rserver):
    tz = "Europe/Berlin"
    start = D(2026, 12, 1, 9, 0)
    third = local_to_until(start + timedelta(days=2), tz)
    first = api.create_ok(title="until", due_at=local_iso(start, tz), timezone=tz,
                          recurrence=f"FREQ=DAILY;UNTIL={third}")
    got, last = walk(api, rserver, first, 2, what="UNTIL")
    assert got == [local_iso(start + timedelta(days=1), tz), local_iso(start + timedelta(days=2), tz)]
    # the occurrence exactly at UNTIL was created; the one after it is not
    n = task_count(api.db, api.user)
    _t, ev = complete_and_event(api, last["id"])
    deliver(rserver, raw(ev), "SUCCESS", what="completion of the occurrence at UNTIL")
    assert task_count(api.db, api.user) == n
    assert occurrence(api, first["id"], 4) == []


def local_to_until(naive, tz):
    """RFC 5545 UTC form of a local time: YYYYMMDDTHHMMSSZ."""
    return parse_utc(local_iso(naive, tz)).strftime("%Y%m%dT%H%M%SZ")


def test_until_date_only_covers_that_day(api, rserver):
    # UNTIL=YYYYMMDD: an occurrence on that day (in UTC) is still made
    first = api.create_ok(title="until date", due_at="2026-12-01T18:00:00Z",
                          recurrence="FREQ=DAILY;UNTIL=20261202")
    second = next_of(api, rserver, first, "UNTIL date")
    assert second["due_at"] == "2026-12-02T18:00:00.000Z", second
    n = task_count(api.db, api.user)
    _t, ev = complete_and_event(api, second["id"])
    deliver(rserver, raw(ev), "SUCCESS")
    assert task_count(api.db, api.user) == n


def test_recurrence_from_completion(api, rserver):
    tz = "America/New_York"
    start = D(2026, 1, 5, 18, 0)                     # long past: completion is what counts
    first = api.create_ok(title="from completion", due_at=local_iso(start, tz), timezone=tz,
                          recurrence="FREQ=DAILY;INTERVAL=3", recurrence_from="completion")
    done, ev = complete_and_event(api, first["id"])
    deliver(rserver, raw(ev), "SUCCESS")
    found = occurrence(api, first["id"], 2)
    assert len(found) == 1, found
    day = to_local(done["completed_at"], tz).date()
    want = local_iso(D(day.year, day.month, day.day, 18, 0) + timedelta(days=3), tz)
    assert found[0]["due_at"] == want, (
        f"completed at {done['completed_at']} (local day {day}); expected {want}, "
        f"got {found[0]['due_at']}")
    assert found[0]["recurrence_from"] == "completion", found[0]


def test_changing_the_due_time_re_anchors_the_series(api, rserver):
    """Monthly from Jan 31 gives Feb 28; moving that occurrence to Feb 27
    re-anchors the series there, so the next one is Mar 27, not Mar 31."""
    tz = "Europe/Berlin"
    first = api.create_ok(title="re-anchor", due_at=local_iso(D(2027, 1, 31, 9, 0), tz),
                          timezone=tz, recurrence="FREQ=MONTHLY")
    second = next_of(api, rserver, first, "monthly")
    assert second["due_at"] == local_iso(D(2027, 2, 28, 9, 0), tz), second
    r = api.patch(second["id"], {"due_at": local_iso(D(2027, 2, 27, 18, 0), tz)})
    assert r.status == 200, r
    moved = r.json()
    assert moved["series_id"] == first["id"] and moved["occurrence"] == 2, moved
    third = next_of(api, rserver, moved, "after the move")
    assert third["due_at"] == local_iso(D(2027, 3, 27, 18, 0), tz), third
    fourth = next_of(api, rserver, third, "after the move, again")
    assert fourth["due_at"] == local_iso(D(2027, 4, 27, 18, 0), tz), fourth


def test_changing_the_zone_re_anchors_the_series(api, rserver):
    """A new zone keeps the instant and re-anchors the series at its local
    wall clock: 13:00Z is 09:00 in New York before the end of DST, so the
    week after (standard time) it is 09:00 EST = 14:00Z, not 13:00Z."""
    first = api.create_ok(title="zone", due_at="2026-10-30T13:00:00Z", timezone="UTC",
                          recurrence="FREQ=WEEKLY")
    r = api.patch(first["id"], {"timezone": "America/New_York"})
    assert r.status == 200, r
    second = next_of(api, rserver, r.json(), "zone change")
    assert second["due_at"] == "2026-11-06T14:00:00.000Z", second
    assert second["timezone"] == "America/New_York", second
