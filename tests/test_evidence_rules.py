"""Evidence requirements, rollback review and closure through the real API (SQLite and PostgreSQL).

processes/evidence.dmn says which evidence kinds each category needs before implementation and before
closure; the processes wait at *Provide evidence* until they are attached. Moderate- and high-risk normal
and emergency changes have their rollback plan reviewed; every service owner accepts before closure.
"""
from __future__ import annotations

import io

import pytest

from engine.accounts import create_user, issue_token
from webui.extensions import db

from .client import NORMAL_CHANGE, REQUIRED_EVIDENCE

WINDOW = {"planned_start": "2037-12-06T21:00:00+01:00", "planned_end": "2037-12-06T22:45:00+01:00"}
DONE = {"actual_start": "2037-12-06T21:05:00+01:00", "actual_end": "2037-12-06T22:10:00+01:00",
        "implementation_result": "completed"}
REVIEWED = {"close_code": "successful", "close_notes": "Live, no incidents."}
APPROVE = {"decision": "approve"}


# -- helpers -----------------------------------------------------------------------------------

def upload(api, change_id: int, kind: str, user: str = "alice", content: bytes | None = None) -> dict:
    """Attach a file (multipart: file, kind, note), as POST /api/changes/{id}/evidence takes it."""
    data = {"file": (io.BytesIO(content or f"{kind} for change {change_id}\n".encode()), f"{kind}.txt"),
            "kind": kind, "note": f"The {kind.replace('_', ' ')}."}
    response = api.post(f"/api/changes/{change_id}/evidence", user, data=data, content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def state(api, change_id: int) -> str:
    return api.change(change_id)["state"]


def ready(api, change_id: int) -> list[tuple[str, str | None]]:
    return sorted((t["name"], t["assignee"]) for t in api.trace(change_id)["tasks"] if t["status"] == "ready")


def gate_reasons(api, change_id: int) -> list[str]:
    response = api.get(f"/api/changes/{change_id}/gate", "ivan")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["reasons"]


def evidence_reasons(api, change_id: int) -> list[str]:
    return [r for r in gate_reasons(api, change_id) if r.startswith("Missing evidence")]


def last_check(api, change_id: int, stage: str) -> dict:
    return [e["data"] for e in api.trace(change_id)["events"]
            if e["kind"] == "evidence_checked" and e["data"]["stage"] == stage][-1]


def complete_raw(api, user: str, task_id: str, data: dict):
    return api.post(f"/api/tasks/{task_id}/complete", user, json={"data": data})


def make_user(api, username: str, *roles: str) -> str:
    with api.app.app_context():
        user = create_user(db.session, username, list(roles))
        token = issue_token(db.session, user)
        db.session.commit()
    return token


def act_as(api, token: str, change_id: int, data: dict, name: str) -> dict:
    tasks = [t for t in api.request("GET", "/api/tasks", token=token).get_json()
             if t["change_id"] == change_id and t["name"] == name]
    assert len(tasks) == 1, tasks
    response = api.request("POST", f"/api/tasks/{tasks[0]['id']}/complete", token=token, json={"data": data})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def authorized_and_scheduled(api, change_id: int) -> None:
    """Authorize (with the service owner, for moderate risk) and schedule with ivan as implementer."""
    api.act("morgan", change_id, {"decision": "approve", "comment": "Go."}, name="Authorize change")
    if api.change(change_id)["risk"] != "low":
        api.act("sam", change_id, APPROVE, name="Service owner approval")
    api.act("morgan", change_id, {**WINDOW, "implementer": "ivan"}, name="Schedule change")


# -- evidence before implementation and before closure, per category -------------------------

@pytest.mark.parametrize("category", sorted(REQUIRED_EVIDENCE))
def test_the_process_waits_for_exactly_the_missing_evidence_of_each_category(api, category):
    before, after = (sorted(kinds) for kinds in REQUIRED_EVIDENCE[category])
    cid = api.submit(category=category)["id"]
    authorized_and_scheduled(api, cid)

    # stopped before implementation, at the requester's Provide evidence task, listing what is missing
    assert state(api, cid) == "scheduled"
    assert ready(api, cid) == [("Provide evidence", "alice")]
    check = last_check(api, cid, "implement")
    assert (check["required"], check["missing"], check["complete"]) == (before, before, False)
    trace = api.trace(cid)
    assert trace["evidence_requirements"]["implement"] == {"required": before, "missing": before}
    assert trace["evidence_requirements"]["close"] == {"required": after, "missing": after}
    assert evidence_reasons(api, cid) == [f"Missing evidence before implementation: {', '.join(before)}"]
    assert "Task_ProvideEvidence_Implement" in trace["diagram"]["active_element_ids"]
    provide = api.task("alice", cid, "Provide evidence")  # the task itself lists what it waits for
    detail = api.get(f"/api/tasks/{provide['id']}", "alice").get_json()
    assert detail["evidence"]["implement"]["missing"] == before

    # completing the task with something still missing asks again, for what is left
    for kind in before[:-1]:
        upload(api, cid, kind)
    if len(before) > 1:
        api.act("alice", cid, {"note": "First part."}, name="Provide evidence")
        assert ready(api, cid) == [("Provide evidence", "alice")]
        assert last_check(api, cid, "implement")["missing"] == before[-1:]
        assert evidence_reasons(api, cid) == [f"Missing evidence before implementation: {before[-1]}"]
    upload(api, cid, before[-1])
    assert evidence_reasons(api, cid) == []  # the gate answers from the same decision
    api.act("alice", cid, {}, name="Provide evidence")
    assert last_check(api, cid, "implement")["complete"] is True

    if api.change(cid)["risk"] != "low":  # access control and emergency patches are moderate risk
        assert ready(api, cid) == [("Review rollback plan", None)]
        api.act("morgan", cid, APPROVE, name="Review rollback plan")
    assert state(api, cid) == "scheduled"  # until its planned start
    api.wait_for_window(cid)
    assert state(api, cid) == "implement"
    api.act("ivan", cid, DONE, name="Implement change")
    api.act("morgan", cid, REVIEWED, name="Post-implementation review")

    # stopped before closure, at the implementer's Provide evidence task
    assert state(api, cid) == "review"
    assert ready(api, cid) == [("Provide evidence", "ivan")]
    assert last_check(api, cid, "close")["missing"] == after
    assert api.trace(cid)["evidence_requirements"]["close"]["missing"] == after
    for kind in after:
        upload(api, cid, kind, user="ivan")
    api.act("ivan", cid, {}, name="Provide evidence")
    assert ready(api, cid) == [("Business acceptance", "sam")] and state(api, cid) == "review"
    api.accept(cid)
    assert state(api, cid) == "closed"
    trace = api.trace(cid)
    assert sorted(e["kind"] for e in trace["evidence"]) == sorted(before + after)
    assert all(e["current"] and e["uploaded_by"] and e["sha256"] for e in trace["evidence"])
    assert trace["evidence_requirements"] == {"implement": {"required": before, "missing": []},
                                              "close": {"required": after, "missing": []}}


def test_evidence_attached_in_advance_lets_the_change_go_straight_on(api):
    cid = api.submit()["id"]
    for kind in REQUIRED_EVIDENCE["application_release"][0]:
        upload(api, cid, kind)
    authorized_and_scheduled(api, cid)
    assert state(api, cid) == "scheduled"  # straight on to the wait for the planned start
    assert "Event_WaitForPlannedStart" in api.trace(cid)["diagram"]["active_element_ids"]
    api.wait_for_window(cid)
    assert state(api, cid) == "implement"
    assert [t["name"] for t in api.trace(cid)["tasks"]].count("Provide evidence") == 0


def test_a_superseded_piece_of_evidence_still_counts_through_its_new_version(api):
    cid = api.submit(category="service_catalog")["id"]
    first = upload(api, cid, "business_sign_off")
    correction = api.post(f"/api/changes/{cid}/evidence", "alice", json={
        "kind": "business_sign_off", "url": "https://sign-off.example.com/42", "supersedes": first["id"]})
    assert correction.status_code == 201, correction.get_json()
    authorized_and_scheduled(api, cid)
    api.wait_for_window(cid)
    assert state(api, cid) == "implement"
    evidence = api.trace(cid)["evidence"]
    assert [(e["id"], e["current"]) for e in evidence] == [(first["id"], False), (correction.get_json()["id"], True)]


def test_standard_and_emergency_changes_wait_for_their_evidence_too(api):
    fixed = {k: NORMAL_CHANGE[k] for k in ("implementation_plan", "rollback_plan", "test_plan")}
    proposed = api.post("/api/templates", "sam", json={"key": "rota", "name": "Publish the rota",
                                                       "category": "service_catalog", "allowed_services": ["intranet"],
                                                       **fixed})
    assert proposed.status_code == 201, proposed.get_json()
    decided = api.post("/api/templates/rota/versions/1/decision", "morgan", json={"decision": "approve"})
    assert decided.status_code == 200, decided.get_json()
    std = api.submit(change_type="standard", template="rota", category="service_catalog", services=["intranet"])["id"]
    assert state(api, std) == "scheduled" and ready(api, std) == [("Provide evidence", "alice")]
    assert evidence_reasons(api, std) == ["Missing evidence before implementation: business_sign_off"]
    api.provide_evidence(std, "business_sign_off")
    api.wait_for_window(std)
    assert state(api, std) == "implement"
    api.act("ivan", std, DONE)
    api.act("alice", std, {"close_code": "successful", "verification_notes": "Rota is up."}, name="Verify and close")
    assert ready(api, std) == [("Provide evidence", "alice")]  # the requester provides it in a standard change
    assert last_check(api, std, "close")["missing"] == ["verification"]

    em = api.submit(change_type="emergency", category="infrastructure", emergency_reason="Disk full.",
                    services=["cloud-capacity"], implementer="ivan")["id"]
    api.act("erin", em, APPROVE, name="Emergency approval")
    assert ready(api, em) == [("Provide evidence", "alice")] and state(api, em) == "authorize"
    assert last_check(api, em, "implement")["missing"] == ["rollback_plan"]


# -- rollback readiness --------------------------------------------------------------------------

def test_rollback_review_is_only_for_moderate_and_high_risk(api):
    low = api.submit()["id"]
    api.attach_required(low)
    authorized_and_scheduled(api, low)
    api.wait_for_window(low)
    assert api.change(low)["risk"] == "low" and state(api, low) == "implement"
    assert all(t["name"] != "Review rollback plan" for t in api.trace(low)["tasks"])

    moderate = api.submit(rollback_tested=False)["id"]
    api.attach_required(moderate)
    authorized_and_scheduled(api, moderate)
    assert api.change(moderate)["risk"] == "moderate" and state(api, moderate) == "scheduled"
    review = api.task("morgan", moderate, name="Review rollback plan")
    assert (review["role"], review["approval_step"]) == ("change_manager", "rollback_review")
    api.complete("morgan", review["id"], {"decision": "approve", "comment": "Restore steps are scripted."})
    api.wait_for_window(moderate)
    assert state(api, moderate) == "implement"
    assert [(a["step"], a["decision"], a["comment"]) for a in api.trace(moderate)["approvals"]][-1] == (
        "rollback_review", "approve", "Restore steps are scripted.")

    high = api.submit(impact=1)["id"]
    api.attach_required(high)
    api.act("morgan", high, APPROVE, name="Authorize change")
    api.act("sam", high, APPROVE, name="Service owner approval")
    api.act("casey", high, APPROVE, name="CAB approval")
    api.act("morgan", high, {**WINDOW, "implementer": "ivan"}, name="Schedule change")
    assert api.change(high)["risk"] == "high" and ready(api, high) == [("Review rollback plan", None)]


def test_the_rollback_plan_is_reviewed_by_someone_other_than_its_author(api):
    mona = make_user(api, "mona", "change_manager")
    cid = api.submit("morgan", rollback_tested=False)["id"]  # a change manager requests it
    api.attach_required(cid, user="morgan")
    act_as(api, mona, cid, APPROVE, "Authorize change")
    api.act("sam", cid, APPROVE, name="Service owner approval")
    act_as(api, mona, cid, {**WINDOW, "implementer": "ivan"}, "Schedule change")
    assert ready(api, cid) == [("Review rollback plan", None)]
    assert not any(t["change_id"] == cid for t in api.inbox("morgan"))  # not offered to the requester
    [review] = [t for t in api.trace(cid)["tasks"] if t["name"] == "Review rollback plan"]
    refused = complete_raw(api, "morgan", review["id"], APPROVE)
    assert refused.status_code == 403 and refused.get_json()["rule"] == "segregation_of_duties"
    assert state(api, cid) == "scheduled"
    act_as(api, mona, cid, APPROVE, "Review rollback plan")
    api.wait_for_window(cid)
    assert state(api, cid) == "implement"
    assert [(a["step"], a["approver"]) for a in api.trace(cid)["approvals"]][-1] == ("rollback_review", "mona")


def test_a_rejected_rollback_plan_sends_the_change_back_for_rework(api):
    cid = api.submit(rollback_tested=False)["id"]
    api.attach_required(cid)
    authorized_and_scheduled(api, cid)
    review = api.task("morgan", cid, name="Review rollback plan")
    no_comment = complete_raw(api, "morgan", review["id"], {"decision": "reject"})
    assert no_comment.status_code == 422 and [e["field"] for e in no_comment.get_json()["errors"]] == ["comment"]
    api.complete("morgan", review["id"], {"decision": "reject", "comment": "The restore has never been rehearsed."})
    assert state(api, cid) == "new"
    rework = api.task("alice", cid)
    assert (rework["name"], rework["assignee"]) == ("Rework change request", "alice")
    detail = api.get(f"/api/tasks/{rework['id']}", "alice").get_json()
    assert ("rollback_review", "reject", "The restore has never been rehearsed.") in [
        (a["step"], a["decision"], a["comment"]) for a in detail["approvals"]]
    api.complete("alice", rework["id"], {"rework_action": "resubmit", "rollback_tested": True})
    assert state(api, cid) == "authorize" and api.change(cid)["risk"] == "low"


def test_an_emergency_rollback_plan_is_reviewed_by_the_emergency_approver(api):
    cid = api.submit(change_type="emergency", category="emergency_patch", emergency_reason="Exploited CVE.",
                     services=["crm-web"], implementer="ivan")["id"]
    api.attach_required(cid)
    api.act("erin", cid, APPROVE, name="Emergency approval")
    review = api.task("erin", cid)
    assert (review["name"], review["role"], review["approval_step"]) == (
        "Review rollback plan", "emergency_approver", "rollback_review")
    api.complete("erin", review["id"], {"decision": "reject", "comment": "Roll back to which build?"})
    assert state(api, cid) == "new" and api.task("alice", cid)["name"] == "Rework change request"


# -- closure: business acceptance ----------------------------------------------------------------
