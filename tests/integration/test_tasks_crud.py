"""Tasks API: every endpoint's success answer and shape, versions and ETags,
completion, PUT/PATCH semantics, conditional requests (docs/api.md)."""

import json
import threading
import time

import pytest

from conftest import (TS_MS_UTC_RE, assert_etag, assert_json, assert_problem, assert_task,
                      assert_validation, build_request, task_row)

DUE = "2030-01-02T03:04:05.678Z"


def test_create_returns_201_full_task_location_and_etag(api):
    r = api.create({"title": "Buy milk"})
    task = assert_json(r, 201)
    assert_task(task, user=api.user, title="Buy milk", description=None, completed=False,
                completed_at=None, priority="medium", tags=[], due_at=None, timezone="UTC",
                recurrence=None, recurrence_from="due", reminders=[])
    assert r.header_count("location") == 1, r
    assert r.headers["location"] == f"/api/{api.user}/tasks/{task['id']}", r.headers
    assert_etag(r, task)
    assert task["created_at"] <= task["updated_at"]

    g = api.get(task["id"])
    assert assert_json(g, 200) == task
    assert_etag(g, task)


def test_create_with_every_field(api):
    body = {
        "title": "  Water the plants  ",
        "description": "the ones on the balcony",
        "completed": True,
        "priority": "high",
        "tags": ["Home", " errands "],
        "due_at": DUE,
        "timezone": "Europe/Berlin",
        "recurrence": "FREQ=WEEKLY;BYDAY=MO",
        "recurrence_from": "completion",
        "reminders": [{"before": "PT15M"}, {"at": "2030-01-01T12:00:00Z"}],
    }
    r = api.create(body)
    task = assert_json(r, 201)
    assert_task(task, user=api.user, title="Water the plants",
                description="the ones on the balcony", completed=True, priority="high",
                due_at=DUE, timezone="Europe/Berlin", recurrence="FREQ=WEEKLY;BYDAY=MO",
                recurrence_from="completion")
    assert sorted(task["tags"]) == ["Home", "errands"], task
    assert TS_MS_UTC_RE.match(task["completed_at"]), task
    rems = task["reminders"]
    assert len(rems) == 2, task
    assert "before" in rems[0] and rems[0]["remind_at"] == "2030-01-02T02:49:05.678Z", rems
    assert "at" in rems[1] and rems[1]["remind_at"] == "2030-01-01T12:00:00.000Z", rems
    assert_etag(r, task)
    assert api.get_ok(task["id"]) == task


def test_list_items_have_the_full_shape(api):
    a = api.create_ok(title="one", due_at=DUE, tags=["x"])
    b = api.create_ok(title="two")
    r = api.list()
    items = assert_json(r, 200)
    assert isinstance(items, list)
    assert {t["id"] for t in items} == {a["id"], b["id"]}
    for t in items:
        assert_task(t, user=api.user)
        assert t == api.get_ok(t["id"])


@pytest.mark.parametrize("due_in, due_out", [
    ("2026-11-24T10:00:00+05:30", "2026-11-24T04:30:00.000Z"),
    ("2026-11-24T20:00:00-08:00", "2026-11-25T04:00:00.000Z"),
    ("2026-11-24T10:00:00Z", "2026-11-24T10:00:00.000Z"),
    ("2026-11-24T10:00:00.123456789Z", "2026-11-24T10:00:00.123Z"),
    ("2026-11-24T10:00:00.5+01:00", "2026-11-24T09:00:00.500Z"),
    ("2028-02-29T23:59:59-00:30", "2028-03-01T00:29:59.000Z"),
    ("2030-01-01T00:00:00.9996Z", "2030-01-01T00:00:00.999Z"),     # truncated, not rounded
])
def test_due_at_time_zone_round_trip(api, due_in, due_out):
    task = api.create_ok(title="tz", due_at=due_in)
    assert task["due_at"] == due_out, task
    assert api.get_ok(task["id"])["due_at"] == due_out


@pytest.mark.parametrize("tz", ["Asia/Kolkata", "America/Argentina/Buenos_Aires", "UTC",
                                "Europe/London", "Pacific/Chatham"])
def test_valid_iana_time_zone_accepted(api, tz):
    task = api.create_ok(title="tz", timezone=tz, due_at=DUE)
    assert task["timezone"] == tz
    assert task["due_at"] == DUE   # the zone never changes the instant


