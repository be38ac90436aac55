"""The change calendar: planned changes and window occurrences, as JSON entries or an iCalendar feed.

Calendar apps (Outlook, Thunderbird, Google Calendar) subscribe to a URL and cannot send a bearer
token, so each user has a secret calendar token that goes in the feed URL. Only its SHA-256 is
stored (like API tokens): the URL is shown once, when the token is created or rotated, and
rotating it makes the old URL answer 404.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import NamedTuple

from icalendar import Calendar, Event
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit
from .db import utcnow
from .errors import NotFound
from .models import Change, Service, User, change_services
from .permissions import readable_changes, require
from .windows import check_range, planned_overlap, service_ids_for, window_service_keys, windows_in_range

FEED_PAST, FEED_FUTURE = timedelta(days=30), timedelta(days=180)
DEFAULT_SPAN = timedelta(days=31)
EXCLUDED_STATES = ("canceled",)
TENTATIVE_STATES = ("new", "assess", "authorize")  # not yet authorized: may still move or be rejected


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class PlannedChange(NamedTuple):
    """What the calendar shows of a change: a few columns and its service keys, not the ORM entity —
    a month holds thousands of changes, and loading them whole was most of the calendar's time."""

    id: int
    number: str
    title: str
    planned_start: datetime
    planned_end: datetime
    state: str
    risk: str | None
    change_type: str
    updated_at: datetime
    services: tuple[str, ...]


def _visible_changes(session: Session, user: User, start: datetime, end: datetime,
                     service_id: int | None) -> list[PlannedChange]:
    """Changes whose planned window overlaps [start, end) that `user` may read (readable_changes), by
    planned start, with their service keys (sorted, as Change.services orders them): one statement."""
    conditions = [*planned_overlap(session, start, end), Change.state.not_in(EXCLUDED_STATES)]
    scope = readable_changes(user)
    if scope is not None:
        conditions.append(scope)
    if service_id is not None:
        conditions.append(Change.id.in_(
            select(change_services.c.change_id).where(change_services.c.service_id == service_id)))
    # The keys aggregated per change in the same statement (string_agg / group_concat; a key has no
    # spaces): a second statement for them ran the overlap query again and cost a third of the month.
    keys = (select(func.aggregate_strings(Service.key, " ")).select_from(change_services)
            .join(Service, Service.id == change_services.c.service_id)
            .where(change_services.c.change_id == Change.id).correlate(Change).scalar_subquery())
    rows = session.connection().execute(  # plain rows: the ORM's result handling doubled the time
        select(Change.id, Change.number, Change.title, Change.planned_start, Change.planned_end, Change.state,
               Change.risk, Change.change_type, Change.updated_at, keys)
        .where(*conditions).order_by(Change.planned_start, Change.id))
    return [PlannedChange(*row[:9], tuple(sorted(row[9].split(" "))) if row[9] else ()) for row in rows]


def _gather(session: Session, user: User, start: datetime, end: datetime, service: str | None):
    service_id = service_ids_for(session, [service], "service")[0].id if service else None
    changes = _visible_changes(session, user, start, end, service_id)
    windows = windows_in_range(session, None, start, end, [service_id] if service_id else None, with_services=False)
    return changes, windows, window_service_keys(session, (w.id for w, _s, _e in windows))


def calendar_entries(session: Session, user: User, start: datetime | None = None, end: datetime | None = None,
                     service: str | None = None) -> dict:
    """Changes and window occurrences in [start, end) (default: today and the next 31 days), by start.

    `service` (a key) keeps the changes to that service and the windows that apply to it (its own
    and global ones). The range may span at most 400 days.
    """
    require(user, "calendar.read")
    start = start or utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    end = end or start + DEFAULT_SPAN
    check_range(start, end)
    changes, windows, window_keys = _gather(session, user, start, end, service)
    entries = [{"type": "change", "id": c.id, "number": c.number, "title": c.title,
                "start": c.planned_start, "end": c.planned_end, "services": list(c.services),
                "state": c.state, "risk": c.risk, "change_type": c.change_type,
                "link": f"/api/changes/{c.id}"} for c in changes]
    entries += [{"type": w.kind, "id": w.id, "title": w.name, "start": s, "end": e,
                 "services": window_keys.get(w.id, []), "recurring": bool(w.rrule),
                 "link": f"/api/windows/{w.id}"} for w, s, e in windows]
    entries.sort(key=lambda entry: (entry["start"], entry["type"] != "change", entry["id"]))
    return {"start": start, "end": end, "service": service, "entries": entries}


