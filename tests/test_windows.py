"""Maintenance windows and blackouts: CRUD, validation, RRULE expansion across month ends and DST."""
from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from engine.errors import ValidationFailed
from engine.models import AuditEvent, Service, User
from engine.windows import covered_by_maintenance, create_window, occurrences, windows_in_range
from webui.extensions import db

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
SUNDAY_NIGHT = {"kind": "maintenance", "name": "Sunday night maintenance", "starts_at": "2027-03-07T01:00:00+01:00",
                "ends_at": "2027-03-07T05:00:00+01:00", "rrule": "FREQ=WEEKLY;BYDAY=SU", "timezone": "Europe/Berlin"}
PAYROLL_BLACKOUT = {"kind": "blackout", "name": "Payroll run", "services": ["payroll"],
                    "description": "No changes to payroll in the last three business days of a month.",
                    "starts_at": "2027-01-27T00:00:00Z", "ends_at": "2027-01-28T00:00:00Z",
                    "rrule": "RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-3,-2,-1"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def create(api, user="morgan", expect=201, **fields) -> dict:
    response = api.post("/api/windows", user, json=fields)
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def listed(api, user="audrey", **params) -> list[dict]:
    response = api.get("/api/windows", user, query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def spans(window: dict) -> list[tuple[datetime, datetime]]:
    return [(at(o["start"]), at(o["end"])) for o in window["occurrences"]]


def refused_fields(response) -> list[str]:
    assert response.status_code == 422, response.get_json()
    return [e["field"] for e in response.get_json()["errors"]]


# -- CRUD -----------------------------------------------------------------------------------------

def test_window_lifecycle_is_audited_and_limited_to_change_managers_and_admins(api):
    window = create(api, **SUNDAY_NIGHT)
    assert window["starts_at"] == "2027-03-07T00:00:00+00:00" and window["ends_at"] == "2027-03-07T04:00:00+00:00"
    assert (window["starts_at_local"], window["timezone"]) == ("2027-03-07T01:00:00+01:00", "Europe/Berlin")
    assert (window["rrule"], window["until"], window["global"], window["services"]) == (
        "FREQ=WEEKLY;BYDAY=SU", None, True, [])
    assert window["created_by"] == "morgan" and "occurrences" not in window

    assert api.post("/api/windows", "alice", json=SUNDAY_NIGHT).status_code == 403
    assert [w["id"] for w in listed(api, "alice")] == [window["id"]]  # everyone reads windows

    patched = api.request("PATCH", f"/api/windows/{window['id']}", "ada",
                          json={"name": "Sunday maintenance", "services": ["crm-web", "identity"],
                                "rrule": "FREQ=WEEKLY;BYDAY=SU;COUNT=4"})
    assert patched.status_code == 200, patched.get_json()
    patched = patched.get_json()
    assert (patched["name"], patched["services"], patched["global"]) == (
        "Sunday maintenance", ["crm-web", "identity"], False)
    assert patched["until"] == "2027-03-28T03:00:00+00:00"  # the 4th Sunday ends 05:00 CEST
    assert api.get(f"/api/windows/{window['id']}", "alice").get_json() == patched

    assert api.request("PATCH", f"/api/windows/{window['id']}", "sam", json={"name": "x"}).status_code == 403
    assert api.request("DELETE", f"/api/windows/{window['id']}", "alice").status_code == 403
    assert api.request("DELETE", f"/api/windows/{window['id']}", "morgan").status_code == 204
    assert api.get(f"/api/windows/{window['id']}", "alice").status_code == 404
    assert api.request("PATCH", f"/api/windows/{window['id']}", "morgan", json={"name": "x"}).status_code == 404

    with api.app.app_context():
        events = db.session.execute(select(AuditEvent.kind, AuditEvent.actor, AuditEvent.data)
                                    .where(AuditEvent.kind.like("window_%")).order_by(AuditEvent.id)).all()
    assert [(kind, actor) for kind, actor, _ in events] == [
        ("window_created", "morgan"), ("window_updated", "ada"), ("window_deleted", "morgan")]
    assert events[1].data["services"] == ["crm-web", "identity"] and "kind" not in events[1].data
    assert events[2].data["name"] == "Sunday maintenance"


def test_list_filters_by_kind_service_and_range(api):
    weekly = create(api, **SUNDAY_NIGHT)["id"]
    payroll = create(api, **PAYROLL_BLACKOUT)["id"]
    crm = create(api, kind="blackout", name="CRM launch", services=["crm-web"],
                 starts_at="2027-03-10T08:00:00Z", ends_at="2027-03-12T18:00:00Z")["id"]
    assert [w["id"] for w in listed(api)] == [payroll, weekly, crm]  # by start
    assert [w["id"] for w in listed(api, kind="blackout")] == [payroll, crm]
    assert [w["id"] for w in listed(api, service="payroll")] == [payroll, weekly]  # its own and global ones
    in_range = listed(api, **{"from": "2027-03-09T00:00:00Z", "to": "2027-03-15T00:00:00Z"})
    assert [w["id"] for w in in_range] == [crm, weekly]  # by first occurrence in the range
    assert spans(in_range[1]) == [(at("2027-03-14T00:00:00+00:00"), at("2027-03-14T04:00:00+00:00"))]
    assert refused_fields(api.get("/api/windows", "audrey", query_string={"service": "nope"})) == ["service"]
    too_long = api.get("/api/windows", "audrey", query_string={"from": "2027-01-01T00:00:00Z",
                                                                  "to": "2028-03-01T00:00:00Z"})
    assert refused_fields(too_long) == ["to"]


def test_validation_errors_name_the_field(api):
    cases = {
        "starts_at": {**SUNDAY_NIGHT, "starts_at": "2027-03-07T01:00:00"},  # naive: which zone?
        "ends_at": {**SUNDAY_NIGHT, "ends_at": "2027-03-07T00:30:00+01:00"},
        "rrule": {**SUNDAY_NIGHT, "rrule": "FREQ=SOMETIMES;BYDAY=SU"},
        "timezone": {**SUNDAY_NIGHT, "timezone": "Mars/Olympus_Mons"},
        "services": {**SUNDAY_NIGHT, "services": ["payroll", "no-such-service"]},
        "kind": {**SUNDAY_NIGHT, "kind": "freeze"},
    }
    for field, body in cases.items():
        assert refused_fields(api.post("/api/windows", "morgan", json=body)) == [field], field
    rules = ["FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",  # never happens
             "FREQ=HOURLY", "FREQ=WEEKLY;COUNT=3;UNTIL=20280101T000000Z", "FREQ=DAILY;UNTIL=2027",
             "DTSTART:20270101T000000Z\nRRULE:FREQ=DAILY", "FREQ=DAILY;UNTIL=20260101T000000Z"]
    for rule in rules:
        assert refused_fields(api.post("/api/windows", "morgan", json={**SUNDAY_NIGHT, "rrule": rule})) == [
            "rrule"], rule

    window = create(api, **SUNDAY_NIGHT)
    bad = api.request("PATCH", f"/api/windows/{window['id']}", "morgan", json={"rrule": "BYDAY=SU;FREQ"})
    assert refused_fields(bad) == ["rrule"]
    assert refused_fields(api.request("PATCH", f"/api/windows/{window['id']}", "morgan", json={})) == ["_schema"]
    assert api.get(f"/api/windows/{window['id']}", "morgan").get_json() == window  # nothing changed
    assert len(listed(api)) == 1

    with api.app.app_context():  # the engine refuses naive times too (the CLI and workers call it)
        morgan = db.session.scalar(select(User).where(User.username == "morgan"))
        with pytest.raises(ValidationFailed) as refused:
            create_window(db.session, morgan, {**SUNDAY_NIGHT, "starts_at": datetime(2027, 3, 7, 1)})
        assert refused.value.errors[0]["field"] == "starts_at"
        db.session.rollback()


# -- recurrence -----------------------------------------------------------------------------------

def last_business_days(year: int, month: int, n: int = 3) -> list[date]:
    days = [date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]
    return [d for d in days if d.weekday() < 5][-n:]


def test_payroll_blackout_covers_the_last_three_business_days_of_every_month(api):
    window = create(api, **PAYROLL_BLACKOUT)
    assert window["rrule"] == "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-3,-2,-1" and window["until"] is None
    months = [(2027, m) for m in range(1, 13)]
    assert any(calendar.weekday(y, m, calendar.monthrange(y, m)[1]) >= 5 for y, m in months)  # ends on a weekend
    expected = [(datetime.combine(d, datetime.min.time(), UTC), datetime.combine(d, datetime.min.time(), UTC)
                 + timedelta(days=1)) for y, m in months for d in last_business_days(y, m)]
    [found] = listed(api, service="payroll", **{"from": "2027-01-01T00:00:00Z", "to": "2028-01-01T00:00:00Z"})
    assert spans(found) == expected
    # e.g. January 2027 ends on a Sunday: Wednesday 27th to Friday 29th
    assert expected[:3] == [(at(f"2027-01-{d}T00:00:00+00:00"), at(f"2027-01-{d + 1}T00:00:00+00:00"))
                            for d in (27, 28, 29)]
    assert listed(api, service="crm-web", **{"from": "2027-01-01T00:00:00Z", "to": "2028-01-01T00:00:00Z"}) == []


def test_berlin_sunday_window_stays_at_one_oclock_local_across_dst(api):
    window = create(api, **SUNDAY_NIGHT)
    for month, utc_starts in ((3, ["2027-03-21T00:00", "2027-03-28T00:00", "2027-04-03T23:00"]),
                              (10, ["2027-10-23T23:00", "2027-10-30T23:00", "2027-11-07T00:00"])):
        start = "2027-03-20T00:00:00Z" if month == 3 else "2027-10-23T00:00:00Z"
        end = "2027-04-05T00:00:00Z" if month == 3 else "2027-11-08T00:00:00Z"
        found = api.get(f"/api/windows/{window['id']}", "alice", query_string={"from": start, "to": end}).get_json()
        starts = [s for s, _e in spans(found)]
        assert starts == [at(f"{s}:00+00:00") for s in utc_starts], month
        for s, e in spans(found):
            assert (s.astimezone(BERLIN).hour, e.astimezone(BERLIN).hour) == (1, 5)
            assert s.astimezone(BERLIN).weekday() == 6
    # the nights the clocks change are shorter (spring) or longer (autumn) in real time
    assert spans(api.get(f"/api/windows/{window['id']}", "alice", query_string={
        "from": "2027-03-28T00:00:00Z", "to": "2027-03-29T00:00:00Z"}).get_json()) == [
        (at("2027-03-28T00:00:00+00:00"), at("2027-03-28T03:00:00+00:00"))]
    assert spans(api.get(f"/api/windows/{window['id']}", "alice", query_string={
        "from": "2027-10-30T00:00:00Z", "to": "2027-11-01T00:00:00Z"}).get_json()) == [
        (at("2027-10-30T23:00:00+00:00"), at("2027-10-31T04:00:00+00:00"))]


def test_utc_sunday_window_does_not_move(api):
    window = create(api, **{**SUNDAY_NIGHT, "starts_at": "2027-03-07T01:00:00Z", "ends_at": "2027-03-07T05:00:00Z",
                            "timezone": "UTC"})
    [found] = listed(api, **{"from": "2027-03-20T00:00:00Z", "to": "2027-04-05T00:00:00Z"})
    assert found["id"] == window["id"] and window["starts_at_local"] == "2027-03-07T01:00:00+00:00"
    assert spans(found) == [(at(f"2027-{d}T01:00:00+00:00"), at(f"2027-{d}T05:00:00+00:00"))
                            for d in ("03-21", "03-28", "04-04")]


def test_occurrence_running_at_the_range_start_is_included(api):
    create(api, **SUNDAY_NIGHT)
    with api.app.app_context():
        [(window, start, end)] = windows_in_range(db.session, "maintenance", at("2027-03-14T02:00:00+00:00"),
                                                  at("2027-03-14T03:00:00+00:00"))
        assert (start, end) == (at("2027-03-14T00:00:00+00:00"), at("2027-03-14T04:00:00+00:00"))
        assert occurrences(window, at("2027-03-14T04:00:00+00:00"), at("2027-03-20T00:00:00+00:00")) == []
        assert occurrences(window, at("2027-03-01T00:00:00+00:00"), at("2027-03-07T00:00:00+00:00")) == []


# -- the contract for conflict detection and scheduling --------------------------------------------

def service_ids(*keys) -> dict[str, int]:
    return dict(db.session.execute(select(Service.key, Service.id).where(Service.key.in_(keys))).all())


def test_windows_in_range_scoping(api):
    everywhere = create(api, kind="maintenance", name="Global", starts_at="2027-05-01T00:00:00Z",
                        ends_at="2027-05-01T06:00:00Z")["id"]
    payroll = create(api, kind="maintenance", name="Payroll", services=["payroll"],
                     starts_at="2027-05-01T02:00:00Z", ends_at="2027-05-01T04:00:00Z")["id"]
    crm = create(api, kind="maintenance", name="CRM", services=["crm-web", "identity"],
                 starts_at="2027-05-01T03:00:00Z", ends_at="2027-05-01T05:00:00Z")["id"]
    freeze = create(api, kind="blackout", name="Freeze", services=["payroll"],
                    starts_at="2027-05-01T00:00:00Z", ends_at="2027-05-02T00:00:00Z")["id"]
    start, end = at("2027-05-01T00:00:00+00:00"), at("2027-05-02T00:00:00+00:00")
    with api.app.app_context():
        ids = service_ids("payroll", "crm-web", "identity", "intranet")

        def found(kind, services):
            return [w.id for w, _s, _e in windows_in_range(db.session, kind, start, end, services)]

        assert found("maintenance", None) == [everywhere, payroll, crm]
        assert found("maintenance", []) == [everywhere]
        assert found("maintenance", [ids["payroll"]]) == [everywhere, payroll]
        assert found("maintenance", [ids["identity"], ids["intranet"]]) == [everywhere, crm]
        assert found("blackout", [ids["crm-web"]]) == []
        assert found("blackout", [ids["payroll"], ids["crm-web"]]) == [freeze]
        assert found(None, [ids["payroll"]]) == [everywhere, freeze, payroll]
        assert windows_in_range(db.session, "maintenance", end, end + timedelta(days=1)) == []


def test_covered_by_maintenance_at_the_edges(api):
    create(api, kind="maintenance", name="Payroll Sundays", services=["payroll"], timezone="UTC",
           starts_at="2027-03-07T01:00:00Z", ends_at="2027-03-07T05:00:00Z", rrule="FREQ=WEEKLY;BYDAY=SU")
    create(api, kind="maintenance", name="Extra hour", services=["payroll"],
           starts_at="2027-03-14T05:00:00Z", ends_at="2027-03-14T06:00:00Z")  # right after one Sunday's
    create(api, kind="maintenance", name="Everyone, Monday", starts_at="2027-03-15T10:00:00+01:00",
           ends_at="2027-03-15T12:00:00+01:00")
    with api.app.app_context():
        ids = service_ids("payroll", "crm-web")

        def covered(key, start, end):
            return covered_by_maintenance(db.session, ids[key], at(start + "+00:00"), at(end + "+00:00"))

        assert covered("payroll", "2027-03-21T01:00:00", "2027-03-21T05:00:00")  # exactly the window
        assert covered("payroll", "2027-03-21T02:00:00", "2027-03-21T03:00:00")
        assert not covered("payroll", "2027-03-21T00:59:00", "2027-03-21T05:00:00")
        assert not covered("payroll", "2027-03-21T01:00:00", "2027-03-21T05:01:00")
        assert not covered("payroll", "2027-03-22T01:00:00", "2027-03-22T05:00:00")  # a Monday
        assert covered("payroll", "2027-03-14T04:00:00", "2027-03-14T06:00:00")  # back-to-back windows merge
        assert not covered("payroll", "2027-03-14T04:00:00", "2027-03-14T06:01:00")
        assert not covered("crm-web", "2027-03-21T02:00:00", "2027-03-21T03:00:00")  # payroll's, not crm's
        assert covered("crm-web", "2027-03-15T09:00:00", "2027-03-15T11:00:00")  # the global one (+01:00)
        assert covered("payroll", "2027-03-15T09:00:00", "2027-03-15T11:00:00")
        assert not covered("crm-web", "2027-03-15T09:00:00", "2027-03-15T11:00:01")
        assert not covered("payroll", "2027-03-21T02:00:00", "2027-03-21T02:00:00")  # empty interval
