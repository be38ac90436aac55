"""Audit: can every material change of the period be traced from request to closure?

*Of the period* means open at any moment of it: material (normal or emergency) changes requested
before the period's end and not closed or canceled before its start — so requested in it, closed or
canceled in it, or open across it. Canceled changes are included.

For each change, nine trace facts, each `present`, `missing` or `not due`, as recorded when the report
is made. A fact that is recorded is present whatever the state; one that is not is missing once the
change has reached the stage that needs it, and not due before (docs/reports.md lists each rule):

- request source: requester, plus a justification, incident reference or emergency reason — always due;
- impacted service: at least one service — always due;
- risk level — due from *authorize* on, and for canceled changes;
- approval status: an approval at every step of the change's approval path (by its risk; emergency:
  *ecab*) in its latest authorization round, with no rejection in that round — due from *scheduled*
  on; an emergency change also needs its retrospective review, due once closed;
- owner (implementer assigned), test evidence (current `test_result`), rollback readiness (a rollback
  plan, tested or with current `rollback_plan` evidence) — due from *implement* on;
- implementation result — due from *review* on;
- post-change service validation: the latest business-acceptance round accepted with no rejection,
  or current `verification` evidence — due once closed.

A canceled change never goes ahead, so only the facts of its request (source, service, risk) are due.
One statement computes every fact of every change (per-change aggregates of approvals, evidence, tasks
and services, joined to the changes) and, as window sums over the same rows, the totals.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import and_, case, exists, func, literal, or_, select
from sqlalchemy.orm import Session, aliased

from ..models import Approval, Change, Evidence, Task, change_services
from .model import Column, Figure, Report, Table
from .scope import Scope
from .sql import MATERIAL_TYPES, in_scope, instant

TITLE = "Audit trace"
PRESENT, MISSING, NOT_DUE = "present", "missing", "not due"
VALUES = {"present": PRESENT, "missing": MISSING, "not_due": NOT_DUE}  # metric prefix → cell value
FACTS = (
    ("request_source", "Request source"),
    ("impacted_service", "Impacted service"),
    ("risk_level", "Risk level"),
    ("owner", "Owner"),
    ("approval", "Approval status"),
    ("test_evidence", "Test evidence"),
    ("rollback_readiness", "Rollback readiness"),
    ("implementation_result", "Implementation result"),
    ("service_validation", "Post-change service validation"),
)
FACT_KEYS = tuple(key for key, _ in FACTS)
# the authorization steps of each approval path, as the diagrams name them (approvalStep)
NORMAL_STEPS = ("change_manager", "service_owner", "cab")
EMERGENCY_STEPS = ("ecab",)
ACCEPTANCE_STEPS = ("business_acceptance",)
RETROSPECTIVE_TASK = "Task_RetrospectiveReview"  # the emergency diagram's mandatory review
# where a change is on its way; canceled is none of them (it reached nothing that needs a later fact)
PROGRESS = ("new", "assess", "authorize", "scheduled", "implement", "review", "closed")


def of_period(scope: Scope):
    """Material changes open at any moment of the period (requested, closed or open across it)."""
    return and_(Change.change_type.in_(MATERIAL_TYPES), Change.created_at < instant(scope.end),
                or_(Change.closed_at.is_(None), Change.closed_at >= instant(scope.start)), in_scope(scope))


def _reached(state: str):
    return Change.state.in_(PROGRESS[PROGRESS.index(state):])


def _filled(column):
    return func.trim(func.coalesce(column, "")) != ""


def _flag(condition):
    return func.max(case((condition, 1), else_=0))


def _recorded(scope: Scope):
    """What each change of the period has recorded, as per-change flags: one aggregate per table,
    joined to the changes (not a subquery per change and fact, which costs seconds at 100,000)."""
    # the period's changes once, as a CTE every aggregate reads (SQLite and PostgreSQL materialise it)
    period = select(select(Change.id).where(of_period(scope)).cte("period").c.id)
    auth_steps = NORMAL_STEPS + EMERGENCY_STEPS
    rounds = (select(Approval.change_id,
                     func.max(case((Approval.step.in_(auth_steps), Approval.round))).label("authorization"),
                     func.max(case((Approval.step.in_(ACCEPTANCE_STEPS), Approval.round))).label("acceptance"))
              .where(Approval.change_id.in_(period)).group_by(Approval.change_id).subquery())
    in_authorization = and_(Approval.step.in_(auth_steps), Approval.round == rounds.c.authorization)
    in_acceptance = and_(Approval.step.in_(ACCEPTANCE_STEPS), Approval.round == rounds.c.acceptance)
    approved = Approval.decision == "approve"
    decisions = (select(Approval.change_id, *(
        _flag(and_(in_authorization, approved, Approval.step == step)).label(step) for step in auth_steps),
        _flag(and_(in_authorization, Approval.decision == "reject")).label("authorization_rejected"),
        _flag(and_(in_acceptance, approved)).label("accepted"),
        _flag(and_(in_acceptance, Approval.decision == "reject")).label("acceptance_rejected"))
        .join(rounds, rounds.c.change_id == Approval.change_id).where(Approval.change_id.in_(period))
        .group_by(Approval.change_id).subquery())
    newer = aliased(Evidence)
    evidence = (select(Evidence.change_id, *(_flag(Evidence.kind == kind).label(kind)
                                             for kind in ("test_result", "rollback_plan", "verification")))
                .where(Evidence.change_id.in_(period), ~exists().where(newer.supersedes_id == Evidence.id))
                .group_by(Evidence.change_id).subquery())  # current evidence only, as present_kinds
    retrospective = (select(Task.change_id).where(Task.change_id.in_(period), Task.element_id == RETROSPECTIVE_TASK,
                                                  Task.status == "completed").distinct().subquery())
    services = (select(change_services.c.change_id).where(change_services.c.change_id.in_(period))
                .distinct().subquery())
    return decisions, evidence, retrospective, services


def _fact(present, due):
    return case((present, PRESENT), (due, MISSING), else_=NOT_DUE)


def facts_of(scope: Scope):
    """One row per material change of the period: id, number, title, type, state and the nine facts."""
    decisions, evidence, retrospective, services = _recorded(scope)

    def yes(column):
        return func.coalesce(column, 0) == 1

    risk = func.coalesce(Change.risk, "low")  # no risk recorded: the change manager's step alone
    normal = and_(yes(decisions.c.change_manager),
                  or_(risk.not_in(("moderate", "high")), yes(decisions.c.service_owner)),
                  or_(risk != "high", yes(decisions.c.cab)), ~yes(decisions.c.authorization_rejected))
    ecab = and_(yes(decisions.c.ecab), ~yes(decisions.c.authorization_rejected))
    retrospective_done = retrospective.c.change_id.isnot(None)
    emergency = case((and_(ecab, retrospective_done), PRESENT), (_reached("closed"), MISSING),
                     (and_(_reached("scheduled"), ~ecab), MISSING), else_=NOT_DUE)
    source = and_(Change.requester_id.isnot(None), or_(
        _filled(Change.justification), _filled(Change.incident_ref), _filled(Change.emergency_reason)))
    accepted = and_(yes(decisions.c.accepted), ~yes(decisions.c.acceptance_rejected))
    columns = {
        "request_source": _fact(source, literal(True)),
        "impacted_service": _fact(services.c.change_id.isnot(None), literal(True)),
        "risk_level": _fact(_filled(Change.risk), or_(_reached("authorize"), Change.state == "canceled")),
        "owner": _fact(Change.implementer_id.isnot(None), _reached("implement")),
        "approval": case((Change.change_type == "emergency", emergency),
                         else_=_fact(normal, _reached("scheduled"))),
        "test_evidence": _fact(yes(evidence.c.test_result), _reached("implement")),
        "rollback_readiness": _fact(and_(_filled(Change.rollback_plan),
                                         or_(Change.rollback_tested.is_(True), yes(evidence.c.rollback_plan))),
                                    _reached("implement")),
        "implementation_result": _fact(_filled(Change.implementation_result), _reached("review")),
        "service_validation": _fact(or_(accepted, yes(evidence.c.verification)), _reached("closed")),
    }
    return (select(Change.id, Change.number, Change.title, Change.change_type, Change.state,
                   *(expression.label(key) for key, expression in columns.items()))
            .outerjoin(decisions, decisions.c.change_id == Change.id)
            .outerjoin(evidence, evidence.c.change_id == Change.id)
            .outerjoin(retrospective, retrospective.c.change_id == Change.id)
            .outerjoin(services, services.c.change_id == Change.id)
            .where(of_period(scope))
            .offset(0)  # a fence: PostgreSQL would otherwise inline every fact into each total and the sort
            .subquery("facts"))


def metric(name: str, scope: Scope, group: str | None = None):
    """material · with_gaps · change (group: its number) · missing:<fact> · not_due:<fact> · present:<fact>."""
    condition = of_period(scope)
    if name == "material":
        return condition
    if name == "change" and group:
        return and_(condition, Change.number == group)
    facts = facts_of(scope)
    if name == "with_gaps":
        return Change.id.in_(select(facts.c.id).where(or_(*(facts.c[key] == MISSING for key in FACT_KEYS))))
    value, _, fact = name.partition(":")
    if value in VALUES and fact in FACT_KEYS:
        return Change.id.in_(select(facts.c.id).where(facts.c[fact] == VALUES[value]))
    raise KeyError(name)


def build(session: Session, scope: Scope, now: datetime | None = None) -> Report:
    report = Report("audit", TITLE, scope, now or datetime.now(timezone.utc))
    facts = facts_of(scope)
    gaps = sum(case((facts.c[key] == MISSING, 1), else_=0) for key in FACT_KEYS)
    everyone = {"material": func.count().over(), "with_gaps": func.sum(case((gaps > 0, 1), else_=0)).over(),
                **{f"{name}:{key}": func.sum(case((facts.c[key] == value, 1), else_=0)).over()
                   for key in FACT_KEYS for name, value in VALUES.items()}}
    # one statement: the rows, and the totals over all of them as window sums
    totals_columns = (e.label(f"total_{i}") for i, e in enumerate(everyone.values()))
    rows = session.execute(select(facts, gaps.label("gaps"), *totals_columns)
                           .order_by(gaps.desc(), facts.c.number, facts.c.id)).mappings().all()
    totals = {name: int(rows[0][f"total_{i}"]) if rows else 0 for i, name in enumerate(everyone)}
    material, with_gaps = totals["material"], totals["with_gaps"]
    report.figures += [
        Figure("material", "Material changes", material, drill={"metric": "material"},
               note="normal and emergency changes open during the period"),
        Figure("with_gaps", "Changes with a gap", with_gaps, drill={"metric": "with_gaps"},
               note=f"at least one trace fact missing, of {material}"),
        *(Figure(f"missing_{key}", f"Missing: {label.lower()}", totals[f"missing:{key}"],
                 drill={"metric": f"missing:{key}"}) for key, label in FACTS),
    ]
    report.tables.append(Table("gaps_by_fact", "Trace facts across the changes", [
        Column("label", "Fact", "text"), Column("missing", "Missing"), Column("not_due", "Not due"),
        Column("present", "Present")], [
        {"label": label, **{name: totals[f"{name}:{key}"] for name in VALUES},
         "drill": {name: {"metric": f"{name}:{key}"} for name in VALUES}}
        for key, label in FACTS], chart="bar", chart_columns=["missing"]))
    report.tables.append(Table("changes", "Every material change, gaps first", [
        Column("number", "Change", "text"), Column("title", "Title", "text"), Column("type", "Type", "text"),
        Column("state", "State", "text"), Column("gaps", "Gaps"),
        *(Column(key, label, "text") for key, label in FACTS)], [
        {"number": row["number"], "title": row["title"], "type": row["change_type"], "state": row["state"],
         "gaps": row["gaps"], **{key: row[key] for key in FACT_KEYS},
         "drill": {"number": {"metric": "change", "group": row["number"]}}}
        for row in rows],
        note="Facts as recorded now; “not due” means the change has not reached the stage that needs it."))
    return report
