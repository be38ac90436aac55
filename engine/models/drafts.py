from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow
from .users import User


class TaskDraft(Base):
    """What was typed into a task's form and saved without completing it: one per task, not validated.

    Working state, not history: the row goes when the task stops taking input (engine.drafts).
    """

    __tablename__ = "task_drafts"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[dict] = mapped_column()
    saved_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    saved_by: Mapped[User] = relationship()
