"""Who hears what. Each function picks the recipients for one kind of event and hands them to the
outbox (`engine.outbox`), inside the transaction of the change that causes it.

- approvers (or the assignee) when a task is waiting for them;
- requesters when their change is approved, rejected, scheduled, closed or canceled;
- owners of the affected and dependent services when a change is scheduled, and 24 h before its window;
- change managers on escalations (overdue approvals, new conflicts, overdue follow-up actions).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import utcnow
from .memo import role_holders
from .models import Approval, Change, FollowUpAction, Notification, Task, User
from .notification_templates import TEMPLATES
from .outbox import notify as write
from .service_map import impacted_services

REMINDER_BEFORE = timedelta(hours=24)


def service_owners(session: Session, change: Change) -> list[User]:
    """Owners of the change's services and of every service that depends on them."""
    ids = {s.owner_id for s in change.services if s.owner_id}
    ids |= {row["owner_id"] for row in impacted_services(session, [s.id for s in change.services]) if row.get("owner_id")}
    return list(session.scalars(select(User).where(User.id.in_(ids), User.active.is_(True)).order_by(User.username)))


def audience(session: Session, change: Change, name: str) -> list[User]:
    if name == "service_owners":
        return service_owners(session, change)
    if name == "change_managers":
        return role_holders(session, "change_manager")
    if name == "requester":
        return [change.requester]
    if name == "implementer":
        return [change.implementer] if change.implementer else []
    raise ValueError(f"unknown audience '{name}'; use service_owners, change_managers, requester or implementer")


def send(session: Session, template: str, change: Change, audience_name: str, *, dedupe: str,
         now: datetime | None = None) -> list[Notification]:
    """The `notify` service task: a template to a named audience."""
    if template == "change_scheduled":
        return change_scheduled(session, change)
    if template == "approval_overdue":
        return approval_overdue(session, change, audience(session, change, audience_name), dedupe=dedupe,
                                now=now or utcnow())
    if template not in TEMPLATES:
        raise ValueError(f"unknown notification template '{template}'; known: {', '.join(sorted(TEMPLATES))}")
    return write(session, template, change, audience(session, change, audience_name), dedupe=dedupe)


def change_scheduled(session: Session, change: Change) -> list[Notification]:
    """Owners hear what, when, risk and rollback plan, with a reminder before the window; so does the requester."""
    dedupe = change.planned_start.isoformat() if change.planned_start else ""
    owners = service_owners(session, change)
    sent = write(session, "change_scheduled", change, owners, dedupe=dedupe)
    if change.planned_start:
        sent += write(session, "window_reminder", change, owners, dedupe=dedupe,
                      send_after=max(utcnow(), change.planned_start - REMINDER_BEFORE),
                      planned_start=change.planned_start.isoformat())
    sent += write(session, "request_scheduled", change, [change.requester], dedupe=dedupe)
    return sent


def state_changed(session: Session, change: Change, previous: str, state: str) -> list[Notification]:
    """The requester hears of approval (authorize → onwards), rejection (back to new), closure and cancellation."""
    requester = [change.requester]
    dedupe = f"round{change.approval_round}"
    if state == "new" and previous not in ("new", None):
        rejection = session.scalar(select(Approval).where(
            Approval.change_id == change.id, Approval.decision == "reject").order_by(Approval.id.desc()))
        return write(session, "request_rejected", change, requester, dedupe=dedupe,
                     comment=rejection.comment if rejection else "")
    if previous == "authorize" and state not in ("new", "canceled", "authorize"):
        return write(session, "request_approved", change, requester, dedupe=dedupe)
    if state in ("closed", "canceled"):
        return write(session, "request_closed", change, requester, dedupe=state,
                     close_code=change.close_code or state)
    return []


def task_waiting(session: Session, task: Task) -> list[Notification]:
    """The assignee, or every holder of the task's role who may act on it (segregation of duties)."""
    from .approvals import sod_refused_ids

    if task.assignee is not None:
        people = [task.assignee]
    else:
        refused = sod_refused_ids(session, task)
        people = [u for u in role_holders(session, task.role) if u.id not in refused]
    due = f" (due {task.due_at:%a %d %b %H:%M} UTC)" if task.due_at else ""
    return write(session, "task_waiting", task.change, people, dedupe=task.id, task=task.name, due_phrase=due)


def approval_overdue(session: Session, change: Change, people: list[User], *, dedupe: str,
                     now: datetime) -> list[Notification]:
    """Escalation from an approval SLA timer: lists the approvals still open and how long they waited."""
    open_tasks = session.scalars(select(Task).where(
        Task.change_id == change.id, Task.status == "ready", Task.approval_step.is_not(None))
        .order_by(Task.created_at)).all()
    lines = [f"- {t.name}: waiting {_age(now - t.created_at)}, "
             f"{'assigned to ' + t.assignee.username if t.assignee else 'unclaimed (' + t.role + ')'}"
             for t in open_tasks] or ["- (the approval was decided meanwhile)"]
    return write(session, "approval_overdue", change, people, dedupe=dedupe, waiting="\n".join(lines))


def follow_up_overdue(session: Session, action: FollowUpAction) -> list[Notification]:
    people = ([action.owner] if action.owner else []) + role_holders(session, "change_manager")
    return write(session, "follow_up_overdue", session.get(Change, action.change_id), people, dedupe=f"{action.id}:{action.due_date}",
                 action=action.action, due_date=str(action.due_date),
                 owner=action.owner.username if action.owner else "unassigned")


def _age(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours // 24} d {hours % 24} h" if hours >= 24 else f"{hours} h"
