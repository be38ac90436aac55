"""IT leadership: volume, outcomes, speed and the approval backlog of a period.

Which changes each figure counts (docs/reports.md has the full definitions):
- *requested*: filed in the period (created_at), canceled ones included — volume by type, category, risk;
  the emergency ratio and the standard-change share are shares of these;
- *closed*: closed in the period (closed_at) — change failure rate (unsuccessful, backed out, or caused
  an incident) and success rate, its complement (successful or successful with issues, and no incident);
- lead times of the changes closed in the period: request → authorized (left *authorize*),
  authorized → implemented (the implementation was recorded: entered *review*), implemented → closed,
  and request → closed; median and 90th percentile, nearest rank;
- approval ages: approvals decided in the period, from the task's creation to the decision, per step;
- overdue at the period's end: approval and other tasks open then and past their due time, follow-up
  actions open then and past their due date;
- CAB throughput: meetings held in the period and the decisions recorded at them.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from ..models import Approval, AuditEvent, CabMeeting, Change, FollowUpAction, Task
from .model import Column, Figure, Report, Table
from .scope import Scope
from .sql import (SUCCESS_CODES, caused_incident, closed_in, failed, grouped_spreads, hours_between,
                  in_scope as _filters, instant, percent, requested_in, spreads)

TITLE = "IT leadership"
TYPES = ("standard", "normal", "emergency")
RISKS = ("low", "moderate", "high")


def metric(name: str, scope: Scope, group: str | None = None):
    """The SQL condition on changes behind a number of this report (for counts and drill-downs)."""
    if name == "requested":
        condition = requested_in(scope)
        if group:
            column, _, value = group.partition(":")
            field = {"type": Change.change_type, "category": Change.category, "risk": Change.risk,
                     "state": Change.state}.get(column)
            if field is None:
                raise KeyError(group)
            condition = and_(condition, field == value)
        return condition
    if name == "closed":
        condition = closed_in(scope)
        return and_(condition, Change.close_code == group) if group else condition
    if name == "failed":
        return and_(closed_in(scope), failed())
    if name == "succeeded":  # the complement of failed: a successful change that caused an incident failed
        return and_(closed_in(scope), Change.close_code.in_(SUCCESS_CODES), ~caused_incident())
    if name == "overdue_tasks":
        return Change.id.in_(select(Task.change_id).where(_overdue_task(scope, approvals=group == "approvals")))
    if name == "overdue_actions":
        return Change.id.in_(select(FollowUpAction.change_id).where(_overdue_action(scope)))
    raise KeyError(name)


def build(session: Session, scope: Scope, now: datetime | None = None) -> Report:
    report = Report("leadership", TITLE, scope, now or datetime.now(timezone.utc))
    requested = _count(session, metric("requested", scope))
    by = {column: _grouped(session, column, metric("requested", scope))
          for column in (Change.change_type, Change.category, Change.risk)}
    closed = _count(session, metric("closed", scope))
    succeeded = _count(session, metric("succeeded", scope))
    failures = _count(session, metric("failed", scope))
    canceled = _grouped(session, Change.state, metric("requested", scope)).get("canceled", 0)
    types = by[Change.change_type]
    report.figures += [
        Figure("requested", "Changes requested", requested, drill={"metric": "requested"}),
        Figure("closed", "Changes closed", closed, drill={"metric": "closed"}),
        Figure("success_rate", "Change success rate", percent(succeeded, closed), "percent",
               drill={"metric": "succeeded"}, note=f"{succeeded} of {closed} closed"),
        Figure("failure_rate", "Change failure rate", percent(failures, closed), "percent",
               drill={"metric": "failed"},
               note=f"{failures} of {closed} closed: unsuccessful, backed out or caused an incident"),
        Figure("emergency_ratio", "Emergency ratio", percent(types.get("emergency", 0), requested), "percent",
               drill={"metric": "requested", "group": "type:emergency"},
               note=f"{types.get('emergency', 0)} of {requested} requested"),
        Figure("standard_share", "Standard-change share", percent(types.get("standard", 0), requested), "percent",
               drill={"metric": "requested", "group": "type:standard"},
               note=f"{types.get('standard', 0)} of {requested} requested"),
        Figure("canceled", "Canceled", canceled, drill={"metric": "requested", "group": "state:canceled"}),
    ]
    for key, title, column, order in (("by_type", "Requested by type", Change.change_type, TYPES),
                                      ("by_category", "Requested by category", Change.category, None),
                                      ("by_risk", "Requested by risk", Change.risk, RISKS)):
        counts = by[column]
        labels = list(order) if order else sorted(counts, key=lambda k: (-counts[k], k))
        name = {"by_type": "type", "by_category": "category", "by_risk": "risk"}[key]
        report.tables.append(Table(key, title, [Column("label", name.title(), "text"), Column("count", "Changes")], [
            {"label": label, "count": counts.get(label, 0),
             "drill": {"count": {"metric": "requested", "group": f"{name}:{label}"}}}
            for label in labels if label is not None], chart="bar", chart_columns=["count"]))
    report.tables.append(_outcomes(session, scope))
    report.tables.append(_lead_times(session, scope))
    report.tables.append(_approval_ages(session, scope))
    report.tables.append(_overdue(session, scope))
    report.tables.append(_cab(session, scope))
    return report


def _count(session: Session, condition) -> int:
    return session.scalar(select(func.count(Change.id)).where(condition)) or 0


def _grouped(session: Session, column, condition) -> dict:
    return dict(session.execute(select(column, func.count(Change.id)).where(condition).group_by(column)).all())


def _outcomes(session: Session, scope: Scope) -> Table:
    counts = _grouped(session, Change.close_code, metric("closed", scope))
    codes = ("successful", "successful_with_issues", "unsuccessful", "backed_out")
    return Table("outcomes", "Closed by outcome", [Column("label", "Outcome", "text"), Column("count", "Changes")], [
        {"label": code, "count": counts.get(code, 0), "drill": {"count": {"metric": "closed", "group": code}}}
        for code in codes], chart="doughnut", chart_columns=["count"])


def _moments(closed):
    """Per change of `closed` (a select of change ids): when it was authorized (first left
    *authorize* for *scheduled* or *implement*) and when its implementation was recorded (first left
    *implement* for *review*) — one pass over those changes' state-change events."""
    event = aliased(AuditEvent)
    source, target = event.data["from"].as_string(), event.data["to"].as_string()
    authorized = func.min(case((and_(source == "authorize", target.in_(("scheduled", "implement"))), event.at)))
    implemented = func.min(case((and_(source == "implement", target == "review"), event.at)))
    return (select(event.change_id.label("change_id"), authorized.label("authorized"),
                   implemented.label("implemented"))
            .where(event.change_id.in_(closed), event.kind == "state_changed")
            .group_by(event.change_id).subquery())


