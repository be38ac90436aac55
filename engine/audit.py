"""Writing audit events. The table is append-only: this module only ever inserts.

Each event is chained (seq, prev_hash, hash) when the session flushes it — engine/audit_chain.py.
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from .models import AuditEvent, User


def record(session: Session, kind: str, *, actor: User | None = None, change_id: int | None = None,
           element_id: str | None = None, task_id: str | None = None, data: dict | None = None) -> AuditEvent:
    event = AuditEvent(
        kind=kind,
        actor_id=actor.id if actor else None,
        actor=actor.username if actor else "system",
        change_id=change_id,
        element_id=element_id,
        task_id=task_id,
        data=data or {},
    )
    session.add(event)
    return event
