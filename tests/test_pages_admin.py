"""The admin pages: users and roles, services and dependencies, windows, standard-change templates."""
from __future__ import annotations

from engine.demo import demo_password
from engine.permissions import MATRIX

from .test_pages import csrf, sign_in
from .test_service_map import audit_kinds

TEMPLATE = {"key": "intranet-news", "name": "Publish an intranet news page", "category": "service_catalog",
            "rollback_plan": "Unpublish the page in the CMS.", "allowed_services": ["intranet"], "max_risk": "low"}


def signed_in(app, username):
    client = app.test_client()
    sign_in(client, username)
    return client


def token_of(client, path="/admin"):
    return csrf(client.get(path).get_data(as_text=True))


def sign_in_with(app, username, password):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": csrf(page)})


def test_every_admin_page_has_a_rule_in_the_matrix(app):
    actions = {rule.endpoint: getattr(app.view_functions[rule.endpoint], "permission_action", None)
               for rule in app.url_map.iter_rules() if rule.rule.startswith("/admin")}
    assert len(actions) >= 20 and all(action in MATRIX for action in actions.values())
    assert actions["pages.admin_user_password"] == actions["pages.admin_edit_user"] == "user.manage"


def test_the_admin_index_links_to_what_each_person_may_see(app):
    admin = signed_in(app, "ada")
    page = admin.get("/admin").get_data(as_text=True)
    for path in ("/admin/users", "/admin/services", "/admin/windows", "/admin/templates", "/admin/outbox"):
        assert f'href="{path}"' in page
    assert '>Admin</a>' in page and 'href="/admin" aria-current="page"' in page
    requester = signed_in(app, "alice")
    page = requester.get("/admin").get_data(as_text=True)
    assert 'href="/admin/services"' in page and 'href="/admin/templates"' in page
    assert 'href="/admin/users"' not in page and 'href="/admin/outbox"' not in page


def test_an_admin_creates_a_user_who_then_signs_in_with_the_password_set(app, api):
    admin = signed_in(app, "ada")
    page = admin.get("/admin/users/new").get_data(as_text=True)
    assert '<label for="username">' in page and 'name="roles" value="change_manager"' in page
    form = {"csrf_token": csrf(page), "username": "nora", "display_name": "Nora New", "email": "nora@example.org",
            "roles": ["implementer", "cab_member"], "password": "short", "password_repeat": "short"}
    refused = admin.post("/admin/users/new", data=form)
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="password-error"' in html and "at least 10 characters" in html
    assert 'value="nora"' in html and 'value="cab_member" checked' in html  # what was typed stays
    assert 'value="short"' not in html  # passwords are never sent back
    assert "nora" not in admin.get("/admin/users").get_data(as_text=True)  # nothing was stored
    mistyped = admin.post("/admin/users/new", data={**form, "password": "a long enough one", "password_repeat": "x"})
    assert mistyped.status_code == 422 and 'id="password_repeat-error"' in mistyped.get_data(as_text=True)
    taken = admin.post("/admin/users/new", data={**form, "username": "morgan", "password": "", "password_repeat": ""})
    assert taken.status_code == 409 and 'id="username-error"' in taken.get_data(as_text=True)
    no_roles = admin.post("/admin/users/new", data={**form, "roles": [], "password": "", "password_repeat": ""})
    assert no_roles.status_code == 422 and 'id="roles-error"' in no_roles.get_data(as_text=True)

    created = admin.post("/admin/users/new", data={**form, "password": "nora-first-pass",
                                                   "password_repeat": "nora-first-pass"})
    assert created.status_code == 302 and created.headers["Location"] == "/admin/users/nora"
    listing = admin.get("/admin/users").get_data(as_text=True)
    assert "nora@example.org" in listing and "implementer, cab member" in listing
    assert sign_in_with(app, "nora", "nora-first-pass").headers["Location"] == "/inbox"

    token = token_of(admin, "/admin/users/nora")
    edited = admin.post("/admin/users/nora", data={"csrf_token": token, "display_name": "Nora Newer",
                                                   "email": "not an address", "roles": ["implementer"]})
    assert edited.status_code == 422 and 'id="email-error"' in edited.get_data(as_text=True)
    admin.post("/admin/users/nora", data={"csrf_token": token, "display_name": "Nora Newer",
                                          "email": "nora@example.org", "roles": ["implementer"]})
    page = admin.get("/admin/users/nora").get_data(as_text=True)
    assert 'value="implementer" checked' in page and 'value="cab_member" checked' not in page
    assert 'value="Nora Newer"' in page
    admin.post("/admin/users/nora/password", data={"csrf_token": token, "password": "nora-second-pass",
                                                   "password_repeat": "nora-second-pass"})
    assert sign_in_with(app, "nora", "nora-first-pass").status_code == 401
    assert sign_in_with(app, "nora", "nora-second-pass").status_code == 302

    admin.post("/admin/users/nora/active", data={"csrf_token": token, "active": "0"})
    assert sign_in_with(app, "nora", "nora-second-pass").status_code == 401
    assert "deactivated" in admin.get("/admin/users").get_data(as_text=True)
    admin.post("/admin/users/nora/active", data={"csrf_token": token, "active": "1"})
    assert sign_in_with(app, "nora", "nora-second-pass").status_code == 302
    assert {"user_created", "password_set", "user_updated", "user_deactivated", "user_reactivated"} <= set(
        audit_kinds(api))


