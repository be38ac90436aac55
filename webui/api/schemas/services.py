"""Services, dependencies and impact analysis."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from engine.catalog import DEPENDENCY_KINDS

from .common import _NOT_BLANK, Strict, UsernameField


class Service(Strict):
    key = fields.String(required=True, validate=[validate.Length(min=1, max=64),
                                                 validate.Regexp(r"^[a-z0-9][a-z0-9_.-]*$",
                                                                 error="lower-case letters, digits, . _ -")])
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=5000))
    owner = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64),
                          metadata={"description": "username of an active user"})
    criticality = fields.Integer(load_default=3, validate=validate.Range(1, 4), strict=True,
                                 metadata={"description": "1 = mission critical … 4 = low"})
    business_owner = fields.String(load_default="", validate=validate.Length(max=200))
    sla_tier = fields.String(load_default="", validate=validate.Length(max=32))
    vendors = fields.List(fields.String(validate=validate.Length(min=1, max=200)), load_default=list,
                          validate=validate.Length(max=50))
    requires_maintenance_window = fields.Boolean(load_default=False, metadata={
        "description": "changes to it must fall inside one of its maintenance windows"})


class ServiceOut(Service):
    id = fields.Integer(dump_only=True)
    owner = UsernameField(allow_none=True)


class ServicePatch(Strict):
    """Only the fields sent change; the key cannot."""

    name = fields.String(validate=[validate.Length(min=1, max=200), _NOT_BLANK])
    description = fields.String(validate=validate.Length(max=5000))
    owner = fields.String(allow_none=True, validate=validate.Length(max=64))
    criticality = fields.Integer(validate=validate.Range(1, 4), strict=True)
    business_owner = fields.String(validate=validate.Length(max=200))
    sla_tier = fields.String(validate=validate.Length(max=32))
    vendors = fields.List(fields.String(validate=validate.Length(min=1, max=200)), validate=validate.Length(max=50))
    requires_maintenance_window = fields.Boolean()

    @validates_schema
    def something_changes(self, data, **kwargs):
        if not data:
            raise ValidationError("send at least one field to change")


class ServiceQuery(Strict):
    owner = fields.String(validate=validate.Length(max=64), metadata={"description": "owner's username"})
    criticality = fields.Integer(validate=validate.Range(1, 4))


class ServiceNeighbour(Strict):
    key = fields.String()
    name = fields.String()
    criticality = fields.Integer()
    kind = fields.String(metadata={"description": "runs_on | calls | feeds_data_to"})


class ServiceDetail(ServiceOut):
    created_at = fields.DateTime(dump_only=True)
    depends_on = fields.List(fields.Nested(ServiceNeighbour), dump_only=True,
                             metadata={"description": "services this one needs (direct)"})
    dependents = fields.List(fields.Nested(ServiceNeighbour), dump_only=True,
                             metadata={"description": "services that need this one (direct)"})


class DependencyCreate(Strict):
    depends_on = fields.String(required=True, validate=validate.Length(min=1, max=64),
                               metadata={"description": "key of the service this one needs"})
    kind = fields.String(load_default="calls", validate=validate.OneOf(DEPENDENCY_KINDS))


class Dependency(Strict):
    service = fields.String()
    depends_on = fields.String()
    kind = fields.String()


class ImpactedService(Strict):
    key = fields.String()
    name = fields.String()
    criticality = fields.Integer()
    owner = fields.String(allow_none=True)
    depth = fields.Integer(metadata={"description": "hops from a changed service (1 = depends on it directly)"})
    path = fields.List(fields.String(), metadata={
        "description": "service keys from the changed service to this one (a shortest path)"})
    kinds = fields.List(fields.String(), metadata={"description": "kinds[i]: how path[i+1] depends on path[i]"})


class ImpactService(Strict):
    key = fields.String()
    name = fields.String()
    criticality = fields.Integer()
    owner = UsernameField(allow_none=True)


class ChangeImpact(Strict):
    change_id = fields.Integer()
    number = fields.String()
    services = fields.List(fields.Nested(ImpactService), metadata={"description": "the change's own services"})
    impacted = fields.List(fields.Nested(ImpactedService), metadata={
        "description": "every service that transitively depends on them, by depth"})
    max_criticality = fields.Integer(allow_none=True, metadata={
        "description": "highest criticality among both (what risk assessment reads)"})
    max_depth = fields.Integer(metadata={"description": "dependents further away than this are not listed"})


class MemberCreate(Strict):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64),
                             metadata={"description": "username of an active user"})


class Member(Strict):
    username = fields.String()
    display_name = fields.String()
    roles = fields.List(fields.String())
