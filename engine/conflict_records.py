"""Keeping each change's conflicts, so that one appearing after scheduling is escalated exactly once."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit, notify, outbox
from .conflicts import Conflict, Proposal, detect
from .db import utcnow
from .jobs import queue
from .models import Change, ChangeConflict

SCHEDULED_STATES = ("scheduled", "implement")


def record(session: Session, change: Change, found: list[Conflict], *, escalate: bool = True) -> list[Conflict]:
    """Store `found` as the change's open conflicts; return the ones that are new.

    New conflicts of a change that is already scheduled are escalated — except when the check is the
    change's own scheduling step: then the scheduler is looking at them already.
    """
    open_rows = {row.key: row for row in session.scalars(select(ChangeConflict).where(
        ChangeConflict.change_id == change.id, ChangeConflict.resolved_at.is_(None)))}
    current = {c.key: c for c in found}
    new = [c for key, c in current.items() if key not in open_rows]
    for conflict in new:
        session.add(ChangeConflict(change_id=change.id, key=conflict.key, kind=conflict.kind,
                                   severity=conflict.severity, other_change_id=conflict.other_change_id,
                                   window_id=conflict.window_id, message=conflict.message))
    for key, row in open_rows.items():
        if key not in current:
            row.resolved_at = utcnow()
    if new:
        audit.record(session, "conflicts_detected", change_id=change.id,
                     data={"new": [c.message for c in new], "open": len(current)})
        if escalate and change.state in SCHEDULED_STATES:
            _escalate(session, change, new)
    return new


def _escalate(session: Session, change: Change, new: list[Conflict]) -> None:
    text = "\n".join(f"- [{c.severity}] {c.message}" for c in new)
    dedupe = ",".join(sorted(c.key for c in new))
    people = notify.role_holders(session, "change_manager") + notify.service_owners(session, change)
    outbox.notify(session, "conflict_escalation", change, people, dedupe=dedupe, conflicts=text)
    audit.record(session, "conflict_escalated", change_id=change.id, data={"conflicts": [c.key for c in new]})


def refresh(session: Session, change: Change) -> tuple[list[Conflict], list[Conflict]]:
    """Detect and record the change's conflicts, and re-check the changes it now collides with."""
    found = detect(session, Proposal.of(change))
    new = record(session, change, found, escalate=False)
    others = {c.other_change_id for c in found if c.other_change_id}
    for other in session.scalars(select(Change).where(Change.id.in_(others))):
        record(session, other, detect(session, Proposal.of(other)))
    return found, new


# -- after a window changed: every scheduled change in its span, on a worker, a batch at a time -----

RECHECK_JOB = "recheck_scheduled"
RECHECK_BATCH = 200  # ~25 ms each at 150,000 changes: a batch is a few seconds, one transaction


def schedule_recheck(session: Session, start: datetime, end: datetime | None) -> None:
    """Re-check the scheduled changes whose planned window overlaps [start, end) (None: no end) after a
    blackout or maintenance window changed. An endless recurring window reaches every scheduled
    change — 50,000 took 20 minutes, far past any request — so a job does it, RECHECK_BATCH changes
    per transaction, each batch scheduling the next (recheck_batch)."""
    queue.schedule(session, RECHECK_JOB, _ref(start, end, 0), new=True)


def recheck_batch(session: Session, ref: str, now: datetime) -> None:
    """Re-check the next batch of the span `ref` names (by change id); a full batch schedules the rest,
    due on the clock this one ran by."""
    start, end, after_id = _parse(ref)
    query = select(Change).where(Change.state.in_(SCHEDULED_STATES), Change.id > after_id,
                                 Change.planned_end > start)
    if end is not None:
        query = query.where(Change.planned_start < end)
    changes = session.scalars(query.order_by(Change.id).limit(RECHECK_BATCH)).all()
    for change in changes:
        record(session, change, detect(session, Proposal.of(change)))
    if len(changes) == RECHECK_BATCH:
        queue.schedule(session, RECHECK_JOB, _ref(start, end, changes[-1].id), due_at=now, new=True)


def _ref(start: datetime, end: datetime | None, after_id: int) -> str:
    return f"{start.isoformat()}|{end.isoformat() if end else ''}|{after_id}"


def _parse(ref: str) -> tuple[datetime, datetime | None, int]:
    start, end, after_id = ref.split("|")
    return datetime.fromisoformat(start), datetime.fromisoformat(end) if end else None, int(after_id)
