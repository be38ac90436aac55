"""Maintenance windows, blackouts and the calendar."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from engine import windows as window_service

from .common import _NOT_BLANK, ServiceRef, Strict, UsernameField, _QueryTime


def _local(window, moment):
    return moment.astimezone(window_service.zone(window.timezone)).isoformat() if moment is not None else None


class WindowFields(Strict):
    kind = fields.String(validate=validate.OneOf(window_service.KINDS))
    name = fields.String(validate=[validate.Length(min=1, max=200), _NOT_BLANK])
    description = fields.String(validate=validate.Length(max=5000))
    starts_at = fields.AwareDateTime(format="iso", metadata={
        "description": "ISO 8601 with offset: the first (or only) occurrence's start"})
    ends_at = fields.AwareDateTime(format="iso", metadata={"description": "the first (or only) occurrence's end"})
    rrule = fields.String(allow_none=True, validate=validate.Length(max=1000), metadata={
        "description": "RFC 5545 RRULE (e.g. FREQ=WEEKLY;BYDAY=SU), expanded in `timezone` wall-clock time; "
                       "null: one-off"})
    timezone = fields.String(validate=validate.Length(min=1, max=64),
                             metadata={"description": "IANA time zone for the recurrence (default UTC)"})
    services = fields.List(fields.String(validate=validate.Length(min=1, max=64)), validate=validate.Length(max=100),
                           metadata={"description": "service keys; empty: a global window"})

    @validates_schema
    def ends_after_start(self, data, **kwargs):
        if data.get("starts_at") and data.get("ends_at") and data["ends_at"] <= data["starts_at"]:
            raise ValidationError("must be after starts_at", field_name="ends_at")


class WindowCreate(WindowFields):
    kind = fields.String(required=True, validate=validate.OneOf(window_service.KINDS))
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), _NOT_BLANK])
    description = fields.String(load_default="", validate=validate.Length(max=5000))
    starts_at = fields.AwareDateTime(required=True, format="iso", metadata={
        "description": "ISO 8601 with offset: the first (or only) occurrence's start"})
    ends_at = fields.AwareDateTime(required=True, format="iso",
                                   metadata={"description": "the first (or only) occurrence's end"})
    timezone = fields.String(load_default="UTC", validate=validate.Length(min=1, max=64),
                             metadata={"description": "IANA time zone for the recurrence"})
    services = fields.List(fields.String(validate=validate.Length(min=1, max=64)), load_default=list,
                           validate=validate.Length(max=100), metadata={"description": "empty: global"})


class WindowChange(WindowFields):
    @validates_schema
    def something_changes(self, data, **kwargs):
        if not data:
            raise ValidationError("send at least one field to change")


class WindowQuery(Strict):
    kind = fields.String(validate=validate.OneOf(window_service.KINDS))
    service = fields.String(validate=validate.Length(min=1, max=64), metadata={
        "description": "windows that apply to this service: its own and global ones"})
    start = _QueryTime(data_key="from", metadata={"description": "with `to`: only windows occurring in the "
                                                                 "range, with their occurrences (≤ 400 days)"})
    end = _QueryTime(data_key="to")


class WindowRange(Strict):
    start = _QueryTime(data_key="from", metadata={"description": "with `to`: the occurrences in the range"})
    end = _QueryTime(data_key="to")


class WindowOccurrence(Strict):
    start = fields.DateTime()
    end = fields.DateTime()


class Window(Strict):
    id = fields.Integer()
    kind = fields.String()
    name = fields.String()
    description = fields.String()
    is_global = fields.Function(lambda w: not w.services, data_key="global")
    services = ServiceRef()
    starts_at = fields.DateTime(metadata={"description": "UTC"})
    ends_at = fields.DateTime(metadata={"description": "UTC"})
    timezone = fields.String()
    starts_at_local = fields.Function(lambda w: _local(w, w.starts_at),
                                      metadata={"description": "starts_at in the window's time zone"})
    ends_at_local = fields.Function(lambda w: _local(w, w.ends_at))
    rrule = fields.String(allow_none=True)
    until = fields.DateTime(allow_none=True, metadata={
        "description": "when the last occurrence ends; null: recurs indefinitely"})
    created_by = UsernameField(allow_none=True)
    created_at = fields.DateTime()
    occurrences = fields.List(fields.Nested(WindowOccurrence), metadata={
        "description": "only when a range (from, to) is asked for: the occurrences in it, UTC"})


class CalendarQuery(Strict):
    start = _QueryTime(data_key="from", metadata={"description": "default: today 00:00 UTC"})
    end = _QueryTime(data_key="to", metadata={"description": "default: from + 31 days; at most 400 days after from"})
    service = fields.String(validate=validate.Length(min=1, max=64), metadata={
        "description": "changes to this service and the windows that apply to it"})


class CalendarEntry(Strict):
    type = fields.String(metadata={"description": "change | maintenance | blackout"})
    id = fields.Integer(metadata={"description": "the change's or the window's id"})
    number = fields.String(metadata={"description": "changes only"})
    title = fields.String()
    start = fields.DateTime()
    end = fields.DateTime()
    services = fields.List(fields.String(), metadata={"description": "for a window: empty when global"})
    state = fields.String(metadata={"description": "changes only"})
    risk = fields.String(allow_none=True, metadata={"description": "changes only"})
    change_type = fields.String(metadata={"description": "changes only"})
    recurring = fields.Boolean(metadata={"description": "windows only"})
    link = fields.String()


class _CalendarEntries(fields.List):
    """Documented as a list of CalendarEntry, handed to the response as they are.

    A change manager's month holds thousands of entries, and dumping each through the nested schema
    took most of the response time, copying them with datetimes as strings still a fifth. The
    entries (engine.calendar_feed.calendar_entries) are plain dicts of JSON values and datetimes, and
    the response writer (webui/json_responses.py) writes datetimes as this schema would: ISO 8601.
    """

    def _serialize(self, value, attr, obj, **kwargs):
        return value


class CalendarView(Strict):
    start = fields.DateTime(data_key="from")
    end = fields.DateTime(data_key="to")
    service = fields.String(allow_none=True)
    entries = _CalendarEntries(fields.Nested(CalendarEntry))


class CalendarFeedQuery(Strict):
    token = fields.String(required=True, validate=validate.Length(min=1, max=200),
                          metadata={"description": "the caller's secret calendar token"})
    service = fields.String(validate=validate.Length(min=1, max=64))


class CalendarToken(Strict):
    url = fields.String(metadata={"description": "the feed URL to subscribe to; shown only now"})
    token = fields.String()
