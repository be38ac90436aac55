"""SQL statements per request: a budget for each endpoint people hit most, and lists whose cost does
not grow with the rows they show (no N+1 queries).

How BUDGET was measured: tests/query_count.py counts every statement that reaches the app's engine
(`before_cursor_execute`) during one test-client request, on the test database conftest builds
(demo seed, nothing else) — on SQLite and on PostgreSQL. Jobs the in-process dispatcher runs right
after the commit (deliveries, timers, the conflict check) are not counted: with Redis they run on
a worker, not in the request. Each bound is the larger of the two counts plus 2; the comment gives
them as SQLite · PostgreSQL (measured 2026-12-02). Lower a bound when a change makes a request
cheaper, so the saving cannot slip back unnoticed.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from engine.accounts import create_user, issue_token
from engine.catalog import create_service
from engine.demo import demo_password
from webui.extensions import db

from .client import NORMAL_CHANGE
from .query_count import count_statements

BUDGET = {
    # a normal change from submission to closure, each step by the person whose task it is
    "POST /api/changes": 47,                                      # 45 · 41
    "GET /api/tasks": 6,                                          # 4 · 4 (the most of any step's inbox)
    "POST /api/tasks/<id>/complete Authorize change": 48,         # 46 · 43
    "POST /api/changes/<id>/evidence": 13,                        # 11 · 11
    "POST /api/tasks/<id>/complete Schedule change": 26,          # 24 · 24
    "POST /api/tasks/<id>/complete Implement change": 37,         # 35 · 33
    "POST /api/tasks/<id>/complete Post-implementation review": 36,  # 34 · 32
    "POST /api/tasks/<id>/complete Business acceptance": 37,      # 35 · 33
    # what people read
    "GET /api/changes": 8,                                        # 6 · 6
    "GET /api/changes?state&type&risk&service&requester": 8,      # 6 · 6
    "GET /api/changes/<id>": 7,                                   # 5 · 5
    "GET /api/changes/<id>/trace": 17,                            # 15 · 15
    "GET /api/changes/<id>/evidence": 6,                          # 4 · 4
    "GET /api/changes/<id>/impact": 7,                            # 5 · 5
    "GET /api/changes/<id>/conflicts": 11,                        # 9 · 9
    "POST /api/schedule/check": 9,                                # 7 · 7
    "GET /api/calendar": 6,                                       # 4 · 4
    "GET /api/dashboard": 9,                                      # 7 · 7
    "GET /api/admin/outbox": 6,                                   # 4 · 4
    "GET /api/services": 5,                                       # 3 · 3
    "GET /inbox": 6,                                              # 4 · 4
    "GET /changes": 9,                                            # 7 · 7
    "GET /changes/<number>": 20,                                  # 18 · 18
    "GET /calendar": 8,                                           # 6 · 6
    "GET /dashboards": 10,                                        # 8 · 8
}

# Windows start on a Monday at least a week ahead, two hours apart: in the future whenever the tests
# run, never overlapping each other, and all in one calendar week (the calendar page shows a week).
_TODAY = datetime.now(timezone.utc).replace(hour=8, minute=0, second=0, microsecond=0)
MONDAY = _TODAY + timedelta(days=7 + (7 - _TODAY.weekday()) % 7)


def window(slot: int) -> dict:
    start = MONDAY + timedelta(hours=2 * slot)
    return {"planned_start": start.isoformat(), "planned_end": (start + timedelta(hours=1, minutes=30)).isoformat()}


def implemented(slot: int) -> dict:
    start = MONDAY + timedelta(hours=2 * slot)
    return {"actual_start": (start + timedelta(minutes=5)).isoformat(),
            "actual_end": (start + timedelta(hours=1)).isoformat(), "implementation_result": "completed"}


def planned_days() -> dict:
    return {"from": MONDAY.isoformat(), "to": (MONDAY + timedelta(days=2)).isoformat()}


# -- measuring ------------------------------------------------------------------------------------

def measure(api, method: str, path: str, user: str | None = None, *, token: str | None = None, client=None,
            expect: int = 200, **kwargs):
    """(response, statements) of one request: as a demo user or token (API), or in a signed-in browser."""
    with count_statements(api.app) as statements:
        if client is not None:
            response = client.open(path, method=method, **kwargs)
        else:
            response = api.request(method, path, user, token=token, **kwargs)
    assert response.status_code == expect, response.get_data(as_text=True)[:2000]
    return response, statements


def within_budget(measured: dict) -> None:
    """Every endpoint's request within its BUDGET; the statements of each one over it, to see why."""
    over = {endpoint: len(s) for endpoint, s in measured.items() if len(s) > BUDGET[endpoint]}
    assert not over, "\n\n".join(f"{endpoint}: {n} statements, budget {BUDGET[endpoint]}\n{measured[endpoint].report()}"
                                 for endpoint, n in over.items())


