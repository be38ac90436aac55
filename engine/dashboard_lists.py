"""The lists behind the dashboards' approval and overdue numbers (engine/dashboards.py counts them).

The conditions are the figures' own, so following a bar's link lists exactly what the bar counted.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from .change_filters import InvalidFilter
from .dashboards import OVERDUE_KINDS
from .db import utcnow
from .models import Change, FollowUpAction, Task, User
from .permissions import require
from .roles import ROLES

LIMIT = 500  # a list longer than this says how many it left out


def _listed(session: Session, query, order) -> tuple[list, int]:
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    return list(session.scalars(query.order_by(*order).limit(LIMIT))), total


def _tasks(session: Session, query) -> tuple[list[Task], int]:
    query = query.options(selectinload(Task.change), selectinload(Task.assignee))
    return _listed(session, query, (Task.created_at, Task.id))


def pending_approval_tasks(session: Session, user: User, *, approver: str | None = None,
                           role: str | None = None) -> tuple[list[Task], int]:
    """Approval tasks waiting for a decision, oldest first: all, those assigned to `approver`, or the
    unassigned ones of `role` (the pool anyone holding it may decide)."""
    require(user, "dashboard.read")
    query = select(Task).where(Task.status == "ready", Task.approval_step.is_not(None))
    if approver:
        person = session.scalar(select(User).where(User.username == approver))
        if person is None:
            raise InvalidFilter(f"There is no user '{approver}'.", field="approver")
        query = query.where(Task.assignee_id == person.id)
    elif role:
        if role not in ROLES:
            raise InvalidFilter(f"Unknown role '{role}'; use one of {', '.join(ROLES)}.", field="role")
        query = query.where(Task.assignee_id.is_(None), Task.role == role)
    return _tasks(session, query)


def overdue_items(session: Session, user: User, kind: str | None = None,
                  now: datetime | None = None) -> dict[str, tuple[list, int]]:
    """The overdue approvals, other tasks and follow-up actions (or one `kind` of them), most overdue
    first; each kind as (rows, total). Tasks are Task rows; actions are {action, change}."""
    require(user, "dashboard.read")
    if kind is not None and kind not in OVERDUE_KINDS:
        raise InvalidFilter(f"Unknown kind '{kind}'; use one of {', '.join(OVERDUE_KINDS)}.", field="kind")
    now = now or utcnow()
    found = {}
    late = select(Task).where(Task.status == "ready", Task.due_at.is_not(None), Task.due_at < now)
    if kind in (None, "approvals"):
        found["approvals"] = _listed(session, late.where(Task.approval_step.is_not(None))
                                     .options(selectinload(Task.change), selectinload(Task.assignee)),
                                     (Task.due_at, Task.id))
    if kind in (None, "tasks"):
        found["tasks"] = _listed(session, late.where(Task.approval_step.is_(None))
                                 .options(selectinload(Task.change), selectinload(Task.assignee)),
                                 (Task.due_at, Task.id))
    if kind in (None, "actions"):
        actions = (select(FollowUpAction, Change).join(Change, Change.id == FollowUpAction.change_id)
                   .where(FollowUpAction.status == "open", FollowUpAction.due_date.is_not(None),
                          FollowUpAction.due_date < now.date()))
        total = session.scalar(select(func.count()).select_from(actions.subquery()))
        rows = session.execute(actions.options(selectinload(FollowUpAction.owner))
                               .order_by(FollowUpAction.due_date, FollowUpAction.id).limit(LIMIT)).all()
        found["actions"] = ([{"action": a, "change": c} for a, c in rows], total)
    return found
