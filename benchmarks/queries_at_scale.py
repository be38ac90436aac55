"""Queries at scale: the read endpoints people hit all day, through the HTTP API, at 100,000 changes.

    .venv/bin/python benchmarks/queries_at_scale.py [--reuse] [--repeat 50] [--report-repeat 10]
                     [--json out.json] [--database-url URL] [--only inbox,calendar] [--explain/--no-explain]
                     [--profile NAME] [--seed 7]

Builds (or with --reuse keeps) a PostgreSQL database of its own (default `changeflow_queries`, never
`test`): the reports benchmark's two years of 100,000 changes as the processes leave them
(reports_data.py, reports_changes.py), 50,000 more changes scheduled in the next 12 months, task history
padded to 1,000,000 rows, 2,000 services with dependencies, ~100 windows, service members
(queries_data.py, loaded by queries_dataset.py) with COPY, then ANALYZE. Then drives the Flask app in-process over
httpx.WSGITransport with real bearer tokens of real users and times the inbox, the change list with
its filters, the dashboard, the conflict check, a calendar month and a quarterly report: p50/p95/p99,
SQL statements per call, target met or not, and EXPLAIN (ANALYZE, BUFFERS) of each endpoint's
slowest statement. See docs/perf-drafts/queries-at-scale.md.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bench_load import percentile
from engine.models import ApiToken, Change, Service, User
from queries_dataset import data_counts, prepare
from reports import StatementLog
from schedule_at_scale import pick_services

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/changeflow_queries"
TOKEN_NAME = "queries-at-scale"
BASE = "http://changeflow.test"
SERVICE_FILTER = "crm-web"  # the busiest demo service (~4.5 % of the history)
PER_PAGE = 50
WARMUP = 3


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL URL; wiped unless --reuse")
    parser.add_argument("--reuse", action="store_true", help="keep the data set when it is there")
    parser.add_argument("--changes", type=int, default=100_000, help="history: the reports benchmark's changes")
    parser.add_argument("--scheduled", type=int, default=50_000, help="more changes, scheduled in the next 12 months")
    parser.add_argument("--tasks", type=int, default=1_000_000, help="task rows at least")
    parser.add_argument("--services", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=50, help="timed calls per endpoint")
    parser.add_argument("--report-repeat", type=int, default=10, help="timed calls of the quarterly report")
    parser.add_argument("--only", default="", help="comma-separated substrings of measurement names")
    parser.add_argument("--explain", action=argparse.BooleanOptionalAction, default=True,
                        help="EXPLAIN (ANALYZE, BUFFERS) the slowest statement of each measurement")
    parser.add_argument("--profile", default="", help="pyinstrument the calls of the measurement with this name")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() once the app is built: full collections then skip its objects")
    parser.add_argument("--statements", action="store_true", help="print the statements of each median call")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


# -- who calls ----------------------------------------------------------------------------------------

def people(engine) -> dict[str, User]:
    """The busiest change manager, service owner and CAB member (by inbox size), and a requester."""
    from engine.inbox import inbox_count

    found = {}
    with Session(engine) as session:
        users = session.scalars(select(User).where(User.active.is_(True))).all()
        for role in ("change_manager", "service_owner", "cab_member"):
            holders = [u for u in users if role in u.roles and len(u.roles) == 1]
            found[role] = max(holders, key=lambda u: (inbox_count(session, u), u.username))
        found["requester"] = session.scalar(select(User).where(User.username == "requester000"))
        found["implementers"] = [u.username for u in users if u.roles == ["implementer"]]
        session.expunge_all()
    return found


def issue_tokens(engine, users: list[User]) -> dict[str, str]:
    """A fresh bearer token per user (earlier runs' tokens of this benchmark removed)."""
    from engine.accounts import issue_token

    tokens = {}
    with Session(engine) as session:
        session.execute(delete(ApiToken).where(ApiToken.name == TOKEN_NAME))
        for user in users:
            tokens[user.username] = issue_token(session, session.get(User, user.id), name=TOKEN_NAME)
        session.commit()
    return tokens


def calendar_token(engine, user: User) -> str:
    from engine.calendar_feed import rotate_calendar_token

    with Session(engine) as session:
        token = rotate_calendar_token(session, session.get(User, user.id))
        session.commit()
    return token


# -- measuring ----------------------------------------------------------------------------------------

@dataclass
class Measurement:
    name: str
    group: str                     # the issue's target it is judged against
    target_ms: float | None
    request: Callable[[int], tuple]  # call number -> (method, path, params, json, token)
    repeat: int
    times: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    slowest: tuple | None = None   # (seconds, statement, parameters)
    plan: str = ""
    breakdown: list = field(default_factory=list)  # (ms, statement) of the median call


    def summary(self) -> dict:
        p = {f"p{q}": round(percentile(self.times, q), 2) for q in (50, 95, 99)}
        return {"name": self.name, "group": self.group, "target_ms": self.target_ms, **p,
                "max": round(max(self.times), 2), "calls": len(self.times),
                "statements": f"{min(self.statements)}" + (f"–{max(self.statements)}" if max(self.statements) != min(self.statements) else ""),
                "sql_ms_p50": round(percentile(self.sql_ms, 50), 2), "size_p50": percentile(self.sizes, 50),
                "met": None if self.target_ms is None else p["p95"] < self.target_ms,
                "slowest_statement_ms": round(self.slowest[0] * 1000, 2) if self.slowest else None,
                "slowest_statement": compact(self.slowest[1]) if self.slowest else None, "plan": self.plan}


def call(client: httpx.Client, request) -> httpx.Response:
    method, path, params, body, token = request
    response = client.request(method, path, params=params, json=body, headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 200:
        raise SystemExit(f"{method} {path} {params or body}: {response.status_code} {response.text[:500]}")
    return response


def run(client, log: StatementLog, m: Measurement, profiler=None) -> None:
    for i in range(WARMUP):
        call(client, m.request(-1 - i))
    if profiler is not None:
        profiler.start()
    calls = []
    for i in range(m.repeat):
        request = m.request(i)
        log.captured.clear()
        began = time.perf_counter()
        response = call(client, request)
        m.times.append((time.perf_counter() - began) * 1000)
        m.statements.append(len(log.captured))
        m.sql_ms.append(sum(c[2] for c in log.captured) * 1000)
        m.sizes.append(len(response.content))
        calls.append((m.times[-1], [(c[2] * 1000, c[0]) for c in log.captured]))
        for statement, parameters, seconds in log.captured:
            if m.slowest is None or seconds > m.slowest[0]:
                m.slowest = (seconds, statement, parameters)
    if profiler is not None:
        profiler.stop()
    m.breakdown = sorted(calls, key=lambda c: c[0])[len(calls) // 2][1]


def compact(statement: str) -> str:
    flat = re.sub(r"\s+", " ", statement)
    flat = re.sub(r"(%\(\w+\)s(::\w+(\[\])?)?(, )?){6,}", lambda g: f"<{g.group(0).count('%')} values> ", flat)
    return flat if len(flat) < 900 else flat[:600] + " … " + flat[-250:]


def explain(engine, m: Measurement) -> None:
    if m.slowest is None:
        return
    _seconds, statement, parameters = m.slowest
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if m.group == "quarterly report":
            cursor.execute("SET LOCAL jit = off")  # as build_report runs it
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        m.plan = "\n".join(row[0] for row in cursor.fetchall())
        raw.rollback()
    finally:
        raw.close()


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def measurements(args, engine, who, tokens, feed_token) -> list[Measurement]:
    rng = random.Random(args.seed + 1)
    now = datetime.now(timezone.utc)
    manager, owner, cab, requester = (tokens[who[r].username] for r in ("change_manager", "service_owner",
                                                                         "cab_member", "requester"))
    with Session(engine) as session:
        keys = dict(session.execute(select(Service.id, Service.key)).all())
        first_service = session.scalar(select(func.min(Service.id)).where(Service.key.like("g%-svc%")))
        scheduled_ids = session.scalars(select(Change.id).where(Change.state == "scheduled",
                                                                Change.planned_start > now).order_by(Change.id)).all()
        newest = session.scalar(select(func.max(Change.created_at)).where(Change.id <= args.changes))
        busy_requester = session.scalar(select(User.username).join(Change, Change.requester_id == User.id)
                                        .group_by(User.username).order_by(func.count().desc()).limit(1))
    quarter = newest.year * 4 + (newest.month - 1) // 3 - 1  # the last full quarter of the history
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)
    month = month.replace(day=1)
    month_end = (month + timedelta(days=32)).replace(day=1)
    scale_key = keys[first_service + 60]  # a service of group 1 with its own changes

    def services(n):
        return [keys[s + first_service - 1] for s in pick_services(rng, args.services, n)]

    proposals = []
    for _ in range(args.repeat + WARMUP):
        start = (now + timedelta(hours=1) + rng.random() * timedelta(days=365)).replace(second=0, microsecond=0)
        start = start.replace(minute=30 if start.minute >= 30 else 0)
        proposals.append({"start": iso(start), "end": iso(start + timedelta(hours=2)),
                          "services": services(rng.randint(1, 3)), "change_type": "normal",
                          "implementer": rng.choice(who["implementers"])})
    picked = rng.sample(scheduled_ids, args.repeat + WARMUP)

    def get(path, params=None, token=manager):
        return lambda i: ("GET", path, params, None, token)

    r, rr = args.repeat, args.report_repeat
    found = [
        Measurement(f"inbox: change manager {who['change_manager'].username} (first page of 100)", "inbox", 25,
                    get("/api/tasks"), r),
        Measurement(f"inbox: change manager {who['change_manager'].username}, page 3 of 100", "inbox", 25,
                    get("/api/tasks", {"page": 3}), r),
        Measurement(f"inbox: change manager {who['change_manager'].username}, per_page=500", "inbox", None,
                    get("/api/tasks", {"per_page": 500}), r),
        Measurement(f"inbox: service owner {who['service_owner'].username}", "inbox", 25,
                    get("/api/tasks", token=owner), r),
        Measurement(f"inbox: CAB member {who['cab_member'].username}", "inbox", 25, get("/api/tasks", token=cab), r),
        Measurement("change list: no filter", "change list", 50, get("/api/changes", {"per_page": PER_PAGE}), r),
        Measurement("change list: state=scheduled", "change list", 50,
                    get("/api/changes", {"state": "scheduled", "per_page": PER_PAGE}), r),
        Measurement("change list: state=closed, page 200", "change list", 50,
                    get("/api/changes", {"state": "closed", "per_page": PER_PAGE, "page": 200}), r),
        Measurement(f"change list: service={SERVICE_FILTER}", "change list", 50,
                    get("/api/changes", {"service": SERVICE_FILTER, "per_page": PER_PAGE}), r),
        Measurement(f"change list: state=scheduled, service={scale_key}", "change list", 50,
                    get("/api/changes", {"state": "scheduled", "service": scale_key, "per_page": PER_PAGE}), r),
        Measurement("change list: type=normal, risk=high", "change list", 50,
                    get("/api/changes", {"type": "normal", "risk": "high", "per_page": PER_PAGE}), r),
        Measurement(f"change list: requester={busy_requester}", "change list", 50,
                    get("/api/changes", {"requester": busy_requester, "per_page": PER_PAGE}), r),
        Measurement(f"change list: as requester {who['requester'].username} (own + member services)", "change list",
                    50, get("/api/changes", {"per_page": PER_PAGE}, token=requester), r),
        Measurement("dashboard: period=month", "dashboard", 150, get("/api/dashboard", {"period": "month"}), r),
        Measurement("dashboard: period=week", "dashboard", 150, get("/api/dashboard", {"period": "week"}), r),
        Measurement("conflict check: POST /api/schedule/check", "conflict check", 20,
                    lambda i: ("POST", "/api/schedule/check", None, proposals[i], manager), r),
        Measurement("conflict check: GET /api/changes/<scheduled>/conflicts", "conflict check", 20,
                    lambda i: ("GET", f"/api/changes/{picked[i]}/conflicts", None, None, manager), r),
        Measurement(f"calendar month {month:%Y-%m}: change manager", "calendar month", 100,
                    get("/api/calendar", {"from": iso(month), "to": iso(month_end)}), r),
        Measurement(f"calendar month {month:%Y-%m}: service={SERVICE_FILTER}", "calendar month", 100,
                    get("/api/calendar", {"from": iso(month), "to": iso(month_end), "service": SERVICE_FILTER}), r),
        Measurement(f"calendar month {month:%Y-%m}: as requester", "calendar month", 100,
                    get("/api/calendar", {"from": iso(month), "to": iso(month_end)}, token=requester), r),
        Measurement(f"iCalendar feed, service={SERVICE_FILTER} (30 days back, 180 ahead)", "calendar feed", None,
                    lambda i: ("GET", "/calendar.ics", {"token": feed_token, "service": SERVICE_FILTER}, None, manager),
                    max(5, r // 5)),
        Measurement(f"quarterly report: leadership {quarter // 4}-Q{quarter % 4 + 1}", "quarterly report", 1000,
                    get("/api/reports/leadership", {"period": f"{quarter // 4}-Q{quarter % 4 + 1}"}), rr),
        Measurement(f"quarterly report: leadership {quarter // 4}-Q{quarter % 4 + 1}, service={SERVICE_FILTER}",
                    "quarterly report", 1000, get("/api/reports/leadership", {
                        "period": f"{quarter // 4}-Q{quarter % 4 + 1}", "service": SERVICE_FILTER}), rr),
    ]
    only = [o.strip() for o in args.only.split(",") if o.strip()]
    return [m for m in found if not only or any(o in m.name for o in only)]


def make_app(database_url: str):
    from engine.config import Settings
    from webui import create_app

    return create_app(Settings.from_env(database_url=database_url, redis_url=None))


def table(results: list[dict]) -> str:
    lines = ["| endpoint | p50 ms | p95 ms | p99 ms | statements | SQL ms p50 | target (p95) | met? |",
             "|---|---|---|---|---|---|---|---|"]
    for s in results:
        target = f"< {s['target_ms']:,.0f} ms" if s["target_ms"] else "—"
        met = "—" if s["met"] is None else ("yes" if s["met"] else "**no**")
        lines.append(f"| {s['name']} | {s['p50']:,.1f} | {s['p95']:,.1f} | {s['p99']:,.1f} | {s['statements']} | "
                     f"{s['sql_ms_p50']:,.1f} | {target} | {met} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    engine = prepare(args)
    counts = data_counts(engine)
    print("rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()), flush=True)
    who = people(engine)
    tokens = issue_tokens(engine, [who[r] for r in ("change_manager", "service_owner", "cab_member", "requester")])
    feed_token = calendar_token(engine, who["change_manager"])
    todo = measurements(args, engine, who, tokens, feed_token)
    engine.dispose()

    app = make_app(args.database_url)
    from webui.extensions import db

    if args.gc_freeze:
        # as a server would right after loading the app (e.g. gunicorn's post_fork): a full
        # collection otherwise walks every object of the app and its libraries, 55-75 ms here
        gc.collect()
        gc.freeze()

    with app.app_context():
        app_engine = db.engine
    log = StatementLog(app_engine)
    print(f"\n{len(todo)} measurements; {args.repeat} calls each ({args.report_repeat} for the report) after "
          f"{WARMUP} warm-up calls; ms = wall time per HTTP call in-process; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; gc.freeze {'yes' if args.gc_freeze else 'no'}; commit "
          f"{os.popen('git -C ' + str(ROOT) + ' rev-parse --short HEAD').read().strip()}", flush=True)
    results = []
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url=BASE, timeout=120) as client:
        for m in todo:
            profiler = None
            if args.profile and args.profile in m.name:
                from pyinstrument import Profiler
                profiler = Profiler(interval=0.0005)
            run(client, log, m, profiler)
            if args.explain:
                explain(app_engine, m)
            s = m.summary()
            results.append(s)
            print(f"{m.name:<70} p50 {s['p50']:8.1f}  p95 {s['p95']:8.1f}  p99 {s['p99']:8.1f}  stmts {s['statements']:>5}"
                  f"  SQL p50 {s['sql_ms_p50']:7.1f}  {len(m.times)} calls  "
                  f"{'' if s['met'] is None else ('met' if s['met'] else 'MISSED')}", flush=True)
            if args.statements:
                for ms, statement in m.breakdown:
                    print(f"    {ms:7.2f} ms  {compact(statement)[:220]}")
            if profiler is not None:
                print(profiler.output_text(unicode=False, color=False, show_all=False))
    print(f"\nload average after: {os.getloadavg()[0]:.2f}\n\n" + table(results))
    if args.explain:
        for s in results:
            print(f"\n-- {s['name']}: slowest statement {s['slowest_statement_ms']} ms\n{s['slowest_statement']}\n{s['plan']}")
    if args.json:
        args.json.write_text(json.dumps({"counts": counts, "results": results, "gc_freeze": args.gc_freeze,
                                         "load_average": os.getloadavg()[0], "argv": sys.argv[1:]}, indent=2,
                                        default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
