from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow
from .users import User


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
