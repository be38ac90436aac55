from __future__ import annotations

from flask import Response
from flask_smorest import Blueprint

from engine import cab as cab_service
from engine import cab_minutes
from engine.transactions import run_command

from ..auth import current_user, permission
from ..extensions import db
from . import schemas

blp = Blueprint("cab_meetings", __name__, url_prefix="/api/cab-meetings",
                description="Change Advisory Board meetings: agenda, decisions, minutes")

MINUTES_TYPES = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8"}


@blp.route("", methods=["POST"])
@permission("cab.manage")
@blp.arguments(schemas.CabMeetingCreate)
@blp.response(201, schemas.CabMeeting)
def create_meeting(fields):
    """Plan a meeting; every member must hold the cab_member role."""
    user = current_user()
    return run_command(db.session, user, cab_service.create_meeting, user, fields)


@blp.route("", methods=["GET"])
@permission("cab.read")
@blp.arguments(schemas.CabMeetingQuery, location="query")
@blp.response(200, schemas.CabMeeting(many=True))
def list_meetings(query):
    """Meetings not yet over first (soonest first), then past ones; `from`/`to` bound the start."""
    return cab_service.list_meetings(db.session, current_user(), start=query.get("start"), end=query.get("end"))


@blp.route("/<int:meeting_id>", methods=["GET"])
@permission("cab.read")
@blp.response(200, schemas.CabMeetingDetail)
def get_meeting(meeting_id):
    """The meeting with its agenda: changes awaiting the CAB that start before the next meeting plus
    the horizon (and those without a planned start), with risk, services and decisions so far."""
    return cab_service.meeting_with_agenda(db.session, current_user(), meeting_id)


@blp.route("/<int:meeting_id>/decisions", methods=["POST"])
@permission("cab.manage")
@blp.arguments(schemas.CabDecision)
@blp.response(200, schemas.CabDecisionResult)
@blp.alt_response(409, description="The change is not on the agenda, or no vote could be recorded")
def record_decision(body, meeting_id):
    """Record a decision taken in the meeting: the chair completes each present member's CAB
    approval on their behalf, linked to the meeting and the evidence reviewed."""
    user = current_user()
    return run_command(db.session, user, cab_service.record_decision, user, meeting_id, body)


@blp.route("/<int:meeting_id>/minutes", methods=["GET"])
@permission("cab.read")
@blp.arguments(schemas.CabMinutesQuery, location="query")
@blp.doc(responses={"200": {"description": "The minutes", "content": {
    "text/markdown": {"schema": {"type": "string"}}, "text/html": {"schema": {"type": "string"}}}}})
def minutes(query, meeting_id):
    """The minutes: members present, each decision with every member's vote, comment and the
    evidence reviewed, the outcome, and agenda items not decided. `format` is md (a download) or html."""
    fmt = query["format"]
    text = cab_minutes.minutes(db.session, current_user(), meeting_id, fmt)
    response = Response(text, mimetype=None, content_type=MINUTES_TYPES[fmt])
    if fmt == "md":
        response.headers["Content-Disposition"] = f"attachment; filename=cab-{meeting_id}.md"
    return response
