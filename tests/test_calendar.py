"""The change calendar: JSON for the API, and the per-user iCalendar feed calendar apps subscribe to."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from icalendar import Calendar
from sqlalchemy import select

from engine.models import AuditEvent
from webui.extensions import db

UTC = timezone.utc
DECEMBER = {"from": "2037-12-01T00:00:00Z", "to": "2037-12-15T00:00:00Z"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def window(api, **fields) -> dict:
    response = api.post("/api/windows", "morgan", json=fields)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def entries(api, user, **params) -> list[tuple]:
    response = api.get("/api/calendar", user, query_string=params)
    assert response.status_code == 200, response.get_json()
    return [(e["type"], e["id"], e["start"], e["end"]) for e in response.get_json()["entries"]]


def cancel(api, change_id: int) -> None:
    api.act("morgan", change_id, {"decision": "reject", "comment": "Not this month."})
    api.act("alice", change_id, {"rework_action": "cancel", "comment": "No longer needed."})
    assert api.change(change_id)["state"] == "canceled"


def test_calendar_lists_visible_changes_and_window_occurrences(api):
    crm = api.submit()  # alice's: crm-web, 5 Dec 21:00–22:30 UTC
    payroll = api.submit("morgan", title="Patch payroll database", services=["payroll"],
                         planned_start="2037-12-08T20:00:00Z", planned_end="2037-12-08T23:00:00Z")
    canceled = api.submit(title="Retire the old CRM theme", planned_start="2037-12-09T20:00:00Z",
                          planned_end="2037-12-09T21:00:00Z")
    cancel(api, canceled["id"])
    api.submit(title="Next year", planned_start="2038-02-01T20:00:00Z", planned_end="2038-02-01T21:00:00Z")
    saturdays = window(api, kind="maintenance", name="Saturday nights", starts_at="2037-11-28T22:00:00+01:00",
                       ends_at="2037-11-29T02:00:00+01:00", rrule="FREQ=WEEKLY;BYDAY=SA",
                       timezone="Europe/Berlin")["id"]
    freeze = window(api, kind="blackout", name="Payroll run", services=["payroll"],
                    starts_at="2037-12-10T00:00:00Z", ends_at="2037-12-12T00:00:00Z")["id"]

    everything = [
        ("maintenance", saturdays, "2037-12-05T21:00:00+00:00", "2037-12-06T01:00:00+00:00"),
        ("change", crm["id"], "2037-12-05T21:00:00+00:00", "2037-12-05T22:30:00+00:00"),
        ("change", payroll["id"], "2037-12-08T20:00:00+00:00", "2037-12-08T23:00:00+00:00"),
        ("blackout", freeze, "2037-12-10T00:00:00+00:00", "2037-12-12T00:00:00+00:00"),
        ("maintenance", saturdays, "2037-12-12T21:00:00+00:00", "2037-12-13T01:00:00+00:00"),
    ]
    by_start = sorted(everything, key=lambda e: (e[2], e[0] != "change"))
    assert entries(api, "audrey", **DECEMBER) == by_start
    assert entries(api, "alice", **DECEMBER) == [e for e in by_start if e[1] != payroll["id"] or e[0] != "change"]
    assert entries(api, "audrey", service="payroll", **DECEMBER) == [
        e for e in by_start if (e[0], e[1]) != ("change", crm["id"])]

    body = api.get("/api/calendar", "audrey", query_string=DECEMBER).get_json()
    assert (body["from"], body["to"]) == ("2037-12-01T00:00:00+00:00", "2037-12-15T00:00:00+00:00")
    change = next(e for e in body["entries"] if e["type"] == "change" and e["id"] == crm["id"])
    assert change == {"type": "change", "id": crm["id"], "number": crm["number"], "title": crm["title"],
                      "start": "2037-12-05T21:00:00+00:00", "end": "2037-12-05T22:30:00+00:00",
                      "services": ["crm-web"], "state": "authorize", "risk": crm["risk"],
                      "change_type": "normal", "link": f"/api/changes/{crm['id']}"}
    blackout = next(e for e in body["entries"] if e["type"] == "blackout")
    assert (blackout["title"], blackout["services"], blackout["recurring"], blackout["link"]) == (
        "Payroll run", ["payroll"], False, f"/api/windows/{freeze}")


def test_calendar_range_is_checked(api):
    def refused(**params):
        response = api.get("/api/calendar", "alice", query_string=params)
        assert response.status_code == 422, response.get_json()
        return [e["field"] for e in response.get_json()["errors"]]

    assert refused(**{"from": "2038-01-01T00:00:00Z", "to": "2039-03-01T00:00:00Z"}) == ["to"]
    assert refused(**{"from": "2038-01-02T00:00:00Z", "to": "2038-01-01T00:00:00Z"}) == ["to"]
    assert refused(service="no-such-service") == ["service"]
    assert api.get("/api/calendar").status_code == 401


# -- the iCalendar feed ---------------------------------------------------------------------------

def subscribe(api, user) -> str:
    response = api.post("/api/calendar/token", user)
    assert response.status_code == 201, response.get_json()
    url = urlsplit(response.get_json()["url"])
    assert url.path == "/calendar.ics" and response.get_json()["token"] in url.query
    return f"{url.path}?{url.query}"


def feed(api, path, service=None) -> Calendar:
    response = api.client.get(path + (f"&service={service}" if service else ""))  # no Authorization header
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/calendar"
    return Calendar.from_ical(response.data)


def events(calendar: Calendar) -> dict[str, tuple]:
    return {str(e["UID"]): (str(e["SUMMARY"]), e.decoded("DTSTART"), e.decoded("DTEND"))
            for e in calendar.walk("VEVENT")}


def test_ics_feed_has_the_users_changes_and_windows_in_utc(api):
    soon = (datetime.now(UTC) + timedelta(days=3)).replace(hour=20, minute=0, second=0, microsecond=0)
    mine = api.submit(planned_start=soon.isoformat(), planned_end=(soon + timedelta(hours=2)).isoformat())
    theirs = api.submit("morgan", title="Patch payroll database", services=["payroll"],
                        planned_start=soon.isoformat(), planned_end=(soon + timedelta(hours=1)).isoformat())
    api.submit(title="Far ahead", planned_start=(soon + timedelta(days=200)).isoformat(),
               planned_end=(soon + timedelta(days=200, hours=1)).isoformat())
    freeze = window(api, kind="blackout", name="Payroll run", services=["payroll"],
                    starts_at=(soon + timedelta(days=1)).isoformat(), ends_at=(soon + timedelta(days=2)).isoformat())

    path = subscribe(api, "alice")
    calendar = feed(api, path)
    assert str(calendar["X-WR-CALNAME"]) == "Changeflow changes"
    found = events(calendar)
    assert found == {
        f"{mine['number']}@changeflow": (f"{mine['number']} {mine['title']} [{mine['risk']}]",
                                         soon, soon + timedelta(hours=2)),
        f"window-{freeze['id']}-{soon + timedelta(days=1):%Y%m%dT%H%M%SZ}@changeflow": (
            "Blackout: Payroll run (payroll)", soon + timedelta(days=1), soon + timedelta(days=2)),
    }
    for event in calendar.walk("VEVENT"):
        assert event.decoded("DTSTART").utcoffset() == timedelta(0)
    change = next(e for e in calendar.walk("VEVENT") if str(e["UID"]).startswith(mine["number"]))
    description = str(change["DESCRIPTION"])
    assert "State: authorize" in description and "Services: crm-web" in description
    assert description.endswith(f"/api/changes/{mine['id']}") and str(change["URL"]).startswith("http")
    raw = api.client.get(path).data.decode()
    assert f"DTSTART:{soon:%Y%m%dT%H%M%SZ}" in raw  # plain UTC, no TZID for clients to resolve

    staff = events(feed(api, subscribe(api, "audrey")))
    assert f"{theirs['number']}@changeflow" in staff and f"{mine['number']}@changeflow" in staff
    payroll_only = feed(api, subscribe(api, "audrey"), service="payroll")
    assert set(events(payroll_only)) == {f"{theirs['number']}@changeflow",
                                         f"window-{freeze['id']}-{soon + timedelta(days=1):%Y%m%dT%H%M%SZ}@changeflow"}
    assert str(payroll_only["X-WR-CALNAME"]) == "Changeflow changes — payroll"


def test_feed_token_is_secret_and_rotating_it_invalidates_the_old_url(api):
    assert api.client.get("/calendar.ics?token=not-a-token").status_code == 404
    assert api.client.get("/calendar.ics").status_code == 422
    old = subscribe(api, "alice")
    assert api.client.get(old).status_code == 200
    new = subscribe(api, "alice")
    assert new != old
    assert api.client.get(old).status_code == 404
    assert api.client.get(new).status_code == 200
    assert api.post("/api/calendar/token").status_code == 401
    with api.app.app_context():
        stored = db.session.execute(select(AuditEvent.kind, AuditEvent.actor)
                                    .where(AuditEvent.kind.like("calendar_token_%")).order_by(AuditEvent.id)).all()
    assert [tuple(row) for row in stored] == [("calendar_token_created", "alice"), ("calendar_token_rotated", "alice")]


def test_calendar_entries_are_written_as_their_documented_schema_says(api):
    """The calendar hands its entries to the response writer without marshmallow's nested schema (a
    month holds thousands); what a client receives must be what the schema it documents would write."""
    from marshmallow import fields

    from engine import calendar_feed
    from engine.models import User
    from webui.api.schemas.windows import CalendarEntry

    api.submit()
    window(api, kind="maintenance", name="Saturday nights", starts_at="2037-11-28T22:00:00+01:00",
           ends_at="2037-11-29T02:00:00+01:00", rrule="FREQ=WEEKLY;BYDAY=SA", timezone="Europe/Berlin")
    window(api, kind="blackout", name="Payroll run", services=["payroll"],
           starts_at="2037-12-10T00:00:00Z", ends_at="2037-12-12T00:00:00Z")
    with api.app.app_context():
        audrey = db.session.scalar(select(User).where(User.username == "audrey"))
        view = calendar_feed.calendar_entries(db.session, audrey, at(DECEMBER["from"].replace("Z", "+00:00")),
                                              at(DECEMBER["to"].replace("Z", "+00:00")))
    received = api.get("/api/calendar", "audrey", query_string=DECEMBER).get_json()["entries"]
    documented = fields.List(fields.Nested(CalendarEntry)).serialize("entries", view)
    assert [e["type"] for e in received] == ["change", "maintenance", "blackout", "maintenance"]
    assert received == documented