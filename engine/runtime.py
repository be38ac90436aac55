"""Running change processes: start, claim, complete — each one command in one transaction.

A command loads the instance's state, lets SpiffWorkflow run to the next wait state, saves the
state (optimistic lock on `lock_version`) and rewrites the rows the API reads: the change's
columns, the inbox tasks, approvals and audit events. The caller commits; any failure rolls all
of it back (see `engine.transactions`).
"""
from __future__ import annotations

from uuid import UUID

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, PendingRollbackError
from sqlalchemy.orm import Session, joinedload
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState

from . import audit, notify
from .bpmn.specs import FORMS, SPECS
from .command import Command
from .db import utcnow
from .errors import Conflict, Forbidden, NotFound, ValidationFailed, WorkflowFailure
from .forms import validate_form
from .models import Approval, Assessment, Change, ProcessInstance, ProcessVersion, Task, TaskDraft, User
from .approvals import RULE, sod_refusal, tally
from .permissions import can, require_task_actor
from .projection import apply_form_to_change, parse_duration
from .roles import role_from_lane
from .scripting import ChangeflowScriptEngine
from .workflow_store import dump_state, load_state

# Deep rework loops make deep task trees; SpiffWorkflow's iterator stops at depth 1000 by default.
MAX_DEPTH = 1_000_000


def start_process(session: Session, change: Change, version: ProcessVersion, actor: User,
                  initial_data: dict) -> ProcessInstance:
    spec, subprocess_specs = SPECS.get(version)
    command = Command(session, actor, change, version.process_key)
    command.timers_at_load, command.fresh_instance = set(), True  # nothing waited before this command
    workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=ChangeflowScriptEngine(command))
    for task in workflow.get_tasks(state=TaskState.READY, max_depth=MAX_DEPTH):
        task.data.update(initial_data)
    instance = ProcessInstance(change_id=change.id, process_version_id=version.id, state="{}")
    instance.process_version = version
    session.add(instance)
    advance(command, workflow, version)
    save_and_sync(command, instance, workflow, version)
    return instance


def get_task(session: Session, task_id: str) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound(f"Task {task_id} does not exist.")
    return task


# Built once (building it cost ~0.6 ms of every completion).
_TASK_WITH_INSTANCE = (
    select(Task, ProcessInstance, ProcessVersion, TaskDraft.task_id.is_not(None).label("has_draft"))
    .join(ProcessInstance, ProcessInstance.id == Task.instance_id)
    .join(ProcessVersion, ProcessVersion.id == ProcessInstance.process_version_id)
    .outerjoin(TaskDraft, TaskDraft.task_id == Task.id)
    .where(Task.id == bindparam("task_id")).options(joinedload(Task.change)))


def _task_with_instance(session: Session, task_id: str) -> tuple[Task, ProcessInstance, ProcessVersion, bool]:
    """The task, its change, instance and process version, and whether it has a draft: what every
    completion reads, in one query."""
    row = session.execute(_TASK_WITH_INSTANCE, {"task_id": task_id}).first()
    if row is None:
        raise NotFound(f"Task {task_id} does not exist.")
    return row.Task, row.ProcessInstance, row.ProcessVersion, bool(row.has_draft)


