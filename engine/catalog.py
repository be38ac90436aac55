"""The service catalogue: the services changes are made to, and who owns them."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .errors import Conflict
from .models import Service, User
from .permissions import require
from .projection import find_user


def create_service(session: Session, actor: User | None, fields: dict, *, check_permission: bool = True) -> Service:
    if check_permission:
        require(actor, "service.write")
    if session.scalar(select(Service).where(Service.key == fields["key"])):
        raise Conflict(f"Service '{fields['key']}' already exists.")
    service = Service(key=fields["key"], name=fields["name"], description=fields.get("description") or "",
                      criticality=fields.get("criticality", 3),
                      owner=find_user(session, fields.get("owner"), "owner"))
    session.add(service)
    session.flush()
    audit.record(session, "service_created", actor=actor,
                 data={"key": service.key, "owner": fields.get("owner"), "criticality": service.criticality})
    return service
