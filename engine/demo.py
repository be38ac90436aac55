"""Demo data for `changeflow demo`: one user per role and a handful of services from the seed's examples.

Demo tokens are fixed and documented in the README so people can try the API at once; the demo
server only listens on 127.0.0.1.
"""
from __future__ import annotations

from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from .accounts import create_user, hash_token, issue_token
from .passwords import HASHER as PASSWORD_HASHER
from .catalog import create_service
from .models import ApiToken, Service, User

DEMO_USERS = (
    ("alice", "Alice Requester", ("requester",)),
    ("morgan", "Morgan Change-Manager", ("change_manager",)),
    ("casey", "Casey CAB-Member", ("cab_member",)),
    ("sam", "Sam Service-Owner", ("service_owner",)),
    ("ivan", "Ivan Implementer", ("implementer",)),
    ("erin", "Erin Emergency-Approver", ("emergency_approver",)),
    ("paula", "Paula Process-Owner", ("process_owner",)),
    ("ada", "Ada Admin", ("admin",)),
    ("audrey", "Audrey Auditor", ("auditor",)),
)

# the implementing team the change success score counts their changes under
DEMO_TEAMS = {"ivan": "platform"}

DEMO_SERVICES = (
    ("payroll", "Payroll", "Monthly payroll run and payslips", 1, "sam"),
    ("identity", "Identity & Access", "Directory, SSO and access control", 1, "sam"),
    ("firewall", "Perimeter firewall", "Edge firewall rules", 2, "sam"),
    ("data-warehouse", "Data warehouse", "Finance and operations reporting", 2, "sam"),
    ("crm-web", "CRM web app", "Customer relationship management front end", 3, "sam"),
    ("cloud-capacity", "Cloud capacity", "Compute and storage capacity pools", 3, "sam"),
    ("service-desk", "Service desk", "Ticketing and service catalogue", 3, "sam"),
    ("intranet", "Intranet", "Internal news and documents", 4, "sam"),
)


def demo_token(username: str) -> str:
    return f"demo-{username}"


def demo_password(username: str) -> str:
    return f"demo-{username}-pass"


@lru_cache(maxsize=None)
def _demo_password_hash(username: str) -> str:
    return PASSWORD_HASHER.hash(demo_password(username))  # argon2 is slow on purpose: once per process


def seed(session: Session) -> list[tuple[str, tuple[str, ...], str]]:
    """Create what is missing; return (username, roles, token) for every demo user."""
    out = []
    for username, display, roles in DEMO_USERS:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            user = create_user(session, username, list(roles), display_name=display,
                               email=f"{username}@demo.changeflow.invalid", team=DEMO_TEAMS.get(username))
        token = demo_token(username)
        if session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token))) is None:
            issue_token(session, user, name="demo", token=token)
        if not user.password_hash:
            user.password_hash = _demo_password_hash(username)
        out.append((username, roles, token))
    session.flush()
    for key, name, description, criticality, owner in DEMO_SERVICES:
        if session.scalar(select(Service).where(Service.key == key)) is None:
            create_service(session, None, {"key": key, "name": name, "description": description,
                                           "criticality": criticality, "owner": owner}, check_permission=False)
    return out
