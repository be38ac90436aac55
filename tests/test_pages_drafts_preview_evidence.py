"""Pages: saving a task form as a draft, the live risk/conflict preview of a new change, evidence upload
and download from the change page — through Flask's test client, on both databases."""
from __future__ import annotations

import io
import re

from .client import NORMAL_CHANGE, REQUIRED_EVIDENCE
from .test_pages import csrf, sign_in
from .test_templates import STANDARD, active_template

PAYROLL = {"title": "Payroll tax tables 2027", "change_type": "normal", "category": "application_release",
           "services": ["payroll"], "impact": "1", "urgency": "2",
           "planned_start": "2037-12-09T21:00", "planned_end": "2037-12-09T22:00"}


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", html)


def _changes_filed(api) -> int:
    return api.get("/api/changes", "audrey").get_json()["total"]


# -- drafts -------------------------------------------------------------------------------------

def test_a_draft_is_kept_unchecked_shown_on_reopen_and_discarded_by_completing(app, api):
    change = api.submit()
    task = api.task("morgan", change["id"])
    morgan = app.test_client()
    sign_in(morgan, "morgan")
    page = morgan.get(f"/tasks/{task['id']}").get_data(as_text=True)
    assert ">Save draft</button>" in page and f'formaction="/tasks/{task["id"]}/draft"' in page

    # a rejection without its comment would be refused on completion; a draft keeps it as it is
    saved = morgan.post(f"/tasks/{task['id']}/draft", data={"csrf_token": csrf(page), "decision": "reject"})
    assert saved.status_code == 302 and saved.headers["Location"] == f"/tasks/{task['id']}"
    reopened = _text(morgan.get(f"/tasks/{task['id']}").get_data(as_text=True))
    assert 'value="reject" checked' in reopened and "Draft saved" in reopened and "by Morgan" in reopened
    assert api.change(change["id"])["state"] == "authorize"  # nothing was completed
    draft = api.get(f"/api/tasks/{task['id']}/draft", "morgan").get_json()
    assert draft["data"] == {"decision": "reject"} and draft["saved_by"] == "morgan"

    # the API saves the same draft; the page shows what it saved
    put = api.request("PUT", f"/api/tasks/{task['id']}/draft", "morgan",
                      json={"data": {"decision": "approve", "comment": "Half written"}})
    assert put.status_code == 200
    assert "Half written" in morgan.get(f"/tasks/{task['id']}").get_data(as_text=True)

    # not visible to whoever may not see the task; not writable by whoever may not act on it
    alice = app.test_client()
    sign_in(alice, "alice")
    assert alice.get(f"/tasks/{task['id']}").status_code == 404
    assert api.get(f"/api/tasks/{task['id']}/draft", "alice").status_code == 404
    assert api.request("PUT", f"/api/tasks/{task['id']}/draft", "alice", json={"data": {}}).status_code == 404
    assert api.request("PUT", f"/api/tasks/{task['id']}/draft", "casey", json={"data": {}}).status_code == 403
    casey = app.test_client()
    sign_in(casey, "casey")
    casey_page = casey.get(f"/tasks/{task['id']}").get_data(as_text=True)
    refused = casey.post(f"/tasks/{task['id']}/draft", data={"csrf_token": csrf(casey_page), "decision": "reject"})
    assert refused.status_code == 403 and "change_manager" in refused.get_data(as_text=True)
    assert api.get(f"/api/tasks/{task['id']}/draft", "morgan").get_json()["data"]["comment"] == "Half written"

    done = morgan.post(f"/tasks/{task['id']}", data={"csrf_token": csrf(page), "decision": "approve",
                                                     "comment": "Fine."})
    assert done.status_code == 302
    assert api.get(f"/api/tasks/{task['id']}/draft", "morgan").status_code == 404
    assert api.request("PUT", f"/api/tasks/{task['id']}/draft", "morgan", json={"data": {}}).status_code == 409
    with app.app_context():
        from sqlalchemy import func, select

        from engine.models import TaskDraft
        from webui.extensions import db

        assert db.session.scalar(select(func.count()).select_from(TaskDraft)) == 0


# -- the new-change preview ---------------------------------------------------------------------