LEAD_STAGES = (("Request → authorized", "created", "authorized"),
               ("Authorized → implemented", "authorized", "implemented"),
               ("Implemented → closed", "implemented", "closed"),
               ("Request → closed", "created", "closed"))


def _lead_times(session: Session, scope: Scope) -> Table:
    moments = _moments(select(Change.id).where(metric("closed", scope)))
    columns = {"created": Change.created_at, "authorized": moments.c.authorized,
               "implemented": moments.c.implemented, "closed": Change.closed_at}
    durations = (select(*(hours_between(session, columns[a], columns[b]).label(f"stage{i}")
                          for i, (_label, a, b) in enumerate(LEAD_STAGES)))
                 .select_from(Change).outerjoin(moments, moments.c.change_id == Change.id)
                 .where(metric("closed", scope)).subquery())
    found = spreads(session, durations, [f"stage{i}" for i in range(len(LEAD_STAGES))])
    rows = [_row(label, "changes", found[f"stage{i}"]) for i, (label, _a, _b) in enumerate(LEAD_STAGES)]
    return Table("lead_times", "Lead times of the changes closed (hours)", [
        Column("label", "Stage", "text"), Column("changes", "Changes"), Column("median", "Median", "hours"),
        Column("p90", "90th percentile", "hours")], rows, chart="bar", chart_columns=["median", "p90"])


