"""POST /api/{user_id}/tasks with Idempotency-Key."""

import json
import threading

import pytest

from conftest import assert_json, assert_problem, new_user


def rows(api, user=None):
    return int(api.db.scalar(f"SELECT count(*) FROM tasks WHERE user_id = '{user or api.user}'"))


def post(api, body, key, **kw):
    return api.create(body, headers=[("Idempotency-Key", key)], **kw)


def test_same_key_same_body_replays_the_first_answer(api):
    body = {"title": "pay rent", "priority": "high"}
    first = post(api, body, "key-1")
    task = assert_json(first, 201)
    for _ in range(3):
        again = post(api, body, "key-1")
        assert again.status == 201, again
        assert again.json() == task
        assert again.headers.get("location") == first.headers["location"], again
        assert again.headers.get("content-type") == first.headers.get("content-type")
    assert rows(api) == 1
    assert [t["id"] for t in api.list_ok()] == [task["id"]]


def test_replay_is_the_stored_answer_even_after_a_change(api):
    """The replay repeats the first response; it does not create a second task."""
    body = {"title": "original"}
    first = assert_json(post(api, body, "k"), 201)
    assert api.patch(first["id"], {"title": "changed"}).status == 200
    again = post(api, body, "k")
    assert again.status == 201, again
    assert again.json()["id"] == first["id"]
    assert rows(api) == 1


def test_different_keys_create_different_tasks(api):
    body = {"title": "same body"}
    a = assert_json(post(api, body, "key-a"), 201)
    b = assert_json(post(api, body, "key-b"), 201)
    assert a["id"] != b["id"]
    assert rows(api) == 2


def test_no_key_is_not_idempotent(api):
    body = {"title": "twice"}
    assert api.create(body).status == 201
    assert api.create(body).status == 201
    assert rows(api) == 2


def test_same_key_different_body_is_422(api):
    first = assert_json(post(api, {"title": "one"}, "reused"), 201)
    r = post(api, {"title": "two"}, "reused")
    doc = assert_problem(r, 422)
    assert doc["type"] == "urn:todo-backend:problem:idempotency-key-reused", doc
    assert rows(api) == 1
    assert api.get_ok(first["id"])["title"] == "one"
    # the original body still replays
    assert post(api, {"title": "one"}, "reused").json()["id"] == first["id"]


def test_keys_are_per_user(api):
    bob = api.for_user(new_user("bob"))
    body = {"title": "shared key"}
    a = post(api, body, "same-key")
    b = post(bob, body, "same-key")
    assert a.status == b.status == 201, (a, b)
    ta, tb = a.json(), b.json()
    assert ta["id"] != tb["id"]
    assert ta["user_id"] == api.user and tb["user_id"] == bob.user
    assert b.headers["location"] == f"/api/{bob.user}/tasks/{tb['id']}"
    assert rows(api) == 1 and rows(api, bob.user) == 1
    # and a different body under bob's key is bob's business only
    assert post(bob, {"title": "bob's other"}, "same-key").status == 422
    assert post(api, body, "same-key").json()["id"] == ta["id"]


def test_concurrent_duplicates_create_one_task(api):
    body = {"title": "race", "tags": ["concurrency"]}
    n = 8
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        barrier.wait(timeout=10)
        try:
            results[i] = post(api, body, "race-key", timeout=20)
        except Exception as e:  # noqa: BLE001 (reported below)
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    errors = [r for r in results if not hasattr(r, "status")]
    assert not errors, errors
    assert [r.status for r in results] == [201] * n, results
    assert len({json.dumps(r.json(), sort_keys=True) for r in results}) == 1, results
    assert len({r.headers.get("location") for r in results}) == 1
    assert rows(api) == 1


@pytest.mark.parametrize("key", ["k" * 256, "has space", "tab\tkey", "ключ", ""])
def test_invalid_key_is_refused(api, key):
    """docs/api.md: keys are 1-255 visible ASCII characters; it does not name the
    status of a bad key (400 as a malformed request, or 422)."""
    raw = key.encode("utf-8").decode("latin-1")        # the UTF-8 bytes, sent as they are
    r = post(api, {"title": "t"}, raw)
    assert r.status in (400, 422), r
    assert_problem(r, r.status)
    assert rows(api) == 0


def test_longest_valid_key(api):
    key = "".join(chr(33 + i % 94) for i in range(255))   # every visible ASCII character
    a = post(api, {"title": "t"}, key)
    b = post(api, {"title": "t"}, key)
    assert a.status == b.status == 201, (a, b)
    assert a.json() == b.json()
    assert rows(api) == 1
