"""Facts a command reads several times, read once per transaction.

A task completion asks "who holds this role?" for the approval facts (CAB members), for each new
task's audience and for notifications (change managers), and "which webhooks are subscribed?" for
every notification. Nothing in such a command changes those rows, so the first answer is kept in
`session.info` until the transaction ends (commit or rollback), and the next command asks again.
Only facts the commands that read them never write belong here.
"""
from __future__ import annotations

from typing import Callable, TypeVar

from sqlalchemy import Text, bindparam, cast, event, select
from sqlalchemy.orm import Session

from .models import User, WebhookEndpoint

T = TypeVar("T")
KEY = "changeflow.transaction_memo"


def remembered(session: Session, name: str, read: Callable[[Session], T]) -> T:
    memo = session.info.setdefault(KEY, {})
    if name not in memo:
        memo[name] = read(session)
    return memo[name]


def role_holders(session: Session, role: str) -> list:
    """Every active user holding `role`, by username: read in SQL, not by loading every user (an
    organisation has thousands, a role a handful)."""
    return remembered(session, f"role_holders:{role}", lambda s: [
        user for user in s.scalars(_ROLE_HOLDERS, {"quoted_role": f'%"{role}"%'}) if role in user.roles])


# `roles` is a JSON list of names, stored as text on SQLite and PostgreSQL alike: the quoted name
# finds the candidates, the exact test above keeps only true holders. Built once, bound per call.
_ROLE_HOLDERS = (select(User).where(User.active.is_(True), cast(User.roles, Text).like(bindparam("quoted_role")))
                 .order_by(User.username))


def webhook_endpoints(session: Session) -> list:
    """Every active webhook endpoint, oldest first."""
    return remembered(session, "webhook_endpoints", lambda s: list(
        s.scalars(select(WebhookEndpoint).where(WebhookEndpoint.active.is_(True)).order_by(WebhookEndpoint.id))))


@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(KEY, None)
