from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow
from .users import User

EVIDENCE_KINDS = (
    "test_result", "rollback_plan", "implementation_log", "verification", "monitoring", "security_review",
    "business_sign_off", "cost_approval", "identity_validation", "review_note", "other",
)


class Evidence(Base):
    """A file or link attached to a change. Immutable: a correction is a new row that supersedes it."""

    __tablename__ = "evidence"
    __table_args__ = (Index("ix_evidence_change_kind", "change_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str | None] = mapped_column(String(255))  # sanitised; None for links
    content_type: Mapped[str | None] = mapped_column(String(100))  # sniffed from the content
    size: Mapped[int | None]
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)  # names the stored blob
    url: Mapped[str | None] = mapped_column(String(2000))  # for links (a CI run, a ticket)
    note: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(default=1)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("evidence.id"), unique=True)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    uploaded_by: Mapped[User | None] = relationship()
    supersedes: Mapped["Evidence | None"] = relationship(remote_side=[id])


class FollowUpAction(Base):
    """An action agreed in a post-implementation review: who does what by when."""

    __tablename__ = "follow_up_actions"
    __table_args__ = (Index("ix_follow_up_actions_status_due", "status", "due_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    due_date: Mapped[date | None]
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | done
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    owner: Mapped[User | None] = relationship()
