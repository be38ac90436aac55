"""Service owner: what the changes of a period did to one service (scope.service), or to each service.

A change *touches* a service directly when it names the service, and *through a dependency* when it
names a service the service depends on, transitively (a change to identity can break crm-web, which
calls it) and not the service itself. The dependencies are walked by one recursive CTE
(engine/reports/service_reach.py, in the style of engine/service_map.py: bare ids, UNION, so cycles end).

Which changes each figure counts (docs/reports.md has the full definitions):
- *touching*: requested in the period, closed in it, or planned in it (window overlapping the period,
  canceled changes aside) — a change can be all three, it counts once; canceled ones requested in the
  period are among them (and counted as canceled);
- planned downtime: the minutes of those planned windows that fall inside the period, summed;
- results and incidents caused: the changes closed in the period, by close code, and the incident
  numbers their reviews recorded;
- business acceptance open at the period's end (engine/reports/acceptance.py), whatever else the
  change did in the period.
Without a service every service is reported in one table row each (a change counts under each service
it touches), and the figures count each change once: every change naming at least one service.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from sqlalchemy import and_, case, func, literal, or_, select, true
from sqlalchemy.orm import Session, selectinload

from ..models import Change, Service, Task, change_services
from . import acceptance, service_reach
from .model import Column, Figure, Report, Table
from .scope import InvalidScope, Scope
from .sql import caused_incident, closed_in, json_length, planned_in, planned_minutes_inside, requested_in

TITLE = "Service owner"
CODES = ("successful", "successful_with_issues", "unsuccessful", "backed_out")
RELATIONS = {"touching": "any", "direct": "direct", "dependent": "dependent"}
LIST_LIMIT = 200


def parse_group(group: str | None, allowed: tuple[str, ...]) -> dict[str, str]:
    """'service:payroll,code:successful' → {"service": "payroll", "code": "successful"}."""
    options = {}
    for part in (group or "").split(","):
        if not part:
            continue
        name, sep, value = part.partition(":")
        if not sep or name not in allowed or not value or name in options:
            raise KeyError(group)
        options[name] = value
    return options


def metric(name: str, scope: Scope, group: str | None = None):
    """The SQL condition on changes behind a number of this report (for counts and drill-downs).
    `group` narrows it: `service:<key>` (a row of the per-service table), `code:<close code>`."""
    options = parse_group(group, ("service", "code"))
    service = options.get("service") or scope.service
    if "code" in options and name != "closed":
        raise KeyError(group)
    bare = _bare(scope)
    base = and_(_related(service, RELATIONS.get(name, "any")), _category(scope))
    if name in RELATIONS:
        return and_(base, _active(scope))
    if name == "canceled":
        return and_(base, _active(scope), Change.state == "canceled")
    if name == "planned":
        return and_(base, planned_in(bare))
    if name == "closed":
        condition = and_(base, closed_in(bare))
        return and_(condition, Change.close_code == options["code"]) if "code" in options else condition
    if name == "incidents":
        return and_(base, closed_in(bare), caused_incident())
    if name == "acceptance_open":
        return and_(base, acceptance.changes_open_at(scope.end))
    raise KeyError(name)


def build(session: Session, scope: Scope, now: datetime | None = None) -> Report:
    if scope.service and session.scalar(select(Service.id).where(Service.key == scope.service)) is None:
        raise InvalidScope(f"There is no service '{scope.service}'.", field="service")
    title = f"{TITLE}: {scope.service}" if scope.service else f"{TITLE}: every service"
    report = Report("service-owner", title, scope, now or datetime.now(timezone.utc))
    if scope.service:
        totals = _one_service(session, scope)
    else:
        totals = _all_services(session, scope)
    report.figures += _figures(totals, single=bool(scope.service))
    if not scope.service:
        report.tables.append(_service_table(session, scope))
    report.tables.append(Table("results", "Changes closed, by outcome", [
        Column("label", "Outcome", "text"), Column("count", "Changes")], [
        {"label": code, "count": totals[code], "drill": {"count": {"metric": "closed", "group": f"code:{code}"}}}
        for code in CODES], chart="doughnut", chart_columns=["count"]))
    report.tables.append(_incidents_table(session, scope))
    report.tables.append(acceptance.items_table(
        session, and_(_related(scope.service, "any"), _category(scope)), scope.end, label=scope.label))
    if not scope.service:
        report.notes.append("Each service's row counts the changes touching it directly or through a service it "
                            "depends on; a change touching several services counts in each of their rows, once in "
                            "the figures.")
    return report


# -- which changes, for which service ----------------------------------------------------------

def _bare(scope: Scope) -> Scope:
    """The period alone: the service relation here is wider than sql.in_scope's direct one."""
    return replace(scope, service=None, category=None)


