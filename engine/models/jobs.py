from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime, utcnow


class Job(Base):
    """One piece of background work, durable in the database (the source of truth).

    Redis/rq only carries the job id to a worker at `due_at`; a worker claims the row (status
    running, `lease_until`) before working, so a job lost by Redis is found again by the sweep and
    a job held by a killed worker is taken over once its lease expires. Kinds: `deliver` (a
    notification), `timer` (a BPMN timer of an instance), `service_task` (a slow operator),
    `follow_up_due` (an overdue follow-up action).
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_due", "status", "due_at"),
        UniqueConstraint("dedupe_key", name="uq_jobs_dedupe_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(100))  # what the job works on: notification id, task id, …
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id", ondelete="CASCADE"),
                                                    index=True)
    change_id: Mapped[int | None] = mapped_column(ForeignKey("changes.id", ondelete="SET NULL"))
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|running|done|failed|cancelled
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
