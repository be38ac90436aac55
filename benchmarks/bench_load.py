"""K client threads pushing normal changes from submission to closure through the HTTP API."""
from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import httpx
from bench_payloads import EVIDENCE, REQUESTER, STEPS, change_request, window

ENDPOINTS = ("submit", "evidence", "inbox", "complete")
# With Redis the steps after Schedule change (the conflict check, the timer of the planned start) run on
# a worker: the next task shows up in the inbox a moment after the completion returned.
POLL_SECONDS = 0.02
POLL_TIMEOUT = 60.0


def poll_delay(tries: int) -> float:
    """20, 40, 80, 160, then 200 ms: a page that refreshes itself soon, then less eagerly."""
    return min(POLL_SECONDS * 2 ** tries, 0.2)


@dataclass
class LoadResult:
    changes: int = 0
    completions: int = 0
    seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    conflicts: int = 0  # 409s retried
    polls: int = 0  # inbox reads that did not find the task yet (it was still on a worker)

    def merge(self, other: "LoadResult") -> None:
        self.changes += other.changes
        self.conflicts += other.conflicts
        self.polls += other.polls
        self.completions += other.completions
        for name, values in other.latencies.items():
            self.latencies[name].extend(values)
        self.errors.extend(other.errors)


class BenchmarkError(RuntimeError):
    pass


class Walker:
    """One thread's httpx client, walking changes through their tasks and timing every call."""

    def __init__(self, base_url: str, tokens: dict[str, str], transport: httpx.BaseTransport | None = None,
                 think_seconds: float = 0.0, seed: int = 0, close_connections: bool = False):
        # transport=httpx.WSGITransport(app) walks the same path in-process (profile_lifecycle.py).
        self.client = httpx.Client(base_url=base_url, timeout=60.0, transport=transport)
        # close_connections: every request on a new connection, so one change's steps land on
        # whichever web worker is free, not all on the one its client reached first.
        extra = {"Connection": "close"} if close_connections else {}
        self.headers = {user: {"Authorization": f"Bearer {token}", **extra} for user, token in tokens.items()}
        self.result = LoadResult()
        self.think_seconds = think_seconds
        self._random = random.Random(seed)

    def _think(self) -> None:
        """A person reads the page before the next click: 0.5-1.5 x the mean think time, not timed."""
        if self.think_seconds:
            time.sleep(self.think_seconds * self._random.uniform(0.5, 1.5))

    def _call(self, endpoint: str, method: str, path: str, user: str, expect: int, *, think: bool = True,
              **kwargs):
        if think:
            self._think()
        started = time.perf_counter()
        response = self.client.request(method, path, headers=self.headers[user], **kwargs)
        self.result.latencies[endpoint].append(time.perf_counter() - started)
        if response.status_code != expect:
            raise BenchmarkError(f"{method} {path} as {user}: {response.status_code} {response.text[:300]}")
        return response.json()

    def _task_id(self, user: str, change_id: int, name: str) -> str:
        deadline = time.monotonic() + POLL_TIMEOUT
        first, tries = True, 0
        while True:
            tasks = self._call("inbox", "GET", "/api/tasks", user, 200, think=first, params={"change": change_id})
            first = False
            matching = [t["id"] for t in tasks if t["name"] == name]
            if matching or time.monotonic() > deadline:
                break
            self.result.polls += 1
            time.sleep(poll_delay(tries))
            tries += 1
        if len(matching) != 1:
            found = [(t["name"], t.get("role")) for t in tasks]
            raise BenchmarkError(f"{user} expected one '{name}' for change {change_id}, their inbox has {found}; "
                                 "if processes/normal_change.bpmn now asks for other steps, update "
                                 "STEPS in benchmarks/bench_payloads.py")
        return matching[0]

    def walk(self, index: int) -> None:
        change = self._call("submit", "POST", "/api/changes", REQUESTER, 201, json=change_request(index))
        for evidence in EVIDENCE:
            self._call("evidence", "POST", f"/api/changes/{change['id']}/evidence", REQUESTER, 201, json=evidence)
        for user, name, data in STEPS:
            if name == "Schedule change":
                data = {**data, **window(index)}
            task_id = self._task_id(user, change["id"], name)
            self._complete(user, task_id, data)
            self.result.completions += 1
        self.result.changes += 1

    def _complete(self, user: str, task_id: str, data: dict, attempts: int = 5) -> None:
        """409 means another client's command won a race on a related change: try again, as a UI would."""
        for attempt in range(attempts):
            try:
                self._call("complete", "POST", f"/api/tasks/{task_id}/complete", user, 200, json={"data": data})
                return
            except BenchmarkError as error:
                if " 409 " not in str(error) or attempt == attempts - 1:
                    raise
                self.result.conflicts += 1

    def close(self) -> None:
        self.client.close()


def _worker(walker: Walker, counter, total: int, stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            index = next(counter)
            if index > total:
                return
            walker.walk(index)
    except Exception as exc:  # noqa: BLE001 - reported, and the whole run stops
        walker.result.errors.append(f"{type(exc).__name__}: {exc}")
        stop.set()
    finally:
        walker.close()


def run_load(base_url: str, tokens: dict[str, str], *, changes: int, clients: int,
             think_seconds: float = 0.0, close_connections: bool = False) -> LoadResult:
    counter = _LockedCounter()
    stop = threading.Event()
    walkers = [Walker(base_url, tokens, think_seconds=think_seconds, seed=i, close_connections=close_connections)
               for i in range(clients)]
    threads = [threading.Thread(target=_worker, args=(w, counter, changes, stop), daemon=True) for w in walkers]
    started = time.perf_counter()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)  # short joins keep Ctrl-C responsive
    except KeyboardInterrupt:
        stop.set()
        raise
    total = LoadResult(seconds=time.perf_counter() - started)
    for walker in walkers:
        total.merge(walker.result)
    return total


class _LockedCounter:
    def __init__(self):
        self._next = 0
        self._lock = threading.Lock()

    def __next__(self) -> int:
        with self._lock:
            self._next += 1
            return self._next


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of `values` (not empty)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil without floats drifting
    return ordered[int(rank) - 1]
