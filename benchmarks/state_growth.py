"""State growth: one normal change rejected and reworked many times, and what its stored state costs.

    .venv/bin/python benchmarks/state_growth.py --loops 500 [--every 50] [--database-url URL] [--json out.json]

A fresh PostgreSQL database (default `changeflow_state`, created if missing, its public schema wiped;
bench_db refuses `test`) gets the migrations, the processes and the benchmark users. One normal change is
submitted through the JSON API, in-process (Flask app over httpx.WSGITransport: the code path a user's
request takes, without sockets), and walked round the rework loop: the change manager rejects
*Authorize change*, the requester resubmits *Rework change request*, the process assesses risk and
priority again and asks for authorization again.

After every --every loops (and at the loop where the instance has completed 1,000 tasks) it reads
`process_instances.state` and prints:

  completed    SpiffWorkflow tasks the instance has completed over its life
  held         completed tasks the stored state still holds (engine.workflow_store compacts the rest
               into one stub per BPMN element once more than COMPACT_AFTER finished tasks pile up)
  tasks        task entries in the stored state, and depth: levels from the last task up to the root
  state KB     the size of the stored state
  load ms      parse + restore onto the cached spec, as engine.runtime._load does (median of --repeats)
  save ms      engine.workflow_store.dump_state of that workflow (median of --repeats)
  reject ms, resubmit ms   the two task completions through the API (median of the last 5 loops)
  trace ms     the auditor's `GET /api/changes/<id>/trace`: the workflow for the diagram, every audit event

At the end: bytes and load+save time per completed task at each checkpoint, the log-log slope of each
figure against completed tasks (0 flat, 1 linear, 2 quadratic), and the load time at 1,000 completed
tasks against the 50 ms target. `--compact-after off` runs the same walk without compaction (as the
state was stored before it existed); it stops where SpiffWorkflow fails.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import deque
from pathlib import Path

import httpx
from bench_db import prepare
from bench_payloads import MANAGER, REQUESTER, change_request
from sqlalchemy import select
from sqlalchemy.orm import Session

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/changeflow_state"
TARGET_COMPLETED = 1_000
TARGET_LOAD_MS = 50.0
LINEAR_SLOPE = 1.3  # a log-log slope above this is no longer "linear with noise"
RECENT = 5  # completion times at a checkpoint: the median of this many loops before it


def make_app(database_url: str):
    from engine.config import Settings
    from webui import create_app

    return create_app(Settings.from_env(database_url=database_url, redis_url=None))


class Failed(RuntimeError):
    pass


class Client:
    """Requests as the benchmark's users over WSGI; raises Failed on any unexpected status."""

    def __init__(self, app, tokens: dict[str, str]):
        self.http = httpx.Client(base_url="http://changeflow.test", transport=httpx.WSGITransport(app=app),
                                 timeout=600.0)
        self.headers = {user: {"Authorization": f"Bearer {token}"} for user, token in tokens.items()}

    def call(self, method: str, path: str, user: str, expect: int = 200, **kwargs):
        response = self.http.request(method, path, headers=self.headers[user], **kwargs)
        if response.status_code != expect:
            raise Failed(f"{method} {path} as {user}: {response.status_code} {response.text[:500]}")
        return response.json()

    def task(self, user: str, change_id: int, name: str) -> str:
        tasks = [t["id"] for t in self.call("GET", "/api/tasks", user, params={"change": change_id})
                 if t["name"] == name]
        if len(tasks) != 1:
            raise Failed(f"{user} expected one '{name}' for change {change_id}, found {len(tasks)}; "
                             "has processes/normal_change.bpmn changed its rework loop?")
        return tasks[0]

    def timed_complete(self, user: str, task_id: str, data: dict) -> float:
        started = time.perf_counter()
        self.call("POST", f"/api/tasks/{task_id}/complete", user, json={"data": data})
        return time.perf_counter() - started


