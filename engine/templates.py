"""The standard-change catalogue: templates proposed, approved, changed, retired — and suspended.

A template's content lives in numbered versions. Every proposal (create, change, retire) is a
pending version that a change manager other than the proposer approves or rejects; the active
version is the latest approved create/change version, and stays in force while a newer one waits.
A change raised from a template takes its category and plans from the active version (see
`fields_for_change`); a template whose change fails is suspended until a change manager reinstates it.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from . import audit
from .db import utcnow
from .decisions import RISK_ORDER as RISKS
from .decisions import evaluate_decision, highest_risk
from .definitions import latest_version
from .errors import Conflict, Forbidden, NotFound, ValidationFailed
from .models import AuditEvent, Change, ChangeTemplate, Service, TemplateVersion, User
from .permissions import require
from .projection import FAILED_CLOSE_CODES, FAILED_RESULTS, find_user, process_data, risk_inputs

STATUSES = ("proposed", "active", "suspended", "retired", "rejected")
MAX_RISKS = ("low", "moderate")  # a standard change is never high risk
CONTENT = ("name", "category", "description", "implementation_plan", "rollback_plan", "test_plan",
           "allowed_services", "max_risk")
FIXED = ("category", "implementation_plan", "rollback_plan", "test_plan")  # copied onto the change
SOD_RULE = "segregation_of_duties"
RISK_PROCESS, RISK_DECISION = "normal_change", "risk_assessment"  # the risk policy standard changes meet
REFUSED_STATUS = {"proposed": "is not approved yet", "rejected": "was not approved",
                  "suspended": "is suspended until reviewed", "retired": "is retired"}


# -- reading -------------------------------------------------------------------------------------

def active_version(template: ChangeTemplate) -> TemplateVersion | None:
    """The version in force: the latest approved create/change version."""
    approved = [v for v in template.versions if v.status == "approved" and v.kind in ("create", "change")]
    return approved[-1] if approved else None


def pending_version(template: ChangeTemplate) -> TemplateVersion | None:
    return next((v for v in template.versions if v.status == "pending"), None)


def list_templates(session: Session, user: User, *, status: str | None = None) -> list[ChangeTemplate]:
    require(user, "template.read")
    query = select(ChangeTemplate).options(selectinload(ChangeTemplate.versions)).order_by(ChangeTemplate.key)
    if status:
        query = query.where(ChangeTemplate.status == status)
    return session.scalars(query).all()


def get_template(session: Session, user: User | None, key: str, *, action: str = "template.read",
                 lock: bool = False) -> ChangeTemplate:
    require(user, action)
    query = select(ChangeTemplate).where(ChangeTemplate.key == key)
    template = session.scalar(query.with_for_update() if lock else query)
    if template is None:
        raise NotFound(f"Template '{key}' does not exist.")
    return template


# -- proposing -----------------------------------------------------------------------------------

def propose_template(session: Session, actor: User, fields: dict) -> ChangeTemplate:
    require(actor, "template.propose")
    if session.scalar(select(ChangeTemplate.id).where(ChangeTemplate.key == fields["key"])):
        raise Conflict(f"Template '{fields['key']}' already exists.")
    owner = find_user(session, fields.get("owner"), "owner") or actor
    template = ChangeTemplate(key=fields["key"], owner=owner, status="proposed", status_reason="")
    session.add(template)
    _add_version(session, template, actor, "create", _content(session, fields))
    return template


def propose_change(session: Session, actor: User, key: str, fields: dict) -> TemplateVersion:
    """A changed content; fields not sent keep the active version's value."""
    template = _open_for_proposal(session, actor, key)
    current = active_version(template)
    merged = {name: fields.get(name, getattr(current, name)) for name in CONTENT}
    return _add_version(session, template, actor, "change", _content(session, merged))


def propose_retirement(session: Session, actor: User, key: str, reason: str) -> TemplateVersion:
    """A retire version: the active content, with the reason for retiring as its description."""
    template = _open_for_proposal(session, actor, key)
    content = {name: getattr(active_version(template), name) for name in CONTENT}
    return _add_version(session, template, actor, "retire", {**content, "description": reason.strip()})


