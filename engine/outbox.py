"""Writing notifications: one outbox row per channel and recipient, plus the job that delivers it.

Everything here runs inside the transaction of the change that causes the notification, so a
rolled-back command notifies nobody. Writing the same notification twice is a no-op (dedupe key).
Users opt out per channel (or per channel and kind); mandatory kinds ignore opt-outs.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, inspect, select
from sqlalchemy.orm import Session

from .db import insert_new_rows, utcnow
from .memo import remembered, webhook_endpoints
from .jobs import queue
from .models import Change, Notification, Service, User, WebhookEndpoint, change_services
from .notification_templates import MANDATORY, TEMPLATES

CHANNELS = ("email", "webhook")


def window_text(change: Change) -> str:
    if not change.planned_start:
        return "no planned window yet"
    return f"{change.planned_start:%a %d %b %Y %H:%M} – {change.planned_end:%a %d %b %Y %H:%M} UTC"


def _summary(change: Change, service_keys: list[str]) -> str:
    services = ", ".join(service_keys) or "no services"
    return (f"{change.number} {change.title}\n"
            f"Type: {change.change_type} · Category: {change.category} · Risk: {change.risk or 'not assessed'}"
            f" · State: {change.state}\n"
            f"Services: {services}\nWindow: {window_text(change)}\n"
            f"Rollback plan: {change.rollback_plan or '(none given)'}\n")


def channels_for(user: User, kind: str) -> list[str]:
    """The channels `user` hears `kind` on: configured ones, minus opt-outs unless the kind is mandatory."""
    configured = [c for c, ok in (("email", bool(user.email)), ("webhook", bool(user.webhook_url))) if ok]
    if kind in MANDATORY:
        return configured
    opted_out = set(user.notify_opt_out or [])
    return [c for c in configured if c not in opted_out and f"{c}:{kind}" not in opted_out]


def _change_facts(change: Change, service_keys: list[str]) -> dict:
    return {"id": change.id, "number": change.number, "title": change.title, "state": change.state,
            "type": change.change_type, "category": change.category, "risk": change.risk,
            "priority": change.priority, "services": list(service_keys),
            "planned_start": change.planned_start.isoformat() if change.planned_start else None,
            "planned_end": change.planned_end.isoformat() if change.planned_end else None}


def notify(session: Session, kind: str, change: Change, recipients: list[User], *, dedupe: str,
           send_after: datetime | None = None, **context) -> list[Notification]:
    """Queue `kind` about `change` for each recipient on their channels and for subscribed webhooks."""
    template = TEMPLATES[kind]
    values = {"number": change.number, "title": change.title, "window": window_text(change),
              "start": f"{change.planned_start:%a %d %b %H:%M} UTC" if change.planned_start else "",
              "comment": "", "close_code": change.close_code or change.state, "conflicts": "", "waiting": "",
              "task": "", "due_phrase": "", "action": "", "due_date": "", "owner": "", **context}
    subject = template.subject.format(**values)[:300]
    keys = service_keys(session, change)
    body = template.body.format(**values) + "\n\n" + _summary(change, keys)  # delivery adds the links
    due = send_after or utcnow()
    payload = {"event": kind, "change": _change_facts(change, keys), "subject": subject, "text": body,
               **{k: v for k, v in context.items() if isinstance(v, (str, int, float, bool)) or v is None}}
    rows, seen = [], set()
    for person in recipients:
        if person is None or person.id in seen or not person.active:
            continue
        seen.add(person.id)
        for channel in channels_for(person, kind):
            rows.append(dict(kind=kind, channel=channel, recipient_id=person.id, endpoint_id=None,
                             change_id=change.id, subject=subject, body=body,
                             payload={**payload, "recipient": person.username}, send_after=due,
                             dedupe_key=f"{kind}:{change.id}:{channel}:u{person.id}:{dedupe}"[:200]))
    for endpoint in _subscribed(session, kind):
        rows.append(dict(kind=kind, channel="webhook", recipient_id=None, endpoint_id=endpoint.id,
                         change_id=change.id, subject=subject, body=body, payload={**payload, "recipient": None},
                         send_after=due, dedupe_key=f"{kind}:{change.id}:webhook:e{endpoint.id}:{dedupe}"[:200]))
    return _write(session, rows)


def service_keys(session: Session, change: Change) -> list[str]:
    """The keys of the change's services, by key: from the relationship if this session loaded it (it
    may have been edited), else one column read — not every column of every service, per notification."""
    if "services" not in inspect(change).unloaded:
        return [s.key for s in change.services]
    return remembered(session, f"service_keys:{change.id}",
                      lambda s: list(s.scalars(_SERVICE_KEYS, {"change_id": change.id})))


_SERVICE_KEYS = (select(Service.key).join(change_services, change_services.c.service_id == Service.id)
                 .where(change_services.c.change_id == bindparam("change_id")).order_by(Service.key))


def _subscribed(session: Session, kind: str) -> list[WebhookEndpoint]:
    return [e for e in webhook_endpoints(session) if not e.events or kind in e.events]


def _write(session: Session, rows: list[dict]) -> list[Notification]:
    """Insert the rows a concurrent command has not written already, and a delivery job for each.

    One INSERT … ON CONFLICT (dedupe_key) DO NOTHING for all of them: the unique key decides who
    wrote a notification first, without a savepoint (and two round trips) per recipient.
    """
    if not rows:
        return []
    session.flush()  # the change and people these rows refer to
    statement = insert_new_rows(session, Notification, "dedupe_key").returning(Notification)
    written = sorted(session.scalars(statement, rows).all(), key=lambda n: n.id)
    queue.schedule_new(session, "deliver", [
        dict(ref=str(n.id), due_at=n.send_after, dedupe_key=f"deliver:{n.id}", change_id=n.change_id)
        for n in written])
    return written
