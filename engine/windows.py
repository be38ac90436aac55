"""Maintenance windows and blackout periods: global or per service, one-off or recurring (RFC 5545 RRULE).

Times are stored in UTC. A recurring window repeats the wall-clock time of its first occurrence in
its IANA `timezone`, so "Sunday 01:00–05:00 Europe/Berlin" is 00:00–04:00 UTC in winter and
23:00–03:00 UTC (the day before) in summer (see `engine.recurrence`). A one-off window's `until` is
its end; a recurring one's is the end of its last occurrence, or None when it recurs forever.

The contract other modules call (conflict detection, the scheduling assistant, the calendar):
`occurrences`, `windows_in_range`, `covered_by_maintenance`. Expansion is always bounded by a
query range, so rules without COUNT/UNTIL (the usual case) are fine.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from . import audit
from .errors import NotFound, ValidationFailed
from .models import Change, Service, User, Window, window_services
from .models.changes import PLANNED_SPAN
from .permissions import require
from .recurrence import Interval, check_rule, expand, invalid, normalize_rule, to_wall, utc, zone

KINDS = ("maintenance", "blackout")


# -- expansion: the contract ---------------------------------------------------------------------------

def occurrences(window: Window, range_start: datetime, range_end: datetime) -> list[Interval]:
    """The window's occurrences (start, end) in UTC that overlap [range_start, range_end), by start.

    One-off: the stored interval if it overlaps. Recurring: the rule expanded from `starts_at` in the
    window's time zone, each occurrence lasting as long as the first in wall-clock terms; an
    occurrence that began before `range_start` but is still running is included.
    """
    if not window.starts_at < range_end or (window.until is not None and window.until <= range_start):
        return []
    if not window.rrule:
        return [(window.starts_at, window.ends_at)]
    return expand(window.rrule, window.timezone, window.starts_at, window.ends_at, range_start, range_end)


def planned_overlap(session: Session, start: datetime, end: datetime) -> tuple:
    """Conditions on Change: its planned window overlaps [start, end) — `planned_start < end and
    planned_end > start`, which the calendar and the conflict checks ask of every planned change.

    With years of history `planned_start < end` holds for nearly every change, so a B-tree range scan
    reads them all; on PostgreSQL the GiST index over the window as a range (ix_changes_planned_span,
    PLANNED_SPAN) finds only the overlapping ones, so its condition is added. The range is empty for
    a window that does not end after it starts, which no change can have (projection.check_window)."""
    found = (Change.planned_start < end, Change.planned_end > start)
    if session.get_bind().dialect.name != "postgresql":
        return found
    return found + (PLANNED_SPAN.bool_op("&&")(func.tstzrange(start, end)),)


def _windows(kind: str | None, service_ids: list[int] | None, with_services: bool = True):
    query = select(Window)
    if kind is not None:
        query = query.where(Window.kind == kind)
    if service_ids is not None:
        is_global = ~exists().where(window_services.c.window_id == Window.id)
        scoped = Window.id.in_(select(window_services.c.window_id)
                               .where(window_services.c.service_id.in_(list(service_ids))))
        query = query.where(or_(is_global, scoped))
    if not with_services:
        return query
    # every caller shows the services by key; whole Service rows (JSON columns and all) cost more
    # than the windows themselves, ~2,000 of them for 40 group windows
    return query.options(selectinload(Window.services).load_only(Service.key))


def windows_in_range(session: Session, kind: str | None, start: datetime, end: datetime,
                     service_ids: list[int] | None = None, *,
                     with_services: bool = True) -> list[tuple[Window, datetime, datetime]]:
    """Occurrences of `kind` windows (None: both kinds) overlapping [start, end), as (window, start, end).

    `service_ids` None: every window; a list: global windows plus those scoped to any of the services
    (an empty list: global windows only). Ordered by occurrence start. Two queries, however many windows
    (one with `with_services=False`: `window.services` then loads when read; see window_service_keys).
    """
    query = _windows(kind, service_ids, with_services).where(
        Window.starts_at < end, or_(Window.until.is_(None), Window.until > start))
    windows = session.scalars(query.order_by(Window.id)).all()
    found = [(w, s, e) for w in windows for s, e in occurrences(w, start, end)]
    return sorted(found, key=lambda item: (item[1], item[0].id))


def window_service_keys(session: Session, window_ids) -> dict[int, list[str]]:
    """The service keys of each window, by key (as Window.services orders them), without loading the
    services as entities: what the calendar shows of a window."""
    ids = sorted(set(window_ids))
    keys: dict[int, list[str]] = {}
    if ids:
        for window_id, key in session.execute(
                select(window_services.c.window_id, Service.key).join(Service, Service.id == window_services.c.service_id)
                .where(window_services.c.window_id.in_(ids)).order_by(Service.key)):
            keys.setdefault(window_id, []).append(key)
    return keys


def merge(intervals) -> list[Interval]:
    """Sorted, with overlapping or touching intervals joined."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def covered_by_maintenance(session: Session, service_id: int, start: datetime, end: datetime) -> bool:
    """Whether [start, end) lies entirely inside maintenance time for the service (global or its own
    windows; back-to-back or overlapping occurrences count as one). An empty interval is not covered."""
    found = windows_in_range(session, "maintenance", start, end, [service_id]) if start < end else []
    return covers([(s, e) for _w, s, e in found], start, end)


