"""Conflict check and scheduling assistant at scale: detect(), suggest() and the service-map CTEs.

    .venv/bin/python benchmarks/schedule_at_scale.py [--database-url URL] [--changes 50000]
                     [--services 2000] [--repeat 200] [--reuse]

Builds (or with --reuse keeps) a large schedule in its own PostgreSQL database (default
`changeflow_scale`, never `test`): services in groups of 50 with a dependency graph, 200 implementers,
N scheduled changes over the next 12 months and ~100 maintenance/blackout windows. Then times the
engine calls with random inputs, counts their SQL statements and EXPLAINs the overlap queries.
See docs/performance.md ("Conflict check and scheduling assistant at scale").
"""
from __future__ import annotations

import argparse
import os
import random
import re
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from sqlalchemy import event, func, inspect, make_url, select, text
from sqlalchemy.orm import Session

from bench_db import PROTECTED_DATABASES, reset_database
from bench_load import percentile
from engine.conflicts import Proposal, detect
from engine.db import make_engine
from engine.migrate import upgrade
from engine.models import Change, Service, ServiceDependency, User, Window, change_services, window_services
from engine.scheduling import suggest
from engine.service_map import impacted_services, related_service_ids

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/changeflow_scale"
GROUP = 50                 # services per group (a domain: its own platform, apps, weekly window)
IMPLEMENTERS, REQUESTERS, OWNERS = 200, 50, 40
BATCH = 5000               # rows per executemany
DETECT_P95_TARGET_MS = 20.0
ZONES = ("Europe/Berlin", "America/New_York", "UTC", "Asia/Singapore")
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL URL; wiped unless --reuse")
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--services", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=200, help="timed calls per measurement")
    parser.add_argument("--reuse", action="store_true", help="keep the data set when it has the right size")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


# -- the data set -------------------------------------------------------------------------------------

def insert(conn, table, rows) -> None:
    """Core insert() executemany (psycopg 3 pipelines it): ~8x faster here than insert().values(batch)."""
    for i in range(0, len(rows), BATCH):
        conn.execute(table.insert(), rows[i:i + BATCH])


def make_users() -> list[dict]:
    people = [("admin", ["admin"]), ("manager", ["change_manager"])] + [
        (f"{prefix}{i:03d}", [role]) for prefix, role, n in (("owner", "service_owner", OWNERS),
        ("requester", "requester", REQUESTERS), ("impl", "implementer", IMPLEMENTERS)) for i in range(n)]
    return [{"id": n, "username": name, "display_name": name, "roles": roles, "email": f"{name}@scale.invalid"}
            for n, (name, roles) in enumerate(people, start=1)]


def make_services(rng, count: int) -> list[dict]:
    """Group 0 is the shared platform (network, identity, storage…): critical, depended on by all."""
    rows = []
    for sid in range(1, count + 1):
        group, k = divmod(sid - 1, GROUP)
        crit = rng.choice((1, 2)) if group == 0 else rng.choices((1, 2, 3, 4), (10, 25, 40, 25))[0]
        rows.append({"id": sid, "key": f"g{group:02d}-svc{k:02d}", "name": f"Group {group} service {k}",
                     "criticality": crit, "owner_id": 3 + rng.randrange(OWNERS),
                     "requires_maintenance_window": rng.random() < (0.5 if group == 0 else 0.09)})
    return rows


