from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow
from .users import User


# The people who belong to a service's team: requesters among them read every change to the service
# (engine/permissions.py, can_read_change and readable_changes).
service_members = Table(
    "service_members",
    Base.metadata,
    Column("service_id", ForeignKey("services.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Service(Base):
    """A business or technical service changes are made to. Criticality 1 is mission critical."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    criticality: Mapped[int] = mapped_column(default=3)
    business_owner: Mapped[str] = mapped_column(String(200), default="")
    sla_tier: Mapped[str] = mapped_column(String(32), default="")
    vendors: Mapped[list] = mapped_column(default=list)
    requires_maintenance_window: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    owner: Mapped[User | None] = relationship()
    members: Mapped[list[User]] = relationship(secondary=service_members, order_by=User.username,
                                              viewonly=True)
