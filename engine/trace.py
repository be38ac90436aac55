"""The full story of one change, for auditors: events, tasks, approvals, incidents, diagram path,
evidence (and what is still required), follow-up actions."""
from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from .audit_chain import chain_of, verify_events
from .evidence_rules import evidence_status
from .follow_ups import change_follow_ups
from .models import Approval, AuditEvent, Evidence, Incident, Job, Notification, ProcessInstance, Task, User
from .runtime import load_workflow, workflow_elements


def change_trace(session: Session, change) -> dict:
    instance = session.scalar(select(ProcessInstance).where(ProcessInstance.change_id == change.id))
    # chain order: the order verify checks, so what the trace shows is what the hashes vouch for
    events = session.scalars(select(AuditEvent).where(AuditEvent.chain == chain_of(change.id))
                             .order_by(AuditEvent.seq)).all()
    tasks = session.scalars(select(Task).where(Task.change_id == change.id)
                            .order_by(Task.created_at, Task.id)).all()
    approvals = session.scalars(select(Approval).where(Approval.change_id == change.id)
                                .order_by(Approval.id)).all()
    incidents = session.scalars(select(Incident).where(Incident.change_id == change.id)
                                .order_by(Incident.id)).all()
    evidence = session.scalars(select(Evidence).where(Evidence.change_id == change.id)
                               .order_by(Evidence.uploaded_at, Evidence.id)).all()
    notifications = session.scalars(select(Notification).where(Notification.change_id == change.id)
                                    .options(selectinload(Notification.endpoint)).order_by(Notification.id)).all()
    _load_people(session, [*tasks, *approvals, *incidents, *evidence, *notifications])
    diagram, waits = None, []
    if instance is not None:
        workflow = load_workflow(session, instance)
        completed, active = workflow_elements(workflow)
        waits = _waits(session, instance, workflow)
        version = instance.process_version
        diagram = {
            "process_key": version.process_key,
            "version": version.version,
            "bpmn_xml": version.bpmn_xml,
            "completed_element_ids": completed,
            "active_element_ids": active,
        }
    return {"change": change, "events": events, "audit_chain": _chain_status(change, events), "tasks": tasks,
            "approvals": approvals, "incidents": incidents, "diagram": diagram, "evidence": _evidence(evidence),
            "evidence_requirements": evidence_status(
                session, change, instance.process_version if instance is not None else None),
            "follow_ups": change_follow_ups(session, change),
            "notifications": notifications,
            "waiting_for": waits}


# The people each kind of row names (relationship → its foreign key), all shown by name.
PEOPLE = {Task: ("assignee", "completed_by"), Approval: ("approver", "recorded_by"), Incident: ("actor",),
          Evidence: ("uploaded_by",), Notification: ("recipient",)}


def _load_people(session: Session, rows) -> None:
    """Every person the rows name, in one query: lazy loading would ask once per person, and a trace
    names many (evidence uploaders, everyone notified, CAB approvers)."""
    ids = {getattr(row, f"{name}_id") for row in rows for name in PEOPLE[type(row)]} - {None}
    people = {user.id: user for user in session.scalars(select(User).where(User.id.in_(ids)))} if ids else {}
    for row in rows:
        for name in PEOPLE[type(row)]:
            set_committed_value(row, name, people.get(getattr(row, f"{name}_id")))


def _chain_status(change, events) -> dict:
    """Whether the change's chain checks out; keep head_hash elsewhere to notice a rewrite later."""
    chain = chain_of(change.id)
    count, broken = verify_events(chain, events)
    return {"chain": chain, "events": count, "head_hash": events[-1].hash if events else None,
            "intact": broken is None and count > 0,
            "first_broken": broken.describe() if broken else None if count else "the change has no audit events"}


def _waits(session: Session, instance, workflow) -> list[dict]:
    """Timers and background service tasks the instance waits for, with the element each belongs to."""
    jobs = session.scalars(select(Job).where(Job.instance_id == instance.id, Job.kind.in_(("timer", "service_task")),
                                             Job.status.in_(("pending", "running", "failed")))
                           .order_by(Job.due_at)).all()
    waits = []
    for job in jobs:
        task = workflow.get_task_from_id(UUID(job.ref))
        waits.append({"kind": job.kind, "element_id": getattr(task.task_spec, "bpmn_id", None) if task else None,
                      "status": job.status, "due_at": job.due_at, "attempts": job.attempts,
                      "last_error": job.last_error})
    return waits


def _evidence(rows) -> list[dict]:
    """Every evidence row, superseded ones too (`current` is false for those), oldest first."""
    superseded = {row.supersedes_id for row in rows if row.supersedes_id is not None}
    return [{"id": row.id, "kind": row.kind, "filename": row.filename, "content_type": row.content_type,
             "size": row.size, "sha256": row.sha256, "url": row.url, "note": row.note, "version": row.version,
             "supersedes_id": row.supersedes_id, "current": row.id not in superseded,
             "uploaded_by": row.uploaded_by, "uploaded_at": row.uploaded_at} for row in rows]
