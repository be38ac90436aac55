"""Evidence requirements: which evidence kinds a change needs before implementation and before closure.

The policy is the DMN decision `evidence_requirements` (processes/evidence.dmn, hit policy COLLECT):
inputs `category`, `stage` ("implement" or "close") and `implementation_result`, one output
`required_kind` per matching rule. What is *missing* is that list minus the kinds of the change's current
(not superseded) evidence — `engine.evidence.present_kinds`.

Two places ask:
- the processes: a business rule task *Evidence required* evaluates the decision into the task data
  (that is also what puts evidence.dmn into the process's deployed bundle), and the `check_evidence`
  operator subtracts what is attached (`check_task_data`);
- the deployment gate and the trace: `missing_evidence` evaluates the same decision, from the change's
  own process version, with the change's facts.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .bpmn.bundle import decision_ids
from .decisions import evaluate_decision
from .models import Change, ProcessInstance, ProcessVersion, User

DECISION = "evidence_requirements"
STAGES = ("implement", "close")
STAGE_WORDS = {"implement": "implementation", "close": "closure"}


def _kinds(values) -> list[str]:
    """Sorted, deduplicated evidence kinds from a COLLECT output (a list, one value, or None)."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return sorted({str(v) for v in values if v})


@lru_cache(maxsize=256)
def _decisions(sha: str, xml: str) -> frozenset[str]:
    return frozenset(decision_ids(xml))


def has_requirements(version: ProcessVersion | None) -> bool:
    """Whether the process version deploys the decision (versions older than it require nothing)."""
    if version is None:
        return False
    return any(DECISION in _decisions(hashlib.sha256(xml.encode("utf-8")).hexdigest(), xml)
               for xml in (version.dmn or {}).values())


def process_version(session: Session, change: Change) -> ProcessVersion | None:
    instance = session.scalar(select(ProcessInstance).where(ProcessInstance.change_id == change.id))
    return instance.process_version if instance is not None else None


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ValueError(f"'{stage}' is not an evidence stage; use one of {', '.join(STAGES)}")


def required_evidence(change: Change, stage: str, version: ProcessVersion | None) -> list[str]:
    """The kinds the version's policy requires of the change at `stage` (sorted)."""
    _check_stage(stage)
    if not has_requirements(version):
        return []
    facts = {"category": change.category, "stage": stage,
             # before implementation there is no result yet (the process's Evidence required task agrees)
             "implementation_result": change.implementation_result if stage == "close" else None}
    return _kinds(evaluate_decision(version, DECISION, facts).get("required_kind"))


def missing_evidence(session: Session, change: Change, stage: str,
                     version: ProcessVersion | None = None) -> list[str]:
    """Required kinds at `stage` the change has no current evidence of: sorted, deduplicated."""
    from .evidence import present_kinds

    version = version if version is not None else process_version(session, change)
    required = required_evidence(change, stage, version)
    if not required:
        return []
    return sorted(set(required) - present_kinds(session, change))


def evidence_status(session: Session, change: Change, version: ProcessVersion | None = None) -> dict:
    """{stage: {"required": [...], "missing": [...]}} for both stages, for the trace."""
    from .evidence import present_kinds

    version = version if version is not None else process_version(session, change)
    present = present_kinds(session, change)
    status = {}
    for stage in STAGES:
        required = required_evidence(change, stage, version)
        status[stage] = {"required": required, "missing": sorted(set(required) - present)}
    return status


def check_task_data(session: Session, change: Change, stage: str, data: dict, *, actor: User | None = None,
                    element_id: str | None = None) -> dict:
    """What the `check_evidence` operator returns: the required kinds the process looked up (task data
    `required_kind`, from the Evidence required task) minus the kinds attached to the change.

    Every check is an audit event (`evidence_checked`), so the trace shows what was missing when."""
    from .evidence import present_kinds

    _check_stage(stage)
    looked_up = data.get("stage")
    if looked_up != stage:
        raise ValueError(f"the evidence requirements in the task data are for stage {looked_up!r}, not "
                         f"{stage!r}: evaluate the decision '{DECISION}' with stage = \"{stage}\" first")
    required = _kinds(data.get("required_kind"))
    missing = sorted(set(required) - present_kinds(session, change))
    result = {"stage": stage, "required": required, "missing": missing, "complete": not missing}
    audit.record(session, "evidence_checked", actor=actor, change_id=change.id, element_id=element_id,
                 data=result)
    return result


def gate_reason(missing: list[str], stage: str = "implement") -> str:
    return f"Missing evidence before {STAGE_WORDS[stage]}: {', '.join(missing)}"
