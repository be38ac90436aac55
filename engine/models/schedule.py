from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow
from .services import Service
from .users import User

window_services = Table(
    "window_services",
    Base.metadata,
    Column("window_id", ForeignKey("windows.id", ondelete="CASCADE"), primary_key=True),
    Column("service_id", ForeignKey("services.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class ServiceDependency(Base):
    """`service` depends on `depends_on` (a change to `depends_on` can affect `service`)."""

    __tablename__ = "service_dependencies"
    __table_args__ = (UniqueConstraint("service_id", "depends_on_id", name="uq_service_dependencies_pair"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)
    depends_on_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="calls")  # runs_on | calls | feeds_data_to

    service: Mapped[Service] = relationship(foreign_keys=[service_id])
    depends_on: Mapped[Service] = relationship(foreign_keys=[depends_on_id])


class Window(Base):
    """A maintenance window or blackout period: global or for some services, one-off or recurring.

    Times are stored in UTC. A recurring window expands `rrule` (RFC 5545) from `starts_at` in the
    wall-clock time of `timezone`, so "Sunday 01:00–05:00 Europe/Berlin" stays 01:00 across DST.
    """

    __tablename__ = "windows"
    __table_args__ = (Index("ix_windows_kind_span", "kind", "starts_at", "until"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # maintenance | blackout
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)  # first (or only) occurrence start
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)    # first (or only) occurrence end
    rrule: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Last moment any occurrence can end (None: recurs forever); lets queries skip dead windows.
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    services: Mapped[list[Service]] = relationship(secondary=window_services, order_by=Service.key)
    created_by: Mapped[User | None] = relationship()


class ChangeConflict(Base):
    """A conflict found for a change. Kept so that a conflict appearing later can be escalated once."""

    __tablename__ = "change_conflicts"
    __table_args__ = (Index("ix_change_conflicts_change_open", "change_id", "resolved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))  # kind + the other party; identifies "the same" conflict
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))  # blocking | warning
    other_change_id: Mapped[int | None] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"))
    window_id: Mapped[int | None] = mapped_column(ForeignKey("windows.id", ondelete="SET NULL"))
    message: Mapped[str] = mapped_column(Text)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
