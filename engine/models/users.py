from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, UTCDateTime, utcnow


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(254))
    roles: Mapped[list] = mapped_column(default=list)
    team: Mapped[str | None] = mapped_column(String(64))  # the implementing team, for reports
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    # Secret in the user's iCalendar feed URL (calendar apps cannot send bearer tokens).
    calendar_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Notification channels the user switched off: "email", "webhook", or "channel:kind" for one kind.
    notify_opt_out: Mapped[list] = mapped_column(default=list)
    # Personal webhook (e.g. a chat incoming-webhook URL); the secret signs each delivery.
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    webhook_secret: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    tokens: Mapped[list["ApiToken"]] = relationship(back_populates="user")

    def has_role(self, *roles: str) -> bool:
        return any(role in self.roles for role in roles)

    def __repr__(self) -> str:
        return f"<User {self.username} {self.roles}>"


class ApiToken(Base):
    """A bearer token. Only its SHA-256 is stored: tokens are random, so a fast hash is enough."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="default")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # None: the token carries all of its user's permissions; a list: only these actions (CI gates).
    scopes: Mapped[list | None] = mapped_column()

    user: Mapped[User] = relationship(back_populates="tokens")
