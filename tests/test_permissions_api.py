"""Who may call what: authentication, the role matrix, requester scoping and task ownership."""
from __future__ import annotations

from datetime import timedelta

from engine.accounts import create_user, issue_token
from engine.config import PROJECT_ROOT
from engine.db import utcnow
from engine.permissions import MATRIX
from webui.extensions import db

from .client import NORMAL_CHANGE

NEW_SERVICE = {"key": "billing", "name": "Billing", "criticality": 2}
UNCHECKED_ROUTES = ("/api/openapi.json", "/api/docs")


def make_user(api, username: str, *roles: str, active: bool = True, expires_in: timedelta | None = None) -> str:
    """Create a user through the engine (as the CLI does) and return a fresh API token."""
    with api.app.app_context():
        user = create_user(db.session, username, list(roles))
        user.active = active
        token = issue_token(db.session, user, expires_at=utcnow() + expires_in if expires_in else None)
        db.session.commit()
    return token


def call(api, method: str, path: str, token: str | None = None, **kwargs):
    return api.request(method, path, token=token, **kwargs)


def protected_calls(api) -> list[tuple[str, str, dict]]:
    """One call per protected endpoint, each with a body that would be accepted from the right user."""
    change = api.submit()
    task = api.task("morgan", change["id"])
    bpmn = (PROJECT_ROOT / "processes" / "standard_change.bpmn").read_text(encoding="utf-8")
    return [
        ("GET", "/api/changes", {}),
        ("POST", "/api/changes", {"json": NORMAL_CHANGE}),
        ("GET", f"/api/changes/{change['id']}", {}),
        ("GET", f"/api/changes/{change['id']}/trace", {}),
        ("GET", "/api/tasks", {}),
        ("GET", f"/api/tasks/{task['id']}", {}),
        ("POST", f"/api/tasks/{task['id']}/claim", {}),
        ("POST", f"/api/tasks/{task['id']}/complete", {"json": {"data": {"decision": "approve"}}}),
        ("GET", "/api/services", {}),
        ("POST", "/api/services", {"json": NEW_SERVICE}),
        ("GET", "/api/process-definitions", {}),
        ("POST", "/api/process-definitions", {"json": {"files": {"standard_change.bpmn": bpmn}}}),
        ("GET", "/api/process-definitions/normal_change/versions", {}),
    ]


def assert_nothing_changed(api, change_count: int = 1) -> None:
    assert api.get("/api/changes", "audrey").get_json()["total"] == change_count
    assert NEW_SERVICE["key"] not in [s["key"] for s in api.get("/api/services", "audrey").get_json()]
    assert all(d["versions"] == 1 for d in api.get("/api/process-definitions", "audrey").get_json())
    assert all(t["assignee"] is None and t["status"] == "ready" for t in api.inbox("morgan"))


# -- authentication -----------------------------------------------------------------------------

def test_protected_endpoints_refuse_missing_and_bad_tokens(api):
    expired = make_user(api, "old", "auditor", expires_in=timedelta(minutes=-1))
    disabled = make_user(api, "gone", "auditor", active=False)
    credentials = [{}, {"token": "not-a-token"}, {"token": expired}, {"token": disabled},
                   {"headers": {"Authorization": "Basic YWxpY2U6c2VjcmV0"}},
                   {"headers": {"Authorization": "Bearer "}}]
    for method, path, body in protected_calls(api):
        for credential in credentials:
            response = call(api, method, path, **credential, **body)
            assert response.status_code == 401, (method, path, credential, response.get_json())
            assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), (method, path)
            assert "token" in response.get_json()["message"]
    assert_nothing_changed(api)


def test_health_and_api_document_need_no_token(api):
    assert api.get("/api/health").status_code == 200
    spec = api.get("/api/openapi.json")
    assert spec.status_code == 200 and "/api/changes" in spec.get_json()["paths"]


def test_callers_are_refused_before_their_request_body_is_checked(api):
    """Without a token (or the role) the answer is 401 (or 403) — not a list of what the body lacks."""
    answers = {(method, path): call(api, method, path, json={"unexpected": True}).status_code
               for method, path, _body in protected_calls(api)}
    answers[("POST /api/changes", "audrey")] = api.post("/api/changes", "audrey", json={"unexpected": True}).status_code
    expected = {key: 403 if key[1] == "audrey" else 401 for key in answers}
    assert answers == expected
    assert_nothing_changed(api)


# -- the role matrix ----------------------------------------------------------------------------

