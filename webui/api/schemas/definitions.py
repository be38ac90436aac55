"""Process definitions and their versions."""
from __future__ import annotations

from marshmallow import fields, validate

from .common import Strict, UsernameField


class ProcessVersion(Strict):
    process_key = fields.String()
    name = fields.String()
    version = fields.Integer()
    sha256 = fields.String()
    filename = fields.String()
    deployed_at = fields.DateTime()
    deployed_by = UsernameField(allow_none=True)
    note = fields.String()
    forms = fields.Function(lambda v: sorted(v.forms))
    dmn = fields.Function(lambda v: sorted(v.dmn))


class ProcessVersionDetail(ProcessVersion):
    bpmn_xml = fields.String()
    form_documents = fields.Dict(attribute="forms")
    dmn_documents = fields.Dict(attribute="dmn")


class ProcessDefinition(Strict):
    process_key = fields.String()
    name = fields.String()
    latest_version = fields.Integer()
    versions = fields.Integer()
    deployed_at = fields.DateTime()


class DeployRequest(Strict):
    files = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                        metadata={"description": "file name → content (.bpmn, .dmn, .json forms)"})
    note = fields.String(load_default="", validate=validate.Length(max=2000))


class DeployResult(Strict):
    deployed = fields.List(fields.Nested(ProcessVersion))
    unchanged = fields.List(fields.Nested(ProcessVersion))
    resources = fields.List(fields.String())
