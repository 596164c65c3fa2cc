"""GET /api/{user_id}/tasks: filters, sorting, limits and keyset paging."""

import urllib.parse

import pytest

from conftest import (assert_json, assert_problem, assert_task, error_fields, field_named,
                      link_next, query_params)


def ids(tasks):
    return [t["id"] for t in tasks]


def assert_invalid_query(resp, param=None):
    doc = assert_problem(resp, 400)
    assert doc["type"] == "urn:todo-backend:problem:invalid-query", doc
    names = error_fields(doc)
    if param is not None:
        assert field_named(names, param), f"errors do not name {param!r}: {doc!r}"
    return doc


def with_params(path, **changes):
    """path's query with some parameters replaced/added (value None removes)."""
    params = dict(query_params(path))
    for k, v in changes.items():
        if v is None:
            params.pop(k, None)
        else:
            params[k] = v
    return urllib.parse.urlsplit(path).path + "?" + urllib.parse.urlencode(params)


# ------------------------------------------------------------------ basics

def test_empty_list(api):
    r = api.list()
    assert assert_json(r, 200) == []
    assert "link" not in r.headers, r
    r = api.list({"status": "completed", "q": "nothing", "tag": "none"})
    assert assert_json(r, 200) == []
    assert "link" not in r.headers


def test_list_shows_only_the_users_tasks_with_full_shape(api):
    mine = [api.create_ok(title=f"m{i}") for i in range(3)]
    other = api.for_user(api.user + "-other")
    other.create_ok(title="not yours")
    got = assert_json(api.list(), 200)
    assert sorted(ids(got)) == sorted(ids(mine))
    for t in got:
        assert_task(t, user=api.user)


# ------------------------------------------------------------------ filters

def test_status_filter(api):
    a = api.create_ok(title="a", completed=True)
    b = api.create_ok(title="b")
    c = api.create_ok(title="c", completed=True)
    assert ids(api.list_ok({"status": "completed"})) == [c["id"], a["id"]]
    assert ids(api.list_ok({"status": "pending"})) == [b["id"]]
    assert ids(api.list_ok({"status": "all"})) == [c["id"], b["id"], a["id"]]
    assert ids(api.list_ok()) == [c["id"], b["id"], a["id"]]


def test_priority_filter(api):
    tasks = {p: api.create_ok(title=p, priority=p) for p in ("low", "medium", "high", "urgent")}
    got = api.list_ok({"priority": "high,urgent"})
    assert sorted(ids(got)) == sorted([tasks["high"]["id"], tasks["urgent"]["id"]])
    assert ids(api.list_ok({"priority": "low"})) == [tasks["low"]["id"]]
    assert len(api.list_ok({"priority": "low,medium,high,urgent"})) == 4
    assert_invalid_query(api.list({"priority": "critical"}), "priority")
    assert_invalid_query(api.list({"priority": "high,bogus"}), "priority")


def test_tag_filter_all_of_case_insensitive(api):
    t1 = api.create_ok(title="1", tags=["Work", "Urgent"])
    t2 = api.create_ok(title="2", tags=["work"])
    t3 = api.create_ok(title="3", tags=["home", "WORK", "urgent"])
    api.create_ok(title="4", tags=[])
    api.create_ok(title="5", tags=["workshop"])
    assert sorted(ids(api.list_ok([("tag", "work")]))) == sorted([t1["id"], t2["id"], t3["id"]])
    assert sorted(ids(api.list_ok([("tag", "WORK"), ("tag", "urgent")]))) == \
        sorted([t1["id"], t3["id"]])
    assert ids(api.list_ok([("tag", "home"), ("tag", "Work")])) == [t3["id"]]
    assert ids(api.list_ok([("tag", "home"), ("tag", "work"), ("tag", "nope")])) == []
    assert api.list_ok([("tag", "nothing")]) == []
    # the original spelling is returned untouched
    assert api.get_ok(t1["id"])["tags"] == ["Work", "Urgent"] or \
        sorted(api.get_ok(t1["id"])["tags"]) == ["Urgent", "Work"]


