"""The web pages, through Flask's test client: sign-in, sessions, CSRF, security headers, the inbox."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from engine.demo import demo_password
from engine.permissions import MATRIX

from .background_support import WebhookReceiver
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


def test_a_task_form_is_rendered_from_its_schema_beside_the_change(app, api):
    change = api.submit()
    client = app.test_client()
    sign_in(client, "morgan")
    task = api.task("morgan", change["id"])
    page = client.get(f"/tasks/{task['id']}").get_data(as_text=True)
    assert '<legend>Decision <span class="req">(required)</span></legend>' in page
    assert 'type="radio" name="decision" value="approve"' in page and "> Approve</label>" in page
    assert '<label for="comment">Comment</label>' in page and 'aria-describedby="comment-help"' in page
    assert "Submit decision" in page  # the UI schema's button text
    assert change["number"] in page and "crm-web" in page and "Redeploy 5.1" in page  # the change beside it
    assert "application release" in page and "missing business_sign_off, test_result" in page
    alice = app.test_client()
    sign_in(alice, "alice")
    assert alice.get(f"/tasks/{task['id']}").status_code == 404  # not hers to see


def test_server_side_errors_appear_next_to_their_fields_and_nothing_is_stored(app, api):
    change = api.submit()
    client = app.test_client()
    sign_in(client, "morgan")
    task = api.task("morgan", change["id"])
    page = client.get(f"/tasks/{task['id']}").get_data(as_text=True)
    refused = client.post(f"/tasks/{task['id']}", data={"csrf_token": csrf(page), "decision": "reject"})
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert '<p class="error" id="comment-error" role="alert">Comment: is required</p>' in html
    assert 'aria-describedby="comment-help comment-error"' in html
    assert 'value="reject" checked' in html  # what was entered stays
    assert api.task("morgan", change["id"])["id"] == task["id"] and api.change(change["id"])["state"] == "authorize"

    done = client.post(f"/tasks/{task['id']}", data={"csrf_token": csrf(page), "decision": "approve",
                                                     "comment": "Fine by me."})
    assert done.status_code == 302 and done.headers["Location"] == "/inbox"
    assert api.change(change["id"])["state"] == "scheduled"
    assert "Authorize change done for" in client.get("/inbox").get_data(as_text=True)
    approvals = api.trace(change["id"])["approvals"]
    assert [(a["decision"], a["comment"], a["approver"]) for a in approvals] == [("approve", "Fine by me.", "morgan")]


def test_dates_in_utc_lists_and_rows_travel_from_the_form_to_the_change(app, api):
    cid = api.submit()["id"]
    api.act("morgan", cid, {"decision": "approve", "comment": "ok"}, name="Authorize change")
    api.attach_required(cid)
    client = app.test_client()
    sign_in(client, "morgan")
    schedule = api.task("morgan", cid, "Schedule change")
    page = client.get(f"/tasks/{schedule['id']}").get_data(as_text=True)
    assert 'type="datetime-local"' in page and 'value="2037-12-05T21:00"' in page  # prefilled, in UTC
    client.post(f"/tasks/{schedule['id']}", data={"csrf_token": csrf(page), "planned_start": "2026-11-20T21:00",
                                                 "planned_end": "2026-11-20T22:00", "implementer": "ivan"})
    change = api.change(cid)
    assert change["planned_start"] == "2026-11-20T21:00:00+00:00" and change["implementer"] == "ivan"
    api.act("ivan", cid, {"actual_start": "2026-11-20T21:00:00+00:00", "actual_end": "2026-11-20T21:30:00+00:00",
                          "implementation_result": "completed"}, name="Implement change")
    api.attach_required(cid, "close", user="ivan")
    review = api.task("morgan", cid, "Post-implementation review")
    page = client.get(f"/tasks/{review['id']}").get_data(as_text=True)
    assert 'name="follow_up_actions-0-action"' in page and 'name="follow_up_actions-2-due_date"' in page
    answer = client.post(f"/tasks/{review['id']}", data={
        "csrf_token": csrf(page), "close_code": "successful_with_issues", "close_notes": "Slow start.",
        "incidents_caused": "INC001\n\nINC002\n", "follow_up_actions-0-action": "Tune the alert.",
        "follow_up_actions-0-owner": "nobody", "follow_up_actions-1-action": "", "follow_up_actions-2-action": ""})
    assert answer.status_code == 422
    assert 'id="follow_up_actions-0-owner-error"' in answer.get_data(as_text=True)  # the row's own field
    answer = client.post(f"/tasks/{review['id']}", data={
        "csrf_token": csrf(page), "close_code": "successful_with_issues", "close_notes": "Slow start.",
        "incidents_caused": "INC001\nINC002", "follow_up_actions-0-action": "Tune the alert.",
        "follow_up_actions-0-owner": "sam", "follow_up_actions-0-due_date": "2037-12-20"})
    assert answer.status_code == 302
    assert api.change(cid)["incidents_caused"] == ["INC001", "INC002"]
    assert [(f["action"], f["owner"], f["due_date"]) for f in api.trace(cid)["follow_ups"]] == [
        ("Tune the alert.", "sam", "2037-12-20")]


def test_the_change_page_tells_the_story_from_request_to_closure(app, api):
    change = api.submit()
    cid = change["id"]
    api.act("morgan", cid, {"decision": "approve", "comment": "Tested rollback."}, name="Authorize change")
    auditor = app.test_client()
    sign_in(auditor, "audrey")
    page = auditor.get(f"/changes/{change['number']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for section in ("timeline", "approvals", "tasks", "evidence", "conflicts", "impact", "notifications", "process"):
        assert f'id="{section}"' in html and f'href="#{section}"' in html
    timeline = re.sub(r"\s+", " ", html)
    assert "<strong>state changed</strong> by morgan at <code>Task_SetState_Scheduled</code> : authorize → scheduled" \
        in timeline
    assert "Tested rollback." in html and "Authorize change" in html
    assert "Approved: " + change["number"] in html and ">alice<" in html  # the requester was told
    assert auditor.get(f"/changes/{cid}").status_code == 200  # by id too
    assert "@media print" in app.test_client().get("/static/app.css").get_data(as_text=True)

    requester = app.test_client()
    sign_in(requester, "alice")
    assert requester.get(f"/changes/{cid}").status_code == 200  # her own change
    other = api.submit(user="ivan", title="Ivan's change")
    assert requester.get(f"/changes/{other['id']}").status_code == 403
    listing = requester.get("/changes").get_data(as_text=True)
    assert change["number"] in listing and other["number"] not in listing
    assert other["number"] in auditor.get("/changes?type=normal").get_data(as_text=True)


def test_filing_a_change_from_the_page_with_errors_at_their_fields(app, api):
    client = app.test_client()
    sign_in(client, "alice")
    page = client.get("/changes/new").get_data(as_text=True)
    assert '<label for="title">Title <span class="req">(required)</span></label>' in page
    assert 'name="services" value="crm-web"' in page and 'type="datetime-local"' in page
    refused = client.post("/changes/new", data={"csrf_token": csrf(page), "title": "x", "change_type": "normal",
                                                "impact": "2", "urgency": "2",
                                                "planned_start": "2037-12-09T22:00", "planned_end": "2037-12-09T21:00"})
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert 'id="title-error"' in html and 'aria-describedby="title-error"' in html
    assert 'value="x"' in html and 'value="2037-12-09T22:00"' in html  # what was typed stays
    refused = client.post("/changes/new", data={"csrf_token": csrf(page), "title": "Rotate certificates",
                                                "change_type": "normal", "impact": "2", "urgency": "2",
                                                "planned_start": "2037-12-09T22:00", "planned_end": "2037-12-09T21:00"})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="category-error"' in html and 'id="planned_end-error"' in html
    assert "Planned end: must be after planned_start" in html
    assert api.get("/api/changes", "audrey").get_json()["total"] == 0  # nothing was filed

    filed = client.post("/changes/new", data={
        "csrf_token": csrf(page), "title": "Rotate firewall certificates", "change_type": "normal",
        "category": "infrastructure", "services": ["firewall"], "impact": "2", "urgency": "2",
        "planned_start": "2037-12-09T21:00", "planned_end": "2037-12-09T22:00",
        "rollback_plan": "Restore the previous certificates", "rollback_tested": "on"})
    assert filed.status_code == 302
    [change] = api.get("/api/changes", "audrey").get_json()["items"]
    assert filed.headers["Location"] == f"/changes/{change['number']}"
    assert (change["services"], change["planned_start"], change["rollback_tested"], change["requester"]) == \
        (["firewall"], "2037-12-09T21:00:00+00:00", True, "alice")
    assert f"{change['number']} filed" in client.get(filed.headers["Location"]).get_data(as_text=True)
    auditor = app.test_client()
    sign_in(auditor, "audrey")
    assert auditor.get("/changes/new").status_code == 403  # auditors change nothing


def test_admins_see_dead_letters_and_retry_them_from_the_page(app, api):
    fast = api.with_settings(retry_base_seconds=1, job_max_attempts=1)
    with WebhookReceiver() as receiver:
        receiver.status = 503
        fast.post("/api/admin/webhooks", "ada", json={"name": "itsm", "url": receiver.url, "events": ["task_waiting"]})
        change = fast.submit()
        admin = fast.app.test_client()
        sign_in(admin, "ada")
        page = admin.get("/admin/outbox?status=failed").get_data(as_text=True)
        assert "HTTP 503" in page and "itsm" in page and ">Retry</button>" in page and change["number"] in page
        receiver.status = 200
        notification_id = re.search(r"/admin/outbox/(\d+)/retry", page).group(1)
        answer = admin.post(f"/admin/outbox/{notification_id}/retry", data={"csrf_token": csrf(page)})
        assert answer.status_code == 302
        assert f"Notification {notification_id} is queued again." in admin.get(answer.headers["Location"]).get_data(as_text=True)
        assert len(receiver.requests) == 2
    auditor = fast.app.test_client()
    sign_in(auditor, "audrey")
    seen = auditor.get("/admin/outbox").get_data(as_text=True)
    assert ">Retry</button>" not in seen and "Outbox" in seen  # auditors read, admins retry
    manager = fast.app.test_client()
    sign_in(manager, "morgan")
    assert manager.get("/admin/outbox").status_code == 403
    assert ">Outbox<" not in manager.get("/inbox").get_data(as_text=True)


def test_the_calendar_shows_changes_windows_and_conflicts_by_month_and_week(app, api):
    first = api.submit(title="Release CRM 5.2")  # 2037-12-05 21:00 UTC on crm-web
    api.submit(title="Another CRM release")       # the same window and service: a conflict once checked
    assert api.post("/api/windows", "morgan", json={
        "kind": "blackout", "name": "Year-end freeze", "starts_at": "2037-12-24T00:00:00+00:00",
        "ends_at": "2037-12-27T00:00:00+00:00", "services": []}).status_code == 201
    api.act("morgan", first["id"], {"decision": "approve", "comment": "ok"}, name="Authorize change")
    api.attach_required(first["id"])
    api.act("morgan", first["id"], {"planned_start": "2037-12-05T21:00:00+00:00",
                                    "planned_end": "2037-12-05T22:30:00+00:00", "implementer": "ivan"},
            name="Schedule change")
    client = app.test_client()
    sign_in(client, "morgan")
    month = client.get("/calendar?date=2037-12-10").get_data(as_text=True)
    assert "December 2037" in month and month.count('class="day') == 35  # Mon 30 Nov … Sun 3 Jan
    assert first["number"] in month and "Year-end freeze" in month and 'class="entry blackout"' in month
    assert f'class="entry change conflict"><a href="/changes/{first["number"]}">⚠ {first["number"]}' in month
    week = client.get("/calendar?view=week&date=2037-12-24").get_data(as_text=True)
    assert week.count('class="day') == 7 and "Year-end freeze" in week and first["number"] not in week
    assert first["number"] not in client.get("/calendar?date=2037-12-10&service=payroll").get_data(as_text=True)
    assert client.get("/calendar?view=year").status_code == 400
    link = client.post("/calendar/feed-link", data={"csrf_token": csrf(month)})
    shown = client.get(link.headers["Location"]).get_data(as_text=True)
    token = re.search(r"/calendar\.ics\?token=([\w-]+)", shown).group(1)
    # The feed covers the next 180 days of the real clock: a change due soon is in it, one years ahead not.
    soon = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=10)
    near = api.submit(title="Patch CRM soon", planned_start=soon.isoformat(),
                      planned_end=(soon + timedelta(hours=1)).isoformat())
    feed = app.test_client().get(f"/calendar.ics?token={token}")
    assert feed.status_code == 200 and near["number"] in feed.get_data(as_text=True)
    assert first["number"] not in feed.get_data(as_text=True)
