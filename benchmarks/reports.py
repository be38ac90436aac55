"""Reports at 100,000 changes: every report kind for a quarter, with and without a service filter.

    .venv/bin/python benchmarks/reports.py [--database-url URL] [--changes 100000] [--services 2000]
                     [--repeat 10] [--kinds leadership,...] [--explain 3] [--reuse] [--set jit=off]
                     [--sqlite [--sqlite-path PATH]] [--seed 7]

Builds (or with --reuse keeps) two years of changes in a PostgreSQL database of its own (default
`changeflow_reports`, never `test`): migrations, processes deployed, demo users and services, 2,000
more services with dependencies, then the changes with their audit events, tasks, approvals, evidence
and follow-ups (reports_data.py, reports_changes.py), loaded with COPY, then ANALYZE (reports_load.py). Times
`build_report` for every kind in engine/reports KINDS over the last full quarter (p50/p95/max, SQL
statements), `changes_behind` for the first numbers of each report, and EXPLAIN (ANALYZE, BUFFERS)s
the slowest statements. --sqlite builds the same data in a SQLite file and times it there too.
See docs/performance.md ("Reports at 100,000 changes").
"""
from __future__ import annotations

import argparse
import os
import re
import time
from datetime import datetime, timezone

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from bench_load import percentile
from engine import demo
from engine.models import Change, User
from engine.permissions import can
from engine.reports import KINDS, build_report, changes_behind
from engine.reports.scope import quarter_scope
from reports_load import prepare

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/changeflow_reports"
DEFAULT_SQLITE = "/tmp/changeflow_reports_bench.sqlite3"
SERVICE_FILTER = "crm-web"  # the busiest demo service: ~4.5 % of all changes touch it
TARGET_S = 1.0              # quarterly report < 1 s (the performance issue)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL URL; wiped unless --reuse")
    parser.add_argument("--changes", type=int, default=100_000)
    parser.add_argument("--services", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=10, help="timed builds per kind and filter")
    parser.add_argument("--kinds", default="", help="comma-separated kinds (default: all in KINDS)")
    parser.add_argument("--explain", type=int, default=3, help="EXPLAIN ANALYZE the N slowest statements per kind")
    parser.add_argument("--reuse", action="store_true", help="keep the data set when it has the right size")
    parser.add_argument("--sqlite", action="store_true", help="also build and time the same data on SQLite")
    parser.add_argument("--sqlite-path", default=DEFAULT_SQLITE)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a PostgreSQL setting for every connection of the timed calls, e.g. jit=off")
    return parser.parse_args(argv)


# -- measuring ----------------------------------------------------------------------------------------

class StatementLog:
    """Every statement of a call with its parameters and time inside cursor.execute (database + network)."""

    def __init__(self, engine):
        self.captured: list[list] = []
        event.listen(engine, "before_cursor_execute", self.before)
        event.listen(engine, "after_cursor_execute", self.after)

    def before(self, conn, cursor, statement, parameters, context, executemany):
        self.captured.append([statement, parameters, time.perf_counter()])

    def after(self, conn, cursor, statement, parameters, context, executemany):
        self.captured[-1][2] = time.perf_counter() - self.captured[-1][2]


def timed(engine, log, repeat: int, call):
    """ms per call (each in a fresh session, after one warm-up), statements per call, the last call's log."""
    with Session(engine) as session:
        result = call(session)
    times, counts = [], []
    for _ in range(repeat):
        log.captured.clear()
        began = time.perf_counter()
        with Session(engine) as session:
            result = call(session)
        times.append((time.perf_counter() - began) * 1000)
        counts.append(len(log.captured))
    return times, counts, list(log.captured), result


def spread(times) -> str:
    return f"p50 {percentile(times, 50):8.1f}  p95 {percentile(times, 95):8.1f}  max {max(times):8.1f}"


def drills(report, limit: int = 2) -> list[dict]:
    """The first distinct numbers a reader can click: figures first, then table cells."""
    found = [f.drill for f in report.figures if f.drill]
    found += [d for table in report.tables for row in table.rows for d in (row.get("drill") or {}).values() if d]
    unique = []
    for drill in found:
        if drill not in unique:
            unique.append(drill)
    return unique[:limit]


