"""Where a request's time goes: the lifecycle walked in-process (WSGI, no sockets) under pyinstrument.

    .venv/bin/pip install pyinstrument
    .venv/bin/python benchmarks/profile_lifecycle.py --changes 50 [--html profile.html] [--sql]

Same database preparation, payloads and walk as lifecycle.py (bench_load.Walker over
httpx.WSGITransport), but no gunicorn and no sockets: what is left is the service's own Python and
its round trips to PostgreSQL. --sql prints the SQL statements per endpoint instead of profiling.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import httpx
from bench_db import DEFAULT_URL, prepare
from bench_load import Walker


def make_app(database_url: str):
    from engine.config import Settings
    from webui import create_app

    return create_app(Settings.from_env(database_url=database_url, redis_url=None))


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL URL; the database is wiped")
    parser.add_argument("--html", type=Path, default=None, help="also write pyinstrument's HTML report")
    parser.add_argument("--sql", action="store_true", help="count SQL statements per endpoint instead")
    args = parser.parse_args(argv)

    tokens = prepare(args.database_url)
    app = make_app(args.database_url)
    walker = Walker("http://changeflow.test", tokens, transport=httpx.WSGITransport(app=app))
    walker.walk(0)  # warm-up: spec cache, compiled expressions, connection pool
    if args.sql:
        count_statements(app, walker, args.changes)
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
