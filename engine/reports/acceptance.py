"""Business acceptance still open at a moment: the service-owner and steering reports both list it.

An acceptance item is one *Business acceptance* task (approval step `business_acceptance`, one per
owner asked, one set per round). It was open at `end` when it had been created before `end` and was
neither completed nor withdrawn by then. The process withdraws a task by marking it `cancelled`
without a completion time; when it did so is only in the audit trail (`task_cancelled`), so a task
withdrawn after `end` still counts as open at `end`.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ..models import AuditEvent, Change, Task, User
from .model import Column, Table
from .sql import hours_between, instant

STEP = "business_acceptance"
WITHDRAWN = ("cancelled", "canceled")


def open_at(end: datetime):
    """SQL condition on Task: a business-acceptance task open at `end`."""
    moment = instant(end)
    withdrawn_later = select(AuditEvent.task_id).where(
        AuditEvent.kind == "task_cancelled", AuditEvent.task_id.isnot(None), AuditEvent.at >= moment)
    return and_(Task.approval_step == STEP, Task.created_at < moment,
                or_(Task.completed_at.is_(None), Task.completed_at >= moment),
                or_(Task.status.not_in(WITHDRAWN), Task.id.in_(withdrawn_later)))


def changes_open_at(end: datetime):
    """SQL condition on Change: it had at least one business-acceptance task open at `end`."""
    return Change.id.in_(select(Task.change_id).where(open_at(end)))


def items_table(session: Session, change_condition, end: datetime, *, label: str, limit: int = 200) -> Table:
    """The open items themselves, oldest first: which change, who was asked, since when, how late."""
    query = (select(Change.number, Change.title, Task.name, User.username, Task.role, Task.created_at, Task.due_at,
                    hours_between(session, Task.created_at, instant(end)).label("age"))
             .join(Change, Change.id == Task.change_id).outerjoin(User, User.id == Task.assignee_id)
             .where(open_at(end), change_condition)
             .order_by(Task.created_at, Change.id, Task.id))
    rows = [{"change": number, "title": title, "asked": f"{username} ({name})" if username else f"{role} role ({name})",
             "since": created.isoformat(), "due": due.isoformat() if due else "",
             "overdue": "yes" if due is not None and due < end else "no",
             "age_hours": round(float(age), 1)}
            for number, title, name, username, role, created, due, age in session.execute(query.limit(limit))]
    return Table("acceptance_items", f"Business acceptance open at the end of {label}", [
        Column("change", "Change", "text"), Column("title", "Title", "text"), Column("asked", "Asked", "text"),
        Column("since", "Asked at", "text"), Column("due", "Due", "text"), Column("overdue", "Overdue", "text"),
        Column("age_hours", "Open for", "hours")], rows,
        note=f"The first {limit} items." if len(rows) == limit else "")
