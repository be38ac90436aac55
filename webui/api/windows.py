"""Maintenance windows and blackout periods (see docs/schedule.md)."""
from __future__ import annotations

from flask_smorest import Blueprint

from engine import windows as window_service
from engine.transactions import run_command

from ..auth import current_user, permission
from ..extensions import db
from . import schemas

blp = Blueprint("windows", __name__, url_prefix="/api/windows",
                description="Maintenance windows and blackout periods, one-off or recurring (RFC 5545 RRULE)")


@blp.route("", methods=["GET"])
@permission("window.read")
@blp.arguments(schemas.WindowQuery, location="query")
@blp.response(200, schemas.Window(many=True))
def list_windows(query):
    """Windows by start, optionally of one `kind` and applying to a `service` (its own and global ones).

    With `from` and `to`: only windows occurring in that range, each with its `occurrences` (UTC).
    """
    return window_service.list_windows(db.session, current_user(), kind=query.get("kind"),
                                       service=query.get("service"), start=query.get("start"),
                                       end=query.get("end"))


@blp.route("", methods=["POST"])
@permission("window.write")
@blp.arguments(schemas.WindowCreate)
@blp.response(201, schemas.Window)
def create_window(fields):
    """Create a window. Times need an offset; a recurring window repeats in `timezone` wall-clock time."""
    user = current_user()
    return run_command(db.session, user, window_service.create_window, user, fields)


@blp.route("/<int:window_id>", methods=["GET"])
@permission("window.read")
@blp.arguments(schemas.WindowRange, location="query")
@blp.response(200, schemas.Window)
def get_window(query, window_id):
    """One window; with `from` and `to`, its occurrences in that range."""
    user = current_user()
    window = window_service.get_window(db.session, user, window_id)
    if query.get("start") or query.get("end"):
        window_service.check_range(query.get("start"), query.get("end"))
        return window_service.WindowInRange(window, [
            {"start": s, "end": e} for s, e in window_service.occurrences(window, query["start"], query["end"])])
    return window


@blp.route("/<int:window_id>", methods=["PATCH"])
@permission("window.write")
@blp.arguments(schemas.WindowChange)
@blp.response(200, schemas.Window)
def update_window(fields, window_id):
    """Change some fields; the result is validated as a whole."""
    user = current_user()
    return run_command(db.session, user, window_service.update_window, user, window_id, fields)


@blp.route("/<int:window_id>", methods=["DELETE"])
@permission("window.write")
@blp.response(204)
def delete_window(window_id):
    user = current_user()
    run_command(db.session, user, window_service.delete_window, user, window_id)
