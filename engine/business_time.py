"""Business-day arithmetic for SLAs ("escalate after 2 business days").

Business days are Monday to Friday in UTC; public holidays are not known to Changeflow. A start on
a weekend counts from the next Monday at the same time of day.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone


def add_business_days(start: datetime, days: int) -> datetime:
    if days < 0:
        raise ValueError("business days must not be negative")
    moment = start
    while moment.weekday() >= 5:  # a weekend start counts from Monday
        moment += timedelta(days=1)
    remaining = days
    while remaining:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            remaining -= 1
    return moment


def business_days(days: int, start: str | None = None) -> str:
    """ISO 8601 moment `days` business days after `start` (ISO string) or now: for BPMN timeDate timers."""
    base = datetime.fromisoformat(start) if start else datetime.now(timezone.utc)
    if base.tzinfo is None:
        base = base.replace(tzinfo=timezone.utc)
    return add_business_days(base, int(days)).isoformat()


def now_iso() -> str:
    """The current moment in UTC as ISO 8601 (e.g. a timeDate that fires at once when no date is known)."""
    return datetime.now(timezone.utc).isoformat()
