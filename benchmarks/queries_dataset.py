"""The data set of benchmarks/queries_at_scale.py in its own database: built once (generate, COPY,
VACUUM ANALYZE), found again with --reuse, and counted for the report."""
from __future__ import annotations

import time

from sqlalchemy import func, make_url, select, text
from sqlalchemy.orm import Session

from bench_db import PROTECTED_DATABASES, reset_database
from engine import demo
from engine.db import Base, make_engine
from engine.migrate import upgrade
from engine.models import Change, Service, Task
from reports_load import CHAIN, ORDER, chained, copy_rows, seeded_world

TABLES = ORDER + ("windows", "window_services", "service_members")



def load(engine, rows: dict[str, list[dict]]) -> dict[str, float]:
    """COPY every table in one transaction (reports_load's row writer and audit chain), then ANALYZE."""
    seconds = {}
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        for name in TABLES:
            if not rows.get(name):
                continue
            began, table, items, names = time.perf_counter(), Base.metadata.tables[name], rows[name], list(rows[name][0])
            if name == "audit_events":
                items, names = chained(items), names + list(CHAIN)
            copy_rows(raw, table, items, names)
            seconds[name] = time.perf_counter() - began
        for name in ("users", "services", "cab_meetings", "changes", "process_instances", "windows"):
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))"))
    began = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))  # COPY leaves the visibility map empty: index-only scans need it
    seconds["VACUUM ANALYZE"] = time.perf_counter() - began
    return seconds


def build(engine, args) -> None:
    from queries_data import generate

    began = time.perf_counter()
    world, versions, users = seeded_world(engine, args)
    rows = generate(world, args.changes, args.scheduled, versions, args.tasks, users["morgan"])
    made = time.perf_counter()
    seconds = load(engine, rows)
    print(f"data set: generated in {made - began:.1f} s, loaded and analyzed in {time.perf_counter() - made:.1f} s: "
          + ", ".join(f"{name} {len(rows[name]):,}" for name in TABLES if rows.get(name)), flush=True)
    print("  load seconds: " + ", ".join(f"{name} {s:.1f}" for name, s in sorted(seconds.items(), key=lambda i: -i[1])[:6]))


def has_data(engine, args) -> bool:
    try:
        with Session(engine) as session:
            return (session.scalar(select(func.count(Service.id))) == args.services + len(demo.DEMO_SERVICES)
                    and session.scalar(select(func.count(Change.id))) >= args.changes + args.scheduled
                    and session.scalar(select(func.count()).select_from(Task)) >= args.tasks
                    and session.scalar(select(func.count(Change.id)).where(Change.state == "scheduled")) >= args.scheduled)
    except Exception:  # no schema yet
        return False


def prepare(args):
    if make_url(args.database_url).database in PROTECTED_DATABASES:
        raise SystemExit("refusing to use that database; give the benchmark one of its own")
    engine = make_engine(args.database_url)
    if args.reuse and has_data(engine, args):
        upgrade(args.database_url)  # the data set survives migrations added since it was built
        print(f"reusing the data set in {args.database_url}")
        return engine
    engine.dispose()
    reset_database(args.database_url)
    upgrade(args.database_url)
    engine = make_engine(args.database_url)
    build(engine, args)
    return engine


def data_counts(engine) -> dict[str, int]:
    queries = {
        "changes": "SELECT count(*) FROM changes",
        "changes scheduled": "SELECT count(*) FROM changes WHERE state = 'scheduled'",
        "changes scheduled ahead": "SELECT count(*) FROM changes WHERE state = 'scheduled' AND planned_start > now()",
        "changes open": "SELECT count(*) FROM changes WHERE state NOT IN ('closed', 'canceled')",
        "tasks": "SELECT count(*) FROM tasks",
        "tasks ready": "SELECT count(*) FROM tasks WHERE status = 'ready'",
        "audit_events": "SELECT count(*) FROM audit_events",
        "approvals": "SELECT count(*) FROM approvals",
        "change_services": "SELECT count(*) FROM change_services",
        "services": "SELECT count(*) FROM services",
        "service_dependencies": "SELECT count(*) FROM service_dependencies",
        "windows": "SELECT count(*) FROM windows",
        "users": "SELECT count(*) FROM users",
        "service_members": "SELECT count(*) FROM service_members",
    }
    with engine.connect() as conn:
        counts = {name: conn.scalar(text(sql)) for name, sql in queries.items()}
        counts["database MB"] = conn.scalar(text("SELECT pg_database_size(current_database())")) // (1024 * 1024)
    return counts