@pytest.mark.parametrize("bad_id", ["0", "-1", "abc", "1.5", "1e3", "%20", "9223372036854775808",
                                    "99999999999999999999", "9223372036854775807",
                                    "1%20OR%201=1", "1;DROP%20TABLE%20tasks"])
def test_bad_or_missing_id_is_404(api, bad_id):
    api.create_ok(title="exists")
    calls = [
        ("GET", f"{api.tasks_path()}/{bad_id}", None),
        ("PUT", f"{api.tasks_path()}/{bad_id}", {"title": "x"}),
        ("PATCH", f"{api.tasks_path()}/{bad_id}", {"title": "x"}),
        ("DELETE", f"{api.tasks_path()}/{bad_id}", None),
        ("POST", f"{api.tasks_path()}/{bad_id}/complete", None),
        ("PATCH", f"{api.tasks_path()}/{bad_id}/complete", None),
    ]
    for method, path, body in calls:
        r = api.request(method, path, body) if body is not None else api.request(method, path)
        doc = assert_problem(r, 404)
        assert doc["type"] == "urn:todo-backend:problem:not-found", (method, path, doc)


# ------------------------------------------------------------------ PUT

def test_put_replaces_and_resets_absent_fields(api):
    task = api.create_ok(title="full", description="d", completed=True, priority="urgent",
                         tags=["a", "b"], due_at=DUE, timezone="Asia/Tokyo",
                         recurrence="FREQ=DAILY", recurrence_from="completion",
                         reminders=[{"before": "PT5M"}])
    r = api.put(task["id"], {"title": "replaced"})
    new = assert_json(r, 200)
    assert_task(new, user=api.user, id=task["id"], title="replaced", description=None,
                completed=False, completed_at=None, priority="medium", tags=[], due_at=None,
                timezone="UTC", recurrence=None, recurrence_from="due", reminders=[],
                created_at=task["created_at"], version=task["version"] + 1)
    assert new["updated_at"] >= task["updated_at"]
    assert_etag(r, new)
    assert api.get_ok(task["id"]) == new


def test_put_with_every_field(api):
    task = api.create_ok(title="before")
    body = {"title": "after", "description": "x", "completed": True, "priority": "low",
            "tags": ["t"], "due_at": "2031-05-06T07:08:09+02:00", "timezone": "Europe/Paris",
            "recurrence": "FREQ=MONTHLY;BYMONTHDAY=-1", "recurrence_from": "due",
            "reminders": [{"before": "P1D"}]}
    new = assert_json(api.put(task["id"], body), 200)
    assert_task(new, title="after", description="x", completed=True, priority="low",
                tags=["t"], due_at="2031-05-06T05:08:09.000Z", timezone="Europe/Paris",
                recurrence="FREQ=MONTHLY;BYMONTHDAY=-1", version=task["version"] + 1)
    assert new["completed_at"] is not None
    assert new["reminders"][0]["remind_at"] == "2031-05-05T05:08:09.000Z", new


def test_put_without_title_is_422_and_changes_nothing(api):
    task = api.create_ok(title="keep", priority="high")
    assert_validation(api.put(task["id"], {"priority": "low"}), "title")
    assert api.get_ok(task["id"]) == task


# ------------------------------------------------------------------ PATCH

def test_patch_absent_fields_unchanged(api):
    task = api.create_ok(title="t", description="d", priority="high", tags=["a"], due_at=DUE,
                         timezone="Asia/Tokyo", recurrence="FREQ=DAILY",
                         reminders=[{"before": "PT10M"}])
    r = api.patch(task["id"], {"title": "t2"})
    new = assert_json(r, 200)
    assert_task(new, title="t2", version=task["version"] + 1)
    assert_etag(r, new)
    assert new["updated_at"] >= task["updated_at"]
    for k in task:
        if k not in ("title", "version", "updated_at"):
            assert new[k] == task[k], (k, task, new)


