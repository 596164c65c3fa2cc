"""Tasks API input: field rules (422 with an errors entry per field), aliases,
server-owned and unknown fields, malformed bodies (400) and media types (415)."""

import json

import pytest

from conftest import assert_json, assert_problem, assert_task, assert_validation, error_fields

DUE = "2030-06-01T09:00:00.000Z"
DUE_Z = "2030-06-01T09:00:00Z"


def count_tasks(api):
    """Rows of this test's user, straight from PostgreSQL."""
    return int(api.db.scalar(f"SELECT count(*) FROM tasks WHERE user_id = '{api.user}'"))


# ------------------------------------------------------------------ one bad field

INVALID = [
    # (id, body, field named in errors)
    ("title-missing", {"description": "no title"}, "title"),
    ("title-empty", {"title": ""}, "title"),
    ("title-blank", {"title": "   \t  "}, "title"),
    ("title-201", {"title": "x" * 201}, "title"),
    ("title-201-after-trim-no", {"title": " " + "é" * 201 + " "}, "title"),
    ("title-number", {"title": 123}, "title"),
    ("title-null", {"title": None}, "title"),
    ("title-array", {"title": ["a"]}, "title"),
    ("description-10001", {"title": "t", "description": "d" * 10001}, "description"),
    ("description-number", {"title": "t", "description": 5}, "description"),
    ("completed-string", {"title": "t", "completed": "yes"}, "completed"),
    ("completed-number", {"title": "t", "completed": 1}, "completed"),
    ("priority-unknown", {"title": "t", "priority": "critical"}, "priority"),
    ("priority-number", {"title": "t", "priority": 3}, "priority"),
    ("tags-string", {"title": "t", "tags": "work"}, "tags"),
    ("tags-21", {"title": "t", "tags": [f"tag{i}" for i in range(21)]}, "tags"),
    ("tags-empty-item", {"title": "t", "tags": ["ok", ""]}, "tags"),
    ("tags-blank-item", {"title": "t", "tags": ["   "]}, "tags"),
    ("tags-51", {"title": "t", "tags": ["x" * 51]}, "tags"),
    ("tags-number-item", {"title": "t", "tags": [1]}, "tags"),
    ("tags-null-item", {"title": "t", "tags": [None]}, "tags"),
    ("due-words", {"title": "t", "due_at": "tomorrow"}, "due_at"),
    ("due-feb-30", {"title": "t", "due_at": "2026-02-30T10:00:00Z"}, "due_at"),
    ("due-date-only", {"title": "t", "due_at": "2026-11-24"}, "due_at"),
    ("due-hour-25", {"title": "t", "due_at": "2026-11-24T25:00:00Z"}, "due_at"),
    ("due-no-offset", {"title": "t", "due_at": "2026-11-24T10:00:00"}, "due_at"),
    ("due-number", {"title": "t", "due_at": 1764000000}, "due_at"),
    ("due-leap-second", {"title": "t", "due_at": "2026-12-31T23:59:60Z"}, "due_at"),
    ("due-year-10000", {"title": "t", "due_at": "10000-01-01T00:00:00Z"}, "due_at"),
    ("due-year-0", {"title": "t", "due_at": "0000-01-01T00:00:00Z"}, "due_at"),
    ("due-offset-24h", {"title": "t", "due_at": "2030-01-01T00:00:00+24:00"}, "due_at"),
    ("due-offset-hours-only", {"title": "t", "due_at": "2030-01-01T00:00:00+05"}, "due_at"),
    ("timezone-unknown", {"title": "t", "timezone": "Mars/Olympus_Mons"}, "timezone"),
    ("timezone-empty", {"title": "t", "timezone": ""}, "timezone"),
    ("timezone-number", {"title": "t", "timezone": 5}, "timezone"),
    ("timezone-injection", {"title": "t", "timezone": "UTC'; DROP TABLE tasks; --"}, "timezone"),
    ("recurrence-hourly", {"title": "t", "due_at": DUE_Z, "recurrence": "FREQ=HOURLY"}, "recurrence"),
    ("recurrence-no-freq", {"title": "t", "due_at": DUE_Z, "recurrence": "INTERVAL=2"}, "recurrence"),
    ("recurrence-interval-0", {"title": "t", "due_at": DUE_Z, "recurrence": "FREQ=DAILY;INTERVAL=0"},
     "recurrence"),
    ("recurrence-interval-1001",
     {"title": "t", "due_at": DUE_Z, "recurrence": "FREQ=DAILY;INTERVAL=1001"}, "recurrence"),
    ("recurrence-count-and-until",
     {"title": "t", "due_at": DUE_Z, "recurrence": "FREQ=DAILY;COUNT=3;UNTIL=20310101T000000Z"},
     "recurrence"),
    ("recurrence-count-0", {"title": "t", "due_at": DUE_Z, "recurrence": "FREQ=DAILY;COUNT=0"},
     "recurrence"),
    ("recurrence-count-10001",
     {"title": "t", "due_at": DUE_Z, "recurrence": "FREQ=DAILY;COUNT=10001"}, "recurrence"),
    ("recurrence-weekly-ordinal",
     {"title": "t", "due_at": DUE_Z, "recurrence": "FREQ=WEEKLY;BYDAY=1MO"}, "recurrence"),
    ("recurrence-monthly-ordinal-6",
     {"title": "t", "due_at": DUE_Z, "recurrence": "FREQ=MONTHLY;BYDAY=6MO"}, "recurrence"),
    ("recurrence-bymonthday-32",
     {"title": "t", "due_at": DUE_Z, "recurrence": "FREQ=MONTHLY;BYMONTHDAY=32"}, "recurrence"),
    ("recurrence-bad-day", {"title": "t", "due_at": DUE_Z, "recurrence": "FREQ=WEEKLY;BYDAY=XX"},
     "recurrence"),
    ("recurrence-part-twice",
     {"title": "t", "due_at": DUE_Z, "recurrence": "FREQ=DAILY;FREQ=WEEKLY"}, "recurrence"),
    ("recurrence-garbage", {"title": "t", "due_at": DUE_Z, "recurrence": "every tuesday"},
     "recurrence"),
    ("recurrence-bad-until",
     {"title": "t", "due_at": DUE_Z, "recurrence": "FREQ=DAILY;UNTIL=2031-01-01"}, "recurrence"),
    ("recurrence-number", {"title": "t", "due_at": DUE_Z, "recurrence": 7}, "recurrence"),
    ("recurrence-from-unknown", {"title": "t", "recurrence_from": "later"}, "recurrence_from"),
    ("reminders-object", {"title": "t", "due_at": DUE_Z, "reminders": {"before": "PT5M"}},
     "reminders"),
    ("reminders-11", {"title": "t", "due_at": DUE_Z,
                      "reminders": [{"before": f"PT{i + 1}M"} for i in range(11)]}, "reminders"),
    ("reminder-both", {"title": "t", "due_at": DUE_Z,
                       "reminders": [{"before": "PT5M", "at": DUE_Z}]}, "reminders"),
    ("reminder-empty", {"title": "t", "due_at": DUE_Z, "reminders": [{}]}, "reminders"),
    ("reminder-unknown-key", {"title": "t", "due_at": DUE_Z, "reminders": [{"after": "PT5M"}]},
     "reminders"),
    ("reminder-string", {"title": "t", "due_at": DUE_Z, "reminders": ["PT15M"]}, "reminders"),
    ("reminder-years", {"title": "t", "due_at": DUE_Z, "reminders": [{"before": "P1Y"}]},
     "reminders"),
    ("reminder-366-days", {"title": "t", "due_at": DUE_Z, "reminders": [{"before": "P366D"}]},
     "reminders"),
    ("reminder-zero", {"title": "t", "due_at": DUE_Z, "reminders": [{"before": "PT0S"}]},
     "reminders"),
    ("reminder-negative", {"title": "t", "due_at": DUE_Z, "reminders": [{"before": "-PT5M"}]},
     "reminders"),
    ("reminder-words", {"title": "t", "due_at": DUE_Z, "reminders": [{"before": "15 minutes"}]},
     "reminders"),
    ("reminder-bad-at", {"title": "t", "reminders": [{"at": "noon"}]}, "reminders"),
    ("alias-due-date-bad", {"title": "t", "due_date": "soon"}, "due_date"),
    ("alias-interval-hourly", {"title": "t", "due_at": DUE_Z, "is_recurring": True,
                               "recurring_interval": "hourly"}, "recurring_interval"),
    ("alias-is-recurring-string", {"title": "t", "due_at": DUE_Z, "is_recurring": "yes",
                                   "recurring_interval": "daily"}, "is_recurring"),
]