def _category(scope: Scope):
    return Change.category == scope.category if scope.category else true()


def _active(scope: Scope):
    bare = _bare(scope)
    return or_(requested_in(bare), closed_in(bare), planned_in(bare))


def _related(service_key: str | None, relation: str):
    if service_key is None:  # every service: each change naming one touches it directly
        if relation == "dependent":
            raise KeyError("dependent")
        return Change.id.in_(select(change_services.c.change_id))
    touches = service_reach.touches(service_key)
    query = select(touches.c.change_id)
    if relation != "any":
        query = query.where(touches.c.direct == (1 if relation == "direct" else 0))
    return Change.id.in_(query)


# -- the numbers: one aggregate query ------------------------------------------------------------

def _relevant(session: Session, scope: Scope):
    """One row per change the report can count — touching in the period, or waiting for business
    acceptance at its end — with its contribution to each number. Computed once, before the
    (service, change) pairs are formed: a quarter has a small share of all the changes."""
    bare, active = _bare(scope), _active(scope)

    def flag(condition):
        return case((condition, 1), else_=0)

    open_then = select(Task.change_id).where(acceptance.open_at(scope.end)).cte("open_then")  # read once
    waiting = Change.id.in_(select(open_then.c.change_id))
    columns = {
        "touching": flag(active), "canceled": flag(and_(active, Change.state == "canceled")),
        "planned": flag(planned_in(bare)),
        "downtime": case((planned_in(bare), planned_minutes_inside(session, bare)), else_=0),
        "closed": flag(closed_in(bare)),
        **{code: flag(and_(closed_in(bare), Change.close_code == code)) for code in CODES},
        "incident_changes": flag(and_(closed_in(bare), caused_incident())),
        "incidents": case((closed_in(bare), json_length(Change.incidents_caused)), else_=0),
        "acceptance_open": flag(waiting),
    }
    return (select(Change.id.label("change_id"), *(value.label(key) for key, value in columns.items()))
            .where(_category(scope), or_(active, waiting)).cte("relevant"))


def _sums(relevant, direct) -> list:
    """The numbers over rows of `relevant` (one per service and change when `direct` is a column)."""
    def total(value):
        return func.coalesce(func.sum(value), 0)

    sums = {key: total(relevant.c[key]) for key in relevant.c.keys() if key != "change_id"}
    sums["direct"] = total(relevant.c.touching * direct)
    sums["dependent"] = total(relevant.c.touching * (1 - direct))
    return [value.label(key) for key, value in sums.items()]


def _measures_zero() -> dict:
    return {key: 0 for key in ("touching", "direct", "dependent", "canceled", "planned", "downtime", "closed",
                               *CODES, "incident_changes", "incidents", "acceptance_open")}


def _row(mapping) -> dict:
    row = {key: int(value or 0) for key, value in mapping.items() if key not in ("downtime", "service_id")}
    row["downtime"] = round(float(mapping["downtime"] or 0), 1)
    return row


def _one_service(session: Session, scope: Scope) -> dict:
    relevant = _relevant(session, scope)
    touches = service_reach.touches(scope.service, relevant.c.change_id)
    row = session.execute(select(*_sums(relevant, touches.c.direct))
                          .select_from(touches).join(relevant, relevant.c.change_id == touches.c.change_id)).one()
    return _row(row._mapping)


def _all_services(session: Session, scope: Scope) -> dict:
    relevant = _relevant(session, scope)
    named = select(change_services.c.change_id).where(change_services.c.change_id == relevant.c.change_id)
    row = session.execute(select(*_sums(relevant, literal(1))).where(named.exists())).one()
    return _row(row._mapping)