def test_the_last_admin_keeps_the_role_and_stays_active(app):
    admin = signed_in(app, "ada")
    token = token_of(admin, "/admin/users/ada")
    dropped = admin.post("/admin/users/ada", data={"csrf_token": token, "display_name": "Ada", "roles": ["auditor"]})
    assert dropped.status_code == 422 and "the last active admin keeps the admin role" in dropped.get_data(as_text=True)
    answer = admin.post("/admin/users/ada/active", data={"csrf_token": token, "active": "0"})
    shown = admin.get(answer.headers["Location"]).get_data(as_text=True)
    assert "The last active admin cannot be deactivated." in shown
    assert admin.get("/admin/users").status_code == 200  # still signed in, still an admin


def test_people_who_are_not_admins_get_403_on_the_users_pages(app):
    manager = signed_in(app, "morgan")
    token = token_of(manager, "/inbox")
    assert manager.get("/admin/users").status_code == 403
    assert manager.get("/admin/users/new").status_code == 403
    created = manager.post("/admin/users/new", data={"csrf_token": token, "username": "x", "roles": ["admin"]})
    assert created.status_code == 403
    assert manager.post("/admin/users/morgan", data={"csrf_token": token, "roles": ["admin"]}).status_code == 403
    assert manager.post("/admin/users/ada/active", data={"csrf_token": token, "active": "0"}).status_code == 403
    assert manager.post("/admin/users/ada/password", data={"csrf_token": token, "password": "taken-over-now",
                                                          "password_repeat": "taken-over-now"}).status_code == 403
    assert sign_in_with(app, "ada", demo_password("ada")).status_code == 302  # nothing changed
    assert ">Users and roles<" not in manager.get("/admin").get_data(as_text=True)


def test_auditors_see_the_lists_but_no_forms_and_their_posts_are_refused(app, api):
    window = api.post("/api/windows", "morgan", json={
        "kind": "blackout", "name": "Year-end freeze", "starts_at": "2037-12-24T00:00:00+00:00",
        "ends_at": "2037-12-27T00:00:00+00:00", "services": []}).get_json()
    api.post("/api/templates", "sam", json=TEMPLATE)
    auditor = signed_in(app, "audrey")
    pages = {path: auditor.get(path) for path in ("/admin/users", "/admin/users/ivan", "/admin/services",
                                                  "/admin/services/payroll", "/admin/windows",
                                                  f"/admin/windows/{window['id']}", "/admin/templates",
                                                  "/admin/templates/intranet-news")}
    assert {path: answer.status_code for path, answer in pages.items()} == {path: 200 for path in pages}
    for path, answer in pages.items():
        html = answer.get_data(as_text=True)
        assert html.count('method="post"') == 1, path  # only signing out
    assert "Ivan Implementer" in pages["/admin/users"].get_data(as_text=True)
    assert "Year-end freeze" in pages["/admin/windows"].get_data(as_text=True)
    assert "intranet-news" in pages["/admin/templates"].get_data(as_text=True)
    token = token_of(auditor)
    for path in ("/admin/users/new", "/admin/users/ivan", "/admin/users/ivan/active", "/admin/services/new",
                 "/admin/services/payroll", "/admin/services/payroll/dependencies", "/admin/windows/new",
                 f"/admin/windows/{window['id']}", f"/admin/windows/{window['id']}/delete",
                 "/admin/templates/new", "/admin/templates/intranet-news/versions/1/decision"):
        answer = auditor.post(path, data={"csrf_token": token, "decision": "approve", "active": "0"})
        assert answer.status_code == 403, path
    assert len(api.get("/api/windows", "audrey").get_json()) == 1
    assert api.get("/api/templates/intranet-news", "audrey").get_json()["status"] == "proposed"