def keep_most(measured: dict, endpoint: str, statements) -> None:
    if endpoint not in measured or len(statements) > len(measured[endpoint]):
        measured[endpoint] = statements


def signed_in(app, username: str):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post("/login", data={"username": username, "password": demo_password(username),
                                         "csrf_token": csrf})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:500]
    return client


def same_cost(one: dict, six: dict) -> None:
    """Each endpoint sent as many statements for six rows as for one; the statements of each that did not."""
    grown = {endpoint: (len(one[endpoint]), len(six[endpoint])) for endpoint in one
             if len(six[endpoint]) != len(one[endpoint])}
    assert not grown, "\n\n".join(f"{endpoint}: {before} statements for one row, {after} for six\n"
                                    f"{six[endpoint].report()}" for endpoint, (before, after) in grown.items())


# -- the people and services lists are made of ---------------------------------------------------

def add_team(api, index: int, *, criticality: int = 3) -> dict:
    """A requester, an implementer and a service owner (with e-mail, so they are notified), and
    service svc<index> the owner owns. Rows must name people and services no other row names: the
    session loads each person once, so rows sharing them would hide a query per row."""
    tokens = {}
    with api.app.app_context():
        for role, name in (("requester", f"req{index}"), ("implementer", f"imp{index}"),
                           ("service_owner", f"own{index}")):
            user = create_user(db.session, name, [role], email=f"{name}@example.invalid")
            tokens[role] = issue_token(db.session, user)
        db.session.flush()
        create_service(db.session, None, {"key": f"svc{index}", "name": f"Service {index}", "description": "",
                                          "criticality": criticality, "owner": f"own{index}"},
                       check_permission=False)
        db.session.commit()
    return tokens


def task_id(api, user: str, change_id: int, name: str) -> str:
    return api.task(user, change_id, name)["id"]


# -- budgets ----------------------------------------------------------------------------------------

def walk(api, slot: int, measured: dict) -> int:
    """A normal change from submission to closure, each request counted; returns the change's id."""
    response, statements = measure(api, "POST", "/api/changes", "alice", expect=201,
                                   json={**NORMAL_CHANGE, **window(slot)})
    keep_most(measured, "POST /api/changes", statements)
    change_id = response.get_json()["id"]

    def step(user: str, name: str, data: dict) -> None:
        _, inbox = measure(api, "GET", "/api/tasks", user)
        keep_most(measured, "GET /api/tasks", inbox)
        _, statements = measure(api, "POST", f"/api/tasks/{task_id(api, user, change_id, name)}/complete", user,
                                json={"data": data})
        keep_most(measured, f"POST /api/tasks/<id>/complete {name}", statements)

    step("morgan", "Authorize change", {"decision": "approve", "comment": "Low risk."})
    _, statements = measure(api, "POST", f"/api/changes/{change_id}/evidence", "alice", expect=201,
                            json={"kind": "test_result", "url": f"https://ci.example.com/{change_id}/tests"})
    keep_most(measured, "POST /api/changes/<id>/evidence", statements)
    api.attach(change_id, "business_sign_off")
    step("morgan", "Schedule change", {**window(slot), "implementer": "ivan"})
    api.wait_for_window(change_id)
    step("ivan", "Implement change", implemented(slot))
    api.attach(change_id, "verification", user="ivan")
    step("morgan", "Post-implementation review", {"close_code": "successful", "close_notes": "Went as planned."})
    step("sam", "Business acceptance", {"decision": "approve", "comment": "Service validated."})
    assert api.change(change_id)["state"] == "closed"
    return change_id


