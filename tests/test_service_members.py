"""Service members: a requester who belongs to a service sees every change to it, nothing more."""
from __future__ import annotations

from engine.accounts import create_user, issue_token
from webui.extensions import db

from .client import NORMAL_CHANGE
from .test_pages import csrf, sign_in

DECEMBER = {"from": "2037-12-01T00:00:00Z", "to": "2037-12-15T00:00:00Z"}
PAYROLL_CHANGE = {**NORMAL_CHANGE, "title": "Patch payroll database", "services": ["payroll"],
                  "planned_start": "2037-12-08T20:00:00Z", "planned_end": "2037-12-08T23:00:00Z"}


def requester(api, username: str) -> str:
    """Another requester (alice is the only demo one), with an API token."""
    with api.app.app_context():
        user = create_user(db.session, username, ["requester"])
        token = issue_token(db.session, user)
        db.session.commit()
    return token


def submit_as(api, token: str, body: dict) -> dict:
    response = api.request("POST", "/api/changes", token=token, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def members(api, key: str = "crm-web") -> list[str]:
    response = api.get(f"/api/services/{key}/members", "alice")
    assert response.status_code == 200, response.get_json()
    return [m["username"] for m in response.get_json()]


def visible_to_alice(api, client, crm: dict, payroll: dict) -> dict:
    """What alice can see of rita's two changes, in each place changes are shown."""
    listed = {c["id"] for c in api.get("/api/changes", "alice").get_json()["items"]}
    calendar = {e["id"] for e in api.get("/api/calendar", "alice", query_string=DECEMBER).get_json()["entries"]
                if e["type"] == "change"}
    list_page = client.get("/changes").get_data(as_text=True)
    month = client.get("/calendar?date=2037-12-05").get_data(as_text=True)
    seen = {}
    for change in (crm, payroll):
        seen[change["services"][0]] = {
            "list": change["id"] in listed,
            "detail": api.get(f"/api/changes/{change['id']}", "alice").status_code,
            "trace": api.get(f"/api/changes/{change['id']}/trace", "alice").status_code,
            "list page": change["number"] in list_page,
            "page": client.get(f"/changes/{change['number']}").status_code,
            "calendar": change["id"] in calendar,
            "calendar page": change["number"] in month,
        }
    return seen


def test_a_member_sees_the_services_changes_until_removed(app, api):
    rita = requester(api, "rita")
    crm, payroll = submit_as(api, rita, NORMAL_CHANGE), submit_as(api, rita, PAYROLL_CHANGE)
    client = app.test_client()
    sign_in(client, "alice")
    hidden = {"list": False, "detail": 403, "trace": 403, "list page": False, "page": 403, "calendar": False,
              "calendar page": False}
    shown = {"list": True, "detail": 200, "trace": 200, "list page": True, "page": 200, "calendar": True,
             "calendar page": True}
    assert visible_to_alice(api, client, crm, payroll) == {"crm-web": hidden, "payroll": hidden}

    added = api.post("/api/services/crm-web/members", "morgan", json={"username": "alice"})
    assert added.status_code == 201 and added.get_json()["username"] == "alice", added.get_json()
    assert members(api) == ["alice"] and members(api, "payroll") == []
    assert visible_to_alice(api, client, crm, payroll) == {"crm-web": shown, "payroll": hidden}
    refused = api.get(f"/api/changes/{payroll['id']}", "alice").get_json()
    assert "member" in refused["message"], refused
    # the scope combines with the list filters
    assert api.get("/api/changes", "alice", query_string={"service": "crm-web"}).get_json()["total"] == 1

    assert api.request("DELETE", "/api/services/crm-web/members/alice", "morgan").status_code == 204
    assert members(api) == []
    assert visible_to_alice(api, client, crm, payroll) == {"crm-web": hidden, "payroll": hidden}
    again = api.request("DELETE", "/api/services/crm-web/members/alice", "morgan")
    assert again.status_code == 404, again.get_json()


def test_only_admins_and_change_managers_change_membership(api):
    for user in ("alice", "audrey", "sam", "casey"):
        refused = api.post("/api/services/crm-web/members", user, json={"username": "alice"})
        assert refused.status_code == 403, (user, refused.get_json())
    assert api.post("/api/services/crm-web/members", "ada", json={"username": "alice"}).status_code == 201
    assert api.request("DELETE", "/api/services/crm-web/members/alice", "audrey").status_code == 403
    assert members(api) == ["alice"]
    twice = api.post("/api/services/crm-web/members", "ada", json={"username": "alice"})
    assert twice.status_code == 409, twice.get_json()


def test_bad_member_requests_name_the_field(api):
    for body in ({"username": "nobody"}, {}, {"username": ""}):
        refused = api.post("/api/services/crm-web/members", "morgan", json=body)
        assert refused.status_code == 422, (body, refused.get_json())
        assert "username" in {e["field"] for e in refused.get_json()["errors"]}, refused.get_json()
    assert api.post("/api/services/no-such/members", "morgan", json={"username": "alice"}).status_code == 404
    assert api.get("/api/services/no-such/members", "alice").status_code == 404
    assert members(api) == []


def test_the_service_page_lists_and_edits_members(app, api):
    manager = app.test_client()
    sign_in(manager, "morgan")
    page = manager.get("/admin/services/crm-web").get_data(as_text=True)
    assert 'id="members"' in page and "No members." in page and 'for="username"' in page

    unknown = manager.post("/admin/services/crm-web/members", data={"username": "nobody", "csrf_token": csrf(page)})
    html = unknown.get_data(as_text=True)
    assert unknown.status_code == 422 and 'id="username-error"' in html and "no active user" in html
    assert 'value="nobody"' in html and members(api) == []

    added = manager.post("/admin/services/crm-web/members", data={"username": "alice", "csrf_token": csrf(page)})
    assert added.status_code == 302 and members(api) == ["alice"]
    page = manager.get("/admin/services/crm-web").get_data(as_text=True)
    assert "is now a member of crm-web" in page and "Remove alice from crm-web" in page

    reader = app.test_client()
    sign_in(reader, "audrey")
    seen = reader.get("/admin/services/crm-web").get_data(as_text=True)
    assert "alice" in seen and "Add member" not in seen and "Remove alice" not in seen
    assert reader.post("/admin/services/crm-web/members/alice/remove",
                       data={"csrf_token": csrf(seen)}).status_code == 403
    assert members(api) == ["alice"]

    removed = manager.post("/admin/services/crm-web/members/alice/remove", data={"csrf_token": csrf(page)})
    assert removed.status_code == 302 and members(api) == []
