"""The jobs table as a queue. The database is the source of truth; Redis only says "look at job N".

Claiming is one conditional UPDATE, so two workers handed the same id never both run it, and a
worker that dies mid-job leaves a lease that expires — the sweep then hands the job out again.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import and_, bindparam, event, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db import insert_new_rows, utcnow
from ..models import Job

NEW_JOBS = "changeflow.new_jobs"  # session.info key: jobs written in the open transaction
MAX_BACKOFF = timedelta(hours=1)
# Jobs that move a process on (a change waits for them) go ahead of notification deliveries, and so
# does re-checking scheduled changes after a window changed (their conflicts are due before the window).
STEP_KINDS = frozenset({"timer", "service_task", "recheck_scheduled"})


class Handout(NamedTuple):
    """What a dispatcher needs to hand a job to a runner."""

    id: int
    due_at: datetime
    kind: str

    @property
    def advances_process(self) -> bool:
        return self.kind in STEP_KINDS


def schedule(session: Session, kind: str, ref: str, *, due_at: datetime | None = None,
             dedupe_key: str | None = None, instance_id: int | None = None,
             change_id: int | None = None, new: bool = False) -> Job | None:
    """Write a job in the caller's transaction; None if one with the same dedupe key exists.

    `new`: the key cannot exist yet (it names a row written just now), so skip the look-up; timers,
    scheduled again after every command, are looked up first rather than tried and refused.
    """
    if dedupe_key and not new and session.scalar(select(Job.id).where(Job.dedupe_key == dedupe_key)):
        return None
    job = Job(kind=kind, ref=str(ref), due_at=due_at or utcnow(), dedupe_key=dedupe_key,
              instance_id=instance_id, change_id=change_id, status="pending", attempts=0)
    try:
        with session.begin_nested():  # a concurrent writer of the same key wins; this transaction goes on
            session.add(job)
    except IntegrityError:
        return None
    session.info.setdefault(NEW_JOBS, []).append(Handout(job.id, job.due_at, job.kind))
    return job


def schedule_new(session: Session, kind: str, jobs: list[dict]) -> None:
    """Write jobs whose dedupe keys name rows written just now (so none can exist yet) in one INSERT.

    Each dict holds ref, due_at and optionally dedupe_key, instance_id, change_id.
    """
    if not jobs:
        return
    rows = session.execute(insert(Job).returning(Job.id, Job.due_at), [
        {"kind": kind, "status": "pending", "attempts": 0, "instance_id": None, "change_id": None,
         "dedupe_key": None, **job} for job in jobs]).all()
    session.info.setdefault(NEW_JOBS, []).extend(Handout(row.id, row.due_at, kind) for row in rows)


def schedule_unless_known(session: Session, kind: str, jobs: list[dict]) -> None:
    """Write the jobs whose dedupe key no job has yet, in one INSERT … ON CONFLICT DO NOTHING.

    For what is scheduled again after every command (an instance's waiting timers, its background
    service tasks): one round trip whether the jobs exist already or not, and a concurrent writer
    of the same key wins without a savepoint. Each dict holds ref, dedupe_key and optionally
    due_at, instance_id, change_id.
    """
    if not jobs:
        return
    now = utcnow()
    statement = insert_new_rows(session, Job, "dedupe_key").returning(Job.id, Job.due_at)
    rows = session.execute(statement, [
        {"kind": kind, "status": "pending", "attempts": 0, "instance_id": None, "change_id": None,
         "created_at": now, **job, "due_at": job.get("due_at") or now} for job in jobs]).all()
    session.info.setdefault(NEW_JOBS, []).extend(Handout(row.id, row.due_at, kind) for row in rows)


def take_new(session: Session) -> list[Handout]:
    """The (id, due_at) of jobs the session committed since the last call; call after commit."""
    return session.info.pop(NEW_JOBS, [])


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:  # the whole transaction, not a savepoint
        session.info.pop(NEW_JOBS, None)


def _claimable(now: datetime):
    return or_(and_(Job.status == "pending", Job.due_at <= now),
               and_(Job.status == "running", Job.lease_until < now))


# Built once, bound per call: every job a worker runs is claimed through it.
_CLAIM = (update(Job).where(Job.id.in_(bindparam("ids", expanding=True)),
                            or_(and_(Job.status == "pending", Job.due_at <= bindparam("now")),
                                and_(Job.status == "running", Job.lease_until < bindparam("now"))))
          .values(status="running", attempts=Job.attempts + 1, worker=bindparam("claimant"),
                  lease_until=bindparam("lease_end"))
          .returning(Job)
          .execution_options(synchronize_session=False, populate_existing=True))


def claim_many(session: Session, job_ids: list[int], *, now: datetime, lease_seconds: float,
               worker: str) -> list[Job]:
    """Take those of the jobs that are due (or whose holder's lease ran out), in one UPDATE; commits.

    Returns them in the order asked for; the others are not ours to run.
    """
    if not job_ids:
        return []
    jobs = session.scalars(_CLAIM, {"ids": job_ids, "now": now, "claimant": worker[:100],
                                    "lease_end": now + timedelta(seconds=lease_seconds)}).all()
    # The rows just came back from the UPDATE and this worker now holds them: reading them again
    # after the commit would only cost a round trip.
    expire, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire
    order = {job_id: i for i, job_id in enumerate(job_ids)}
    return sorted(jobs, key=lambda job: order[job.id])


def extend_leases(session: Session, job_ids: list[int], *, until: datetime, worker: str) -> set[int]:
    """Push out the leases this worker still holds on the jobs (a batch that takes a while); returns the
    ids still held — one whose lease ran out may have been taken over, and is no longer ours to run."""
    if not job_ids:
        return set()
    return set(session.scalars(
        update(Job).where(Job.id.in_(job_ids), Job.status == "running", Job.worker == worker[:100])
        .values(lease_until=until).returning(Job.id).execution_options(synchronize_session=False)))


def finish(job: Job, now: datetime | None = None) -> None:
    """Mark done — in the same transaction as the job's effect, so the effect and 'done' commit together."""
    job.status, job.finished_at, job.lease_until = "done", now or utcnow(), None


def finish_many(session: Session, job_ids: list[int], now: datetime | None = None) -> None:
    """`finish` for jobs whose rows this session does not hold fresh, in one UPDATE."""
    if job_ids:
        session.execute(update(Job).where(Job.id.in_(job_ids))
                        .values(status="done", finished_at=now or utcnow(), lease_until=None)
                        .execution_options(synchronize_session=False))


def backoff(attempt: int, base_seconds: float) -> timedelta:
    """Exponential: base, 4×base, 16×base … capped at an hour."""
    return min(timedelta(seconds=base_seconds * 4 ** max(attempt - 1, 0)), MAX_BACKOFF)


def record_failure(session: Session, job_id: int, error: str, *, now: datetime, base_seconds: float,
                   max_attempts: int, retry: bool = True) -> Job:
    """After a failed attempt: pending again after a backoff, or failed (dead letter) when out of attempts."""
    job = session.get(Job, job_id, populate_existing=True)
    job.last_error, job.lease_until = error[:4000], None
    if retry and job.attempts < max_attempts:
        job.status, job.due_at = "pending", now + backoff(job.attempts, base_seconds)
    else:
        job.status, job.finished_at = "failed", now
    return job


def release(session: Session, job_id: int, *, now: datetime, delay_seconds: float = 1.0) -> Job:
    """Give a job back without counting the attempt (it lost an optimistic-lock race; try again soon)."""
    job = session.get(Job, job_id, populate_existing=True)
    job.status, job.lease_until = "pending", None
    job.attempts = max(job.attempts - 1, 0)
    job.due_at = now + timedelta(seconds=delay_seconds)
    return job


def due(session: Session, now: datetime, limit: int = 500) -> list[Handout]:
    """Jobs a worker should run now: due and pending, or running under an expired lease."""
    rows = session.execute(select(Job.id, Job.due_at, Job.kind).where(_claimable(now))
                           .order_by(Job.due_at).limit(limit))
    return [Handout(row.id, row.due_at, row.kind) for row in rows]


def retry(session: Session, job_id: int) -> Job:
    """An admin's retry of a failed job: all attempts again, due now."""
    from ..errors import Conflict, NotFound

    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.")
    if job.status != "failed":
        raise Conflict(f"Job {job_id} is {job.status}; only failed jobs can be retried.")
    job.status, job.attempts, job.due_at, job.finished_at = "pending", 0, utcnow(), None
    session.info.setdefault(NEW_JOBS, []).append(Handout(job.id, job.due_at, job.kind))
    return job


def cancel_timers(session: Session, instance_id: int, keep: set[str]) -> None:
    """Cancel pending timer jobs of an instance whose timer no longer waits (its task finished or was cancelled)."""
    query = update(Job).where(Job.kind == "timer", Job.instance_id == instance_id, Job.status == "pending")
    if keep:
        query = query.where(Job.ref.not_in(keep))
    session.execute(query.values(status="cancelled", finished_at=utcnow()).execution_options(synchronize_session=False))


def stats(session: Session, now: datetime, late_after: timedelta = timedelta(minutes=1)) -> dict:
    """For /api/health: jobs overdue by more than `late_after` (no worker is keeping up) and dead letters."""
    late = session.scalar(select(func.count()).select_from(Job).where(
        Job.status == "pending", Job.due_at < now - late_after))
    failed = session.scalar(select(func.count()).select_from(Job).where(Job.status == "failed"))
    return {"late": late, "failed": failed}
