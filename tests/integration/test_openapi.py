"""docs/openapi.yaml: well formed, complete, and in step with the code.

No server and no network: the document is read from the work tree and
compared with the route list below, with the keys task_json() builds in
src/db/migrations/001_tasks.sql, and with the input field table of
src/api/task_input.c, so that a change on one side without the other fails.

Standard library + pytest + PyYAML (Debian's python3-yaml).
"""

import json
import re
from pathlib import Path

import pytest

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    pytest.fail("PyYAML is needed to read docs/openapi.yaml: install python3-yaml "
                "(scripts/setup)", pytrace=False)

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "docs" / "openapi.yaml"
MIGRATIONS = sorted((REPO / "src" / "db" / "migrations").glob("*.sql"))
TASK_INPUT_C = REPO / "src" / "api" / "task_input.c"
TASKS_C = REPO / "src" / "api" / "tasks.c"

# Every route the service registers (src/main.c add_routes, src/api/tasks.c
# tasks_api_routes). HEAD and OPTIONS are served by the router for every
# path and are described in prose, not as operations.
ROUTES = {
    ("/healthz", "get"),
    ("/readyz", "get"),
    ("/metrics", "get"),
    ("/api/{user_id}/tasks", "get"),
    ("/api/{user_id}/tasks", "post"),
    ("/api/{user_id}/tasks/{id}", "get"),
    ("/api/{user_id}/tasks/{id}", "put"),
    ("/api/{user_id}/tasks/{id}", "patch"),
    ("/api/{user_id}/tasks/{id}", "delete"),
    ("/api/{user_id}/tasks/{id}/complete", "patch"),
    ("/api/{user_id}/tasks/{id}/complete", "post"),
}

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

# docs/api.md "Requests": the writable fields and the original clients' aliases.
WRITABLE = {"title", "description", "completed", "priority", "tags", "due_at", "timezone",
            "recurrence", "recurrence_from", "reminders"}
ALIASES = {"due_date": "due_at", "is_recurring": "recurrence",
           "recurring_interval": "recurrence"}

PROBLEM_REF = "#/components/schemas/Problem"
PROBLEM_MEDIA = "application/problem+json"


