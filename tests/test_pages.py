"""The web pages, through Flask's test client: sign-in, sessions, CSRF, security headers, the inbox."""
from __future__ import annotations

import re

from engine.demo import demo_password
from engine.permissions import MATRIX

from .client import NORMAL_CHANGE


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, username: str):
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"username": username, "password": demo_password(username),
                                       "csrf_token": csrf(page), "next": "/inbox"})


def test_pages_need_a_signed_in_person(app):
    client = app.test_client()
    answer = client.get("/inbox?risk=high")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login?next=/inbox")
    assert client.get("/login").status_code == 200


def test_sign_in_with_a_password_and_a_safe_session_cookie(app):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert '<label for="username">' in page and '<label for="password">' in page
    wrong = client.post("/login", data={"username": "morgan", "password": "guess", "csrf_token": csrf(page)})
    unknown = client.post("/login", data={"username": "nobody", "password": "guess", "csrf_token": csrf(page)})
    assert wrong.status_code == unknown.status_code == 401
    assert "Unknown username or wrong password." in wrong.get_data(as_text=True)  # the same words for both
    assert "Unknown username or wrong password." in unknown.get_data(as_text=True)
    answer = sign_in(client, "morgan")
    assert answer.status_code == 302 and answer.headers["Location"] == "/inbox"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Morgan" in client.get("/inbox").get_data(as_text=True)


def test_the_login_page_never_redirects_off_site(app):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    answer = client.post("/login", data={"username": "morgan", "password": demo_password("morgan"),
                                         "csrf_token": csrf(page), "next": "https://evil.example/"})
    assert answer.headers["Location"] == "/inbox"


def test_every_form_post_needs_its_csrf_token(app, api):
    change = api.submit()
    client = app.test_client()
    sign_in(client, "morgan")
    task = api.task("morgan", change["id"])
    assert client.post(f"/tasks/{task['id']}/claim").status_code == 400
    assert client.post(f"/tasks/{task['id']}/claim", data={"csrf_token": "forged"}).status_code == 400
    assert api.task("morgan", change["id"])["assignee"] is None
    assert client.post("/logout").status_code == 400
    assert client.post("/login", data={"username": "morgan", "password": demo_password("morgan")}).status_code == 400


def test_inbox_lists_my_tasks_with_due_badges_and_claims_from_the_page(app, api):
    normal = api.submit()
    emergency = api.submit(change_type="emergency", emergency_reason="Payments fail.", title="Hotfix payments")
    client = app.test_client()
    sign_in(client, "morgan")
    page = client.get("/inbox").get_data(as_text=True)
    assert normal["number"] in page and "Authorize change" in page and "badge due" in page
    assert emergency["number"] not in page  # the emergency approval goes to emergency approvers
    assert re.search(r'class="count"[^>]*>\s*1\s*<', page)

    task = api.task("morgan", normal["id"])
    claimed = client.post(f"/tasks/{task['id']}/claim", data={"csrf_token": csrf(page), "next": "/inbox"})
    assert claimed.status_code == 302
    assert api.task("morgan", normal["id"])["assignee"] == "morgan"
    page = client.get("/inbox").get_data(as_text=True)
    assert "The task is yours now." in page and "Give back" in page
    client.post(f"/tasks/{task['id']}/unclaim", data={"csrf_token": csrf(page)})
    assert api.task("morgan", normal["id"])["assignee"] is None

    erin = app.test_client()
    sign_in(erin, "erin")
    assert "Hotfix payments" in erin.get("/inbox?type=emergency").get_data(as_text=True)
    assert "Hotfix payments" not in erin.get("/inbox?type=normal").get_data(as_text=True)
    assert erin.get("/inbox?risk=extreme").status_code == 400
    assert normal["number"] not in erin.get("/inbox").get_data(as_text=True)


def test_filters_by_service_and_risk(app, api):
    crm = api.submit()
    payroll = api.submit(**{**NORMAL_CHANGE, "services": ["payroll"], "impact": 1, "title": "Payroll tax tables"})
    client = app.test_client()
    sign_in(client, "morgan")
    by_service = client.get("/inbox?service=payroll").get_data(as_text=True)
    assert payroll["number"] in by_service and crm["number"] not in by_service
    risk = api.change(payroll["id"])["risk"]
    by_risk = client.get(f"/inbox?risk={risk}").get_data(as_text=True)
    assert payroll["number"] in by_risk and crm["number"] not in by_risk


def test_pages_send_security_headers(app):
    answer = app.test_client().get("/login")
    csp = answer.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert answer.headers["X-Frame-Options"] == "DENY" and answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in answer.get_data(as_text=True)  # no inline script, as the CSP demands


def test_a_deactivated_person_is_signed_out_at_the_next_request(app):
    client = app.test_client()
    sign_in(client, "ivan")
    assert client.get("/inbox").status_code == 200
    with app.app_context():
        from sqlalchemy import select

        from engine.models import User
        from webui.extensions import db

        db.session.scalar(select(User).where(User.username == "ivan")).active = False
        db.session.commit()
    assert client.get("/inbox").status_code == 302


def test_every_page_declares_a_permission_rule(app):
    missing = [(rule.rule, getattr(app.view_functions[rule.endpoint], "permission_action", None))
               for rule in app.url_map.iter_rules() if rule.endpoint.startswith("pages.")
               and getattr(app.view_functions[rule.endpoint], "permission_action", None) not in MATRIX]
    assert missing == []
    assert {r.endpoint for r in app.url_map.iter_rules()} >= {"pages.inbox", "pages.login", "pages.claim"}