def _open_for_proposal(session: Session, actor: User, key: str) -> ChangeTemplate:
    template = get_template(session, actor, key, action="template.propose", lock=True)
    if template.status not in ("active", "suspended"):
        raise Conflict(f"Template '{key}' is {template.status}; only an active or suspended template "
                       "can be changed or retired.")
    pending = pending_version(template)
    if pending is not None:
        raise Conflict(f"Version {pending.version} of template '{key}' is still waiting for a decision.")
    return template


def _content(session: Session, fields: dict) -> dict:
    if not (fields.get("rollback_plan") or "").strip():
        raise ValidationFailed("A template needs a rollback plan.", errors=[
            {"field": "rollback_plan", "message": "is required and may not be blank"}])
    if fields.get("max_risk") not in MAX_RISKS:
        raise ValidationFailed("A standard change is never high risk.", errors=[
            {"field": "max_risk", "message": f"must be one of {', '.join(MAX_RISKS)}"}])
    keys = list(dict.fromkeys(fields.get("allowed_services") or []))
    known = set(session.scalars(select(Service.key).where(Service.key.in_(keys))))
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValidationFailed("Unknown services.", errors=[
            {"field": "allowed_services", "message": f"no service with key '{k}'"} for k in unknown])
    return {**{name: fields.get(name) or "" for name in CONTENT}, "allowed_services": keys,
            "max_risk": fields["max_risk"]}


def _add_version(session: Session, template: ChangeTemplate, actor: User, kind: str, content: dict):
    number = max((v.version for v in template.versions), default=0) + 1
    version = TemplateVersion(version=number, kind=kind, proposed_by=actor, status="pending", **content)
    template.versions.append(version)
    session.flush()
    audit.record(session, "template_proposed", actor=actor,
                 data={"key": template.key, "version": number, "kind": kind,
                       **({"reason": content["description"]} if kind == "retire" else {})})
    return version


# -- deciding ------------------------------------------------------------------------------------

def decide_version(session: Session, actor: User, key: str, number: int, decision: str,
                   comment: str = "") -> TemplateVersion:
    template = get_template(session, actor, key, action="template.decide", lock=True)
    version = next((v for v in template.versions if v.version == number), None)
    if version is None:
        raise NotFound(f"Template '{key}' has no version {number}.")
    if version.status != "pending":
        raise Conflict(f"Version {number} of template '{key}' was already {version.status}.")
    if version.proposed_by_id == actor.id:
        raise Forbidden("Segregation of duties: you proposed this version, so someone else must decide it.",
                        rule=SOD_RULE)
    if decision == "reject" and not (comment or "").strip():
        raise ValidationFailed("A rejection needs a comment.", errors=[
            {"field": "comment", "message": "is required when rejecting"}])
    version.status = "approved" if decision == "approve" else "rejected"
    version.decided_by, version.decided_at, version.decision_comment = actor, utcnow(), (comment or "").strip()
    before = template.status
    _apply_decision(template, version)
    audit.record(session, "template_decided", actor=actor,
                 data={"key": key, "version": number, "kind": version.kind, "decision": decision,
                       "comment": version.decision_comment, "from": before, "to": template.status})
    if version.kind == "retire" and version.status == "approved":
        audit.record(session, "template_retired", actor=actor,
                     data={"key": key, "version": number, "reason": version.description})
    return version


def _apply_decision(template: ChangeTemplate, version: TemplateVersion) -> None:
    if version.status == "approved":
        if version.kind == "retire":
            template.status, template.status_reason = "retired", version.description
        else:
            template.status, template.status_reason = "active", ""
    elif version.kind == "create":
        template.status, template.status_reason = "rejected", version.decision_comment


def reinstate_template(session: Session, actor: User, key: str, comment: str) -> ChangeTemplate:
    """The review after an automatic suspension: the template may be used again."""
    template = get_template(session, actor, key, action="template.decide", lock=True)
    if template.status != "suspended":
        raise Conflict(f"Template '{key}' is {template.status}, not suspended.")
    if not (comment or "").strip():
        raise ValidationFailed("Say what the review found.", errors=[
            {"field": "comment", "message": "is required"}])
    reason = template.status_reason
    template.status, template.status_reason = "active", ""
    audit.record(session, "template_reinstated", actor=actor,
                 data={"key": key, "comment": comment.strip(), "suspended_for": reason})
    return template