@pytest.mark.parametrize("field, value, cleared", [
    ("description", "d", None),
    ("priority", "urgent", "medium"),
    ("tags", ["a", "b"], []),
    ("due_at", DUE, None),
    ("timezone", "Asia/Tokyo", "UTC"),
    ("recurrence", "FREQ=DAILY", None),
    ("recurrence_from", "completion", "due"),
    ("reminders", [{"before": "PT1H"}], []),
    ("completed", True, False),
])
def test_patch_null_clears_to_default(api, field, value, cleared):
    fields = {"title": "t", field: value}
    if field in ("recurrence", "reminders"):
        fields["due_at"] = DUE
    task = api.create_ok(**fields)
    r = api.patch(task["id"], {field: None})
    new = assert_json(r, 200)
    assert new[field] == cleared, new
    assert new["version"] == task["version"] + 1
    assert_etag(r, new)
    if field == "completed":
        assert new["completed_at"] is None


def test_patch_title_null_is_422_and_unchanged(api):
    task = api.create_ok(title="stays")
    assert_validation(api.patch(task["id"], {"title": None}), "title")
    assert api.get_ok(task["id"]) == task


@pytest.mark.parametrize("fields", [{"recurrence": "FREQ=DAILY"},
                                    {"reminders": [{"before": "PT1H"}]}],
                         ids=["recurrence", "before-reminder"])
def test_patch_due_at_null_when_something_needs_it_is_422(api, fields):
    """recurrence and 'before' reminders need due_at: the merged task must
    still be valid."""
    task = api.create_ok(title="needs due", due_at=DUE, **fields)
    r = api.patch(task["id"], {"due_at": None})
    doc = assert_problem(r, 422)
    assert doc["type"] == "urn:todo-backend:problem:validation-failed", doc
    assert api.get_ok(task["id"]) == task


def test_remind_at_follows_due_at(api):
    task = api.create_ok(title="r", due_at="2030-01-01T10:00:00Z",
                         reminders=[{"before": "PT1H"}, {"at": "2029-12-31T00:00:00Z"}])
    assert [r["remind_at"] for r in task["reminders"]] == ["2030-01-01T09:00:00.000Z",
                                                          "2029-12-31T00:00:00.000Z"]
    new = assert_json(api.patch(task["id"], {"due_at": "2030-02-01T10:00:00+01:00"}), 200)
    assert [r["remind_at"] for r in new["reminders"]] == ["2030-02-01T08:00:00.000Z",
                                                         "2029-12-31T00:00:00.000Z"], new


def test_patch_accepts_merge_patch_content_type(api):
    task = api.create_ok(title="t")
    r = api.patch(task["id"], {"priority": "low"}, content_type="application/merge-patch+json")
    assert assert_json(r, 200)["priority"] == "low"


def test_patch_empty_object_is_ok(api):
    task = api.create_ok(title="t", tags=["x"])
    new = assert_json(api.patch(task["id"], {}), 200)
    for k in ("title", "tags", "priority", "description", "created_at", "id"):
        assert new[k] == task[k]


def test_created_at_never_changes(api):
    task = api.create_ok(title="t")
    time.sleep(0.01)
    p = assert_json(api.patch(task["id"], {"title": "u"}), 200)
    assert p["created_at"] == task["created_at"]
    assert p["updated_at"] >= task["updated_at"]
    q = assert_json(api.put(task["id"], {"title": "v"}), 200)
    assert q["created_at"] == task["created_at"]


# ------------------------------------------------------------------ versions

def test_version_increments_on_every_change(api):
    r = api.create({"title": "v"})
    t = assert_json(r, 201)
    v = t["version"]
    steps = [
        lambda: api.patch(t["id"], {"title": "v2"}),
        lambda: api.put(t["id"], {"title": "v3", "priority": "high"}),
        lambda: api.complete(t["id"]),
        lambda: api.complete(t["id"], method="PATCH"),
        lambda: api.patch(t["id"], {"tags": ["new"]}),
    ]
    for i, step in enumerate(steps, 1):
        r = step()
        body = assert_json(r, 200)
        assert body["version"] == v + i, (i, body)
        assert_etag(r, body)
        g = api.get(t["id"])
        assert_etag(g, body)
        assert g.json() == body


# ------------------------------------------------------------------ DELETE

def test_delete_204_then_404(api):
    task = api.create_ok(title="gone")
    r = api.delete(task["id"])
    assert r.status == 204, r
    assert r.body == b""
    assert_problem(api.get(task["id"]), 404)
    assert_problem(api.delete(task["id"]), 404)
    assert_problem(api.patch(task["id"], {"title": "x"}), 404)
    assert_problem(api.put(task["id"], {"title": "x"}), 404)
    assert_problem(api.complete(task["id"]), 404)
    assert task["id"] not in [t["id"] for t in api.list_ok()]
    assert task_row(api.db, task["id"]) == ""