@pytest.mark.parametrize("body, field", [(b, f) for _, b, f in INVALID],
                         ids=[i for i, _, _ in INVALID])
def test_invalid_field_is_422_naming_it(api, body, field):
    doc = assert_validation(api.create(body), field)
    assert count_tasks(api) == 0, "an invalid request created a task"
    # the same body on PUT is refused the same way and changes nothing
    task = api.create_ok(title="existing")
    assert_validation(api.put(task["id"], body), field)
    assert api.get_ok(task["id"]) == task
    assert doc["status"] == 422


PATCH_INVALID = [c for c in INVALID if c[0] != "title-missing"]   # absent title is fine in PATCH


@pytest.mark.parametrize("body, field", [(b, f) for _, b, f in PATCH_INVALID],
                         ids=[i for i, _, _ in PATCH_INVALID])
def test_invalid_field_in_patch_is_422_and_changes_nothing(api, body, field):
    task = api.create_ok(title="existing", due_at=DUE_Z)
    patch = {k: v for k, v in body.items() if k != "title" or field == "title"}
    assert_validation(api.patch(task["id"], patch), field)
    assert api.get_ok(task["id"]) == task


@pytest.mark.parametrize("body", [
    {"title": "t", "recurrence": "FREQ=DAILY"},
    {"title": "t", "is_recurring": True, "recurring_interval": "weekly"},
    {"title": "t", "reminders": [{"before": "PT15M"}]},
], ids=["recurrence", "alias", "reminder-before"])
def test_needs_due_at(api, body):
    doc = assert_problem(api.create(body), 422)
    fields = error_fields(doc)
    assert any(f.startswith(("recurrence", "due_at", "is_recurring", "recurring_interval",
                             "reminders")) for f in fields), doc
    assert count_tasks(api) == 0