# -- failures suspend ----------------------------------------------------------------------------

def suspend_after_failure(session: Session, change: Change) -> None:
    """A change from an active template that failed or was backed out suspends the template.

    Each change suspends its template at most once, so a reinstated template is not suspended
    again when later tasks of the same failed change are completed.
    """
    version = change.template_version
    failed = change.implementation_result in FAILED_RESULTS or change.close_code in FAILED_CLOSE_CODES
    if version is None or not failed or version.template.status != "active":
        return
    already = session.scalar(select(AuditEvent.id).where(
        AuditEvent.kind == "template_suspended", AuditEvent.change_id == change.id).limit(1))
    if already is not None:
        return
    outcome = change.close_code if change.close_code in FAILED_CLOSE_CODES else change.implementation_result
    template = version.template
    template.status = "suspended"
    template.status_reason = f"Change {change.number} ended {outcome.replace('_', ' ')}; suspended until reviewed."
    audit.record(session, "template_suspended", change_id=change.id,
                 data={"key": template.key, "version": version.version, "change": change.number,
                       "outcome": outcome})


# -- changes from templates ----------------------------------------------------------------------

def fields_for_change(session: Session, fields: dict) -> tuple[dict, TemplateVersion | None]:
    """The request's fields with the template's fixed content, and the version it comes from.

    Standard changes must name an active template; other change types may not name one.
    """
    key = fields.get("template")
    if fields["change_type"] != "standard":
        if key:
            raise _refused("Only standard changes are raised from templates.", "is only allowed for standard changes")
        return fields, None
    if not key:
        raise _refused("A standard change is raised from a template.", "is required for standard changes")
    template = session.scalar(select(ChangeTemplate).where(ChangeTemplate.key == key))
    if template is None:
        raise _refused(f"Template '{key}' does not exist.", f"no template with key '{key}'")
    version = active_version(template)
    if template.status != "active" or version is None:
        why = REFUSED_STATUS.get(template.status, f"is {template.status}")
        raise _refused(f"Template '{key}' {why}.", f"'{key}' {why}")
    _refuse_overrides(fields, version)
    outside = [k for k in fields.get("services") or [] if k not in version.allowed_services]
    if outside:
        raise ValidationFailed("Services outside the template.", errors=[
            {"field": "services", "message": f"'{k}' is not allowed by template '{key}'"} for k in outside])
    fixed = {name: getattr(version, name) for name in FIXED}
    return {**fields, **fixed, "rollback_tested": True}, version


def _refuse_overrides(fields: dict, version: TemplateVersion) -> None:
    errors = [{"field": name, "message": f"is fixed by template version {version.version} and may not differ"}
              for name in FIXED if fields.get(name) and fields[name] != getattr(version, name)]
    if errors:
        raise ValidationFailed("The template's category and plans are fixed.", errors=errors)


def check_max_risk(session: Session, change: Change, version: TemplateVersion) -> dict:
    """The change's risk under the current risk policy; refused when above the template's maximum.

    Returns the process variables that carry the assessment into the standard process.
    """
    risk, reasons = assess_risk(session, change)
    if RISKS.index(risk) > RISKS.index(version.max_risk):
        because = f" ({'; '.join(reasons)})" if reasons else ""
        raise _refused(
            f"This change is {risk} risk{because}, above the maximum ({version.max_risk}) of template "
            f"'{version.template.key}'; raise it as a normal change.",
            f"the change is {risk} risk{because} and exceeds the template's maximum risk ({version.max_risk}); "
            "raise it as a normal change")
    return {"template_risk": risk, "template_risk_reasons": reasons}


def assess_risk(session: Session, change: Change) -> tuple[str, list[str]]:
    """Risk as the normal process's *Assess risk* task would compute it: the highest level fired, and why."""
    policy = latest_version(session, RISK_PROCESS)
    if policy is None:
        raise NotFound(f"No {RISK_PROCESS} process is deployed, so the risk policy cannot be applied.")
    facts = {**process_data(change), **risk_inputs(session, change)}
    result = evaluate_decision(policy, RISK_DECISION, facts)
    return highest_risk(result.get("risk_level")), list(result.get("risk_reason") or [])


def _refused(message: str, detail: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[{"field": "template", "message": detail}])
