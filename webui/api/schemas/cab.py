"""CAB meetings, agendas, decisions and minutes."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from .changes import Approval
from .common import _NOT_BLANK, Strict, UsernameField, _QueryTime


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