def claim_task(session: Session, task_id: str, user: User) -> Task:
    task = get_task(session, task_id)
    _require_ready(task)
    if task.assignee_id == user.id:
        return task
    if task.assignee_id is not None:
        raise Conflict(f"This task is already claimed by {task.assignee.username}.")
    require_task_actor(user, task)
    refusal = sod_refusal(session, user, task)
    if refusal:
        raise Forbidden(refusal, rule=RULE)
    claimed = session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status == "ready", Task.assignee_id.is_(None))
        .values(assignee_id=user.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        raise Conflict("Someone else claimed this task first.")
    session.refresh(task)
    audit.record(session, "task_claimed", actor=user, change_id=task.change_id,
                 element_id=task.element_id, task_id=task.id)
    return task


def unclaim_task(session: Session, task_id: str, user: User) -> Task:
    task = get_task(session, task_id)
    _require_ready(task)
    if task.assignee_id != user.id:
        raise Conflict("Only the person who holds a task can give it back.") if task.assignee_id else \
            Conflict("This task is not claimed.")
    released = session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status == "ready", Task.assignee_id == user.id)
        .values(assignee_id=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if released != 1:
        raise Conflict("The task changed while it was being released.")
    session.refresh(task)
    audit.record(session, "task_unclaimed", actor=user, change_id=task.change_id,
                 element_id=task.element_id, task_id=task.id)
    return task


def complete_task(session: Session, task_id: str, user: User, data: dict, *,
                  override_reason: str | None = None, cab_meeting_id: int | None = None,
                  recorded_by: User | None = None, evidence_reviewed: list | None = None) -> Task:
    """Submit a task's form. For approvals, segregation of duties applies unless an admin overrides
    it with a reason; a CAB chair may record a member's decision taken in a meeting."""
    task, instance, version, has_draft = _task_with_instance(session, task_id)
    _require_ready(task)
    require_task_actor(user, task)
    override = _segregation_of_duties(session, task, user, override_reason)
    if task.form:
        validate_form(FORMS.get(version)[task.form], data, form_name=task.form)
    change = task.change
    command = Command(session, user, change, version.process_key)
    workflow = _load(instance, version, command)
    spiff_task = workflow.get_task_from_id(UUID(task.id))
    if spiff_task is None or spiff_task.state != TaskState.READY:
        raise Conflict("This task is no longer waiting for input.")

    apply_form_to_change(session, change, data)
    task.status, task.completed_at, task.completed_by_id, task.data = "completed", utcnow(), user.id, data
    if has_draft:
        command.void_drafts.append(task.id)
    task.assignee_id = task.assignee_id or user.id
    audit.record(session, "task_completed", actor=recorded_by or user, change_id=change.id,
                 element_id=task.element_id, task_id=task.id,
                 data={"name": task.name, "submitted": data, "on_behalf_of": user.username if recorded_by else None})
    # Risk facts are looked up when a decision reads them (engine.bpmn.parser), the approvers when a
    # step names them (engine.scripting.APPROVAL_FACTS): not on every step.
    spiff_task.set_data(**data)
    if task.approval_step:
        _record_approval(session, task, user, data, override=override, cab_meeting_id=cab_meeting_id,
                         recorded_by=recorded_by, evidence_reviewed=evidence_reviewed or [])
        spiff_task.set_data(approval_tally=tally(session, change, task.approval_step))
    advance(command, workflow, version, first=spiff_task)
    save_and_sync(command, instance, workflow, version)
    return task


def _segregation_of_duties(session: Session, task: Task, user: User, override_reason: str | None) -> str | None:
    """Raise 403 naming the rule, unless an admin overrides it; return the override reason used."""
    refusal = sod_refusal(session, user, task)
    if refusal is None:
        return None
    if not (override_reason or "").strip():
        raise Forbidden(refusal, rule=RULE)
    if not can(user, "task.override_sod"):
        raise Forbidden(f"{refusal} Only an admin may override segregation of duties.", rule=RULE)
    audit.record(session, "sod_override", actor=user, change_id=task.change_id, element_id=task.element_id,
                 task_id=task.id, data={"rule": refusal, "reason": override_reason.strip()})
    return override_reason.strip()


def load_workflow(session: Session, instance: ProcessInstance) -> BpmnWorkflow:
    """A read-only view of an instance's workflow (for traces); nothing run here is saved."""
    return _load(instance, instance.process_version, None)


def open_instance(session: Session, instance_id: int, actor: User | None = None, *, in_worker: bool = False,
                  now=None):
    """(command, instance, version, workflow) for continuing an instance outside a user's request."""
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"Process instance {instance_id} does not exist.")
    version = instance.process_version
    command = Command(session, actor, instance.change, version.process_key, now=now or utcnow())
    return command, instance, version, _load(instance, version, command, in_worker=in_worker)


def save_and_sync(command: Command, instance: ProcessInstance, workflow: BpmnWorkflow,
                  version: ProcessVersion) -> None:
    """Save the state (optimistic lock), rewrite the inbox rows, and record what the instance now waits
    for: timers (jobs due when they fire) and service tasks left for a worker."""
    from . import drafts, timers
    from .jobs import queue

    _save(command.session, instance, workflow)
    _sync_tasks(command, instance, workflow, version)
    command.fresh_instance = False  # its task rows exist now
    drafts.discard(command.session, command.void_drafts)  # a completed or cancelled task's draft is void
    command.void_drafts.clear()
    # synced: a second save in the same command starts from here
    command.timers_at_load = timers.sync(command.session, instance, workflow, known=command.timers_at_load)
    queue.schedule_unless_known(command.session, "service_task", [
        dict(ref=task_id, instance_id=instance.id, change_id=command.change.id,
             dedupe_key=f"service_task:{instance.id}:{task_id}") for task_id in command.deferred])
    command.deferred.clear()