def test_full_text_search(api):
    t1 = api.create_ok(title="Buy milk today")
    t2 = api.create_ok(title="milk buy")
    t3 = api.create_ok(title="Buy oat milk")
    t4 = api.create_ok(title="Call mom", description="about the milk delivery")
    t5 = api.create_ok(title="Bread")

    def q(text):
        return sorted(ids(api.list_ok({"q": text})))

    assert q("milk") == sorted([t1["id"], t2["id"], t3["id"], t4["id"]])
    assert q("MILK") == q("milk")
    assert q("delivery") == [t4["id"]]                      # description is searched
    assert q('"buy milk"') == [t1["id"]]                    # phrase: adjacent, in order
    assert q("milk -oat") == sorted([t1["id"], t2["id"], t4["id"]])
    assert q("bread or mom") == sorted([t4["id"], t5["id"]])
    assert q("buy milk") == sorted([t1["id"], t2["id"], t3["id"]])   # words: all of them
    assert q("nothing-matches-this") == []


def test_due_filters_exclude_undated(api):
    d1 = api.create_ok(title="1", due_at="2030-01-01T00:00:00Z")
    d2 = api.create_ok(title="2", due_at="2030-02-01T00:00:00Z")
    d3 = api.create_ok(title="3", due_at="2030-03-01T00:00:00Z")
    api.create_ok(title="undated")

    def due(**params):
        return sorted(ids(api.list_ok(params)))

    assert due(due_before="2030-02-15T00:00:00Z") == sorted([d1["id"], d2["id"]])
    assert due(due_after="2030-01-15T00:00:00Z") == sorted([d2["id"], d3["id"]])
    assert due(due_after="2030-01-15T00:00:00Z", due_before="2030-02-15T00:00:00Z") == [d2["id"]]
    assert due(due_after="2000-01-01T00:00:00Z") == sorted([d1["id"], d2["id"], d3["id"]])
    assert due(due_before="2100-01-01T00:00:00Z") == sorted([d1["id"], d2["id"], d3["id"]])
    # offsets are instants: 2030-02-01T05:00+05:30 is 2030-01-31T23:30Z
    assert due(due_before="2030-02-01T05:00:00+05:30") == [d1["id"]]
    assert due(due_after="2030-01-31T19:00:00-05:00") == sorted([d2["id"], d3["id"]])
    assert_invalid_query(api.list({"due_before": "tomorrow"}), "due_before")
    assert_invalid_query(api.list({"due_after": "2030-13-01T00:00:00Z"}), "due_after")


def test_filters_combine(api):
    want = api.create_ok(title="report draft", priority="high", tags=["work"],
                         due_at="2030-05-01T00:00:00Z")
    api.create_ok(title="report draft", priority="high", tags=["work"],
                  due_at="2030-05-01T00:00:00Z", completed=True)
    api.create_ok(title="report draft", priority="low", tags=["work"],
                  due_at="2030-05-01T00:00:00Z")
    api.create_ok(title="report draft", priority="high", tags=["home"],
                  due_at="2030-05-01T00:00:00Z")
    api.create_ok(title="other", priority="high", tags=["work"], due_at="2030-05-01T00:00:00Z")
    api.create_ok(title="report draft", priority="high", tags=["work"])
    got = api.list_ok([("status", "pending"), ("priority", "high,urgent"), ("tag", "work"),
                       ("q", "report"), ("due_before", "2030-06-01T00:00:00Z")])
    assert ids(got) == [want["id"]]


# ------------------------------------------------------------------ sorting

def test_sort_created_at(api):
    ts = [api.create_ok(title=f"t{i}") for i in range(5)]
    assert ids(api.list_ok()) == ids(ts)[::-1]
    assert ids(api.list_ok({"sort": "created_at"})) == ids(ts)[::-1]
    assert ids(api.list_ok({"sort": "created_at", "order": "desc"})) == ids(ts)[::-1]
    assert ids(api.list_ok({"sort": "created_at", "order": "asc"})) == ids(ts)


