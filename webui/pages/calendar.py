"""The calendar: changes and window occurrences by month or week, and one's iCalendar link."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from engine import calendar_feed
from engine.db import utcnow
from engine.models import ChangeConflict
from engine.transactions import run_command

from ..extensions import db
from . import blp
from .security import page, signed_in_user

def _calendar_range(view: str, anchor: date) -> tuple[date, date]:
    """Whole weeks, Monday first: the weeks touching the month, or the anchor's week."""
    if view == "week":
        first = anchor - timedelta(days=anchor.weekday())
        return first, first + timedelta(days=7)
    month_start = anchor.replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    first = month_start - timedelta(days=month_start.weekday())
    last = next_month + timedelta(days=(7 - next_month.weekday()) % 7)
    return first, last


@blp.route("/calendar", methods=["GET"])
@page("calendar.read")
def calendar():
    """Month or week of changes and window occurrences (blackouts and maintenance shaded, conflicts
    marked), optionally for one service; with the link to one's iCalendar feed."""
    view = request.args.get("view", "month")
    if view not in ("month", "week"):
        abort(400, description="view must be month or week")
    try:
        anchor = date.fromisoformat(request.args.get("date") or utcnow().date().isoformat())
    except ValueError:
        abort(400, description="date must look like 2026-12-01")
    first, last = _calendar_range(view, anchor)
    service = request.args.get("service") or None
    found = calendar_feed.calendar_entries(
        db.session, signed_in_user(), datetime.combine(first, time.min, tzinfo=timezone.utc),
        datetime.combine(last, time.min, tzinfo=timezone.utc), service)
    change_ids = [e["id"] for e in found["entries"] if e["type"] == "change"]
    conflicted = set(db.session.scalars(select(ChangeConflict.change_id).where(
        ChangeConflict.change_id.in_(change_ids), ChangeConflict.resolved_at.is_(None)))) if change_ids else set()
    days = []
    for offset in range((last - first).days):
        day = first + timedelta(days=offset)
        start = datetime.combine(day, time.min, tzinfo=timezone.utc)
        end = start + timedelta(days=1)
        days.append({"date": day, "in_month": view == "week" or day.month == anchor.month,
                     "entries": [e for e in found["entries"] if e["start"] < end and e["end"] > start]})
    step = timedelta(days=7) if view == "week" else timedelta(days=31)
    return render_template("calendar.html", days=days, view=view, anchor=anchor, service=service or "",
                           conflicted=conflicted,
                           previous=(anchor.replace(day=1) - timedelta(days=1)) if view == "month" else anchor - step,
                           following=(anchor.replace(day=1) + step).replace(day=1) if view == "month" else anchor + step)


@blp.route("/calendar/feed-link", methods=["POST"])
@page("calendar.read")
def calendar_feed_link():
    """A new secret iCalendar URL for the signed-in person (the old one stops working)."""
    user = signed_in_user()
    token = run_command(db.session, user, calendar_feed.rotate_calendar_token, user)
    flash(f"Subscribe your calendar app to {request.host_url.rstrip('/')}/calendar.ics?token={token} "
          "— it is shown once; a new link replaces it.", "ok")
    return redirect(url_for("pages.calendar"))
