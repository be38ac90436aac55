"""Request and response schemas (marshmallow). Unknown fields in a request are refused."""
from __future__ import annotations

from datetime import timezone

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from webargs.fields import DelimitedList

from engine import templates as template_service
from engine.catalog import DEPENDENCY_KINDS
from engine.changes import CATEGORIES, CHANGE_TYPES
from engine.operators import CHANGE_STATES


class Strict(Schema):
    class Meta:
        ordered = True


class UsernameField(fields.Field):
    def _serialize(self, value, attr, obj, **kwargs):
        return value.username if value is not None else None


class ServiceRef(fields.Field):
    def _serialize(self, value, attr, obj, **kwargs):
        return [s.key for s in value or []]


class ChangeCreate(Strict):
    title = fields.String(required=True, validate=validate.Length(min=3, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=20000))
    change_type = fields.String(required=True, validate=validate.OneOf(CHANGE_TYPES))
    category = fields.String(validate=validate.OneOf(CATEGORIES),
                             metadata={"description": "required, unless it comes from the template"})
    template = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64),
                             metadata={"description": "standard changes: the key of an active template; "
                                                      "its category and plans are fixed"})
    services = fields.List(fields.String(validate=validate.Length(min=1, max=64)), load_default=list,
                           validate=validate.Length(max=100))
    impact = fields.Integer(required=True, validate=validate.Range(1, 3), strict=True)
    urgency = fields.Integer(required=True, validate=validate.Range(1, 3), strict=True)
    planned_start = fields.AwareDateTime(load_default=None, allow_none=True, format="iso")
    planned_end = fields.AwareDateTime(load_default=None, allow_none=True, format="iso")
    implementation_plan = fields.String(load_default="", validate=validate.Length(max=20000))
    rollback_plan = fields.String(load_default="", validate=validate.Length(max=20000))
    rollback_tested = fields.Boolean(load_default=False)
    test_plan = fields.String(load_default="", validate=validate.Length(max=20000))
    justification = fields.String(load_default="", validate=validate.Length(max=20000))
    emergency_reason = fields.String(load_default="", validate=validate.Length(max=20000))
    incident_ref = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    cost_estimate = fields.Decimal(load_default=None, allow_none=True, places=2, as_string=True,
                                   validate=validate.Range(min=0))
    implementer = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))

    @validates_schema
    def window_order(self, data, **kwargs):
        start, end = data.get("planned_start"), data.get("planned_end")
        if start and end and end <= start:
            raise ValidationError("must be after planned_start", field_name="planned_end")

    @validates_schema
    def category_or_template(self, data, **kwargs):
        if not data.get("template") and not data.get("category"):
            raise ValidationError("Missing data for required field.", field_name="category")


class Change(Strict):
    id = fields.Integer()
    number = fields.String()
    title = fields.String()
    description = fields.String()
    change_type = fields.String()
    category = fields.String()
    state = fields.String()
    risk = fields.String(allow_none=True)
    risk_reasons = fields.List(fields.String())
    priority = fields.Integer(allow_none=True)
    impact = fields.Integer()
    urgency = fields.Integer()
    services = ServiceRef()
    requester = UsernameField()
    implementer = UsernameField(allow_none=True)
    planned_start = fields.DateTime(allow_none=True)
    planned_end = fields.DateTime(allow_none=True)
    actual_start = fields.DateTime(allow_none=True)
    actual_end = fields.DateTime(allow_none=True)
    implementation_plan = fields.String()
    rollback_plan = fields.String()
    rollback_tested = fields.Boolean()
    test_plan = fields.String()
    justification = fields.String()
    emergency_reason = fields.String()
    incident_ref = fields.String(allow_none=True)
    cost_estimate = fields.Decimal(as_string=True, allow_none=True)
    implementation_result = fields.String(allow_none=True)
    close_code = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    closed_at = fields.DateTime(allow_none=True)
    template = fields.Function(
        lambda c: {"key": c.template_version.template.key, "version": c.template_version.version}
        if c.template_version else None, allow_none=True,
        metadata={"description": "the standard-change template (key, version) the change was raised from"})


class ChangeQuery(Strict):
    state = fields.String(validate=validate.OneOf(CHANGE_STATES))
    type = fields.String(validate=validate.OneOf(CHANGE_TYPES))
    risk = fields.String(validate=validate.OneOf(("low", "moderate", "high")))
    service = fields.String(validate=validate.Length(max=64))
    requester = fields.String(validate=validate.Length(max=64))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=200))


class ChangePage(Strict):
    items = fields.List(fields.Nested(Change))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class Task(Strict):
    id = fields.String()
    change_id = fields.Integer()
    change_number = fields.Function(lambda t: t.change.number)
    change_title = fields.Function(lambda t: t.change.title)
    element_id = fields.String()
    name = fields.String()
    role = fields.String()
    status = fields.String()
    assignee = UsernameField(allow_none=True)
    form = fields.String(allow_none=True)
    approval_step = fields.String(allow_none=True)
    created_at = fields.DateTime()
    due_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    completed_by = UsernameField(allow_none=True)


