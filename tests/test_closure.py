"""Closure: business acceptance by service owners, backed-out changes, retrospectives, follow-up actions."""
from __future__ import annotations

from datetime import date, timedelta

from engine.follow_ups import overdue_actions
from engine.models import FollowUpAction
from webui.extensions import db

from .test_evidence_rules import (APPROVE, DONE, REVIEWED, act_as, authorized_and_scheduled, complete_raw, gate_reasons,
                                  last_check, make_user, ready, state, upload)


def implemented_and_reviewed(api, services: list[str], **overrides) -> int:
    cid = api.submit(services=services, **overrides)["id"]
    api.attach_required(cid)
    authorized_and_scheduled(api, cid)
    if ready(api, cid) == [("Review rollback plan", None)]:
        api.act("morgan", cid, APPROVE, name="Review rollback plan")
    api.wait_for_window(cid)  # implementation starts at the planned start
    api.act("ivan", cid, DONE, name="Implement change")
    api.attach_required(cid, "close", user="ivan")
    api.act("morgan", cid, REVIEWED, name="Post-implementation review")
    return cid


def test_closure_needs_every_service_owner_and_an_impact_keeps_the_change_in_review(api):
    olga = make_user(api, "olga", "service_owner")
    assert api.request("PATCH", "/api/services/intranet", "morgan", json={"owner": "olga"}).status_code == 200
    cid = implemented_and_reviewed(api, ["crm-web", "intranet"])
    assert state(api, cid) == "review"
    assert ready(api, cid) == [("Business acceptance", "olga"), ("Business acceptance", "sam")]
    api.accept(cid, "sam")
    assert state(api, cid) == "review"  # olga has not validated her service yet

    [task] = [t for t in api.request("GET", "/api/tasks", token=olga).get_json() if t["change_id"] == cid]
    assert task["approval_step"] == "business_acceptance"
    no_impact = api.request("POST", f"/api/tasks/{task['id']}/complete", token=olga,
                            json={"data": {"decision": "reject"}})
    assert no_impact.status_code == 422 and [e["field"] for e in no_impact.get_json()["errors"]] == ["comment"]
    act_as(api, olga, cid, {"decision": "reject", "comment": "Intranet search returns nothing since the change."},
           "Business acceptance")
    assert state(api, cid) == "review" and ready(api, cid) == [("Resolve business impact", None)]
    assert gate_reasons(api, cid)[0].endswith("has already been implemented (state review).")

    resolve = api.task("morgan", cid)
    assert complete_raw(api, "morgan", resolve["id"], {}).status_code == 422  # a resolution is required
    api.complete("morgan", resolve["id"], {"resolution": "Search index rebuilt; results are back."})
    assert state(api, cid) == "review"
    # every owner is asked again, olga included (a new approval round)
    assert ready(api, cid) == [("Business acceptance", "olga"), ("Business acceptance", "sam")]
    act_as(api, olga, cid, APPROVE, "Business acceptance")
    assert state(api, cid) == "review"
    api.accept(cid, "sam")
    assert state(api, cid) == "closed"
    acceptance = [(a["approver"], a["decision"], a["comment"]) for a in api.trace(cid)["approvals"]
                  if a["step"] == "business_acceptance"]
    assert acceptance == [("sam", "approve", ""),
                          ("olga", "reject", "Intranet search returns nothing since the change."),
                          ("olga", "approve", ""), ("sam", "approve", "")]
    rounds = [a["round"] for a in api.trace(cid)["approvals"] if a["step"] == "business_acceptance"]
    assert rounds[0] == rounds[1] < rounds[2] == rounds[3]


def test_the_requester_cannot_accept_their_own_change(api):
    # sam requests a change to a service sam owns: the acceptance goes to the service-owner role instead
    olga = make_user(api, "olga", "service_owner")
    cid = api.submit("sam", services=["crm-web"])["id"]
    api.attach_required(cid, user="sam")
    authorized_and_scheduled(api, cid)
    api.wait_for_window(cid)
    api.act("ivan", cid, DONE)
    api.attach_required(cid, "close", user="ivan")
    api.act("morgan", cid, REVIEWED, name="Post-implementation review")
    assert ready(api, cid) == [("Business acceptance", None)]
    [task] = [t for t in api.trace(cid)["tasks"] if t["name"] == "Business acceptance"]
    refused = complete_raw(api, "sam", task["id"], APPROVE)
    assert refused.status_code == 403 and refused.get_json()["rule"] == "segregation_of_duties"
    act_as(api, olga, cid, APPROVE, "Business acceptance")
    assert state(api, cid) == "closed"


def test_a_backed_out_change_needs_its_implementation_log_before_closure(api):
    cid = api.submit()["id"]
    api.attach_required(cid)
    authorized_and_scheduled(api, cid)
    api.wait_for_window(cid)
    api.act("ivan", cid, {**DONE, "implementation_result": "backed_out",
                          "implementation_notes": "Login broke; rolled back to 5.1."})
    upload(api, cid, "verification", user="ivan")
    api.act("morgan", cid, {"close_code": "backed_out", "close_notes": "Rolled back."},
            name="Post-implementation review")
    assert ready(api, cid) == [("Provide evidence", "ivan")]
    assert last_check(api, cid, "close")["missing"] == ["implementation_log"]
    api.act("ivan", cid, {}, name="Provide evidence")  # nothing attached: asked again
    assert ready(api, cid) == [("Provide evidence", "ivan")]
    upload(api, cid, "implementation_log", user="ivan", content=b"22:40 rollback started\n22:55 5.1 live\n")
    api.act("ivan", cid, {"note": "Rollback log attached."}, name="Provide evidence")
    api.accept(cid)
    assert state(api, cid) == "closed" and api.change(cid)["close_code"] == "backed_out"


