"""Facts a command reads several times, read once per transaction.

A task completion asks "who is active, with which roles?" for the approval facts, for each new
task's audience and for every notification, and "which webhooks are subscribed?" for every
notification. Nothing in such a command changes those rows, so the first answer is kept in
`session.info` until the transaction ends (commit or rollback), and the next command asks again.
Only facts the commands that read them never write belong here.
"""
from __future__ import annotations

from typing import Callable, TypeVar

from sqlalchemy import event, select
from sqlalchemy.orm import Session

T = TypeVar("T")
KEY = "changeflow.transaction_memo"


def remembered(session: Session, name: str, read: Callable[[Session], T]) -> T:
    memo = session.info.setdefault(KEY, {})
    if name not in memo:
        memo[name] = read(session)
    return memo[name]


def active_users(session: Session) -> list:
    """Every active user, by username."""
    from .models import User

    return remembered(session, "active_users", lambda s: list(
        s.scalars(select(User).where(User.active.is_(True)).order_by(User.username))))


def webhook_endpoints(session: Session) -> list:
    """Every active webhook endpoint, oldest first."""
    from .models import WebhookEndpoint

    return remembered(session, "webhook_endpoints", lambda s: list(
        s.scalars(select(WebhookEndpoint).where(WebhookEndpoint.active.is_(True)).order_by(WebhookEndpoint.id))))


@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(KEY, None)
