"""RFC 5545 recurrence over wall-clock time, with bounded cost.

Rules are expanded from a naive wall-clock start in an IANA time zone and each occurrence is then
converted to UTC, so a weekly 01:00 stays 01:00 local across daylight-saving changes. A local time
that does not exist (the spring-forward gap) or exists twice (fall-back) is read with the offset
before the change (`fold=0`), as RFC 5545 prescribes. Used by `engine.windows`.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import DAILY, rrule, rrulestr

from .errors import ValidationFailed

EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)  # windows and queries live in [EARLIEST, LATEST):
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)    # expansion cost grows with distance from the start
FIRST_WITHIN_YEARS = 10    # a rule must produce an occurrence this soon after starts_at
FINITE_WITHIN_YEARS = 100  # a rule with COUNT/UNTIL must end this soon (else leave them out)
_GREGORIAN_CYCLE = 400     # the calendar (weekdays, leap years) repeats exactly every 400 years
_UNTIL = re.compile(r"UNTIL=([0-9TZ]+)")
Interval = tuple[datetime, datetime]


def invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"Invalid {field}: {message}", errors=[{"field": field, "message": message}])


def utc(value: datetime | str, field: str) -> datetime:
    """An aware datetime (or ISO 8601 text with an offset) in UTC; naive times are refused."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise invalid(field, "not an ISO 8601 date-time") from None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise invalid(field, "give a date-time with an offset (e.g. 2027-03-07T01:00:00+01:00 or …Z)")
    value = value.astimezone(timezone.utc)
    if not EARLIEST <= value < LATEST:
        raise invalid(field, f"must lie between {EARLIEST.year} and {LATEST.year - 1}")
    return value


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid("timezone", f"'{name}' is not an IANA time zone (e.g. Europe/Berlin, UTC)") from None


def to_wall(moment: datetime, tz: ZoneInfo) -> datetime:
    """UTC → naive wall-clock time in `tz`."""
    return moment.astimezone(tz).replace(tzinfo=None)


def to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    """Naive wall-clock time in `tz` → UTC (fold=0: the offset before a DST change)."""
    return local.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)


# -- recurrence rules --------------------------------------------------------------------------------

def normalize_rule(text: str | None) -> str | None:
    """'RRULE:freq=weekly;byday=su' → 'FREQ=WEEKLY;BYDAY=SU'; empty → None."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if "\n" in text or "\r" in text:
        raise invalid("rrule", "give one RRULE line; the first occurrence comes from starts_at, not DTSTART")
    return re.sub(r"^RRULE:", "", text.upper()).strip()


@lru_cache(maxsize=512)
def parse_rule(text: str, tz_name: str, wall_start: datetime) -> rrule:
    """The parsed rule over naive wall-clock times; UNTIL in UTC (…Z) is converted to wall-clock too."""
    tz = ZoneInfo(tz_name)

    def until(match: re.Match) -> str:
        value = match.group(1)
        try:
            if re.fullmatch(r"\d{8}", value):  # a date: through the end of that day
                moment = datetime.strptime(value, "%Y%m%d") + timedelta(days=1, seconds=-1)
            elif re.fullmatch(r"\d{8}T\d{6}Z", value):
                moment = to_wall(datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc), tz)
            else:
                moment = datetime.strptime(value, "%Y%m%dT%H%M%S")
        except ValueError:
            raise invalid("rrule", "UNTIL must be YYYYMMDD, YYYYMMDDTHHMMSS or YYYYMMDDTHHMMSSZ") from None
        return f"UNTIL={moment:%Y%m%dT%H%M%S}"

    if re.search(r"(^|;)COUNT=", text) and re.search(r"(^|;)UNTIL=", text):
        raise invalid("rrule", "give COUNT or UNTIL, not both")
    try:
        rule = rrulestr(_UNTIL.sub(until, text), dtstart=wall_start, cache=False)
    except ValidationFailed:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise invalid("rrule", f"not a valid RFC 5545 RRULE ({exc})") from None
    if not isinstance(rule, rrule):
        raise invalid("rrule", "give one RRULE")
    if rule._freq > DAILY:
        raise invalid("rrule", "FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY")
    if rule._byeaster:
        raise invalid("rrule", "BYEASTER is not part of RFC 5545")
    return rule


def _scan(rule: rrule, years: int, first_only: bool = False) -> tuple[list[datetime], bool]:
    """Occurrences in the first `years` years of `rule`, and whether the rule goes on beyond them.

    dateutil looks for a next occurrence up to the year 9999, which takes seconds for a rule that
    never matches (February 30th). The calendar repeats every 400 years, so the same rule started
    a multiple of 400 years later produces the same occurrences shifted by that much: start it
    close enough to 9999 that the search ends soon, and shift the answers back.
    """
    start = rule._dtstart
    shift = max(0, (9999 - years - 1 - start.year) // _GREGORIAN_CYCLE) * _GREGORIAN_CYCLE
    until = rule._until
    if until is not None:
        until = until.replace(year=until.year + shift) if until.year + shift <= 9999 else None
    probe = rule.replace(dtstart=start.replace(year=start.year + shift), until=until)
    horizon = probe._dtstart + timedelta(days=365 * years + years // 4)
    found = []
    for occurrence in probe:
        if occurrence >= horizon:
            return found, True
        found.append(occurrence.replace(year=occurrence.year - shift))
        if first_only:
            return found, True
    return found, False


def check_rule(text: str, tz_name: str, wall_start: datetime, duration: timedelta) -> datetime | None:
    """Validate the rule; return `until` (UTC end of the last occurrence) or None when it recurs forever."""
    rule = parse_rule(text, tz_name, wall_start)
    first, _more = _scan(rule.replace(count=None, until=None), FIRST_WITHIN_YEARS, first_only=True)
    if rule._count is None and rule._until is None:
        found = first
    else:
        found, more = _scan(rule, FINITE_WITHIN_YEARS)
        if more:
            raise invalid("rrule", f"runs for more than {FINITE_WITHIN_YEARS} years; leave out COUNT/UNTIL "
                                    "for a window that recurs indefinitely")
    if not first or not found or found[0] != first[0]:
        raise invalid("rrule", f"produces no occurrence within {FIRST_WITHIN_YEARS} years of starts_at")
    if rule._count is None and rule._until is None:
        return None
    return to_utc(found[-1] + duration, ZoneInfo(tz_name))


def expand(text: str, tz_name: str, starts_at: datetime, ends_at: datetime,
           range_start: datetime, range_end: datetime) -> list[Interval]:
    """Occurrences (UTC) of a rule whose first occurrence is [starts_at, ends_at) that overlap the range.

    Each occurrence lasts as long as the first in wall-clock terms (01:00–05:00 local is 3 or 5 hours
    on the nights the clocks change). Cost: one step per occurrence from starts_at to range_end.
    """
    tz = ZoneInfo(tz_name)
    wall_start = to_wall(starts_at, tz)
    duration = to_wall(ends_at, tz) - wall_start
    slack = timedelta(days=1)  # UTC offsets differ from wall-clock by less than a day
    after, before = to_wall(range_start, tz) - duration - slack, to_wall(range_end, tz) + slack
    found = []
    for local in parse_rule(text, tz_name, wall_start).between(after, before, inc=True):
        start, end = to_utc(local, tz), to_utc(local + duration, tz)
        if end <= start:  # within a DST gap
            end = start + duration
        if start < range_end and end > range_start:
            found.append((start, end))
    return found