# ------------------------------------------------------------------ completion

def test_completed_at_set_and_cleared_via_patch(api):
    task = api.create_ok(title="c")
    done = assert_json(api.patch(task["id"], {"completed": True}), 200)
    assert done["completed"] is True and TS_MS_UTC_RE.match(done["completed_at"]), done
    assert done["completed_at"] >= task["created_at"]
    undone = assert_json(api.patch(task["id"], {"completed": False}), 200)
    assert undone["completed"] is False and undone["completed_at"] is None, undone


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("body", ["none", "empty-object"])
def test_complete_toggles(api, method, body):
    task = api.create_ok(title="toggle")
    kwargs = {} if body == "none" else {"body": {}}
    r = api.complete(task["id"], method=method, **kwargs)
    on = assert_json(r, 200)
    assert_task(on, completed=True, version=task["version"] + 1)
    assert on["completed_at"] is not None
    assert_etag(r, on)
    r = api.complete(task["id"], method=method, **kwargs)
    off = assert_json(r, 200)
    assert_task(off, completed=False, completed_at=None, version=task["version"] + 2)
    assert_etag(r, off)
    assert api.get_ok(task["id"]) == off


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_complete_explicit_true_twice_stays_true(api, method):
    task = api.create_ok(title="explicit")
    first = assert_json(api.complete(task["id"], {"completed": True}, method=method), 200)
    assert first["completed"] is True and first["completed_at"] is not None
    second = assert_json(api.complete(task["id"], {"completed": True}, method=method), 200)
    assert second["completed"] is True
    # it did not *become* true again: the completion time stays
    assert second["completed_at"] == first["completed_at"], (first, second)
    off = assert_json(api.complete(task["id"], {"completed": False}, method=method), 200)
    assert off["completed"] is False and off["completed_at"] is None
    again = assert_json(api.complete(task["id"], {"completed": False}, method=method), 200)
    assert again["completed"] is False and again["completed_at"] is None


@pytest.mark.parametrize("body", [{"completed": "yes"}, {"completed": 1}, {"completed": [True]}])
def test_complete_with_invalid_body_is_422(api, body):
    task = api.create_ok(title="c")
    assert_validation(api.complete(task["id"], body), "completed")
    assert api.get_ok(task["id"]) == task


# ------------------------------------------------------------------ conditional requests

def _ops(api, task_id):
    """(name, callable(headers) -> Response, expected success status)."""
    return [
        ("PUT", lambda h: api.put(task_id, {"title": "put"}, headers=h), 200),
        ("PATCH", lambda h: api.patch(task_id, {"title": "patched"}, headers=h), 200),
        ("POST complete", lambda h: api.complete(task_id, headers=h), 200),
        ("PATCH complete", lambda h: api.complete(task_id, method="PATCH", headers=h), 200),
        ("DELETE", lambda h: api.delete(task_id, headers=h), 204),
    ]


OP_NAMES = ["PUT", "PATCH", "POST complete", "PATCH complete", "DELETE"]


def _op(api, name, task_id):
    return next((fn, ok) for n, fn, ok in _ops(api, task_id) if n == name)


@pytest.mark.parametrize("op", OP_NAMES)
def test_if_match_current_tag_succeeds(api, op):
    task = api.create_ok(title="m")
    fn, ok = _op(api, op, task["id"])
    r = fn([("If-Match", f'"{task["version"]}"')])
    assert r.status == ok, r


@pytest.mark.parametrize("op", OP_NAMES)
def test_if_match_stale_tag_is_412_and_changes_nothing(api, op):
    task = api.create_ok(title="m")
    task = assert_json(api.patch(task["id"], {"description": "v2"}), 200)   # version 2+
    before_row = task_row(api.db, task["id"])
    fn, _ = _op(api, op, task["id"])
    for tag in (f'"{task["version"] - 1}"', '"999999"', f'"{task["version"] + 1}"',
                f'"{task["version"] - 1}", "424242"'):
        r = fn([("If-Match", tag)])
        doc = assert_problem(r, 412)
        assert doc["type"] == "urn:todo-backend:problem:precondition-failed", doc
    assert api.get_ok(task["id"]) == task
    assert task_row(api.db, task["id"]) == before_row


