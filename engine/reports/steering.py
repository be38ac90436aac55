"""Steering committee: the high-risk changes of a period and how they ended, what changes cost
against their estimates, business acceptance still open, and the high-risk changes planned next.

Which changes each figure counts (docs/reports.md has the full definitions):
- *high-risk changes of the period*: risk high, and requested in the period or closed in it (once);
  their outcome as it stood at the period's end: the close code when closed by then, *canceled* when
  canceled by then (closed_at is stamped on canceling too), else *open*;
- financial effect: the changes closed in the period, per category — the sum of the estimates where one
  was recorded, of the actual costs where one was recorded, each with how many changes had it, and the
  variance (actual − estimate) over the changes that had both, so like is compared with like;
- business acceptance open at the period's end (engine/reports/acceptance.py);
- top risks next period: high-risk changes whose planned window overlaps the next period (as planned
  now, canceled ones aside), by planned start.
The scope's service and category filters apply to all of them (sql.in_scope: the change names the service).
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session, selectinload

from ..models import Change
from . import acceptance
from .model import Column, Figure, Report, Table
from .scope import Scope
from .sql import closed_in, failed, in_scope, instant, percent, planned_in, requested_in

TITLE = "Steering committee"
OUTCOMES = ("successful", "successful_with_issues", "unsuccessful", "backed_out", "canceled", "open")
LIST_LIMIT = 200
CENT = Decimal("0.01")


def metric(name: str, scope: Scope, group: str | None = None):
    """The SQL condition on changes behind a number of this report (for counts and drill-downs).
    `group` narrows it: `outcome:<outcome>` for the high-risk changes, `category:<category>` for the costs."""
    column, _, value = (group or "").partition(":")
    costs = {"closed": None, "cost_estimated": Change.cost_estimate.isnot(None),
             "cost_actual": Change.cost_actual.isnot(None),
             "cost_both": and_(Change.cost_estimate.isnot(None), Change.cost_actual.isnot(None))}
    groups = {"high_risk": "outcome", **{cost: "category" for cost in costs}}
    if group and not (value and column == groups.get(name)):
        raise KeyError(group)
    if name == "high_risk":
        return and_(_high_risk(scope), outcome(scope) == value) if group else _high_risk(scope)
    if name == "high_risk_failed":
        return and_(_high_risk(scope), closed_in(scope), failed())
    if name in costs:
        condition = closed_in(scope) if costs[name] is None else and_(closed_in(scope), costs[name])
        return and_(condition, Change.category == value) if group else condition
    if name == "acceptance_open":
        return and_(in_scope(scope), acceptance.changes_open_at(scope.end))
    if name == "next_high_risk":
        return and_(Change.risk == "high", planned_in(scope.next()))
    raise KeyError(name)


def outcome(scope: Scope):
    """A change's outcome as it stood at the end of the period."""
    end = instant(scope.end)  # the process stamps closed_at on both final states: closed and canceled
    return case((and_(Change.state == "closed", Change.closed_at < end), func.coalesce(Change.close_code, "closed")),
                (and_(Change.state == "canceled", Change.closed_at < end), literal("canceled")), else_=literal("open"))


