"""The full story of one change, for auditors: events, tasks, approvals, incidents, diagram path."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Approval, AuditEvent, Incident, ProcessInstance, Task
from .runtime import load_workflow, workflow_elements


def change_trace(session: Session, change) -> dict:
    instance = session.scalar(select(ProcessInstance).where(ProcessInstance.change_id == change.id))
    events = session.scalars(select(AuditEvent).where(AuditEvent.change_id == change.id)
                             .order_by(AuditEvent.id)).all()
    tasks = session.scalars(select(Task).where(Task.change_id == change.id)
                            .order_by(Task.created_at, Task.id)).all()
    approvals = session.scalars(select(Approval).where(Approval.change_id == change.id)
                                .order_by(Approval.id)).all()
    incidents = session.scalars(select(Incident).where(Incident.change_id == change.id)
                                .order_by(Incident.id)).all()
    diagram = None
    if instance is not None:
        completed, active = workflow_elements(load_workflow(session, instance))
        version = instance.process_version
        diagram = {
            "process_key": version.process_key,
            "version": version.version,
            "bpmn_xml": version.bpmn_xml,
            "completed_element_ids": completed,
            "active_element_ids": active,
        }
    return {"change": change, "events": events, "tasks": tasks, "approvals": approvals,
            "incidents": incidents, "diagram": diagram}