def test_services_and_dependencies_from_the_page_with_errors_at_their_fields(app, api):
    manager = signed_in(app, "morgan")
    page = manager.get("/admin/services/new").get_data(as_text=True)
    form = {"csrf_token": csrf(page), "key": "Billing API", "name": "Billing API", "criticality": "2",
            "owner": "sam", "vendors": "Acme\n\nStripe\n"}
    refused = manager.post("/admin/services/new", data=form)
    assert refused.status_code == 422 and 'id="key-error"' in refused.get_data(as_text=True)
    assert 'value="Billing API"' in refused.get_data(as_text=True)
    nobody = manager.post("/admin/services/new", data={**form, "key": "billing-api", "owner": "nobody"})
    assert nobody.status_code == 422 and 'id="owner-error"' in nobody.get_data(as_text=True)
    assert api.get("/api/services/billing-api", "audrey").status_code == 404
    created = manager.post("/admin/services/new", data={**form, "key": "billing-api"})
    assert created.status_code == 302 and created.headers["Location"] == "/admin/services/billing-api"
    service = api.get("/api/services/billing-api", "audrey").get_json()
    assert (service["criticality"], service["owner"], service["vendors"]) == (2, "sam", ["Acme", "Stripe"])
    assert "billing-api" in manager.get("/admin/services").get_data(as_text=True)

    page = manager.get("/admin/services/billing-api").get_data(as_text=True)
    assert 'name="depends_on" type="text" value=""' in page and '<option value="identity">' in page
    token = csrf(page)
    unknown = manager.post("/admin/services/billing-api/dependencies", data={"csrf_token": token,
                                                                            "depends_on": "nope", "kind": "calls"})
    html = unknown.get_data(as_text=True)
    assert unknown.status_code == 422 and "no service &#39;nope&#39;" in html and 'id="depends_on-error"' in html
    assert 'value="nope"' in html
    loop = manager.post("/admin/services/billing-api/dependencies", data={"csrf_token": token,
                                                                         "depends_on": "billing-api", "kind": "calls"})
    assert loop.status_code == 422 and "a service cannot depend on itself" in loop.get_data(as_text=True)
    assert api.get("/api/services/billing-api", "audrey").get_json()["depends_on"] == []  # nothing stored
    added = manager.post("/admin/services/billing-api/dependencies", data={"csrf_token": token,
                                                                          "depends_on": "identity", "kind": "runs_on"})
    assert added.status_code == 302
    assert api.get("/api/services/billing-api", "audrey").get_json()["depends_on"][0]["key"] == "identity"
    twice = manager.post("/admin/services/billing-api/dependencies", data={"csrf_token": token,
                                                                          "depends_on": "identity", "kind": "calls"})
    assert twice.status_code == 409 and 'id="depends_on-error"' in twice.get_data(as_text=True)
    downstream = manager.get("/admin/services/identity").get_data(as_text=True)
    assert 'href="/admin/services/billing-api"' in downstream  # identity's dependents

    edited = manager.post("/admin/services/billing-api", data={"csrf_token": token, "name": " ", "criticality": "1"})
    assert edited.status_code == 422 and 'id="name-error"' in edited.get_data(as_text=True)
    manager.post("/admin/services/billing-api", data={"csrf_token": token, "name": "Billing", "criticality": "1",
                                                      "owner": "sam", "requires_maintenance_window": "on"})
    service = api.get("/api/services/billing-api", "audrey").get_json()
    assert (service["name"], service["criticality"], service["requires_maintenance_window"]) == ("Billing", 1, True)
    manager.post("/admin/services/billing-api/dependencies/identity/remove", data={"csrf_token": token})
    assert api.get("/api/services/billing-api", "audrey").get_json()["depends_on"] == []


