"""The dashboards' figures for service owners and IT leaders (docs/web-ui.md, "Dashboards").

Every figure is one aggregate query (COUNT / SUM / MIN with GROUP BY in the database), so the cost
grows with the number of groups shown, not with the number of changes kept (issue #10 measures it at
100,000 changes). Time buckets are CASE expressions over half-open UTC ranges instead of dialect date
functions, so SQLite and PostgreSQL bucket identically; they are grouped in a subquery because
PostgreSQL would not recognise a CASE with bound parameters in GROUP BY as the selected expression.

Each row says which list lies behind its number (`list`, and `filters` — or `<name>_filters` when a
row feeds two charts): the web layer turns that into the drill-down link, with the same conditions the
list itself applies, so the list shows exactly the rows that were counted.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from .change_filters import OPEN, OPEN_STATES, SUCCESSFUL, InvalidFilter, day_start
from .db import utcnow
from .models import Change, FollowUpAction, Service, Task, User, change_services
from .permissions import require

PERIODS = ("week", "month")
HISTORY = 6  # periods shown by the trend charts, the current one included
HORIZON_DAYS = 14  # the high-risk look-ahead: today and the 13 days after it
SERVICE_ROWS = 20  # the service-impact chart shows the services with the most open changes


def dashboard(session: Session, user: User, *, period: str = "month", now: datetime | None = None) -> dict:
    """All figures at `now` (default: the current time)."""
    require(user, "dashboard.read")
    if period not in PERIODS:
        raise InvalidFilter(f"Unknown period '{period}'; use week or month.", field="period")
    now = now or utcnow()
    return {"generated_at": now, "period": period,
            "pending_approvals": pending_approvals(session, now),
            "high_risk_upcoming": high_risk_upcoming(session, now),
            "overdue": overdue(session, now),
            "service_impact": service_impact(session),
            "trend": trend(session, now, period)}


def _bucketed(session: Session, bucket, *columns, where):
    """(bucket index, *columns, count) rows: CASE in a subquery, grouped outside it."""
    inner = select(bucket.label("bucket"), *columns).where(*where).subquery()
    keys = [inner.c.bucket, *(inner.c[c.key] for c in columns)]
    return session.execute(select(*keys, func.count()).group_by(*keys)).all()


# -- approvals waiting, by approver ----------------------------------------------------------------

def pending_approvals(session: Session, now: datetime) -> list[dict]:
    """Approval tasks waiting for a decision, per approver: the assignee, or the role when nobody in
    particular is asked (e.g. `change_manager`); with how long the oldest has waited."""
    pool = case((Task.assignee_id.is_(None), Task.role)).label("pool")
    oldest = func.min(Task.created_at)
    rows = session.execute(
        select(User.username, pool, func.count(), oldest)
        .select_from(Task).outerjoin(User, User.id == Task.assignee_id)
        .where(Task.status == "ready", Task.approval_step.is_not(None))
        .group_by(User.username, pool)
        .order_by(func.count().desc(), oldest)).all()
    return [{"approver": username, "role": role,
             "label": username or f"{role.replace('_', ' ')} (anyone)",
             "count": count, "oldest_since": since,
             "oldest_hours": round(max((now - since).total_seconds(), 0) / 3600, 1),
             "list": "approvals", "filters": {"approver": username} if username else {"role": role}}
            for username, role, count, since in rows]


# -- high-risk changes coming up -------------------------------------------------------------------

def high_risk_upcoming(session: Session, now: datetime) -> list[dict]:
    """Open high-risk changes by the UTC day their planned window starts, today and the next 13 days."""
    days = [now.date() + timedelta(days=i) for i in range(HORIZON_DAYS)]
    edges = [day_start(d) for d in days] + [day_start(days[-1] + timedelta(days=1))]
    bucket = case(*((Change.planned_start < edges[i + 1], i) for i in range(HORIZON_DAYS)))
    # risk and state are grouped on rather than filtered: the only condition left is the window range,
    # so even a database without statistics (SQLite before ANALYZE) reads it through ix_changes_planned
    # instead of every high-risk change ever filed
    counts = {}
    for b, risk, state, n in _bucketed(session, bucket, Change.risk, Change.state, where=(
            Change.planned_start >= edges[0], Change.planned_start < edges[-1])):
        if risk == "high" and state in OPEN_STATES:
            counts[b] = counts.get(b, 0) + n
    return [{"date": day, "count": counts.get(i, 0), "list": "changes",
             "filters": {"risk": "high", "state": OPEN, "from": day.isoformat(), "to": day.isoformat()}}
            for i, day in enumerate(days)]


# -- overdue ---------------------------------------------------------------------------------------

OVERDUE_KINDS = ("approvals", "tasks", "actions")


def overdue(session: Session, now: datetime) -> list[dict]:
    """Waiting tasks past their due time (approvals apart from the rest) and open follow-up actions
    past their due date (due the day before today, UTC, or earlier)."""
    is_approval = Task.approval_step.is_not(None)
    approvals, tasks = session.execute(
        select(func.coalesce(func.sum(case((is_approval, 1), else_=0)), 0),
               func.coalesce(func.sum(case((is_approval, 0), else_=1)), 0))
        .where(Task.status == "ready", Task.due_at.is_not(None), Task.due_at < now)).one()
    actions = session.scalar(select(func.count()).select_from(FollowUpAction).where(
        FollowUpAction.status == "open", FollowUpAction.due_date.is_not(None),
        FollowUpAction.due_date < now.date()))
    labels = {"approvals": "Approvals", "tasks": "Other tasks", "actions": "Follow-up actions"}
    counts = {"approvals": int(approvals), "tasks": int(tasks), "actions": int(actions or 0)}
    return [{"kind": kind, "label": labels[kind], "count": counts[kind], "list": "overdue",
             "filters": {"kind": kind}} for kind in OVERDUE_KINDS]


# -- service impact --------------------------------------------------------------------------------

def _window_minutes(session: Session, windowed):
    """The summed minutes of the planned windows (planned_end - planned_start) of a group, in SQL: the
    dialects have no common interval arithmetic. PostgreSQL adds up the intervals and converts the sum
    once — converting every window to a numeric count of minutes first took a third of the figure's
    time at 55,000 open changes."""
    if session.get_bind().dialect.name == "postgresql":
        span = func.sum(case((windowed, Change.planned_end - Change.planned_start)))
        return func.coalesce(func.extract("epoch", span) / 60, 0)
    minutes = (func.julianday(Change.planned_end) - func.julianday(Change.planned_start)) * 1440
    return func.coalesce(func.sum(case((windowed, minutes), else_=0)), 0)


def service_impact(session: Session) -> list[dict]:
    """Open changes per service and the minutes of their planned windows (changes carry no separate
    outage field, so the whole planned window counts as possible outage; changes without a window
    count as changes but add no minutes)."""
    windowed = and_(Change.planned_start.is_not(None), Change.planned_end.is_not(None))
    minutes = _window_minutes(session, windowed)
    changes = func.count(Change.id)
    rows = session.execute(
        select(Service.key, Service.name, changes, minutes)
        .join(change_services, change_services.c.service_id == Service.id)
        .join(Change, Change.id == change_services.c.change_id)
        .where(Change.state.in_(OPEN_STATES))
        .group_by(Service.id, Service.key, Service.name)
        .order_by(changes.desc(), Service.key).limit(SERVICE_ROWS)).all()
    return [{"service": key, "name": name, "changes": n, "outage_minutes": int(round(float(m or 0))),
             "list": "changes", "filters": {"service": key, "state": OPEN}}
            for key, name, n, m in rows]


# -- emergency ratio and success rate over time ----------------------------------------------------

def periods(today: date, period: str) -> list[tuple[str, date, date]]:
    """The last HISTORY ISO weeks (Monday first) or calendar months, oldest first, the current one
    included: (label, first day, first day of the next period)."""
    found = []
    if period == "week":
        monday = today - timedelta(days=today.weekday())
        for back in range(HISTORY - 1, -1, -1):
            first = monday - timedelta(weeks=back)
            year, week, _ = first.isocalendar()
            found.append((f"{year}-W{week:02d}", first, first + timedelta(weeks=1)))
        return found
    month = today.year * 12 + today.month - 1
    for back in range(HISTORY - 1, -1, -1):
        year, index = divmod(month - back, 12)
        first = date(year, index + 1, 1)
        following = date(year + (index + 1) // 12, (index + 1) % 12 + 1, 1)
        found.append((first.strftime("%b %Y"), first, following))
    return found


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def trend(session: Session, now: datetime, period: str) -> list[dict]:
    """Per period, the changes closed in it (state closed; canceled ones are not counted): how many
    were emergencies, and how many of those with an outcome were successful (close code successful
    or successful with issues)."""
    spans = periods(now.date(), period)
    edges = [day_start(first) for _, first, _ in spans] + [day_start(spans[-1][2])]
    bucket = case(*((Change.closed_at < edges[i + 1], i) for i in range(len(spans))))
    # grouped by state, not filtered on it: canceled changes are few, and "state = 'closed'" would steer
    # SQLite without statistics into reading nearly every change through ix_changes_state_type
    rows = [(b, kind, code, n) for b, kind, code, state, n in _bucketed(
        session, bucket, Change.change_type, Change.close_code, Change.state,
        where=(Change.closed_at >= edges[0], Change.closed_at < edges[-1])) if state == "closed"]
    found = []
    for index, (label, first, following) in enumerate(spans):
        mine = [(kind, code, n) for b, kind, code, n in rows if b == index]
        closed = sum(n for _, _, n in mine)
        emergency = sum(n for kind, _, n in mine if kind == "emergency")
        with_outcome = sum(n for _, code, n in mine if code is not None)
        successful = sum(n for _, code, n in mine if code in SUCCESSFUL)
        window = {"state": "closed", "closed_from": first.isoformat(),
                  "closed_to": (following - timedelta(days=1)).isoformat()}
        found.append({"period": label, "start": first, "end": following - timedelta(days=1),
                      "closed": closed, "emergency": emergency, "emergency_ratio": _percent(emergency, closed),
                      "with_outcome": with_outcome, "successful": successful,
                      "success_rate": _percent(successful, with_outcome),
                      "list": "changes", "emergency_filters": {**window, "type": "emergency"},
                      "success_filters": {**window, "outcome": ",".join(SUCCESSFUL)}})
    return found
