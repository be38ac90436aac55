"""Shared building blocks of the API schemas. Unknown fields in a request are refused."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import timezone

from marshmallow import Schema, ValidationError, fields, pre_load, validate


class Strict(Schema):
    class Meta:
        ordered = True

    @pre_load
    def _refuse_nul(self, data, **kwargs):
        # PostgreSQL cannot store U+0000; multipart text parts reach here without the request check
        if isinstance(data, Mapping):
            bad = {k: ["May not contain NUL (U+0000) characters."] for k, v in data.items()
                   if isinstance(v, str) and "\x00" in v}
            if bad:
                raise ValidationError(bad)
        return data


class UsernameField(fields.Field):
    def _serialize(self, value, attr, obj, **kwargs):
        return value.username if value is not None else None


class ServiceRef(fields.Field):
    def _serialize(self, value, attr, obj, **kwargs):
        return [s.key for s in value or []]


_KEY = [validate.Length(min=1, max=64),
        validate.Regexp(r"^[a-z0-9][a-z0-9_.-]*$", error="lower-case letters, digits, . _ -")]
_TEXT = validate.Length(max=20000)
_NOT_BLANK = validate.Regexp(r"\S", error="may not be blank")
_SERVICE_KEYS = fields.List(fields.String(validate=validate.Length(min=1, max=64)),
                            validate=validate.Length(min=1, max=100))


class _QueryTime(fields.AwareDateTime):
    """A date-time in a query string: '+' arrives as a space unless encoded; naive means UTC."""

    def __init__(self, **kwargs):
        super().__init__(format="iso", default_timezone=timezone.utc, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            value = value.strip().replace(" ", "+")
        return super()._deserialize(value, attr, data, **kwargs)


class Health(Strict):
    status = fields.String()
    database = fields.Dict()
    redis = fields.Dict(metadata={"description": "configured, ok, workers (rq workers alive)"})
    jobs = fields.Dict(allow_none=True, metadata={
        "description": "late: background jobs overdue by more than a minute (workers not keeping up); "
                       "failed: dead letters"})
