"""Change success score: how well each service and each implementing team changes things.

Every change closed in the period scores +3 when successful, −2 when successful with issues, −5 when
unsuccessful or backed out, and −5 more for each incident it caused (`incidents_caused`). A service
scores the sum over the changes that touch it directly (a change on two services counts for both); a
team the sum over the changes its members implemented — the implementer's `team`, or their username
when they have none; changes without an implementer are "(no implementer)". The trend is the same
score in this period and the three before it. A row with no change closed in a period has no score
there (empty, not zero). One GROUP BY per period and dimension.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from ..models import Change, Service, User, change_services
from .model import Column, Figure, Report, Table
from .scope import Scope
from .sql import caused_incident, closed_in, json_length

TITLE = "Change success score"
POINTS = {"successful": 3, "successful_with_issues": -2, "unsuccessful": -5, "backed_out": -5}
INCIDENT_POINTS = -5
TREND = 4  # periods in the trend, this one included
NO_IMPLEMENTER = "(none)"  # the drill-down group of changes nobody implemented (no username has brackets)
MAX_BACK = 12


def points():
    """The score of the change in the enclosing query, as an SQL expression."""
    outcome = case(*((Change.close_code == code, value) for code, value in POINTS.items()), else_=0)
    return outcome + INCIDENT_POINTS * json_length(Change.incidents_caused)


def team_of():
    """The implementer's team, or their username when they have none (NULL: no implementer)."""
    return func.coalesce(User.team, User.username)


def _touches(key: str):
    return Change.id.in_(select(change_services.c.change_id)
                         .join(Service, Service.id == change_services.c.service_id).where(Service.key == key))


def _implemented_by(team: str):
    if team == NO_IMPLEMENTER:
        return Change.implementer_id.is_(None)
    return Change.implementer_id.in_(select(User.id).where(team_of() == team))


def metric(name: str, scope: Scope, group: str | None = None):
    """closed · incidents · service (group: key) · team (group: team); `name@-n`: n periods before."""
    base, _, back = name.partition("@-")
    if back:
        if not back.isdigit() or not 0 < int(back) <= MAX_BACK:
            raise KeyError(name)
        for _ in range(int(back)):
            scope = scope.previous()
    condition = closed_in(scope)
    if base == "closed":
        return and_(condition, Change.close_code == group) if group else condition
    if base == "incidents":
        return and_(condition, caused_incident())
    if base == "service" and group:
        return and_(condition, _touches(group))
    if base == "team" and group:
        return and_(condition, _implemented_by(group))
    raise KeyError(name)


def _by_service(session: Session, scope: Scope) -> dict[str, tuple[str, int, int]]:
    query = (select(Service.key, Service.name, func.sum(points()), func.count(Change.id))
             .join(change_services, change_services.c.change_id == Change.id)
             .join(Service, Service.id == change_services.c.service_id)
             .where(closed_in(scope)).group_by(Service.key, Service.name))
    if scope.service:  # the changes on this service touch others too; the report is about this one
        query = query.where(Service.key == scope.service)
    return {key: (name, int(score), count) for key, name, score, count in session.execute(query)}


def _by_team(session: Session, scope: Scope) -> dict[str, tuple[str, int, int]]:
    team = team_of().label("team")
    query = (select(team, func.sum(points()), func.count(Change.id))
             .outerjoin(User, User.id == Change.implementer_id).where(closed_in(scope)).group_by(team))
    return {(name or NO_IMPLEMENTER): (name or "(no implementer)", int(score), count)
            for name, score, count in session.execute(query)}


def build(session: Session, scope: Scope, now: datetime | None = None) -> Report:
    report = Report("success-score", TITLE, scope, now or datetime.now(timezone.utc))
    totals = session.execute(select(func.count(Change.id), func.sum(points()),
                                    func.sum(json_length(Change.incidents_caused))).where(closed_in(scope))).one()
    closed, score, incidents = totals[0], totals[1], totals[2] or 0
    report.figures += [
        Figure("score", "Success score", int(score) if closed else None, "score", drill={"metric": "closed"},
               note=f"{closed} changes closed; +3 successful, −2 with issues, −5 failed, −5 per incident"),
        Figure("closed", "Changes closed", closed, drill={"metric": "closed"}),
        Figure("incidents", "Incidents caused", int(incidents), drill={"metric": "incidents"},
               note="the drill-down lists the changes that caused them"),
    ]
    report.tables.append(_points(session, scope, incidents))
    periods = scope.trend(TREND)
    for key, title, label, grouped, dimension in (
            ("by_service", "Score by service", "Service", _by_service, "service"),
            ("by_team", "Score by implementing team", "Team", _by_team, "team")):
        report.tables.append(_trend_table(key, title, label, dimension, [grouped(session, p) for p in periods],
                                          periods))
    return report


def _points(session: Session, scope: Scope, incidents: int) -> Table:
    """How the period's score is made: changes and points per outcome, then incidents and their points."""
    counts = dict(session.execute(select(Change.close_code, func.count(Change.id)).where(closed_in(scope))
                                  .group_by(Change.close_code)).all())
    rows = [{"label": code, "changes": counts.get(code, 0), "points": value * counts.get(code, 0),
             "drill": {"changes": {"metric": "closed", "group": code}}} for code, value in POINTS.items()]
    rows.append({"label": "incidents caused", "changes": incidents, "points": INCIDENT_POINTS * incidents,
                 "drill": {"changes": {"metric": "incidents"}}})
    return Table("points", "How the score is made", [
        Column("label", "Outcome", "text"), Column("changes", "Count"), Column("points", "Points", "score")],
        rows, chart="bar", chart_columns=["points"])


def _trend_table(key, title, label, dimension, per_period: list[dict], periods: list[Scope]) -> Table:
    """One row per service or team: this period's score and changes, then the score in each period."""
    current = per_period[-1]
    names = {group: value[0] for scores in per_period for group, value in scores.items()}
    trend = [f"period_{i}" for i in range(len(periods))]
    rows = []
    for group, name in names.items():
        drills = {column: {"metric": dimension if back == 0 else f"{dimension}@-{back}", "group": group}
                  for column, back in zip(trend, range(len(periods) - 1, -1, -1))}
        drills["label"] = drills["score"] = drills["changes"] = drills[trend[-1]]
        rows.append({"label": name, "score": current[group][1] if group in current else None,
                     "changes": current[group][2] if group in current else 0,
                     **{column: scores[group][1] if group in scores else None
                        for column, scores in zip(trend, per_period)}, "drill": drills})
    rows.sort(key=lambda row: (row["score"] is None, -(row["score"] or 0), row["label"]))
    return Table(key, title, [
        Column("label", label, "text"), Column("score", "Score", "score"), Column("changes", "Changes closed"),
        *(Column(column, period.label, "score") for column, period in zip(trend, periods))],
        rows, chart="line", chart_columns=trend,
        note="The line chart runs across the period columns, oldest first: one line per row.")
