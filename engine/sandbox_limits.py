"""How much a sandboxed script may do: CPU time, memory, the size of what it leaves and of one value.

Scripts run in web threads and rq workers, so a signal-based alarm (main thread only) cannot stop
them. Instead, while a script runs, `sys.settrace` is set in the executing thread only; the trace
function follows the frames the script runs (its own and library code it calls), counts their line
events and every `_CHECK_EVERY` events compares the thread's CPU time with the budget and the
process's resident memory with what it was at the first such check. The sandbox's own guard
functions, called for every attribute access and operator, are not traced.

A trace function that raises is switched off by CPython, so a script that catches the error could
go on unwatched: the budget therefore stays *exhausted*, and every `except`/`finally` block of a
script starts with `_limit_check_()` (inserted by `engine.sandbox_policy`), which raises it again.
"""
from __future__ import annotations

import gc
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, time as dtime, timedelta

SANDBOX_FILENAME = "<bpmn-script>"
_CHECK_EVERY = 128  # line events between readings of CPU time and memory (each a system call)
UNTRACED = {__file__}  # the sandbox's own helpers: bounded work, called often, not worth tracing


class ScriptLimitError(Exception):
    """A script or expression went over a sandbox limit; the task fails as an incident."""


@dataclass(frozen=True)
class ScriptLimits:
    cpu_seconds: float = 1.0            # CPU time of one script or expression evaluation
    output_bytes: int = 256 * 1024      # JSON size of the data a script leaves / an expression returns
    max_length: int = 1_000_000         # characters or items one operation may build; bits of an integer
    memory_bytes: int = 256 * 1024 ** 2  # growth of the process's resident memory while a script runs

    @classmethod
    def from_settings(cls, settings) -> "ScriptLimits":
        return cls(cpu_seconds=settings.script_cpu_seconds, output_bytes=settings.script_output_bytes,
                   max_length=settings.script_max_length, memory_bytes=settings.script_memory_mb * 1024 ** 2)


_limits = ScriptLimits()


def configure(limits: ScriptLimits) -> None:
    """Set the process-wide limits (the web app and the worker do this from `Settings`)."""
    global _limits
    _limits = limits


def current() -> ScriptLimits:
    return _limits


# -- CPU time and memory ------------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_statm: tuple[int, int] | None = None  # (pid, fd of /proc/<pid>/statm): re-opened after a fork
_statm_lock = threading.Lock()


