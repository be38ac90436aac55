"""The standard-change catalogue."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from engine import templates as template_service
from engine.changes import CATEGORIES

from .common import _KEY, _NOT_BLANK, _SERVICE_KEYS, _TEXT, Strict, UsernameField


def _template_version_number(template, pick):
    version = pick(template)
    return version.version if version is not None else None


def _shown_content(template):
    """The active version's content, or the latest proposal's while nothing is approved."""
    return template_service.active_version(template) or (template.versions[-1] if template.versions else None)


def _content_field(name, field):
    return fields.Function(lambda t: getattr(_shown_content(t), name, None), metadata={"type": field})


class TemplateContent(Strict):
    name = fields.String(validate=validate.Length(min=1, max=200))
    category = fields.String(validate=validate.OneOf(CATEGORIES))
    description = fields.String(validate=validate.Length(max=5000))
    implementation_plan = fields.String(validate=_TEXT)
    rollback_plan = fields.String(validate=[validate.Length(min=1, max=20000), _NOT_BLANK])
    test_plan = fields.String(validate=_TEXT)
    allowed_services = _SERVICE_KEYS
    max_risk = fields.String(validate=validate.OneOf(template_service.MAX_RISKS),
                             metadata={"description": "the highest risk a change from it may have"})


class TemplateCreate(TemplateContent):
    key = fields.String(required=True, validate=_KEY)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    category = fields.String(required=True, validate=validate.OneOf(CATEGORIES))
    rollback_plan = fields.String(required=True, validate=[validate.Length(min=1, max=20000), _NOT_BLANK])
    allowed_services = fields.List(fields.String(validate=validate.Length(min=1, max=64)), required=True,
                                   validate=validate.Length(min=1, max=100))
    max_risk = fields.String(load_default="low", validate=validate.OneOf(template_service.MAX_RISKS))
    owner = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64),
                          metadata={"description": "username; the proposer when left out"})


class TemplateChange(TemplateContent):
    @validates_schema
    def something_changes(self, data, **kwargs):
        if not data:
            raise ValidationError("send at least one field to change")


class TemplateRetire(Strict):
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=5000), _NOT_BLANK])


class TemplateDecision(Strict):
    decision = fields.String(required=True, validate=validate.OneOf(("approve", "reject")))
    comment = fields.String(load_default="", validate=validate.Length(max=5000),
                            metadata={"description": "required when rejecting"})


class TemplateReinstate(Strict):
    comment = fields.String(required=True, validate=[validate.Length(min=1, max=5000), _NOT_BLANK],
                            metadata={"description": "what the review after the suspension found"})


class TemplateQuery(Strict):
    status = fields.String(validate=validate.OneOf(template_service.STATUSES))


class TemplateVersion(Strict):
    version = fields.Integer()
    kind = fields.String(metadata={"description": "create | change | retire"})
    status = fields.String(metadata={"description": "pending | approved | rejected"})
    active = fields.Function(lambda v: v is template_service.active_version(v.template))
    name = fields.String()
    category = fields.String()
    description = fields.String(metadata={"description": "for a retire version: the reason for retiring"})
    implementation_plan = fields.String()
    rollback_plan = fields.String()
    test_plan = fields.String()
    allowed_services = fields.List(fields.String())
    max_risk = fields.String()
    proposed_by = UsernameField(allow_none=True)
    proposed_at = fields.DateTime()
    decided_by = UsernameField(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    decision_comment = fields.String()


class Template(Strict):
    key = fields.String()
    status = fields.String(metadata={"description": "proposed | active | suspended | retired | rejected"})
    status_reason = fields.String()
    owner = UsernameField(allow_none=True)
    created_at = fields.DateTime()
    active_version = fields.Function(lambda t: _template_version_number(t, template_service.active_version))
    pending_version = fields.Function(lambda t: _template_version_number(t, template_service.pending_version))
    name = _content_field("name", "string")
    category = _content_field("category", "string")
    description = _content_field("description", "string")
    allowed_services = _content_field("allowed_services", "array")
    max_risk = _content_field("max_risk", "string")


class TemplateDetail(Template):
    implementation_plan = _content_field("implementation_plan", "string")
    rollback_plan = _content_field("rollback_plan", "string")
    test_plan = _content_field("test_plan", "string")
    versions = fields.List(fields.Nested(TemplateVersion))
