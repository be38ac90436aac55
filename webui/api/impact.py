"""Impact analysis of a change: its services and every service that depends on them, transitively."""
from __future__ import annotations

from flask_smorest import Blueprint

from engine import changes as change_service
from engine.service_map import change_impact

from ..auth import current_user, permission
from ..extensions import db
from . import schemas

blp = Blueprint("impact", __name__, url_prefix="/api/changes", description="Impact analysis of changes")


@blp.route("/<int:change_id>/impact", methods=["GET"])
@permission("change.read")
@blp.response(200, schemas.ChangeImpact)
def get_impact(change_id):
    """The change's services and every downstream dependent with the shortest path that links them.

    "A depends on B" means A needs B, so a change to B impacts A and whatever depends on A.
    """
    change = change_service.get_change(db.session, change_id, current_user())
    return change_impact(db.session, change)
