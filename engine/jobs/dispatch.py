"""How a committed job reaches a runner.

- `RqDispatcher` (production, `REDIS_URL` set): due jobs go on an rq queue, later ones to rq's
  scheduler (`enqueue_at`). Jobs that move a process on (timers, background service tasks) and the
  re-checks of scheduled changes after a window changed go on `<queue>-steps`, which workers take
  from first: a change waiting for its conflict check does not wait behind a burst of e-mails. If Redis is down or loses jobs, nothing is lost: the job rows
  remain and a worker's sweep hands them out again.
- `InlineDispatcher` (no Redis: the embedded demo, most tests): due jobs run in this process right
  after the commit; a timer thread runs the rest when they fall due. Same runner, same code path.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy.orm import sessionmaker

from ..config import Settings
from ..db import utcnow
from . import queue
from .runner import Dispatch, run_due, run_jobs

log = logging.getLogger("changeflow.jobs")
PERFORM = "engine.jobs.worker.perform"
PERFORM_MANY = "engine.jobs.worker.perform_many"
DELIVERY_BATCH = 50
BACKLOG_LIMIT = 500  # more entries than this waiting in rq: workers are behind, not jobs lost


class InlineDispatcher:
    def __init__(self, sessions: sessionmaker, settings: Settings):
        self.sessions, self.settings = sessions, settings
        self._stop = threading.Event()

    def dispatch(self, jobs: Dispatch) -> None:
        waiting = [j for j in jobs if j.due_at <= utcnow()]
        while waiting:  # process steps first, then the deliveries as one batch, as a worker would
            follow_up = run_jobs(self.sessions, [j.id for j in waiting], self.settings, worker="inline")
            waiting = [j for j in follow_up if j.due_at <= utcnow()]

    def start_timer_thread(self, interval: float = 5.0) -> threading.Thread:
        """Fire due timers and deliver delayed notifications every `interval` seconds (embedded server)."""
        def loop():
            while not self._stop.wait(interval):
                try:
                    run_due(self.sessions, self.settings)
                except Exception:  # noqa: BLE001 — keep the thread alive; the jobs stay due
                    log.exception("running due jobs failed")

        thread = threading.Thread(target=loop, name="changeflow-timers", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


class RqDispatcher:
    def __init__(self, settings: Settings, connection=None):
        from redis import Redis
        from rq import Queue

        self.settings = settings
        self.redis = connection or Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
        self.queue = Queue(settings.queue_name, connection=self.redis)
        self.steps = Queue(steps_queue_name(settings), connection=self.redis)

    def dispatch(self, jobs: Dispatch) -> None:
        from rq import Queue

        now = utcnow()
        try:
            steps = [j.id for j in jobs if j.advances_process and j.due_at <= now]
            if steps:
                self.steps.enqueue_many([Queue.prepare_data(PERFORM, (job_id,), timeout=self._timeout(),
                                                            **self._options(job_id)) for job_id in steps])
            # Due deliveries go in rq jobs of up to DELIVERY_BATCH ids: rq's own bookkeeping costs about
            # as much as one delivery, so one rq job per e-mail doubled a worker's work. Each id is still
            # claimed, retried and dead-lettered on its own (a batch is only a hand-out).
            mail = [j.id for j in jobs if not j.advances_process and j.due_at <= now]
            batches = [mail[i:i + DELIVERY_BATCH] for i in range(0, len(mail), DELIVERY_BATCH)]
            if batches:  # one round trip for the lot (a review can notify dozens of people)
                self.queue.enqueue_many([Queue.prepare_data(PERFORM_MANY, (ids,), timeout=self._timeout() * len(ids),
                                                            **self._options(ids[0], len(ids))) for ids in batches])
            for queue_, batch in ((self.steps, [j for j in jobs if j.advances_process]),
                                  (self.queue, [j for j in jobs if not j.advances_process])):
                for job in batch:
                    if job.due_at > now:
                        queue_.enqueue_at(job.due_at, PERFORM, job.id, job_timeout=self._timeout(),
                                          **self._options(job.id))
        except Exception as exc:  # noqa: BLE001 — the rows are committed; the sweep will find them
            log.warning("could not hand %s job(s) to Redis (%s); the sweep will pick them up", len(jobs), exc)

    def _timeout(self) -> int:
        return max(int(self.settings.job_lease_seconds * 0.8), 5)  # rq stops a hung job before its lease ends

    @staticmethod
    def _options(job_id: int, count: int = 1) -> dict:
        # rq job ids are left unique: a duplicate hand-out is harmless (the claim decides) while a
        # reused id could overwrite the record of a job that is still running.
        # result_ttl=0: rq drops a finished job at once instead of saving it and its result (a third
        # of its bookkeeping per job); the job's row in the database records how it went.
        what = f"changeflow job {job_id}" if count == 1 else f"changeflow jobs {job_id} and {count - 1} more"
        return {"result_ttl": 0, "failure_ttl": 86400, "description": what}

    def backlog(self) -> int:
        return self.queue.count + self.steps.count


def steps_queue_name(settings: Settings) -> str:
    return f"{settings.queue_name}-steps"


def sweep(sessions: sessionmaker, dispatcher: RqDispatcher, settings: Settings,
          now: datetime | None = None) -> int:
    """Hand out again what Redis lost: jobs whose worker's lease ran out (it died), and jobs overdue by
    more than two sweep intervals — while the rq queue is empty, since a job still waiting in a busy
    queue is not lost (past ten times that, the sweep hands it out regardless, as a safety net).
    Returns how many were handed out."""
    now = now or utcnow()
    grace = timedelta(seconds=2 * settings.sweep_seconds)
    backlog = dispatcher.backlog()
    if backlog > BACKLOG_LIMIT:
        return 0
    with sessions() as session:
        lost = queue.due(session, now - (grace if backlog == 0 else 10 * grace))
    dispatcher.dispatch([job._replace(due_at=now) for job in lost])
    return len(lost)
