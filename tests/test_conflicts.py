"""Conflict detection and the scheduling assistant, through the API, with real windows and services."""
from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import select

from engine.models import ChangeConflict, Notification
from webui.extensions import db

UTC = timezone.utc
DAY = datetime(2027, 3, 10, tzinfo=UTC)  # a Wednesday, far from any month end


def iso(moment: datetime) -> str:
    return moment.isoformat()


def window(api, **fields):
    response = api.post("/api/windows", "morgan", json=fields)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def depend(api, service, depends_on, kind="calls"):
    response = api.post(f"/api/services/{service}/dependencies", "morgan", json={"depends_on": depends_on, "kind": kind})
    assert response.status_code in (200, 201), response.get_json()


def check(api, start, end, services, **extra):
    response = api.post("/api/schedule/check", "alice", json={
        "start": iso(start), "end": iso(end), "services": services, **extra})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["conflicts"]


def kinds(conflicts):
    return sorted(c["kind"] for c in conflicts)


def planned(api, start, end, services, **extra):
    return api.submit(planned_start=iso(start), planned_end=iso(end), services=services, **extra)


def test_same_service_overlap_names_the_other_change(api):
    other = planned(api, DAY.replace(hour=22), DAY.replace(hour=23), ["crm-web"])
    found = check(api, DAY.replace(hour=22, minute=30), DAY.replace(hour=23, minute=30), ["crm-web"])
    assert kinds(found) == ["same_service"]
    assert found[0]["other_change"] == other["number"] and other["number"] in found[0]["message"]
    assert check(api, DAY.replace(hour=23), DAY.replace(hour=23, minute=30), ["crm-web"]) == []  # touching is fine


def test_dependent_services_conflict_transitively(api):
    depend(api, "crm-web", "identity")      # crm-web needs identity
    depend(api, "identity", "firewall", "runs_on")  # identity runs on the firewall
    on_firewall = planned(api, DAY.replace(hour=1), DAY.replace(hour=3), ["firewall"])
    found = check(api, DAY.replace(hour=2), DAY.replace(hour=4), ["crm-web"])
    assert kinds(found) == ["dependency"] and found[0]["other_change"] == on_firewall["number"]
    assert check(api, DAY.replace(hour=2), DAY.replace(hour=4), ["intranet"]) == []  # unrelated service


def test_implementer_double_booked(api):
    planned(api, DAY.replace(hour=20), DAY.replace(hour=22), ["intranet"], implementer="ivan")
    found = check(api, DAY.replace(hour=21), DAY.replace(hour=23), ["service-desk"], implementer="ivan")
    assert kinds(found) == ["implementer_busy"] and "ivan" in found[0]["message"]


def test_outside_the_maintenance_window_of_a_service_that_requires_one(api):
    api.request("PATCH", "/api/services/firewall", "morgan", json={"requires_maintenance_window": True})
    window(api, kind="maintenance", name="Network Sunday", starts_at="2027-03-07T01:00:00+00:00",
           ends_at="2027-03-07T05:00:00+00:00", rrule="FREQ=WEEKLY;BYDAY=SU", services=["firewall"])
    sunday = datetime(2027, 3, 14, tzinfo=UTC)
    assert check(api, sunday.replace(hour=2), sunday.replace(hour=4), ["firewall"]) == []
    found = check(api, sunday.replace(hour=4), sunday.replace(hour=6), ["firewall"])
    assert kinds(found) == ["outside_maintenance_window"] and "firewall" in found[0]["message"]


def last_business_days(year, month, n=3):
    days = [date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]
    return [d for d in days if d.weekday() < 5][-n:]


def payroll_blackout(api):
    return window(api, kind="blackout", name="Payroll month end", starts_at="2027-01-27T00:00:00+00:00",
                  ends_at="2027-01-28T00:00:00+00:00",
                  rrule="FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-3,-2,-1", services=["payroll"])