class TaskDetail(Task):
    change = fields.Nested("Change", metadata={"description": "the change the task belongs to"})
    approvals = fields.List(fields.Nested("Approval"), metadata={
        "description": "every approval decision on the change so far (with round), newest last"})
    schema = fields.Dict(metadata={"description": "the form's JSON Schema"})
    ui_schema = fields.Dict(allow_none=True)
    data = fields.Dict(metadata={"description": "prefilled values while ready; the submitted data once completed"})


class TaskQuery(Strict):
    role = fields.String(validate=validate.Length(max=32))
    change = fields.Integer()


class TaskComplete(Strict):
    data = fields.Dict(keys=fields.String(), required=True,
                       metadata={"description": "values for the task's form, validated by its JSON Schema"})
    override_reason = fields.String(load_default=None, validate=validate.Length(min=10, max=2000), metadata={
        "description": "admins only: decide an approval despite segregation of duties; recorded and audited"})


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


class AuditEvent(Strict):
    id = fields.Integer()
    at = fields.DateTime()
    actor = fields.String()
    kind = fields.String()
    element_id = fields.String(allow_none=True)
    task_id = fields.String(allow_none=True)
    data = fields.Dict()


class Approval(Strict):
    step = fields.String()
    round = fields.Integer()
    evidence_reviewed = fields.List(fields.String())
    cab_meeting_id = fields.Integer(allow_none=True)
    recorded_by = UsernameField(allow_none=True)
    override_reason = fields.String(allow_none=True)
    approver = UsernameField()
    role = fields.String()
    decision = fields.String()
    comment = fields.String()
    decided_at = fields.DateTime()
    task_id = fields.String()


class Incident(Strict):
    id = fields.Integer()
    process_key = fields.String()
    element_id = fields.String(allow_none=True)
    message = fields.String()
    actor = UsernameField(allow_none=True)
    created_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)


class Diagram(Strict):
    process_key = fields.String()
    version = fields.Integer()
    bpmn_xml = fields.String()
    completed_element_ids = fields.List(fields.String())
    active_element_ids = fields.List(fields.String())


class Trace(Strict):
    change = fields.Nested(Change)
    events = fields.List(fields.Nested(AuditEvent))
    tasks = fields.List(fields.Nested(Task))
    approvals = fields.List(fields.Nested(Approval))
    incidents = fields.List(fields.Nested(Incident))
    diagram = fields.Nested(Diagram, allow_none=True)


class Gate(Strict):
    change = fields.String()
    allowed = fields.Boolean()
    reasons = fields.List(fields.String())
    checked_at = fields.DateTime()
    state = fields.String()
    planned_start = fields.DateTime(allow_none=True)
    planned_end = fields.DateTime(allow_none=True)


class Health(Strict):
    status = fields.String()
    database = fields.Dict()
    redis = fields.Dict()


# -- the standard-change catalogue -------------------------------------------------------------------

def _template_version_number(template, pick):
    version = pick(template)
    return version.version if version is not None else None


def _shown_content(template):
    """The active version's content, or the latest proposal's while nothing is approved."""
    return template_service.active_version(template) or (template.versions[-1] if template.versions else None)


def _content_field(name, field):
    return fields.Function(lambda t: getattr(_shown_content(t), name, None), metadata={"type": field})


_KEY = [validate.Length(min=1, max=64),
        validate.Regexp(r"^[a-z0-9][a-z0-9_.-]*$", error="lower-case letters, digits, . _ -")]
_TEXT = validate.Length(max=20000)
_NOT_BLANK = validate.Regexp(r"\S", error="may not be blank")
_SERVICE_KEYS = fields.List(fields.String(validate=validate.Length(min=1, max=64)),
                            validate=validate.Length(min=1, max=100))


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


# -- CAB meetings ------------------------------------------------------------------------------------

