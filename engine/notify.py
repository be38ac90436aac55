"""Notifications as outbox rows, written in the same transaction as the change that causes them.

Delivery (email, webhooks) is done later by workers; here we only decide who hears what, once: the
`dedupe_key` makes writing the same notification twice a no-op.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .db import utcnow
from .models import Change, Notification, User
from .service_map import impacted_services

REMINDER_BEFORE = timedelta(hours=24)


def _window(change: Change) -> str:
    if not change.planned_start:
        return "no planned window yet"
    return f"{change.planned_start:%a %d %b %Y %H:%M} – {change.planned_end:%a %d %b %Y %H:%M} UTC"


def _summary(change: Change) -> str:
    services = ", ".join(s.key for s in change.services) or "no services"
    return (f"{change.number} {change.title}\n"
            f"Type: {change.change_type} · Category: {change.category} · Risk: {change.risk or 'not assessed'}\n"
            f"Services: {services}\nWindow: {_window(change)}\n"
            f"Rollback plan: {change.rollback_plan or '(none given)'}\n")


TEMPLATES = {
    "change_scheduled": ("Scheduled: {number} {title} ({window})",
                         "A change that affects {service_phrase} has been scheduled.\n\n{summary}"),
    "window_reminder": ("Reminder: {number} {title} starts {start}",
                        "A change that affects {service_phrase} starts soon.\n\n{summary}"),
    "conflict_escalation": ("Conflict: {number} {title}",
                            "New conflicts were found after the change was scheduled:\n{conflicts}\n\n{summary}"),
}


def enqueue(session: Session, kind: str, change: Change, recipient: User, *, dedupe: str,
            send_after: datetime | None = None, **context) -> Notification | None:
    key = f"{kind}:{change.id}:{recipient.id}:{dedupe}"[:200]
    if session.scalar(select(Notification.id).where(Notification.dedupe_key == key)):
        return None
    subject, body = TEMPLATES[kind]
    values = {"number": change.number, "title": change.title, "window": _window(change),
              "start": f"{change.planned_start:%a %d %b %H:%M} UTC" if change.planned_start else "",
              "summary": _summary(change), "service_phrase": "your services", "conflicts": "", **context}
    row = Notification(kind=kind, recipient=recipient, change_id=change.id, subject=subject.format(**values)[:300],
                       body=body.format(**values), dedupe_key=key, send_after=send_after or utcnow(),
                       payload={"change": change.number, **{k: v for k, v in context.items() if isinstance(v, str)}})
    try:
        # A concurrent command may write the same notification; the unique key decides, and the
        # savepoint keeps this command's transaction usable when it loses.
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    return row


def service_owners(session: Session, change: Change) -> list[User]:
    """Owners of the change's services and of every service that depends on them."""
    ids = {s.owner_id for s in change.services if s.owner_id}
    ids |= {row["owner_id"] for row in impacted_services(session, [s.id for s in change.services]) if row.get("owner_id")}
    return list(session.scalars(select(User).where(User.id.in_(ids), User.active.is_(True)).order_by(User.username)))


def role_holders(session: Session, role: str) -> list[User]:
    users = session.scalars(select(User).where(User.active.is_(True)).order_by(User.username))
    return [u for u in users if role in u.roles]


def audience(session: Session, change: Change, name: str) -> list[User]:
    if name == "service_owners":
        return service_owners(session, change)
    if name == "change_managers":
        return role_holders(session, "change_manager")
    if name == "requester":
        return [change.requester]
    if name == "implementer":
        return [change.implementer] if change.implementer else []
    raise ValueError(f"unknown audience '{name}'; use service_owners, change_managers, requester or implementer")


def change_scheduled(session: Session, change: Change) -> list[Notification]:
    """Owners hear what, when, risk and rollback plan; a reminder is queued for before the window."""
    sent = []
    dedupe = f"{change.planned_start.isoformat() if change.planned_start else ''}"
    for owner in service_owners(session, change):
        sent.append(enqueue(session, "change_scheduled", change, owner, dedupe=dedupe))
        if change.planned_start:
            sent.append(enqueue(session, "window_reminder", change, owner, dedupe=dedupe,
                                send_after=max(utcnow(), change.planned_start - REMINDER_BEFORE)))
    return [n for n in sent if n is not None]
