"""The change calendar as JSON, and as an iCalendar feed calendar apps subscribe to (docs/schedule.md).

The blueprint has no url_prefix because the feed lives at `/calendar.ics`, outside `/api`.
"""
from __future__ import annotations

from flask import Response, request, url_for
from flask_smorest import Blueprint

from engine import calendar_feed
from engine.transactions import run_command

from ..auth import current_user, permission
from ..extensions import db
from . import schemas

blp = Blueprint("calendar", __name__, description="Planned changes and windows: JSON and an iCalendar feed")


@blp.route("/api/calendar", methods=["GET"])
@permission("calendar.read")
@blp.arguments(schemas.CalendarQuery, location="query")
@blp.response(200, schemas.CalendarView)
def calendar(query):
    """Changes (those the caller may read; not canceled) and window occurrences in [from, to), by start."""
    return calendar_feed.calendar_entries(db.session, current_user(), query.get("start"), query.get("end"),
                                          query.get("service"))


@blp.route("/api/calendar/token", methods=["POST"])
@permission("calendar.read")
@blp.response(201, schemas.CalendarToken)
def rotate_token():
    """Create or replace the caller's calendar token; returns the feed URL (the old URL stops working)."""
    user = current_user()
    token = run_command(db.session, user, calendar_feed.rotate_calendar_token, user)
    return {"url": url_for("calendar.feed", token=token, _external=True), "token": token}


# Calendar apps cannot send `Authorization: Bearer`, so the feed's action is public ("calendar.feed",
# roles "*") and the secret token in the URL is checked here instead: an unknown or replaced token
# is 404, and the token's user must hold "calendar.read". Changes are filtered as for that user.
@blp.route("/calendar.ics", methods=["GET"])
@permission("calendar.feed")
@blp.arguments(schemas.CalendarFeedQuery, location="query")
@blp.doc(security=[], responses={"200": {"description": "text/calendar (RFC 5545)"},
                                 "404": {"description": "unknown or replaced token"}})
def feed(query):
    """iCalendar feed of the token owner's changes and the windows, 30 days back to 180 days ahead."""
    user = calendar_feed.user_for_calendar_token(db.session, query["token"])
    body = calendar_feed.calendar_feed(db.session, user, service=query.get("service"),
                                       base_url=request.host_url.rstrip("/"))
    response = Response(body, mimetype="text/calendar")
    response.headers["Content-Disposition"] = 'inline; filename="changeflow.ics"'
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
