"""Running jobs by id: claim, run the handler, and on failure retry with backoff or give up.

The same functions run inside an rq worker and in-process (demo, tests); they never raise, because
the job row — not the caller — records how it went. It returns the jobs that became due for
dispatch: the ones the work created, and this job again when it was rescheduled.
"""
from __future__ import annotations

import logging
import os
import socket
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from ..config import Settings
from ..db import utcnow
from ..errors import Conflict, WorkflowFailure
from ..models import Job
from . import queue
from .handlers import HANDLERS, on_failure

log = logging.getLogger("changeflow.jobs")
WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"

Dispatch = list[queue.Handout]


def run_job(sessions: sessionmaker, job_id: int, settings: Settings, *, now: datetime | None = None,
            worker: str = WORKER_NAME) -> Dispatch:
    return run_jobs(sessions, [job_id], settings, now=now, worker=worker)


def run_jobs(sessions: sessionmaker, job_ids: list[int], settings: Settings, *, now: datetime | None = None,
             worker: str = WORKER_NAME) -> Dispatch:
    """Run jobs handed out together: claimed in one statement; process steps and other kinds first,
    one at a time, then the deliveries as one batch (one read, one SMTP connection, the results
    recorded together). Each job still succeeds, retries or fails on its own."""
    now = now or utcnow()
    with sessions() as session:
        jobs = queue.claim_many(session, job_ids, now=now, lease_seconds=settings.job_lease_seconds, worker=worker)
        queue.take_new(session)
        deliveries = [job for job in jobs if job.kind == "deliver"]
        others = [(job.id, job) for job in jobs if job.kind != "deliver"]  # ids read before any commit expires them
        created: Dispatch = []
        for job_id, job in others:
            created += _run_one(session, job_id, job, settings, now)
        if deliveries:
            created += _run_deliveries(session, deliveries, settings, now, worker)
        return created


def _run_one(session: Session, job_id: int, job: Job, settings: Settings, now: datetime) -> Dispatch:
    try:
        HANDLERS[job.kind](session, job, settings, now)
        created = queue.take_new(session)
        job = session.get(Job, job_id, populate_existing=True)  # a handler may have rescheduled it
        return created + ([queue.Handout(job.id, job.due_at, job.kind)] if job.status == "pending" else [])
    except Exception as exc:  # noqa: BLE001 — the job row records every failure
        session.rollback()
        created = _record_failure(session, job_id, exc, settings, now)
        session.commit()
        return created


def _run_deliveries(session: Session, jobs: list[Job], settings: Settings, now: datetime, worker: str) -> Dispatch:
    from ..delivery import deliver_all

    retries: Dispatch = []

    def failed(session: Session, job_id: int, exc: Exception) -> None:
        retries.extend(_record_failure(session, job_id, exc, settings, now))

    try:
        deliver_all(session, jobs, settings, now, worker=worker, failed=failed)
    except Exception:  # noqa: BLE001 — the database went away mid-batch
        session.rollback()
        # What was not recorded stays claimed; when the leases run out the sweep hands it out again.
        log.exception("a batch of %s deliveries stopped; the unrecorded ones are retried when their leases end",
                      len(jobs))
        return []
    return retries


def _record_failure(session: Session, job_id: int, exc: Exception, settings: Settings, now: datetime) -> Dispatch:
    """Record a failed attempt in the open transaction; returns the job if it is to be run again."""
    if isinstance(exc, Conflict):  # lost an optimistic-lock race with a user or another job: go again
        job = queue.release(session, job_id, now=now)
        log.info("job %s lost a race; retrying", job_id)
    else:
        # A workflow failure (script, expression) needs a process owner, not a retry: the incident is
        # recorded by run_command; the job goes to the dead-letter list at once.
        error = exc.message if isinstance(exc, WorkflowFailure) else f"{type(exc).__name__}: {exc}"
        job = queue.record_failure(session, job_id, error, now=now, base_seconds=settings.retry_base_seconds,
                                   max_attempts=settings.job_max_attempts,
                                   retry=not isinstance(exc, WorkflowFailure))
        on_failure(session, job, error)
        log.warning("job %s (%s) attempt %s failed: %s", job_id, job.kind, job.attempts, error)
    return [queue.Handout(job.id, job.due_at, job.kind)] if job.status == "pending" else []


def run_due(sessions: sessionmaker, settings: Settings, *, now: datetime | None = None,
            limit: int = 1000) -> int:
    """Run every job due by `now`, including the ones that become due as they run; how many ran.

    The embedded server's timer thread calls this; tests call it with a clock of their own.
    """
    now = now or utcnow()
    ran = 0
    seen: set[int] = set()
    while ran < limit:
        with sessions() as session:
            due = [job for job in queue.due(session, now) if job.id not in seen]
        if not due:
            return ran
        seen.update(job.id for job in due)
        run_jobs(sessions, [job.id for job in due], settings, now=now, worker="inline")
        ran += len(due)
    return ran