def covers(intervals, start: datetime, end: datetime) -> bool:
    """Whether the intervals together cover [start, end) (touching or overlapping ones count as one);
    an empty interval is not covered."""
    return start < end and any(s <= start and end <= e for s, e in merge(intervals))


# -- reading and writing -------------------------------------------------------------------------------

@dataclass
class WindowInRange:
    """A window with its occurrences in a queried range (reads through to the window's attributes)."""

    window: Window
    occurrences: list[dict]

    def __getattr__(self, name):
        return getattr(self.window, name)


def check_range(start: datetime, end: datetime, max_days: int = 400) -> None:
    utc(start, "from")
    utc(end, "to")
    if end <= start:
        raise invalid("to", "must be after from")
    if end - start > timedelta(days=max_days):
        raise invalid("to", f"the range may span at most {max_days} days")


def service_ids_for(session: Session, keys: list[str], field: str = "services") -> list[Service]:
    keys = list(dict.fromkeys(keys))
    found = {s.key: s for s in session.scalars(select(Service).where(Service.key.in_(keys)))}
    missing = [k for k in keys if k not in found]
    if missing:
        raise ValidationFailed("Unknown services.", errors=[
            {"field": field, "message": f"no service with key '{k}'"} for k in missing])
    return [found[k] for k in keys]


def list_windows(session: Session, actor: User | None, *, kind: str | None = None, service: str | None = None,
                 start: datetime | None = None, end: datetime | None = None) -> list:
    """Windows (of a kind; global or for a service). With a range: those occurring in it, with occurrences."""
    require(actor, "window.read")
    ids = [s.id for s in service_ids_for(session, [service], "service")] if service else None
    if (start is None) != (end is None):
        raise invalid("to" if end is None else "from", "give both from and to, or neither")
    if start is not None:
        check_range(start, end)
        grouped: dict[int, WindowInRange] = {}
        for window, s, e in windows_in_range(session, kind, start, end, ids):
            grouped.setdefault(window.id, WindowInRange(window, [])).occurrences.append({"start": s, "end": e})
        return list(grouped.values())
    return session.scalars(_windows(kind, ids).order_by(Window.starts_at, Window.id)).all()


def get_window(session: Session, actor: User | None, window_id: int, action: str = "window.read") -> Window:
    require(actor, action)
    window = session.get(Window, window_id)
    if window is None:
        raise NotFound(f"Window {window_id} does not exist.")
    return window


FIELDS = ("kind", "name", "description", "starts_at", "ends_at", "rrule", "timezone", "services")


