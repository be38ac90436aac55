"""Running one job by id: claim, run its handler, and on failure retry with backoff or give up.

The same function runs inside an rq worker and in-process (demo, tests); it never raises, because
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
    now = now or utcnow()
    with sessions() as session:
        job = queue.claim(session, job_id, now=now, lease_seconds=settings.job_lease_seconds, worker=worker)
        if job is None:
            return []  # not due, done already, or another worker holds it
        queue.take_new(session)
        try:
            HANDLERS[job.kind](session, job, settings, now)
            created = queue.take_new(session)
            job = session.get(Job, job_id, populate_existing=True)
            return created + ([queue.Handout(job.id, job.due_at, job.kind)] if job.status == "pending" else [])
        except Exception as exc:  # noqa: BLE001 — the job row records every failure
            session.rollback()
            return _failed(session, job_id, exc, settings, now)


def _failed(session: Session, job_id: int, exc: Exception, settings: Settings, now: datetime) -> Dispatch:
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
    session.commit()
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
            batch = [job.id for job in queue.due(session, now) if job.id not in seen]
        if not batch:
            return ran
        for job_id in batch:
            seen.add(job_id)
            run_job(sessions, job_id, settings, now=now, worker="inline")
            ran += 1
    return ran