@pytest.fixture(scope="module")
def spec():
    with SPEC.open(encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    assert isinstance(doc, dict), "docs/openapi.yaml is not a mapping"
    return doc


def resolve(doc, ref):
    """Follows a local JSON pointer ("#/a/b~1c"); KeyError when it leads nowhere."""
    assert isinstance(ref, str) and ref.startswith("#/"), f"not a local $ref: {ref!r}"
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        else:
            node = node[part]
    return node


def deref(doc, node):
    """node, or what its $ref chain points at."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref not in seen, f"$ref cycle at {ref}"
        seen.add(ref)
        node = resolve(doc, ref)
    return node


def all_refs(node, path="#"):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield path, v
            else:
                yield from all_refs(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from all_refs(v, f"{path}/{i}")


def operations(doc):
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method in HTTP_METHODS:
                yield path, method, op


def schema_properties(doc, schema):
    """Property names of a schema, through $ref and allOf."""
    schema = deref(doc, schema)
    props = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        props |= schema_properties(doc, part)
    return props


def top_level_args(text, start):
    """The comma-separated arguments of the call whose '(' is at text[start],
    split at depth one, skipping single-quoted SQL strings."""
    assert text[start] == "("
    args, depth, cur, i, in_str = [], 0, [], start, False
    while i < len(text):
        ch = text[i]
        if in_str:
            cur.append(ch)
            if ch == "'":
                if i + 1 < len(text) and text[i + 1] == "'":  # '' escape
                    cur.append("'")
                    i += 1
                else:
                    in_str = False
        elif ch == "'":
            in_str = True
            cur.append(ch)
        elif ch == "(":
            depth += 1
            if depth > 1:
                cur.append(ch)
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append("".join(cur).strip())
                return args
            cur.append(ch)
        elif ch == "," and depth == 1:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
        i += 1
    raise AssertionError("unbalanced parentheses in task_json()")


def function_source(name):
    """The body of the newest definition of a SQL function among the migrations."""
    body = None
    pattern = r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+" + name + r"\s*\(.*?\$\$(.*?)\$\$"
    for path in MIGRATIONS:
        sql = path.read_text(encoding="utf-8")
        for m in re.finditer(pattern, sql, re.S | re.I):
            body = m.group(1)
    assert body, f"{name}() not found in src/db/migrations"
    return body


def task_json_source():
    return function_source("task_json")


def task_json_keys():
    """{key: value expression} of task_json()'s outer json_build_object(...)."""
    body = task_json_source()
    m = re.search(r"(?<![a-z_])json_build_object\s*\(", body, re.I)
    assert m, "task_json() has no json_build_object("
    args = top_level_args(body, m.end() - 1)
    assert len(args) % 2 == 0, f"json_build_object has an odd argument count: {args}"
    keys = {}
    for k, v in zip(args[0::2], args[1::2]):
        km = re.fullmatch(r"'([A-Za-z_][A-Za-z0-9_]*)'", k)
        assert km, f"json_build_object key is not a plain string literal: {k!r}"
        keys[km.group(1)] = v
    return keys


# ---- the document ---------------------------------------------------------

def test_parses_as_json_compatible_yaml(spec):
    # YAML timestamps, sets or binary would not survive as JSON: every date in
    # the document must be a quoted string.
    json.dumps(spec)


def test_declares_openapi_3_1(spec):
    assert re.fullmatch(r"3\.1\.\d+", str(spec.get("openapi", ""))), spec.get("openapi")
    info = spec.get("info", {})
    assert info.get("title") and info.get("version")


def test_info_says_authentication_is_not_there_yet(spec):
    text = spec["info"].get("description", "")
    assert re.search(r"later issue", text), "info.description must say auth arrives later"
    assert "securitySchemes" not in spec.get("components", {}), \
        "no security scheme until authentication exists"
    assert "security" not in spec


def test_paths_and_methods_are_exactly_the_routes(spec):
    found = {(p, m) for p, m, _ in operations(spec)}
    missing = ROUTES - found
    extra = found - ROUTES
    assert not missing, f"routes not described: {sorted(missing)}"
    assert not extra, f"described but not routes of the service: {sorted(extra)}"


def test_operation_ids_are_unique(spec):
    ids = [op.get("operationId") for _, _, op in operations(spec)]
    assert all(ids), "every operation needs an operationId"
    assert len(ids) == len(set(ids)), ids


def test_every_ref_resolves(spec):
    refs = list(all_refs(spec))
    assert refs, "no $ref at all?"
    bad = []
    for where, ref in refs:
        try:
            resolve(spec, ref)
        except (KeyError, IndexError, ValueError, TypeError, AssertionError):
            bad.append(f"{where}: {ref}")
    assert not bad, "unresolved $ref:\n" + "\n".join(bad)


def test_every_operation_documents_its_errors_as_problems(spec):
    problems = []
    for path, method, op in operations(spec):
        responses = op.get("responses") or {}
        error_keys = [k for k in responses
                      if k == "default" or re.fullmatch(r"[45](\d\d|XX)", str(k))]
        if not error_keys:
            problems.append(f"{method.upper()} {path}: no error responses")
        for k in error_keys:
            resp = deref(spec, responses[k])
            media = (resp.get("content") or {}).get(PROBLEM_MEDIA)
            if media is None:
                problems.append(f"{method.upper()} {path} {k}: no {PROBLEM_MEDIA}")
                continue
            if media.get("schema", {}).get("$ref") != PROBLEM_REF:
                problems.append(f"{method.upper()} {path} {k}: schema is not {PROBLEM_REF}")
        for k in responses:
            assert isinstance(k, str), \
                f"{method.upper()} {path}: status {k!r} must be a quoted string in YAML"
    assert not problems, "\n".join(problems)


def test_every_response_carries_x_request_id(spec):
    missing = []
    for path, method, op in operations(spec):
        for status, resp in (op.get("responses") or {}).items():
            if "X-Request-Id" not in (deref(spec, resp).get("headers") or {}):
                missing.append(f"{method.upper()} {path} {status}")
    assert not missing, "responses without X-Request-Id:\n" + "\n".join(missing)


def test_problem_schema_shape(spec):
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors"} <= set(problem["properties"])
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    item = deref(spec, problem["properties"]["errors"]["items"])
    assert set(item["properties"]) == {"field", "message"}
    assert set(item["required"]) == {"field", "message"}


# ---- in step with the implementation ---------------------------------------

def test_task_schema_matches_task_json(spec):
    sql_keys = set(task_json_keys())
    assert len(sql_keys) > 10, f"suspiciously few task_json() keys: {sorted(sql_keys)}"
    task = spec["components"]["schemas"]["Task"]
    props = set(task["properties"])
    assert props == sql_keys, (
        f"Task schema vs task_json(): only in the schema {sorted(props - sql_keys)}, "
        f"only in SQL {sorted(sql_keys - props)}")
    assert set(task["required"]) == sql_keys, "every task_json() key is always present"


def test_reminder_schema_has_the_keys_task_json_adds(spec):
    reminders = task_json_keys()["reminders"]
    # task_json() may hand the work to a helper (reminders_json(), then
    # task_reminders_json(), which computes times with reminder_time()):
    # read those too, one level of calls deep.
    for helper in re.findall(r"\b((?:task_)?reminders_json|reminder_time)\s*\(", reminders):
        reminders += function_source(helper)
    for helper in re.findall(r"\b(reminder_time)\s*\(", reminders):
        reminders += function_source(helper)
    added = set()
    for m in re.finditer(r"jsonb?_build_object\s*\(", reminders):
        depth, i = 1, m.end()
        while depth and i < len(reminders):
            depth += {"(": 1, ")": -1}.get(reminders[i], 0)
            i += 1
        args = reminders[m.end():i - 1]
        # keys are the string literals in key position: first, or after a
        # top-level comma that follows a value
        added |= set(re.findall(r"(?:^|,)\s*'([A-Za-z_]+)'\s*,", args))
    assert "remind_at" in added, f"task_json() no longer adds remind_at? {reminders!r}"
    assert "fired_at" in added, f"task_json() no longer adds fired_at? {reminders!r}"
    item = deref(spec, spec["components"]["schemas"]["Task"]["properties"]["reminders"]["items"])
    props = set(item["properties"])
    assert added <= props, f"reminder keys missing from the schema: {sorted(added - props)}"
    stored = set(re.findall(r"r\s*(?:\?|->>)\s*'([A-Za-z_]+)'", reminders))
    assert stored <= props, f"stored reminder keys missing: {sorted(stored - props)}"


def input_fields_in_code():
    src = TASK_INPUT_C.read_text(encoding="utf-8")
    m = re.search(r"field_def_t\s+fields\[\]\s*=\s*\{(.*?)\n\};", src, re.S)
    assert m, f"the fields[] table is not found in {TASK_INPUT_C}"
    fields = re.findall(r'\{\s*"([a-z_]+)"\s*,\s*field_\w+\s*\}', m.group(1))
    m = re.search(r"read_only\[\]\s*=\s*\{(.*?)\};", src, re.S)
    assert m, f"the read_only[] table is not found in {TASK_INPUT_C}"
    read_only = re.findall(r'"([a-z_]+)"', m.group(1))
    return set(fields), set(read_only)


def test_task_input_matches_writable_fields_and_aliases(spec):
    accepted, read_only = input_fields_in_code()
    expected = WRITABLE | set(ALIASES)
    assert accepted == expected, (
        f"task_input.c accepts {sorted(accepted)}, docs/api.md names {sorted(expected)}")
    ti = spec["components"]["schemas"]["TaskInput"]
    props = set(ti["properties"])
    assert props == expected, (
        f"TaskInput: only in the schema {sorted(props - expected)}, "
        f"missing {sorted(expected - props)}")
    assert ti.get("additionalProperties") is False
    for alias, target in ALIASES.items():
        p = ti["properties"][alias]
        assert p.get("x-alias-of") == target, f"{alias} must be marked x-alias-of: {target}"
        assert "alias" in p.get("description", "").lower(), f"{alias}: say it is an alias"
    for name in WRITABLE:
        assert "x-alias-of" not in ti["properties"][name], name
    # Writable + server-owned = the whole task.
    task = spec["components"]["schemas"]["Task"]["properties"]
    assert WRITABLE | read_only == set(task_json_keys())
    for name in read_only:
        assert task[name].get("readOnly") is True, f"Task.{name} must be readOnly"


def test_create_and_replace_require_title(spec):
    schema = spec["components"]["schemas"]["TaskCreateOrReplace"]
    required = set()
    for part in schema.get("allOf", []):
        required |= set(part.get("required", []))
    assert required == {"title"}
    assert schema_properties(spec, schema) == WRITABLE | set(ALIASES)
    for path, method in (("/api/{user_id}/tasks", "post"), ("/api/{user_id}/tasks/{id}", "put")):
        body = spec["paths"][path][method]["requestBody"]["content"]["application/json"]
        assert body["schema"]["$ref"] == "#/components/schemas/TaskCreateOrReplace", method
    patch = spec["paths"]["/api/{user_id}/tasks/{id}"]["patch"]["requestBody"]["content"]
    assert set(patch) == {"application/json", "application/merge-patch+json"}


def test_list_parameters_match_the_code(spec):
    src = TASKS_C.read_text(encoding="utf-8")
    m = re.search(r"list_params\[\]\s*=\s*\{(.*?)\};", src, re.S)
    assert m, f"list_params[] not found in {TASKS_C}"
    code = set(re.findall(r'"([a-z_]+)"', m.group(1)))
    op = spec["paths"]["/api/{user_id}/tasks"]["get"]
    params = [deref(spec, p) for p in op.get("parameters", [])]
    query = {p["name"]: p for p in params if p["in"] == "query"}
    assert set(query) == code, f"spec {sorted(query)} vs code {sorted(code)}"
    assert query["status"]["schema"]["enum"] == ["all", "pending", "completed"]
    assert query["status"]["schema"]["default"] == "all"
    assert query["sort"]["schema"]["enum"] == ["created_at", "updated_at", "due_at",
                                               "priority", "title"]
    assert query["sort"]["schema"]["default"] == "created_at"
    assert query["order"]["schema"]["enum"] == ["asc", "desc"]
    limit = query["limit"]["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 100, 50)
    prio = deref(spec, query["priority"]["schema"]["items"])
    assert prio["enum"] == ["low", "medium", "high", "urgent"]
    assert query["tag"]["explode"] is True and query["priority"]["explode"] is False


def test_headers_the_service_sends_are_described(spec):
    headers = spec["components"]["headers"]
    for name in ("ETag", "Location", "Link", "Retry-After", "X-Request-Id", "Allow"):
        assert name in headers, name
    post = spec["paths"]["/api/{user_id}/tasks"]["post"]
    assert {"Location", "ETag"} <= set(post["responses"]["201"]["headers"])
    listing = spec["paths"]["/api/{user_id}/tasks"]["get"]
    assert "Link" in listing["responses"]["200"]["headers"]
    assert "Allow" in deref(spec, {"$ref": "#/components/responses/MethodNotAllowed"})["headers"]
    assert "Retry-After" in deref(spec, {"$ref": "#/components/responses/Unavailable"})["headers"]
    names = {deref(spec, p)["name"] for _, _, op in operations(spec)
             for p in op.get("parameters", [])}
    names |= {deref(spec, p)["name"] for item in spec["paths"].values()
              for p in item.get("parameters", [])}
    for name in ("Idempotency-Key", "If-Match", "If-None-Match", "X-Request-Id"):
        assert name in names, name
