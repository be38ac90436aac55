"""Approval paths by risk, segregation of duties, rework rounds — and policy changed by deploying DMN."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from engine import accounts
from engine.models import Approval, AuditEvent, TaskDraft
from webui.extensions import db

from .client import NORMAL_CHANGE

LOW = {"services": ["crm-web"], "impact": 3, "urgency": 3}           # criticality 3, tested rollback
MODERATE = {"services": ["crm-web"], "impact": 2, "urgency": 3}      # medium impact
HIGH = {"services": ["payroll"], "impact": 1, "urgency": 2}          # mission-critical service


def add_user(api, username, *roles):
    with api.app.app_context():
        user = accounts.create_user(db.session, username, list(roles))
        accounts.issue_token(db.session, user, token=f"demo-{username}")
        db.session.commit()


def olga_owns_the_intranet(api):
    """A second service owner: olga owns intranet (sam owns crm-web)."""
    add_user(api, "olga", "service_owner")
    with api.app.app_context():
        from engine.models import Service, User

        intranet = db.session.scalar(select(Service).where(Service.key == "intranet"))
        intranet.owner = db.session.scalar(select(User).where(User.username == "olga"))
        db.session.commit()


def add_cab(api, *names):
    for name in names:
        add_user(api, name, "cab_member")


def names(api, user, change_id):
    return [t["name"] for t in api.inbox(user) if t["change_id"] == change_id]


def approve(api, user, change_id, name, decision="approve", comment="Looks fine."):
    return api.act(user, change_id, {"decision": decision, "comment": comment}, name=name)


def steps(api, change_id):
    with api.app.app_context():
        rows = db.session.scalars(select(Approval).where(Approval.change_id == change_id).order_by(Approval.id))
        return [(a.step, a.approver.username, a.decision, a.round) for a in rows]


def test_low_risk_needs_only_the_change_manager(api):
    change = api.submit(**LOW)
    assert change["risk"] == "low"
    approve(api, "morgan", change["id"], "Authorize change")
    assert api.change(change["id"])["state"] == "scheduled"
    assert names(api, "sam", change["id"]) == [] and names(api, "casey", change["id"]) == []
    assert steps(api, change["id"]) == [("change_manager", "morgan", "approve", 1)]


def test_moderate_risk_needs_every_service_owner(api):
    olga_owns_the_intranet(api)
    change = api.submit(**{**MODERATE, "services": ["crm-web", "intranet"]})
    assert change["risk"] == "moderate"
    approve(api, "morgan", change["id"], "Authorize change")
    assert api.change(change["id"])["state"] == "authorize"
    sam_task, olga_task = api.task("sam", change["id"]), api.task("olga", change["id"])
    assert sam_task["name"] == olga_task["name"] == "Service owner approval"
    assert sam_task["assignee"] == "sam" and olga_task["assignee"] == "olga"
    approve(api, "sam", change["id"], "Service owner approval")
    assert api.change(change["id"])["state"] == "authorize"  # olga has not decided yet
    approve(api, "olga", change["id"], "Service owner approval")
    assert api.change(change["id"])["state"] == "scheduled"
    assert [s[:3] for s in steps(api, change["id"])] == [
        ("change_manager", "morgan", "approve"), ("service_owner", "sam", "approve"),
        ("service_owner", "olga", "approve")]


def test_high_risk_goes_to_the_cab_and_a_majority_authorizes(api):
    add_cab(api, "cora", "cyril")  # with casey: three members, quorum two
    change = api.submit(**HIGH)
    assert change["risk"] == "high"
    approve(api, "morgan", change["id"], "Authorize change")
    assert names(api, "casey", change["id"]) == []  # owners first
    approve(api, "sam", change["id"], "Service owner approval")
    for member in ("casey", "cora", "cyril"):
        assert names(api, member, change["id"]) == ["CAB approval"]
    cyril_task = api.task("cyril", change["id"])["id"]
    saved = api.request("PUT", f"/api/tasks/{cyril_task}/draft", "cyril", json={"data": {"comment": "Thinking"}})
    assert saved.status_code == 200
    approve(api, "casey", change["id"], "CAB approval")
    assert api.change(change["id"])["state"] == "authorize"
    approve(api, "cora", change["id"], "CAB approval")
    assert api.change(change["id"])["state"] == "scheduled"
    assert names(api, "cyril", change["id"]) == []  # quorum reached: the third vote is cancelled
    trace = api.trace(change["id"])
    cancelled = [t for t in trace["tasks"] if t["name"] == "CAB approval" and t["status"] == "cancelled"]
    assert [t["assignee"] for t in cancelled] == ["cyril"]
    with api.app.app_context():  # the cancelled vote's draft went with it
        assert db.session.get(TaskDraft, cyril_task) is None


def test_one_rejection_at_any_step_rejects_and_rework_restarts_approvals(api):
    add_cab(api, "cora", "cyril")
    change = api.submit(**HIGH)
    approve(api, "morgan", change["id"], "Authorize change")
    approve(api, "sam", change["id"], "Service owner approval")
    approve(api, "casey", change["id"], "CAB approval", "reject", "No tested rollback for payroll.")
    assert api.change(change["id"])["state"] == "new"
    assert names(api, "cora", change["id"]) == [] and names(api, "cyril", change["id"]) == []
    rework = api.task("alice", change["id"])
    detail = api.get(f"/api/tasks/{rework['id']}", "alice").get_json()
    assert [(a["approver"], a["decision"], a["comment"]) for a in detail["approvals"]][-1] == \
        ("casey", "reject", "No tested rollback for payroll.")
    api.complete("alice", rework["id"], {"rework_action": "resubmit", "rollback_tested": True})
    assert api.change(change["id"])["state"] == "authorize"
    approve(api, "morgan", change["id"], "Authorize change")  # the change manager decides again
    assert [s for s in steps(api, change["id"]) if s[3] == 2] == [("change_manager", "morgan", "approve", 2)]


def test_nobody_approves_a_change_they_requested(api):
    add_user(api, "max", "requester", "change_manager")
    change = api.submit(user="max", **LOW)
    assert names(api, "max", change["id"]) == []  # not offered
    task = api.task("morgan", change["id"])
    refused = api.post(f"/api/tasks/{task['id']}/complete", "max", json={"data": {"decision": "approve"}})
    assert refused.status_code == 403
    assert "requested this change" in refused.get_json()["message"]
    assert refused.get_json()["rule"] == "segregation_of_duties"
    assert api.post(f"/api/tasks/{task['id']}/claim", "max").status_code == 403


def test_the_implementer_is_not_offered_the_approval(api):
    add_user(api, "ike", "implementer", "change_manager")
    change = api.submit(implementer="ike", **LOW)
    assert names(api, "ike", change["id"]) == []
    assert names(api, "morgan", change["id"]) == ["Authorize change"]


def test_an_admin_override_is_its_own_audited_action(api):
    add_user(api, "root", "admin", "change_manager", "requester")
    change = api.submit(user="root", **LOW)
    task = api.task("morgan", change["id"])
    silent = api.post(f"/api/tasks/{task['id']}/complete", "root", json={"data": {"decision": "approve"}})
    assert silent.status_code == 403
    api.post(f"/api/tasks/{task['id']}/complete", "root", json={
        "data": {"decision": "approve"}, "override_reason": "Only change manager on call tonight."})
    assert api.change(change["id"])["state"] == "scheduled"
    with api.app.app_context():
        approval = db.session.scalar(select(Approval).where(Approval.change_id == change["id"]))
        assert approval.override_reason == "Only change manager on call tonight."
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == "sod_override"))
        assert event.actor == "root" and "requested this change" in event.data["rule"]
    # a non-admin cannot override
    add_user(api, "mia", "change_manager", "requester")
    own = api.submit(user="mia", **LOW)
    own_task = api.task("morgan", own["id"])
    refused = api.post(f"/api/tasks/{own_task['id']}/complete", "mia", json={
        "data": {"decision": "approve"}, "override_reason": "I really want to approve this."})
    assert refused.status_code == 403 and "Only an admin" in refused.get_json()["message"]


def test_deploying_an_edited_risk_policy_reroutes_new_changes_only(api):
    before = api.submit(**LOW)
    assert before["risk"] == "low"
    policy = Path("processes/risk.dmn").read_text()
    # the "high-criticality service" rule (criticality 2 → moderate) now also fires for criticality 3
    stricter = policy.replace("<text>2</text>\n        </inputEntry>", "<text>&lt;= 3</text>\n        </inputEntry>", 1)
    assert stricter != policy
    deployed = api.post("/api/process-definitions", "paula", json={"files": {"risk.dmn": stricter}})
    assert deployed.status_code == 201, deployed.get_json()
    after = api.submit(**LOW)
    assert after["risk"] == "moderate"  # criticality 3 now counts as high-criticality
    approve(api, "morgan", after["id"], "Authorize change")
    assert names(api, "sam", after["id"]) == ["Service owner approval"]
    approve(api, "morgan", before["id"], "Authorize change")  # the running change keeps its policy
    assert api.change(before["id"])["state"] == "scheduled"


def test_role_holders_are_found_by_role_exactly_without_loading_everyone(api):
    """CAB members and change managers are read by role in SQL: names that merely contain the role's
    name, inactive holders and everyone else stay out, and the other users are never loaded."""
    from engine.approvals import approver_facts
    from engine.memo import role_holders
    from engine.models import Change, User

    add_user(api, "cab1", "cab_member", "service_owner")
    add_user(api, "cab2", "implementer", "cab_member")
    add_user(api, "cab_member", "requester")  # a username that is the role's name is not the role
    add_user(api, "gone", "cab_member")
    for i in range(40):
        add_user(api, f"staff{i:02d}", "requester", "implementer")
    change = api.submit(**LOW)
    with api.app.app_context():
        session = db.session
        session.scalar(select(User).where(User.username == "gone")).active = False
        session.commit()
        session.expunge_all()
        holders = [u.username for u in role_holders(session, "cab_member")]
        expected = sorted(u.username for u in session.scalars(select(User)).unique()
                          if u.active and "cab_member" in u.roles)
        assert holders == expected and {"cab1", "cab2"} <= set(holders)
        assert not {"cab_member", "gone"} & set(holders)

        session.expunge_all()
        facts = approver_facts(session, session.get(Change, change["id"]))
        assert facts["cab_members"] == expected
        loaded = {obj.username for obj in session.identity_map.values() if isinstance(obj, User)}
        assert not any(name.startswith("staff") for name in loaded)


def test_a_multi_instance_reading_the_owners_directly_gets_them_as_they_are_when_it_starts(api):
    """A process owner's diagram may iterate `service_owners` with no script naming it first: the
    multi-instance still gets the current owners (Changeflow supplies them when a step names them)."""
    bpmn = (Path(__file__).parent.parent / "processes" / "normal_change.bpmn").read_text()
    opening = "<bpmn:script>service_owners = list(service_owners or [])\nowner_votes = []</bpmn:script>"
    assert opening in bpmn
    deployed = api.post("/api/process-definitions", "paula", json={
        "files": {"normal_change.bpmn": bpmn.replace(opening, "<bpmn:script>owner_votes = []</bpmn:script>")}})
    assert deployed.status_code == 201, deployed.get_json()
    olga_owns_the_intranet(api)
    change = api.submit(**{**MODERATE, "services": ["crm-web", "intranet"]})
    approve(api, "morgan", change["id"], "Authorize change")
    assert names(api, "sam", change["id"]) == names(api, "olga", change["id"]) == ["Service owner approval"]


def test_a_completion_that_reaches_no_approval_does_not_look_up_the_approvers(api):
    """Who owns the services and who sits on the CAB is read when a step names them, not on every step."""
    from sqlalchemy import event

    change = api.submit(**LOW)
    approve(api, "morgan", change["id"], "Authorize change")
    statements = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    with api.app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        api.act("morgan", change["id"], {"planned_start": NORMAL_CHANGE["planned_start"],
                                         "planned_end": NORMAL_CHANGE["planned_end"], "implementer": "ivan"},
                name="Schedule change")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert statements and api.change(change["id"])["state"] == "scheduled"
    assert not [s for s in statements if "change_services" in s and "users" in s], statements


def test_approval_rounds_close_when_every_decision_is_recorded_by_a_process_that_did_not_open_them(api):
    """Web and job workers each build their own specs, and any of them may record a decision: the
    service owners' round and the CAB's quorum must close wherever the deciding vote lands."""
    from engine.bpmn.specs import SPECS

    add_cab(api, "cora", "cyril")
    change = api.submit(**HIGH)
    for user, step in (("morgan", "Authorize change"), ("sam", "Service owner approval"),
                       ("casey", "CAB approval"), ("cora", "CAB approval")):
        SPECS.clear()  # as in a process that has not created this round's instances itself
        approve(api, user, change["id"], step)
    assert api.change(change["id"])["state"] == "scheduled"
    assert names(api, "cyril", change["id"]) == []  # the quorum cancelled the third vote
    assert [s[:3] for s in steps(api, change["id"])] == [
        ("change_manager", "morgan", "approve"), ("service_owner", "sam", "approve"),
        ("cab", "casey", "approve"), ("cab", "cora", "approve")]