class _QueryTime(fields.AwareDateTime):
    """A date-time in a query string: '+' arrives as a space unless encoded; naive means UTC."""

    def __init__(self, **kwargs):
        super().__init__(format="iso", default_timezone=timezone.utc, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            value = value.strip().replace(" ", "+")
        return super()._deserialize(value, attr, data, **kwargs)


class CabMeetingCreate(Strict):
    title = fields.String(load_default="CAB meeting", validate=[validate.Length(min=1, max=200), _NOT_BLANK])
    starts_at = fields.AwareDateTime(required=True, format="iso")
    ends_at = fields.AwareDateTime(load_default=None, allow_none=True, format="iso")
    members = fields.List(fields.String(validate=validate.Length(min=1, max=64)), required=True,
                          validate=validate.Length(min=1, max=100),
                          metadata={"description": "usernames; each must hold the cab_member role"})
    horizon_days = fields.Integer(load_default=7, validate=validate.Range(0, 365), strict=True, metadata={
        "description": "the agenda covers changes starting before the next meeting plus this many days"})
    notes = fields.String(load_default="", validate=validate.Length(max=20000))

    @validates_schema
    def ends_after_start(self, data, **kwargs):
        if data.get("ends_at") and data["ends_at"] <= data["starts_at"]:
            raise ValidationError("must be after starts_at", field_name="ends_at")


class CabMeetingQuery(Strict):
    start = _QueryTime(data_key="from", metadata={"description": "meetings starting at or after"})
    end = _QueryTime(data_key="to", metadata={"description": "meetings starting before"})


class CabMeeting(Strict):
    id = fields.Integer()
    title = fields.String()
    starts_at = fields.DateTime()
    ends_at = fields.DateTime(allow_none=True)
    members = fields.List(fields.String())
    horizon_days = fields.Integer()
    status = fields.String(metadata={"description": "planned | held (once a decision is recorded)"})
    notes = fields.String()
    created_by = UsernameField(allow_none=True)
    created_at = fields.DateTime()


class CabApproval(Approval):
    evidence_reviewed = fields.List(fields.String())


class CabAgendaItem(Strict):
    change_id = fields.Integer()
    number = fields.String()
    title = fields.String()
    state = fields.String()
    risk = fields.String(allow_none=True)
    risk_reasons = fields.List(fields.String())
    priority = fields.Integer(allow_none=True)
    services = fields.List(fields.String())
    planned_start = fields.DateTime(allow_none=True)
    planned_end = fields.DateTime(allow_none=True)
    requester = fields.String()
    approvals = fields.List(fields.Nested(CabApproval), metadata={
        "description": "earlier decisions in the current approval round (change manager, service owners)"})
    cab_votes = fields.Dict(keys=fields.String(), values=fields.Integer(),
                            metadata={"description": "CAB decisions so far: {approve: n, reject: n}"})
    pending_members = fields.List(fields.String(), metadata={"description": "CAB members yet to decide"})
    conflicts = fields.List(fields.Dict(), metadata={"description": "empty until conflict detection lands"})
    evidence = fields.List(fields.Dict(), metadata={"description": "empty until evidence lands"})


class CabMeetingDetail(CabMeeting):
    agenda_until = fields.DateTime(metadata={
        "description": "changes planned to start before this (next meeting + horizon) are on the agenda"})
    agenda = fields.List(fields.Nested(CabAgendaItem), metadata={
        "description": "changes awaiting the CAB, by planned start; those without one last"})


class CabDecision(Strict):
    change_id = fields.Integer(required=True, strict=True)
    decision = fields.String(required=True, validate=validate.OneOf(("approve", "reject")),
                             metadata={"description": "the board's decision: every present member's vote "
                                                      "unless listed in votes"})
    comment = fields.String(load_default="", validate=validate.Length(max=4000),
                            metadata={"description": "required when anyone rejects"})
    votes = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=64)),
                        values=fields.String(validate=validate.OneOf(("approve", "reject"))),
                        load_default=dict, metadata={"description": "members who voted differently"})
    present = fields.List(fields.String(validate=validate.Length(min=1, max=64)), load_default=None,
                          validate=validate.Length(min=1, max=100),
                          metadata={"description": "members present; all meeting members when left out"})
    evidence_reviewed = fields.List(fields.String(validate=validate.Length(min=1, max=2000)), load_default=list,
                                    validate=validate.Length(max=100),
                                    metadata={"description": "evidence ids or links the board reviewed"})

    @validates_schema
    def comment_on_reject(self, data, **kwargs):
        rejects = data.get("decision") == "reject" or "reject" in (data.get("votes") or {}).values()
        if rejects and not (data.get("comment") or "").strip():
            raise ValidationError("is required when anyone rejects", field_name="comment")


class CabSkipped(Strict):
    member = fields.String()
    vote = fields.String()
    reason = fields.String()


class CabDecisionResult(Strict):
    cab_meeting_id = fields.Integer()
    change_id = fields.Integer()
    change_number = fields.String()
    state = fields.String(metadata={"description": "the change's state after the decision"})
    outcome = fields.String(metadata={"description": "authorized | rejected | pending (the CAB step goes on)"})
    approvals = fields.List(fields.Nested(CabApproval), metadata={"description": "the votes recorded"})
    skipped = fields.List(fields.Nested(CabSkipped), metadata={
        "description": "members whose vote was not recorded, and why"})


class CabMinutesQuery(Strict):
    format = fields.String(load_default="md", validate=validate.OneOf(("md", "html")))


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


# -- maintenance windows, blackouts and the calendar -------------------------------------------------

from engine import windows as window_service  # noqa: E402  (kept with the schemas that use it)


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


class CalendarView(Strict):
    start = fields.DateTime(data_key="from")
    end = fields.DateTime(data_key="to")
    service = fields.String(allow_none=True)
    entries = fields.List(fields.Nested(CalendarEntry))


class CalendarFeedQuery(Strict):
    token = fields.String(required=True, validate=validate.Length(min=1, max=200),
                          metadata={"description": "the caller's secret calendar token"})
    service = fields.String(validate=validate.Length(min=1, max=64))


class CalendarToken(Strict):
    url = fields.String(metadata={"description": "the feed URL to subscribe to; shown only now"})
    token = fields.String()
