"""Conflict detection: what else happens to these services, people and windows at that time.

Kinds (the vocabulary change managers know): another change on the same service overlapping; another
change on a related service (one depends on the other, transitively) overlapping; the implementer
booked on another change at the same time; a window outside every maintenance window of a service
that requires one; a window inside a blackout. Interval overlap is `start < other_end and end >
other_start`, answered by indexed queries.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from .models import Change, Service, User, change_services
from .service_map import related_service_ids
from .windows import covered_by_maintenance, windows_in_range

PLANNED_STATES = ("new", "assess", "authorize", "scheduled", "implement")
BLOCKING, WARNING = "blocking", "warning"


@dataclass(frozen=True)
class Conflict:
    kind: str
    severity: str
    message: str
    other_change_id: int | None = None
    other_change: str | None = None
    window_id: int | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.other_change_id or self.window_id or ''}"

    def as_dict(self) -> dict:
        return {**asdict(self), "key": self.key}


@dataclass(frozen=True)
class Proposal:
    """A slot to check: an existing change's, or a what-if before anything is created."""

    start: datetime
    end: datetime
    service_ids: tuple[int, ...]
    change_type: str = "normal"
    implementer_id: int | None = None
    change_id: int | None = None

    @classmethod
    def of(cls, change: Change) -> "Proposal":
        return cls(change.planned_start, change.planned_end, tuple(s.id for s in change.services),
                   change.change_type, change.implementer_id, change.id)


def _when(start: datetime, end: datetime) -> str:
    same_day = start.date() == end.date()
    return (f"{start:%a %d %b %Y %H:%M}–{end:%H:%M} UTC" if same_day
            else f"{start:%a %d %b %Y %H:%M} – {end:%a %d %b %Y %H:%M} UTC")


def detect(session: Session, proposal: Proposal) -> list[Conflict]:
    if proposal.start is None or proposal.end is None:
        return []
    services = {s.id: s for s in session.scalars(select(Service).where(Service.id.in_(proposal.service_ids)))}
    found: list[Conflict] = []
    found += _overlapping_changes(session, proposal, set(services), "same_service", services)
    related = related_service_ids(session, set(services)) - set(services)
    if related:
        found += _overlapping_changes(session, proposal, related, "dependency", services)
    found += _implementer_bookings(session, proposal)
    found += _outside_maintenance(session, proposal, services.values())
    found += _blackouts(session, proposal)
    return found


def _overlapping(proposal: Proposal):
    query = select(Change).where(
        Change.state.in_(PLANNED_STATES), Change.planned_start < proposal.end, Change.planned_end > proposal.start)
    if proposal.change_id is not None:
        query = query.where(Change.id != proposal.change_id)
    return query


def _overlapping_changes(session, proposal, service_ids, kind, own_services) -> list[Conflict]:
    rows = session.execute(
        _overlapping(proposal).add_columns(change_services.c.service_id)
        .join(change_services, change_services.c.change_id == Change.id)
        .where(change_services.c.service_id.in_(service_ids))
        .order_by(Change.planned_start, Change.id)).all()
    # Name only the services that actually collide: related services can number in the thousands.
    hit = {service_id for _other, service_id in rows}
    names = dict(session.execute(select(Service.id, Service.key).where(Service.id.in_(hit))).all()) if hit else {}
    by_change: dict[int, tuple[Change, list[str]]] = {}
    for other, service_id in rows:
        by_change.setdefault(other.id, (other, []))[1].append(names[service_id])
    conflicts = []
    for other, keys in by_change.values():
        on = ", ".join(sorted(set(keys)))
        if kind == "same_service":
            text = f"{other.number} “{other.title}” also changes {on} {_when(other.planned_start, other.planned_end)}."
        else:
            text = (f"{other.number} “{other.title}” changes {on}, which depends on or is depended on by "
                    f"{', '.join(sorted(s.key for s in own_services.values()))}, "
                    f"{_when(other.planned_start, other.planned_end)}.")
        conflicts.append(Conflict(kind, WARNING, text, other.id, other.number, None,
                                  other.planned_start, other.planned_end))
    return conflicts


def _implementer_bookings(session, proposal) -> list[Conflict]:
    if proposal.implementer_id is None:
        return []
    others = session.scalars(_overlapping(proposal).where(Change.implementer_id == proposal.implementer_id)
                             .options(selectinload(Change.implementer)).order_by(Change.planned_start)).all()
    return [Conflict("implementer_busy", WARNING,
                     f"{other.implementer.username} is implementing {other.number} “{other.title}” "
                     f"{_when(other.planned_start, other.planned_end)}.",
                     other.id, other.number, None, other.planned_start, other.planned_end) for other in others]


def _outside_maintenance(session, proposal, services) -> list[Conflict]:
    conflicts = []
    for service in sorted(services, key=lambda s: s.key):
        if service.requires_maintenance_window and not covered_by_maintenance(
                session, service.id, proposal.start, proposal.end):
            conflicts.append(Conflict(
                "outside_maintenance_window", WARNING,
                f"{service.key} may only be changed inside its maintenance windows; "
                f"{_when(proposal.start, proposal.end)} is not inside one.",
                starts_at=proposal.start, ends_at=proposal.end))
    return conflicts


def _blackouts(session, proposal) -> list[Conflict]:
    # A blackout blocks normal and standard changes; an emergency may go ahead on an approved exception.
    severity = WARNING if proposal.change_type == "emergency" else BLOCKING
    conflicts = []
    for window, start, end in windows_in_range(session, "blackout", proposal.start, proposal.end,
                                               list(proposal.service_ids)):
        scope = ", ".join(s.key for s in window.services) or "all services"
        conflicts.append(Conflict("blackout", severity,
                                  f"Blackout “{window.name}” ({scope}) {_when(start, end)}.",
                                  window_id=window.id, starts_at=start, ends_at=end))
    return conflicts


def implementer_id(session: Session, username: str | None) -> int | None:
    if not username:
        return None
    return session.scalar(select(User.id).where(User.username == username))
