"""What filing a change would come to — its risk and why, its priority, the conflicts of its window —
without filing anything.

It runs the code the real submission runs: `changes.unsaved_change` builds the change exactly as
`create_change` does (template content, services, implementer, window checks) but never adds it to
the session; risk and priority are the DMN decisions of the process version the change would start
(`risk_assessment`, `priority_matrix`) over the facts the process starts with; a standard change's risk
is the template check of `templates.check_max_risk`; conflicts are `conflicts.detect`, as in the
process's conflict check.
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from . import templates
from .changes import PROCESS_FOR_TYPE, unsaved_change
from .conflicts import Proposal, detect
from .decisions import evaluate_decision, highest_risk
from .definitions import latest_version
from .errors import NotFound
from .evidence_rules import STAGES, required_evidence
from .models import User
from .permissions import require
from .projection import process_data, risk_inputs

RISK_DECISION, PRIORITY_DECISION = "risk_assessment", "priority_matrix"
# standard_change.bpmn's "Apply pre-approved risk" script puts this reason first
PREAPPROVED_REASON = "Pre-approved standard change"


def preview_change(session: Session, actor: User, fields: dict) -> dict:
    """{risk, risk_reasons, priority, conflicts, evidence_required, process} for a request checked by
    the API schema (`evidence_required`: the kinds the category will need per stage, from evidence.dmn).

    Refuses (422, naming the field) what filing would refuse before the process starts.
    """
    require(actor, "change.create")
    change_type = fields["change_type"]
    version = latest_version(session, PROCESS_FOR_TYPE[change_type])
    if version is None:
        raise NotFound(f"No process is deployed for {change_type} changes ({PROCESS_FOR_TYPE[change_type]}).")
    # The unsaved change must never reach a flush: nothing of a preview is stored.
    with session.no_autoflush:
        change, template_version = unsaved_change(session, actor, fields)
        try:
            facts = {**process_data(change), **risk_inputs(session, change)}
            if template_version is not None:
                assessed = templates.check_max_risk(session, change, template_version)
                risk = assessed["template_risk"]
                reasons = [PREAPPROVED_REASON, *assessed["template_risk_reasons"]]
            else:
                result = evaluate_decision(version, RISK_DECISION, facts)
                risk, reasons = highest_risk(result.get("risk_level")), list(result.get("risk_reason") or [])
            priority = evaluate_decision(version, PRIORITY_DECISION, facts).get("priority")
            proposal = Proposal(change.planned_start, change.planned_end, tuple(s.id for s in change.services),
                                change_type, change.implementer.id if change.implementer else None)
            conflicts = detect(session, proposal)
            evidence = {stage: required_evidence(change, stage, version) for stage in STAGES}
        finally:
            if change in session:
                session.expunge(change)
    return {"risk": risk, "risk_reasons": reasons, "priority": priority,
            "conflicts": [c.as_dict() for c in conflicts],
            "evidence_required": evidence,
            "process": {"key": version.process_key, "version": version.version}}
