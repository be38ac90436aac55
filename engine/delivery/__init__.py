"""Delivering one outbox row (a `deliver` job): email over SMTP or a signed webhook POST.

The row is read, the network call made with no transaction open, and the row marked sent in the
same commit that finishes the job. A failure propagates to the job runner, which retries with
backoff and finally marks the notification failed (the admins' dead-letter list).

Delivery is idempotent: a sent or skipped row is never sent again, two workers cannot hold the same
job (claim), and each message carries a stable id (email Message-ID, webhook X-Changeflow-Delivery)
so that the one unavoidable window — the server accepted, the worker died before committing — is
recognisable as a duplicate by the receiver.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session, joinedload

from ..config import Settings
from ..jobs import queue
from ..models import Change, Job, Notification
from . import email, webhook


class DeliveryError(Exception):
    """The transport refused or could not reach the other side; worth retrying."""


def deliver(session: Session, job: Job, settings: Settings, now: datetime) -> None:
    row = session.get(Notification, int(job.ref),
                      options=[joinedload(Notification.recipient), joinedload(Notification.endpoint)])
    if row is None or row.status in ("sent", "skipped"):
        queue.finish(job, now)
        session.commit()
        return
    reason = _stale(session, row)
    if reason:
        row.status, row.last_error = "skipped", reason
        queue.finish(job, now)
        session.commit()
        return
    message = _prepare(row, settings)
    notification_id, channel, job_id, attempts = row.id, row.channel, job.id, job.attempts
    session.commit()  # no transaction stays open while the network call runs
    try:
        if channel == "email":
            email.send(message, settings)
        else:
            webhook.send(message, settings)
    except (OSError, email.SmtpError, webhook.WebhookError) as exc:
        raise DeliveryError(f"{channel}: {exc}") from exc
    # Plain UPDATEs: the rows were expired by the commit above, and reading them back buys nothing.
    session.execute(update(Notification).where(Notification.id == notification_id)
                    .values(status="sent", sent_at=now, attempts=attempts, last_error=None)
                    .execution_options(synchronize_session=False))
    queue.finish_by_id(session, job_id, now)
    session.commit()


def record_failure(session: Session, job: Job, error: str) -> None:
    """Mirror a failed attempt on the notification, so the admins' outbox shows it."""
    row = session.get(Notification, int(job.ref))
    if row is None:
        return
    row.attempts, row.last_error = job.attempts, error[:4000]
    if job.status == "failed":
        row.status = "failed"


def _stale(session: Session, row: Notification) -> str | None:
    """Why the message is no longer true (a reminder for a window that moved, a change already over)."""
    if row.kind != "window_reminder" or row.change_id is None:
        return None
    change = session.get(Change, row.change_id)
    if change is None or change.state in ("closed", "canceled"):
        return "the change is over"
    planned = change.planned_start.isoformat() if change.planned_start else None
    if row.payload.get("planned_start") and row.payload["planned_start"] != planned:
        return "the window moved; a reminder for the new window is queued"
    return None


def _prepare(row: Notification, settings: Settings):
    link = f"{settings.base_url}/api/changes/{row.change_id}" if row.change_id else settings.base_url
    if row.channel == "email":
        return email.compose(row, settings, link)
    endpoint = row.endpoint
    url = endpoint.url if endpoint else (row.recipient.webhook_url if row.recipient else None)
    secret = endpoint.secret if endpoint else (row.recipient.webhook_secret if row.recipient else "")
    return webhook.compose(row, url, secret or "", link, personal=endpoint is None)