def test_several_bad_fields_are_all_listed(api):
    body = {"title": "", "priority": "extreme", "tags": "not-a-list", "due_at": "someday",
            "timezone": "Nowhere/Special", "recurrence_from": "whenever", "completed": "maybe",
            "description": 42, "foo": 1}
    doc = assert_validation(api.create(body), "title", "priority", "tags", "due_at", "timezone",
                            "recurrence_from", "completed", "description", "foo")
    assert len(error_fields(doc)) >= 9, doc
    assert count_tasks(api) == 0


# ------------------------------------------------------------------ server-owned, unknown

SERVER_OWNED = {"id": 12345, "user_id": "mallory", "created_at": "2020-01-01T00:00:00Z",
                "updated_at": "2020-01-01T00:00:00Z", "completed_at": "2020-01-01T00:00:00Z",
                "version": 99, "series_id": 7, "occurrence": 3}


@pytest.mark.parametrize("field", list(SERVER_OWNED) + ["foo", "Title", "due", "remind_at"])
def test_server_owned_or_unknown_field_is_422(api, field):
    value = SERVER_OWNED.get(field, "x")
    assert_validation(api.create({"title": "t", field: value}), field)
    assert count_tasks(api) == 0
    task = api.create_ok(title="mine")
    assert_validation(api.patch(task["id"], {field: value}), field)
    assert_validation(api.put(task["id"], {"title": "u", field: value}), field)
    assert api.get_ok(task["id"]) == task