def make_dependencies(rng, count: int) -> list[dict]:
    """~3 per service on lower ids (own group, shared platform, rarely another group): acyclic but for
    a few back edges inside groups, which close cycles."""
    pairs = set()
    for sid in range(2, count + 1):
        group, k = divmod(sid - 1, GROUP)
        for _ in range(rng.choice((1, 2, 3, 3, 4, 5))):
            roll = rng.random()
            if k > 0 and (roll < 0.75 or group == 0):
                target = group * GROUP + 1 + rng.randrange(k)
            elif roll < 0.95 or group == 1:
                target = 1 + rng.randrange(min(GROUP, sid - 1))
            else:
                target = 1 + GROUP + rng.randrange((group - 1) * GROUP)
            pairs.add((sid, target))
    for _ in range(max(1, count // 200)):
        group = rng.randrange(1, max(2, count // GROUP))
        low, high = sorted(rng.sample(range(GROUP), 2))
        pairs.add((group * GROUP + 1 + low, group * GROUP + 1 + high))
    return [{"service_id": a, "depends_on_id": b, "kind": rng.choice(("calls", "calls", "runs_on", "feeds_data_to"))}
            for a, b in sorted(pairs) if a != b]


def pick_services(rng, service_count: int, how_many: int) -> list[int]:
    """Mostly from one group, as real changes are."""
    first = 1 + rng.randrange(service_count)
    base = (first - 1) // GROUP * GROUP
    picked = {first}
    while len(picked) < how_many:
        picked.add(base + 1 + rng.randrange(min(GROUP, service_count - base)) if rng.random() < 0.8
                   else 1 + rng.randrange(service_count))
    return sorted(picked)


def make_changes(rng, count: int, service_count: int, anchor: datetime):
    changes, links, first_impl = [], [], 3 + OWNERS + REQUESTERS
    for cid in range(1, count + 1):
        start = anchor + timedelta(minutes=30 * rng.randrange(365 * 48))
        changes.append({
            "id": cid, "number": f"CHG{cid:07d}", "title": f"Scale change {cid}",
            "change_type": rng.choices(("normal", "standard"), (80, 20))[0], "category": "software",
            "state": rng.choices(("scheduled", "implement"), (85, 15))[0], "risk": rng.choice(("low", "moderate")),
            "priority": 3, "impact": rng.randint(1, 3), "urgency": rng.randint(1, 3), "approval_round": 1,
            "planned_start": start, "planned_end": start + timedelta(hours=rng.randint(1, 8)),
            "requester_id": 3 + OWNERS + rng.randrange(REQUESTERS),
            "implementer_id": first_impl + rng.randrange(IMPLEMENTERS)})
        links += [{"change_id": cid, "service_id": s} for s in pick_services(rng, service_count, rng.randint(1, 3))]
    return changes, links


def window(wid, kind, name, hours, services=(), *, start=None, rule=None, zone="UTC"):
    """A one-off window at `start` (aware), or a recurring one starting at the rule's first
    occurrence at or after `start` (naive wall-clock time in `zone`)."""
    if rule:
        tz, first = ZoneInfo(zone), rrulestr(rule, dtstart=start)[0]
        start = first.replace(tzinfo=tz).astimezone(timezone.utc)
        end = (first + timedelta(hours=hours)).replace(tzinfo=tz).astimezone(timezone.utc)
    else:
        end = start + timedelta(hours=hours)
    return (dict(id=wid, kind=kind, name=name, rrule=rule, timezone=zone, starts_at=start, ends_at=end,
                 until=None if rule else end, created_by_id=1), list(services))


def make_windows(rng, service_count: int, anchor: datetime):
    """Weekly maintenance per group and a global one; blackouts: the year-end freeze and a launch
    (global), a monthly finance close (last 3 business days) and one-off events on a few services."""
    wall = anchor.replace(tzinfo=None)
    groups = [range(g * GROUP + 1, min(service_count, (g + 1) * GROUP) + 1) for g in range(-(-service_count // GROUP))]
    found = [window(g + 1, "maintenance", f"Group {g} weekly", 4, members, rule=f"FREQ=WEEKLY;BYDAY={WEEKDAYS[g % 7]}",
                    start=wall.replace(hour=22 if g % 2 else 1), zone=ZONES[g % len(ZONES)])
             for g, members in enumerate(groups)]
    found += [window(len(found) + 1, "maintenance", "Global Sunday", 4, rule="FREQ=WEEKLY;BYDAY=SU",
                     start=wall.replace(hour=2)),
              window(len(found) + 2, "blackout", "Finance close", 24, list(groups[min(1, len(groups) - 1)])[:20],
                     rule="FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-3,-2,-1", start=wall, zone="Europe/Berlin"),
              window(len(found) + 3, "blackout", "Year-end freeze", 24 * 14,
                     start=datetime(anchor.year + ((anchor.month, anchor.day) > (12, 20)), 12, 20, tzinfo=timezone.utc)),
              window(len(found) + 4, "blackout", "Product launch", 72, start=anchor + timedelta(days=100))]
    while len(found) < 100:
        found.append(window(len(found) + 1, "blackout", f"Event {len(found)}", rng.choice((12, 24, 48)),
                            pick_services(rng, service_count, rng.randint(1, 3)),
                            start=anchor + timedelta(hours=rng.randrange(365 * 24))))
    return [w for w, _s in found], [{"window_id": w["id"], "service_id": s} for w, services in found for s in services]


def has_data(engine, args) -> bool:
    with engine.connect() as conn:
        return inspect(conn).has_table("changes") and (args.changes, args.services) == tuple(
            conn.scalar(select(func.count()).select_from(model)) for model in (Change, Service))


def generate(engine, args) -> None:
    rng = random.Random(args.seed)
    anchor = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    changes, change_links = make_changes(rng, args.changes, args.services, anchor)
    windows, window_links = make_windows(rng, args.services, anchor)
    with engine.begin() as conn:
        insert(conn, User.__table__, make_users())
        insert(conn, Service.__table__, make_services(rng, args.services))
        insert(conn, ServiceDependency.__table__, make_dependencies(rng, args.services))
        insert(conn, Change.__table__, changes)
        insert(conn, change_services, change_links)
        insert(conn, Window.__table__, windows)
        insert(conn, window_services, window_links)
        for table in ("users", "services", "changes", "windows"):
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


def prepare(args):
    if make_url(args.database_url).database in PROTECTED_DATABASES:
        raise SystemExit("refusing to use that database; give the benchmark one of its own")
    engine = make_engine(args.database_url)
    if args.reuse and has_data(engine, args):
        upgrade(args.database_url)  # the data set survives schema changes made since it was built
        print("reusing the existing data set")
        return engine
    engine.dispose()
    reset_database(args.database_url)
    upgrade(args.database_url)
    engine = make_engine(args.database_url)
    began = time.perf_counter()
    generate(engine, args)
    print(f"data set built in {time.perf_counter() - began:.1f} s")
    return engine


# -- measuring ----------------------------------------------------------------------------------------

KINDS = (("service map CTE", r"RECURSIVE"), ("windows", r"\bwindows?\b|window_services"),
         ("overlap by service", r"JOIN change_services"), ("busy (suggest)", r"IN \(SELECT change_services"),
         ("implementer overlap", r"implementer_id = "), ("users", r"FROM users"), ("services", r"FROM services"))


class StatementLog:
    """Captures, counts and times SQL statements by kind (cursor execute: database + network)."""

    def __init__(self, engine):
        self.seconds, self.captured, self._t0 = defaultdict(float), [], 0.0
        event.listen(engine, "before_cursor_execute", self.before)
        event.listen(engine, "after_cursor_execute", self.after)

    def before(self, conn, cursor, statement, parameters, context, executemany):
        kind = next((name for name, pattern in KINDS if re.search(pattern, statement)), "other")
        self.captured.append((kind, statement, parameters))
        self._t0 = time.perf_counter()

    def after(self, conn, cursor, statement, parameters, context, executemany):
        self.seconds[self.captured[-1][0]] += time.perf_counter() - self._t0


def measure(engine, log, name, inputs, call) -> list[float]:
    """Time `call(session, item)` once per input, each in a fresh session (as a request would)."""
    for item in inputs[:10]:  # warm-up: compiled-statement cache, connection pool, parsed rrules
        with Session(engine) as session:
            call(session, item)
    times, counts, sizes = [], [], []
    log.seconds.clear()
    for item in inputs:
        log.captured.clear()
        began = time.perf_counter()
        with Session(engine) as session:
            result = call(session, item)
        times.append((time.perf_counter() - began) * 1000)
        counts.append(len(log.captured))
        sizes.append(len(result))
    sql_ms = sorted(((s * 1000 / len(inputs), kind) for kind, s in log.seconds.items()), reverse=True)
    spread = " ".join(f"p{p} {percentile(times, p):7.2f}" for p in (50, 95, 99))
    print(f"{name:<22} ms: {spread} max {max(times):7.2f}  mean {sum(times) / len(times):7.2f}")
    print(f"{'':<22} statements/call min {min(counts)} p50 {percentile(counts, 50)} max {max(counts)};"
          f" result size min {min(sizes)} p50 {percentile(sizes, 50)} max {max(sizes)}")
    print(f"{'':<22} SQL ms/call: {sum(ms for ms, _k in sql_ms):.2f} = " + ", ".join(f"{k} {ms:.2f}" for ms, k in sql_ms))
    return times


def random_inputs(rng, engine, args):
    """Proposals for detect() (1-3 services, 2 h, an implementer) and searches for suggest()."""
    with Session(engine) as session:
        first, last = session.execute(select(func.min(Change.planned_start), func.max(Change.planned_end))).one()
        keys = dict(session.execute(select(Service.id, Service.key)).all())
        implementers = session.scalars(select(User.id).where(User.username.like("impl%"))).all()
    half_hours = int((last - first - timedelta(hours=2)) / timedelta(minutes=30))
    proposals, searches = [], []
    for _ in range(args.repeat):
        start = first + timedelta(minutes=30 * rng.randrange(half_hours))
        proposals.append(Proposal(start, start + timedelta(hours=2), tuple(pick_services(rng, args.services, rng.randint(1, 3))),
                                  implementer_id=rng.choice(implementers)))
        after = first + timedelta(minutes=30 * rng.randrange(270 * 48))  # the 90-day horizon stays in the data
        searches.append(([keys[s] for s in pick_services(rng, args.services, rng.randint(1, 2))], after,
                         rng.choice(implementers)))
    return proposals, searches


def compact(statement: str) -> str:
    flat = re.sub(r"^SELECT .*? FROM", "SELECT … FROM", re.sub(r"\s+", " ", statement))
    return re.sub(r"IN \((%\(\w+\)s::\w+(, )?)+\)", lambda m: f"IN (<{m.group(0).count('%')} values>)", flat)


def explain(engine, log, proposal) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) what detect() ran for `proposal`, as sent (statement and parameters)."""
    log.captured.clear()
    with Session(engine) as session:
        detect(session, proposal)
    overlaps = [c for c in log.captured if c[0] == "overlap by service"]
    picked = {"same-service overlap": overlaps[0], "dependency overlap": overlaps[1] if len(overlaps) > 1 else None,
              "related_service_ids CTE": next((c for c in log.captured if c[0] == "service map CTE"), None),
              "implementer overlap": next((c for c in log.captured if c[0] == "implementer overlap"), None)}
    print(f"\nEXPLAIN for the proposal {proposal.start:%Y-%m-%d %H:%M}+2h, services {proposal.service_ids}")
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for title, captured in picked.items():
            if captured is not None:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + captured[1], captured[2])
                print(f"\n-- {title}\n{compact(captured[1])}\n" + "\n".join(row[0] for row in cursor.fetchall()))
        raw.rollback()
    finally:
        raw.close()


def main(argv=None) -> None:
    args = parse_args(argv)
    engine = prepare(args)
    log = StatementLog(engine)
    proposals, searches = random_inputs(random.Random(args.seed + 1), engine, args)
    print(f"\n{args.changes} changes, {args.services} services, {args.repeat} calls each; ms = wall time per call; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    measure(engine, log, "baseline SELECT 1", proposals, lambda s, p: s.execute(select(1)).all())
    detect_ms = measure(engine, log, "detect()", proposals, detect)
    measure(engine, log, "suggest() PT2H x5", searches, lambda s, q: suggest(
        s, service_keys=q[0], duration=timedelta(hours=2), after=q[1], implementer_id=q[2], count=5))
    measure(engine, log, "impacted_services()", proposals, lambda s, p: impacted_services(s, p.service_ids))
    measure(engine, log, "related_service_ids()", proposals, lambda s, p: related_service_ids(s, p.service_ids))
    p95 = percentile(detect_ms, 95)
    print(f"\ntarget (performance issue): conflict check p95 < {DETECT_P95_TARGET_MS:.0f} ms: measured {p95:.1f} ms, "
          f"{'met' if p95 < DETECT_P95_TARGET_MS else 'MISSED'}; suggest(): no target, reported above")
    explain(engine, log, proposals[0])
    engine.dispose()


if __name__ == "__main__":
    main()
