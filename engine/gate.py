"""The deployment gate: may a pipeline deploy this change right now?

Pipelines should not re-type what Changeflow already knows. They ask the gate with a token scoped to
it; the answer lists every reason it is closed, and every question is audited.
"""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from sqlalchemy.orm import Session

from . import audit
from .db import utcnow
from .models import Change, User

AUTHORIZED_STATES = ("scheduled", "implement")

# Each check returns the reasons it refuses (empty when satisfied). Evidence requirements add their
# check here.
Check = Callable[[Session, Change, datetime], list[str]]


def _authorized(session: Session, change: Change, now: datetime) -> list[str]:
    if change.state in AUTHORIZED_STATES:
        return []
    if change.state in ("review", "closed"):
        return [f"{change.number} has already been implemented (state {change.state})."]
    if change.state == "canceled":
        return [f"{change.number} was canceled."]
    return [f"{change.number} is not authorized yet (state {change.state})."]


def _inside_window(session: Session, change: Change, now: datetime) -> list[str]:
    start, end = change.planned_start, change.planned_end
    if start is None or end is None:
        return [f"{change.number} has no planned window."]
    if now < start:
        return [f"The planned window opens at {start.isoformat()}."]
    if now >= end:
        return [f"The planned window closed at {end.isoformat()}."]
    return []


def _no_blackout(session: Session, change: Change, now: datetime) -> list[str]:
    """A blackout over the window closes the gate — unless an emergency change holds an approved exception."""
    from sqlalchemy import exists, select

    from .models import Approval
    from .windows import windows_in_range

    if change.planned_start is None or change.planned_end is None:
        return []
    hits = windows_in_range(session, "blackout", change.planned_start, change.planned_end,
                            [s.id for s in change.services])
    if not hits:
        return []
    if change.change_type == "emergency" and session.scalar(select(exists().where(
            Approval.change_id == change.id, Approval.step == "blackout_exception",
            Approval.round == change.approval_round, Approval.decision == "approve"))):
        return []
    return [f"Blackout “{window.name}” applies {start:%d %b %H:%M}–{end:%d %b %H:%M} UTC." for window, start, end in hits]


def _evidence_before_implementation(session: Session, change: Change, now: datetime) -> list[str]:
    """The evidence the change's category needs before implementation (evidence.dmn) must be attached."""
    from .evidence_rules import gate_reason, missing_evidence

    if change.state in ("review", "closed", "canceled"):
        return []  # past implementation: _authorized already says why the gate is closed
    missing = missing_evidence(session, change, "implement")
    return [gate_reason(missing, "implement")] if missing else []


CHECKS: list[Check] = [_authorized, _inside_window, _no_blackout, _evidence_before_implementation]


def check_gate(session: Session, change: Change, actor: User | None, now: datetime | None = None) -> dict:
    now = now or utcnow()
    reasons = [reason for check in CHECKS for reason in check(session, change, now)]
    answer = {"change": change.number, "allowed": not reasons, "reasons": reasons, "checked_at": now,
              "state": change.state, "planned_start": change.planned_start, "planned_end": change.planned_end}
    audit.record(session, "gate_checked", actor=actor, change_id=change.id,
                 data={"allowed": answer["allowed"], "reasons": reasons})
    return answer