def test_the_preview_shows_the_risk_the_filed_change_gets_and_files_nothing(app, api):
    client = app.test_client()
    sign_in(client, "alice")
    page = client.get("/changes/new").get_data(as_text=True)
    assert 'aria-live="polite"' in page and 'src="/static/js/intake.js"' in page and "<script>" not in page
    assert '>Check risk and conflicts</button>' in page

    checked = client.post("/changes/new", data={"csrf_token": csrf(page), "check": "1", **PAYROLL})
    html = _text(checked.get_data(as_text=True))
    assert checked.status_code == 200
    assert 'class="risk risk-high">high<' in html and "A mission-critical service is affected." in html
    assert 'value="Payroll tax tables 2027"' in html and 'value="2037-12-09T21:00"' in html  # the form stays
    fragment = client.post("/changes/new/preview", data={"csrf_token": csrf(page), **PAYROLL})
    assert fragment.status_code == 200 and "<html" not in fragment.get_data(as_text=True)
    assert "risk-high" in fragment.get_data(as_text=True)
    preview = api.post("/api/changes/preview", "alice", json={**NORMAL_CHANGE, "services": ["payroll"],
                                                              "impact": 1, "urgency": 2, "title": "x"}).get_json()
    assert _changes_filed(api) == 0  # three previews, nothing filed
    before, after = REQUIRED_EVIDENCE[NORMAL_CHANGE["category"]]  # what evidence.dmn asks of the category
    assert preview["evidence_required"] == {"implement": sorted(before), "close": sorted(after)}
    payroll_before, _ = REQUIRED_EVIDENCE[PAYROLL["category"]]
    assert "Before implementation: " + ", ".join(k.replace("_", " ") for k in sorted(payroll_before)) in html

    filed = client.post("/changes/new", data={"csrf_token": csrf(page), **PAYROLL})
    assert filed.status_code == 302
    [change] = api.get("/api/changes", "audrey").get_json()["items"]
    assert change["risk"] == "high" and change["risk"] in html
    assert all(reason in html for reason in change["risk_reasons"])
    assert f"<dt>Priority</dt><dd>{change['priority']}</dd>" in html.replace("> <", "><")
    assert preview["risk"] == "high" and preview["priority"] == change["priority"]

    # what is still missing is named instead of a guess; nothing is filed either
    missing = client.post("/changes/new/preview", data={"csrf_token": csrf(page), "change_type": "normal",
                                                        "impact": "2", "urgency": "2"})
    assert missing.status_code == 422 and "Category:" in missing.get_data(as_text=True)
    assert api.post("/api/changes/preview", "audrey", json=NORMAL_CHANGE).status_code == 403
    assert _changes_filed(api) == 1


def test_the_preview_names_a_scheduled_change_and_a_blackout_in_the_window(app, api):
    scheduled = api.submit(title="Release CRM 5.2")
    api.act("morgan", scheduled["id"], {"decision": "approve", "comment": "ok"}, name="Authorize change")
    api.attach_required(scheduled["id"])
    api.act("morgan", scheduled["id"], {"planned_start": "2037-12-05T21:00:00+00:00",
                                        "planned_end": "2037-12-05T22:30:00+00:00", "implementer": "ivan"},
            name="Schedule change")
    assert api.change(scheduled["id"])["state"] == "scheduled"
    assert api.post("/api/windows", "morgan", json={
        "kind": "blackout", "name": "Year-end freeze", "starts_at": "2037-12-24T00:00:00+00:00",
        "ends_at": "2037-12-27T00:00:00+00:00", "services": []}).status_code == 201
    before = _changes_filed(api)

    client = app.test_client()
    sign_in(client, "alice")
    page = client.get("/changes/new").get_data(as_text=True)
    crm = {"csrf_token": csrf(page), "change_type": "normal", "category": "application_release",
           "services": ["crm-web"], "impact": "3", "urgency": "3", "rollback_plan": "Redeploy.",
           "rollback_tested": "on"}
    overlap = client.post("/changes/new/preview", data={**crm, "planned_start": "2037-12-05T21:30",
                                                        "planned_end": "2037-12-05T22:00"})
    html = _text(overlap.get_data(as_text=True))
    assert overlap.status_code == 200 and scheduled["number"] in html and "also changes crm-web" in html
    frozen = client.post("/changes/new", data={**crm, "check": "1", "planned_start": "2037-12-25T10:00",
                                               "planned_end": "2037-12-25T11:00"})
    html = _text(frozen.get_data(as_text=True))
    assert '<li class="blocking">[blocking] Blackout “Year-end freeze”' in html
    free = client.post("/changes/new/preview", data={**crm, "planned_start": "2037-12-12T10:00",
                                                     "planned_end": "2037-12-12T11:00"})
    assert "None: no other change" in free.get_data(as_text=True)
    by_api = api.post("/api/changes/preview", "alice", json={
        "change_type": "normal", "category": "application_release", "services": ["crm-web"], "impact": 3,
        "urgency": 3, "planned_start": "2037-12-25T10:00:00+00:00", "planned_end": "2037-12-25T11:00:00+00:00"})
    assert [c["kind"] for c in by_api.get_json()["conflicts"]] == ["blackout"]
    assert _changes_filed(api) == before