def test_user_id_in_body_never_changes_ownership(api):
    other = api.for_user("mallory" + api.user)
    assert_validation(api.create({"title": "t", "user_id": other.user}), "user_id")
    task = api.create_ok(title="mine")
    for method in (api.patch, api.put):
        assert_validation(method(task["id"], {"title": "stolen", "user_id": other.user}), "user_id")
    assert api.get_ok(task["id"]) == task
    assert other.list_ok() == []
    assert_problem(other.get(task["id"]), 404)
    assert api.db.scalar(f"SELECT user_id FROM tasks WHERE id = {task['id']}") == api.user
    assert api.db.scalar(f"SELECT count(*) FROM tasks WHERE user_id = '{other.user}'") == "0"


def test_body_not_an_object_is_422(api):
    for raw in (b"[]", b'"title"', b"42", b"null", b"true", b'[{"title": "t"}]'):
        doc = assert_problem(api.create(raw), 422)
        assert doc["type"] == "urn:todo-backend:problem:validation-failed", (raw, doc)
    assert count_tasks(api) == 0


# ------------------------------------------------------------------ valid edge values

@pytest.mark.parametrize("title", ["x" * 200, "😀" * 200, "é" * 200, "  " + "y" * 200 + "\t ",
                                   "a", "Ünïcödé ✓", "tab\tinside"])
def test_valid_titles(api, title):
    task = api.create_ok(title=title)
    assert task["title"] == title.strip(), task


def test_description_limits(api):
    assert api.create_ok(description="d" * 10000)["description"] == "d" * 10000
    assert api.create_ok(description="😀" * 10000)["description"] == "😀" * 10000
    assert api.create_ok(description=None)["description"] is None
    assert api.create_ok(description="")["description"] in ("", None)


@pytest.mark.parametrize("priority", ["low", "medium", "high", "urgent"])
def test_each_priority(api, priority):
    assert api.create_ok(priority=priority)["priority"] == priority


def test_tags_are_case_insensitive_beyond_ascii(api):
    """"unique case-insensitively" is about letters, not only A-Z; the filter
    agrees with the uniqueness rule."""
    t = api.create_ok(tags=["Ärger", "ärger", "ÉTÉ", "été"])
    assert t["tags"] == ["Ärger", "ÉTÉ"], t
    assert [x["id"] for x in api.list_ok([("tag", "ärger"), ("tag", "Été")])] == [t["id"]]


def test_tag_limits_trimming_and_case_insensitive_uniqueness(api):
    tags = [f"t{i}" for i in range(20)]
    assert sorted(api.create_ok(tags=tags)["tags"]) == sorted(tags)
    assert api.create_ok(tags=["x" * 50])["tags"] == ["x" * 50]
    assert api.create_ok(tags=["  padded  "])["tags"] == ["padded"]
    assert api.create_ok(tags=["Work", "work", " WORK "])["tags"] == ["Work"]
    t = api.create_ok(tags=["b", "A", "a", "B", "c"])
    assert sorted(t["tags"]) == ["A", "b", "c"], t
    assert api.create_ok(tags=[])["tags"] == []


@pytest.mark.parametrize("rule, stored", [
    ("FREQ=DAILY", "FREQ=DAILY"),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR"),
    ("FREQ=MONTHLY;BYDAY=-1FR", "FREQ=MONTHLY;BYDAY=-1FR"),
    ("FREQ=MONTHLY;BYDAY=2MO", "FREQ=MONTHLY;BYDAY=2MO"),
    ("FREQ=MONTHLY;BYMONTHDAY=-1", "FREQ=MONTHLY;BYMONTHDAY=-1"),
    ("FREQ=YEARLY;BYDAY=-53SU", "FREQ=YEARLY;BYDAY=-53SU"),
    ("FREQ=DAILY;COUNT=10", "FREQ=DAILY;COUNT=10"),
    ("FREQ=DAILY;COUNT=10000", "FREQ=DAILY;COUNT=10000"),
    ("FREQ=DAILY;INTERVAL=1000", "FREQ=DAILY;INTERVAL=1000"),
    ("FREQ=DAILY;UNTIL=20311231T000000Z", "FREQ=DAILY;UNTIL=20311231T000000Z"),
    ("FREQ=DAILY;UNTIL=20311231", "FREQ=DAILY;UNTIL=20311231"),
    ("RRULE:FREQ=DAILY", "FREQ=DAILY"),
    ("COUNT=5;INTERVAL=2;FREQ=DAILY", "FREQ=DAILY;INTERVAL=2;COUNT=5"),
    ("BYMONTHDAY=1,15;FREQ=MONTHLY;INTERVAL=3", "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=1,15"),
])
def test_valid_rrules_stored_canonically(api, rule, stored):
    task = api.create_ok(due_at=DUE_Z, recurrence=rule)
    assert task["recurrence"] == stored, task
    assert api.get_ok(task["id"])["recurrence"] == stored


