"""The registry of service-task operators (`spiffworkflow:serviceTaskOperator id="…"`).

An operator is a function `(command, task, **params) -> JSON-able result`. It runs inside the
command's transaction, so whatever it writes commits or rolls back with the workflow state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import audit
from .command import Command
from .db import utcnow

CHANGE_STATES = ("new", "assess", "authorize", "scheduled", "implement", "review", "closed", "canceled")
FINAL_STATES = ("closed", "canceled")


@dataclass(frozen=True)
class Operator:
    name: str
    func: Callable
    description: str


OPERATORS: dict[str, Operator] = {}


def operator(name: str):
    def register(func):
        OPERATORS[name] = Operator(name, func, (func.__doc__ or "").strip().splitlines()[0])
        return func
    return register


def run_operator(name: str, command: Command | None, task, params: dict):
    if name not in OPERATORS:
        raise LookupError(f"unknown operator '{name}'")
    if command is None:
        raise RuntimeError("operators need a command context")
    return OPERATORS[name].func(command, task, **params)


@operator("set_state")
def set_state(command: Command, task, state: str):
    """Move the change to an ITIL state (new, assess, authorize, scheduled, implement, review, closed, canceled)."""
    if state not in CHANGE_STATES:
        raise ValueError(f"'{state}' is not a change state; use one of {', '.join(CHANGE_STATES)}")
    change = command.change
    previous = change.state
    if previous == state:
        return {"state": state}
    change.state = state
    if state == "authorize":
        change.approval_round += 1  # a new round: earlier decisions no longer count
    change.closed_at = utcnow() if state in FINAL_STATES else None
    audit.record(command.session, "state_changed", actor=command.actor, change_id=change.id,
                 element_id=task.task_spec.bpmn_id, data={"from": previous, "to": state})
    return {"state": state}
