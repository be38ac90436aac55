"""Where a request's time goes: the lifecycle walked in-process (WSGI, no sockets) under pyinstrument.

    .venv/bin/pip install pyinstrument
    .venv/bin/python benchmarks/profile_lifecycle.py --changes 50 [--html profile.html] [--sql]
        [--redis-url redis://127.0.0.1:6379/11]

Same database preparation, payloads and walk as lifecycle.py (bench_load.Walker over
httpx.WSGITransport), but no gunicorn and no sockets: what is left is the service's own Python and
its round trips to PostgreSQL. --sql prints the SQL statements per endpoint instead of profiling.
Without --redis-url the jobs (deliveries, conflict checks, timers) run inside the request after its
commit, as in the embedded topology; with it (the Redis database is flushed) one `changeflow worker`
runs them in its own process, and what is profiled is the web worker's share alone.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from bench_db import DEFAULT_URL, prepare
from bench_load import Walker


def make_app(database_url: str, redis_url: str | None = None):
    from engine.config import Settings
    from webui import create_app

    return create_app(Settings.from_env(database_url=database_url, redis_url=redis_url))


def start_job_worker(database_url: str, redis_url: str):
    from bench_server import JobWorker
    from redis import Redis

    Redis.from_url(redis_url).flushdb()
    worker = JobWorker(database_url, redis_url, Path(tempfile.gettempdir()) / "changeflow-profile-worker.log",
                       name=f"profile-{os.getpid()}")
    worker.wait_ready()
    return worker


def count_statements(app, walker: Walker, changes: int) -> None:
    """SQL statements per endpoint call, averaged over the walk."""
    from sqlalchemy import event

    from webui.extensions import db

    current = {"endpoint": None}
    statements: Counter = Counter()
    calls: Counter = Counter()
    original = walker._call

    def counted(endpoint, *args, **kwargs):
        current["endpoint"] = endpoint
        calls[endpoint] += 1
        try:
            return original(endpoint, *args, **kwargs)
        finally:
            current["endpoint"] = None

    def on_execute(*_args):
        if current["endpoint"]:
            statements[current["endpoint"]] += 1

    walker._call = counted
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", on_execute)
    for index in range(1, changes + 1):
        walker.walk(index)
    event.remove(engine, "before_cursor_execute", on_execute)
    for endpoint, n in calls.items():
        print(f"{endpoint:10s} {statements[endpoint] / n:6.1f} statements per call ({n} calls)")


def measure_cpu(walker: Walker, changes: int) -> None:
    """CPU time of this thread per endpoint call: with WSGITransport, the request's own Python.

    This machine's speed swings by 2x within minutes, so after each change the raw SpiffWorkflow
    walk of one change (bench_raw, full state serialized per step) is timed the same way: the
    ratio of the two is what to compare between commits.
    """
    from bench_raw import NoServiceScriptEngine, load_specs, run_change
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG

    specs = load_specs(Path(__file__).resolve().parent.parent / "processes")
    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))
    engine = NoServiceScriptEngine()
    run_change(0, specs, serializer, engine)
    cpu: Counter = Counter()
    calls: Counter = Counter()
    raw_cpu, raw_completions = 0.0, 0
    original = walker._call

    def timed(endpoint, *args, **kwargs):
        started = time.thread_time()
        try:
            return original(endpoint, *args, **kwargs)
        finally:
            cpu[endpoint] += time.thread_time() - started
            calls[endpoint] += 1

    walker._call = timed
    for index in range(1, changes + 1):
        walker.walk(index)
        started = time.thread_time()
        raw_completions += run_change(index, specs, serializer, engine)[0]
        raw_cpu += time.thread_time() - started
    for endpoint, n in calls.items():
        print(f"{endpoint:10s} {cpu[endpoint] / n * 1000:6.1f} ms CPU per call ({n} calls)")
    completions = calls["complete"] or 1
    web = sum(cpu.values()) / completions
    raw = raw_cpu / raw_completions
    print(f"all calls  {web * 1000:6.1f} ms CPU per completion")
    print(f"raw engine {raw * 1000:6.1f} ms CPU per completion, interleaved: web / raw = {web / raw:.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL URL; the database is wiped")
    parser.add_argument("--html", type=Path, default=None, help="also write pyinstrument's HTML report")
    parser.add_argument("--sql", action="store_true", help="count SQL statements per endpoint instead")
    parser.add_argument("--cpu", action="store_true", help="print CPU time per endpoint call instead")
    parser.add_argument("--redis-url", default=None,
                        help="run jobs on a `changeflow worker` over this Redis database (flushed)")
    args = parser.parse_args(argv)

    tokens = prepare(args.database_url)
    worker = start_job_worker(args.database_url, args.redis_url) if args.redis_url else None
    try:
        return profile(args, tokens)
    finally:
        if worker is not None:
            worker.stop()


def profile(args, tokens) -> int:
    app = make_app(args.database_url, args.redis_url)
    walker = Walker("http://changeflow.test", tokens, transport=httpx.WSGITransport(app=app))
    walker.walk(0)  # warm-up: spec cache, compiled expressions, connection pool
    if args.sql:
        count_statements(app, walker, args.changes)
        return 0
    if args.cpu:
        measure_cpu(walker, args.changes)
        return 0
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    for index in range(1, args.changes + 1):
        walker.walk(index)
    profiler.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    if args.html:
        args.html.write_text(profiler.output_html())
    return 0


if __name__ == "__main__":
    sys.exit(main())
