"""What each kind of job does. A handler gets (session, job, settings, now), does its work and marks
the job finished in the transaction that carries the work's effect."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from sqlalchemy.orm import Session

from ..config import Settings
from ..models import Job
from ..transactions import run_command
from . import queue


def _timer(session: Session, job: Job, settings: Settings, now: datetime) -> None:
    from ..continuations import fire_timer

    run_command(session, None, lambda s: fire_timer(s, job, now))


def _service_task(session: Session, job: Job, settings: Settings, now: datetime) -> None:
    from ..continuations import resume_service_task

    run_command(session, None, lambda s: resume_service_task(s, job, now))


def _follow_up_due(session: Session, job: Job, settings: Settings, now: datetime) -> None:
    from ..follow_ups import remind_if_overdue

    def remind(s: Session) -> None:
        remind_if_overdue(s, int(job.ref), now.date())
        queue.finish(job, now)

    run_command(session, None, remind)


def _recheck_scheduled(session: Session, job: Job, settings: Settings, now: datetime) -> None:
    from ..conflict_records import recheck_batch

    def recheck(s: Session) -> None:
        recheck_batch(s, job.ref, now)
        queue.finish(job, now)

    run_command(session, None, recheck)


# Deliveries are not here: the runner sends them in batches (`engine.delivery.deliver_all`).
HANDLERS: dict[str, Callable[[Session, Job, Settings, datetime], None]] = {
    "timer": _timer,
    "service_task": _service_task,
    "follow_up_due": _follow_up_due,
    "recheck_scheduled": _recheck_scheduled,
}


def on_failure(session: Session, job: Job, error: str) -> None:
    """Bookkeeping after a failed attempt, in the transaction that records it."""
    if job.kind == "deliver":
        from ..delivery import record_failure

        record_failure(session, job, error)
