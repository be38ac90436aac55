"""CAB meetings: the agenda, decisions recorded by the chair, minutes, and who may do what."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, select

from engine import cab
from engine.accounts import create_user, issue_token
from engine.db import utcnow
from engine.models import Approval, CabMeeting
from webui.extensions import db

NOW = utcnow().replace(microsecond=0)
MEETING_AT = NOW + timedelta(days=1)
REWORK = "Rollback was never rehearsed <script>alert('x')</script> | fix it"


def add_users(api, *names: str, roles=("cab_member",)) -> None:
    with api.app.app_context():
        for name in names:
            user = create_user(db.session, name, list(roles))
            issue_token(db.session, user, token=f"demo-{name}")
        db.session.commit()


def iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def high_risk(api, start_in_days: float | None, requester: str = "alice") -> int:
    """Submit a high-risk change (payroll, impact 1) starting `start_in_days` after the meeting."""
    start = MEETING_AT + timedelta(days=start_in_days) if start_in_days is not None else None
    change = api.submit(requester, title=f"Payroll patch {start_in_days}", services=["payroll"], impact=1,
                        planned_start=iso(start), planned_end=iso(start + timedelta(hours=2)) if start else None)
    assert change["risk"] == "high", change
    return change["id"]


def at_cab(api, start_in_days: float | None, requester: str = "alice") -> int:
    """A high-risk change authorized by the change manager and the service owner: now before the CAB."""
    cid = high_risk(api, start_in_days, requester)
    api.act("morgan", cid, {"decision": "approve"}, name="Authorize change")
    api.act("sam", cid, {"decision": "approve"}, name="Service owner approval")
    assert {t["approval_step"] for t in cab_tasks(api, cid)} == {"cab"}
    return cid


def cab_tasks(api, cid: int, status: str = "ready") -> list[dict]:
    return [t for t in api.trace(cid)["tasks"] if t["approval_step"] == "cab" and t["status"] == status]


def meeting(api, members, at=MEETING_AT, user="morgan", expect=201, **extra) -> dict:
    response = api.post("/api/cab-meetings", user, json={"title": "Weekly CAB", "starts_at": iso(at),
                                                         "members": list(members), **extra})
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def decide(api, meeting_id: int, expect=200, user="morgan", **body) -> dict:
    response = api.post(f"/api/cab-meetings/{meeting_id}/decisions", user, json=body)
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def agenda(api, meeting_id: int, user="casey") -> list[dict]:
    response = api.get(f"/api/cab-meetings/{meeting_id}", user)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["agenda"]


def count_agenda_queries(api, meeting_id: int) -> int:
    with api.app.app_context():
        statements = []
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            cab.agenda(db.session, db.session.get(CabMeeting, meeting_id))
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return len([s for s in statements if "cab_meetings" not in s])


def test_agenda_holds_changes_awaiting_the_cab_before_the_next_meeting_plus_horizon(api):
    add_users(api, "carl", "cleo")
    soon, later, unplanned = at_cab(api, 2), at_cab(api, 120), at_cab(api, None)
    after_next = at_cab(api, 18)
    not_yet = high_risk(api, 1)  # still waiting for the change manager
    weekly = meeting(api, ["casey", "carl", "cleo"], horizon_days=7)
    assert (weekly["status"], weekly["members"], weekly["created_by"]) == ("planned", ["casey", "carl", "cleo"], "morgan")

    items = agenda(api, weekly["id"])
    assert [i["change_id"] for i in items] == [soon, unplanned]
    item = items[0]
    assert (item["risk"], item["services"], item["requester"], item["state"]) == ("high", ["payroll"], "alice", "authorize")
    assert item["risk_reasons"] and item["planned_start"] and item["planned_end"]
    assert [(a["step"], a["approver"], a["decision"]) for a in item["approvals"]] == [
        ("change_manager", "morgan", "approve"), ("service_owner", "sam", "approve")]
    assert item["cab_votes"] == {"approve": 0, "reject": 0}
    assert sorted(item["pending_members"]) == ["carl", "casey", "cleo"]
    assert (item["conflicts"], item["evidence"]) == ([], [])
    queries = count_agenda_queries(api, weekly["id"])

    # A meeting two weeks later moves the horizon: the change planned in 18 days joins this agenda.
    fortnight = meeting(api, ["casey"], at=MEETING_AT + timedelta(days=14))
    assert [i["change_id"] for i in agenda(api, weekly["id"])] == [soon, after_next, unplanned]
    assert count_agenda_queries(api, weekly["id"]) == queries  # no query per agenda item
    assert not {later, not_yet} & {i["change_id"] for i in agenda(api, fortnight["id"])}

    assert decide(api, weekly["id"], change_id=later, decision="approve", expect=409)["error"] == "conflict"
    assert decide(api, weekly["id"], change_id=not_yet, decision="approve", expect=409)
    assert api.get(f"/api/cab-meetings/{weekly['id'] + 99}", "casey").status_code == 404

    listed = api.get("/api/cab-meetings", "audrey").get_json()
    assert [m["id"] for m in listed] == [weekly["id"], fortnight["id"]]
    window = {"from": iso(MEETING_AT + timedelta(days=7)), "to": iso(MEETING_AT + timedelta(days=30))}
    assert [m["id"] for m in api.get("/api/cab-meetings", "audrey", query_string=window).get_json()] == [fortnight["id"]]


def test_meeting_decisions_complete_member_tasks_until_the_quorum(api):
    add_users(api, "carl", "cleo", "cody")  # four CAB members with casey: the quorum is three
    cid = at_cab(api, 2)
    assert len(cab_tasks(api, cid)) == 4
    board = meeting(api, ["casey", "carl", "cleo", "cody"])
    evidence = ["EVID-17", "https://ci.example/runs/4711"]

    first = decide(api, board["id"], change_id=cid, decision="approve", comment="Looks safe.",
                   present=["casey", "carl"], evidence_reviewed=evidence)
    assert (first["outcome"], first["state"], first["skipped"]) == ("pending", "authorize", [])
    assert sorted(a["approver"] for a in first["approvals"]) == ["carl", "casey"]
    assert all((a["cab_meeting_id"], a["recorded_by"], a["evidence_reviewed"], a["step"], a["comment"])
               == (board["id"], "morgan", evidence, "cab", "Looks safe.") for a in first["approvals"])
    [item] = agenda(api, board["id"])
    assert item["cab_votes"] == {"approve": 2, "reject": 0}
    assert sorted(item["pending_members"]) == ["cleo", "cody"]

    second = decide(api, board["id"], change_id=cid, decision="approve", comment="Agreed.",
                    present=["cleo", "cody"], evidence_reviewed=["EVID-17"])
    assert (second["outcome"], second["state"]) == ("authorized", "scheduled")
    assert [a["approver"] for a in second["approvals"]] == ["cleo"]
    assert [(s["member"], s["reason"]) for s in second["skipped"]] == [("cody", cab.STEP_ENDED)]
    assert cab_tasks(api, cid) == []
    assert [t["assignee"] for t in cab_tasks(api, cid, "cancelled")] == ["cody"]
    assert sorted(t["completed_by"] for t in cab_tasks(api, cid, "completed")) == ["carl", "casey", "cleo"]
    assert api.task("morgan", cid)["name"] == "Schedule change"
    assert agenda(api, board["id"]) == []

    trace = api.trace(cid)
    cab_approvals = [a for a in trace["approvals"] if a["step"] == "cab"]
    assert sorted(a["approver"] for a in cab_approvals) == ["carl", "casey", "cleo"]
    assert {(a["cab_meeting_id"], a["recorded_by"]) for a in cab_approvals} == {(board["id"], "morgan")}
    recorded = [e for e in trace["events"] if e["kind"] == "cab_decision_recorded"]
    assert [e["data"]["votes"] for e in recorded] == [{"casey": "approve", "carl": "approve"},
                                                      {"cleo": "approve", "cody": "approve"}]
    assert all(e["actor"] == "morgan" and e["data"]["cab_meeting_id"] == board["id"] for e in recorded)
    on_behalf = [e["data"]["on_behalf_of"] for e in trace["events"]
                 if e["kind"] == "task_completed" and e["actor"] == "morgan" and e["data"]["on_behalf_of"]]
    assert sorted(on_behalf) == ["carl", "casey", "cleo"]
    with api.app.app_context():
        stored = db.session.scalars(select(Approval).where(Approval.cab_meeting_id == board["id"])).all()
        assert sorted(tuple(a.evidence_reviewed) for a in stored) == [("EVID-17",)] + [tuple(evidence)] * 2
        assert db.session.get(CabMeeting, board["id"]).status == "held"
    assert api.get(f"/api/cab-meetings/{board['id']}", "audrey").get_json()["status"] == "held"

    minutes = api.get(f"/api/cab-meetings/{board['id']}/minutes", "audrey", query_string={"format": "md"})
    assert minutes.status_code == 200
    assert minutes.headers["Content-Type"] == "text/markdown; charset=utf-8"
    assert minutes.headers["Content-Disposition"] == f"attachment; filename=cab-{board['id']}.md"
    text = minutes.get_data(as_text=True)
    number = api.change(cid)["number"]
    assert f"### {number}" in text and "authorized" in text and "EVID-17" in text
    for member, comment in (("casey", "Looks safe."), ("carl", "Looks safe."), ("cleo", "Agreed.")):
        assert f"| {member} | approve | {comment} | morgan |" in text
    assert "cody (approve)" in text  # a vote cast after the quorum is minuted as not recorded


def test_a_rejection_sends_the_change_back_and_minutes_escape_comments(api):
    add_users(api, "carl", "cleo")
    cid, other = at_cab(api, 2), at_cab(api, 3)
    board = meeting(api, ["casey", "carl", "cleo"])
    refused = decide(api, board["id"], change_id=cid, decision="approve", votes={"carl": "reject"}, expect=422)
    assert [e["field"] for e in refused["errors"]] == ["comment"]
    wrong = decide(api, board["id"], change_id=cid, decision="approve", votes={"sam": "reject"}, comment="No.",
                   expect=422)
    assert [e["field"] for e in wrong["errors"]] == ["votes"]

    # One rejection ends the step, as in the process: the others' approvals are not recorded.
    result = decide(api, board["id"], change_id=cid, decision="approve", votes={"carl": "reject"}, comment=REWORK)
    assert (result["outcome"], result["state"]) == ("rejected", "new")
    assert [(a["approver"], a["decision"], a["comment"]) for a in result["approvals"]] == [("carl", "reject", REWORK)]
    assert sorted(s["member"] for s in result["skipped"]) == ["casey", "cleo"]
    rework = api.task("alice", cid)
    assert (rework["name"], rework["assignee"]) == ("Rework change request", "alice")
    assert ("cab", "carl", "reject", REWORK) in [(a["step"], a["approver"], a["decision"], a["comment"])
                                                 for a in api.trace(cid, "alice")["approvals"]]
    assert cab_tasks(api, cid) == []

    html = api.get(f"/api/cab-meetings/{board['id']}/minutes", "audrey", query_string={"format": "html"})
    assert html.status_code == 200 and html.headers["Content-Type"] == "text/html; charset=utf-8"
    page = html.get_data(as_text=True)
    assert "<script>" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "rejected" in page and api.change(cid)["number"] in page and "carl" in page
    assert api.change(other)["number"] in page  # on the agenda, not decided
    text = api.get(f"/api/cab-meetings/{board['id']}/minutes", "audrey").get_data(as_text=True)
    assert "<script>" not in text and "\\<script\\>" in text and "\\| fix it" in text
    assert "## Agenda items not decided" in text and api.change(other)["number"] in text


def test_a_member_who_requested_the_change_is_skipped(api):
    add_users(api, "carl")
    add_users(api, "cora", roles=("requester", "cab_member"))
    cid = at_cab(api, 2, requester="cora")  # cora is left out of the vote: casey and carl, quorum two
    board = meeting(api, ["cora", "casey", "carl"])
    result = decide(api, board["id"], change_id=cid, decision="approve", comment="Fine.")
    assert (result["outcome"], result["state"]) == ("authorized", "scheduled")
    assert sorted(a["approver"] for a in result["approvals"]) == ["carl", "casey"]
    [skip] = result["skipped"]
    assert skip["member"] == "cora" and "requested this change" in skip["reason"]


def test_who_may_plan_read_and_record(api):
    add_users(api, "carl")
    cid = at_cab(api, 2)
    for user in ("alice", "casey", "audrey"):
        assert meeting(api, ["casey"], user=user, expect=403)
    for members in (["casey", "sam"], ["casey", "nobody"]):
        invalid = meeting(api, members, expect=422)
        assert [e["field"] for e in invalid["errors"]] == ["members"]
    backwards = meeting(api, ["casey"], ends_at=iso(MEETING_AT - timedelta(hours=1)), expect=422)
    assert [e["field"] for e in backwards["errors"]] == ["ends_at"]
    board = meeting(api, ["casey", "carl"], user="ada")
    assert api.get("/api/cab-meetings", "alice").status_code == 403
    assert api.get(f"/api/cab-meetings/{board['id']}", "audrey").status_code == 200
    assert decide(api, board["id"], user="audrey", change_id=cid, decision="approve", expect=403)
    assert decide(api, board["id"], user="casey", change_id=cid, decision="approve", expect=403)
    assert api.get(f"/api/cab-meetings/{board['id']}/minutes", "audrey").status_code == 200
    assert api.get(f"/api/cab-meetings/{board['id']}/minutes", "alice").status_code == 403
    assert api.get(f"/api/cab-meetings/{board['id']}/minutes", "audrey",
                   query_string={"format": "pdf"}).status_code == 422
    assert cab_tasks(api, cid) and api.change(cid)["state"] == "authorize"
