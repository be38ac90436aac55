"""Between the change row and the workflow's data: what a process sees, and what forms may edit."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from .db import utcnow
from .errors import ValidationFailed
from .models import Change, User, change_services

TEXT_FIELDS = ("title", "description", "implementation_plan", "rollback_plan", "test_plan",
               "justification", "emergency_reason", "incident_ref", "implementation_result", "close_code",
               "close_notes")
INT_FIELDS = ("impact", "urgency")
BOOL_FIELDS = ("rollback_tested",)
TIME_FIELDS = ("planned_start", "planned_end", "actual_start", "actual_end")
DECIMAL_FIELDS = ("cost_actual",)  # money: kept to the cent
FAILED_RESULTS = ("failed", "backed_out")
FAILED_CLOSE_CODES = ("unsuccessful", "backed_out")
FAILURE_LOOKBACK = timedelta(days=90)


def parse_time(value, field: str) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ValidationFailed("Invalid date-time.", errors=[
                {"field": field, "message": "must be an ISO 8601 date-time with offset"}]) from None
    if parsed.tzinfo is None:
        raise ValidationFailed("Date-times need a UTC offset.", errors=[
            {"field": field, "message": "must include a UTC offset, e.g. 2026-12-01T22:00:00+01:00"}])
    return parsed


def parse_money(value, field: str) -> Decimal:
    """A form's number as an amount to the cent; NaN and infinities (which JSON Schema lets through) refused."""
    try:
        amount = Decimal(str(value))
        if not amount.is_finite():
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        raise ValidationFailed("Invalid amount.", errors=[{"field": field, "message": "must be a number"}]) from None
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def parse_duration(value: str, field: str = "duration") -> timedelta:
    """An ISO 8601 duration (PT2H, P2D) as a timedelta; refused with 422 naming `field`."""
    from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

    try:
        parsed = TimerEventDefinition.parse_iso_duration(value)
        return TimerEventDefinition.get_timedelta_from_start(parsed)
    except Exception:
        raise ValidationFailed("Invalid duration.", errors=[
            {"field": field, "message": "an ISO 8601 duration such as PT2H"}]) from None


def check_window(change: Change) -> None:
    for prefix in ("planned", "actual"):
        start, end = getattr(change, f"{prefix}_start"), getattr(change, f"{prefix}_end")
        if start and end and end <= start:
            raise ValidationFailed(f"The {prefix} window ends before it starts.", errors=[
                {"field": f"{prefix}_end", "message": f"must be after {prefix}_start"}])


def apply_form_to_change(session: Session, change: Change, data: dict) -> None:
    """Fields a task form submits that are also change attributes update the change."""
    for name in TEXT_FIELDS + INT_FIELDS + BOOL_FIELDS:
        if name in data and data[name] is not None:
            setattr(change, name, data[name])
    for name in TIME_FIELDS:
        if name in data:
            setattr(change, name, parse_time(data[name], name))
    for name in DECIMAL_FIELDS:
        if name in data and data[name] is not None:
            setattr(change, name, parse_money(data[name], name))
    if "implementer" in data:
        change.implementer = find_user(session, data["implementer"], "implementer", role="implementer")
    if isinstance(data.get("incidents_caused"), list):
        numbers = (str(i).strip() for i in data["incidents_caused"])
        change.incidents_caused = list(dict.fromkeys(n for n in numbers if n))
    if data.get("follow_up_actions"):
        from .follow_ups import record_follow_ups

        record_follow_ups(session, change, data["follow_up_actions"])
    check_window(change)
    from .templates import suspend_after_failure  # templates reads facts from this module

    suspend_after_failure(session, change)


def form_values(change: Change, schema: dict) -> dict:
    """Current values of the change attributes a form edits, to prefill it.

    Only change attributes are prefilled: earlier decisions and comments in the workflow data
    belong to earlier tasks and must not reappear as this task's answer.
    """
    values = {}
    for name in schema.get("properties", {}):
        if name in TEXT_FIELDS + INT_FIELDS + BOOL_FIELDS:
            value = getattr(change, name)
        elif name in TIME_FIELDS:
            value = _iso(getattr(change, name))
        elif name in DECIMAL_FIELDS:  # a JSON number, as the form's schema types it
            value = float(getattr(change, name)) if getattr(change, name) is not None else None
        elif name == "implementer":
            value = change.implementer.username if change.implementer else None
        else:
            continue
        if value not in (None, ""):
            values[name] = value
    return values


def find_user(session: Session, username: str | None, field: str, *, role: str | None = None) -> User | None:
    if not username:
        return None
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        raise ValidationFailed("Unknown user.", errors=[{"field": field, "message": f"no active user '{username}'"}])
    if role and role not in user.roles:
        raise ValidationFailed(f"The {field} must hold the role '{role}'.", errors=[
            {"field": field, "message": f"'{username}' does not hold the role '{role}'"}])
    return user


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def process_data(change: Change) -> dict:
    """The variables a process starts with (names are documented in docs/processes.md)."""
    return {
        "change_number": change.number,
        "title": change.title,
        "description": change.description,
        "change_type": change.change_type,
        "category": change.category,
        "services": [s.key for s in change.services],
        "impact": change.impact,
        "urgency": change.urgency,
        "planned_start": _iso(change.planned_start),
        "planned_end": _iso(change.planned_end),
        "implementation_plan": change.implementation_plan,
        "rollback_plan": change.rollback_plan,
        "test_plan": change.test_plan,
        "justification": change.justification,
        "emergency_reason": change.emergency_reason,
        "incident_ref": change.incident_ref,
        "cost_estimate": float(change.cost_estimate) if change.cost_estimate is not None else None,
        "requester": change.requester.username,
        "implementer": change.implementer.username if change.implementer else None,
        # set for changes raised from a standard-change template: the risk assessed at submission
        "template_risk": None,
        "template_risk_reasons": [],
    }


def risk_inputs(session: Session, change: Change) -> dict:
    """Facts the risk decision table reads that the requester does not type in.

    `max_criticality` covers the change's services and every service that depends on them,
    transitively: a change to a low-criticality service a mission-critical one needs is high risk.
    """
    from .service_map import impacted_services

    criticalities = [s.criticality for s in change.services]
    criticalities += [row["criticality"] for row in impacted_services(session, [s.id for s in change.services])]
    return {
        "max_criticality": min(criticalities) if criticalities else 4,
        "has_rollback_plan": bool((change.rollback_plan or "").strip()),
        "rollback_tested": bool(change.rollback_tested),
        "touches_blackout": touches_blackout(session, change),
        "recent_failures": recent_failures(session, change),
    }


def touches_blackout(session: Session, change: Change) -> bool:
    from .windows import windows_in_range

    if change.planned_start is None or change.planned_end is None:
        return False
    return bool(windows_in_range(session, "blackout", change.planned_start, change.planned_end,
                                 [s.id for s in change.services]))


def recent_failures(session: Session, change: Change) -> int:
    service_ids = [s.id for s in change.services]
    if not service_ids:
        return 0
    since = utcnow() - FAILURE_LOOKBACK
    query = (
        select(func.count(func.distinct(Change.id)))
        .join(change_services, change_services.c.change_id == Change.id)
        .where(
            change_services.c.service_id.in_(service_ids),
            Change.id != change.id,
            Change.updated_at >= since,
            or_(Change.implementation_result.in_(FAILED_RESULTS), Change.close_code.in_(FAILED_CLOSE_CODES)),
        )
    )
    return session.scalar(query) or 0
