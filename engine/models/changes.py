from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Column, ForeignKey, Index, Numeric, String, Table, Text, case, func, literal_column, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow
from .services import Service
from .templates import TemplateVersion
from .users import User

change_services = Table(
    "change_services",
    Base.metadata,
    Column("change_id", ForeignKey("changes.id", ondelete="CASCADE"), primary_key=True),
    Column("service_id", ForeignKey("services.id"), primary_key=True, index=True),
)


# Laid out as PostgreSQL prints it back (pg_get_indexdef, line breaks and all), so that Alembic's
# autogenerate, which compares index expressions as text, finds model and database alike.
PLANNED_SPAN_SQL = ("(\nCASE\n    WHEN planned_end > planned_start THEN tstzrange(planned_start, planned_end)\n"
                    "    ELSE 'empty'::tstzrange\nEND)")


class Change(Base):
    """The materialised view of a change request that lists and the inbox query.

    The process instance is the source of truth for where the change is in its workflow; the
    columns here are written in the same transaction as the workflow state, after every command.
    """

    __tablename__ = "changes"
    __table_args__ = (
        Index("ix_changes_state_type", "state", "change_type"),
        Index("ix_changes_state_id", "state", "id"),  # a state's changes newest first (lists; migration 0011)
        Index("ix_changes_planned", "planned_start", "planned_end"),
        # PostgreSQL: the planned window as a range (PLANNED_SPAN below, the same expression), which
        # windows.planned_overlap asks with `&&`. Empty unless the window ends after it starts, so no
        # row makes tstzrange raise and rows without a window stay out of every answer; not partial,
        # because the planner ignores a partial index's expression statistics (its estimates were
        # then ten times off). Migration 0010.
        Index("ix_changes_planned_span", text(PLANNED_SPAN_SQL), postgresql_using="gist").ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(String(16), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    change_type: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="new")
    risk: Mapped[str | None] = mapped_column(String(16), index=True)
    risk_reasons: Mapped[list] = mapped_column(default=list)
    priority: Mapped[int | None]
    impact: Mapped[int]
    urgency: Mapped[int]
    planned_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    planned_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    actual_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    actual_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    implementation_plan: Mapped[str] = mapped_column(Text, default="")
    rollback_plan: Mapped[str] = mapped_column(Text, default="")
    rollback_tested: Mapped[bool] = mapped_column(default=False)
    test_plan: Mapped[str] = mapped_column(Text, default="")
    justification: Mapped[str] = mapped_column(Text, default="")
    emergency_reason: Mapped[str] = mapped_column(Text, default="")
    incident_ref: Mapped[str | None] = mapped_column(String(64))
    cost_estimate: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    cost_actual: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))  # recorded at the review
    implementation_result: Mapped[str | None] = mapped_column(String(32))
    close_code: Mapped[str | None] = mapped_column(String(32))
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    implementer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # Incremented each time the change enters authorization; a rework starts a new round.
    approval_round: Mapped[int] = mapped_column(default=0)
    template_version_id: Mapped[int | None] = mapped_column(ForeignKey("template_versions.id"), index=True)
    incidents_caused: Mapped[list] = mapped_column(default=list)
    close_notes: Mapped[str] = mapped_column(Text, default="")

    requester: Mapped[User] = relationship(foreign_keys=[requester_id])
    implementer: Mapped[User | None] = relationship(foreign_keys=[implementer_id])
    services: Mapped[list[Service]] = relationship(secondary=change_services, order_by=Service.key)
    template_version: Mapped["TemplateVersion | None"] = relationship()


# ix_changes_planned_span's expression as SQLAlchemy builds it, for the queries that must match it
_planned = Change.__table__.c
PLANNED_SPAN = case((_planned.planned_end > _planned.planned_start,
                     func.tstzrange(_planned.planned_start, _planned.planned_end)),
                    else_=literal_column("'empty'::tstzrange"))


class Assessment(Base):
    """One computed risk/priority value; every recomputation adds a row, so history is kept."""

    __tablename__ = "assessments"

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"), index=True)
    risk: Mapped[str | None] = mapped_column(String(16))
    risk_reasons: Mapped[list] = mapped_column(default=list)
    priority: Mapped[int | None]
    assessed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Approval(Base):
    """An approval decision as recorded by the system (never by email)."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[str] = mapped_column(String(36))
    step: Mapped[str] = mapped_column(String(64))
    approver_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    role: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    round: Mapped[int] = mapped_column(default=1)
    cab_meeting_id: Mapped[int | None] = mapped_column(ForeignKey("cab_meetings.id"), index=True)
    # Who entered the decision when not the approver (a CAB chair recording the meeting).
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    override_reason: Mapped[str | None] = mapped_column(Text)
    evidence_reviewed: Mapped[list] = mapped_column(default=list)

    approver: Mapped[User] = relationship(foreign_keys=[approver_id])
    recorded_by: Mapped[User | None] = relationship(foreign_keys=[recorded_by_id])
