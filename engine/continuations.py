"""Continuing an instance outside any user's request: a timer fired, or a worker ran a slow operator.

Each is one command in one transaction with the same optimistic lock as the API (a concurrent
completion makes one of them fail with 409 and try again); the job is marked done in that same
transaction, so the effect happens once even when a worker dies and the job is run again.
"""
from __future__ import annotations

from datetime import datetime
from uuid import UUID

from SpiffWorkflow.util.task import TaskState
from sqlalchemy.orm import Session

from . import audit, runtime, timers
from .errors import Conflict, WorkflowFailure
from .jobs import queue
from .models import Job, ProcessInstance


def fire_timer(session: Session, job: Job, now: datetime) -> bool:
    """Fire the job's timer if it still waits; True if the instance moved on."""
    if session.get(ProcessInstance, job.instance_id) is None:
        queue.finish(job, now)
        return False
    command, instance, version, workflow = runtime.open_instance(session, job.instance_id, now=now)
    task = timers.mark_fired(workflow, job.ref, now)
    if task is None:
        waiting = timers.waiting_timers(workflow)
        if job.ref in waiting:  # its moment moved later (the expression was evaluated again)
            _wait_until(job, waiting[job.ref][1])
        else:  # the approval was decided or the branch cancelled meanwhile
            queue.finish(job, now)
        return False
    audit.record(session, "timer_fired", change_id=instance.change_id, element_id=task.task_spec.bpmn_id,
                 data={"name": task.task_spec.bpmn_name or task.task_spec.bpmn_id})
    runtime.advance(command, workflow, version)
    runtime.save_and_sync(command, instance, workflow, version)
    queue.finish(job, now)
    return True


def _wait_until(job: Job, moment: datetime) -> None:
    job.status, job.lease_until, job.due_at = "pending", None, moment
    job.attempts = max(job.attempts - 1, 0)


def resume_service_task(session: Session, job: Job, now: datetime) -> bool:
    """Run the operator of a service task that waits for a worker, then let the instance go on."""
    if session.get(ProcessInstance, job.instance_id) is None:
        queue.finish(job, now)
        return False
    command, instance, version, workflow = runtime.open_instance(session, job.instance_id, in_worker=True, now=now)
    task = workflow.get_task_from_id(UUID(job.ref))
    if task is None or task.state != TaskState.STARTED:
        queue.finish(job, now)  # finished already (a retry of a job whose effect committed)
        return False
    try:
        task.task_spec._execute(task)  # the operator, in this transaction; sets the result variable
    except Exception as exc:
        if runtime.database_contention(exc):
            raise Conflict("Another update to related changes happened at the same time; try again.") from exc
        raise WorkflowFailure(f"'{task.task_spec.bpmn_name or task.task_spec.bpmn_id}' failed: {exc}",
                              element_id=task.task_spec.bpmn_id, process_key=version.process_key,
                              change_id=instance.change_id) from exc
    task.complete()
    runtime.advance(command, workflow, version)
    runtime.save_and_sync(command, instance, workflow, version)
    queue.finish(job, now)
    return True
