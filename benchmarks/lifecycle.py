"""Throughput of whole normal-change lifecycles through the HTTP API, next to the raw SpiffWorkflow ceiling.

    .venv/bin/python benchmarks/lifecycle.py --changes 200 --clients 4

Wipes and prepares its own PostgreSQL database (default `changeflow_bench`, never `test`), serves
it with `changeflow serve --no-deploy` (gunicorn) on a free localhost port next to `changeflow
worker` processes over Redis (the production topology; --no-redis runs jobs inside the web workers
instead), has K client threads walk N changes submit → closed, and runs the same process
in-process with SpiffWorkflow alone, half of it before the load and half after. See
docs/performance.md for results and how to read them.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench_cpu import CpuSnapshot, cpu_breakdown
from bench_db import DEFAULT_URL, closed_changes, prepare, stored_state_bytes
from bench_load import ENDPOINTS, LoadResult, percentile, run_load
from bench_raw import RawResult, run_ceiling
from bench_server import JobWorker, Server, peak_rss_kib
from redis import Redis

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200, help="changes to walk to closure (N)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads (K)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL URL; the database is wiped")
    parser.add_argument("--workers", type=int, default=None,
                        help="gunicorn worker processes (default: two per core, as `changeflow serve`)")
    parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker")
    parser.add_argument("--warmup", type=int, default=8, help="changes walked first and not counted")
    parser.add_argument("--raw-changes", type=int, default=None, help="changes for the raw ceiling, half before the load and half after (default N)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11",
                        help="Redis for rq (this database is flushed before and after)")
    parser.add_argument("--no-redis", action="store_true", help="no Redis: jobs run inside the web workers")
    parser.add_argument("--job-workers", type=int, default=1, help="`changeflow worker` processes (with Redis)")
    parser.add_argument("--job-worker-nice", type=int, default=0,
                        help="start the job workers with `--nice N` (background work yields the CPU to requests)")
    parser.add_argument("--think-ms", type=float, default=0.0,
                        help="mean pause of a client before each request (0.5-1.5x); 0 = back to back")
    parser.add_argument("--close-connections", action="store_true",
                        help="a new connection per request: one change's steps spread over the web workers "
                             "(every change must still close — a check that no step needs the worker before it)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.no_redis:
        args.redis_url, args.job_workers = None, 0
    if args.workers is None:
        from webui.server import default_workers

        args.workers = default_workers()
    return args


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@dataclass
class ApiRun:
    load: LoadResult
    cpu: dict
    rss_kib: dict[int, int | None]
    stored_state_bytes: float | None


def measure_api(args) -> ApiRun:
    tokens = prepare(args.database_url)
    logs = Path(tempfile.gettempdir())
    if args.redis_url:
        Redis.from_url(args.redis_url).flushdb()
    server = Server(args.database_url, workers=args.workers, threads=args.threads,
                    log_path=logs / "changeflow-bench-server.log", redis_url=args.redis_url)
    job_workers = [JobWorker(args.database_url, args.redis_url, logs / f"changeflow-bench-worker-{i + 1}.log",
                             f"bench-{os.getpid()}-{i + 1}", nice=args.job_worker_nice)
                   for i in range(args.job_workers)]
    try:
        server.wait_healthy()
        for worker in job_workers:
            worker.wait_ready()
        if args.warmup:
            warm = run_load(server.base_url, tokens, changes=args.warmup, clients=min(args.clients, args.warmup),
                            close_connections=args.close_connections)
            _fail_on_errors(warm)
        before = CpuSnapshot.take(server.worker_pids(), [w.pid for w in job_workers])
        result = run_load(server.base_url, tokens, changes=args.changes, clients=args.clients,
                          think_seconds=args.think_ms / 1000, close_connections=args.close_connections)
        cpu = cpu_breakdown(before, CpuSnapshot.take(server.worker_pids(), [w.pid for w in job_workers]))
        rss = {pid: peak_rss_kib(pid) for pid in server.worker_pids()}
        rss.update({f"job {w.pid}": peak_rss_kib(w.pid) for w in job_workers})
    finally:
        server.stop()
        for worker in job_workers:
            worker.stop()
        if args.redis_url:
            Redis.from_url(args.redis_url).flushdb()
    _fail_on_errors(result)
    closed = closed_changes(args.database_url)
    if closed != args.changes + args.warmup:
        raise SystemExit(f"expected {args.changes + args.warmup} closed changes, the database has {closed}")
    return ApiRun(result, cpu, rss, stored_state_bytes(args.database_url))


def _fail_on_errors(result: LoadResult) -> None:
    if result.errors:
        raise SystemExit("the load failed:\n  " + "\n  ".join(result.errors[:10]))


def latency_rows(result: LoadResult) -> dict[str, dict]:
    rows = {}
    for endpoint in ENDPOINTS:
        values = result.latencies.get(endpoint) or []
        if values:
            rows[endpoint] = {"count": len(values), **{f"p{p}_ms": percentile(values, p) * 1000 for p in (50, 95, 99)}}
    return rows


def summary(args, run: ApiRun, raws: tuple[RawResult, RawResult], loadavg: str) -> dict:
    api = run.load
    raw = RawResult(sum(r.changes for r in raws), sum(r.completions for r in raws),
                    sum(r.seconds for r in raws), raws[-1].state_bytes)
    api_rate = api.completions / api.seconds
    per_completion = {k: v * 1000 / api.completions for k, v in run.cpu.items() if k.endswith("_s")}
    return {
        "changes": args.changes, "clients": args.clients, "workers": args.workers, "threads": args.threads,
        "redis": bool(args.redis_url), "job_workers": args.job_workers, "think_ms": args.think_ms,
        "job_worker_nice": args.job_worker_nice, "close_connections": args.close_connections,
        "loadavg_before": loadavg, "polls": api.polls, "conflicts_retried": api.conflicts,
        "api": {"seconds": api.seconds, "changes_per_s": api.changes / api.seconds,
                "task_completions_per_s": api_rate, "latency": latency_rows(api),
                "stored_state_bytes": run.stored_state_bytes, "cpu": run.cpu,
                "cpu_ms_per_completion": per_completion, "cpu_cores": os.cpu_count()},
        "raw": {"changes": raw.changes, "seconds": raw.seconds, "changes_per_s": raw.changes_per_second,
                "task_completions_per_s": raw.completions_per_second, "state_bytes": raw.state_bytes,
                "before_load_per_s": raws[0].completions_per_second,
                "after_load_per_s": raws[1].completions_per_second},
        "api_over_raw": api_rate / raw.completions_per_second,
        "worker_peak_rss_kib": {str(pid): kib for pid, kib in run.rss_kib.items()},
    }


def print_report(s: dict) -> None:
    api, raw = s["api"], s["raw"]
    niced = f" at nice {s['job_worker_nice']}" if s.get("job_worker_nice") else ""
    jobs = (f"Redis + {s['job_workers']} job worker(s){niced}" if s["redis"] else "no Redis (jobs run in the web workers)")
    think = f", think time {s['think_ms']:.0f} ms" if s["think_ms"] else ", no think time"
    think += ", a new connection per request" if s.get("close_connections") else ""
    print(f"\nChangeflow lifecycle: {s['changes']} normal changes, {s['clients']} clients{think}, "
          f"gunicorn {s['workers']} workers x {s['threads']} threads, {jobs}, PostgreSQL")
    print(f"  load average before  {s['loadavg_before']}  (a busy machine skews every number)")
    print(f"  wall time            {api['seconds']:8.2f} s")
    print(f"  changes/s            {api['changes_per_s']:8.2f}")
    print(f"  task completions/s   {api['task_completions_per_s']:8.2f}")
    print(f"  {'latency (ms)':<14}{'n':>7}{'p50':>9}{'p95':>9}{'p99':>9}")
    for endpoint, row in api["latency"].items():
        print(f"  {endpoint:<14}{row['count']:>7}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}{row['p99_ms']:>9.1f}")
    print(f"  inbox reads before the task was there (it was on a worker): {s['polls']}; 409s retried: "
          f"{s['conflicts_retried']}")
    cpu, per = api["cpu"], api["cpu_ms_per_completion"]
    print(f"  CPU per completion   web workers {per['workers_s']:.1f} ms, job workers {per['job_workers_s']:.1f} ms, "
          f"postgres {per['postgres_s']:.1f} ms, client {per['client_s']:.1f} ms, other {per['other_s']:.1f} ms "
          f"(machine {cpu['machine_busy_pct']:.0f}% busy, {cpu['machine_steal_pct']:.0f}% steal)")
    server_ms = per["workers_s"] + per["job_workers_s"] + per["postgres_s"]
    print(f"  capacity estimate    {api['cpu_cores'] * 1000 / server_ms:8.1f} completions/s if the server had all "
          f"{api['cpu_cores']} cores to itself ({server_ms:.0f} ms server CPU per completion)")
    print(f"Raw SpiffWorkflow ceiling ({raw['changes']} changes, one process, full state "
          f"serialized + deserialized at every user task)")
    print(f"  task completions/s   {raw['task_completions_per_s']:8.2f}   (changes/s {raw['changes_per_s']:.2f}; "
          f"{raw['before_load_per_s']:.1f} before the load, {raw['after_load_per_s']:.1f} after)")
    print(f"  API / raw            {s['api_over_raw']:8.3f}")
    stored = f"{api['stored_state_bytes'] / 1024:.1f} KiB" if api["stored_state_bytes"] else "n/a"
    print(f"  state per instance   raw {raw['state_bytes'] / 1024:.1f} KiB (spec included), service {stored}")
    print("Peak RSS (VmHWM) of the gunicorn workers and job workers")
    for pid, kib in s["worker_peak_rss_kib"].items():
        print(f"  worker {pid:<12}  {kib / 1024:8.1f} MiB" if kib else f"  worker {pid:<12}  n/a")


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` cleans up like Ctrl-C
    try:
        loadavg = Path("/proc/loadavg").read_text().split(" ", 3)[:3]
        # This machine's speed drifts by ±20 % within minutes: half the raw ceiling runs before the
        # load and half after, and the ratio is taken against both together.
        raw_changes = max((args.raw_changes or args.changes) // 2, 1)
        raw_before = run_ceiling(PROJECT_ROOT / "processes", raw_changes)
        run = measure_api(args)
        raw_after = run_ceiling(PROJECT_ROOT / "processes", raw_changes)
    except KeyboardInterrupt:
        print("interrupted; server stopped", file=sys.stderr)
        return 130
    result = summary(args, run, (raw_before, raw_after), " ".join(loadavg))
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