def test_auditor_reads_everything_and_changes_nothing(api):
    change_id = api.submit()["id"]
    task = api.task("morgan", change_id)
    for path in (f"/api/changes/{change_id}", f"/api/changes/{change_id}/trace", f"/api/tasks/{task['id']}"):
        assert api.get(path, "audrey").status_code == 200, path
    assert [c["id"] for c in api.get("/api/changes", "audrey").get_json()["items"]] == [change_id]

    writes = [(m, p, b) for m, p, b in protected_calls(api) if m == "POST"]
    assert len(writes) == 5
    for method, path, body in writes:
        response = api.request(method, path, "audrey", **body)
        assert response.status_code == 403, (path, response.get_json())
        assert "auditor" in response.get_json()["message"], response.get_json()
    assert_nothing_changed(api, change_count=2)  # protected_calls submitted a second change


def test_requester_sees_only_own_changes(api):
    rita = make_user(api, "rita", "requester")
    mine = [api.submit()["id"], api.submit(title="Rotate CRM API keys")["id"]]
    response = call(api, "POST", "/api/changes", rita, json=NORMAL_CHANGE)
    assert response.status_code == 201
    theirs = response.get_json()["id"]

    page = api.get("/api/changes", "alice").get_json()
    assert ([c["id"] for c in page["items"]], page["total"]) == (sorted(mine, reverse=True), 2)
    assert api.get("/api/changes", "alice", query_string={"requester": "rita"}).get_json()["total"] == 0
    for path in (f"/api/changes/{theirs}", f"/api/changes/{theirs}/trace"):
        refused = api.get(path, "alice")
        assert refused.status_code == 403 and "requested" in refused.get_json()["message"], path
    task = api.task("morgan", theirs)
    assert api.get(f"/api/tasks/{task['id']}", "alice").status_code == 404  # not even its existence

    own = call(api, "GET", "/api/changes", rita).get_json()
    assert [c["id"] for c in own["items"]] == [theirs]
    for staff in ("audrey", "morgan", "ivan"):
        assert api.get("/api/changes", staff).get_json()["total"] == 3, staff


def test_tasks_can_only_be_taken_by_their_role(api):
    change_id = api.submit()["id"]
    task = api.task("morgan", change_id)
    refused = api.post(f"/api/tasks/{task['id']}/complete", "alice", json={"data": {"decision": "approve"}})
    assert refused.status_code == 403, refused.get_json()
    assert "change_manager" in refused.get_json()["message"]
    claim = api.post(f"/api/tasks/{task['id']}/claim", "ivan")
    assert claim.status_code == 403 and "change_manager" in claim.get_json()["message"]

    assert api.change(change_id)["state"] == "authorize"
    assert api.task("morgan", change_id)["assignee"] is None
    assert api.trace(change_id)["approvals"] == []
    api.complete("morgan", task["id"], {"decision": "approve"})
    assert api.change(change_id)["state"] == "scheduled"


def test_process_owner_deploys_definitions_and_requester_cannot(api):
    current = api.get("/api/process-definitions/normal_change/versions/1", "paula").get_json()["bpmn_xml"]
    edited = current.rstrip() + "\n<!-- revised: clarify the documentation -->\n"
    body = {"files": {"normal_change.bpmn": edited}, "note": "Clarify the documentation."}

    refused = api.post("/api/process-definitions", "alice", json=body)
    assert refused.status_code == 403 and "definition.deploy" in refused.get_json()["message"]
    versions = api.get("/api/process-definitions/normal_change/versions", "paula").get_json()
    assert [v["version"] for v in versions] == [1]

    deployed = api.post("/api/process-definitions", "paula", json=body)
    assert deployed.status_code == 201, deployed.get_json()
    assert [(v["process_key"], v["version"], v["deployed_by"]) for v in deployed.get_json()["deployed"]] == [
        ("normal_change", 2, "paula")]
    versions = api.get("/api/process-definitions/normal_change/versions", "alice").get_json()
    assert [v["version"] for v in versions] == [2, 1]
    change_id = api.submit()["id"]
    assert api.trace(change_id)["diagram"]["version"] == 2  # new changes run on the new version


# -- every route has a rule ---------------------------------------------------------------------

def test_every_api_route_declares_a_permission_rule(app):
    checked, missing = [], []
    for rule in app.url_map.iter_rules():
        path = rule.rule
        if not path.startswith("/api") or path in UNCHECKED_ROUTES or path.startswith("/api/docs/assets/"):
            continue
        action = getattr(app.view_functions[rule.endpoint], "permission_action", None)
        checked.append(rule.endpoint)
        if action not in MATRIX:
            missing.append((path, sorted(rule.methods), action))
    assert missing == []
    for endpoint in ("changes.create_change", "tasks.complete", "services.create_service",
                     "process_definitions.deploy", "health.health"):
        assert endpoint in checked, endpoint
