"""Writing audit events. The table is append-only: this module only ever inserts.

A command records several events (task completed, approval decided, state changed, task created);
they are kept aside and added to the session just before the transaction commits, so they reach
the database as one multi-row INSERT rather than one INSERT per flush. Each event is chained (seq,
prev_hash, hash) when that flush runs — engine/audit_chain.py — so what the code put into `data`
up to the commit is what is hashed and stored. A rolled-back transaction (or savepoint) drops the
events recorded in it. Nothing reads audit events inside the command that writes them.
"""
from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from .db import utcnow
from .models import AuditEvent, User

PENDING = "changeflow.audit_pending"  # session.info: events recorded in the open transaction
MARKS = "changeflow.audit_marks"  # session.info: savepoint → how many events were pending when it began


def record(session: Session, kind: str, *, actor: User | None = None, change_id: int | None = None,
           element_id: str | None = None, task_id: str | None = None, data: dict | None = None) -> AuditEvent:
    event = AuditEvent(
        kind=kind,
        at=utcnow(),  # when it happened, not when the transaction commits
        actor_id=actor.id if actor else None,
        actor=actor.username if actor else "system",
        change_id=change_id,
        element_id=element_id,
        task_id=task_id,
        data=data or {},
    )
    session.info.setdefault(PENDING, []).append(event)
    return event


def write_pending(session: Session) -> None:
    """Hand the recorded events to the session; the next flush inserts them (the commit calls this)."""
    pending = session.info.pop(PENDING, None)
    if pending:
        session.add_all(pending)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    # A savepoint's release fires this too; writing there would put the events in the savepoint,
    # and a savepoint rolled back after a lost race (engine.jobs.queue.schedule) would take them along.
    if not session.in_nested_transaction():
        write_pending(session)


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        session.info.setdefault(MARKS, {})[transaction] = len(session.info.get(PENDING, ()))


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    marks = session.info.get(MARKS, {})
    if previous_transaction.nested and previous_transaction in marks:
        del session.info.get(PENDING, [])[marks.pop(previous_transaction):]
    else:
        session.info.pop(PENDING, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(PENDING, None)
        session.info.pop(MARKS, None)
    else:
        session.info.get(MARKS, {}).pop(transaction, None)
