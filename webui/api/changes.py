from __future__ import annotations

from flask_smorest import Blueprint

from engine import changes as change_service
from engine.gate import check_gate
from engine.intake_preview import preview_change
from engine.trace import change_trace
from engine.transactions import run_command

from ..auth import current_user, permission
from ..extensions import db
from . import schemas

blp = Blueprint("changes", __name__, url_prefix="/api/changes", description="Change requests")


@blp.route("", methods=["POST"])
@permission("change.create")
@blp.arguments(schemas.ChangeCreate)
@blp.response(201, schemas.Change)
def create_change(fields):
    """Submit a change request; its process starts at once."""
    user = current_user()
    return run_command(db.session, user, change_service.create_change, user, fields)


@blp.route("/preview", methods=["POST"])
@permission("change.create")
@blp.arguments(schemas.ChangePreview)
@blp.response(200, schemas.ChangePreviewResult)
def preview(fields):
    """What submitting this request would assess — risk with its reasons, priority, conflicts of the
    window — computed as a submission does; nothing is stored."""
    return preview_change(db.session, current_user(), fields)


@blp.route("", methods=["GET"])
@permission("change.read")
@blp.arguments(schemas.ChangeQuery, location="query")
@blp.response(200, schemas.ChangePage)
def list_changes(query):
    """Changes the caller may see, newest first. Requesters see their own."""
    items, total = change_service.list_changes(
        db.session, current_user(), state=query.get("state"), change_type=query.get("type"),
        risk=query.get("risk"), service=query.get("service"), requester=query.get("requester"),
        page=query["page"], per_page=query["per_page"])
    return {"items": items, "total": total, "page": query["page"], "per_page": query["per_page"]}


@blp.route("/<int:change_id>", methods=["GET"])
@permission("change.read")
@blp.response(200, schemas.Change)
def get_change(change_id):
    return change_service.get_change(db.session, change_id, current_user())


@blp.route("/<change_ref>/gate", methods=["GET"])
@permission("change.gate")
@blp.response(200, schemas.Gate)
def gate(change_ref):
    """May a pipeline deploy this change now? `change_ref` is the id or the number (CHG0000123).

    Allowed only when the change is authorized and now is inside its planned window (and, as they
    land, no blackout applies and required evidence is present). Every check is audited.
    """
    user = current_user()
    change = change_service.get_change(db.session, change_ref, user)
    return run_command(db.session, user, check_gate, change, user)


@blp.route("/<int:change_id>/trace", methods=["GET"])
@permission("change.read")
@blp.response(200, schemas.Trace)
def get_trace(change_id):
    """Everything that happened to the change, and the diagram path it took."""
    change = change_service.get_change(db.session, change_id, current_user())
    return change_trace(db.session, change)
