"""The service catalogue: the services changes are made to, who owns them, and what depends on what.

"A depends on B" means A needs B (see `service_map`). Services on changes are history: a service
that any change names cannot be deleted. Every write is audited.
"""
from __future__ import annotations

import re

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session, selectinload

from . import audit
from .errors import Conflict, NotFound, ValidationFailed
from .models import Service, ServiceDependency, User, change_services, service_members, window_services
from .permissions import require
from .projection import find_user

KEY_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
DEPENDENCY_KINDS = ("runs_on", "calls", "feeds_data_to")
TEXT_LIMITS = {"name": 200, "description": 5000, "business_owner": 200, "sla_tier": 32}
FIELDS = ("key", "name", "description", "owner", "business_owner", "criticality", "sla_tier", "vendors",
          "requires_maintenance_window")
DEFAULTS = {"description": "", "owner": None, "business_owner": "", "criticality": 3, "sla_tier": "",
            "vendors": [], "requires_maintenance_window": False}
MAX_VENDORS = 50


def check_fields(fields: dict, *, creating: bool) -> list[dict]:
    """Every problem with a service's fields as {field, message}; empty when they are acceptable."""
    errors = [{"field": name, "message": "unknown field"} for name in fields if name not in FIELDS]
    if not creating and "key" in fields:
        errors.append({"field": "key", "message": "a service's key cannot be changed"})
    for name in ("key", "name"):
        if creating and not fields.get(name):
            errors.append({"field": name, "message": "is required"})
    key = fields.get("key")
    if creating and key and (not isinstance(key, str) or len(key) > 64 or not re.match(KEY_PATTERN, key)):
        errors.append({"field": "key", "message": "1–64 lower-case letters, digits, . _ - (starting with a letter "
                                                   "or digit)"})
    for name, limit in TEXT_LIMITS.items():
        value = fields.get(name)
        if name in fields and (not isinstance(value, str) or len(value) > limit):
            errors.append({"field": name, "message": f"must be text of at most {limit} characters"})
        elif name == "name" and name in fields and not value.strip():
            errors.append({"field": name, "message": "may not be blank"})
    if "owner" in fields and fields["owner"] is not None and not isinstance(fields["owner"], str):
        errors.append({"field": "owner", "message": "must be a username"})
    value = fields.get("criticality")
    if "criticality" in fields and (type(value) is not int or not 1 <= value <= 4):
        errors.append({"field": "criticality", "message": "must be an integer from 1 (mission critical) to 4"})
    vendors = fields.get("vendors")
    if "vendors" in fields and (not isinstance(vendors, list) or len(vendors) > MAX_VENDORS or not all(
            isinstance(v, str) and 0 < len(v.strip()) <= 200 for v in vendors)):
        errors.append({"field": "vendors", "message": f"must be a list of at most {MAX_VENDORS} names"})
    if "requires_maintenance_window" in fields and not isinstance(fields["requires_maintenance_window"], bool):
        errors.append({"field": "requires_maintenance_window", "message": "must be true or false"})
    return errors


def _refuse(errors: list[dict], message: str = "The service is not valid.") -> None:
    if errors:
        raise ValidationFailed(message, errors=errors)


def get_service(session: Session, key: str) -> Service:
    service = session.scalar(select(Service).where(Service.key == key))
    if service is None:
        raise NotFound(f"Service '{key}' does not exist.")
    return service


def list_services(session: Session, actor: User, *, owner: str | None = None,
                  criticality: int | None = None) -> list[Service]:
    require(actor, "service.read")
    # every caller shows each service's owner: one query for all of them, not one per owner
    query = select(Service).options(selectinload(Service.owner)).order_by(Service.key)
    if owner:
        query = query.join(User, User.id == Service.owner_id).where(User.username == owner)
    if criticality:
        query = query.where(Service.criticality == criticality)
    return list(session.scalars(query))