def test_a_standard_change_is_previewed_with_its_template_check(app, api):
    active_template(api)
    preview = api.post("/api/changes/preview", "alice", json={**STANDARD, "title": ""})
    assert preview.status_code == 200
    response = api.post("/api/changes", "alice", json=STANDARD)
    assert response.status_code == 201
    filed = response.get_json()
    assert (preview.get_json()["risk"], preview.get_json()["risk_reasons"], preview.get_json()["priority"]) == \
        (filed["risk"], filed["risk_reasons"], filed["priority"])
    # above the template's maximum risk: refused at the template field, as filing refuses it
    too_risky = {**STANDARD, "services": ["payroll"]}
    refused = api.post("/api/changes/preview", "alice", json=too_risky)
    assert refused.status_code == 422 == api.post("/api/changes", "alice", json=too_risky).status_code
    assert [e["field"] for e in refused.get_json()["errors"]] == ["template"]


# -- evidence -----------------------------------------------------------------------------------

def test_evidence_from_the_page_is_in_the_trace_and_downloads_as_the_same_bytes(app, api):
    change = api.submit()
    alice = app.test_client()
    sign_in(alice, "alice")
    page = alice.get(f"/changes/{change['number']}").get_data(as_text=True)
    assert '<optgroup label="Required before implementation">' in page and "business sign off (missing)" in page
    assert 'enctype="multipart/form-data"' in page and '<label for="evidence-file">' in page

    content = b"suite: 412 passed, 0 failed\n"
    answer = alice.post(f"/changes/{change['number']}/evidence", content_type="multipart/form-data", data={
        "csrf_token": csrf(page), "kind": "test_result", "note": "Staging run",
        "file": (io.BytesIO(content), "results.txt")})
    assert answer.status_code == 302 and answer.headers["Location"].endswith(f"/changes/{change['number']}#evidence")
    linked = alice.post(f"/changes/{change['number']}/evidence", data={
        "csrf_token": csrf(page), "kind": "business_sign_off", "url": "https://tickets.example.com/SIGN-1"})
    assert linked.status_code == 302
    [file_row, link_row] = api.trace(change["id"])["evidence"]
    assert (file_row["kind"], file_row["filename"], file_row["uploaded_by"]) == ("test_result", "results.txt", "alice")
    assert link_row["url"] == "https://tickets.example.com/SIGN-1" and link_row["sha256"] is None

    shown = alice.get(f"/changes/{change['number']}").get_data(as_text=True)
    link = f"/changes/{change['number']}/evidence/{file_row['id']}/download"
    assert f'href="{link}"' in shown and "Evidence added: test result, version 1." in shown
    download = alice.get(link)
    assert download.status_code == 200 and download.data == content
    assert download.headers["Content-Disposition"].startswith("attachment") and "results.txt" in \
        download.headers["Content-Disposition"]
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert any(e["kind"] == "evidence_downloaded" for e in api.trace(change["id"])["events"])

    auditor = app.test_client()
    sign_in(auditor, "audrey")
    seen = auditor.get(f"/changes/{change['number']}").get_data(as_text=True)
    assert f'href="{link}"' in seen and "Add evidence" not in seen  # the list and downloads, not the form
    assert auditor.get(link).data == content
    refused = auditor.post(f"/changes/{change['number']}/evidence", content_type="multipart/form-data", data={
        "csrf_token": csrf(seen), "kind": "other", "file": (io.BytesIO(b"x"), "x.txt")})
    assert refused.status_code == 403
    assert len(api.trace(change["id"])["evidence"]) == 2


def test_upload_problems_are_shown_at_their_fields_and_nothing_is_stored(app, api):
    change = api.submit()
    small = api.with_settings(evidence_max_bytes=64)
    client = small.app.test_client()
    sign_in(client, "alice")
    url = f"/changes/{change['number']}/evidence"
    page = client.get(f"/changes/{change['number']}").get_data(as_text=True)

    nothing = client.post(url, data={"csrf_token": csrf(page), "kind": "", "note": "Keep me"})
    html = nothing.get_data(as_text=True)
    assert nothing.status_code == 422 and "Keep me" in html  # what was typed stays
    assert "File: choose a file or enter a URL</p>" in html and "Kind: choose what kind of evidence this is" in html
    assert 'aria-describedby="evidence-file-help evidence-file-error"' in html
    unknown = client.post(url, content_type="multipart/form-data", data={
        "csrf_token": csrf(page), "kind": "horoscope", "file": (io.BytesIO(b"fine"), "a.txt")})
    assert unknown.status_code == 422 and 'id="evidence-kind-error"' in unknown.get_data(as_text=True)
    over = client.post(url, content_type="multipart/form-data", data={
        "csrf_token": csrf(page), "kind": "test_result", "file": (io.BytesIO(b"x" * 65), "big.txt")})
    assert over.status_code == 413 and "File: larger than 64 bytes" in over.get_data(as_text=True)
    # far over the limit: refused before the body is read, still at the field
    huge = client.post(url, content_type="multipart/form-data", data={
        "csrf_token": csrf(page), "kind": "test_result", "file": (io.BytesIO(b"x" * (2 * 1024 * 1024)), "huge.bin")})
    assert huge.status_code == 413 and 'id="evidence-file-error"' in huge.get_data(as_text=True)
    assert api.trace(change["id"])["evidence"] == []