def median_seconds(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def lifetime_completed(state: str) -> int:
    from engine.workflow_store import completed_tasks

    return completed_tasks(state)[1]


def tree_depth(workflow) -> int:
    depth, task = 0, workflow.last_task
    while task is not None:
        depth, task = depth + 1, task.parent
    return depth


def measure(engine, change_id: int, repeats: int) -> dict:
    """Size of the stored state and the median cost of loading and saving it, as a command pays it."""
    from engine.bpmn.specs import SPECS
    from engine.models import ProcessInstance
    from engine.scripting import ChangeflowScriptEngine
    from engine.workflow_store import completed_tasks, dump_state, load_state

    with Session(engine) as session:
        instance = session.scalar(select(ProcessInstance).where(ProcessInstance.change_id == change_id))
        state, version = instance.state, instance.process_version

        def load():
            spec, subprocess_specs = SPECS.get(version)
            return load_state(state, spec, subprocess_specs, ChangeflowScriptEngine(None))

        load_s, workflow = median_seconds(load, repeats)
        save_s, saved = median_seconds(lambda: dump_state(workflow), repeats)
    held, completed = completed_tasks(state)
    return {"completed_tasks": completed, "completed_held": held, "tasks": len(json.loads(state)["tasks"]),
            "depth": tree_depth(workflow),
            "state_bytes": len(state.encode()), "resaved_bytes": len(saved.encode()),
            "load_ms": load_s * 1000, "save_ms": save_s * 1000}


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(y) against log(x): how y grows with x (1 linear, 2 quadratic)."""
    points = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y > 0]
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


HEADER = (f"{'loops':>5} {'completed':>9} {'held':>5} {'tasks':>5} {'depth':>5} {'state KB':>8} {'load ms':>7} "
          f"{'save ms':>7} {'reject ms':>9} {'resubmit ms':>11} {'trace ms':>8}")


def row(point: dict) -> str:
    return (f"{point['loops']:>5} {point['completed_tasks']:>9} {point['completed_held']:>5} {point['tasks']:>5} "
            f"{point['depth']:>5} {point['state_bytes'] / 1024:>8.1f} {point['load_ms']:>7.1f} "
            f"{point['save_ms']:>7.1f} {point['reject_ms']:>9.1f} {point['resubmit_ms']:>11.1f} "
            f"{point['trace_ms']:>8.1f}")


def run(database_url: str, loops: int, every: int, repeats: int) -> dict:
    from engine.db import make_engine
    from engine.models import ProcessInstance

    tokens = prepare(database_url)
    app = make_app(database_url)
    client = Client(app, tokens)
    engine = make_engine(database_url)
    change_id = client.call("POST", "/api/changes", REQUESTER, 201, json=change_request(0))["id"]
    points, recent, reached_target, failure = [], deque(maxlen=RECENT), False, None
    print(HEADER, flush=True)
    started = time.perf_counter()
    for loop in range(1, loops + 1):
        try:
            authorize = client.task(MANAGER, change_id, "Authorize change")
            reject_s = client.timed_complete(MANAGER, authorize, {
                "decision": "reject", "comment": f"Round {loop}: the rollback plan is still untested."})
            rework = client.task(REQUESTER, change_id, "Rework change request")
            resubmit_s = client.timed_complete(REQUESTER, rework, {
                "rework_action": "resubmit", "comment": f"Round {loop}: rollback rehearsed in staging."})
        except Failed as error:
            failure = {"loop": loop, "error": str(error)}
            print(f"stopped in loop {loop}: {error}", flush=True)
            break
        recent.append((reject_s, resubmit_s))
        crossed = False
        if not reached_target:  # small states until then: counting after each loop costs little
            with engine.connect() as conn:
                state = conn.scalar(select(ProcessInstance.state).where(ProcessInstance.change_id == change_id))
            crossed = reached_target = lifetime_completed(state) >= TARGET_COMPLETED
        if loop % every == 0 or loop == loops or crossed:
            point = {"loops": loop, **measure(engine, change_id, repeats),
                     "reject_ms": statistics.median(r for r, _ in recent) * 1000,
                     "resubmit_ms": statistics.median(r for _, r in recent) * 1000}
            trace_s, _ = median_seconds(
                lambda: client.call("GET", f"/api/changes/{change_id}/trace", MANAGER), max(1, repeats // 2))
            point["trace_ms"] = trace_s * 1000
            point["at_target"] = crossed
            points.append(point)
            print(row(point) + ("   <- first with >= 1,000 completed" if crossed else ""), flush=True)
    seconds = time.perf_counter() - started
    if failure is None:
        final = client.call("GET", f"/api/changes/{change_id}", MANAGER)
        if final["state"] != "authorize":
            failure = {"loop": loops, "error": f"the change ended in state {final['state']!r}, not 'authorize'"}
    engine.dispose()
    return {"loops": loops, "seconds": seconds, "points": points, "failure": failure}


def summarise(result: dict) -> dict:
    points = result["points"]
    done = result["failure"]["loop"] - 1 if result["failure"] else result["loops"]
    print(f"\n{done} loops in {result['seconds']:.1f} s" + (" (then it FAILED)" if result["failure"] else ""))
    print(f"\n{'loops':>5} {'completed':>9} {'state bytes per completed':>25} {'load+save ms per 1,000 completed':>32}")
    for p in points:
        p["bytes_per_completed"] = p["state_bytes"] / p["completed_tasks"]
        p["load_save_ms_per_1000"] = (p["load_ms"] + p["save_ms"]) / p["completed_tasks"] * 1000
        print(f"{p['loops']:>5} {p['completed_tasks']:>9} {p['bytes_per_completed']:>25.0f} "
              f"{p['load_save_ms_per_1000']:>32.2f}")
    regular = [p for p in points if not p["at_target"]]
    checkpoints = regular if len(regular) >= 2 else points
    slopes = {name: slope([(p["completed_tasks"], p[name]) for p in checkpoints])
              for name in ("state_bytes", "load_ms", "save_ms", "reject_ms", "resubmit_ms", "trace_ms")}
    print("\ngrowth against completed tasks (log-log slope: 0 flat, 1 linear, 2 quadratic):")
    for name, value in slopes.items():
        print(f"  {name:12s} {value:5.2f}" if value is not None else f"  {name:12s}   n/a")
    core = [slopes[n] for n in ("state_bytes", "load_ms", "save_ms")]
    linear = None if None in core else all(value < LINEAR_SLOPE for value in core)
    verdict = {None: "too few checkpoints to tell", True: "at most linear", False: "FASTER than linear"}[linear]
    print(f"  state size and load+save: {verdict}")
    target = next((p for p in points if p["at_target"]), None)
    summary = {"slopes": slopes, "linear": linear, "loops_done": done}
    if target:
        met = target["load_ms"] < TARGET_LOAD_MS
        print(f"\nload at {target['completed_tasks']} completed tasks (loop {target['loops']}): "
              f"{target['load_ms']:.1f} ms (target < {TARGET_LOAD_MS:.0f} ms: {'met' if met else 'NOT met'}); "
              f"save {target['save_ms']:.1f} ms")
        summary.update(target_loops=target["loops"], target_load_ms=target["load_ms"], target_met=met)
    else:
        print(f"\nthe instance never completed {TARGET_COMPLETED} tasks; run more --loops")
    if result["failure"]:
        print(f"\nFAILED in loop {result['failure']['loop']}: {result['failure']['error']}")
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=500)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7, help="load and save are timed this often (median)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL URL; the database is wiped")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--compact-after", default=None, metavar="N|off",
                        help="override engine.workflow_store.COMPACT_AFTER in this process ('off': no compaction)")
    args = parser.parse_args(argv)
    if args.compact_after is not None:
        from engine import workflow_store

        workflow_store.COMPACT_AFTER = None if args.compact_after == "off" else int(args.compact_after)
    result = run(args.database_url, args.loops, args.every, args.repeats)
    result["summary"] = summarise(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 1 if result["failure"] else 0


if __name__ == "__main__":
    sys.exit(main())