def reader(engine, kind):
    with Session(engine) as session:
        for user in session.scalars(select(User).where(User.username.in_([u for u, *_ in demo.DEMO_USERS]))):
            if can(user, KINDS[kind][1]):
                session.expunge(user)
                return user
    raise SystemExit(f"no demo user may read the {kind} report")


def compact(statement: str) -> str:
    flat = re.sub(r"\s+", " ", statement)
    return flat if len(flat) < 600 else flat[:400] + " … " + flat[-180:]


def explain(engine, kind, captured, count: int) -> None:
    slowest = sorted(captured, key=lambda c: -c[2])[:count]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters, seconds in slowest:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            print(f"\n-- {kind}: {seconds * 1000:.1f} ms in the timed build\n{compact(statement)}\n{plan}")
        raw.rollback()
    finally:
        raw.close()


def apply_settings(engine, settings: list[str]) -> None:
    """SET on every new connection: how a deployment would try a setting (ALTER DATABASE … SET)."""
    pairs = [item.split("=", 1) for item in settings]

    @event.listens_for(engine, "connect")
    def _set(dbapi_connection, record):
        with dbapi_connection.cursor() as cursor:
            for name, value in pairs:
                cursor.execute(f"SET {name} = {value}")
        dbapi_connection.commit()


def measure(engine, args, kinds, label: str) -> list[tuple]:
    log = StatementLog(engine)
    with Session(engine) as session:
        newest = session.scalar(select(func.max(Change.created_at)))
    newest = newest if isinstance(newest, datetime) else datetime.fromisoformat(str(newest))
    index = newest.year * 4 + (newest.month - 1) // 3 - 1  # the last full quarter of the data
    now = datetime.now(timezone.utc)
    results = []
    print(f"\n[{label}] {args.changes:,} changes; quarter {index // 4}-Q{index % 4 + 1}; {args.repeat} builds each; "
          f"ms = wall time per call; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for kind in kinds:
        for service in (None, SERVICE_FILTER):
            scope = quarter_scope(index // 4, index % 4 + 1, service)
            times, counts, captured, report = timed(engine, log, args.repeat, lambda s: build_report(
                s, None, kind, scope, now=now, check_permission=False))
            sql_ms = sum(c[2] for c in captured) * 1000
            name = f"{kind}{' service=' + service if service else ''}"
            print(f"{name:<34} {spread(times)}  statements {counts[-1]:3d}  SQL {sql_ms:7.1f} ms")
            results.append((label, name, percentile(times, 50), percentile(times, 95), counts[-1]))
            if service is None:
                slow_build, whole, whole_scope = captured, report, scope
        user = reader(engine, kind)
        for drill in drills(whole):
            behind_ms, _c, _l, (rows, total) = timed(engine, log, args.repeat, lambda s: changes_behind(
                s, user, kind, whole_scope, drill["metric"], drill.get("group")))
            name = f"  changes_behind {drill['metric']}{':' + drill['group'] if drill.get('group') else ''}"
            print(f"{name:<34} {spread(behind_ms)}  ({total:,} changes, {len(rows)} listed)")
            results.append((label, name.strip(), percentile(behind_ms, 50), percentile(behind_ms, 95), None))
        if args.explain and engine.dialect.name == "postgresql":
            explain(engine, kind, slow_build, args.explain)
    return results


def main(argv=None) -> None:
    args = parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] or list(KINDS)
    results = []
    targets = [(args.database_url, "PostgreSQL")] + ([(f"sqlite:///{args.sqlite_path}", "SQLite")] if args.sqlite else [])
    for url, label in targets:
        engine = prepare(url, args)
        if args.set and label == "PostgreSQL":
            engine.dispose()  # the timed calls connect afresh, with the settings
            apply_settings(engine, args.set)
            label += " " + " ".join(args.set)
        results += measure(engine, args, kinds, label)
        engine.dispose()
    print("\n| backend | call | p50 ms | p95 ms | statements | < 1 s |\n|---|---|---|---|---|---|")
    for label, name, p50, p95, count in results:
        verdict = ("met" if p95 < TARGET_S * 1000 else "MISSED") if count is not None else ""
        print(f"| {label} | {name} | {p50:.1f} | {p95:.1f} | {count if count is not None else ''} | {verdict} |")


if __name__ == "__main__":
    main()