def workflow_elements(workflow: BpmnWorkflow) -> tuple[list[str], list[str]]:
    """(completed element ids in order of completion, active element ids) for diagram highlighting."""
    completed, active = [], []
    for task in sorted(workflow.get_tasks(max_depth=MAX_DEPTH), key=lambda t: t.last_state_change):
        bpmn_id = getattr(task.task_spec, "bpmn_id", None)
        if not bpmn_id:
            continue
        if task.has_state(TaskState.COMPLETED) and bpmn_id not in completed:
            completed.append(bpmn_id)
        elif task.has_state(TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR):
            active.append(bpmn_id)
    return completed, active


# -- internals ---------------------------------------------------------------------------------

def _require_ready(task: Task) -> None:
    if task.status != "ready":
        raise Conflict(f"This task is {task.status}; it no longer takes input.")


def _load(instance: ProcessInstance, version: ProcessVersion, command: Command | None, *,
          in_worker: bool = False) -> BpmnWorkflow:
    from . import timers

    spec, subprocess_specs = SPECS.get(version)
    workflow = load_state(instance.state, spec, subprocess_specs, ChangeflowScriptEngine(command, in_worker=in_worker))
    if command is not None:
        command.timers_at_load = set(timers.waiting_timers(workflow))
    return workflow


def advance(command: Command, workflow: BpmnWorkflow, version: ProcessVersion, first=None) -> None:
    """Run the engine to the next wait state; failures become WorkflowFailure naming the element."""
    try:
        if first is not None:
            first.run()
        workflow.do_engine_steps()
        # do_engine_steps refreshes timers last: a timer already due (a planned start in the past)
        # is READY only now, so run again until nothing is left to run.
        for _ in range(100):
            if not any(not t.task_spec.manual for t in workflow.get_tasks(state=TaskState.READY, max_depth=MAX_DEPTH)):
                break
            workflow.do_engine_steps()
    except SpiffWorkflowException as exc:
        if database_contention(exc):
            raise Conflict("Another update to related changes happened at the same time; try again.") from exc
        task = getattr(exc, "task", None)
        element_id = getattr(getattr(task, "task_spec", None), "bpmn_id", None)
        raise WorkflowFailure(_describe(exc, task), element_id=element_id,
                              process_key=version.process_key, change_id=command.change.id) from exc
    except Exception as exc:
        raise WorkflowFailure(f"{type(exc).__name__}: {exc}", element_id=None,
                              process_key=version.process_key, change_id=command.change.id) from exc