def _edges(session: Session, service: Service) -> list:
    """(dependency, the service at its other end) for every dependency touching `service`."""
    dep = ServiceDependency
    return session.execute(
        select(dep, Service)
        .join(Service, or_((dep.service_id == service.id) & (Service.id == dep.depends_on_id),
                           (dep.depends_on_id == service.id) & (Service.id == dep.service_id)))
        .where(or_(dep.service_id == service.id, dep.depends_on_id == service.id))
        .order_by(Service.key)).all()


def describe_service(session: Session, actor: User, key: str) -> dict:
    """A service with what it depends on and what depends on it (direct neighbours; see /impact)."""
    require(actor, "service.read")
    service = get_service(session, key)
    lists: dict[str, list] = {"depends_on": [], "dependents": []}
    for dependency, other in _edges(session, service):
        lists["depends_on" if dependency.service_id == service.id else "dependents"].append(
            {"key": other.key, "name": other.name, "criticality": other.criticality, "kind": dependency.kind})
    return {**{name: getattr(service, name) for name in (*FIELDS, "id", "created_at")}, **lists}


def _snapshot(service: Service) -> dict:
    return {name: (service.owner.username if service.owner else None) if name == "owner"
            else getattr(service, name) for name in FIELDS}


def _assign(session: Session, service: Service, fields: dict, users: dict | None = None) -> dict:
    """Set `fields` on `service`; return {field: {from, to}} for what actually changed."""
    before = _snapshot(service)
    for name, value in fields.items():
        if name == "owner":
            if users is not None and value in users:
                service.owner = users[value]
            else:
                service.owner = find_user(session, value, "owner")
        elif name == "vendors":
            service.vendors = [v.strip() for v in value]
        elif name != "key":
            setattr(service, name, value)
    after = _snapshot(service)
    return {name: {"from": before[name], "to": after[name]} for name in FIELDS if before[name] != after[name]}


def create_service(session: Session, actor: User | None, fields: dict, *, check_permission: bool = True) -> Service:
    if check_permission:
        require(actor, "service.write")
    _refuse(check_fields(fields, creating=True))
    if session.scalar(select(Service.id).where(Service.key == fields["key"])):
        raise Conflict(f"Service '{fields['key']}' already exists.")
    service = insert_service(session, actor, fields)
    session.flush()
    return service


def insert_service(session: Session, actor: User | None, fields: dict, users: dict | None = None) -> Service:
    """Add a service from checked `fields` (defaults for the rest); `users` caches owners by username."""
    service = Service(key=fields["key"])
    _assign(session, service, {**DEFAULTS, **fields}, users)
    session.add(service)
    audit.record(session, "service_created", actor=actor, data={"key": service.key, **_snapshot(service)})
    return service


def update_service(session: Session, actor: User, key: str, fields: dict) -> Service:
    require(actor, "service.write")
    service = get_service(session, key)
    _refuse(check_fields(fields, creating=False))
    apply_update(session, actor, service, fields)
    session.flush()
    return service


def apply_update(session: Session, actor: User | None, service: Service, fields: dict,
                 users: dict | None = None) -> bool:
    """Set checked `fields`; audit and return True only when something actually changed."""
    changed = _assign(session, service, fields, users)
    if changed:
        audit.record(session, "service_updated", actor=actor, data={"key": service.key, "changes": changed})
    return bool(changed)


def delete_service(session: Session, actor: User, key: str) -> None:
    require(actor, "service.write")
    service = get_service(session, key)
    used = session.scalar(select(func.count()).select_from(change_services)
                          .where(change_services.c.service_id == service.id))
    if used:
        raise Conflict(f"Service '{key}' is named by {used} change(s); services on changes are history and "
                       "cannot be deleted.", changes=used)
    removed = [{"service": key, "depends_on": other.key, "kind": d.kind} if d.service_id == service.id
               else {"service": other.key, "depends_on": key, "kind": d.kind} for d, other in _edges(session, service)]
    session.execute(delete(ServiceDependency).where(
        or_(ServiceDependency.service_id == service.id, ServiceDependency.depends_on_id == service.id)))
    session.execute(delete(window_services).where(window_services.c.service_id == service.id))
    members = [u.username for u in service.members]
    session.execute(delete(service_members).where(service_members.c.service_id == service.id))
    audit.record(session, "service_deleted", actor=actor,
                 data={"key": key, "snapshot": _snapshot(service), "dependencies_removed": removed,
                       "members_removed": members})
    session.delete(service)
    session.flush()


