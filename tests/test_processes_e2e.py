"""End-to-end through the REST API: the three change processes, forms, claims and change queries."""
from __future__ import annotations

from datetime import datetime
from itertools import product

from sqlalchemy import select

from engine.accounts import create_user, issue_token
from engine.models import ProcessInstance
from webui.extensions import db

from .client import NORMAL_CHANGE

WINDOW = {"planned_start": "2037-12-06T21:00:00+01:00", "planned_end": "2037-12-06T22:45:00+01:00"}
DONE = {"actual_start": "2037-12-06T21:05:00+01:00", "actual_end": "2037-12-06T22:10:00+01:00",
        "implementation_result": "completed"}
REVIEWED = {"close_code": "successful", "close_notes": "Release is live, no incidents."}


def make_user(api, username: str, *roles: str) -> str:
    """Create a user through the engine (as the CLI does) and return a fresh API token."""
    with api.app.app_context():
        user = create_user(db.session, username, list(roles))
        token = issue_token(db.session, user)
        db.session.commit()
    return token


def inbox_for(api, token: str, change_id: int) -> list[dict]:
    response = api.request("GET", "/api/tasks", token=token)
    assert response.status_code == 200, response.get_json()
    return [t for t in response.get_json() if t["change_id"] == change_id]


def sees(api, user: str, change_id: int) -> bool:
    return any(t["change_id"] == change_id for t in api.inbox(user))


def state(api, change_id: int) -> str:
    return api.change(change_id)["state"]


def transitions(api, change_id: int) -> list[tuple[str, str]]:
    return [(e["data"]["from"], e["data"]["to"]) for e in api.trace(change_id)["events"]
            if e["kind"] == "state_changed"]


def chain(*states: str) -> list[tuple[str, str]]:
    return list(zip(states, states[1:]))


def ready_tasks(api, change_id: int) -> list[dict]:
    return [t for t in api.trace(change_id)["tasks"] if t["status"] == "ready"]


def in_order(wanted: list[str], seen: list[str]) -> bool:
    remaining = iter(seen)
    return all(item in remaining for item in wanted)


def same_time(a: str, b: str) -> bool:
    return datetime.fromisoformat(a) == datetime.fromisoformat(b)


def instance_status(api, change_id: int) -> str:
    with api.app.app_context():
        return db.session.scalar(select(ProcessInstance.status).where(ProcessInstance.change_id == change_id))


def approved(api, **overrides) -> int:
    """Submitted, authorized, with the evidence its category needs before implementation attached."""
    change_id = api.submit(**overrides)["id"]
    api.act("morgan", change_id, {"decision": "approve"})
    api.attach_required(change_id)
    return change_id


def reject(api, change_id: int, comment="Test plan does not cover the login flow.", approver="morgan"):
    api.act(approver, change_id, {"decision": "reject", "comment": comment})