def database_contention(exc: BaseException) -> bool:
    """A service task lost a race in the database (unique key, deadlock): a conflict, not an incident."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (IntegrityError, OperationalError, PendingRollbackError)):
            return True
        exc = getattr(exc, "exception", None) or exc.__cause__ or exc.__context__
    return False


def _describe(exc: SpiffWorkflowException, task) -> str:
    name = getattr(getattr(task, "task_spec", None), "bpmn_name", None)
    where = f"'{name}' " if name else ""
    # SpiffWorkflow's notes often repeat the task name ("Business Rule Task 'X'."); keep the rest.
    notes = "; ".join(n for n in getattr(exc, "notes", []) or [] if not (name and f"'{name}'" in n))
    message = f"{where}failed: {exc}"
    return f"{message} ({notes})" if notes else message


def _save(session: Session, instance: ProcessInstance, workflow: BpmnWorkflow) -> None:
    instance.state = dump_state(workflow)
    instance.status = "completed" if workflow.is_completed() else "running"
    # Flush the versioned UPDATE before anything else so a concurrent writer fails fast with
    # StaleDataError instead of colliding on the task rows both would insert.
    session.flush()


def _sync_tasks(command: Command, instance: ProcessInstance, workflow: BpmnWorkflow,
                version: ProcessVersion) -> None:
    session = command.session
    change = command.change
    ready = {
        str(t.id): t
        for t in workflow.get_tasks(state=TaskState.READY, manual=True, max_depth=MAX_DEPTH)
    }
    open_rows, with_drafts = [], set()
    for row, has_draft in () if command.fresh_instance else session.execute(
            select(Task, TaskDraft.task_id.is_not(None)).outerjoin(TaskDraft, TaskDraft.task_id == Task.id)
            .where(Task.instance_id == instance.id, Task.status == "ready")):
        open_rows.append(row)
        if has_draft:
            with_drafts.add(row.id)
    for row in open_rows:
        if row.id not in ready:
            row.status = "cancelled"
            if row.id in with_drafts:
                command.void_drafts.append(row.id)
            audit.record(session, "task_cancelled", change_id=change.id, element_id=row.element_id,
                         task_id=row.id)
    known = {row.id for row in open_rows}
    for task_id, spiff_task in ready.items():
        if task_id in known:
            continue
        row = _task_row(session, instance, change, spiff_task)
        session.add(row)
        audit.record(session, "task_created", change_id=change.id, element_id=row.element_id,
                     task_id=row.id, data={"name": row.name, "role": row.role,
                                           "assignee": row.assignee.username if row.assignee else None})
        notify.task_waiting(session, row)
    _project_assessment(session, change, workflow)


def _task_row(session: Session, instance, change: Change, spiff_task) -> Task:
    spec = spiff_task.task_spec
    props = (spec.extensions or {}).get("properties", {})
    now = utcnow()
    assignee = None
    if props.get("assigneeVariable"):
        username = spiff_task.data.get(props["assigneeVariable"])
        if username:
            assignee = session.scalar(select(User).where(User.username == str(username)))
    due_at = None
    if props.get("dueIn"):
        due_at = now + parse_duration(props["dueIn"], "dueIn")
    return Task(
        id=str(spiff_task.id), instance_id=instance.id, change_id=change.id, change=change,
        element_id=spec.bpmn_id, name=spec.bpmn_name or spec.bpmn_id,
        role=role_from_lane(spec.lane) or "admin", status="ready", assignee=assignee,
        form=props.get("formJsonSchemaFilename"), ui_form=props.get("formUiSchemaFilename"),
        approval_step=props.get("approvalStep"), created_at=now, due_at=due_at,
    )


def _record_approval(session: Session, task: Task, user: User, data: dict, *, override: str | None,
                     cab_meeting_id: int | None, recorded_by: User | None, evidence_reviewed: list) -> None:
    decision = data.get("decision")
    if decision not in ("approve", "reject"):
        raise ValidationFailed("An approval needs a decision.",
                               errors=[{"field": "decision", "message": "must be 'approve' or 'reject'"}])
    session.add(Approval(change_id=task.change_id, task_id=task.id, step=task.approval_step,
                         approver_id=user.id, role=task.role, decision=decision,
                         comment=data.get("comment") or "", round=task.change.approval_round,
                         override_reason=override, cab_meeting_id=cab_meeting_id,
                         recorded_by_id=recorded_by.id if recorded_by else None,
                         evidence_reviewed=evidence_reviewed))
    session.flush()
    audit.record(session, "approval_decision", actor=recorded_by or user, change_id=task.change_id,
                 element_id=task.element_id, task_id=task.id,
                 data={"step": task.approval_step, "round": task.change.approval_round, "approver": user.username,
                       "decision": decision, "comment": data.get("comment") or "",
                       "cab_meeting_id": cab_meeting_id, "override_reason": override})


def _project_assessment(session: Session, change: Change, workflow: BpmnWorkflow) -> None:
    """Copy risk and priority computed by the process onto the change, keeping their history."""
    data = workflow.last_task.data if workflow.last_task is not None else workflow.data
    risk, reasons, priority = data.get("risk"), data.get("risk_reasons"), data.get("priority")
    if risk is None and priority is None:
        return
    reasons = list(reasons or [])
    if (risk, reasons, priority) == (change.risk, list(change.risk_reasons or []), change.priority):
        return
    change.risk, change.risk_reasons, change.priority = risk, reasons, priority
    session.add(Assessment(change_id=change.id, risk=risk, risk_reasons=reasons, priority=priority))
    audit.record(session, "risk_assessed", change_id=change.id,
                 data={"risk": risk, "risk_reasons": reasons, "priority": priority})