def test_each_step_of_a_normal_change_stays_within_its_query_budget(api):
    measured: dict = {}
    walk(api, 0, measured)
    within_budget(measured)


def test_what_people_read_most_stays_within_its_query_budget(api, app):
    closed = walk(api, 0, {})
    api.submit(**window(1))  # and one waiting for authorization: the inbox, calendar and dashboards show it
    number = api.change(closed)["number"]
    reads = {
        "GET /api/tasks": ("GET", "/api/tasks", "morgan", {}),
        "GET /api/changes": ("GET", "/api/changes", "audrey", {}),
        "GET /api/changes?state&type&risk&service&requester": ("GET", "/api/changes", "audrey", {"query_string": {
            "state": "closed", "type": "normal", "risk": "low", "service": "crm-web", "requester": "alice"}}),
        "GET /api/changes/<id>": ("GET", f"/api/changes/{closed}", "audrey", {}),
        "GET /api/changes/<id>/trace": ("GET", f"/api/changes/{closed}/trace", "audrey", {}),
        "GET /api/changes/<id>/evidence": ("GET", f"/api/changes/{closed}/evidence", "audrey", {}),
        "GET /api/changes/<id>/impact": ("GET", f"/api/changes/{closed}/impact", "audrey", {}),
        "GET /api/changes/<id>/conflicts": ("GET", f"/api/changes/{closed}/conflicts", "audrey", {}),
        "POST /api/schedule/check": ("POST", "/api/schedule/check", "morgan", {"json": {
            "start": window(1)["planned_start"], "end": window(1)["planned_end"], "services": ["crm-web"]}}),
        "GET /api/calendar": ("GET", "/api/calendar", "audrey", {"query_string": planned_days()}),
        "GET /api/dashboard": ("GET", "/api/dashboard", "audrey", {}),
        "GET /api/admin/outbox": ("GET", "/api/admin/outbox", "audrey", {}),
        "GET /api/services": ("GET", "/api/services", "audrey", {}),
    }
    measured = {endpoint: measure(api, method, path, user, **kwargs)[1]
                for endpoint, (method, path, user, kwargs) in reads.items()}
    browser = signed_in(app, "morgan")
    for endpoint, path in (("GET /inbox", "/inbox"), ("GET /changes", "/changes"),
                           ("GET /changes/<number>", f"/changes/{number}"),
                           ("GET /calendar", f"/calendar?view=week&date={MONDAY.date().isoformat()}"),
                           ("GET /dashboards", "/dashboards")):
        measured[endpoint] = measure(api, "GET", path, client=browser)[1]
    within_budget(measured)


# -- no N+1: a list costs the same for one row as for six ------------------------------------------

def add_change(api, index: int) -> int:
    """Change <index>: its own requester, implementer, service and service owner, its own window and
    a maintenance window on its service; authorized, so its requester was told and it waits to be
    scheduled by a change manager."""
    tokens = add_team(api, index)
    response = api.request("POST", "/api/changes", token=tokens["requester"], json={
        **NORMAL_CHANGE, **window(index), "services": ["crm-web", f"svc{index}"], "implementer": f"imp{index}"})
    assert response.status_code == 201, response.get_json()
    change_id = response.get_json()["id"]
    api.act("morgan", change_id, {"decision": "approve"})
    start = MONDAY + timedelta(hours=2 * index, minutes=90)
    response = api.post("/api/windows", "morgan", json={
        "kind": "maintenance", "name": f"Patch slot {index}", "services": [f"svc{index}"],
        "starts_at": start.isoformat(), "ends_at": (start + timedelta(minutes=30)).isoformat()})
    assert response.status_code == 201, response.get_json()
    return change_id