def test_normal_change_from_submission_to_closure(api):
    change = api.submit()
    cid = change["id"]
    assert change["state"] == "authorize"
    assert (change["risk"], change["risk_reasons"], change["priority"]) == ("low", [], 5)

    authorize = api.task("morgan", cid)
    assert (authorize["element_id"], authorize["role"], authorize["assignee"]) == ("Task_Authorize", "change_manager", None)
    assert not sees(api, "ivan", cid) and not sees(api, "alice", cid)

    api.complete("morgan", authorize["id"], {"decision": "approve", "comment": "Low risk, go ahead."})
    assert state(api, cid) == "scheduled"
    api.attach(cid, "test_result", "business_sign_off")  # what an application release needs before implementation
    api.act("morgan", cid, {**WINDOW, "implementer": "ivan"}, name="Schedule change")
    assert state(api, cid) == "scheduled" and not sees(api, "ivan", cid)  # waiting for the planned start
    assert "Event_WaitForPlannedStart" in api.trace(cid)["diagram"]["active_element_ids"]
    api.wait_for_window(cid)
    assert state(api, cid) == "implement"
    implement = api.task("ivan", cid)
    assert (implement["name"], implement["assignee"]) == ("Implement change", "ivan")
    api.complete("ivan", implement["id"], DONE)
    assert state(api, cid) == "review"
    api.attach(cid, "verification", user="ivan")  # and before closure
    api.act("morgan", cid, REVIEWED, name="Post-implementation review")
    assert state(api, cid) == "review"  # until the service owner accepts
    api.accept(cid)

    closed = api.change(cid)
    assert closed["state"] == "closed" and closed["closed_at"]
    assert transitions(api, cid) == chain("new", "assess", "authorize", "scheduled", "implement", "review", "closed")
    assert closed["implementer"] == "ivan"
    for field, value in {**WINDOW, "actual_start": DONE["actual_start"], "actual_end": DONE["actual_end"]}.items():
        assert same_time(closed[field], value), field
    assert (closed["implementation_result"], closed["close_code"]) == ("completed", "successful")

    trace = api.trace(cid)
    assert [(t["name"], t["status"], t["completed_by"]) for t in trace["tasks"]] == [
        ("Authorize change", "completed", "morgan"), ("Schedule change", "completed", "morgan"),
        ("Implement change", "completed", "ivan"), ("Post-implementation review", "completed", "morgan"),
        ("Business acceptance", "completed", "sam")]
    assert [(a["step"], a["decision"], a["comment"], a["approver"]) for a in trace["approvals"]] == [
        ("change_manager", "approve", "Low risk, go ahead.", "morgan"), ("business_acceptance", "approve", "", "sam")]
    kinds = [e["kind"] for e in trace["events"]]
    assert kinds[0] == "change_created" and kinds.count("task_completed") == 5
    diagram = trace["diagram"]
    assert diagram["process_key"] == "normal_change"
    assert in_order(["Task_Authorize", "Task_Schedule", "Task_Implement", "Task_Review", "Task_BusinessAcceptance",
                     "EndEvent_Closed"], diagram["completed_element_ids"])
    assert "Task_Rework" not in diagram["completed_element_ids"]
    assert diagram["active_element_ids"] == []
    assert ready_tasks(api, cid) == [] and instance_status(api, cid) == "completed"


def test_implementation_goes_to_the_implementer_chosen_when_scheduling(api):
    ivy = make_user(api, "ivy", "implementer")
    cid = approved(api)
    api.act("morgan", cid, {**WINDOW, "implementer": "ivy"})
    api.wait_for_window(cid)
    [task] = inbox_for(api, ivy, cid)
    assert (task["name"], task["assignee"]) == ("Implement change", "ivy")
    assert not sees(api, "ivan", cid)  # same role, but the task is ivy's
    assert api.change(cid)["implementer"] == "ivy"


def test_risk_follows_services_impact_and_rollback(api):
    cases = [  # overrides, expected risk, words each expected reason contains
        ({}, "low", []),
        ({"services": ["data-warehouse"]}, "moderate", ["high-criticality"]),
        ({"rollback_tested": False}, "moderate", ["not been tested"]),
        ({"services": ["payroll"], "rollback_plan": "", "rollback_tested": False}, "high",
         ["mission-critical", "No rollback plan"]),
        ({"services": ["intranet", "identity"], "impact": 1}, "high", ["mission-critical", "high business impact"]),
    ]
    for overrides, risk, reasons in cases:
        change = api.submit(**overrides)
        assert change["risk"] == risk, (overrides, change["risk_reasons"])
        assert len(change["risk_reasons"]) == len(reasons), change["risk_reasons"]
        for words, reason in zip(reasons, change["risk_reasons"]):
            assert words in reason, (words, change["risk_reasons"])


def test_priority_combines_impact_and_urgency(api):
    for impact, urgency in product((1, 2, 3), repeat=2):
        change = api.submit(impact=impact, urgency=urgency)
        assert change["priority"] == impact + urgency - 1, (impact, urgency)


def test_a_failed_change_raises_the_risk_of_the_next_one_on_that_service(api):
    failed = approved(api)
    api.act("morgan", failed, {**WINDOW, "implementer": "ivan"})
    api.wait_for_window(failed)
    api.act("ivan", failed, {**DONE, "implementation_result": "failed", "implementation_notes": "Migration broke."})
    assert api.change(failed)["implementation_result"] == "failed"
    after = api.submit()
    assert after["risk"] == "moderate" and any("failed" in r for r in after["risk_reasons"])
    elsewhere = api.submit(services=["cloud-capacity"])
    assert elsewhere["risk"] == "low"


