"""The registry of service-task operators (`spiffworkflow:serviceTaskOperator id="…"`).

An operator is a function `(command, task, **params) -> JSON-able result`. It runs inside the
command's transaction, so whatever it writes commits or rolls back with the workflow state.
A `background` operator (slow or external) does not run in the request: the service task waits
and a worker runs the operator later, continuing the instance in its own transaction.
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
    background: bool = False


OPERATORS: dict[str, Operator] = {}


def operator(name: str, *, background: bool = False):
    def register(func):
        OPERATORS[name] = Operator(name, func, (func.__doc__ or "").strip().splitlines()[0], background)
        return func
    return register


def runs_in_background(name: str) -> bool:
    return name in OPERATORS and OPERATORS[name].background


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
    from . import notify

    notify.state_changed(command.session, change, previous, state)
    return {"state": state}


@operator("detect_conflicts", background=True)
def detect_conflicts(command: Command, task):
    """Check the planned window for conflicts; record them and escalate new ones once scheduled (on a worker)."""
    from . import conflict_records

    found, new = conflict_records.refresh(command.session, command.change)
    blocking = [c for c in found if c.severity == "blocking"]
    return {"blocking": bool(blocking), "blackout": any(c.kind == "blackout" for c in found),
            "count": len(found), "new": len(new),
            "conflicts": [f"[{c.severity}] {c.message}" for c in found]}


@operator("notify")
def notify_audience(command: Command, task, template: str, audience: str = "service_owners"):
    """Queue a notification (template) for an audience (service_owners, change_managers, requester, implementer)."""
    from . import notify

    sent = notify.send(command.session, template, command.change, audience, now=command.now,
                       dedupe=f"{task.task_spec.bpmn_id}:{command.change.approval_round}:{task.id}")
    return {"queued": len(sent)}


@operator("check_evidence")
def check_evidence(command: Command, task, stage: str):
    """Compare the evidence required at a stage (implement, close; task data required_kind) with what is attached."""
    from .evidence_rules import check_task_data

    return check_task_data(command.session, command.change, stage, task.data, actor=command.actor,
                           element_id=task.task_spec.bpmn_id)


@operator("start_approval_round")
def start_approval_round(command: Command, task):
    """Start a new approval round: earlier decisions no longer count (e.g. owners accept again after a fix)."""
    change = command.change
    change.approval_round += 1
    audit.record(command.session, "approval_round_started", actor=command.actor, change_id=change.id,
                 element_id=task.task_spec.bpmn_id, data={"round": change.approval_round})
    return {"round": change.approval_round}
