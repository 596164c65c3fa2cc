"""Authorization matrix (shared/reference/reliability.md test 22): every task
endpoint and method without a token, with another user's token, and with the
right user's token on someone else's task; then the victim's task is
byte-for-byte unchanged and the attacker owns nothing. Also the service
endpoints behind ``APP_API_TOKEN`` and the probes that never need a token."""

import json

import pytest

from conftest import (TEST_JWT_SECRET, TasksClient, assert_json, assert_problem, db_env, module_db_server,
                      new_user, task_row, user_token, wait_ready)

AUTH_VARS = ("AUTH_JWT_SECRET", "AUTH_JWT_ISSUER", "AUTH_JWT_AUDIENCE", "AUTH_CLOCK_SKEW_S",
             "AUTH_DISABLED", "APP_API_TOKEN")
APP_API_TOKEN = "dapr-sidecar-shared-token-7c1e0b5a"
UNAUTHORIZED = "urn:todo-backend:problem:unauthorized"
FORBIDDEN = "urn:todo-backend:problem:forbidden"

ALICE = new_user("alice")
BOB = new_user("bob")


@pytest.fixture(scope="module")
def server(pg_cluster):
    """The service with AUTH_JWT_SECRET and APP_API_TOKEN, on its own database."""
    env = {k: None for k in AUTH_VARS}
    env.update({"AUTH_JWT_SECRET": TEST_JWT_SECRET, "APP_API_TOKEN": APP_API_TOKEN})
    yield from module_db_server(pg_cluster, db_env, **env)


@pytest.fixture(scope="module")
def alice_task(server):
    """Alice's task as created (full JSON) and its PostgreSQL row."""
    alice = TasksClient(server, ALICE, server.db)
    task = alice.create_ok(title="alice's secret plan", description="private", priority="high",
                           tags=["personal"], due_at="2030-03-04T05:06:07.000Z",
                           reminders=[{"before": "PT5M"}])
    return task, task_row(server.db, task["id"])


def bearer(user):
    return [("Authorization", f"Bearer {user_token(user)}")]


# (name, method, path suffix after /api/{user}/tasks with {id}, JSON body or None)
ENDPOINTS = [
    ("list", "GET", "", None),
    ("create", "POST", "", {"title": "planted by an attacker"}),
    ("get", "GET", "/{id}", None),
    ("put", "PUT", "/{id}", {"title": "pwned"}),
    ("put if-match *", "PUT", "/{id}", {"title": "pwned"}),
    ("patch", "PATCH", "/{id}", {"title": "pwned", "completed": True}),
    ("patch if-match *", "PATCH", "/{id}", {"title": "pwned"}),
    ("delete", "DELETE", "/{id}", None),
    ("delete if-match *", "DELETE", "/{id}", None),
    ("complete PATCH", "PATCH", "/{id}/complete", None),
    ("complete POST", "POST", "/{id}/complete", {"completed": True}),
]
ITEM_ENDPOINTS = [e for e in ENDPOINTS if "{id}" in e[2]]


def call(server, method, user_in_path, suffix, body, task_id, headers, if_match=False):
    path = f"/api/{user_in_path}/tasks" + suffix.replace("{id}", str(task_id))
    hdrs = list(headers)
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.append(("Content-Type", "application/json"))
    elif method in ("POST", "PUT", "PATCH"):
        hdrs.append(("Content-Length", "0"))
    if if_match:
        hdrs.append(("If-Match", "*"))
    return server.get(path, method=method, headers=hdrs, body=data)


def assert_untouched(server, alice_task):
    task, row = alice_task
    assert task_row(server.db, task["id"]) == row, "alice's row changed"
    assert server.db.scalar(f"SELECT count(*) FROM tasks WHERE user_id = '{BOB}'") == "0", \
        "bob owns a task"


def ids(endpoints):
    return [e[0] for e in endpoints]


@pytest.mark.parametrize("name, method, suffix, body", ENDPOINTS, ids=ids(ENDPOINTS))
@pytest.mark.parametrize("whose_path", ["alice", "bob"])
def test_no_token_is_401(server, alice_task, whose_path, name, method, suffix, body):
    user = ALICE if whose_path == "alice" else BOB
    r = call(server, method, user, suffix, body, alice_task[0]["id"], [],
             if_match="if-match" in name)
    doc = assert_problem(r, 401)
    assert doc["type"] == UNAUTHORIZED, doc
    assert r.header_count("www-authenticate") == 1, r
    assert r.headers["www-authenticate"].lower().startswith("bearer"), r.headers
    assert "secret" not in r.body.decode("utf-8", "replace")
    assert_untouched(server, alice_task)


@pytest.mark.parametrize("name, method, suffix, body", ENDPOINTS, ids=ids(ENDPOINTS))
@pytest.mark.parametrize("attacker, path_user", [("alice", "bob"), ("bob", "alice"),
                                                 ("bob", "alice-percent-encoded")])
