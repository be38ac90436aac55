"""What admins see and do about background work: the outbox (dead letters), jobs, webhook endpoints,
and what each user chose to hear (preferences)."""
from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from . import audit
from .errors import Conflict, NotFound, ValidationFailed
from .delivery.webhook import private_address_problem
from .jobs import queue
from .models import Job, Notification, User, WebhookEndpoint
from .notification_templates import MANDATORY, TEMPLATES
from .outbox import CHANNELS
from .permissions import require

NOTIFICATION_STATUSES = ("pending", "sent", "failed", "skipped")
JOB_STATUSES = ("pending", "running", "done", "failed", "cancelled")


def _filtered(model, filters: dict):
    query = select(model)
    for field, value in filters.items():
        if value:
            query = query.where(getattr(model, field) == value)
    return query


def _page(session: Session, query, order, page: int, per_page: int) -> dict:
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(order).offset((page - 1) * per_page).limit(per_page)).all()
    return {"items": rows, "total": total, "page": page, "per_page": per_page}


def list_outbox(session: Session, user: User, *, status: str | None = None, channel: str | None = None,
                change_id: int | None = None, page: int = 1, per_page: int = 50) -> dict:
    require(user, "outbox.read")
    query = _filtered(Notification, {"status": status, "channel": channel, "change_id": change_id})
    query = query.options(selectinload(Notification.recipient), selectinload(Notification.endpoint))
    return _page(session, query, Notification.id.desc(), page, per_page)


def _delivery_job(session: Session, notification_id: int) -> Job | None:
    return session.scalar(select(Job).where(Job.kind == "deliver", Job.ref == str(notification_id)))


def retry_notification(session: Session, user: User, notification_id: int) -> Notification:
    """Send a dead letter again: its delivery job starts over with all its attempts."""
    require(user, "outbox.retry")
    row = session.get(Notification, notification_id)
    if row is None:
        raise NotFound(f"Notification {notification_id} does not exist.")
    if row.status != "failed":
        raise Conflict(f"Notification {notification_id} is {row.status}; only failed ones can be retried.")
    job = _delivery_job(session, notification_id)
    if job is None:
        job = queue.schedule(session, "deliver", str(row.id), change_id=row.change_id)
    else:
        queue.retry(session, job.id)
    row.status = "pending"
    audit.record(session, "notification_retried", actor=user, change_id=row.change_id,
                 data={"notification_id": row.id, "kind": row.kind, "channel": row.channel,
                       "last_error": row.last_error})
    return row


def list_jobs(session: Session, user: User, *, status: str | None = None, kind: str | None = None,
              page: int = 1, per_page: int = 50) -> dict:
    require(user, "job.read")
    return _page(session, _filtered(Job, {"status": status, "kind": kind}), Job.id.desc(), page, per_page)


def retry_job(session: Session, user: User, job_id: int) -> Job:
    require(user, "job.retry")
    job = queue.retry(session, job_id)
    if job.kind == "deliver":
        row = session.get(Notification, int(job.ref))
        if row is not None and row.status == "failed":
            row.status = "pending"
    audit.record(session, "job_retried", actor=user, change_id=job.change_id,
                 data={"job_id": job.id, "kind": job.kind, "last_error": job.last_error})
    return job


# -- webhook endpoints -------------------------------------------------------------------------

def _check_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in TEMPLATES]
    if unknown:
        raise ValidationFailed("Unknown notification kinds.", errors=[
            {"field": "events", "message": f"unknown: {', '.join(unknown)}; known: {', '.join(sorted(TEMPLATES))}"}])
    return list(dict.fromkeys(events))


def _check_url(url: str, field: str = "url") -> str:
    if not url.startswith(("https://", "http://")) or len(url) > 2000:
        raise ValidationFailed("A webhook needs an http(s) URL.", errors=[{"field": field, "message": "must be http(s)"}])
    return url


def create_webhook(session: Session, user: User, fields: dict) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (returned once; give it to the receiving system)."""
    require(user, "webhook.manage")
    if session.scalar(select(WebhookEndpoint.id).where(WebhookEndpoint.name == fields["name"])):
        raise Conflict(f"A webhook named '{fields['name']}' exists already.")
    secret = fields.get("secret") or secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(name=fields["name"], url=_check_url(fields["url"]), secret=secret,
                               events=_check_events(fields.get("events") or []), active=True)
    session.add(endpoint)
    session.flush()
    audit.record(session, "webhook_created", actor=user, data={"id": endpoint.id, "name": endpoint.name,
                                                               "url": endpoint.url, "events": endpoint.events})
    return endpoint, secret


def list_webhooks(session: Session, user: User) -> list[WebhookEndpoint]:
    require(user, "webhook.manage")
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def delete_webhook(session: Session, user: User, endpoint_id: int) -> None:
    require(user, "webhook.manage")
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"Webhook {endpoint_id} does not exist.")
    endpoint.active = False  # kept: delivered notifications still name it
    audit.record(session, "webhook_disabled", actor=user, data={"id": endpoint.id, "name": endpoint.name})


# -- a user's own preferences ------------------------------------------------------------------

def preferences(user: User) -> dict:
    return {"opt_out": list(user.notify_opt_out or []), "email": user.email,
            "webhook_url": user.webhook_url, "channels": list(CHANNELS),
            "kinds": [{"kind": kind, "description": t.description, "mandatory": t.mandatory}
                      for kind, t in TEMPLATES.items()]}


def update_preferences(session: Session, user: User, fields: dict, *,
                       allow_private_webhooks: bool = False) -> tuple[dict, str | None]:
    """Opt-outs (`email`, `webhook`, or `channel:kind`) and a personal webhook URL (public addresses
    only, unless the installation allows private ones). Returns the preferences and, when a webhook
    URL is set anew, its signing secret (shown once)."""
    require(user, "me.notifications")
    errors = []
    for index, entry in enumerate(fields.get("opt_out", user.notify_opt_out or [])):
        channel, _, kind = entry.partition(":")
        if channel not in CHANNELS or (kind and kind not in TEMPLATES):
            errors.append({"field": f"opt_out.{index}", "message": f"'{entry}' is not a channel "
                           f"({', '.join(CHANNELS)}) or channel:kind"})
        elif kind in MANDATORY:
            errors.append({"field": f"opt_out.{index}", "message": f"'{kind}' is mandatory and cannot be switched off"})
    if errors:
        raise ValidationFailed("Invalid notification preferences.", errors=errors)
    secret = None
    if "opt_out" in fields:
        user.notify_opt_out = list(dict.fromkeys(fields["opt_out"]))
    if "webhook_url" in fields:
        url = fields["webhook_url"]
        if url and url != user.webhook_url:
            _check_url(url, "webhook_url")
            problem = None if allow_private_webhooks else private_address_problem(url)
            if problem:
                raise ValidationFailed("A personal webhook must be reachable on the internet.",
                                       errors=[{"field": "webhook_url", "message": problem}])
            user.webhook_url, user.webhook_secret = url, secrets.token_urlsafe(32)
            secret = user.webhook_secret
        elif not url:
            user.webhook_url = user.webhook_secret = None
    audit.record(session, "notification_preferences_changed", actor=user,
                 data={"opt_out": user.notify_opt_out, "webhook": bool(user.webhook_url)})
    return preferences(user), secret
