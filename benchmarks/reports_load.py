"""Building the data set of benchmarks/reports.py in a database of its own: schema, processes, demo
users and services, then the generated rows (reports_data.py, reports_changes.py) — COPY on PostgreSQL,
Core executemany on SQLite — and ANALYZE."""
from __future__ import annotations

import json
import random
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import JSON, func, make_url, select, text
from sqlalchemy.orm import Session

from bench_db import PROTECTED_DATABASES, reset_database
from engine import demo
from engine.db import Base, make_engine
from engine.definitions import sync_directories
from engine.migrate import upgrade
from engine.models import Change, ProcessVersion, Service, User
from reports_changes import generate
from reports_data import World

ROOT = Path(__file__).resolve().parent.parent
ORDER = ("users", "services", "service_dependencies", "cab_meetings", "changes", "change_services",
         "process_instances", "tasks", "approvals", "audit_events", "evidence", "follow_up_actions")


def _defaults(table, names) -> dict:
    """Python-side defaults of the columns a row leaves out (COPY knows none of them)."""
    out = {}
    for column in table.columns:
        if column.name in names or column.default is None or column.primary_key:
            continue
        arg = column.default.arg
        out[column.name] = arg(None) if callable(arg) else arg
    return out


def copy_rows(raw, table, rows, names) -> None:
    extra = _defaults(table, names)
    columns = names + list(extra)
    as_json = [i for i, name in enumerate(columns) if isinstance(table.c[name].type, JSON)]
    with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        tail = list(extra.values())
        for row in rows:
            values = [row[name] for name in names] + tail
            for i in as_json:
                values[i] = json.dumps(values[i])
            copy.write_row(values)


CHAIN = ("chain", "seq", "prev_hash", "hash")


def chained(rows):
    """Audit events as links of their hash chains (engine/audit_chain.py): one chain per change, in
    insertion order, as the migration's backfill does it. Lazily, so PostgreSQL parses the COPY on the
    other core while this one hashes."""
    from engine.audit_chain import GENESIS, HASHED, chain_of, event_hash

    heads: dict[str, tuple[int, str]] = {}
    for row in rows:
        chain = chain_of(row["change_id"])
        seq, prev = heads.get(chain, (0, GENESIS))
        row.update(chain=chain, seq=seq + 1, prev_hash=prev)
        row["hash"] = event_hash(**{name: row[name] for name in HASHED})
        heads[chain] = (seq + 1, row["hash"])
        yield row


def load(engine, rows: dict[str, list[dict]]) -> dict[str, float]:
    postgres, seconds = engine.dialect.name == "postgresql", {}
    with engine.begin() as conn:
        for name in ORDER:
            if not rows.get(name):
                continue
            began, table, items, names = time.perf_counter(), Base.metadata.tables[name], rows[name], list(rows[name][0])
            if name == "audit_events" and "hash" in table.c:
                items, names = chained(items), names + list(CHAIN)
            if postgres:
                copy_rows(conn.connection.driver_connection, table, items, names)
            else:
                batch = []
                for row in items:
                    batch.append(row)
                    if len(batch) == 5000:
                        conn.execute(table.insert(), batch)
                        batch = []
                if batch:
                    conn.execute(table.insert(), batch)
            seconds[name] = time.perf_counter() - began
        if postgres:
            for name in ("users", "services", "cab_meetings", "changes", "process_instances"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))"))
    began = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    seconds["ANALYZE"] = time.perf_counter() - began
    return seconds


def seeded_world(engine, args) -> tuple[World, dict[str, int], dict[str, int]]:
    """Processes deployed and demo data seeded; the World the generators fill, the latest version id
    per process key, and username -> user id."""
    with Session(engine) as session:
        sync_directories(session, ROOT / "processes", ROOT / "forms")
        demo.seed(session)
        session.commit()
        users = dict(session.execute(select(User.username, User.id)).all())
        services = dict(session.execute(select(Service.key, Service.id)).all())
        versions = dict(session.execute(select(ProcessVersion.process_key, func.max(ProcessVersion.id))
                                        .group_by(ProcessVersion.process_key)).all())
    world = World(random.Random(args.seed), datetime.now(timezone.utc), users, services,
                  max(users.values()) + 1, max(services.values()) + 1, args.services)
    return world, versions, users


def build(engine, args) -> None:
    began = time.perf_counter()
    world, versions, _users = seeded_world(engine, args)
    rows = generate(world, args.changes, versions)
    made = time.perf_counter()
    seconds = load(engine, rows)
    print(f"data set: generated in {made - began:.1f} s, loaded and analyzed in {time.perf_counter() - made:.1f} s: "
          + ", ".join(f"{name} {len(rows[name]):,}" for name in ORDER if rows.get(name)))
    print("  load seconds: " + ", ".join(f"{name} {s:.1f}" for name, s in sorted(seconds.items(), key=lambda i: -i[1])[:5]))


def prepare(url: str, args):
    sqlite = url.startswith("sqlite")
    if not sqlite and make_url(url).database in PROTECTED_DATABASES:
        raise SystemExit("refusing to use that database; give the benchmark one of its own")
    engine = make_engine(url)
    if args.reuse and has_data(engine, args):
        upgrade(url)
        print(f"reusing the data set in {url}")
        return engine
    engine.dispose()
    if sqlite:
        for suffix in ("", "-wal", "-shm"):
            Path(make_url(url).database + suffix).unlink(missing_ok=True)
    else:
        reset_database(url)
    upgrade(url)
    engine = make_engine(url)
    build(engine, args)
    return engine


def has_data(engine, args) -> bool:
    try:
        with Session(engine) as session:
            return (session.scalar(select(func.count(Change.id))) == args.changes
                    and session.scalar(select(func.count(Service.id))) == args.services + len(demo.DEMO_SERVICES))
    except Exception:  # no schema yet
        return False
