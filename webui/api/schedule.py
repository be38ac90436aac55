from __future__ import annotations

from flask_smorest import Blueprint
from sqlalchemy import select

from engine import changes as change_service
from engine.conflicts import Proposal, detect, implementer_id
from engine.errors import ValidationFailed
from engine.models import ChangeConflict, Service
from engine.db import utcnow
from engine.projection import parse_duration, parse_time
from engine.scheduling import suggest

from ..auth import current_user, permission
from ..extensions import db
from . import schemas

blp = Blueprint("schedule", __name__, url_prefix="/api", description="Conflicts and the scheduling assistant")


@blp.route("/changes/<int:change_id>/conflicts", methods=["GET"])
@permission("change.read")
@blp.response(200, schemas.ConflictReport)
def change_conflicts(change_id):
    """Conflicts of the change's planned window now, and the history of those recorded by its process."""
    change = change_service.get_change(db.session, change_id, current_user())
    history = db.session.scalars(select(ChangeConflict).where(ChangeConflict.change_id == change.id)
                                 .order_by(ChangeConflict.id)).all()
    return {"conflicts": [c.as_dict() for c in detect(db.session, Proposal.of(change))], "recorded": history}


@blp.route("/schedule/check", methods=["POST"])
@permission("schedule.check")
@blp.arguments(schemas.ScheduleCheck)
@blp.response(200, schemas.ConflictReport)
def check(body):
    """What-if: the conflicts a slot would have, without creating anything."""
    services = db.session.scalars(select(Service).where(Service.key.in_(body["services"]))).all()
    missing = set(body["services"]) - {s.key for s in services}
    if missing:
        raise ValidationFailed("Unknown services.", errors=[
            {"field": "services", "message": f"no service with key '{k}'"} for k in sorted(missing)])
    proposal = Proposal(body["start"], body["end"], tuple(s.id for s in services), body["change_type"],
                        implementer_id(db.session, body.get("implementer")), body.get("change_id"))
    return {"conflicts": [c.as_dict() for c in detect(db.session, proposal)], "recorded": []}


@blp.route("/schedule/suggest", methods=["GET"])
@permission("schedule.check")
@blp.arguments(schemas.SuggestQuery, location="query")
@blp.response(200, schemas.Slot(many=True))
def suggest_slots(query):
    """The next free slots inside the services' maintenance windows, outside blackouts and conflicts."""
    duration = parse_duration(query["duration"])
    after = parse_time(query["after"], "after") if query.get("after") else None
    return suggest(db.session, service_keys=query["services"], duration=duration, after=after or utcnow(),
                   implementer_id=implementer_id(db.session, query.get("implementer")), count=query["count"])