def read_lists(api, app, rows: int) -> dict:
    """Each list's statements, having checked that it shows `rows` rows (else the comparison is void)."""
    def entries(body, kind):
        return len([e for e in body["entries"] if e["type"] == kind])

    lists = {
        "GET /api/tasks": ("GET", "/api/tasks", "morgan", {}, lambda body: len(body)),
        "GET /api/changes": ("GET", "/api/changes", "audrey", {}, lambda body: len(body["items"])),
        "GET /api/changes?state&type&risk&service": ("GET", "/api/changes", "audrey", {"query_string": {
            "state": "scheduled", "type": "normal", "risk": "low", "service": "crm-web"}},
            lambda body: len(body["items"])),
        "GET /api/calendar": ("GET", "/api/calendar", "audrey", {"query_string": planned_days()},
                              lambda body: min(entries(body, "change"), entries(body, "maintenance"))),
        # each requester heard their change was approved
        "GET /api/admin/outbox": ("GET", "/api/admin/outbox", "audrey", {},
                                  lambda body: len({n["recipient"] for n in body["items"]} & REQUESTERS)),
        "POST /api/schedule/check": ("POST", "/api/schedule/check", "morgan", {"json": {
            "start": MONDAY.isoformat(), "end": (MONDAY + timedelta(days=1)).isoformat(),
            "services": [f"svc{i}" for i in range(rows)]}},
            lambda body: len([c for c in body["conflicts"] if c["kind"] == "same_service"])),
        "GET /api/dashboard": ("GET", "/api/dashboard", "audrey", {},
                               lambda body: len([s for s in body["service_impact"] if s["service"] in SERVICES])),
    }
    measured = {}
    for endpoint, (method, path, user, kwargs, shown) in lists.items():
        response, measured[endpoint] = measure(api, method, path, user, **kwargs)
        assert shown(response.get_json()) == rows, (endpoint, response.get_json())
    browser = signed_in(app, "morgan")
    pages = {"GET /inbox": ("/inbox", r"CHG\d+"), "GET /changes": ("/changes", r"CHG\d+"),
             "GET /calendar": (f"/calendar?view=week&date={MONDAY.date().isoformat()}", r"CHG\d+"),
             "GET /dashboards": ("/dashboards", r"\bsvc\d+\b")}  # open changes per service
    for endpoint, (path, row) in pages.items():
        response, measured[endpoint] = measure(api, "GET", path, client=browser)
        assert len(set(re.findall(row, response.get_data(as_text=True)))) == rows, endpoint
    return measured


REQUESTERS = {f"req{i}" for i in range(6)}
SERVICES = {f"svc{i}" for i in range(6)}


def test_lists_of_changes_tasks_windows_and_notifications_cost_the_same_for_one_row_as_for_six(api, app):
    add_change(api, 0)
    one = read_lists(api, app, 1)
    for index in range(1, 6):
        add_change(api, index)
    six = read_lists(api, app, 6)
    same_cost(one, six)


def change_with(api, slot: int, rows: int) -> int:
    """A change on `rows` services (each with its own owner), with `rows` pieces of evidence each
    uploaded by someone else, scheduled — so every owner was notified — and waiting for its window."""
    teams = [add_team(api, 10 * slot + i) for i in range(rows)]
    change_id = api.submit(**window(slot), services=[f"svc{10 * slot + i}" for i in range(rows)])["id"]
    api.act("morgan", change_id, {"decision": "approve"})
    for i, tokens in enumerate(teams):
        response = api.request("POST", f"/api/changes/{change_id}/evidence", token=tokens["implementer"], json={
            "kind": "test_result", "url": f"https://ci.example.com/{change_id}/run/{i}"})
        assert response.status_code == 201, response.get_json()
    api.attach(change_id, "business_sign_off")
    api.act("morgan", change_id, {**window(slot), "implementer": "ivan"}, name="Schedule change")
    trace = api.trace(change_id)
    uploaders = {e["uploaded_by"] for e in trace["evidence"] if e["kind"] == "test_result"}
    owners_told = {n["recipient"] for n in trace["notifications"]} & {f"own{10 * slot + i}" for i in range(rows)}
    assert len(uploaders) == len(owners_told) == len(trace["change"]["services"]) == rows, trace
    return change_id


def read_change(api, app, change_id: int) -> dict:
    number = api.change(change_id)["number"]
    measured = {endpoint: measure(api, "GET", path, "audrey")[1] for endpoint, path in (
        ("GET /api/changes/<id>", f"/api/changes/{change_id}"),
        ("GET /api/changes/<id>/trace", f"/api/changes/{change_id}/trace"),
        ("GET /api/changes/<id>/evidence", f"/api/changes/{change_id}/evidence"),
        ("GET /api/changes/<id>/impact", f"/api/changes/{change_id}/impact"),
        ("GET /api/changes/<id>/conflicts", f"/api/changes/{change_id}/conflicts"))}
    _, measured["GET /changes/<number>"] = measure(api, "GET", f"/changes/{number}", client=signed_in(app, "morgan"))
    _, measured["POST /api/changes/<id>/evidence"] = measure(
        api, "POST", f"/api/changes/{change_id}/evidence", "alice", expect=201,
        json={"kind": "rollback_plan", "url": f"https://wiki.example.com/{change_id}/rollback"})
    return measured