def resident_bytes() -> int | None:
    """The process's resident memory (Linux), or None where /proc is not there to ask."""
    global _statm
    try:
        statm = _statm
        if statm is None or statm[0] != os.getpid():
            with _statm_lock:
                if _statm is None or _statm[0] != os.getpid():
                    _statm = (os.getpid(), os.open(f"/proc/{os.getpid()}/statm", os.O_RDONLY))
                statm = _statm
        return int(os.pread(statm[1], 64, 0).split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class Budget:
    __slots__ = ("seconds", "deadline", "memory", "resident", "events", "exhausted", "reason", "gc_started")

    def __init__(self, seconds: float, memory_bytes: int):
        self.seconds = seconds
        self.deadline = time.thread_time() + seconds
        self.memory = memory_bytes
        # Read at the first periodic check, not here: most expressions end long before one, and
        # asking /proc costs more than the rest of a short evaluation.
        self.resident = 0
        self.events = 0
        self.exhausted = False
        self.reason = f"the script ran over its CPU-time limit of {seconds:g} s"
        self.gc_started: float | None = None

    def remaining(self) -> float:
        return max(self.deadline - time.thread_time(), 0.001)

    def fail(self, reason: str | None = None) -> ScriptLimitError:
        if not self.exhausted:
            self.exhausted = True
            self.reason = reason or self.reason
        return ScriptLimitError(self.reason)

    def check(self) -> None:
        if self.exhausted or time.thread_time() > self.deadline:
            raise self.fail()
        if self.resident is None or self.events < _CHECK_EVERY:
            return  # no /proc here, or too few steps yet to have a baseline
        now = resident_bytes()
        if not self.resident or now is None:
            self.resident = now
        elif now - self.resident > self.memory:
            raise self.fail(f"the script used more than its memory limit of {self.memory // 1024 ** 2} MB")

    def _global(self, frame, event, arg):
        if frame.f_code.co_filename in UNTRACED:
            return None
        # The script's frames and any library code it calls (a loop in a helper counts too).
        return self._local(frame, event, arg)

    def _local(self, frame, event, arg):
        self.events += 1
        if self.exhausted or not self.events % _CHECK_EVERY:
            self.check()
        return self._local


_state = threading.local()


def active_budget() -> Budget | None:
    return getattr(_state, "budget", None)


def _not_counting_garbage_collection(phase: str, info: dict) -> None:
    """A collection runs in whichever thread allocates when it is due, and a full one over a large
    heap took more than a second: the script that happened to be running was stopped for it. The
    collection's CPU time is therefore added to the budget of the thread it ran in."""
    budget = getattr(_state, "budget", None)
    if budget is None:
        return
    if phase == "start":
        budget.gc_started = time.thread_time()
    elif budget.gc_started is not None:
        budget.deadline += time.thread_time() - budget.gc_started
        budget.gc_started = None


gc.callbacks.append(_not_counting_garbage_collection)


class cpu_budget:
    """`with cpu_budget(limits):` runs the block under a CPU-time and memory budget (this thread).

    Nested use (an expression evaluated while a script runs) shares the outer budget. The thread's
    previous trace function (a debugger, coverage) is put back afterwards. A class rather than a
    generator-based context manager: it wraps every condition and DMN cell, so its cost counts.
    """

    __slots__ = ("limits", "budget", "previous")

    def __init__(self, limits: ScriptLimits):
        self.limits = limits
        self.budget = None

    def __enter__(self) -> Budget:
        outer = getattr(_state, "budget", None)
        if outer is not None:
            return outer
        self.budget = _state.budget = Budget(self.limits.cpu_seconds, self.limits.memory_bytes)
        self.previous = sys.gettrace()
        sys.settrace(self.budget._global)
        return self.budget

    def __exit__(self, kind, error, traceback) -> None:
        if self.budget is None:
            return
        sys.settrace(self.previous)
        _state.budget = None
        if kind is None:
            # Work done in one long C call cannot be interrupted, but it is not let through either.
            self.budget.check()


def limit_check() -> None:
    """`_limit_check_()` at the top of a script's except/finally blocks: an exhausted budget stays so."""
    budget = active_budget()
    if budget is not None and budget.exhausted:
        raise budget.fail()


# -- sizes --------------------------------------------------------------------------------------

_CONTAINERS = (list, tuple, set, frozenset)
_MOMENTS = (datetime, date, dtime, timedelta)


def json_size(value, limit: int, *, data_only: bool = False) -> int:
    """Roughly how many characters `value` takes as JSON; stops counting once past `limit`.

    Walks without recursion and without remembering what it saw, so a structure that holds the
    same big list many times counts it each time — as JSON (or `str`) would write it out. With
    `data_only`, a function or lazy iterator inside is refused: code that reads the task data
    later (outside any budget) would run the script's code by iterating or calling it.
    """
    total, stack = 0, [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is str:
            total += len(item) + 2
        elif kind is dict:
            total += 2 + 4 * len(item)
            if total <= limit:
                extend(item.keys())
                extend(item.values())
        elif kind is list or kind is tuple:
            total += 2 + len(item)
            if total <= limit:
                extend(item)
        elif item is None or kind is bool or kind is float:
            total += 5
        elif kind is int:
            total += item.bit_length() * 30103 // 100000 + 2  # decimal digits from bits
        else:
            total += _other_size(item, stack, limit - total, data_only)
        if total > limit:
            return total
    return total


def _other_size(item, stack: list, room: int, data_only: bool) -> int:
    if data_only and (callable(item) or hasattr(item, "__next__")):
        raise ScriptLimitError(f"a {type(item).__name__} object, which is not data (turn it into a list or value)")
    if isinstance(item, (str, bytes)):
        return len(item) + 2
    if isinstance(item, bool) or item is None or isinstance(item, float):
        return 5
    if isinstance(item, int):
        return item.bit_length() * 30103 // 100000 + 2
    if isinstance(item, dict):
        if 4 * len(item) <= room:
            stack.extend(item.keys())
            stack.extend(item.values())
        return 2 + 4 * len(item)
    if isinstance(item, _CONTAINERS):
        if len(item) <= room:
            stack.extend(item)
        return 2 + len(item)
    return 34 if isinstance(item, _MOMENTS) else 32


def check_output(value, what: str = "value") -> None:
    limit = _limits.output_bytes
    try:
        size = json_size(value, limit, data_only=True)
    except ScriptLimitError as exc:
        raise ScriptLimitError(f"the {what} holds {exc}") from None
    if size > limit:
        raise ScriptLimitError(f"the {what} is larger than the output limit of {_kb(limit)} "
                               f"(at least {_kb(size)} as JSON)")


def _kb(size: int) -> str:
    return f"{size / 1024:.0f} KB" if size >= 1024 else f"{size} bytes"