def test_payroll_change_inside_the_month_end_blackout_is_blocked_and_the_next_slot_offered(api):
    payroll_blackout(api)
    blocked_day = last_business_days(2027, 4)[1]
    start = datetime.combine(blocked_day, datetime.min.time(), UTC).replace(hour=20)
    found = check(api, start, start + timedelta(hours=2), ["payroll"])
    assert kinds(found) == ["blackout"] and found[0]["severity"] == "blocking"
    emergency = check(api, start, start + timedelta(hours=2), ["payroll"], change_type="emergency")
    assert emergency[0]["severity"] == "warning"  # emergencies may proceed on an approved exception
    slots = api.get("/api/schedule/suggest", "alice", query_string={
        "services": "payroll", "duration": "PT2H", "after": iso(start), "count": 3}).get_json()
    first = datetime.fromisoformat(slots[0]["start"])
    blackout_end = datetime.combine(last_business_days(2027, 4)[-1] + timedelta(days=1), datetime.min.time(), UTC)
    assert first == blackout_end  # the first moment after the month-end blackout
    assert all(check(api, datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"]), ["payroll"]) == []
               for s in slots)


def test_suggestions_avoid_busy_services_and_stay_inside_maintenance_windows(api):
    api.request("PATCH", "/api/services/firewall", "morgan", json={"requires_maintenance_window": True})
    window(api, kind="maintenance", name="Network Sunday", starts_at="2027-03-07T01:00:00+00:00",
           ends_at="2027-03-07T05:00:00+00:00", rrule="FREQ=WEEKLY;BYDAY=SU", services=["firewall"])
    planned(api, datetime(2027, 3, 14, 1, tzinfo=UTC), datetime(2027, 3, 14, 5, tzinfo=UTC), ["firewall"])
    slots = api.get("/api/schedule/suggest", "alice", query_string={
        "services": "firewall", "duration": "PT2H", "after": "2027-03-10T00:00:00+00:00", "count": 2}).get_json()
    assert [s["start"] for s in slots] == ["2027-03-21T01:00:00+00:00", "2027-03-21T03:00:00+00:00"]


def test_scheduling_a_change_records_conflicts_and_notifies_owners(api):
    other = planned(api, DAY.replace(hour=22), DAY.replace(hour=23), ["crm-web"])
    change = planned(api, DAY.replace(hour=22, minute=30), DAY.replace(hour=23, minute=30), ["crm-web"])
    api.act("morgan", change["id"], {"decision": "approve", "comment": "ok"}, name="Authorize change")
    api.attach_required(change["id"])
    api.act("morgan", change["id"], {"planned_start": iso(DAY.replace(hour=22, minute=30)),
                                     "planned_end": iso(DAY.replace(hour=23, minute=30)), "implementer": "ivan"},
            name="Schedule change")
    # a same-service overlap warns, it does not block: the change waits for its window, then is implemented
    assert api.change(change["id"])["state"] == "scheduled"
    assert "Event_WaitForPlannedStart" in api.trace(change["id"])["diagram"]["active_element_ids"]
    api.wait_for_window(change["id"])
    assert api.change(change["id"])["state"] == "implement"
    report = api.get(f"/api/changes/{change['id']}/conflicts", "morgan").get_json()
    assert [c["other_change"] for c in report["conflicts"]] == [other["number"]]
    assert [r["kind"] for r in report["recorded"]] == ["same_service"]
    with api.app.app_context():
        sent = db.session.scalars(select(Notification).where(
            Notification.change_id == change["id"], Notification.kind.in_(("change_scheduled", "window_reminder")))).all()
        assert {(n.kind, n.recipient.username) for n in sent} == {("change_scheduled", "sam"), ("window_reminder", "sam")}
        reminder = next(n for n in sent if n.kind == "window_reminder")
        assert reminder.send_after == DAY.replace(hour=22, minute=30) - timedelta(hours=24)
        assert "Rollback plan" in next(n for n in sent if n.kind == "change_scheduled").body


def test_a_blackout_added_after_scheduling_escalates_once(api):
    change = planned(api, DAY.replace(hour=22), DAY.replace(hour=23), ["crm-web"])
    api.act("morgan", change["id"], {"decision": "approve", "comment": "ok"}, name="Authorize change")
    api.act("morgan", change["id"], {"planned_start": iso(DAY.replace(hour=22)), "planned_end": iso(DAY.replace(hour=23)),
                                     "implementer": "ivan"}, name="Schedule change")
    window(api, kind="blackout", name="Quarter close", starts_at=iso(DAY), ends_at=iso(DAY + timedelta(days=1)))
    window(api, kind="blackout", name="Quarter close (dup)", starts_at=iso(DAY), ends_at=iso(DAY + timedelta(days=1)))
    with api.app.app_context():
        open_conflicts = db.session.scalars(select(ChangeConflict).where(
            ChangeConflict.change_id == change["id"], ChangeConflict.resolved_at.is_(None))).all()
        assert sorted(c.kind for c in open_conflicts) == ["blackout", "blackout"]
        escalations = db.session.scalars(select(Notification).where(
            Notification.change_id == change["id"], Notification.kind == "conflict_escalation")).all()
        assert {n.recipient.username for n in escalations} == {"morgan", "sam"}
        assert len(escalations) == 4  # each new blackout escalated once to each person
    gate = api.get(f"/api/changes/{change['id']}/gate", "ivan").get_json()
    assert any("blackout" in r.lower() for r in gate["reasons"])


def _scheduled(api, day: datetime, services: list[str]) -> dict:
    change = planned(api, day.replace(hour=22), day.replace(hour=23), services)
    api.act("morgan", change["id"], {"decision": "approve", "comment": "ok"}, name="Authorize change")
    api.act("morgan", change["id"], {"planned_start": iso(day.replace(hour=22)), "planned_end": iso(day.replace(hour=23)),
                                     "implementer": "ivan"}, name="Schedule change")
    return change


def _open_conflict_kinds(change_id: int) -> list[str]:
    return sorted(db.session.scalars(select(ChangeConflict.kind).where(
        ChangeConflict.change_id == change_id, ChangeConflict.resolved_at.is_(None))))


def test_a_new_window_has_every_scheduled_change_in_its_span_rechecked_by_jobs_a_batch_at_a_time(api, monkeypatch):
    """Saving a window does not re-check the scheduled changes itself (an endless recurring window reaches
    all of them: 20 minutes at 50,000): it leaves a job, which works through them a batch at a time."""
    from sqlalchemy.orm import Session

    from engine import conflict_records, windows
    from engine.models import Job, User

    monkeypatch.setattr(conflict_records, "RECHECK_BATCH", 2)
    changes = [_scheduled(api, DAY + timedelta(days=offset), ["crm-web"]) for offset in (0, 7, 14)]
    with api.app.app_context():
        with Session(db.engine) as session:  # a plain session: nothing runs the job at commit
            morgan = session.scalar(select(User).where(User.username == "morgan"))
            windows.create_window(session, morgan, {
                "kind": "blackout", "name": "Wednesday freeze", "starts_at": DAY, "ends_at": DAY + timedelta(days=1),
                "rrule": "FREQ=WEEKLY", "timezone": "UTC"})
            session.commit()
        assert [_open_conflict_kinds(c["id"]) for c in changes] == [[], [], []]  # committed, not yet re-checked
    api.run_due()
    with api.app.app_context():
        assert [_open_conflict_kinds(c["id"]) for c in changes] == [["blackout"]] * 3
        batches = db.session.scalars(select(Job).where(Job.kind == "recheck_scheduled").order_by(Job.id)).all()
        assert [job.status for job in batches] == ["done", "done"]  # two changes, then the third
        assert batches[0].ref.endswith("|0") and batches[1].ref.endswith(f"|{changes[1]['id']}")
        escalations = db.session.scalars(select(Notification.change_id).where(
            Notification.kind == "conflict_escalation", Notification.change_id.in_([c["id"] for c in changes])))
        assert sorted(set(escalations)) == sorted(c["id"] for c in changes)


def test_blocked_normal_change_goes_back_to_scheduling(api):
    before = DAY - timedelta(days=3)  # requested for a clear day, then moved into a freeze while scheduling
    change = planned(api, before.replace(hour=22), before.replace(hour=23), ["crm-web"])
    api.act("morgan", change["id"], {"decision": "approve", "comment": "ok"}, name="Authorize change")
    window(api, kind="blackout", name="Freeze", starts_at=iso(DAY), ends_at=iso(DAY + timedelta(days=1)))
    api.act("morgan", change["id"], {"planned_start": iso(DAY.replace(hour=22)), "planned_end": iso(DAY.replace(hour=23)),
                                     "implementer": "ivan"}, name="Schedule change")
    assert api.change(change["id"])["state"] == "scheduled"
    later = DAY + timedelta(days=2)
    api.attach_required(change["id"])
    api.act("morgan", change["id"], {"planned_start": iso(later.replace(hour=22)), "planned_end": iso(later.replace(hour=23)),
                                     "implementer": "ivan"}, name="Schedule change")
    assert api.change(change["id"])["state"] == "scheduled"  # out of the freeze, waiting for its window
    api.wait_for_window(change["id"])
    assert api.change(change["id"])["state"] == "implement"


def test_an_emergency_in_a_blackout_needs_an_explicit_exception(api):
    blackout = window(api, kind="blackout", name="Payroll run", starts_at=iso(DAY), ends_at=iso(DAY + timedelta(days=1)),
                      services=["payroll"])
    change = planned(api, DAY.replace(hour=9), DAY.replace(hour=10), ["payroll"], change_type="emergency",
                     category="emergency_patch", emergency_reason="Actively exploited CVE in the payroll portal.",
                     incident_ref="INC0042")
    api.attach_required(change["id"])  # the rollback plan an emergency patch needs before implementation
    api.act("erin", change["id"], {"decision": "approve", "comment": "Patch now."}, name="Emergency approval")
    exception = api.task("erin", change["id"])
    assert exception["name"] == "Approve blackout exception" and api.change(change["id"])["state"] == "authorize"
    missing_reason = api.post(f"/api/tasks/{exception['id']}/complete", "erin", json={"data": {"decision": "approve"}})
    assert missing_reason.status_code == 422
    api.complete("erin", exception["id"], {"decision": "approve", "comment": "Exploit in the wild; payroll owner agreed."})
    assert api.change(change["id"])["state"] == "authorize"
    api.act("erin", change["id"], {"decision": "approve"}, name="Review rollback plan")  # high risk
    assert api.change(change["id"])["state"] == "implement"
    approvals = api.trace(change["id"])["approvals"]
    assert [(a["step"], a["decision"]) for a in approvals] == [
        ("ecab", "approve"), ("blackout_exception", "approve"), ("rollback_review", "approve")]
    assert blackout["name"] in next(c["message"] for c in api.get(
        f"/api/changes/{change['id']}/conflicts", "morgan").get_json()["conflicts"] if c["kind"] == "blackout")


def test_a_standard_change_into_a_blackout_is_refused_with_the_reason(api):
    from .test_processes_e2e import standard_template

    window(api, kind="blackout", name="Intranet freeze", starts_at=iso(DAY), ends_at=iso(DAY + timedelta(days=1)),
           services=["intranet"])
    fields = standard_template(api)
    refused = api.post("/api/changes", "alice", json={
        **fields, "title": "Publish page", "impact": 3, "urgency": 3,
        "planned_start": iso(DAY.replace(hour=9)), "planned_end": iso(DAY.replace(hour=10))})
    assert refused.status_code == 422
    assert "blackout" in refused.get_json()["errors"][0]["message"].lower()
    later = DAY + timedelta(days=2)
    accepted = api.submit(**fields, planned_start=iso(later.replace(hour=9)), planned_end=iso(later.replace(hour=10)))
    assert accepted["state"] == "scheduled" and accepted["risk"] == "low"  # waiting only for its evidence
    api.provide_evidence(accepted["id"], "business_sign_off", "test_result")
    api.wait_for_window(accepted["id"])
    assert api.change(accepted["id"])["state"] == "implement"