@pytest.mark.parametrize("before, remind_at", [
    ("PT15M", "2030-06-01T08:45:00.000Z"),
    ("P1D", "2030-05-31T09:00:00.000Z"),
    ("P1DT2H", "2030-05-31T07:00:00.000Z"),
    ("P365D", "2029-06-01T09:00:00.000Z"),
    ("PT90S", "2030-06-01T08:58:30.000Z"),
    ("P1W", "2030-05-25T09:00:00.000Z"),
])
def test_reminder_before_durations(api, before, remind_at):
    task = api.create_ok(due_at=DUE_Z, reminders=[{"before": before}])
    assert len(task["reminders"]) == 1, task
    assert task["reminders"][0]["remind_at"] == remind_at, task


def test_reminder_at_with_offset_is_returned_in_utc(api):
    task = api.create_ok(reminders=[{"at": "2030-06-01T12:00:00+02:00"}])
    assert task["reminders"][0]["remind_at"] == "2030-06-01T10:00:00.000Z", task
    ten = [{"before": f"PT{i + 1}M"} for i in range(10)]
    assert len(api.create_ok(due_at=DUE_Z, reminders=ten)["reminders"]) == 10


# ------------------------------------------------------------------ aliases

def test_alias_due_date(api):
    task = api.create_ok(due_date="2030-06-01T14:30:00+05:30")
    assert task["due_at"] == DUE, task
    assert "due_date" not in task or task["due_date"] == task["due_at"]


@pytest.mark.parametrize("interval, rule", [("daily", "FREQ=DAILY"), ("weekly", "FREQ=WEEKLY"),
                                            ("monthly", "FREQ=MONTHLY")])
def test_alias_is_recurring_with_interval(api, interval, rule):
    task = api.create_ok(due_at=DUE_Z, is_recurring=True, recurring_interval=interval)
    assert task["recurrence"] == rule, task
    task = api.create_ok(due_date=DUE_Z, is_recurring=True, recurring_interval=interval)
    assert task["recurrence"] == rule and task["due_at"] == DUE, task


def test_alias_is_recurring_false_clears(api):
    task = api.create_ok(is_recurring=False)
    assert task["recurrence"] is None
    rec = api.create_ok(due_at=DUE_Z, recurrence="FREQ=DAILY")
    new = assert_json(api.patch(rec["id"], {"is_recurring": False}), 200)
    assert new["recurrence"] is None, new
    assert new["due_at"] == DUE


def test_alias_in_patch(api):
    task = api.create_ok()
    new = assert_json(api.patch(task["id"], {"due_date": DUE_Z}), 200)
    assert new["due_at"] == DUE


@pytest.mark.parametrize("body, field", [
    ({"title": "t", "due_at": DUE_Z, "due_date": DUE_Z}, "due_date"),
    ({"title": "t", "due_at": DUE_Z, "recurrence": "FREQ=DAILY", "is_recurring": True,
      "recurring_interval": "daily"}, "recurrence"),
    ({"title": "t", "due_at": DUE_Z, "recurrence": "FREQ=DAILY", "recurring_interval": "daily"},
     "recurrence"),
], ids=["due_at+due_date", "recurrence+is_recurring", "recurrence+recurring_interval"])
def test_alias_together_with_its_field_is_422(api, body, field):
    doc = assert_problem(api.create(body), 422)
    fields = error_fields(doc)
    aliases = {"due_date": ("due_at", "due_date"),
               "recurrence": ("recurrence", "is_recurring", "recurring_interval")}[field]
    assert any(f.startswith(aliases) for f in fields), doc
    assert count_tasks(api) == 0


