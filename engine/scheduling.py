"""The scheduling assistant: the next free slots for some services, an implementer and a duration.

Everything that can make a slot unusable is loaded once for the whole search horizon (planned
changes on the same and related services, the implementer's bookings, blackouts, maintenance
windows); candidate slots are then checked in memory, so a search costs a handful of queries
however many candidates it tries.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .conflicts import PLANNED_STATES
from .errors import ValidationFailed
from .models import Change, Service, change_services
from .service_map import related_service_ids
from .windows import windows_in_range

STEP = timedelta(minutes=30)
MAX_HORIZON = timedelta(days=90)


def _merge(intervals):
    merged = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _overlaps(intervals, start, end) -> bool:
    return any(s < end and e > start for s, e in intervals)


def _covered(intervals, start, end) -> bool:
    return any(s <= start and end <= e for s, e in intervals)


def _ceil(moment: datetime, step: timedelta) -> datetime:
    epoch = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    steps = -(-(moment - epoch) // step)
    return epoch + steps * step


def suggest(session: Session, *, service_keys: list[str], duration: timedelta, after: datetime,
            implementer_id: int | None = None, count: int = 5, horizon: timedelta = MAX_HORIZON) -> list[dict]:
    if duration <= timedelta(0) or duration > timedelta(days=7):
        raise ValidationFailed("Invalid duration.", errors=[{"field": "duration", "message": "between 1 minute and 7 days"}])
    services = list(session.scalars(select(Service).where(Service.key.in_(service_keys))))
    missing = set(service_keys) - {s.key for s in services}
    if missing:
        raise ValidationFailed("Unknown services.", errors=[
            {"field": "services", "message": f"no service with key '{k}'"} for k in sorted(missing)])
    horizon = min(horizon, MAX_HORIZON)
    until = after + horizon
    ids = {s.id for s in services}
    busy = _busy(session, ids | related_service_ids(session, ids), implementer_id, after, until)
    blackouts = _merge((s, e) for _w, s, e in windows_in_range(session, "blackout", after, until, list(ids)))
    maintenance = {
        s.id: _merge((ws, we) for _w, ws, we in windows_in_range(session, "maintenance", after, until, [s.id]))
        for s in services if s.requires_maintenance_window}
    slots: list[dict] = []
    for start in _candidates(after, until, duration, maintenance):
        end = start + duration
        if slots and start < slots[-1]["end"]:
            continue
        if _overlaps(busy, start, end) or _overlaps(blackouts, start, end):
            continue
        if any(not _covered(intervals, start, end) for intervals in maintenance.values()):
            continue
        slots.append({"start": start, "end": end})
        if len(slots) == count:
            break
    return slots


def _busy(session, service_ids, implementer_id, start, end):
    conditions = [Change.id.in_(select(change_services.c.change_id).where(change_services.c.service_id.in_(service_ids)))]
    if implementer_id is not None:
        conditions.append(Change.implementer_id == implementer_id)
    rows = session.execute(select(Change.planned_start, Change.planned_end).where(
        Change.state.in_(PLANNED_STATES), Change.planned_start < end, Change.planned_end > start,
        or_(*conditions))).all()
    return _merge((s, e) for s, e in rows)


def _candidates(after, until, duration, maintenance):
    """Slot starts to try, in time order: every STEP, or within maintenance windows when required."""
    if not maintenance:
        start = _ceil(after, STEP)
        while start + duration <= until:
            yield start
            start += STEP
        return
    starts = set()
    for intervals in maintenance.values():
        for window_start, window_end in intervals:
            start = max(_ceil(after, STEP), window_start)
            while start + duration <= window_end:
                starts.add(start)
                start += STEP
    yield from sorted(starts)