def test_sort_updated_at(api):
    a, b, c = (api.create_ok(title=x) for x in "abc")
    assert api.patch(a["id"], {"title": "a2"}).status == 200
    assert ids(api.list_ok({"sort": "updated_at"})) == [a["id"], c["id"], b["id"]]
    assert ids(api.list_ok({"sort": "updated_at", "order": "asc"})) == [b["id"], c["id"], a["id"]]


def test_sort_due_at_undated_last_both_orders(api):
    d1 = api.create_ok(title="d1", due_at="2030-01-03T00:00:00Z")
    d2 = api.create_ok(title="d2", due_at="2030-01-01T00:00:00Z")
    n1 = api.create_ok(title="n1")
    d3 = api.create_ok(title="d3", due_at="2030-01-02T00:00:00Z")
    d4 = api.create_ok(title="d4", due_at="2030-01-01T00:00:00Z")   # ties d2
    n2 = api.create_ok(title="n2")
    asc = [d2, d4, d3, d1, n1, n2]
    desc = [d1, d3, d4, d2, n2, n1]
    assert ids(api.list_ok({"sort": "due_at"})) == ids(asc)          # default asc
    assert ids(api.list_ok({"sort": "due_at", "order": "asc"})) == ids(asc)
    assert ids(api.list_ok({"sort": "due_at", "order": "desc"})) == ids(desc)


def test_sort_priority_by_rank_ties_by_id(api):
    p = [api.create_ok(title=f"p{i}", priority=pr) for i, pr in
         enumerate(["low", "urgent", "medium", "high", "urgent", "low"])]
    desc = [p[4], p[1], p[3], p[2], p[5], p[0]]
    assert ids(api.list_ok({"sort": "priority"})) == ids(desc)       # default desc
    assert ids(api.list_ok({"sort": "priority", "order": "desc"})) == ids(desc)
    asc = [p[0], p[5], p[2], p[3], p[1], p[4]]
    assert ids(api.list_ok({"sort": "priority", "order": "asc"})) == ids(asc)


def test_sort_title_by_code_point(api):
    titles = ["b", "B", "a", "É", "é", "Z", "a", "10", "9", "_x", "~", "ｱ", "😀", "ab", "A b"]
    created = [api.create_ok(title=t) for t in titles]
    expected = sorted(created, key=lambda t: (t["title"], t["id"]))   # Python: code points
    assert ids(api.list_ok({"sort": "title"})) == ids(expected)      # default asc
    assert ids(api.list_ok({"sort": "title", "order": "asc"})) == ids(expected)
    assert ids(api.list_ok({"sort": "title", "order": "desc"})) == ids(expected)[::-1]


@pytest.mark.parametrize("params, param", [
    ({"sort": "name"}, "sort"),
    ({"sort": "id; DROP TABLE tasks"}, "sort"),
    ({"order": "up"}, "order"),
    ({"status": "done"}, "status"),
    ({"status": ""}, "status"),
])
def test_invalid_values_are_400(api, params, param):
    assert_invalid_query(api.list(params), param)


# ------------------------------------------------------------------ limit

@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1e9", "1.5", "10abc", "999999999999999999999"])
def test_limit_out_of_range_is_400(api, limit):
    assert_invalid_query(api.list({"limit": limit}), "limit")


def test_limit_bounds_accepted(api):
    for i in range(3):
        api.create_ok(title=f"t{i}")
    r = api.list({"limit": "1"})
    assert len(assert_json(r, 200)) == 1
    assert link_next(r) is not None, r
    r = api.list({"limit": "100"})
    assert len(assert_json(r, 200)) == 3
    assert "link" not in r.headers, r


def test_default_limit_is_50(api):
    for i in range(51):
        api.create_ok(title=f"t{i}")
    r = api.list()
    assert len(assert_json(r, 200)) == 50
    nxt = link_next(r)
    assert nxt is not None, r
    r2 = api.request("GET", nxt)
    assert len(assert_json(r2, 200)) == 1
    assert "link" not in r2.headers, r2


