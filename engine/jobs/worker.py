"""The `changeflow worker` process: an rq worker with rq's scheduler, plus a sweep thread.

Any number of these may run on any number of machines against the same PostgreSQL and Redis.
The worker carries job ids only; what to do, and whether it is still to be done, comes from the
database (`engine.jobs.queue`).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeout
from rq import Queue, SimpleWorker
from sqlalchemy.orm import sessionmaker

from .. import sandbox_limits
from ..config import Settings
from ..db import make_engine
from ..heap import WarmHeap, freeze
from .dispatch import RqDispatcher, steps_queue_name, sweep
from .runner import WORKER_NAME, run_jobs

log = logging.getLogger("changeflow.worker")


@dataclass
class WorkerContext:
    sessions: sessionmaker
    settings: Settings
    dispatcher: RqDispatcher
    name: str = WORKER_NAME
    heap: WarmHeap = field(default_factory=WarmHeap)  # jobs and sweeps are its units of work


_context: WorkerContext | None = None  # one per worker process, set up before the first job


def _make_context(settings: Settings, name: str = WORKER_NAME) -> WorkerContext:
    sandbox_limits.configure(sandbox_limits.ScriptLimits.from_settings(settings))
    engine = make_engine(settings.database_url)
    return WorkerContext(sessionmaker(engine, expire_on_commit=True), settings, RqDispatcher(settings), name)


def perform(job_id: int) -> None:
    """The function rq calls: run one Changeflow job and hand on whatever it made due."""
    perform_many([job_id])


def perform_many(job_ids: list[int]) -> None:
    """Several jobs handed out together (deliveries): claimed together and sent as one batch; each
    still succeeds, retries or fails on its own."""
    global _context
    if _context is None:  # a forking worker or another process that did not call run_worker
        _context = _make_context(Settings.from_env())
    with _context.heap.working():
        follow_up = run_jobs(_context.sessions, [int(job_id) for job_id in job_ids], _context.settings,
                             worker=_context.name)
    _context.dispatcher.dispatch(follow_up)


def _sweep_forever(context: WorkerContext, stop: threading.Event) -> None:
    while True:
        try:
            with context.heap.working():
                handed = sweep(context.sessions, context.dispatcher, context.settings)
            if handed:
                log.info("sweep handed out %s job(s) Redis did not have", handed)
        except Exception as exc:  # noqa: BLE001 — Redis or the database may be briefly away
            log.warning("sweep failed: %s", exc)
        if stop.wait(context.settings.sweep_seconds):
            return


def run_worker(settings: Settings, *, burst: bool = False, name: str | None = None) -> None:

    global _context
    if not settings.redis_url:
        raise SystemExit("changeflow worker needs REDIS_URL (without Redis, `changeflow demo` runs jobs in-process)")
    name = name or f"changeflow-{WORKER_NAME}".replace(":", "-")
    _context = _make_context(settings, name)
    freeze()  # what start-up loaded lives as long as the process (engine.heap)
    stop = threading.Event()
    sweeper = threading.Thread(target=_sweep_forever, args=(_context, stop), name="changeflow-sweep", daemon=True)
    sweeper.start()  # the first sweep runs at once: timers that fell due while no worker ran fire now
    try:
        _work(name, burst)
    finally:
        stop.set()


def _work(name: str, burst: bool) -> None:
    """Run the rq worker; when Redis goes away under it (rq then gives up), start a new one once Redis
    answers again — the job rows are safe in the database and the sweep hands out what Redis lost."""
    generation = 0
    while True:
        # A client of its own without a read timeout: rq blocks on BLPOP for minutes, and sharing the
        # dispatcher's pool (5 s socket timeout, also used by the sweep) makes it time out and back off.
        connection = Redis.from_url(_context.settings.redis_url)
        # rq takes from the first queue that has work: process steps before deliveries.
        queues = [Queue(name_, connection=connection)
                  for name_ in (steps_queue_name(_context.settings), _context.settings.queue_name)]
        worker = _StoppableWorker(queues, connection=connection,
                                  name=name if generation == 0 else f"{name}.{generation}")
        try:
            worker.work(with_scheduler=True, burst=burst, logging_level="INFO")
            if burst or worker.stop_requested:
                return  # a clean stop: SIGTERM/SIGINT, or a burst that ran out of work
            # rq also ends its loop, and returns as if stopped, when it gives up on an error: Redis
            # vanished while it recorded a job's end and was back by the time it had torn down.
            log.warning("the rq worker gave up without being asked to stop; starting it again in 2 s")
        except (RedisConnectionError, RedisTimeout, ValueError) as exc:
            # ValueError: rq found our old registration still alive in a Redis that came back
            log.warning("lost Redis (%s); starting the worker again in 2 s", exc)
        time.sleep(2)
        generation += 1


class _StoppableWorker(SimpleWorker):
    """rq's in-process worker, which remembers whether a signal (or rq's shutdown command, which
    sends one) asked it to stop.

    In-process because jobs are short database transactions and network calls with their own
    timeouts, and a fork per job would cost more than the job."""

    stop_requested = False

    def request_stop(self, signum, frame):
        self.stop_requested = True
        super().request_stop(signum, frame)