def build(session: Session, scope: Scope, now: datetime | None = None) -> Report:
    report = Report("steering", TITLE, scope, now or datetime.now(timezone.utc))
    # grouped outside: PostgreSQL would not match a CASE with bound parameters in SELECT and GROUP BY
    ends = select(outcome(scope).label("outcome")).where(_high_risk(scope)).subquery()
    outcomes = dict(session.execute(select(ends.c.outcome, func.count()).group_by(ends.c.outcome)).all())
    high = sum(outcomes.values())
    high_failed = _count(session, metric("high_risk_failed", scope))
    finance = _finance(session, scope)
    total = finance.rows[-1]
    waiting = _count(session, metric("acceptance_open", scope))
    upcoming = _count(session, metric("next_high_risk", scope))
    report.figures += [
        Figure("high_risk", "High-risk changes", high, drill={"metric": "high_risk"},
               note="requested or closed in the period"),
        Figure("high_risk_failed", "High-risk changes that failed", high_failed, drill={"metric": "high_risk_failed"},
               note="closed in the period: unsuccessful, backed out or caused an incident"),
        Figure("cost_estimate", "Estimated cost", total["estimate"], "money", drill={"metric": "cost_estimated"},
               note=f"{total['estimated']} of {total['changes']} changes closed had an estimate"),
        Figure("cost_actual", "Actual cost", total["actual"], "money", drill={"metric": "cost_actual"},
               note=f"{total['actualized']} of {total['changes']} changes closed had an actual cost"),
        Figure("cost_variance", "Cost variance", total["variance"], "money", drill={"metric": "cost_both"},
               note=f"actual − estimate over the {total['both']} changes with both"),
        Figure("acceptance_open", "Business acceptance open", waiting, drill={"metric": "acceptance_open"},
               note="changes waiting for it at the end of the period"),
        Figure("next_high_risk", f"High-risk changes planned in {scope.next().label}", upcoming,
               drill={"metric": "next_high_risk"}),
    ]
    report.tables += [
        Table("high_risk_outcomes", "High-risk changes by outcome at the end of the period", [
            Column("label", "Outcome", "text"), Column("count", "Changes")], [
            {"label": name, "count": outcomes.get(name, 0),
             "drill": {"count": {"metric": "high_risk", "group": f"outcome:{name}"}}}
            for name in OUTCOMES + tuple(sorted(set(outcomes) - set(OUTCOMES)))],
            chart="doughnut", chart_columns=["count"]),
        _high_risk_list(session, scope),
        finance,
        acceptance.items_table(session, in_scope(scope), scope.end, label=scope.label),
        _next_risks(session, scope),
    ]
    return report


def _high_risk(scope: Scope):
    return and_(Change.risk == "high", or_(requested_in(scope), closed_in(scope)))


def _count(session: Session, condition) -> int:
    return session.scalar(select(func.count(Change.id)).where(condition)) or 0


def _money(value) -> float | None:
    return float(Decimal(str(value)).quantize(CENT)) if value is not None else None


def _finance(session: Session, scope: Scope) -> Table:
    both = and_(Change.cost_estimate.isnot(None), Change.cost_actual.isnot(None))
    query = (select(Change.category, func.count(Change.id), func.count(Change.cost_estimate),
                    func.sum(Change.cost_estimate), func.count(Change.cost_actual), func.sum(Change.cost_actual),
                    func.coalesce(func.sum(case((both, 1), else_=0)), 0),
                    func.sum(case((both, Change.cost_estimate))), func.sum(case((both, Change.cost_actual))))
             .where(closed_in(scope)).group_by(Change.category).order_by(Change.category))
    rows, sums = [], {key: Decimal(0) for key in ("estimate", "actual", "estimate_both", "actual_both")}
    counts = {key: 0 for key in ("changes", "estimated", "actualized", "both")}
    for category, changes, estimated, estimate, actualized, actual, with_both, estimate_both, actual_both in \
            session.execute(query):  # one row per category
        row = _finance_row(category, changes, estimated, estimate, actualized, actual, with_both, estimate_both,
                           actual_both, group=f"category:{category}")
        rows.append(row)
        for key in counts:
            counts[key] += row[key]
        for key, value in (("estimate", estimate), ("actual", actual), ("estimate_both", estimate_both),
                           ("actual_both", actual_both)):
            sums[key] += Decimal(str(value)) if value is not None else 0
    rows.append(_finance_row("All categories", counts["changes"], counts["estimated"],
                             sums["estimate"] if counts["estimated"] else None, counts["actualized"],
                             sums["actual"] if counts["actualized"] else None, counts["both"],
                             sums["estimate_both"] if counts["both"] else None,
                             sums["actual_both"] if counts["both"] else None, group=None))
    return Table("financial", "Financial effect of the changes closed", [
        Column("label", "Category", "text"), Column("changes", "Changes closed"),
        Column("estimated", "With an estimate"), Column("estimate", "Estimated", "money"),
        Column("actualized", "With an actual cost"), Column("actual", "Actual", "money"),
        Column("both", "With both"), Column("variance", "Variance (actual − estimate)", "money"),
        Column("variance_percent", "Variance", "percent")], rows, chart="bar", chart_columns=["estimate", "actual"],
        note="The variance compares the changes that recorded both an estimate and an actual cost.")