def test_a_change_costs_the_same_to_read_with_one_service_evidence_and_owner_told_as_with_six(api, app):
    one = read_change(api, app, change_with(api, 1, 1))
    six = read_change(api, app, change_with(api, 2, 6))
    same_cost(one, six)


def test_listing_services_costs_the_same_for_one_owner_as_for_seven(api):
    def listed() -> tuple[int, int]:
        response, statements = measure(api, "GET", "/api/services", "audrey", query_string={"criticality": 4})
        return len({s["owner"] for s in response.get_json()}), len(statements)

    owners_one, one = listed()  # the demo's intranet, owned by sam
    for index in range(6):
        add_team(api, index, criticality=4)
    owners_seven, seven = listed()
    assert (owners_one, owners_seven) == (1, 7)
    assert seven == one


# -- N+1s found by these tests and fixed: the lists of standard changes and the people told about a task --

TEMPLATE = {"name": "Publish an intranet news page", "category": "service_catalog",
            "description": "A new page in the intranet's news section.",
            "implementation_plan": "Publish the page from the CMS staging area.",
            "rollback_plan": "Unpublish the page in the CMS.", "test_plan": "Open the page as an employee.",
            "allowed_services": ["intranet"], "max_risk": "low"}


def standard_change(api, index: int) -> None:
    """A standard change raised from template tpl<index>, proposed by sam and approved by morgan."""
    key = f"tpl{index}"
    assert api.post("/api/templates", "sam", json={**TEMPLATE, "key": key}).status_code == 201
    assert api.post(f"/api/templates/{key}/versions/1/decision", "morgan",
                    json={"decision": "approve"}).status_code == 200
    response = api.post("/api/changes", "alice", json={
        "title": f"Publish news page {index}", "change_type": "standard", "template": key,
        "services": ["intranet"], "impact": 3, "urgency": 3})
    assert response.status_code == 201, response.get_json()


def test_listing_standard_changes_costs_the_same_for_one_template_as_for_six(api):
    def listed() -> tuple[set, int]:
        response, statements = measure(api, "GET", "/api/changes", "audrey", query_string={"type": "standard"})
        return {c["template"]["key"] for c in response.get_json()["items"]}, len(statements)

    standard_change(api, 0)
    templates_one, one = listed()
    for index in range(1, 6):
        standard_change(api, index)
    templates_six, six = listed()
    assert (len(templates_one), len(templates_six)) == (1, 6)
    assert six == one


def test_submitting_and_authorizing_cost_the_same_with_one_change_manager_as_with_six(api):
    def submit_and_authorize(slot: int) -> dict:
        response, submitted = measure(api, "POST", "/api/changes", "alice", expect=201,
                                       json={**NORMAL_CHANGE, **window(slot)})
        change_id = response.get_json()["id"]
        _, authorized = measure(api, "POST", f"/api/tasks/{task_id(api, 'morgan', change_id, 'Authorize change')}"
                                "/complete", "morgan", json={"data": {"decision": "approve"}})
        told = {n["recipient"] for n in api.trace(change_id)["notifications"] if n["kind"] == "task_waiting"}
        return {"managers told": len(told - {"alice"}), "POST /api/changes": len(submitted),
                "POST /api/tasks/<id>/complete Authorize change": len(authorized)}

    submit_and_authorize(0)  # the first loads the version's documents into the process's spec cache
    one = submit_and_authorize(1)
    with api.app.app_context():
        for index in range(5):
            create_user(db.session, f"manager{index}", ["change_manager"], email=f"manager{index}@example.invalid")
        db.session.commit()
    six = submit_and_authorize(2)
    assert (one.pop("managers told"), six.pop("managers told")) == (1, 6)
    assert six == one
