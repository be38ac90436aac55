"""Submitting change requests and querying them."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from . import audit, templates
from .definitions import latest_version
from .errors import NotFound, ValidationFailed, WorkflowFailure
from .models import Change, Service, TemplateVersion, User, change_services
from .permissions import readable_changes, require, require_read_change
from .projection import check_window, find_user, parse_time, process_data, risk_inputs
from .runtime import start_process

CHANGE_TYPES = ("standard", "normal", "emergency")
CATEGORIES = ("emergency_patch", "application_release", "infrastructure", "service_catalog",
              "access_control", "data_integration", "process_change")
PROCESS_FOR_TYPE = {t: f"{t}_change" for t in CHANGE_TYPES}


def create_change(session: Session, actor: User, fields: dict) -> Change:
    """Store the request and start its process; `fields` were checked by the API schema."""
    require(actor, "change.create")
    change_type = fields["change_type"]
    if change_type == "emergency" and not (fields.get("emergency_reason") or "").strip():
        raise ValidationFailed("An emergency change needs a reason.", errors=[
            {"field": "emergency_reason", "message": "is required for emergency changes"}])
    version = latest_version(session, PROCESS_FOR_TYPE[change_type])
    if version is None:
        raise NotFound(f"No process is deployed for {change_type} changes ({PROCESS_FOR_TYPE[change_type]}).")
    change, template_version = unsaved_change(session, actor, fields)
    session.add(change)
    session.flush()
    change.number = f"CHG{change.id:07d}"
    assessed = templates.check_max_risk(session, change, template_version) if template_version else {}
    audit.record(session, "change_created", actor=actor, change_id=change.id,
                 data={"number": change.number, "type": change_type, "process": version.process_key,
                       "process_version": version.version,
                       **({"template": template_version.template.key, "template_version": template_version.version}
                          if template_version is not None else {})})
    try:
        start_process(session, change, version, actor, {**process_data(change), **risk_inputs(session, change),
                                                        **assessed})
    except WorkflowFailure as failure:
        failure.change_id = None  # the change itself is rolled back with the failed start
        raise
    return change


def unsaved_change(session: Session, actor: User, fields: dict) -> tuple[Change, TemplateVersion | None]:
    """The change a request describes, not added to the session: what filing stores and a preview assesses."""
    fields, template_version = templates.fields_for_change(session, fields)
    change = Change(
        title=fields["title"], description=fields.get("description") or "", change_type=fields["change_type"],
        category=fields["category"], impact=fields["impact"], urgency=fields["urgency"],
        planned_start=parse_time(fields.get("planned_start"), "planned_start"),
        planned_end=parse_time(fields.get("planned_end"), "planned_end"),
        implementation_plan=fields.get("implementation_plan") or "",
        rollback_plan=fields.get("rollback_plan") or "",
        rollback_tested=bool(fields.get("rollback_tested")),
        test_plan=fields.get("test_plan") or "", justification=fields.get("justification") or "",
        emergency_reason=fields.get("emergency_reason") or "", incident_ref=fields.get("incident_ref"),
        cost_estimate=Decimal(str(fields["cost_estimate"])) if fields.get("cost_estimate") is not None else None,
        requester=actor, state="new",
    )
    change.implementer = find_user(session, fields.get("implementer"), "implementer", role="implementer")
    change.services = _services(session, fields.get("services") or [])
    change.template_version = template_version
    check_window(change)
    return change, template_version


def _services(session: Session, keys: list[str]) -> list[Service]:
    keys = list(dict.fromkeys(keys))
    found = {s.key: s for s in session.scalars(select(Service).where(Service.key.in_(keys)))}
    missing = [k for k in keys if k not in found]
    if missing:
        raise ValidationFailed("Unknown services.", errors=[
            {"field": "services", "message": f"no service with key '{k}'"} for k in missing])
    return [found[k] for k in keys]


def get_change(session: Session, change_ref: int | str, user: User) -> Change:
    """A change by id or by number (CHG0000123), if `user` may read it."""
    if isinstance(change_ref, str) and not change_ref.isdigit():
        change = session.scalar(select(Change).where(Change.number == change_ref.upper()))
    else:
        change = session.get(Change, int(change_ref))
    if change is None:
        raise NotFound(f"Change {change_ref} does not exist.")
    require_read_change(user, change)
    return change


def list_changes(session: Session, user: User, *, state=None, change_type=None, risk=None,
                 service=None, requester=None, planned_from=None, planned_until=None, closed_from=None,
                 closed_until=None, outcome=None, page=1, per_page=25) -> tuple[list[Change], int]:
    """`state` is one state or a tuple of them; planned_*/closed_* bound planned_start/closed_at as
    [from, until); `outcome` is a tuple of close codes (engine/change_filters.py parses query strings)."""
    require(user, "change.read")
    query = select(Change)
    scope = readable_changes(user)
    if scope is not None:
        query = query.where(scope)
    if isinstance(state, (tuple, list)):
        query = query.where(Change.state.in_(state))
    elif state:
        query = query.where(Change.state == state)
    for column, low, high in ((Change.planned_start, planned_from, planned_until),
                              (Change.closed_at, closed_from, closed_until)):
        if low is not None:
            query = query.where(column >= low)
        if high is not None:
            query = query.where(column < high)
    if outcome:
        query = query.where(Change.close_code.in_(outcome))
    if change_type:
        query = query.where(Change.change_type == change_type)
    if risk:
        query = query.where(Change.risk == risk)
    if requester:
        query = query.join(User, User.id == Change.requester_id).where(User.username == requester)
    if service:
        # The service's id first: with it as a constant the planner walks that service's rows of
        # change_services instead of joining services for every change (55 → 30 ms at 150,000 changes).
        service_id = session.scalar(select(Service.id).where(Service.key == service))
        query = query.where(Change.id.in_(
            select(change_services.c.change_id).where(change_services.c.service_id == service_id)))
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    # The page's ids first, whole rows only for them: skipping to page 200 then walks an index
    # (ix_changes_state_id for a state) instead of reading 5,000 full rows (21 → 1 ms at 150,000).
    page_ids = (query.with_only_columns(Change.id).order_by(Change.id.desc())
                .offset((page - 1) * per_page).limit(per_page))
    rows = session.scalars(
        select(Change).where(Change.id.in_(page_ids))
        .options(selectinload(Change.services), selectinload(Change.requester),
                 selectinload(Change.implementer),
                 selectinload(Change.template_version).selectinload(TemplateVersion.template))
        .order_by(Change.id.desc())
    ).all()
    return rows, total
