"""The deployment gate pipelines ask before deploying, and the scoped tokens they ask it with."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from engine import accounts
from engine.models import AuditEvent
from webui.extensions import db


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone(timedelta(hours=1))).isoformat()


def _scheduled_change(api, start: datetime, end: datetime) -> dict:
    change = api.submit(planned_start=_iso(start), planned_end=_iso(end))
    api.act("morgan", change["id"], {"decision": "approve", "comment": "Low risk, go."})
    api.attach_required(change["id"])
    api.act("morgan", change["id"], {"planned_start": _iso(start), "planned_end": _iso(end), "implementer": "ivan"})
    # authorized either way: implementing once its planned start has come, until then waiting for it
    waiting = start > datetime.now(timezone.utc)
    assert api.change(change["id"])["state"] == ("scheduled" if waiting else "implement")
    return change


def _gate(api, ref, user="ivan", token=None):
    return api.request("GET", f"/api/changes/{ref}/gate", user, token=token)


def test_gate_opens_inside_the_window_of_an_authorized_change(api):
    now = datetime.now(timezone.utc)
    change = _scheduled_change(api, now - timedelta(hours=1), now + timedelta(hours=1))
    by_id = _gate(api, change["id"]).get_json()
    assert by_id["allowed"] is True and by_id["reasons"] == []
    by_number = _gate(api, change["number"]).get_json()
    assert by_number["allowed"] is True and by_number["change"] == change["number"]


def test_gate_names_every_reason_it_is_closed(api):
    now = datetime.now(timezone.utc)
    pending = api.submit(planned_start=_iso(now + timedelta(days=2)), planned_end=_iso(now + timedelta(days=2, hours=1)))
    answer = _gate(api, pending["id"]).get_json()
    assert answer["allowed"] is False
    assert any("not authorized" in r for r in answer["reasons"])
    assert any("opens at" in r for r in answer["reasons"])

    later = _scheduled_change(api, now + timedelta(days=1), now + timedelta(days=1, hours=2))
    answer = _gate(api, later["id"]).get_json()
    assert answer["allowed"] is False and len(answer["reasons"]) == 1 and "opens at" in answer["reasons"][0]

    past = _scheduled_change(api, now - timedelta(days=1, hours=2), now - timedelta(days=1))
    answer = _gate(api, past["id"]).get_json()
    assert answer["allowed"] is False and "closed at" in answer["reasons"][0]


def test_every_gate_check_is_audited(api):
    now = datetime.now(timezone.utc)
    change = _scheduled_change(api, now - timedelta(hours=1), now + timedelta(hours=1))
    _gate(api, change["id"])
    _gate(api, change["number"], user="morgan")
    with api.app.app_context():
        events = db.session.scalars(select(AuditEvent).where(
            AuditEvent.change_id == change["id"], AuditEvent.kind == "gate_checked")).all()
        assert [(e.actor, e.data["allowed"]) for e in events] == [("ivan", True), ("morgan", True)]


def test_a_token_scoped_to_the_gate_can_do_nothing_else(api):
    now = datetime.now(timezone.utc)
    change = _scheduled_change(api, now - timedelta(hours=1), now + timedelta(hours=1))
    with api.app.app_context():
        _row, token = accounts.create_token(db.session, "ivan", name="release pipeline", scopes=["change.gate"])
        db.session.commit()
    assert _gate(api, change["number"], token=token).get_json()["allowed"] is True
    refused = api.request("GET", "/api/changes", token=token)
    assert refused.status_code == 403 and "change.gate" in refused.get_json()["message"]
    assert api.request("GET", "/api/tasks", token=token).status_code == 403


def test_a_revoked_token_stops_working(api):
    with api.app.app_context():
        row, token = accounts.create_token(db.session, "ivan", name="laptop")
        db.session.commit()
        token_id = row.id
    assert api.request("GET", "/api/tasks", token=token).status_code == 200
    with api.app.app_context():
        accounts.revoke_token(db.session, token_id)
        db.session.commit()
    assert api.request("GET", "/api/tasks", token=token).status_code == 401


def test_requesters_cannot_read_the_gate_of_other_peoples_changes(api):
    change = api.submit(user="morgan")
    assert _gate(api, change["id"], user="alice").status_code == 403
    assert _gate(api, "CHG9999999").status_code == 404