def test_other_users_token_is_403(server, alice_task, attacker, path_user, name, method, suffix,
                                  body):
    token_user = ALICE if attacker == "alice" else BOB
    if path_user == "bob":
        in_path = BOB
    elif path_user == "alice":
        in_path = ALICE
    else:
        in_path = "".join(f"%{b:02X}" for b in ALICE.encode())      # decodes to ALICE
    r = call(server, method, in_path, suffix, body, alice_task[0]["id"], bearer(token_user),
             if_match="if-match" in name)
    doc = assert_problem(r, 403)
    assert doc["type"] == FORBIDDEN, doc
    assert "secret" not in r.body.decode("utf-8", "replace")
    assert_untouched(server, alice_task)


@pytest.mark.parametrize("name, method, suffix, body", ITEM_ENDPOINTS, ids=ids(ITEM_ENDPOINTS))
def test_own_path_other_users_task_id_is_404(server, alice_task, name, method, suffix, body):
    r = call(server, method, BOB, suffix, body, alice_task[0]["id"], bearer(BOB),
             if_match="if-match" in name)
    doc = assert_problem(r, 404)
    assert doc["type"] == "urn:todo-backend:problem:not-found", doc
    assert "secret" not in r.body.decode("utf-8", "replace")
    assert_untouched(server, alice_task)


def test_bob_can_list_his_own_empty_path(server, alice_task):
    """Control: bob's token on bob's path is accepted (so the 404s above are
    ownership, not authentication)."""
    r = call(server, "GET", BOB, "", None, 0, bearer(BOB))
    assert assert_json(r, 200) == []


def test_after_the_matrix_alice_task_is_unchanged_and_bob_has_nothing(server, alice_task):
    task, row = alice_task
    alice = TasksClient(server, ALICE, server.db)
    r = alice.get(task["id"])
    now = assert_json(r, 200)
    assert now == task, "alice's task changed"
    assert now["version"] == task["version"] == 1, now
    assert r.headers.get("etag") == f'"{task["version"]}"', r.headers
    assert [t["id"] for t in alice.list_ok()] == [task["id"]]
    assert task_row(server.db, task["id"]) == row
    bob = TasksClient(server, BOB, server.db)
    assert bob.list_ok() == []
    assert server.db.scalar(f"SELECT count(*) FROM tasks WHERE user_id = '{BOB}'") == "0"
    assert server.db.scalar("SELECT count(*) FROM tasks WHERE user_id <> 'events'") == "1"


# ------------------------------------------------------------------ service endpoints

SERVICE = [
    ("GET", "/dapr/subscribe", None),
    ("GET", "/dapr/config", None),
    ("POST", "/api/events/tasks", {"specversion": "1.0", "id": "e1", "source": "/x",
                                   "type": "task.completed", "data": {}}),
    ("POST", "/api/events/reminders", {"specversion": "1.0", "id": "e2", "source": "/x",
                                       "type": "reminder.due",
                                       "data": {"task_id": 1, "user_id": "events",
                                                "remind_at": "2026-01-01T00:00:00Z"}}),
    ("GET", "/api/events/anything", None),
]
# What each answers once past the guard: the subscriptions ([] unless
# EVENTS_CONSUMER=dapr), Dapr's optional config route absent, a task event
# without data.task dropped, a reminder handled (for a task that does not
# exist: nothing to record), no such event route.
SERVICE_ANSWERS = {
    "/dapr/subscribe": (200, []),
    "/dapr/config": (404, None),
    "/api/events/tasks": (200, {"status": "DROP"}),
    "/api/events/reminders": (200, {"status": "SUCCESS"}),
    "/api/events/anything": (404, None),
}
SERVICE_IDS = [f"{m} {p}" for m, p, _ in SERVICE]


def events_rows(server):
    """Tasks of a user called "events" (a request that reaches the tasks API
    through a service path would create one)."""
    return int(server.db.scalar("SELECT count(*) FROM tasks WHERE user_id = 'events'"))


def service_call(server, method, path, body, headers):
    hdrs = list(headers)
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.append(("Content-Type", "application/cloudevents+json"))
    elif method == "POST":
        hdrs.append(("Content-Length", "0"))
    return server.get(path, method=method, headers=hdrs, body=data)


BAD_DAPR = [
    ("missing", []),
    ("wrong", [("dapr-api-token", "not-the-token")]),
    ("prefix", [("dapr-api-token", APP_API_TOKEN[:-1])]),
    ("suffix", [("dapr-api-token", APP_API_TOKEN + "x")]),
    ("other case", [("dapr-api-token", APP_API_TOKEN.upper())]),
    ("empty", [("dapr-api-token", "")]),
    ("in Authorization Bearer", [("Authorization", f"Bearer {APP_API_TOKEN}")]),
    ("a user JWT", [("Authorization", f"Bearer {user_token('events')}")]),
    ("a user JWT and a wrong dapr token",
     [("Authorization", f"Bearer {user_token('events')}"), ("dapr-api-token", "nope")]),
]


