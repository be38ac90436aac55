"""The task inbox query: what a person may work on now."""
from __future__ import annotations

from sqlalchemy import func, not_, or_, select
from sqlalchemy.orm import Session, contains_eager, selectinload

from .approvals import sod_excluded, sod_excluded_task
from .models import Change, Service, Task, User, change_services
from .permissions import require


def inbox(session: Session, user: User, *, role: str | None = None, change_id: int | None = None,
          change_type: str | None = None, risk: str | None = None, service: str | None = None,
          limit: int = 500, offset: int = 0) -> list[Task]:
    """Ready tasks assigned to `user` or unclaimed for one of their roles — minus approvals that
    segregation of duties forbids them (they would only get a 403). Due first, then oldest first;
    `limit` and `offset` page through them (the order ends on the task id, so pages never overlap)."""
    require(user, "task.read")
    # The change comes from the join the query makes anyway, with only what an inbox row shows (the
    # API and the inbox page): a busy inbox has hundreds of rows, and whole changes cost more than
    # the tasks. Other attributes still load when read.
    stmt = (
        _waiting_for(user)
        .options(contains_eager(Task.change).load_only(Change.number, Change.title, Change.change_type, Change.risk),
                 selectinload(Task.assignee))
        .order_by(Task.due_at.is_(None), Task.due_at, Task.created_at, Task.id)
    )
    if role:
        stmt = stmt.where(Task.role == role)
    if change_id:
        stmt = stmt.where(Task.change_id == change_id)
    if change_type:
        stmt = stmt.where(Change.change_type == change_type)
    if risk:
        stmt = stmt.where(Change.risk == risk)
    if service:
        stmt = stmt.where(Change.id.in_(select(change_services.c.change_id)
                                        .join(Service, Service.id == change_services.c.service_id)
                                        .where(Service.key == service)))
    return list(session.scalars(stmt.limit(limit).offset(offset)))


def inbox_count(session: Session, user: User, *, role: str | None = None, change_id: int | None = None) -> int:
    """How many tasks wait in `user`'s inbox (the navigation's badge, the API's total): one COUNT."""
    require(user, "task.read")
    stmt = select(func.count()).select_from(Task).where(*_waiting_task_conditions(user),
                                                        not_(sod_excluded_task(user)))
    if role:
        stmt = stmt.where(Task.role == role)
    if change_id:
        stmt = stmt.where(Task.change_id == change_id)
    return session.scalar(stmt)


def _waiting_task_conditions(user: User) -> tuple:
    return (Task.status == "ready",
            or_(Task.assignee_id == user.id, Task.assignee_id.is_(None) & Task.role.in_(user.roles)))


def _waiting_for(user: User):
    return (select(Task).join(Change, Change.id == Task.change_id)
            .where(*_waiting_task_conditions(user), not_(sod_excluded(user))))
