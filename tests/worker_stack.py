"""A stack for background-work tests: a private PostgreSQL schema, a flushed Redis database, an
SMTP server in this process, the web app, and `changeflow worker` processes started on demand
(`stack.start_worker`), all stopped and reported on afterwards; plus helpers to queue mail and count
notifications. Used by tests/test_workers.py and tests/test_delivery_batches.py."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable
from uuid import uuid4

import pytest
from redis import Redis
from sqlalchemy import func, select, text

from engine import demo, outbox
from engine.config import SmtpSettings, Settings
from engine.models import Change, Job, Notification, User
from webui import create_app
from webui.cli import deploy_directories
from webui.extensions import db

from .background_support import REDIS_URL, SmtpServer, Worker
from .client import ApiClient
from .conftest import POSTGRES_URL, _empty_tables, _private_postgres_schema, _reset_schema

FAST = {"job_lease_seconds": 3.0, "sweep_seconds": 0.5, "retry_base_seconds": 0.5, "job_max_attempts": 3}


@pytest.fixture(scope="module")
def postgres_url():
    admin, schema, url = _private_postgres_schema(POSTGRES_URL, prefix="cf_workers")
    _reset_schema(url)
    yield url
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def redis_db():
    connection = Redis.from_url(REDIS_URL)
    connection.ping()  # unreachable Redis fails the test here
    connection.flushdb()
    yield connection
    connection.flushdb()


@dataclass
class Stack:
    api: ApiClient
    settings: Settings
    redis: Redis
    start_worker: Callable[..., Worker]

    def session(self):
        return self.api.app.app_context()


@pytest.fixture
def stack(postgres_url, redis_db, tmp_path):
    smtp = SmtpServer().__enter__()
    queue_name = f"cf-test-{uuid4().hex[:8]}"
    settings = Settings.from_env(database_url=postgres_url, redis_url=REDIS_URL, instance_dir=tmp_path / "instance",
                                 queue_name=queue_name, smtp=SmtpSettings(host="127.0.0.1", port=smtp.port,
                                                                          starttls=False), **FAST)
    app = create_app(settings, TESTING=True)
    with app.app_context():
        _empty_tables(db.engine)
        deploy_directories()
        demo.seed(db.session)
        db.session.commit()
    workers: list[Worker] = []

    def start_worker(name: str, smtp_port: int | None = None, redis_url: str = REDIS_URL,
                     args: tuple[str, ...] = ()) -> Worker:
        env = {**os.environ, "DATABASE_URL": postgres_url, "REDIS_URL": redis_url, "CHANGEFLOW_QUEUE": queue_name,
               "CHANGEFLOW_INSTANCE_DIR": str(tmp_path / "instance"), "CHANGEFLOW_SMTP_HOST": "127.0.0.1",
               "CHANGEFLOW_SMTP_PORT": str(smtp_port or smtp.port), "CHANGEFLOW_SMTP_STARTTLS": "false",
               "CHANGEFLOW_SMTP_TIMEOUT": "5", "CHANGEFLOW_JOB_LEASE_SECONDS": str(FAST["job_lease_seconds"]),
               "CHANGEFLOW_SWEEP_SECONDS": str(FAST["sweep_seconds"]),
               "CHANGEFLOW_RETRY_BASE_SECONDS": str(FAST["retry_base_seconds"]),
               "CHANGEFLOW_JOB_MAX_ATTEMPTS": str(FAST["job_max_attempts"])}
        worker = Worker(env, tmp_path / f"{name}.log", name, args).start()
        workers.append(worker)
        return worker

    stack = Stack(ApiClient(app), settings, redis_db, start_worker)
    stack.smtp = smtp
    yield stack
    for worker in workers:
        worker.stop()
    smtp.__exit__()
    for worker in workers:
        print(f"--- {worker.name} ---\n{worker.output()[-4000:]}")
    with app.app_context():  # what the jobs table says, for a failing test's report
        for job in db.session.scalars(select(Job).order_by(Job.id)):
            print("job", job.id, job.kind, job.ref, job.status, job.due_at, job.attempts, job.worker, job.last_error)
        db.session.remove()
        db.engine.dispose()


def counts(stack, **where) -> int:
    with stack.session():
        query = select(func.count()).select_from(Notification)
        for field, value in where.items():
            query = query.where(getattr(Notification, field) == value)
        return db.session.scalar(query)


def queue_mail(stack, change_id: int, n: int) -> list[int]:
    """n notifications about one change, written as the engine writes them (and handed to Redis on commit)."""
    with stack.session():
        change = db.session.get(Change, change_id)
        people = db.session.scalars(select(User).order_by(User.id)).all()
        rows = []
        for i in range(n):
            rows += outbox.notify(db.session, "request_approved", change, [people[i % len(people)]], dedupe=f"bulk{i}")
        db.session.commit()
        return [r.id for r in rows]


def running_workers(stack) -> int:
    from rq import Worker as RqWorker

    return len(RqWorker.all(connection=stack.redis))
