"""SQL pieces the reports share, for both SQLite and PostgreSQL: which changes a scope selects, time
between two columns, planned minutes inside a period, and percentiles.

Everything is aggregated by the database. Percentiles are *nearest rank* (PostgreSQL's
`percentile_disc`; on SQLite one ORDER BY … LIMIT 1 OFFSET k per percentile), so both backends give
the same value, always one that occurred.
"""
from __future__ import annotations

import math

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from ..db import UTCDateTime
from ..models import Change, Service, change_services
from .scope import Scope

FAILED_CODES = ("unsuccessful", "backed_out")
SUCCESS_CODES = ("successful", "successful_with_issues")
MATERIAL_TYPES = ("normal", "emergency")


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def instant(value):
    return literal(value, UTCDateTime())


def hours_between(session: Session, start, end):
    """`end - start` in hours, as an SQL expression."""
    if is_postgres(session):
        return func.extract("epoch", end - start) / 3600.0
    return (func.julianday(end) - func.julianday(start)) * 24.0


def json_length(column):
    return func.coalesce(func.json_array_length(column), 0)


def caused_incident():
    return json_length(Change.incidents_caused) > 0


def failed():
    """The change failure rate's numerator: unsuccessful, backed out, or caused an incident."""
    return or_(Change.close_code.in_(FAILED_CODES), caused_incident())


def in_scope(scope: Scope):
    """The scope's filters (service — the change touches it directly — and category), period aside."""
    conditions = []
    if scope.service:
        conditions.append(Change.id.in_(
            select(change_services.c.change_id).join(Service, Service.id == change_services.c.service_id)
            .where(Service.key == scope.service)))
    if scope.category:
        conditions.append(Change.category == scope.category)
    return and_(True, *conditions)


def requested_in(scope: Scope):
    return and_(Change.created_at >= instant(scope.start), Change.created_at < instant(scope.end), in_scope(scope))


def closed_in(scope: Scope):
    return and_(Change.state == "closed", Change.closed_at >= instant(scope.start),
                Change.closed_at < instant(scope.end), in_scope(scope))


def planned_in(scope: Scope):
    """Changes whose planned window overlaps the period (a window across the boundary counts in both)."""
    return and_(Change.planned_start < instant(scope.end), Change.planned_end > instant(scope.start),
                Change.state != "canceled", in_scope(scope))


def planned_minutes_inside(session: Session, scope: Scope):
    """Minutes of the planned window that fall inside the period: a window across the period's
    boundary contributes only its part inside."""
    start = case((Change.planned_start > instant(scope.start), Change.planned_start), else_=instant(scope.start))
    end = case((Change.planned_end < instant(scope.end), Change.planned_end), else_=instant(scope.end))
    return hours_between(session, start, end) * 60.0


def percentiles(session: Session, values, ps=(0.5, 0.9)) -> dict[float, float | None]:
    """Nearest-rank percentiles of a one-column subquery `values` (NULLs ignored)."""
    column = values.c[0] if hasattr(values, "c") else values
    if is_postgres(session):
        row = session.execute(select(*(func.percentile_disc(p).within_group(column) for p in ps))
                              .where(column.isnot(None))).one()
        return {p: (float(v) if v is not None else None) for p, v in zip(ps, row)}
    count = session.scalar(select(func.count()).where(column.isnot(None)))
    result = {}
    for p in ps:
        if not count:
            result[p] = None
            continue
        rank = max(math.ceil(p * count), 1)
        value = session.scalar(select(column).where(column.isnot(None)).order_by(column).offset(rank - 1).limit(1))
        result[p] = float(value) if value is not None else None
    return result


def percent(part, whole) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def spreads(session: Session, values, columns) -> dict[str, tuple[int, float | None, float | None]]:
    """{column: (how many values, median, 90th percentile)} for columns of the subquery `values`;
    NULLs are not values. One statement on PostgreSQL."""
    if is_postgres(session):
        parts = []
        for name in columns:
            column = values.c[name]
            parts += [func.count(column), func.percentile_disc(0.5).within_group(column),
                      func.percentile_disc(0.9).within_group(column)]
        row = session.execute(select(*parts)).one()
        return {name: (row[3 * i], _float(row[3 * i + 1]), _float(row[3 * i + 2])) for i, name in enumerate(columns)}
    result = {}
    for name in columns:
        column = values.c[name]
        found = percentiles(session, select(column).where(column.isnot(None)).subquery())
        count = session.scalar(select(func.count(column)))
        result[name] = (count, found[0.5], found[0.9])
    return result


def grouped_spreads(session: Session, values, group: str, value: str) -> dict:
    """{group value: (how many, median, 90th percentile)} of `value` per `group` in the subquery."""
    key, column = values.c[group], values.c[value]
    if is_postgres(session):
        rows = session.execute(select(key, func.count(column), func.percentile_disc(0.5).within_group(column),
                                      func.percentile_disc(0.9).within_group(column)).group_by(key)).all()
        return {k: (n, _float(p50), _float(p90)) for k, n, p50, p90 in rows}
    result = {}
    for k in session.scalars(select(key).distinct()).all():
        subset = select(column).where(key == k, column.isnot(None)).subquery()
        found = percentiles(session, subset)
        result[k] = (session.scalar(select(func.count()).select_from(subset)), found[0.5], found[0.9])
    return result


def _float(value):
    return float(value) if value is not None else None