def test_a_window_created_on_the_page_is_what_the_api_lists(app, api):
    manager = signed_in(app, "morgan")
    page = manager.get("/admin/windows/new").get_data(as_text=True)
    assert '<label for="rrule">' in page and 'type="datetime-local"' in page
    form = {"csrf_token": csrf(page), "kind": "maintenance", "name": "Sunday maintenance",
            "starts_at": "2037-12-06T01:00", "ends_at": "2037-12-06T05:00", "rrule": "FREQ=SOMETIMES",
            "timezone": "Europe/Berlin", "services": ["payroll"]}
    bad_rule = manager.post("/admin/windows/new", data=form)
    html = bad_rule.get_data(as_text=True)
    assert bad_rule.status_code == 422 and 'id="rrule-error"' in html
    assert 'value="FREQ=SOMETIMES"' in html and 'value="2037-12-06T01:00"' in html
    backwards = manager.post("/admin/windows/new", data={**form, "rrule": "FREQ=WEEKLY;BYDAY=SU",
                                                         "ends_at": "2037-12-05T05:00"})
    assert backwards.status_code == 422 and 'id="ends_at-error"' in backwards.get_data(as_text=True)
    no_zone = manager.post("/admin/windows/new", data={**form, "rrule": "", "timezone": "Mars/Olympus"})
    assert no_zone.status_code == 422 and 'id="timezone-error"' in no_zone.get_data(as_text=True)
    assert api.get("/api/windows", "audrey").get_json() == []  # nothing was stored

    created = manager.post("/admin/windows/new", data={**form, "rrule": "FREQ=WEEKLY;BYDAY=SU"})
    assert created.status_code == 302
    [window] = api.get("/api/windows", "audrey").get_json()
    assert (window["name"], window["rrule"], window["timezone"], window["services"], window["starts_at"]) == (
        "Sunday maintenance", "FREQ=WEEKLY;BYDAY=SU", "Europe/Berlin", ["payroll"], "2037-12-06T01:00:00+00:00")
    listing = manager.get("/admin/windows").get_data(as_text=True)
    assert "FREQ=WEEKLY;BYDAY=SU" in listing and "Europe/Berlin" in listing and "payroll" in listing
    assert "Sunday maintenance" not in manager.get("/admin/windows?kind=blackout").get_data(as_text=True)
    assert manager.get("/admin/windows?kind=sometimes").status_code == 400

    page = manager.get(f"/admin/windows/{window['id']}").get_data(as_text=True)
    assert 'value="2037-12-06T01:00"' in page and 'value="payroll" checked' in page
    manager.post(f"/admin/windows/{window['id']}", data={**form, "csrf_token": csrf(page), "kind": "blackout",
                                                         "rrule": "", "services": []})
    changed = api.get(f"/api/windows/{window['id']}", "audrey").get_json()
    assert (changed["kind"], changed["rrule"], changed["global"]) == ("blackout", None, True)
    manager.post(f"/admin/windows/{window['id']}/delete", data={"csrf_token": csrf(page)})
    assert api.get("/api/windows", "audrey").get_json() == []


def test_a_change_manager_decides_a_template_proposal_from_the_page(app, api):
    assert api.post("/api/templates", "sam", json=TEMPLATE).status_code == 201
    manager = signed_in(app, "morgan")
    listing = manager.get("/admin/templates").get_data(as_text=True)
    assert "Proposals waiting for a decision" in listing and 'href="/admin/templates/intranet-news"' in listing
    page = manager.get("/admin/templates/intranet-news").get_data(as_text=True)
    assert "Version 1 waits for a decision" in page and 'name="decision" value="reject"' in page
    rejected = manager.post("/admin/templates/intranet-news/versions/1/decision",
                            data={"csrf_token": csrf(page), "decision": "reject", "comment": ""})
    html = rejected.get_data(as_text=True)
    assert rejected.status_code == 422 and 'id="comment-error"' in html and 'value="reject" checked' in html
    assert api.get("/api/templates/intranet-news", "audrey").get_json()["status"] == "proposed"
    approved = manager.post("/admin/templates/intranet-news/versions/1/decision",
                            data={"csrf_token": csrf(page), "decision": "approve", "comment": "Routine."})
    assert approved.status_code == 302
    template = api.get("/api/templates/intranet-news", "audrey").get_json()
    assert (template["status"], template["active_version"]) == ("active", 1)
    assert (template["versions"][0]["decided_by"], template["versions"][0]["decision_comment"]) == ("morgan", "Routine.")
    page = manager.get("/admin/templates/intranet-news").get_data(as_text=True)
    assert "waits for a decision" not in page and "in force" in page and "Routine." in page


def test_proposing_a_template_on_the_page_and_segregation_of_duties(app, api):
    manager = signed_in(app, "morgan")
    page = manager.get("/admin/templates/new").get_data(as_text=True)
    form = {"csrf_token": csrf(page), "key": "intranet-news", "name": "Publish a news page",
            "category": "service_catalog", "max_risk": "high", "allowed_services": ["intranet"],
            "rollback_plan": "Unpublish it."}
    refused = manager.post("/admin/templates/new", data=form)
    assert refused.status_code == 422 and 'id="max_risk-error"' in refused.get_data(as_text=True)
    proposed = manager.post("/admin/templates/new", data={**form, "max_risk": "low"})
    assert proposed.status_code == 302 and proposed.headers["Location"] == "/admin/templates/intranet-news"
    page = manager.get(proposed.headers["Location"]).get_data(as_text=True)
    own = manager.post("/admin/templates/intranet-news/versions/1/decision",
                       data={"csrf_token": csrf(page), "decision": "approve", "comment": "Mine."})
    assert own.status_code == 403 and "Segregation of duties" in own.get_data(as_text=True)
    assert api.get("/api/templates/intranet-news", "audrey").get_json()["status"] == "proposed"
    assert "proposed by morgan" in page
