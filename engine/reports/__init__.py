"""Management and audit reports: one module per kind, each `build(session, scope) -> Report` and
`metric(name, scope, group) -> SQL condition` for the changes behind each number.

Reports read what the processes recorded (changes, audit events, approvals, tasks, evidence) and
aggregate in SQL. Renderers — the HTML page, CSV, PDF, JSON — only see `model.Report`.
"""
from __future__ import annotations

from datetime import datetime
from types import ModuleType

from sqlalchemy import select, text
from sqlalchemy.orm import Session, selectinload

from ..errors import NotFound, ValidationFailed
from ..models import Change, User
from ..permissions import require
from . import audit, leadership, service_owner, steering, success_score
from .model import Report
from .scope import Scope

# kind → (module, permission action); every kind is one page, one API route, one CLI choice
KINDS: dict[str, tuple[ModuleType, str]] = {
    "leadership": (leadership, "report.leadership"),
    "service-owner": (service_owner, "report.service_owner"),
    "steering": (steering, "report.steering"),
    "audit": (audit, "report.audit"),
    "success-score": (success_score, "report.success_score"),
}


def kind_module(kind: str) -> ModuleType:
    try:
        return KINDS[kind][0]
    except KeyError:
        raise NotFound(f"There is no report '{kind}'; the reports are {', '.join(KINDS)}.") from None


def build_report(session: Session, user: User | None, kind: str, scope: Scope, *, now: datetime | None = None,
                 check_permission: bool = True) -> Report:
    module = kind_module(kind)
    if check_permission:
        require(user, KINDS[kind][1])
    if session.get_bind().dialect.name == "postgresql":
        # PostgreSQL's JIT misjudges these aggregate queries and spends more compiling than running
        # them (docs/performance.md); SET LOCAL ends with the transaction
        session.execute(text("SET LOCAL jit = off"))
    return module.build(session, scope, now=now)


def changes_behind(session: Session, user: User | None, kind: str, scope: Scope, metric: str,
                   group: str | None = None, *, limit: int = 500) -> tuple[list[Change], int]:
    """The changes a report's number counts: the same SQL condition as the count (at most `limit`)."""
    from sqlalchemy import func

    module = kind_module(kind)
    require(user, KINDS[kind][1])
    try:
        condition = module.metric(metric, scope, group)
    except KeyError:
        raise ValidationFailed(f"The {kind} report has no number '{metric}'{f' for {group!r}' if group else ''}.",
                               errors=[{"field": "metric", "message": f"unknown metric {metric!r}"}]) from None
    total = session.scalar(select(func.count(Change.id)).where(condition)) or 0
    rows = session.scalars(select(Change).where(condition).options(selectinload(Change.services))
                           .order_by(Change.id).limit(limit)).all()
    return rows, total