# -- the iCalendar feed -------------------------------------------------------------------------------

def rotate_calendar_token(session: Session, user: User) -> str:
    """Create or replace the user's calendar token and return it (the only time it is available)."""
    require(user, "calendar.read")
    token = secrets.token_urlsafe(32)
    rotated = user.calendar_token is not None
    user.calendar_token = _hash(token)
    session.flush()
    audit.record(session, "calendar_token_rotated" if rotated else "calendar_token_created", actor=user,
                 data={"username": user.username})
    return token


def user_for_calendar_token(session: Session, token: str) -> User:
    """The active user whose calendar token this is; 404 for anything else (it reveals nothing)."""
    user = session.scalar(select(User).where(User.calendar_token == _hash(token or "")))
    if user is None or not user.active:
        raise NotFound("No calendar at this address (the link may have been replaced).")
    require(user, "calendar.read")
    return user


def _change_event(change: PlannedChange, base_url: str, now: datetime) -> Event:
    link = f"{base_url}/api/changes/{change.id}"
    services = ", ".join(change.services) or "none"
    event = Event()
    event.add("uid", f"{change.number}@changeflow")
    event.add("dtstamp", now)
    event.add("last-modified", change.updated_at)
    event.add("dtstart", change.planned_start)
    event.add("dtend", change.planned_end)
    event.add("summary", f"{change.number} {change.title}" + (f" [{change.risk}]" if change.risk else ""))
    event.add("description", f"State: {change.state}\nRisk: {change.risk or 'not assessed'}\n"
                             f"Type: {change.change_type}\nServices: {services}\n{link}")
    event.add("url", link)
    event.add("status", "TENTATIVE" if change.state in TENTATIVE_STATES else "CONFIRMED")
    event.add("categories", ["Change"])
    return event


def _window_event(window, keys: list[str], start: datetime, end: datetime, base_url: str, now: datetime) -> Event:
    scope = ", ".join(keys) or "all services"
    label = "Blackout" if window.kind == "blackout" else "Maintenance window"
    event = Event()
    event.add("uid", f"window-{window.id}-{start:%Y%m%dT%H%M%SZ}@changeflow")
    event.add("dtstamp", now)
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", f"{label}: {window.name} ({scope})")
    event.add("description", f"{label} for {scope}.\n{window.description or ''}\n"
                             f"{base_url}/api/windows/{window.id}".replace("\n\n", "\n"))
    event.add("url", f"{base_url}/api/windows/{window.id}")
    event.add("transp", "TRANSPARENT")  # a window is not a meeting: it does not make anyone busy
    event.add("categories", [label])
    return event


def calendar_feed(session: Session, user: User, *, service: str | None = None, base_url: str = "",
                  now: datetime | None = None) -> bytes:
    """The user's iCalendar (RFC 5545) document: their visible changes and the window occurrences from
    30 days ago to 180 days ahead, all times in UTC. `base_url` makes the links absolute."""
    require(user, "calendar.read")
    now = (now or utcnow()).replace(microsecond=0)
    changes, windows, window_keys = _gather(session, user, now - FEED_PAST, now + FEED_FUTURE, service)
    name = "Changeflow changes" + (f" — {service}" if service else "")
    calendar = Calendar()
    calendar.add("prodid", "-//Changeflow//Change calendar//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    calendar.add("x-wr-caldesc", f"Planned changes and maintenance/blackout windows visible to {user.username}")
    calendar.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT1H")
    for change in changes:
        calendar.add_component(_change_event(change, base_url, now))
    for window, start, end in windows:
        calendar.add_component(_window_event(window, window_keys.get(window.id, []), start, end, base_url, now))
    return calendar.to_ical()
