from __future__ import annotations

from datetime import datetime
from itertools import count

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow
from .users import User


class AuditEvent(Base):
    """Append-only record of everything that happened. Rows are never updated or deleted.

    Each row is a link of a hash chain (engine/audit_chain.py): `chain` is "change:<id>" or "system",
    `seq` its position there, `hash` the SHA-256 of its content and `prev_hash`. The four are filled
    at flush time, whoever created the row.
    """

    __tablename__ = "audit_events"
    # Two writers that read the same chain head collide here instead of forking the chain.
    __table_args__ = (UniqueConstraint("chain", "seq", name="uq_audit_events_chain_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[str] = mapped_column(String(64), default="system")
    kind: Mapped[str] = mapped_column(String(48), index=True)
    change_id: Mapped[int | None] = mapped_column(ForeignKey("changes.id"), index=True)
    element_id: Mapped[str | None] = mapped_column(String(200))
    task_id: Mapped[str | None] = mapped_column(String(36))
    data: Mapped[dict] = mapped_column(default=dict)
    chain: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


_created = count()


@event.listens_for(AuditEvent, "init")
def _remember_creation_order(target, args, kwargs):
    # session.new is unordered; events join their chain in the order the code created them.
    target._chain_order = next(_created)


@event.listens_for(Session, "before_flush")
def _chain_new_events(session, flush_context, instances):
    from ..audit_chain import chain_pending  # the chain module imports the models

    chain_pending(session)


class Incident(Base):
    """A failure inside the engine (script, service task, expression), kept visible on the change."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int | None] = mapped_column(ForeignKey("changes.id"), index=True)
    process_key: Mapped[str] = mapped_column(String(100))
    element_id: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    actor: Mapped[User | None] = relationship()