# ------------------------------------------------------------------ malformed bodies (400)

DEEP = b'{"title": "t", "tags": ' + b"[" * 5000 + b"]" * 5000 + b"}"
MALFORMED = [
    ("truncated", b'{"title": '),
    ("trailing-comma", b'{"title": "a",}'),
    ("single-quotes", b"{'title': 'a'}"),
    ("invalid-utf8", b'{"title": "caf\xe9"}'),
    ("overlong-utf8", b'{"title": "\xc0\xaf"}'),
    ("utf8-surrogate", b'{"title": "\xed\xa0\x80"}'),
    ("nul-escape", b'{"title": "a\\u0000b"}'),
    ("raw-nul", b'{"title": "a\x00b"}'),
    ("lone-surrogate-escape", b'{"title": "\\ud800"}'),
    ("duplicate-keys", b'{"title": "a", "title": "b"}'),
    ("nested-duplicate-keys", b'{"title": "a", "due_at": "2030-01-01T00:00:00Z", '
                              b'"reminders": [{"before": "PT1M", "before": "PT2M"}]}'),
    ("deep-nesting", DEEP),
    ("two-values", b'{"title": "a"} {"title": "b"}'),
    ("garbage", b"title=a"),
    ("empty", b""),
    ("whitespace", b"   "),
]


@pytest.mark.parametrize("raw", [m for _, m in MALFORMED], ids=[i for i, _ in MALFORMED])
def test_malformed_json_is_400(api, raw):
    doc = assert_problem(api.create(raw), 400)
    assert doc["type"] == "urn:todo-backend:problem:malformed-request", doc
    assert count_tasks(api) == 0
    task = api.create_ok(title="existing")
    assert_problem(api.put(task["id"], raw), 400)
    assert_problem(api.patch(task["id"], raw), 400)
    assert api.get_ok(task["id"]) == task


def test_malformed_body_on_complete_is_400(api):
    task = api.create_ok(title="c")
    assert_problem(api.complete(task["id"], b'{"completed": '), 400)
    assert api.get_ok(task["id"]) == task


# ------------------------------------------------------------------ media types (415)

@pytest.mark.parametrize("ctype", ["text/plain", "application/xml", "application/jsonx",
                                   "application/x-www-form-urlencoded", "multipart/form-data",
                                   "application/merge-patch+json", "json",
                                   "application/json; charset=iso-8859-1"])
def test_wrong_content_type_is_415(api, ctype):
    body = json.dumps({"title": "t"}).encode()
    doc = assert_problem(api.create(body, content_type=ctype), 415)
    assert doc["type"] == "urn:todo-backend:problem:unsupported-media-type", doc
    task = api.create_ok(title="existing")
    assert_problem(api.put(task["id"], body, content_type=ctype), 415)
    if not ctype.startswith("application/merge-patch+json"):
        assert_problem(api.patch(task["id"], body, content_type=ctype), 415)
    assert count_tasks(api) == 1
    assert api.get_ok(task["id"]) == task


def test_missing_content_type_with_body_is_415(api):
    assert_problem(api.create(b'{"title": "t"}', content_type=None), 415)
    assert count_tasks(api) == 0


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8",
                                   "application/json;charset=UTF-8", "application/json"])
def test_json_content_type_variants_accepted(api, ctype):
    r = api.create({"title": "t"}, content_type=ctype)
    assert r.status == 201, r


def test_post_without_body(api):
    """docs/api.md does not say which comes first for an empty POST without a
    Content-Type: 415 (no JSON media type) or 400 (empty is not JSON)."""
    r = api.create()
    assert r.status in (400, 415), r
    assert_problem(r, r.status)
    r = api.create(b"", content_type="application/json")
    assert_problem(r, 400)
    assert count_tasks(api) == 0


def test_response_to_valid_post_is_a_full_task(api):
    assert_task(api.create_ok(title="ok"), user=api.user)
