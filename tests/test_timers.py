"""Timers: approval SLAs escalate, a change waits for its planned start, overdue follow-up actions
remind their owner, and a slow service task waits for a worker. Time is the jobs' clock (`run_due`)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from sqlalchemy import select

from engine.business_time import add_business_days
from engine.models import AuditEvent, Job, Notification
from webui.extensions import db

from .background_support import free_port

APPROVE = {"decision": "approve", "comment": "ok"}
PAST = {"planned_start": "2026-11-20T21:00:00+00:00", "planned_end": "2026-11-20T22:00:00+00:00"}


def notifications(api, change_id, kind):
    with api.app.app_context():
        return [(n.recipient.username, n.body) for n in db.session.scalars(
            select(Notification).where(Notification.change_id == change_id, Notification.kind == kind)
            .order_by(Notification.id))]


def timer_jobs(api, change_id):
    with api.app.app_context():
        return [(j.status, j.due_at) for j in db.session.scalars(
            select(Job).where(Job.change_id == change_id, Job.kind == "timer").order_by(Job.id))]


def test_business_days_skip_weekends():
    friday = datetime(2026, 12, 4, 10, tzinfo=timezone.utc)
    assert add_business_days(friday, 2) == datetime(2026, 12, 8, 10, tzinfo=timezone.utc)  # Tuesday
    assert add_business_days(friday + timedelta(days=1), 1) == datetime(2026, 12, 8, 10, tzinfo=timezone.utc)
    assert add_business_days(friday, 0) == friday


def test_an_approval_waiting_past_its_sla_is_escalated_to_the_change_managers(api):
    submitted_at = datetime.now(timezone.utc)
    cid = api.submit()["id"]
    [(status, due)] = timer_jobs(api, cid)
    assert status == "pending"
    assert abs(due - add_business_days(submitted_at, 2)) < timedelta(minutes=1)

    api.run_due(due - timedelta(hours=1))
    assert notifications(api, cid, "approval_overdue") == []
    api.run_due(due + timedelta(seconds=1))
    [(who, body)] = notifications(api, cid, "approval_overdue")
    assert who == "morgan"
    waited_days = (due - submitted_at).days  # two business days: four calendar days over a weekend
    assert f"Authorize change: waiting {waited_days} d" in body and "unclaimed (change_manager)" in body
    assert timer_jobs(api, cid) == [("done", due)]
    trace = api.trace(cid)
    assert [e["element_id"] for e in trace["events"] if e["kind"] == "timer_fired"] == ["Event_AuthorizeOverdue"]
    assert "Task_EscalateAuthorize" in trace["diagram"]["completed_element_ids"]

    authorize = api.task("morgan", cid, "Authorize change")  # the approval itself stays open
    api.complete("morgan", authorize["id"], APPROVE)
    assert api.change(cid)["state"] == "scheduled"
    api.run_due(due + timedelta(days=30))
    assert len(notifications(api, cid, "approval_overdue")) == 1


def test_an_emergency_approval_escalates_within_hours(api):
    submitted_at = datetime.now(timezone.utc)
    cid = api.submit(change_type="emergency", emergency_reason="Firewall drops payments.")["id"]
    api.run_due(submitted_at + timedelta(hours=3, minutes=50))
    assert notifications(api, cid, "approval_overdue") == []
    api.run_due(submitted_at + timedelta(hours=4, minutes=1))
    [(who, body)] = notifications(api, cid, "approval_overdue")
    assert who == "morgan" and "Emergency approval: waiting 4 h" in body
    api.attach_required(cid)
    api.act("erin", cid, APPROVE, name="Emergency approval")
    review = api.task("erin", cid, "Review rollback plan")  # the rollback review has its own, shorter SLA
    api.run_due(datetime.fromisoformat(review["created_at"]) + timedelta(hours=2, minutes=1))
    assert len(notifications(api, cid, "approval_overdue")) == 2


def test_deciding_in_time_cancels_the_escalation(api):
    cid = api.submit()["id"]
    api.act("morgan", cid, APPROVE, name="Authorize change")
    assert [status for status, _ in timer_jobs(api, cid)] == ["cancelled"]
    api.run_due(datetime.now(timezone.utc) + timedelta(days=3))
    assert notifications(api, cid, "approval_overdue") == []


def test_a_change_whose_window_has_started_is_not_held(api):
    cid = api.submit(**PAST)["id"]
    api.act("morgan", cid, APPROVE, name="Authorize change")
    api.attach_required(cid)
    api.act("morgan", cid, {**PAST, "implementer": "ivan"}, name="Schedule change")
    assert api.change(cid)["state"] == "implement"
    assert api.task("ivan", cid)["name"] == "Implement change"


def test_a_change_waits_in_scheduled_until_its_window_starts(api):
    cid = api.submit()["id"]
    api.act("morgan", cid, APPROVE, name="Authorize change")
    api.attach_required(cid)
    api.act("morgan", cid, {"planned_start": "2037-12-05T21:00:00+00:00",
                            "planned_end": "2037-12-05T22:30:00+00:00", "implementer": "ivan"}, name="Schedule change")
    assert api.change(cid)["state"] == "scheduled"
    assert [t for t in api.inbox("ivan") if t["change_id"] == cid] == []
    [wait] = api.trace(cid)["waiting_for"]
    assert (wait["kind"], wait["element_id"], wait["due_at"]) == ("timer", "Event_WaitForPlannedStart",
                                                                  "2037-12-05T21:00:00+00:00")
    api.run_due(datetime(2037, 12, 5, 20, 59, tzinfo=timezone.utc))
    assert api.change(cid)["state"] == "scheduled"
    api.run_due(datetime(2037, 12, 5, 21, 0, 1, tzinfo=timezone.utc))
    assert api.change(cid)["state"] == "implement"
    events = [e for e in api.trace(cid)["events"] if e["kind"] in ("timer_fired", "state_changed")]
    assert [e.get("element_id") for e in events][-2:] == ["Event_WaitForPlannedStart", "Task_SetState_Implement"]


def test_an_overdue_follow_up_action_reminds_its_owner_and_the_change_managers(api):
    cid = api.submit(**PAST)["id"]
    api.act("morgan", cid, APPROVE, name="Authorize change")
    api.attach_required(cid)
    api.act("morgan", cid, {**PAST, "implementer": "ivan"}, name="Schedule change")
    api.act("ivan", cid, {"actual_start": PAST["planned_start"], "actual_end": PAST["planned_end"],
                          "implementation_result": "completed"}, name="Implement change")
    api.attach_required(cid, "close", user="ivan")
    due = date.today() + timedelta(days=2)
    api.act("morgan", cid, {"close_code": "successful", "close_notes": "Fine.", "follow_up_actions": [
        {"action": "Remove the old artefacts.", "owner": "ivan", "due_date": due.isoformat()},
        {"action": "Write the runbook.", "owner": "sam", "due_date": due.isoformat()}]},
        name="Post-implementation review")
    with api.app.app_context():
        from engine.models import FollowUpAction

        runbook = db.session.scalar(select(FollowUpAction).where(FollowUpAction.action == "Write the runbook."))
        runbook.status = "done"  # done in time: no reminder
        db.session.commit()
    api.run_due(datetime.combine(due, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=23))
    assert notifications(api, cid, "follow_up_overdue") == []
    api.run_due(datetime.combine(due + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)
                + timedelta(seconds=1))
    reminded = notifications(api, cid, "follow_up_overdue")
    assert sorted(who for who, _ in reminded) == ["ivan", "morgan"]
    assert all("Remove the old artefacts." in body and "Write the runbook." not in body for _, body in reminded)
    with api.app.app_context():
        assert db.session.scalar(select(AuditEvent.kind).where(
            AuditEvent.change_id == cid, AuditEvent.kind == "follow_up_overdue")) == "follow_up_overdue"


def test_a_slow_service_task_waits_for_a_worker_and_nothing_is_lost_while_redis_is_down(api):
    offline = api.with_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    cid = offline.submit(**PAST)["id"]
    offline.act("morgan", cid, APPROVE, name="Authorize change")
    offline.attach_required(cid)
    offline.act("morgan", cid, {**PAST, "implementer": "ivan"}, name="Schedule change")
    trace = offline.trace(cid)
    assert "Task_DetectConflicts" in trace["diagram"]["active_element_ids"]  # waits for a worker
    assert offline.change(cid)["state"] == "scheduled"
    assert [(w["kind"], w["element_id"], w["status"]) for w in trace["waiting_for"]] == [
        ("service_task", "Task_DetectConflicts", "pending")]
    with offline.app.app_context():
        waiting = db.session.scalars(select(Job).where(Job.change_id == cid, Job.status == "pending")).all()
        assert "service_task" in {j.kind for j in waiting}
        assert db.session.scalar(select(Notification.status).where(
            Notification.change_id == cid, Notification.kind == "request_approved")) == "pending"

    offline.run_due()  # a worker comes: the conflict check runs, the instance goes on, mail goes out
    assert offline.change(cid)["state"] == "implement"
    assert "Task_DetectConflicts" in offline.trace(cid)["diagram"]["completed_element_ids"]
    with offline.app.app_context():
        assert db.session.scalar(select(Notification.status).where(
            Notification.change_id == cid, Notification.kind == "request_approved")) == "sent"
        assert db.session.scalars(select(Job.status).where(Job.change_id == cid, Job.kind == "service_task")).all() \
            == ["done"]


def test_a_failing_step_after_a_timer_is_an_incident_and_a_dead_job_an_admin_can_retry(api):
    """A process error needs a process owner, not retries: the job fails at once and the change shows it."""
    from pathlib import Path

    from engine.definitions import deploy_files
    from engine.models import Incident, User

    xml = (Path(__file__).resolve().parent.parent / "processes" / "normal_change.bpmn").read_text()
    broken = xml.replace('<spiffworkflow:parameter id="template" type="str" value="&quot;approval_overdue&quot;"/>',
                         '<spiffworkflow:parameter id="template" type="str" value="&quot;no_such_template&quot;"/>')
    assert broken != xml
    with api.app.app_context():
        deploy_files(db.session, {"normal_change.bpmn": broken},
                     db.session.scalar(select(User).where(User.username == "paula")))
        db.session.commit()
    cid = api.submit()["id"]
    [(_, due)] = timer_jobs(api, cid)
    api.run_due(due + timedelta(seconds=1))
    failed = api.get("/api/admin/jobs", "ada", query_string={"status": "failed"}).get_json()["items"]
    assert [(j["kind"], j["change_id"], j["attempts"]) for j in failed] == [("timer", cid, 1)]
    assert "no_such_template" in failed[0]["last_error"]
    with api.app.app_context():
        incident = db.session.scalar(select(Incident).where(Incident.change_id == cid))
        assert incident.element_id == "Task_EscalateAuthorize"
    assert [(w["kind"], w["status"]) for w in api.trace(cid)["waiting_for"]] == [("timer", "failed")]
    assert api.task("morgan", cid, "Authorize change")["status"] == "ready"  # the change itself is not stuck

    assert api.post(f"/api/admin/jobs/{failed[0]['id']}/retry", "morgan").status_code == 403
    retried = api.post(f"/api/admin/jobs/{failed[0]['id']}/retry", "ada")
    assert retried.status_code == 200 and retried.get_json()["status"] == "pending"
    assert retried.get_json()["due_at"] == failed[0]["due_at"]  # by the real clock it is not due yet: it waits
    assert api.post(f"/api/admin/jobs/{failed[0]['id']}/retry", "ada").status_code == 409  # pending, not failed