def _finance_row(label, changes, estimated, estimate, actualized, actual, both, estimate_both, actual_both, *, group):
    variance = (Decimal(str(actual_both)) - Decimal(str(estimate_both))) if both else None
    estimate_base = Decimal(str(estimate_both)) if both else None
    grouped = {"group": group} if group else {}
    return {"label": label, "changes": int(changes), "estimated": int(estimated), "estimate": _money(estimate),
            "actualized": int(actualized), "actual": _money(actual), "both": int(both), "variance": _money(variance),
            "variance_percent": percent(float(variance), float(estimate_base)) if both and estimate_base else None,
            "drill": {"changes": {"metric": "closed", **grouped}, "estimated": {"metric": "cost_estimated", **grouped},
                      "estimate": {"metric": "cost_estimated", **grouped},
                      "actualized": {"metric": "cost_actual", **grouped}, "actual": {"metric": "cost_actual", **grouped},
                      "both": {"metric": "cost_both", **grouped}, "variance": {"metric": "cost_both", **grouped}}}


def _high_risk_list(session: Session, scope: Scope) -> Table:
    found = session.execute(select(Change, outcome(scope)).where(_high_risk(scope))
                            .options(selectinload(Change.services))
                            .order_by(Change.created_at, Change.id).limit(LIST_LIMIT)).all()
    rows = [{"change": c.number, "title": c.title, "type": c.change_type, "category": c.category,
             "services": ", ".join(s.key for s in c.services), "requested": c.created_at.isoformat(),
             "closed": c.closed_at.isoformat() if c.closed_at and c.state == "closed" else "",
             "outcome": result, "incidents": len(c.incidents_caused or [])} for c, result in found]
    return Table("high_risk_changes", "High-risk changes of the period", [
        Column("change", "Change", "text"), Column("title", "Title", "text"), Column("type", "Type", "text"),
        Column("category", "Category", "text"), Column("services", "Services", "text"),
        Column("requested", "Requested", "text"), Column("closed", "Closed", "text"),
        Column("outcome", "Outcome", "text"), Column("incidents", "Incidents caused")], rows,
        note=f"The first {LIST_LIMIT} by request time." if len(rows) == LIST_LIMIT else "")


def _next_risks(session: Session, scope: Scope) -> Table:
    upcoming = scope.next()
    found = session.scalars(select(Change).where(metric("next_high_risk", scope))
                            .options(selectinload(Change.services))
                            .order_by(Change.planned_start, Change.id).limit(LIST_LIMIT)).all()
    rows = [{"change": c.number, "title": c.title, "planned_start": c.planned_start.isoformat(),
             "planned_end": c.planned_end.isoformat(), "services": ", ".join(s.key for s in c.services),
             "risk_reasons": "; ".join(c.risk_reasons or []), "state": c.state} for c in found]
    return Table("next_risks", f"Top risks in {upcoming.label}: high-risk changes planned", [
        Column("change", "Change", "text"), Column("title", "Title", "text"),
        Column("planned_start", "Planned start", "text"), Column("planned_end", "Planned end", "text"),
        Column("services", "Services", "text"), Column("risk_reasons", "Why high risk", "text"),
        Column("state", "State", "text")], rows,
        note=f"The first {LIST_LIMIT} by planned start." if len(rows) == LIST_LIMIT else "")