def test_an_emergency_change_cannot_close_without_its_retrospective(api):
    cid = api.submit(change_type="emergency", category="emergency_patch", emergency_reason="Exploited CVE.",
                     services=["crm-web"], implementer="ivan")["id"]
    api.attach_required(cid)
    api.act("erin", cid, APPROVE, name="Emergency approval")
    api.act("erin", cid, APPROVE, name="Review rollback plan")
    api.act("ivan", cid, DONE, name="Implement change")
    api.attach_required(cid, "close", user="ivan")  # everything closure needs is there, except the review
    assert state(api, cid) == "review"
    assert ready(api, cid) == [("Retrospective review", None)]
    assert not any(t["change_id"] == cid for t in api.inbox("sam"))  # no acceptance before the retrospective
    api.act("casey", cid, {"close_code": "successful", "lessons_learned": "Patch window was too slow."})
    assert state(api, cid) == "review"
    api.accept(cid)
    assert state(api, cid) == "closed"
    completed = api.trace(cid)["diagram"]["completed_element_ids"]
    assert completed.index("Task_RetrospectiveReview") < completed.index("Task_BusinessAcceptance") < \
        completed.index("EndEvent_Closed")


# -- post-implementation review: incidents and follow-up actions --------------------------------

def test_follow_up_actions_are_stored_and_overdue_ones_flagged(api):
    today = date.today()
    cid = api.submit()["id"]
    api.attach_required(cid)
    authorized_and_scheduled(api, cid)
    api.wait_for_window(cid)
    api.act("ivan", cid, DONE)
    api.attach_required(cid, "close", user="ivan")
    review = api.task("morgan", cid)
    actions = [
        {"action": "Remove the old 5.1 artefacts.", "owner": "ivan",
         "due_date": (today - timedelta(days=3)).isoformat()},
        {"action": "Add a login smoke test.", "owner": "nobody", "due_date": (today + timedelta(days=30)).isoformat()},
        {"action": "Tell the service desk."},
    ]
    data = {"close_code": "successful_with_issues", "close_notes": "Live after a slow login start.",
            "incidents_caused": ["INC0012345", "INC0012346"], "follow_up_actions": actions}
    refused = complete_raw(api, "morgan", review["id"], data)
    assert refused.status_code == 422, refused.get_json()
    assert [e["field"] for e in refused.get_json()["errors"]] == ["follow_up_actions.1.owner"]
    assert api.trace(cid)["follow_ups"] == [] and api.change(cid)["incidents_caused"] == []  # nothing stored
    assert api.task("morgan", cid)["id"] == review["id"]

    actions[1]["owner"] = "sam"
    api.complete("morgan", review["id"], data)
    change = api.change(cid)
    assert change["incidents_caused"] == ["INC0012345", "INC0012346"]
    assert change["close_notes"] == "Live after a slow login start."
    follow_ups = api.trace(cid)["follow_ups"]
    assert [(f["action"], f["owner"], f["due_date"], f["status"], f["overdue"]) for f in follow_ups] == [
        ("Remove the old 5.1 artefacts.", "ivan", actions[0]["due_date"], "open", True),
        ("Add a login smoke test.", "sam", actions[1]["due_date"], "open", False),
        ("Tell the service desk.", None, None, "open", False)]
    with api.app.app_context():
        overdue = overdue_actions(db.session, today)
        assert [(a.change_id, a.action) for a in overdue] == [(cid, "Remove the old 5.1 artefacts.")]
        assert overdue_actions(db.session, today - timedelta(days=10)) == []
        done = db.session.get(FollowUpAction, overdue[0].id)
        done.status = "done"
        db.session.commit()
        assert overdue_actions(db.session, today) == []
    assert [f["overdue"] for f in api.trace(cid)["follow_ups"]] == [False, False, False]


def test_a_retrospective_records_incidents_and_follow_ups_of_an_emergency(api):
    cid = api.submit(change_type="emergency", emergency_reason="Outage.", services=["crm-web"],
                     implementer="ivan")["id"]
    api.attach_required(cid)
    api.act("erin", cid, APPROVE, name="Emergency approval")
    api.act("erin", cid, APPROVE, name="Review rollback plan")
    api.act("ivan", cid, DONE)
    api.act("casey", cid, {"close_code": "successful", "lessons_learned": "Alert earlier.",
                           "incidents_caused": ["INC0099"],
                           "follow_up_actions": [{"action": "Tune the alert.", "owner": "casey",
                                                  "due_date": "2020-01-31"}]})
    assert api.change(cid)["incidents_caused"] == ["INC0099"]
    [action] = api.trace(cid)["follow_ups"]
    assert (action["owner"], action["due_date"], action["overdue"]) == ("casey", "2020-01-31", True)


def test_an_acceptance_closes_the_change_in_a_process_that_did_not_open_the_round(api):
    """Each web worker and job worker builds its own specs; the one recording an owner's acceptance
    is often not the one whose completion opened the acceptance round (no keep-alive behind a proxy,
    a restarted worker)."""
    from engine.bpmn.specs import SPECS

    cid = implemented_and_reviewed(api, ["crm-web"])
    assert ready(api, cid) == [("Business acceptance", "sam")]
    SPECS.clear()  # as in a process that has not created a multi-instance's children yet
    api.accept(cid, "sam")
    assert state(api, cid) == "closed"
    assert ready(api, cid) == []
