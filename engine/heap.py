"""Keeping the garbage collector's full collections short in long-running processes.

A full (generation 2) collection walks every tracked object the process holds and stops all its
threads while it does. Most of a warmed-up worker's objects live as long as the process — parsed
process specs, SQLAlchemy's compiled statements, validators — so walking them again and again finds
nothing: measured on the lifecycle benchmark, ~20 ms per full collection (each stalling every request
in flight in that worker) against ~1–2 ms once they are out of the collector's view.
`gc.freeze()` moves them there, but only what exists by then; the caches fill during the first
requests. So a worker freezes again after its 50th, 500th and 5,000th unit of work (request or job),
at a moment when nothing is in flight: a collection first, so no garbage is frozen, and no request
half-built whose objects would stay in view (or, frozen, never be collected).
"""
from __future__ import annotations

import gc
import threading
from contextlib import contextmanager

# After how many units of work to freeze; few, so the cost (one full collection each) stays
# negligible, and late enough in the sequence to catch caches that fill slowly.
SCHEDULE = (50, 500, 5_000)


class WarmHeap:
    """Counts units of work in flight; freezes the heap when idle at the scheduled counts."""

    def __init__(self, schedule=SCHEDULE):
        self._lock = threading.Lock()
        self._schedule = sorted(schedule)
        self._in_flight = 0
        self._done = 0
        self.freezes = 0

    @contextmanager
    def working(self):
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._done += 1
                # Under the lock: work that starts meanwhile waits for the freeze (a few ms, three
                # times in a process's life) rather than have its objects frozen half-built.
                if self._in_flight == 0 and self._schedule and self._done >= self._schedule[0]:
                    self._schedule = [due for due in self._schedule if due > self._done]
                    freeze()
                    self.freezes += 1


def freeze() -> None:
    """Collect, then move everything that survived out of the collector's view."""
    gc.collect()
    gc.freeze()
