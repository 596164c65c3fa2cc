"""Users are isolated (every query filters on the path's user_id), and text is
data: SQL metacharacters are stored and searched verbatim."""

import pytest

from conftest import assert_json, assert_problem, new_user, task_row

DUE = "2030-03-04T05:06:07.000Z"


@pytest.fixture
def alice(api):
    return api


@pytest.fixture
def bob(api):
    return api.for_user(new_user("bob"))


def full_task(api):
    return api.create_ok(title="alice's secret", description="private", priority="high",
                         tags=["personal"], due_at=DUE, reminders=[{"before": "PT5M"}])


CROSS_USER = [
    ("GET", "", None, ()),
    ("GET if-none-match", "", None, (("If-None-Match", '"1"'),)),
    ("PUT", "", {"title": "pwned"}, ()),
    ("PUT if-match *", "", {"title": "pwned"}, (("If-Match", "*"),)),
    ("PATCH", "", {"title": "pwned", "completed": True}, ()),
    ("PATCH if-match *", "", {"title": "pwned"}, (("If-Match", "*"),)),
    ("DELETE", "", None, ()),
    ("DELETE if-match *", "", None, (("If-Match", "*"),)),
    ("POST complete", "/complete", None, ()),
    ("POST complete body", "/complete", {"completed": True}, ()),
    ("PATCH complete", "/complete", None, ()),
    ("PATCH complete if-match *", "/complete", None, (("If-Match", "*"),)),
]


@pytest.mark.parametrize("name, suffix, body, headers", CROSS_USER, ids=[c[0] for c in CROSS_USER])
def test_other_users_task_is_404_and_unchanged(alice, bob, name, suffix, body, headers):
    task = full_task(alice)
    row = task_row(alice.db, task["id"])
    assert row, "the task is not in PostgreSQL"
    method = name.split()[0]
    path = bob.task_path(task["id"]) + suffix
    r = bob.request(method, path, body, headers=headers) if body is not None else \
        bob.request(method, path, headers=headers)
    doc = assert_problem(r, 404)
    assert doc["type"] == "urn:todo-backend:problem:not-found", doc
    assert "secret" not in r.body.decode("utf-8", "replace")
    # unchanged, from alice's side and in the database
    assert alice.get_ok(task["id"]) == task
    assert task_row(alice.db, task["id"]) == row
    assert alice.db.scalar(f"SELECT user_id FROM tasks WHERE id = {task['id']}") == alice.user


def test_other_users_list_and_search_do_not_see_the_task(alice, bob):
    task = full_task(alice)
    assert bob.list_ok() == []
    for params in ({"q": "secret"}, {"tag": "personal"}, {"priority": "high"},
                   {"status": "pending"}, {"due_after": "2000-01-01T00:00:00Z"}):
        assert bob.list_ok(params) == [], params
    assert [t["id"] for t in alice.list_ok({"q": "secret"})] == [task["id"]]


def test_same_id_space_is_not_shared(alice, bob):
    """bob creating tasks never exposes alice's under his path, and vice versa."""
    a = alice.create_ok(title="a")
    b = bob.create_ok(title="b")
    assert_problem(bob.get(a["id"]), 404)
    assert_problem(alice.get(b["id"]), 404)
    assert bob.get_ok(b["id"])["user_id"] == bob.user


def test_other_user_idempotency_key_cannot_replay_my_task(alice, bob):
    r = alice.create({"title": "mine"}, headers=[("Idempotency-Key", "k1")])
    assert r.status == 201
    r2 = bob.create({"title": "mine"}, headers=[("Idempotency-Key", "k1")])
    assert r2.status == 201
    assert r2.json()["user_id"] == bob.user
    assert r2.json()["id"] != r.json()["id"]


# ------------------------------------------------------------------ text is data

NASTY = [
    "Robert'); DROP TABLE tasks;--",
    "' OR '1'='1",
    "\" OR \"\"=\"",
    "100% _done_ \\ back\\slash",
    "$1 $$dollar$$ quoting",
    "semi;colon -- comment /* block */",
    "E'\\x27' & | ! : * <-> ()",
    "NULL",
    "\\N",
    "{\"json\": [1,2]}",
    "<script>alert(1)</script>",
    "tab\tand\u00a0nbsp",
    "😀 emoji ☃ snow ｱ",
]


@pytest.mark.parametrize("text", NASTY)
def test_metacharacters_stored_verbatim(api, text):
    task = api.create_ok(title=text, description=text, tags=[text[:50]])
    assert task["title"] == text.strip()
    assert task["description"] == text
    assert task["tags"] == [text[:50].strip()]
    got = api.get_ok(task["id"])
    assert got == task
    assert api.db.scalar(f"SELECT count(*) FROM tasks WHERE id = {task['id']}") == "1"
    # the search accepts it as text and does not fail
    r = api.list({"q": text})
    assert r.status == 200, r
    # the tag filter compares it as text
    assert [t["id"] for t in api.list_ok([("tag", text[:50].strip())])] == [task["id"]]
    # the row survives everything above
    assert api.get_ok(task["id"]) == task


def test_tag_filter_is_not_a_pattern(api):
    a = api.create_ok(title="a", tags=["abc"])
    b = api.create_ok(title="b", tags=["a_c"])
    c = api.create_ok(title="c", tags=["a%"])
    assert [t["id"] for t in api.list_ok([("tag", "a_c")])] == [b["id"]]
    assert [t["id"] for t in api.list_ok([("tag", "a%")])] == [c["id"]]
    assert api.list_ok([("tag", "a*")]) == []
    assert api.list_ok([("tag", "%")]) == []
    assert [t["id"] for t in api.list_ok([("tag", "ABC")])] == [a["id"]]


def test_search_with_quotes_and_operators(api):
    t = api.create_ok(title="O'Brien meeting", description="re: the \"plan\"")
    other = api.create_ok(title="unrelated")
    assert [x["id"] for x in api.list_ok({"q": "o'brien"})] == [t["id"]]
    assert [x["id"] for x in api.list_ok({"q": "\"plan\""})] == [t["id"]]
    for q in ("'; DROP TABLE tasks; --", "\\", "'", "\"", "&&", "!!", ":*", "a <-> b", "(", "-",
              "or", "\"unterminated", "%", "_"):
        r = api.list({"q": q})
        assert r.status == 200, (q, r)
    assert {x["id"] for x in api.list_ok()} == {t["id"], other["id"]}


def test_unicode_title_round_trips_through_the_database(api):
    text = "Ünïcödé ✓ — 中文 — עברית — 😀"
    task = api.create_ok(title=text)
    assert api.db.scalar(f"SELECT title FROM tasks WHERE id = {task['id']}") == text
    assert api.get_ok(task["id"])["title"] == text


def test_long_user_ids_and_metacharacters_in_the_path_are_just_strings(api):
    """User ids are opaque path strings; a quote in one is not SQL."""
    for user in ("o'brien", "a;b", "x" * 100):
        u = api.for_user(user + api.user)
        r = u.create({"title": "t"})
        task = assert_json(r, 201)
        assert task["user_id"] == u.user
        assert u.get_ok(task["id"]) == task
        assert_problem(api.get(task["id"]), 404)
