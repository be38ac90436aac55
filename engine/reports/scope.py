"""What a report covers: a period of whole UTC days, optionally one service and one category.

A period is a month (`period=2026-11`), a quarter (`period=2026-Q4`) or any range of days
(`from=2026-10-01&to=2026-12-31`, both inclusive). Internally it is the half-open range of instants
[start, end), so a change at 23:59:59 on the last day is in and one at 00:00 on the next is not.
Trends compare a period with the periods of the same kind before it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone

from ..errors import ChangeflowError

QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
MAX_DAYS = 3 * 366  # a longer range is almost certainly a typo, and slow


class InvalidScope(ChangeflowError):
    status = 400
    code = "invalid_report_scope"


@dataclass(frozen=True)
class Scope:
    first_day: date
    last_day: date  # inclusive
    kind: str  # month | quarter | custom
    service: str | None = None
    category: str | None = None

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time.min, tzinfo=timezone.utc)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last_day + timedelta(days=1), time.min, tzinfo=timezone.utc)

    @property
    def label(self) -> str:
        if self.kind == "quarter":
            return f"{self.first_day.year}-Q{(self.first_day.month - 1) // 3 + 1}"
        if self.kind == "month":
            return self.first_day.strftime("%B %Y")
        return f"{self.first_day.isoformat()} – {self.last_day.isoformat()}"

    @property
    def period(self) -> str:
        """The `period=` value that names it again (or from/to for a custom range)."""
        if self.kind == "quarter":
            return self.label
        if self.kind == "month":
            return self.first_day.strftime("%Y-%m")
        return ""

    def query(self) -> dict:
        """Query-string parameters that select this scope again (links, drill-downs, exports)."""
        params = {"period": self.period} if self.period else {
            "from": self.first_day.isoformat(), "to": self.last_day.isoformat()}
        if self.service:
            params["service"] = self.service
        if self.category:
            params["category"] = self.category
        return params

    def previous(self) -> "Scope":
        if self.kind == "quarter":
            return quarter_scope(*_shift_quarter(self.first_day, -1), self.service, self.category)
        if self.kind == "month":
            last = self.first_day - timedelta(days=1)
            return month_scope(last.year, last.month, self.service, self.category)
        length = self.last_day - self.first_day
        last = self.first_day - timedelta(days=1)
        return replace(self, first_day=last - length, last_day=last)

    def next(self) -> "Scope":
        if self.kind == "quarter":
            return quarter_scope(*_shift_quarter(self.first_day, 1), self.service, self.category)
        if self.kind == "month":
            first = self.last_day + timedelta(days=1)
            return month_scope(first.year, first.month, self.service, self.category)
        length = self.last_day - self.first_day
        first = self.last_day + timedelta(days=1)
        return replace(self, first_day=first, last_day=first + length)

    def trend(self, count: int) -> list["Scope"]:
        """This period and the `count - 1` before it, oldest first."""
        scopes = [self]
        while len(scopes) < count:
            scopes.append(scopes[-1].previous())
        return scopes[::-1]


def _shift_quarter(first_day: date, step: int) -> tuple[int, int]:
    index = first_day.year * 4 + (first_day.month - 1) // 3 + step
    return index // 4, index % 4 + 1


def month_scope(year: int, month: int, service=None, category=None) -> Scope:
    first = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    return Scope(first, following - timedelta(days=1), "month", service, category)


def quarter_scope(year: int, quarter: int, service=None, category=None) -> Scope:
    first = date(year, 3 * quarter - 2, 1)
    following = date(year + (quarter == 4), (3 * quarter) % 12 + 1, 1)
    return Scope(first, following - timedelta(days=1), "quarter", service, category)


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidScope(f"{name} must be a date like 2026-10-01, not '{value}'.", field=name) from None


def parse_scope(args, *, today: date | None = None) -> Scope:
    """A Scope from query-string-like `args` (period, from, to, service, category); the current
    quarter when no period is given. Bad values are a 400 naming the parameter."""
    service = (args.get("service") or "").strip() or None
    category = (args.get("category") or "").strip() or None
    period = (args.get("period") or "").strip()
    first, last = (args.get("from") or "").strip(), (args.get("to") or "").strip()
    if period and (first or last):
        raise InvalidScope("Give either period or from/to, not both.", field="period")
    if period:
        if match := QUARTER.match(period):
            return quarter_scope(int(match[1]), int(match[2]), service, category)
        if match := MONTH.match(period):
            return month_scope(int(match[1]), int(match[2]), service, category)
        raise InvalidScope(f"period must be a month like 2026-11 or a quarter like 2026-Q4, not '{period}'.",
                           field="period")
    if first or last:
        if not (first and last):
            raise InvalidScope("Give both from and to (inclusive dates).", field="to" if first else "from")
        first_day, last_day = _day(first, "from"), _day(last, "to")
        if last_day < first_day:
            raise InvalidScope(f"to ({last_day}) is before from ({first_day}).", field="to")
        if (last_day - first_day).days > MAX_DAYS:
            raise InvalidScope(f"A report covers at most {MAX_DAYS} days.", field="to")
        return _named(Scope(first_day, last_day, "custom", service, category))
    today = today or datetime.now(timezone.utc).date()
    return quarter_scope(today.year, (today.month - 1) // 3 + 1, service, category)


def _named(scope: Scope) -> Scope:
    """from/to that cover exactly a month or a quarter are that month or quarter (same label, trend)."""
    for candidate in (month_scope(scope.first_day.year, scope.first_day.month),
                      quarter_scope(scope.first_day.year, (scope.first_day.month - 1) // 3 + 1)):
        if (candidate.first_day, candidate.last_day) == (scope.first_day, scope.last_day):
            return replace(candidate, service=scope.service, category=scope.category)
    return scope