@pytest.mark.parametrize("kind, headers", BAD_DAPR, ids=[b[0] for b in BAD_DAPR])
@pytest.mark.parametrize("method, path, body", SERVICE, ids=SERVICE_IDS)
def test_service_endpoint_without_the_app_token_is_401(server, method, path, body, kind, headers):
    before = events_rows(server)
    r = service_call(server, method, path, body, headers)
    assert_problem(r, 401)
    assert events_rows(server) == before


@pytest.mark.parametrize("method, path, body", SERVICE, ids=SERVICE_IDS)
def test_service_endpoint_with_the_app_token_gets_its_normal_answer(server, method, path, body):
    before = events_rows(server)
    r = service_call(server, method, path, body, [("dapr-api-token", APP_API_TOKEN)])
    status, doc = SERVICE_ANSWERS[path]
    if status == 404:
        assert_problem(r, 404)
    else:
        assert r.status == status, r
        assert json.loads(r.body) == doc, r
    assert events_rows(server) == before


def test_events_path_is_not_a_users_tasks_path(server):
    """/api/events/tasks is the Dapr route, not the tasks of a user called
    "events": even with the right dapr-api-token and a valid JWT for "events",
    nothing is created there."""
    before = events_rows(server)
    hdrs = [("dapr-api-token", APP_API_TOKEN), *bearer("events"),
            ("Content-Type", "application/json")]
    r = server.get("/api/events/tasks", method="POST", headers=hdrs,
                   body=b'{"title":"not an event"}')
    assert r.status != 201, f"/api/events/tasks created a task: {r!r}"
    r = server.get("/api/events/tasks", headers=hdrs[:2])
    assert r.status != 200, f"/api/events/tasks listed tasks: {r!r}"
    assert events_rows(server) == before


@pytest.mark.parametrize("path", ["/api/%65vents/tasks", "/api/events/%74asks",
                                  "/%64apr/subscribe"])
def test_percent_encoded_service_path_is_not_a_way_around_the_app_token(server, path):
    """%65 is "e" (RFC 3986 6.2.2.2: the same path): without the dapr-api-token
    a user's JWT for "events" opens nothing there either."""
    before = events_rows(server)
    hdrs = [*bearer("events"), ("Content-Type", "application/json")]
    r = server.get(path, method="POST", headers=hdrs, body=b'{"title":"around the guard"}')
    assert r.status in (401, 404), f"POST {path} -> {r!r}"
    assert events_rows(server) == before
    r = server.get(path, headers=hdrs[:1])
    assert r.status in (401, 404), f"GET {path} -> {r!r}"


def test_app_token_is_not_a_user_token(server, alice_task):
    """The dapr-api-token header opens nothing on the tasks API."""
    r = call(server, "GET", ALICE, "", None, 0, [("dapr-api-token", APP_API_TOKEN)])
    assert_problem(r, 401)
    r = call(server, "GET", ALICE, "", None, 0, [("Authorization", f"Bearer {APP_API_TOKEN}")])
    assert_problem(r, 401)


def test_without_app_api_token_dapr_routes_are_open(pg, start_server):
    """No APP_API_TOKEN: the sidecar needs no token, and a user token is not
    asked for either (these are not user endpoints)."""
    env = {k: None for k in AUTH_VARS}
    env["AUTH_JWT_SECRET"] = TEST_JWT_SECRET
    s = start_server(EVENTS_CONSUMER="dapr", **db_env(pg.url, **env))
    wait_ready(s)
    r = s.get("/dapr/subscribe")
    assert r.status == 200, r
    assert [sub["topic"] for sub in json.loads(r.body)] == ["tasks", "reminders"]
    r = s.get("/api/events/reminders", method="POST",
              headers=[("Content-Type", "application/json")],
              body=b'{"specversion":"1.0","id":"r1","source":"/x","type":"reminder.due",'
                   b'"data":{"task_id":1,"user_id":"x","remind_at":"2026-01-01T00:00:00Z"}}')
    assert (r.status, json.loads(r.body)) == (200, {"status": "SUCCESS"}), r


PROBES = ["/healthz", "/readyz", "/metrics"]
PROBE_HEADERS = [
    ("none", []),
    ("garbage Bearer", [("Authorization", "Bearer not.a.token")]),
    ("Basic", [("Authorization", "Basic Zm9vOmJhcg==")]),
    ("wrong dapr token", [("dapr-api-token", "nope")]),
]


@pytest.mark.parametrize("kind, headers", PROBE_HEADERS, ids=[p[0] for p in PROBE_HEADERS])
@pytest.mark.parametrize("path", PROBES)
def test_probes_need_no_token(server, path, kind, headers):
    r = server.get(path, headers=headers)
    assert r.status == 200, r
    assert "www-authenticate" not in r.headers, r