def test_rejected_change_is_reworked_reassessed_and_resubmitted(api):
    rita = make_user(api, "rita", "requester")
    cid = api.submit()["id"]
    first = api.task("morgan", cid)
    reject(api, cid, comment="Rollback has not been tried.")
    assert state(api, cid) == "new"
    assert [(a["decision"], a["comment"], a["approver"]) for a in api.trace(cid)["approvals"]] == [
        ("reject", "Rollback has not been tried.", "morgan")]

    rework = api.task("alice", cid)
    assert (rework["name"], rework["assignee"]) == ("Rework change request", "alice")
    assert inbox_for(api, rita, cid) == [] and not sees(api, "morgan", cid)

    api.complete("alice", rework["id"], {"rework_action": "resubmit", "impact": 1,
                                         "test_plan": "Full regression and a login smoke test."})
    change = api.change(cid)
    assert change["state"] == "authorize"
    assert change["impact"] == 1 and change["test_plan"] == "Full regression and a login smoke test."
    assert change["risk"] == "high" and change["priority"] == 1 + NORMAL_CHANGE["urgency"] - 1
    assert [r for r in change["risk_reasons"] if "high business impact" in r]
    history = [(e["data"]["risk"], e["data"]["priority"]) for e in api.trace(cid)["events"]
               if e["kind"] == "risk_assessed"]
    assert history == [("low", 5), ("high", change["priority"])]

    second = api.task("morgan", cid)
    assert second["id"] != first["id"] and second["element_id"] == "Task_Authorize"
    api.complete("morgan", second["id"], {"decision": "approve"})
    # now high risk: the service owner and the CAB (casey alone: quorum one) must approve too
    assert state(api, cid) == "authorize"
    api.act("sam", cid, {"decision": "approve"}, name="Service owner approval")
    api.act("casey", cid, {"decision": "approve"}, name="CAB approval")
    assert state(api, cid) == "scheduled"
    assert transitions(api, cid) == chain("new", "assess", "authorize", "new", "assess", "authorize", "scheduled")


def test_rework_can_mark_the_rollback_plan_tested(api):
    cid = api.submit(rollback_tested=False)["id"]
    assert api.change(cid)["risk"] == "moderate"
    reject(api, cid, comment="Test the rollback first.")
    api.act("alice", cid, {"rework_action": "resubmit", "rollback_tested": True})
    change = api.change(cid)
    assert change["rollback_tested"] is True and change["state"] == "authorize"
    assert (change["risk"], change["risk_reasons"]) == ("low", [])


def test_requester_can_cancel_a_rejected_change(api):
    cid = api.submit()["id"]
    reject(api, cid)
    api.act("alice", cid, {"rework_action": "cancel", "comment": "No longer needed."})
    change = api.change(cid)
    assert change["state"] == "canceled" and change["closed_at"]
    assert ready_tasks(api, cid) == [] and not sees(api, "alice", cid) and not sees(api, "morgan", cid)
    assert instance_status(api, cid) == "completed"
    diagram = api.trace(cid)["diagram"]
    assert "EndEvent_Canceled" in diagram["completed_element_ids"] and diagram["active_element_ids"] == []
    assert transitions(api, cid)[-1] == ("new", "canceled")