# ------------------------------------------------------------------ paging

def make_varied(api, n):
    """n tasks with duplicated titles, due dates (and no due date) and priorities."""
    out = []
    prios = ["low", "medium", "high", "urgent"]
    for i in range(n):
        fields = {"title": f"task {i % 7}", "priority": prios[i % 4]}
        if i % 3:
            fields["due_at"] = f"2030-01-{1 + i % 5:02d}T00:00:00Z"
        out.append(api.create_ok(**fields))
    return out


@pytest.mark.parametrize("sort", [None, "created_at", "updated_at", "due_at", "priority", "title"])
@pytest.mark.parametrize("order", [None, "asc", "desc"])
def test_paging_covers_every_row_once(api, sort, order):
    created = make_varied(api, 23)
    params = {}
    if sort:
        params["sort"] = sort
    if order:
        params["order"] = order
    full = api.list_ok(dict(params, limit="100"))
    assert sorted(ids(full)) == sorted(ids(created))
    got, pages = api.list_all(dict(params, limit="5"))
    assert ids(got) == ids(full), "paged order differs from the single-page order"
    assert [len(p.json()) for p in pages] == [5, 5, 5, 5, 3]
    for p in pages[:-1]:
        assert 'rel="next"' in p.headers.get("link", ""), p
        nxt = link_next(p)
        assert nxt.startswith(api.tasks_path() + "?"), nxt
    assert "link" not in pages[-1].headers, pages[-1]


def test_last_full_page_has_no_link(api):
    for i in range(10):
        api.create_ok(title=f"t{i}")
    got, pages = api.list_all({"limit": "5"})
    assert len(got) == 10 and len(set(ids(got))) == 10
    assert len(pages) == 2, [p.headers.get("link") for p in pages]
    assert "link" not in pages[1].headers


@pytest.mark.parametrize("sort", ["title", "created_at", "due_at"])
def test_paging_stable_while_rows_are_inserted(api, sort):
    originals = [api.create_ok(title=f"t{i * 2:02d}", due_at=f"2030-01-{1 + i:02d}T00:00:00Z")
                 for i in range(12)]
    extra_titles = ["t01", "t13", "t99", "a", "t05", "zz", "t21", "t07", "t15", "t03"]
    inserted = []

    def insert(page_no):
        for _ in range(2):
            if len(inserted) < len(extra_titles):   # rows inserted before and after the cursor
                title = extra_titles[len(inserted)]
                inserted.append(api.create_ok(
                    title=title, due_at=f"2030-01-{min(page_no, 9) + 2:02d}T12:00:00Z"))

    got, pages = api.list_all({"sort": sort, "limit": "4"}, between_pages=insert)
    got_ids = ids(got)
    assert len(got_ids) == len(set(got_ids)), "a row was returned twice"
    missing = set(ids(originals)) - set(got_ids)
    assert not missing, f"rows skipped while paging: {missing}"


def test_next_link_keeps_every_filter(api):
    """Filters with spaces, quotes, '+' offsets, non-ASCII and repeated tags
    survive the round trip through the Link header."""
    want = []
    for i in range(7):
        want.append(api.create_ok(title=f"buy milk {i} ", description="früh & spät",
                                  tags=["Ärger", "x y", "a+b"], priority="high",
                                  due_at=f"2030-01-0{1 + i % 3}T12:00:00Z"))
    api.create_ok(title="buy milk", tags=["Ärger", "x y"], priority="high",
                  due_at="2030-01-01T12:00:00Z")                       # lacks tag a+b
    api.create_ok(title="buy milk", tags=["Ärger", "x y", "a+b"], priority="low",
                  due_at="2030-01-01T12:00:00Z")                       # wrong priority
    api.create_ok(title="buy milk", tags=["Ärger", "x y", "a+b"], priority="high")  # undated
    params = [("q", '"buy milk" spät -nothing'), ("tag", "ärger"), ("tag", "X Y"), ("tag", "a+b"),
              ("priority", "high,urgent"), ("status", "pending"),
              ("due_after", "2030-01-01T10:00:00+05:30"), ("due_before", "2030-01-04T00:00:00-01:00"),
              ("sort", "title"), ("order", "desc"), ("limit", "2")]
    got, pages = api.list_all(params)
    assert len(pages) == 4, [p.headers.get("link") for p in pages]
    assert sorted(ids(got)) == sorted(ids(want))
    assert len(set(ids(got))) == len(got)