def _apply(session: Session, window: Window, fields: dict) -> dict:
    """Validate the window as it would be after `fields`, then set it; return what changed."""
    current = {"kind": window.kind, "name": window.name, "description": window.description or "",
               "starts_at": window.starts_at, "ends_at": window.ends_at, "rrule": window.rrule,
               "timezone": window.timezone or "UTC", "services": [s.key for s in window.services]}
    new = {**current, **{k: v for k, v in fields.items() if k in FIELDS}}
    if new["kind"] not in KINDS:
        raise invalid("kind", f"one of {', '.join(KINDS)}")
    if not (new["name"] or "").strip():
        raise invalid("name", "may not be blank")
    new["starts_at"], new["ends_at"] = utc(new["starts_at"], "starts_at"), utc(new["ends_at"], "ends_at")
    if new["ends_at"] <= new["starts_at"]:
        raise invalid("ends_at", "must be after starts_at")
    tz = zone(new["timezone"] or "UTC")
    new["timezone"], new["rrule"] = tz.key, normalize_rule(new["rrule"])
    services = service_ids_for(session, new["services"] or [])
    new["services"] = [s.key for s in services]
    if new["rrule"]:
        wall_start, wall_end = to_wall(new["starts_at"], tz), to_wall(new["ends_at"], tz)
        if wall_end <= wall_start:
            raise invalid("ends_at", f"must be after starts_at in {tz.key} wall-clock time")
        until = check_rule(new["rrule"], tz.key, wall_start, wall_end - wall_start)
    else:
        until = new["ends_at"]
    changed = {k: new[k] for k in FIELDS if new[k] != current[k]}
    for name in FIELDS[:-1]:
        setattr(window, name, new[name])
    window.services, window.until = services, until
    return changed


def _span(window: Window) -> tuple[datetime, datetime | None]:
    return window.starts_at, window.until


def _recheck(session: Session, *spans: tuple[datetime, datetime | None]) -> None:
    """Re-check scheduled changes in the affected span (a job, after this commits): a new blackout is
    escalated once to them."""
    from .conflict_records import schedule_recheck  # conflicts → windows: import when called

    start = min(s for s, _e in spans)
    end = None if any(e is None for _s, e in spans) else max(e for _s, e in spans)
    schedule_recheck(session, start, end)


def _snapshot(fields: dict) -> dict:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()}


def create_window(session: Session, actor: User | None, fields: dict) -> Window:
    """Create a window: kind, name, description, starts_at/ends_at (aware), rrule, timezone, services (keys).

    Every write has the scheduled changes in the window's span re-checked by a job after it commits
    (engine.conflict_records), so a blackout added after a change was scheduled is recorded as its
    conflict and escalated once."""
    require(actor, "window.write")
    window = Window(created_by=actor, description="", timezone="UTC")
    changed = _apply(session, window, {"kind": None, "name": "", "starts_at": None, "ends_at": None,
                                       "services": [], **fields})
    session.add(window)
    session.flush()
    audit.record(session, "window_created", actor=actor, data={"window_id": window.id, **_snapshot(changed)})
    _recheck(session, _span(window))
    return window


def update_window(session: Session, actor: User | None, window_id: int, fields: dict) -> Window:
    """Change some fields; the window is validated as a whole afterwards."""
    window = get_window(session, actor, window_id, "window.write")
    before = _span(window)
    changed = _apply(session, window, fields)
    session.flush()
    audit.record(session, "window_updated", actor=actor, data={"window_id": window.id, **_snapshot(changed)})
    _recheck(session, before, _span(window))
    return window


def delete_window(session: Session, actor: User | None, window_id: int) -> None:
    window = get_window(session, actor, window_id, "window.write")
    audit.record(session, "window_deleted", actor=actor, data={
        "window_id": window.id, "kind": window.kind, "name": window.name, "rrule": window.rrule,
        "starts_at": window.starts_at.isoformat(), "services": [s.key for s in window.services]})
    span = _span(window)
    session.delete(window)
    session.flush()
    _recheck(session, span)