def _approval_ages(session: Session, scope: Scope) -> Table:
    decided = and_(Approval.decided_at >= instant(scope.start), Approval.decided_at < instant(scope.end),
                   _of_scoped_changes(Approval.change_id, scope))
    ages = (select(Approval.step.label("step"),
                   hours_between(session, Task.created_at, Approval.decided_at).label("hours"))
            .join(Task, Task.id == Approval.task_id).where(decided).subquery())
    found = grouped_spreads(session, ages, "step", "hours")
    rows = [_row(step, "decisions", found[step]) for step in sorted(found)]
    return Table("approval_ages", "Approval ages: from request to decision (hours)", [
        Column("label", "Step", "text"), Column("decisions", "Decisions"), Column("median", "Median", "hours"),
        Column("p90", "90th percentile", "hours")], rows, chart="bar", chart_columns=["median", "p90"])


def _overdue_task(scope: Scope, *, approvals: bool):
    end = instant(scope.end)
    open_then = and_(Task.created_at < end, or_(Task.completed_at.is_(None), Task.completed_at >= end),
                     Task.status != "cancelled", Task.due_at.isnot(None), Task.due_at < end,
                     _of_scoped_changes(Task.change_id, scope))
    kind = Task.approval_step.isnot(None) if approvals else Task.approval_step.is_(None)
    return and_(open_then, kind)


def _overdue_action(scope: Scope):
    end = instant(scope.end)
    return and_(FollowUpAction.created_at < end, FollowUpAction.due_date < scope.last_day,
                or_(FollowUpAction.completed_at.is_(None), FollowUpAction.completed_at >= end),
                _of_scoped_changes(FollowUpAction.change_id, scope))


def _overdue(session: Session, scope: Scope) -> Table:
    approvals = session.scalar(select(func.count()).where(_overdue_task(scope, approvals=True))) or 0
    tasks = session.scalar(select(func.count()).where(_overdue_task(scope, approvals=False))) or 0
    actions = session.scalar(select(func.count()).where(_overdue_action(scope))) or 0
    return Table("overdue", f"Overdue at the end of {scope.label}", [
        Column("label", "What", "text"), Column("count", "Open and overdue")], [
        {"label": "Approvals", "count": approvals, "drill": {"count": {"metric": "overdue_tasks", "group": "approvals"}}},
        {"label": "Other tasks", "count": tasks, "drill": {"count": {"metric": "overdue_tasks", "group": "tasks"}}},
        {"label": "Follow-up actions", "count": actions, "drill": {"count": {"metric": "overdue_actions"}}},
    ], chart="bar", chart_columns=["count"])


def _cab(session: Session, scope: Scope) -> Table:
    held = and_(CabMeeting.starts_at >= instant(scope.start), CabMeeting.starts_at < instant(scope.end))
    meetings = session.scalar(select(func.count(CabMeeting.id)).where(held)) or 0
    decisions = session.scalar(select(func.count(Approval.id)).join(CabMeeting, CabMeeting.id == Approval.cab_meeting_id)
                               .where(held)) or 0
    return Table("cab", "CAB throughput", [Column("label", "Measure", "text"), Column("value", "Value")], [
        {"label": "Meetings", "value": meetings},
        {"label": "Decisions recorded at meetings", "value": decisions},
        {"label": "Decisions per meeting", "value": round(decisions / meetings, 1) if meetings else None},
    ])


def _of_scoped_changes(change_id, scope: Scope):
    """Rows of changes the scope's filters keep; no condition at all when it has none (a pointless
    IN over every change costs a scan at 100,000 changes)."""
    if not (scope.service or scope.category):
        return and_(True)
    return change_id.in_(select(Change.id).where(_filters(scope)))


def _row(label: str, counted: str, spread: tuple) -> dict:
    count, median, p90 = spread
    return {"label": label, counted: count, "median": _round(median), "p90": _round(p90)}


def _round(value):
    return round(value, 1) if value is not None else None