@pytest.mark.parametrize("op", OP_NAMES)
def test_if_match_star_succeeds(api, op):
    task = api.create_ok(title="m")
    fn, ok = _op(api, op, task["id"])
    assert fn([("If-Match", "*")]).status == ok


@pytest.mark.parametrize("op", OP_NAMES)
def test_if_match_list_containing_current_tag_succeeds(api, op):
    task = api.create_ok(title="m")
    fn, ok = _op(api, op, task["id"])
    r = fn([("If-Match", f'"777", "{task["version"]}"')])
    assert r.status == ok, r


def test_if_match_sequence_of_updates(api):
    """The ETag of each answer is the precondition of the next change."""
    task = api.create_ok(title="seq")
    etag = f'"{task["version"]}"'
    for i in range(3):
        r = api.patch(task["id"], {"description": str(i)}, headers=[("If-Match", etag)])
        assert r.status == 200, r
        etag = r.headers["etag"]
    # the first tag is stale now
    assert api.patch(task["id"], {"description": "x"},
                     headers=[("If-Match", f'"{task["version"]}"')]).status == 412


def test_if_none_match_on_get(api):
    task = api.create_ok(title="cache me")
    etag = f'"{task["version"]}"'
    r = api.get(task["id"], headers=[("If-None-Match", etag)])
    assert r.status == 304, r
    assert r.body == b""
    assert r.headers.get("etag") == etag, r
    r = api.get(task["id"], headers=[("If-None-Match", '"999999"')])
    assert r.status == 200 and r.json() == task
    new = assert_json(api.patch(task["id"], {"title": "changed"}), 200)
    r = api.get(task["id"], headers=[("If-None-Match", etag)])
    assert r.status == 200, r
    assert r.json() == new
    assert api.get(task["id"], headers=[("If-None-Match", r.headers["etag"])]).status == 304


def test_if_none_match_list_star_and_weak_tags(api):
    """RFC 9110 13.1.2: any listed tag matching (weak comparison) or "*" on an
    existing task makes a GET 304."""
    task = api.create_ok(title="cache")
    v = task["version"]
    for value in (f'"998", "{v}"', "*", f'W/"{v}"'):
        r = api.get(task["id"], headers=[("If-None-Match", value)])
        assert r.status == 304, (value, r)
        assert r.body == b""


def test_if_match_weak_tag_never_matches(api):
    """If-Match uses the strong comparison (RFC 9110 13.1.1)."""
    task = api.create_ok(title="weak")
    r = api.patch(task["id"], {"title": "x"}, headers=[("If-Match", f'W/"{task["version"]}"')])
    assert_problem(r, 412)
    assert api.get_ok(task["id"]) == task


# ------------------------------------------------------------------ methods

@pytest.mark.parametrize("where, method, allowed", [
    ("collection", "DELETE", {"GET", "POST"}),
    ("collection", "PUT", {"GET", "POST"}),
    ("collection", "PATCH", {"GET", "POST"}),
    ("item", "POST", {"GET", "PUT", "PATCH", "DELETE"}),
    ("complete", "GET", {"POST", "PATCH"}),
    ("complete", "DELETE", {"POST", "PATCH"}),
    ("complete", "PUT", {"POST", "PATCH"}),
])
def test_wrong_method_is_405_with_allow(api, where, method, allowed):
    task = api.create_ok(title="m")
    path = {"collection": api.tasks_path(), "item": api.task_path(task["id"]),
            "complete": api.task_path(task["id"]) + "/complete"}[where]
    body = {"title": "x"} if method in ("POST", "PUT", "PATCH") else None
    r = api.request(method, path, body) if body else api.request(method, path)
    doc = assert_problem(r, 405)
    assert doc["type"] == "urn:todo-backend:problem:method-not-allowed", doc
    allow = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
    assert allowed <= allow and method not in allow, r.headers
    assert api.get_ok(task["id"]) == task


def test_complete_with_a_non_json_body_is_415(api):
    task = api.create_ok(title="c")
    assert_problem(api.complete(task["id"], b"{}", content_type="text/plain"), 415)
    assert api.get_ok(task["id"]) == task


# ------------------------------------------------------------------ concurrency

