"""The dashboards' figures as JSON: the same engine function as the /dashboards page."""
from __future__ import annotations

from flask_smorest import Blueprint

from engine import dashboards

from ..auth import current_user, permission
from ..extensions import db
from ..pages.dashboards import with_links
from . import schemas

blp = Blueprint("dashboard", __name__, url_prefix="/api/dashboard",
                description="Figures for service owners and IT leaders, each with its drill-down link")


@blp.route("", methods=["GET"])
@permission("dashboard.read")
@blp.arguments(schemas.DashboardQuery, location="query")
@blp.response(200, schemas.Dashboard)
def dashboard(query):
    """Pending approvals by approver, high-risk changes in the next 14 days, overdue work, open changes
    and planned window minutes per service, and the emergency ratio and success rate per period."""
    return with_links(dashboards.dashboard(db.session, current_user(), period=query["period"]))
