from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow
from .users import User


class WebhookEndpoint(Base):
    """A system that wants to hear about changes (chat, ticketing, CMDB): JSON POSTs signed with HMAC-SHA256.

    `events` lists notification kinds; empty means every kind. The secret must be kept (not hashed)
    because every delivery is signed with it; the API never shows it after creation.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(128))
    events: Mapped[list] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Notification(Base):
    """Transactional outbox: one message on one channel, written in the same transaction as its cause.

    A `deliver` job (engine.jobs) sends it; `status` is pending → sent, or failed (dead letter, an
    admin may retry it) or skipped (no longer true, e.g. a reminder for a window that moved).
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_status_due", "status", "send_after"),
        UniqueConstraint("dedupe_key", name="uq_notifications_dedupe_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(48))
    channel: Mapped[str] = mapped_column(String(16), default="email")  # email | webhook
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    endpoint_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="SET NULL"))
    change_id: Mapped[int | None] = mapped_column(ForeignKey("changes.id", ondelete="SET NULL"), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict] = mapped_column(default=dict)
    dedupe_key: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | failed | skipped
    send_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    recipient: Mapped[User | None] = relationship()
    endpoint: Mapped[WebhookEndpoint | None] = relationship()
