"""The change list's filters as query strings carry them (the list page, the dashboards' drill-downs).

Each value is checked here, so a mistyped link is a 400 that names the filter instead of a list that is
silently empty. Dates are whole UTC days and both ends are inclusive: `from=2026-12-01&to=2026-12-01`
is that one day.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from .changes import CHANGE_TYPES
from .errors import ChangeflowError
from .operators import CHANGE_STATES, FINAL_STATES

RISKS = ("low", "moderate", "high")
OUTCOMES = ("successful", "successful_with_issues", "unsuccessful", "backed_out")  # the review's close codes
SUCCESSFUL = ("successful", "successful_with_issues")
OPEN = "open"  # a state group: anything not closed or canceled yet
OPEN_STATES = tuple(s for s in CHANGE_STATES if s not in FINAL_STATES)


class InvalidFilter(ChangeflowError):
    status = 400
    code = "invalid_filter"


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def _one_of(args, name: str, allowed) -> str | None:
    value = (args.get(name) or "").strip() or None
    if value is not None and value not in allowed:
        raise InvalidFilter(f"Unknown {name} '{value}'; use one of {', '.join(allowed)}.", field=name)
    return value


def _day(args, name: str) -> date | None:
    value = (args.get(name) or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidFilter(f"{name} must be a date like 2026-12-01, not '{value}'.", field=name) from None


def _days(args, first: str, last: str) -> tuple[datetime | None, datetime | None]:
    """Inclusive dates as a half-open range of instants [first 00:00, day after last 00:00)."""
    start, end = _day(args, first), _day(args, last)
    if start and end and end < start:
        raise InvalidFilter(f"{last} ({end}) is before {first} ({start}).", field=last)
    return (day_start(start) if start else None, day_start(end + timedelta(days=1)) if end else None)


def _outcomes(args) -> tuple[str, ...] | None:
    value = (args.get("outcome") or "").strip()
    if not value:
        return None
    codes = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [c for c in codes if c not in OUTCOMES]
    if unknown or not codes:
        raise InvalidFilter(f"Unknown outcome '{', '.join(unknown) or value}'; use one or more of "
                            f"{', '.join(OUTCOMES)} (comma-separated).", field="outcome")
    return codes


def parse_change_filters(args) -> dict:
    """`list_changes` keyword arguments from a query string: state (or `open`), type, risk, service,
    from/to (planned start), closed_from/closed_to (closure), outcome (close codes, comma-separated)."""
    state = _one_of(args, "state", (OPEN, *CHANGE_STATES))
    planned_from, planned_until = _days(args, "from", "to")
    closed_from, closed_until = _days(args, "closed_from", "closed_to")
    return {"state": OPEN_STATES if state == OPEN else state,
            "change_type": _one_of(args, "type", CHANGE_TYPES), "risk": _one_of(args, "risk", RISKS),
            "service": (args.get("service") or "").strip() or None,
            "planned_from": planned_from, "planned_until": planned_until,
            "closed_from": closed_from, "closed_until": closed_until, "outcome": _outcomes(args)}