def check_kind(kind, field: str = "kind") -> list[dict]:
    if kind not in DEPENDENCY_KINDS:
        return [{"field": field, "message": f"must be one of {', '.join(DEPENDENCY_KINDS)}"}]
    return []


def add_dependency(session: Session, actor: User, key: str, depends_on: str, kind: str = "calls") -> dict:
    """`key` depends on `depends_on`. Cycles are allowed (real estates have them); self and duplicates not."""
    require(actor, "service.write")
    service = get_service(session, key)
    _refuse(check_kind(kind), "The dependency is not valid.")
    if depends_on == key:
        _refuse([{"field": "depends_on", "message": "a service cannot depend on itself"}],
                "The dependency is not valid.")
    target = session.scalar(select(Service).where(Service.key == depends_on))
    if target is None:
        _refuse([{"field": "depends_on", "message": f"no service '{depends_on}'"}], "The dependency is not valid.")
    existing = _dependency(session, service, target)
    if existing is not None:
        raise Conflict(f"'{key}' already depends on '{depends_on}' ({existing.kind}).")
    return insert_dependency(session, actor, service, target, kind)


def insert_dependency(session: Session, actor: User | None, service: Service, target: Service, kind: str,
                      *, flush: bool = True) -> dict:
    """Record (and audit) that `service` depends on `target`; the caller has checked the pair."""
    session.add(ServiceDependency(service=service, depends_on=target, kind=kind))
    data = {"service": service.key, "depends_on": target.key, "kind": kind}
    audit.record(session, "dependency_added", actor=actor, data=data)
    if flush:
        session.flush()
    return data


def _dependency(session: Session, service: Service, target: Service) -> ServiceDependency | None:
    return session.scalar(select(ServiceDependency).where(
        ServiceDependency.service_id == service.id, ServiceDependency.depends_on_id == target.id))


def remove_dependency(session: Session, actor: User, key: str, depends_on: str) -> None:
    require(actor, "service.write")
    service = get_service(session, key)
    target = get_service(session, depends_on)
    existing = _dependency(session, service, target)
    if existing is None:
        raise NotFound(f"'{key}' does not depend on '{depends_on}'.")
    audit.record(session, "dependency_removed", actor=actor,
                 data={"service": key, "depends_on": depends_on, "kind": existing.kind})
    session.delete(existing)
    session.flush()


# Members: the people who belong to a service; requesters among them read its changes
# (engine/permissions.py readable_changes), so adding or removing one is audited like any write.

def list_members(session: Session, actor: User, key: str) -> list[User]:
    require(actor, "service.read")
    return list(get_service(session, key).members)


def _is_member(session: Session, service: Service, user: User) -> bool:
    return session.scalar(select(service_members.c.user_id).where(
        service_members.c.service_id == service.id, service_members.c.user_id == user.id)) is not None


def add_member(session: Session, actor: User, key: str, username: str) -> User:
    require(actor, "service.write")
    service = get_service(session, key)
    user = find_user(session, username, "username")
    if _is_member(session, service, user):
        raise Conflict(f"{username} is already a member of '{key}'.")
    session.execute(service_members.insert().values(service_id=service.id, user_id=user.id))
    audit.record(session, "service_member_added", actor=actor, data={"service": key, "username": username})
    session.flush()
    session.expire(service, ["members"])
    return user


def remove_member(session: Session, actor: User, key: str, username: str) -> None:
    require(actor, "service.write")
    service = get_service(session, key)
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not _is_member(session, service, user):
        raise NotFound(f"{username} is not a member of '{key}'.")
    session.execute(delete(service_members).where(
        service_members.c.service_id == service.id, service_members.c.user_id == user.id))
    audit.record(session, "service_member_removed", actor=actor, data={"service": key, "username": username})
    session.flush()
    session.expire(service, ["members"])