def test_emergency_change_approved_implemented_and_reviewed(api):
    cid = api.submit(change_type="emergency", emergency_reason="Firewall drops payments.",
                     services=["firewall"], implementer="ivan")["id"]
    assert state(api, cid) == "authorize" and not sees(api, "morgan", cid)
    api.attach_required(cid)
    api.act("erin", cid, {"decision": "approve", "comment": "Go."})
    assert state(api, cid) == "authorize"  # moderate risk: the rollback plan is reviewed first
    api.act("erin", cid, {"decision": "approve", "comment": "Rollback is a config revert."}, name="Review rollback plan")
    assert state(api, cid) == "implement"
    api.act("ivan", cid, DONE)
    assert state(api, cid) == "review" and not sees(api, "morgan", cid)
    api.attach_required(cid, "close", user="ivan")
    api.act("casey", cid, {"close_code": "successful", "lessons_learned": "Monitor rule changes."})
    assert state(api, cid) == "review"
    api.accept(cid)
    assert state(api, cid) == "closed"
    assert transitions(api, cid) == chain("new", "authorize", "implement", "review", "closed")
    trace = api.trace(cid)
    assert [(a["step"], a["decision"], a["approver"]) for a in trace["approvals"]] == [
        ("ecab", "approve", "erin"), ("rollback_review", "approve", "erin"), ("business_acceptance", "approve", "sam")]
    assert [t["completed_by"] for t in trace["tasks"]] == ["erin", "erin", "ivan", "casey", "sam"]
    assert in_order(["Task_EmergencyApproval", "Task_RollbackReview", "Task_Implement", "Task_RetrospectiveReview",
                     "Task_BusinessAcceptance", "EndEvent_Closed"], trace["diagram"]["completed_element_ids"])


def test_rejected_emergency_change_is_reworked_and_reassessed(api):
    cid = api.submit(change_type="emergency", emergency_reason="Certificate expires tonight.")["id"]
    before = api.change(cid)
    reject(api, cid, comment="Which certificate?", approver="erin")
    assert state(api, cid) == "new"
    assert api.task("alice", cid)["assignee"] == "alice"
    api.act("alice", cid, {"rework_action": "resubmit", "impact": 1, "urgency": 1,
                           "description": "Renew the *.example.com certificate."})
    change = api.change(cid)
    assert change["state"] == "authorize" and change["priority"] == 1 != before["priority"]
    assert change["risk"] == "high"
    api.attach_required(cid)
    api.act("erin", cid, {"decision": "approve"})
    api.act("erin", cid, {"decision": "approve"}, name="Review rollback plan")
    assert state(api, cid) == "implement"


def standard_template(api) -> dict:
    """An active template whose fixed category and plans are those of NORMAL_CHANGE."""
    fixed = {k: NORMAL_CHANGE[k] for k in ("category", "implementation_plan", "rollback_plan", "test_plan")}
    proposed = api.post("/api/templates", "sam", json={"key": "intranet-page", "name": "Intranet page",
                                                       "allowed_services": ["intranet"], **fixed})
    assert proposed.status_code == 201, proposed.get_json()
    decided = api.post("/api/templates/intranet-page/versions/1/decision", "morgan", json={"decision": "approve"})
    assert decided.status_code == 200, decided.get_json()
    return {"change_type": "standard", "template": "intranet-page", "services": ["intranet"]}


def test_standard_change_skips_authorization(api):
    cid = api.submit(**standard_template(api))["id"]
    change = api.change(cid)
    # no authorization: it waits only for the evidence an application release needs before implementation
    assert change["state"] == "scheduled" and change["risk"] == "low"
    assert (api.task("alice", cid)["name"], api.task("alice", cid)["assignee"]) == ("Provide evidence", "alice")
    api.provide_evidence(cid, "business_sign_off", "test_result")
    assert state(api, cid) == "scheduled"  # until its planned start
    assert "Event_WaitForPlannedStart" in api.trace(cid)["diagram"]["active_element_ids"]
    api.wait_for_window(cid)
    assert state(api, cid) == "implement"
    assert not sees(api, "morgan", cid)
    api.act("ivan", cid, DONE)  # any implementer may pick it up
    verify = api.task("alice", cid)
    assert (verify["name"], verify["assignee"]) == ("Verify and close", "alice")
    api.attach(cid, "verification")
    api.complete("alice", verify["id"], {"close_code": "successful", "verification_notes": "Page is live."})
    trace = api.trace(cid)
    assert all(t["element_id"] != "Task_Authorize" and t["approval_step"] is None
               for t in trace["tasks"] if t["status"] == "completed")
    assert trace["approvals"] == []
    assert state(api, cid) == "review"  # closure needs the service owner's acceptance
    api.accept(cid)
    assert state(api, cid) == "closed"
    assert [(a["step"], a["approver"]) for a in api.trace(cid)["approvals"]] == [("business_acceptance", "sam")]
    assert transitions(api, cid) == chain("new", "scheduled", "implement", "review", "closed")
