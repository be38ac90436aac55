"""The permission matrix: which role may perform which action. Every route and command asks here.

Actions are `resource.verb`. Scope rules that depend on the resource (a requester reading only
their own changes, a task only by its role or assignee) live in the `can_*` helpers below, so the
answer to "may this user do this?" has exactly one home.
"""
from __future__ import annotations

from sqlalchemy import select, union
from sqlalchemy.orm import object_session

from .errors import Forbidden
from .models import Change, Task, User, change_services, service_members

EVERYONE = frozenset(
    {"requester", "change_manager", "cab_member", "service_owner", "implementer",
     "emergency_approver", "process_owner", "admin", "auditor"}
)
STAFF = EVERYONE - {"requester"}

MATRIX: dict[str, frozenset[str]] = {
    "health.read": frozenset({"*"}),  # public: load balancers probe it without a token
    "change.create": frozenset({"requester", "change_manager", "implementer", "service_owner",
                                "emergency_approver", "admin"}),
    "change.read": EVERYONE,  # scoped further by can_read_change
    "change.read_all": STAFF,
    "task.read": EVERYONE,  # scoped further by can_act_on_task
    "task.act": EVERYONE - {"auditor"},
    "service.read": EVERYONE,
    "service.write": frozenset({"admin", "change_manager"}),
    "definition.read": EVERYONE,
    "definition.deploy": frozenset({"process_owner", "admin"}),
    "user.manage": frozenset({"admin"}),
    "user.read": frozenset({"admin", "auditor"}),  # the people list and their roles; auditors read
    # the admin pages' index: it lists only the areas (services, windows, templates, …) one may read
    "admin.index": EVERYONE,
    # an admin may complete an approval despite segregation of duties, with a recorded reason
    "task.override_sod": frozenset({"admin"}),
    # the deployment gate: pipelines ask it with a token scoped to this action
    "change.gate": EVERYONE,
    "template.read": EVERYONE,
    "template.propose": frozenset({"requester", "change_manager", "service_owner", "implementer",
                                   "process_owner", "admin"}),
    "template.decide": frozenset({"change_manager"}),
    "schedule.check": EVERYONE,
    "cab.read": STAFF,
    "cab.manage": frozenset({"change_manager", "admin"}),
    "window.read": EVERYONE,
    "window.write": frozenset({"admin", "change_manager"}),
    "calendar.read": EVERYONE,  # requesters see their own changes in it (can_read_change)
    # the iCalendar feed: calendar apps cannot send a bearer token, so the route is open and checks
    # the per-user secret token in its URL itself (then "calendar.read" for that user)
    "calendar.feed": frozenset({"*"}),
    "evidence.read": EVERYONE,  # scoped further by can_read_change
    "evidence.upload": EVERYONE - {"auditor"},  # also needs read access to the change
    # background work: the outbox (dead letters) and jobs; auditors read, admins retry
    "outbox.read": frozenset({"admin", "auditor"}),
    "outbox.retry": frozenset({"admin"}),
    "job.read": frozenset({"admin", "auditor"}),
    "job.retry": frozenset({"admin"}),
    "webhook.manage": frozenset({"admin"}),
    "me.notifications": EVERYONE,  # one's own notification preferences
    # the dashboards: figures over every change, so not for requesters (they see only their own)
    "dashboard.read": STAFF,
    # management and audit reports: the routes need report.read; each kind has its own rule too
    "report.read": STAFF,
    "report.leadership": frozenset({"change_manager", "cab_member", "admin", "auditor"}),
    "report.service_owner": frozenset({"service_owner", "change_manager", "admin", "auditor"}),
    "report.steering": frozenset({"change_manager", "cab_member", "admin", "auditor"}),
    "report.audit": frozenset({"auditor", "admin", "change_manager"}),
    "report.success_score": frozenset({"change_manager", "service_owner", "cab_member", "admin", "auditor"}),
    # the web pages' sign-in and sign-out: open (the form itself checks the password)
    "session.login": frozenset({"*"}),
}


def allowed_roles(action: str) -> frozenset[str]:
    try:
        return MATRIX[action]
    except KeyError:
        raise KeyError(f"no permission rule for action {action!r}") from None


def can(user: User | None, action: str) -> bool:
    roles = allowed_roles(action)
    if "*" in roles:
        return True
    return user is not None and user.active and any(r in roles for r in user.roles)


def require(user: User | None, action: str) -> None:
    if not can(user, action):
        raise Forbidden(f"Your roles do not allow '{action}'.", action=action)


def readable_changes(user: User):
    """The SQL condition on Change for the changes `user` may read, or None for all of them.

    Without change.read_all: the changes one requested, and every change touching a service one is
    a member of (a team sees its service's changes). Lists, the calendar and can_read_change all
    use this one condition, so what a list shows and what opening an entry allows cannot differ."""
    if can(user, "change.read_all"):
        return None
    # One set of ids, not "requester = me OR id IN (…)": with the OR PostgreSQL could use no index
    # and counted a requester's list by scanning every change (31 ms at 150,000 changes).
    mine = select(Change.id).where(Change.requester_id == user.id)
    member_of = (select(change_services.c.change_id)
                 .join(service_members, service_members.c.service_id == change_services.c.service_id)
                 .where(service_members.c.user_id == user.id))
    return Change.id.in_(union(mine, member_of))


def can_read_change(user: User, change: Change) -> bool:
    if can(user, "change.read_all"):
        return True
    if not can(user, "change.read"):
        return False
    if change.requester_id == user.id:  # the first rule of readable_changes, without a query
        return True
    session = object_session(change)
    if session is None or change.id is None:  # not stored yet: only its requester holds it
        return False
    return session.scalar(select(Change.id).where(Change.id == change.id, readable_changes(user))) is not None


def require_read_change(user: User, change: Change) -> None:
    if not can_read_change(user, change):
        raise Forbidden("You may only read changes you requested or that touch a service you are a member of.",
                        action="change.read")


def task_refusal(user: User, task: Task) -> str | None:
    """Why `user` may not claim or complete `task`, or None when they may."""
    if not can(user, "task.act"):
        return "Your roles do not allow acting on tasks."
    if task.assignee_id is not None and task.assignee_id != user.id:
        return "This task is assigned to someone else."
    if task.assignee_id is None and task.role not in user.roles:
        return f"This task is for the role '{task.role}', which you do not hold."
    return None


def require_task_actor(user: User, task: Task) -> None:
    reason = task_refusal(user, task)
    if reason:
        raise Forbidden(reason, action="task.act")


def can_see_task(user: User, task: Task) -> bool:
    return (
        task.assignee_id == user.id
        or task.role in user.roles
        or can_read_change(user, task.change) and can(user, "change.read_all")
    )