def run_together(n, fn):
    """fn(i) in n threads released at once; returns the results (or exceptions)."""
    barrier = threading.Barrier(n)
    out = [None] * n

    def run(i):
        barrier.wait(timeout=10)
        try:
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001 (returned to the caller)
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return out


def test_concurrent_conditional_updates_exactly_one_wins(api):
    task = api.create_ok(title="contended")
    tag = f'"{task["version"]}"'
    rs = run_together(8, lambda i: api.patch(task["id"], {"title": f"writer {i}"},
                                             headers=[("If-Match", tag)], timeout=20))
    statuses = sorted(getattr(r, "status", repr(r)) for r in rs)
    assert statuses == [200] + [412] * 7, statuses
    winner = next(r for r in rs if r.status == 200).json()
    final = api.get_ok(task["id"])
    assert final == winner and final["version"] == task["version"] + 1


def test_concurrent_toggles_are_not_lost(api):
    task = api.create_ok(title="toggled")
    n = 10
    rs = run_together(n, lambda i: api.complete(task["id"], timeout=20))
    assert [getattr(r, "status", repr(r)) for r in rs] == [200] * n, rs
    final = api.get_ok(task["id"])
    assert final["version"] == task["version"] + n, final
    assert final["completed"] is (n % 2 == 1), final
    assert sorted(r.json()["version"] for r in rs) == list(range(task["version"] + 1,
                                                                 task["version"] + n + 1))


# ------------------------------------------------------------------ HTTP framing

def test_pipelined_requests_are_answered_in_order(api):
    """Database answers arrive asynchronously; responses must still go out in
    request order on a connection."""
    task = api.create_ok(title="existing")
    auth = list(api.auth_headers(api.user))
    reqs, expect = [], []
    for i in range(12):
        kind = ("post", "health", "get", "list")[i % 4]
        if kind == "post":
            body = json.dumps({"title": f"pipelined {i}"}).encode()
            reqs.append(build_request("POST", api.tasks_path(),
                                      auth + [("Content-Type", "application/json")], body))
        elif kind == "health":
            reqs.append(build_request("GET", "/healthz"))
        elif kind == "get":
            reqs.append(build_request("GET", api.task_path(task["id"]), auth))
        else:
            reqs.append(build_request("GET", api.tasks_path() + "?limit=1", auth))
        expect.append((kind, i))
    with api.server.connect(timeout=10) as c:
        c.send(b"".join(reqs), methods=["POST" if k == "post" else "GET" for k, _ in expect])
        rs = c.read_responses(len(reqs), timeout=20)
    for (kind, i), r in zip(expect, rs):
        if kind == "post":
            assert r.status == 201 and r.json()["title"] == f"pipelined {i}", (i, r)
        elif kind == "health":
            assert r.status == 200 and r.json() == {"status": "ok"}, (i, r)
        elif kind == "get":
            assert r.status == 200 and r.json()["id"] == task["id"], (i, r)
        else:
            assert r.status == 200 and isinstance(r.json(), list), (i, r)


def test_chunked_request_body(api):
    body = json.dumps({"title": "sent in chunks", "tags": ["c"]}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7])
                      for i in range(0, len(body), 7)) + b"0\r\n\r\n"
    r = api.request("POST", api.tasks_path(), chunks,
                    headers=[("Transfer-Encoding", "chunked")])
    task = assert_json(r, 201)
    assert task["title"] == "sent in chunks" and task["tags"] == ["c"]


def test_if_match_with_huge_version_is_412_not_500(api):
    """A tag far beyond any version is simply stale (412), never a server error."""
    task = api.create_ok(title="big tag")
    for tag in ('"9999999999"', '"999999999999999999"'):
        r = api.patch(task["id"], {"title": "x"}, headers=[("If-Match", tag)])
        assert_problem(r, 412)
    assert api.get_ok(task["id"]) == task


@pytest.mark.parametrize("body", [b"true", b"5", b'"completed"', b"null"])
def test_complete_with_scalar_json_body_is_422(api, body):
    """Valid JSON that is not an object is 422, as on the other endpoints."""
    task = api.create_ok(title="scalar")
    r = api.complete(task["id"], body)
    assert_problem(r, 422)
    assert api.get_ok(task["id"]) == task


def test_task_id_beyond_63_bits_is_404(api):
    for tid in ("9223372036854775808", "99999999999999999999", "9223372036854775807"):
        assert_problem(api.get(tid), 404)
