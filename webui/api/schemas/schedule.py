"""Conflicts and the scheduling assistant."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema
from webargs.fields import DelimitedList

from engine.changes import CHANGE_TYPES

from .common import Strict


class Conflict(Strict):
    key = fields.String()
    kind = fields.String(metadata={"description": "same_service, dependency, implementer_busy, "
                                                  "outside_maintenance_window or blackout"})
    severity = fields.String(metadata={"description": "blocking or warning"})
    message = fields.String()
    other_change_id = fields.Integer(allow_none=True)
    other_change = fields.String(allow_none=True)
    window_id = fields.Integer(allow_none=True)
    starts_at = fields.DateTime(allow_none=True)
    ends_at = fields.DateTime(allow_none=True)


class RecordedConflict(Strict):
    key = fields.String()
    kind = fields.String()
    severity = fields.String()
    message = fields.String()
    other_change_id = fields.Integer(allow_none=True)
    window_id = fields.Integer(allow_none=True)
    detected_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)


class ConflictReport(Strict):
    conflicts = fields.List(fields.Nested(Conflict))
    recorded = fields.List(fields.Nested(RecordedConflict))


class ScheduleCheck(Strict):
    start = fields.AwareDateTime(required=True, format="iso")
    end = fields.AwareDateTime(required=True, format="iso")
    services = fields.List(fields.String(), required=True, validate=validate.Length(min=1, max=100))
    implementer = fields.String(load_default=None, allow_none=True)
    change_type = fields.String(load_default="normal", validate=validate.OneOf(CHANGE_TYPES))
    change_id = fields.Integer(load_default=None, allow_none=True,
                               metadata={"description": "ignore this change (when re-planning it)"})

    @validates_schema
    def order(self, data, **kwargs):
        if data["end"] <= data["start"]:
            raise ValidationError("must be after start", field_name="end")


class SuggestQuery(Strict):
    services = DelimitedList(fields.String(), required=True, validate=validate.Length(min=1, max=100))
    duration = fields.String(required=True, metadata={"description": "ISO 8601 duration, e.g. PT2H"})
    after = fields.String(load_default=None, metadata={"description": "ISO 8601 date-time with offset; default now"})
    implementer = fields.String(load_default=None)
    count = fields.Integer(load_default=5, validate=validate.Range(1, 20))


class Slot(Strict):
    start = fields.DateTime()
    end = fields.DateTime()


# -- the service map ---------------------------------------------------------------------------------