def _figures(totals: dict, *, single: bool) -> list[Figure]:
    figures = [Figure("touching", "Changes touching the service" if single else "Changes touching a service",
                      totals["touching"], drill={"metric": "touching"},
                      note="requested, closed or planned in the period")]
    if single:
        figures += [Figure("direct", "Directly", totals["direct"], drill={"metric": "direct"}),
                    Figure("dependent", "Through a service it depends on", totals["dependent"],
                           drill={"metric": "dependent"})]
    figures += [
        Figure("canceled", "Canceled", totals["canceled"], drill={"metric": "canceled"}),
        Figure("planned", "Planned in the period", totals["planned"], drill={"metric": "planned"}),
        Figure("downtime", "Planned downtime", totals["downtime"], "minutes", drill={"metric": "planned"},
               note="the minutes of the planned windows inside the period"),
        Figure("closed", "Closed", totals["closed"], drill={"metric": "closed"}),
        Figure("incidents", "Incidents caused", totals["incidents"], drill={"metric": "incidents"},
               note=f"recorded on {totals['incident_changes']} of the changes closed"),
        Figure("acceptance_open", "Business acceptance open", totals["acceptance_open"],
               drill={"metric": "acceptance_open"}, note="changes waiting for it at the end of the period"),
    ]
    return figures


def _service_table(session: Session, scope: Scope) -> Table:
    relevant = _relevant(session, scope)
    measures = [key for key in relevant.c.keys() if key != "change_id"]
    found = {}
    for row in session.execute(service_reach.per_service(relevant, measures)):  # one row per service
        found[row.service_id] = values = _row(row._mapping)
        values["dependent"] = values["touching"] - values["direct"]
    counted = ("touching", "direct", "dependent", "closed", *CODES, "incidents", "acceptance_open")
    metrics = {"touching": "touching", "direct": "direct", "dependent": "dependent", "downtime": "planned",
               "closed": "closed", "incidents": "incidents", "acceptance_open": "acceptance_open",
               **{code: "closed" for code in CODES}}
    rows = []
    for service_id, key, name in session.execute(select(Service.id, Service.key, Service.name).order_by(Service.key)):
        values = found.get(service_id) or _measures_zero()
        drill = {column: {"metric": metric_name, "group": f"service:{key}" + (f",code:{column}" if column in CODES else "")}
                 for column, metric_name in metrics.items()}
        rows.append({"label": key, "name": name, **{c: values[c] for c in counted},
                     "downtime": values["downtime"], "drill": drill})
    labels = {"touching": "Touching", "direct": "Directly", "dependent": "Through dependencies",
              "closed": "Closed", "successful": "Successful", "successful_with_issues": "With issues",
              "unsuccessful": "Unsuccessful", "backed_out": "Backed out", "incidents": "Incidents caused",
              "acceptance_open": "Acceptance open"}
    columns = [Column("label", "Service", "text"), Column("name", "Name", "text")]
    columns += [Column(c, labels[c]) for c in ("touching", "direct", "dependent")]
    columns.append(Column("downtime", "Planned downtime", "minutes"))
    columns += [Column(c, labels[c]) for c in ("closed", *CODES, "incidents", "acceptance_open")]
    return Table("services", "Per service", columns, rows, chart="bar", chart_columns=["direct", "dependent"])


def _incidents_table(session: Session, scope: Scope) -> Table:
    changes = session.scalars(select(Change).where(metric("incidents", scope)).options(selectinload(Change.services))
                              .order_by(Change.closed_at, Change.id).limit(LIST_LIMIT)).all()
    rows = []
    for change in changes:  # at most LIST_LIMIT changes, each with the few numbers its review recorded
        keys = [s.key for s in change.services]
        via = "" if not scope.service else "direct" if scope.service in keys else "dependency"
        for incident in change.incidents_caused:
            rows.append({"incident": incident, "change": change.number, "title": change.title,
                         "close_code": change.close_code, "closed_at": change.closed_at.isoformat(),
                         "services": ", ".join(keys), "via": via})
    columns = [Column("incident", "Incident", "text"), Column("change", "Change", "text"),
               Column("title", "Title", "text"), Column("close_code", "Outcome", "text"),
               Column("closed_at", "Closed", "text"), Column("services", "Services changed", "text")]
    if scope.service:
        columns.append(Column("via", "Touches the service", "text"))
    return Table("incidents", "Incidents caused by the changes closed", columns, rows,
                 note=f"The changes closed first, at most {LIST_LIMIT}." if len(changes) == LIST_LIMIT else "")
