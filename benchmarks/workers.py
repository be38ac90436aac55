"""Notification delivery throughput of `changeflow worker` processes (rq over Redis, PostgreSQL, SMTP).

    .venv/bin/python benchmarks/workers.py [--notifications 2000] [--workers 1 2]

For each worker count K: a fresh private PostgreSQL schema (migrated, processes deployed, demo users
seeded), a fresh Redis database (default 12, flushed before and after) and queue name, and an SMTP
server in this process (aiosmtpd, the one the worker tests use). One change is submitted, K
`changeflow worker` processes are started and waited for (rq.Worker.all), then N notifications are
written with engine.outbox.notify in one transaction. The clock runs from that commit until every one
of the N rows is `sent` (polled in the database). Prints notifications/s, the per-delivery latency
(created_at → sent_at, and commit → sent_at; sent_at is the clock of the worker's run_job, taken just
before it claims the job), how long one delivery takes inside rq (from the worker logs), where the
CPU went (/proc), and checks that the SMTP server got exactly N messages with N distinct, expected
Message-IDs. Workers run with the production defaults (lease, sweep, retries). Workers, schemas and
Redis are cleaned up even on failure. See docs/performance.md ("Background workers").
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))  # for tests.background_support

from bench_cpu import CpuSnapshot, process_cpu_seconds
from bench_load import percentile
from redis import Redis
from sqlalchemy import func, inspect, select, text

from engine import demo, migrate, outbox
from engine.config import Settings, SmtpSettings
from engine.db import make_engine, utcnow
from engine.delivery.email import message_id
from engine.demo import demo_token
from engine.models import Change, Job, Notification, User
from tests.background_support import SmtpServer, Worker, wait_until

DEFAULT_POSTGRES = os.environ.get("CHANGEFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CHANGE = {  # tests/client.py NORMAL_CHANGE
    "title": "Upgrade CRM web app to 5.2", "description": "Minor release with bug fixes.",
    "change_type": "normal", "category": "application_release", "services": ["crm-web"],
    "impact": 3, "urgency": 3, "planned_start": "2026-12-05T22:00:00+01:00",
    "planned_end": "2026-12-05T23:30:00+01:00", "implementation_plan": "Deploy the release with the pipeline.",
    "rollback_plan": "Redeploy 5.1 from the artefact store.", "rollback_tested": True,
    "test_plan": "Regression suite in staging.", "justification": "Fixes customer-facing defects.",
}
LOG_PROBLEMS = re.compile(r"\b(WARNING|ERROR|CRITICAL|Traceback)\b")
RQ_DONE = re.compile(r"Successfully completed changeflow job (\d+) job in (\d+):(\d+):([\d.]+)s")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=2000, help="notifications written at once (N)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to measure")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES,
                        help="PostgreSQL server; each run uses a private schema in it, dropped afterwards")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379", help="Redis server (no database number)")
    parser.add_argument("--redis-db", type=int, default=12, help="Redis database number; flushed before and after")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for delivery (default N/5 + 60)")
    parser.add_argument("--keep-logs", action="store_true", help="print where the worker logs are and keep them")
    return parser.parse_args(argv)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


# -- a private PostgreSQL schema (tests/conftest.py _private_postgres_schema and _reset_schema) ----------

class PrivateSchema:
    def __init__(self, base_url: str, label: str):
        self.name = f"cf_bench_workers_{os.getpid()}_{label}"
        self.admin = make_engine(base_url)
        with self.admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{self.name}"'))
        separator = "&" if "?" in base_url else "?"
        self.url = f"{base_url}{separator}options=-csearch_path%3D{self.name}"
        engine = make_engine(self.url)
        with engine.begin() as conn:  # empty, but do what _reset_schema does in case of leftovers
            for table in inspect(conn).get_table_names():
                conn.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
        engine.dispose()
        migrate.upgrade(self.url)

    def drop(self) -> None:
        with self.admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'))
        self.admin.dispose()


# -- one measurement -----------------------------------------------------------------------------------

@dataclass
class Run:
    workers: int
    notifications: int
    seconds: float = 0.0
    commit_seconds: float = 0.0        # commit + handing N job ids to rq (after_commit hook)
    write_seconds: float = 0.0         # outbox.notify × N before the commit
    created_to_sent: list[float] = field(default_factory=list)
    commit_to_sent: list[float] = field(default_factory=list)
    smtp_messages: int = 0
    smtp_distinct: int = 0
    smtp_expected: bool = False
    per_worker: dict[str, int] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)
    not_sent: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    log_problems: list[str] = field(default_factory=list)
    rq_jobs_run: int = 0
    service_times: list[float] = field(default_factory=list)  # rq's duration of the run that delivered
    sweep_handouts: int = 0

    @property
    def smtp_ok(self) -> bool:
        return self.smtp_messages == self.notifications == self.smtp_distinct and self.smtp_expected

    @property
    def rate(self) -> float:
        return self.notifications / self.seconds if self.seconds else 0.0


def redis_server_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip().startswith("redis-server"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def measure(args, count: int, logs: Path) -> Run:
    from rq import Worker as RqWorker

    from webui import create_app
    from webui.cli import deploy_directories
    from webui.extensions import db

    n = args.notifications
    run = Run(count, n)
    redis_url = f"{args.redis_url.rstrip('/')}/{args.redis_db}"
    redis = Redis.from_url(redis_url)
    redis.ping()
    redis.flushdb()
    schema = smtp = app = None
    job_ids: set[int] = set()
    workers: list[Worker] = []
    try:
        schema = PrivateSchema(args.postgres_url, f"w{count}")
        smtp = SmtpServer().__enter__()
        queue_name = f"cf-bench-{uuid4().hex[:8]}"
        instance = logs / f"instance-w{count}"
        settings = Settings.from_env(database_url=schema.url, redis_url=redis_url, instance_dir=instance,
                                     queue_name=queue_name,
                                     smtp=SmtpSettings(host="127.0.0.1", port=smtp.port, starttls=False))
        app = create_app(settings, TESTING=True)
        with app.app_context():
            deploy_directories()
            demo.seed(db.session)
            db.session.commit()
        answer = app.test_client().post("/api/changes", json=CHANGE,
                                        headers={"Authorization": f"Bearer {demo_token('alice')}"})
        if answer.status_code != 201:
            raise SystemExit(f"submitting the change failed: {answer.status_code} {answer.get_data(as_text=True)[:300]}")
        change_id = answer.get_json()["id"]

        env = {**os.environ, "DATABASE_URL": schema.url, "REDIS_URL": redis_url, "CHANGEFLOW_QUEUE": queue_name,
               "CHANGEFLOW_INSTANCE_DIR": str(instance), "CHANGEFLOW_SMTP_HOST": "127.0.0.1",
               "CHANGEFLOW_SMTP_PORT": str(smtp.port), "CHANGEFLOW_SMTP_STARTTLS": "false"}
        for key in ("CHANGEFLOW_JOB_LEASE_SECONDS", "CHANGEFLOW_SWEEP_SECONDS", "CHANGEFLOW_RETRY_BASE_SECONDS",
                    "CHANGEFLOW_JOB_MAX_ATTEMPTS", "CHANGEFLOW_SMTP_USERNAME", "CHANGEFLOW_SMTP_SSL"):
            env.pop(key, None)  # production defaults
        for i in range(count):
            workers.append(Worker(env, logs / f"w{count}-{i + 1}.log", f"bench-w{count}-{i + 1}").start())
        wait_until(lambda: len(RqWorker.all(connection=redis)) == count, timeout=60,
                   what=f"{count} worker(s) registered")

        with app.app_context():  # the submission's own notification(s), delivered before the clock starts
            def settled():
                db.session.rollback()
                return not db.session.scalar(select(func.count()).select_from(Notification)
                                             .where(Notification.status != "sent"))
            wait_until(settled, timeout=60, what="the submission's notifications to be sent")
            before_ids = set(db.session.scalars(select(Notification.id)))
        wait_until(lambda: len(smtp.sink.ids()) >= len(before_ids), timeout=10, what="the first mail")
        with smtp.sink.lock:
            smtp.sink.messages.clear()

        with app.app_context():
            change = db.session.get(Change, change_id)
            people = db.session.scalars(select(User).order_by(User.id)).all()
            started_writing = time.perf_counter()
            ids = []
            for i in range(n):
                rows = outbox.notify(db.session, "request_approved", change, [people[i % len(people)]],
                                     dedupe=f"bench{i}")
                ids += [r.id for r in rows]
            if len(ids) != n:
                raise SystemExit(f"outbox.notify wrote {len(ids)} notifications, expected {n} (opt-outs?)")
            cpu_before = _cpu_snapshot(workers)
            committed_at = utcnow()
            t0 = time.perf_counter()
            run.write_seconds = t0 - started_writing
            db.session.commit()  # the after_commit hook hands the N job ids to rq
            run.commit_seconds = time.perf_counter() - t0
            done_at = _wait_all_sent(db, ids, t0, args.timeout or n / 5 + 60, workers)
            run.seconds = done_at - t0
            run.cpu = _cpu_spent(cpu_before, _cpu_snapshot(workers))
            time.sleep(1.0)  # a duplicate delivery would arrive now

            rows = db.session.execute(select(Notification.id, Notification.created_at, Notification.sent_at,
                                             Notification.status).where(Notification.id.in_(ids))).all()
            run.not_sent = _tally(r.status for r in rows if r.status != "sent")
            sent = [r for r in rows if r.sent_at]
            run.created_to_sent = [(r.sent_at - r.created_at).total_seconds() for r in sent]
            run.commit_to_sent = [(r.sent_at - committed_at).total_seconds() for r in sent]
            jobs = db.session.execute(select(Job.worker, Job.attempts).where(
                Job.kind == "deliver", Job.ref.in_([str(i) for i in ids]))).all()
            run.per_worker = _tally(j.worker for j in jobs)
            job_ids = set(db.session.scalars(select(Job.id).where(Job.kind == "deliver",
                                                                  Job.ref.in_([str(i) for i in ids]))))
            run.attempts = _tally(j.attempts for j in jobs)

        received = smtp.sink.ids()
        run.smtp_messages, run.smtp_distinct = len(received), len(set(received))
        sender = settings.smtp.sender
        run.smtp_expected = set(received) == {message_id(i, sender) for i in ids}
    finally:
        for worker in workers:
            worker.stop()
        if smtp is not None:
            smtp.__exit__()
        if app is not None:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        redis.flushdb()
        redis.close()
        if schema is not None:
            schema.drop()
    longest: dict[int, float] = {}  # job id → its longest rq run (the delivery; the others were turned away)
    for worker in workers:
        output = worker.output()
        run.rq_jobs_run += output.count("Job OK")
        for job_id, hours, minutes, seconds in RQ_DONE.findall(output):
            took = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
            longest[int(job_id)] = max(took, longest.get(int(job_id), 0.0))
        run.sweep_handouts += sum(int(m) for m in re.findall(r"sweep handed out (\d+) job", output))
        run.log_problems += [f"{worker.name}: {line}" for line in output.splitlines() if LOG_PROBLEMS.search(line)]
    run.service_times = [took for job_id, took in longest.items() if job_id in job_ids]
    return run


def _wait_all_sent(db, ids: list[int], t0: float, timeout: float, workers: list[Worker]) -> float:
    deadline = t0 + timeout
    # A cheap poll (an index range, not an IN list of N ids): this process shares the CPUs with the workers.
    ours = Notification.id.between(min(ids), max(ids)) if max(ids) - min(ids) + 1 == len(ids) \
        else Notification.id.in_(ids)
    query = select(func.count()).select_from(Notification).where(ours, Notification.status == "sent")
    while True:
        db.session.rollback()  # a fresh snapshot each time
        if db.session.scalar(query) == len(ids):
            return time.perf_counter()
        dead = [w.name for w in workers if w.process.poll() is not None]
        if dead:
            raise SystemExit(f"worker(s) exited during the run: {', '.join(dead)}")
        if time.perf_counter() > deadline:
            failed = db.session.scalar(select(func.count()).select_from(Notification).where(
                ours, Notification.status == "failed"))
            raise SystemExit(f"timed out after {timeout:.0f} s: {db.session.scalar(query)} of {len(ids)} sent, "
                             f"{failed} failed")
        time.sleep(0.1)


def _cpu_snapshot(workers: list[Worker]) -> tuple[CpuSnapshot, dict[int, float]]:
    return CpuSnapshot.take([w.process.pid for w in workers]), {p: process_cpu_seconds(p) for p in redis_server_pids()}


def _cpu_spent(before, after) -> dict[str, float]:
    from bench_cpu import cpu_breakdown

    spent = cpu_breakdown(before[0], after[0])
    spent["redis_s"] = sum(v - before[1].get(p, 0.0) for p, v in after[1].items())
    spent["other_s"] = max(0.0, spent["other_s"] - spent["redis_s"])
    return spent


def _tally(values) -> dict:
    out: dict = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: str(kv[0])))


# -- output --------------------------------------------------------------------------------------------

def report(run: Run) -> None:
    ms = lambda values, pct: f"{1000 * percentile(values, pct):.0f}" if values else "-"
    print(f"\n== {run.workers} worker(s) ==")
    print(f"notifications           {run.notifications}")
    print(f"seconds                 {run.seconds:.2f}   (commit → all sent; the commit and hand-out to rq took "
          f"{run.commit_seconds:.2f} s, writing the rows before it {run.write_seconds:.2f} s)")
    print(f"notifications/s         {run.rate:.1f}")
    print(f"created_at → sent_at    p50 {ms(run.created_to_sent, 50)} ms   p95 {ms(run.created_to_sent, 95)} ms   "
          f"max {ms(run.created_to_sent, 100)} ms")
    print(f"commit → sent_at        first {1000 * min(run.commit_to_sent, default=0):.0f} ms   "
          f"p50 {ms(run.commit_to_sent, 50)} ms   p95 {ms(run.commit_to_sent, 95)} ms   "
          f"max {ms(run.commit_to_sent, 100)} ms")
    print(f"one delivery (rq run)   p50 {ms(run.service_times, 50)} ms   p95 {ms(run.service_times, 95)} ms   "
          f"({len(run.service_times)} of the {run.notifications} found in the worker logs)")
    print(f"SMTP                    {'OK' if run.smtp_ok else 'FAIL'}: {run.smtp_messages} messages, "
          f"{run.smtp_distinct} distinct Message-IDs"
          + ("" if run.smtp_expected else ", NOT the expected set of Message-IDs"))
    print(f"deliveries per worker   {run.per_worker}; attempts {run.attempts}"
          + (f"; NOT sent: {run.not_sent}" if run.not_sent else ""))
    print(f"rq jobs run             {run.rq_jobs_run} (incl. the submission's; extra ones are duplicate hand-outs "
          f"the claim turned away), sweep re-handed {run.sweep_handouts}")
    cpu = run.cpu
    if cpu:
        per = 1000 / run.notifications
        print(f"CPU s (ms/notification) workers {cpu['workers_s']:.1f} ({cpu['workers_s'] * per:.2f})  "
              f"postgres {cpu['postgres_s']:.1f} ({cpu['postgres_s'] * per:.2f})  "
              f"redis {cpu['redis_s']:.1f} ({cpu['redis_s'] * per:.2f})  "
              f"this process/SMTP {cpu['client_s']:.1f} ({cpu['client_s'] * per:.2f})  other {cpu['other_s']:.1f};  "
              f"machine busy {cpu['machine_busy_pct']:.0f} %")
    if run.log_problems:
        print(f"worker log WARNING/ERROR lines: {len(run.log_problems)}; first ones:")
        for line in run.log_problems[:10]:
            print(f"  {line[:300]}")
    else:
        print("worker logs             no WARNING/ERROR lines")


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # clean up on kill as on Ctrl-C
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} before the runs")
    runs = []
    with tempfile.TemporaryDirectory(prefix="changeflow-bench-workers-") as scratch:
        logs = Path(scratch)
        if args.keep_logs:
            logs = Path(tempfile.mkdtemp(prefix="changeflow-bench-workers-logs-"))
            print(f"worker logs in {logs}")
        for count in args.workers:
            run = measure(args, count, logs)
            report(run)
            runs.append(run)
    if len(runs) > 1:
        print("\nworkers  notifications  seconds  notifications/s  created→sent p50/p95 ms  SMTP")
        for run in runs:
            print(f"{run.workers:>7}  {run.notifications:>13}  {run.seconds:>7.2f}  {run.rate:>15.1f}  "
                  f"{1000 * percentile(run.created_to_sent, 50):>10.0f} / {1000 * percentile(run.created_to_sent, 95):<9.0f}"
                  f"  {'OK' if run.smtp_ok else 'FAIL'}")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} after the runs")
    return 0 if all(r.smtp_ok and not r.not_sent for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
