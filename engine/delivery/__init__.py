"""Delivering outbox rows (`deliver` jobs): email over SMTP or a signed webhook POST.

A worker takes the deliveries of a hand-out together (up to `dispatch.DELIVERY_BATCH`, typically the
notifications of one command): the rows are read in one statement, the messages sent with no
transaction open (the e-mails over one SMTP connection), and the results recorded together — rows
marked sent and jobs finished in one UPDATE each. A failure is the failing job's alone: the runner
retries it with backoff and finally marks the notification failed (the admins' dead-letter list).

Delivery is idempotent: a sent or skipped row is never sent again, two workers cannot hold the same
job (claim), and each message carries a stable id (email Message-ID, webhook X-Changeflow-Delivery)
so that the one unavoidable window — the server accepted, the worker died before committing — is
recognisable as a duplicate by the receiver. That window is at most `RECORD_EVERY_SECONDS` of sends:
a batch that runs longer records what it sent and extends the leases of the rest, so a slow SMTP
server or webhook never lets another worker take over jobs this one is still sending.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from ..config import Settings
from ..jobs import queue
from ..models import Change, Job, Notification
from . import email, webhook

RECORD_EVERY_SECONDS = 1.0  # also at most a quarter of the job lease (tests run with short leases)


class DeliveryError(Exception):
    """The transport refused or could not reach the other side; worth retrying."""


@dataclass
class _Ready:
    job_id: int
    notification_id: int
    channel: str
    attempts: int
    message: Any  # email.Outgoing or webhook.Outgoing


Failed = Callable[[Session, int, Exception], None]


def deliver_all(session: Session, jobs: list[Job], settings: Settings, now: datetime, *, worker: str,
                failed: Failed) -> None:
    """Deliver the claimed jobs' notifications and finish the jobs; `failed(session, job_id, error)`
    records a job that failed, in the transaction that records the others."""
    ready, failures = _prepare_all(session, jobs, settings, now)
    _record(session, [], failures, now, failed)
    session.commit()  # skips and finished jobs recorded; no transaction stays open while the network calls run
    waiting = deque(ready)
    sent: list[_Ready] = []
    failures = []
    started = last_record = time.monotonic()
    every = min(RECORD_EVERY_SECONDS, settings.job_lease_seconds / 4)
    with email.Mailer(settings) as mailer:
        while waiting:
            item = waiting.popleft()
            try:
                _send(item, mailer, settings)
                sent.append(item)
            except (OSError, email.SmtpError, webhook.WebhookError) as exc:
                failures.append((item.job_id, DeliveryError(f"{item.channel}: {exc}")))
            except Exception as exc:  # noqa: BLE001 — one bad message must not fail the batch
                failures.append((item.job_id, exc))
            if waiting and time.monotonic() - last_record >= every:
                _record(session, sent, failures, now, failed)
                until = now + timedelta(seconds=time.monotonic() - started + settings.job_lease_seconds)
                ours = queue.extend_leases(session, [later.job_id for later in waiting], until=until, worker=worker)
                session.commit()
                waiting = deque(later for later in waiting if later.job_id in ours)
                sent, failures, last_record = [], [], time.monotonic()
    _record(session, sent, failures, now, failed)
    session.commit()


def _prepare_all(session: Session, jobs: list[Job], settings: Settings,
                 now: datetime) -> tuple[list[_Ready], list[tuple[int, Exception]]]:
    """Read the jobs' rows in one statement; finish the jobs with nothing (more) to send."""
    ids = {int(job.ref) for job in jobs}
    rows = {row.id: row for row in session.scalars(
        select(Notification).where(Notification.id.in_(ids))
        .options(joinedload(Notification.recipient), joinedload(Notification.endpoint))).unique()}
    ready, failures, finished = [], [], []
    for job in jobs:
        row = rows.get(int(job.ref))
        if row is None or row.status in ("sent", "skipped"):
            finished.append(job.id)
            continue
        reason = _stale(session, row)
        if reason:
            row.status, row.last_error = "skipped", reason
            finished.append(job.id)
            continue
        try:
            ready.append(_Ready(job.id, row.id, row.channel, job.attempts, _prepare(row, settings)))
        except Exception as exc:  # noqa: BLE001 — e.g. a recipient without an e-mail address: that job fails
            failures.append((job.id, exc))
    queue.finish_many(session, finished, now)
    return ready, failures


def _send(item: _Ready, mailer: email.Mailer, settings: Settings) -> None:
    if item.channel == "email":
        mailer.send(item.message)
    else:
        webhook.send(item.message, settings)


def _record(session: Session, sent: list[_Ready], failures: list[tuple[int, Exception]], now: datetime,
            failed: Failed) -> None:
    """Mark the sent rows and finish their jobs; plain UPDATEs, since the rows were expired by the
    commit before the sends and reading them back buys nothing."""
    by_attempts: dict[int, list[int]] = {}
    for item in sent:
        by_attempts.setdefault(item.attempts, []).append(item.notification_id)
    for attempts, ids in by_attempts.items():  # one UPDATE: a batch's jobs are almost all first attempts
        session.execute(update(Notification).where(Notification.id.in_(ids))
                        .values(status="sent", sent_at=now, attempts=attempts, last_error=None)
                        .execution_options(synchronize_session=False))
    queue.finish_many(session, [item.job_id for item in sent], now)
    for job_id, exc in failures:
        failed(session, job_id, exc)


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
