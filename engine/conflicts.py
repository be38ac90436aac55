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
from sqlalchemy.orm import Session

from .models import Change, Service, User, change_services
from .service_map import related_service_ids
from .windows import covers, planned_overlap, windows_in_range

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
    related = related_service_ids(session, set(services)) - set(services)
    same, dependency, busy = _overlapping_changes(session, proposal, set(services), related)
    found: list[Conflict] = []
    found += _service_conflicts(same, "same_service", services)
    found += _service_conflicts(dependency, "dependency", services)
    found += _implementer_bookings(session, proposal, busy)
    windows = windows_in_range(session, None, proposal.start, proposal.end, list(proposal.service_ids))
    found += _outside_maintenance(proposal, services.values(), [w for w in windows if w[0].kind == "maintenance"])
    found += _blackouts(proposal, [w for w in windows if w[0].kind == "blackout"])
    return found


def _overlapping_changes(session, proposal, own: set[int], related: set[int]):
    """Every planned change overlapping the slot, in one statement: those on the proposal's services,
    those on related services (each with the keys it collides on), and the implementer's.

    One narrow statement over the slot instead of one per kind: the related services can number in
    the thousands, and an IN list of them cost more than the few changes a slot overlaps."""
    query = (select(Change.id, Change.number, Change.title, Change.planned_start, Change.planned_end,
                    Change.implementer_id, Service.id, Service.key)
             .outerjoin(change_services, change_services.c.change_id == Change.id)
             .outerjoin(Service, Service.id == change_services.c.service_id)
             .where(Change.state.in_(PLANNED_STATES), *planned_overlap(session, proposal.start, proposal.end)))
    if proposal.change_id is not None:
        query = query.where(Change.id != proposal.change_id)
    same: dict[int, tuple] = {}
    dependency: dict[int, tuple] = {}
    busy: dict[int, tuple] = {}
    for *other, implementer, service_id, key in session.execute(query.order_by(Change.planned_start, Change.id)):
        if service_id in own:
            same.setdefault(other[0], (other, []))[1].append(key)
        elif service_id in related:
            dependency.setdefault(other[0], (other, []))[1].append(key)
        if proposal.implementer_id is not None and implementer == proposal.implementer_id:
            busy.setdefault(other[0], other)
    return list(same.values()), list(dependency.values()), list(busy.values())


def _service_conflicts(found, kind, own_services) -> list[Conflict]:
    conflicts = []
    for (other_id, number, title, start, end), keys in found:
        on = ", ".join(sorted(set(keys)))
        if kind == "same_service":
            text = f"{number} “{title}” also changes {on} {_when(start, end)}."
        else:
            text = (f"{number} “{title}” changes {on}, which depends on or is depended on by "
                    f"{', '.join(sorted(s.key for s in own_services.values()))}, {_when(start, end)}.")
        conflicts.append(Conflict(kind, WARNING, text, other_id, number, None, start, end))
    return conflicts


def _implementer_bookings(session, proposal, busy) -> list[Conflict]:
    if not busy:
        return []
    username = session.scalar(select(User.username).where(User.id == proposal.implementer_id))
    return [Conflict("implementer_busy", WARNING,
                     f"{username} is implementing {number} “{title}” {_when(start, end)}.",
                     other_id, number, None, start, end) for other_id, number, title, start, end in busy]


def _outside_maintenance(proposal, services, maintenance) -> list[Conflict]:
    """`maintenance`: the occurrences of the maintenance windows of any of the proposal's services
    (and global ones) in the slot; each service is covered by the global ones and its own."""
    conflicts = []
    for service in sorted(services, key=lambda s: s.key):
        applies = [(s, e) for w, s, e in maintenance if not w.services or any(x.id == service.id for x in w.services)]
        if service.requires_maintenance_window and not covers(applies, proposal.start, proposal.end):
            conflicts.append(Conflict(
                "outside_maintenance_window", WARNING,
                f"{service.key} may only be changed inside its maintenance windows; "
                f"{_when(proposal.start, proposal.end)} is not inside one.",
                starts_at=proposal.start, ends_at=proposal.end))
    return conflicts


def _blackouts(proposal, blackouts) -> list[Conflict]:
    # A blackout blocks normal and standard changes; an emergency may go ahead on an approved exception.
    severity = WARNING if proposal.change_type == "emergency" else BLOCKING
    conflicts = []
    for window, start, end in blackouts:
        scope = ", ".join(s.key for s in window.services) or "all services"
        conflicts.append(Conflict("blackout", severity,
                                  f"Blackout “{window.name}” ({scope}) {_when(start, end)}.",
                                  window_id=window.id, starts_at=start, ends_at=end))
    return conflicts


def implementer_id(session: Session, username: str | None) -> int | None:
    if not username:
        return None
    return session.scalar(select(User.id).where(User.username == username))
