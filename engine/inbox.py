"""The task inbox query: what a person may work on now."""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import bindparam, exists, func, not_, or_, select
from sqlalchemy.orm import Session, contains_eager

from .approvals import sod_excluded_task
from .models import Change, Service, Task, User, change_services
from .permissions import require

# Due first, then oldest first; the task id last, so pages never overlap. `due_at IS NULL` first
# because SQLite sorts NULLs first and PostgreSQL last.
ORDER = (Task.due_at.is_(None), Task.due_at, Task.created_at, Task.id)


class InboxPage(NamedTuple):
    tasks: list[Task]
    total: int  # how many wait in all, on every page


def inbox_page(session: Session, user: User, *, limit: int = 100, offset: int = 0, **filters) -> InboxPage:
    """Ready tasks assigned to `user` or unclaimed for one of their roles — minus approvals that
    segregation of duties forbids them (they would only get a 403) — one page of them, and the total.

    Filters: `role`, `change_id`, `change_type`, `risk`, `service` (a key). Two statements: the
    page's task ids ranked with the total beside them (on tasks alone, which PostgreSQL answers
    from the ready tasks and a few index probes), then those tasks with what a row shows of their
    change. Ranking whole rows joined to their changes took twice as long at 150,000 changes.
    """
    require(user, "task.read")
    names, parameters = _parameters(user, filters)
    ranked = session.execute(_ranked(names), {**parameters, "limit": limit, "offset": offset}).all()
    if not ranked:  # no rows carry the total: past the last page (or nothing waits)
        return InboxPage([], inbox_count(session, user, **filters) if offset else 0)
    ids = [task_id for task_id, _total in ranked]
    by_id = {task.id: task for task in session.scalars(_LOADED, {"ids": ids})}
    return InboxPage([by_id[task_id] for task_id in ids if task_id in by_id], ranked[0][1])


def inbox(session: Session, user: User, *, limit: int = 500, offset: int = 0, **filters) -> list[Task]:
    """The tasks of `inbox_page`, without the total."""
    return inbox_page(session, user, limit=limit, offset=offset, **filters).tasks


def inbox_count(session: Session, user: User, **filters) -> int:
    """How many tasks wait in `user`'s inbox (the navigation's badge): one COUNT."""
    require(user, "task.read")
    names, parameters = _parameters(user, filters)
    return session.scalar(_counted(names), parameters)


_FILTER_NAMES = ("role", "change_id", "change_type", "risk", "service")


def _parameters(user: User, filters: dict) -> tuple[tuple[str, ...], dict]:
    """(the names of the filters given, which pick the statement; the values to run it with)."""
    unknown = set(filters) - set(_FILTER_NAMES)
    if unknown:
        raise TypeError(f"unknown inbox filter(s): {', '.join(sorted(unknown))}")
    given = {name: value for name, value in filters.items() if value}
    return tuple(sorted(given)), {"user_id": user.id, "roles": list(user.roles), **given}


# Built once per combination of filters, run with parameters: building the ranking cost ~1.5 ms of
# Python a call, more than PostgreSQL took to answer it. At most 2^5 of each.
@lru_cache(maxsize=None)
def _ranked(filters: tuple[str, ...]):
    return (select(Task.id, func.count().over()).where(*_waiting(filters))
            .order_by(*ORDER).limit(bindparam("limit")).offset(bindparam("offset")))


@lru_cache(maxsize=None)
def _counted(filters: tuple[str, ...]):
    return select(func.count()).select_from(Task).where(*_waiting(filters))


def _waiting(filters: tuple[str, ...]) -> list:
    """The conditions on Task alone for the inbox of the user with the parameters `user_id` and
    `roles`, with a condition for each filter named (its value a parameter of the same name)."""
    user_id = bindparam("user_id")
    conditions = [Task.status == "ready",
                  or_(Task.assignee_id == user_id,
                      Task.assignee_id.is_(None) & Task.role.in_(bindparam("roles", expanding=True))),
                  not_(sod_excluded_task(user_id))]
    if "role" in filters:
        conditions.append(Task.role == bindparam("role"))
    if "change_id" in filters:
        conditions.append(Task.change_id == bindparam("change_id"))
    of_change = [column == bindparam(name) for name, column in (("change_type", Change.change_type),
                                                               ("risk", Change.risk)) if name in filters]
    if of_change:
        conditions.append(exists().where(Change.id == Task.change_id, *of_change))
    if "service" in filters:
        conditions.append(Task.change_id.in_(select(change_services.c.change_id)
                                             .join(Service, Service.id == change_services.c.service_id)
                                             .where(Service.key == bindparam("service"))))
    return conditions


# Only what an inbox row shows of the change (the API and the inbox page): other attributes still
# load when read. No loader for the assignee: it is the caller or nobody, and the caller is in the
# session already (a selectinload cost more than the query).
_LOADED = (select(Task).join(Change, Change.id == Task.change_id).where(Task.id.in_(bindparam("ids", expanding=True)))
           .options(contains_eager(Task.change).load_only(Change.number, Change.title, Change.change_type, Change.risk)))
