"""BPMN timers of running instances, kept as jobs due when each timer fires.

SpiffWorkflow keeps a waiting timer's moment in the task (`event_value`) and only notices it has
passed when someone calls `refresh_timers`. The database is the source of truth for *when*: after
every command each waiting timer has a `timer` job due at its moment, and a timer that no longer
waits (its approval was decided, its branch was cancelled) has its job cancelled.
"""
from __future__ import annotations

from datetime import datetime, timezone

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy.orm import Session

from .jobs import queue


def _moment(value) -> datetime | None:
    if isinstance(value, dict):  # a cycle timer: its next occurrence
        value = value.get("next")
    if not value:
        return None
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def waiting_timers(workflow) -> dict[str, tuple[object, datetime]]:
    """task id → (task, moment) for every timer event that waits."""
    found = {}
    for task in workflow.event_manager.tasks.values():
        definition = getattr(task.task_spec, "event_definition", None)
        if not isinstance(definition, TimerEventDefinition) or not task.has_state(TaskState.WAITING):
            continue
        moment = _moment(definition.details(task).value)
        if moment is not None:
            found[str(task.id)] = (task, moment)
    return found


def sync(session: Session, instance, workflow, known: set[str] | None = None) -> set[str]:
    """Give every waiting timer its job and cancel the jobs of timers that no longer wait; returns
    the ids of the timers that wait now.

    `known`: the timers that waited when the command loaded the state. The command that saved that
    state synced them, so when the same timers wait now there is nothing to write.
    """
    timers = waiting_timers(workflow)
    waiting = set(timers)
    if known == waiting:
        return waiting
    queue.schedule_unless_known(session, "timer", [
        dict(ref=task_id, due_at=moment, instance_id=instance.id, change_id=instance.change_id,
             dedupe_key=f"timer:{instance.id}:{task_id}")
        for task_id, (_task, moment) in timers.items()])
    if known is None or known - waiting:
        queue.cancel_timers(session, instance.id, keep=waiting)
    return waiting


def mark_fired(workflow, task_id: str, now: datetime) -> object | None:
    """Let the timer fire if its moment has come by `now` (the job's clock); the waiting task, or None."""
    task = waiting_timers(workflow).get(task_id)
    if task is None or task[1] > now:
        return None
    task[0]._set_internal_data(event_fired=True)
    return task[0]