def test_rows_deleted_between_pages_do_not_disturb_the_rest(api):
    created = [api.create_ok(title=f"t{i:02d}") for i in range(12)]
    r = api.list({"sort": "title", "limit": "4"})
    first = r.json()
    assert api.delete(first[-1]["id"]).status == 204           # the cursor's own row
    assert api.delete(created[5]["id"]).status == 204          # a row of the next page
    rest, _ = api.list_all(query_params(link_next(r)))
    expected = [t["id"] for t in created[4:] if t["id"] != created[5]["id"]]
    assert ids(first) == ids(created[:4])
    assert ids(rest) == expected


def test_cursor_with_same_query_works_and_is_opaque(api):
    for i in range(6):
        api.create_ok(title=f"t{i}")
    r = api.list({"limit": "2"})
    nxt = link_next(r)
    assert nxt is not None
    cursor = dict(query_params(nxt)).get("cursor")
    assert cursor, nxt
    a = api.request("GET", nxt)
    b = api.request("GET", nxt)
    assert a.status == b.status == 200 and a.json() == b.json()   # a cursor can be reused
    assert len(a.json()) == 2


@pytest.mark.parametrize("change", [
    {"status": "pending"}, {"sort": "title"}, {"order": "asc"}, {"q": "t1"}, {"tag": "x"},
    {"priority": "high"}, {"due_before": "2031-01-01T00:00:00Z"},
    {"due_after": "2000-01-01T00:00:00Z"},
], ids=lambda c: next(iter(c)))
def test_cursor_with_other_filters_or_sort_is_400(api, change):
    for i in range(6):
        api.create_ok(title=f"t{i}")
    nxt = link_next(api.list({"limit": "2"}))
    assert nxt is not None
    assert_invalid_query(api.request("GET", with_params(nxt, **change)))


def test_cursor_of_another_user_is_400(api):
    for i in range(6):
        api.create_ok(title=f"t{i}")
    nxt = link_next(api.list({"limit": "2"}))
    assert nxt is not None
    other = api.for_user(api.user + "-b")
    for i in range(6):
        other.create_ok(title=f"o{i}")
    path = other.tasks_path() + "?" + urllib.parse.urlsplit(nxt).query
    assert_invalid_query(other.request("GET", path))


@pytest.mark.parametrize("cursor", ["garbage", "AAAA", "!!!", "x" * 600, "eyJ9", "e30",
                                    "e30=", "%00", "MTIz", "null", "-1"])
def test_garbage_cursor_is_400(api, cursor):
    api.create_ok(title="t")
    qs = "cursor=" + (cursor if cursor.startswith("%") else urllib.parse.quote(cursor, safe=""))
    assert_invalid_query(api.list(qs), "cursor")


# ------------------------------------------------------------------ parameters

@pytest.mark.parametrize("qs, param", [
    ("foo=1", "foo"),
    ("page=2", "page"),
    ("offset=10", "offset"),
    ("user_id=someone", "user_id"),
    ("status=all&status=pending", "status"),
    ("sort=title&sort=due_at", "sort"),
    ("order=asc&order=desc", "order"),
    ("limit=10&limit=20", "limit"),
    ("q=a&q=b", "q"),
    ("due_before=2030-01-01T00:00:00Z&due_before=2031-01-01T00:00:00Z", "due_before"),
])
def test_unknown_or_repeated_parameter_is_400(api, qs, param):
    assert_invalid_query(api.list(qs), param)
