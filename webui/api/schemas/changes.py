"""Change requests, their traces and the deployment gate."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from engine.changes import CATEGORIES, CHANGE_TYPES
from engine.operators import CHANGE_STATES

from .common import ServiceRef, Strict, UsernameField
from .tasks import Task


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
                                   validate=validate.Range(min=0),
                                   metadata={"minimum": 0})  # apispec would write the bound as "0.00"
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
    cost_actual = fields.Decimal(as_string=True, allow_none=True, metadata={
        "description": "what the change cost, as the post-implementation review recorded it"})
    implementation_result = fields.String(allow_none=True)
    close_code = fields.String(allow_none=True)
    close_notes = fields.String()
    incidents_caused = fields.List(fields.String(), metadata={
        "description": "incident numbers the post-implementation review recorded as caused by the change"})
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


class AuditEvent(Strict):
    id = fields.Integer()
    at = fields.DateTime()
    actor = fields.String()
    kind = fields.String()
    element_id = fields.String(allow_none=True)
    task_id = fields.String(allow_none=True)
    data = fields.Dict()
    seq = fields.Integer(metadata={"description": "position in the change's audit hash chain, from 1"})
    prev_hash = fields.String(metadata={"description": "hash of the event before it (64 zeros for the first)"})
    hash = fields.String(metadata={"description": "SHA-256 of this event's content and prev_hash (docs/security.md)"})


class AuditChain(Strict):
    chain = fields.String()
    events = fields.Integer()
    head_hash = fields.String(allow_none=True, metadata={
        "description": "hash of the newest event: keep it to notice a later rewrite of the chain"})
    intact = fields.Boolean(metadata={"description": "every hash and link of the chain checks out"})
    first_broken = fields.String(allow_none=True, metadata={"description": "the first event that does not"})


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


class TraceEvidence(Strict):
    id = fields.Integer()
    kind = fields.String()
    filename = fields.String(allow_none=True)
    content_type = fields.String(allow_none=True)
    size = fields.Integer(allow_none=True)
    sha256 = fields.String(allow_none=True)
    url = fields.String(allow_none=True)
    note = fields.String()
    version = fields.Integer()
    supersedes_id = fields.Integer(allow_none=True)
    current = fields.Boolean(metadata={"description": "false once a newer row supersedes it"})
    uploaded_by = UsernameField(allow_none=True)
    uploaded_at = fields.DateTime()


class EvidenceStage(Strict):
    required = fields.List(fields.String(), metadata={"description": "kinds evidence.dmn requires at this stage"})
    missing = fields.List(fields.String(), metadata={"description": "required kinds with no current evidence"})


class EvidenceRequirements(Strict):
    implement = fields.Nested(EvidenceStage, metadata={"description": "before implementation"})
    close = fields.Nested(EvidenceStage, metadata={"description": "before closure"})


class FollowUp(Strict):
    id = fields.Integer()
    action = fields.String()
    owner = UsernameField(allow_none=True)
    due_date = fields.Date(allow_none=True)
    status = fields.String(metadata={"description": "open or done"})
    overdue = fields.Boolean(metadata={"description": "open and past its due date"})
    created_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)


class TraceNotification(Strict):
    id = fields.Integer()
    kind = fields.String()
    channel = fields.String()
    recipient = UsernameField(allow_none=True)
    endpoint = fields.Function(lambda n: n.endpoint.name if n.endpoint else None)
    subject = fields.String()
    status = fields.String(metadata={"description": "pending, sent, failed (dead letter) or skipped"})
    attempts = fields.Integer()
    send_after = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)


class TraceWait(Strict):
    kind = fields.String(metadata={"description": "timer or service_task"})
    element_id = fields.String(allow_none=True)
    status = fields.String()
    due_at = fields.DateTime()
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)


class Trace(Strict):
    change = fields.Nested(Change)
    events = fields.List(fields.Nested(AuditEvent))
    audit_chain = fields.Nested(AuditChain, metadata={
        "description": "the hash chain of the events above, as `changeflow audit verify --change` checks it"})
    tasks = fields.List(fields.Nested(Task))
    approvals = fields.List(fields.Nested(Approval))
    incidents = fields.List(fields.Nested(Incident))
    diagram = fields.Nested(Diagram, allow_none=True)
    evidence = fields.List(fields.Nested(TraceEvidence), metadata={
        "description": "every evidence row attached to the change, superseded ones included"})
    evidence_requirements = fields.Nested(EvidenceRequirements, metadata={
        "description": "what evidence.dmn requires before implementation and before closure, and what is missing"})
    follow_ups = fields.List(fields.Nested(FollowUp), metadata={
        "description": "follow-up actions from the post-implementation or retrospective review"})
    notifications = fields.List(fields.Nested(TraceNotification), metadata={
        "description": "who was told what about the change, on which channel, and whether it arrived"})
    waiting_for = fields.List(fields.Nested(TraceWait), metadata={
        "description": "timers and background service tasks the process is waiting for"})


class Gate(Strict):
    change = fields.String()
    allowed = fields.Boolean()
    reasons = fields.List(fields.String())
    checked_at = fields.DateTime()
    state = fields.String()
    planned_start = fields.DateTime(allow_none=True)
    planned_end = fields.DateTime(allow_none=True)


class ChangePreview(ChangeCreate):
    """POST /api/changes/preview: the request of POST /api/changes; a title is not needed to assess it."""

    title = fields.String(load_default="", validate=validate.Length(max=200))


class ChangePreviewResult(Strict):
    risk = fields.String(metadata={"description": "low, moderate or high, as the process would assess it"})
    risk_reasons = fields.List(fields.String())
    priority = fields.Integer(allow_none=True)
    conflicts = fields.List(fields.Nested("Conflict"), metadata={
        "description": "what the planned window collides with: changes, the implementer's bookings, "
                       "maintenance windows, blackouts (empty without a window)"})
    evidence_required = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), metadata={
        "description": "stage (implement, close) → the evidence kinds the category will need then (evidence.dmn)"})
    process = fields.Dict(metadata={"description": "the process (key, version) the change would start"})
