"""The task inbox."""
from __future__ import annotations

from marshmallow import fields, validate

from .common import Strict, UsernameField


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
    evidence = fields.Dict(metadata={
        "description": "evidence each stage needs: {implement|close: {required: [...], missing: [...]}} — "
                       "what a 'Provide evidence' task is waiting for"})
    schema = fields.Dict(metadata={"description": "the form's JSON Schema"})
    ui_schema = fields.Dict(allow_none=True)
    data = fields.Dict(metadata={"description": "prefilled values while ready; the submitted data once completed"})


class TaskQuery(Strict):
    role = fields.String(validate=validate.Length(max=32))
    change = fields.Integer()
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))
    per_page = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500), metadata={
        "description": "tasks per page (the X-Total-Count header says how many wait in all)"})


class TaskComplete(Strict):
    data = fields.Dict(keys=fields.String(), required=True,
                       metadata={"description": "values for the task's form, validated by its JSON Schema"})
    override_reason = fields.String(load_default=None, validate=validate.Length(min=10, max=2000), metadata={
        "description": "admins only: decide an approval despite segregation of duties; recorded and audited"})


class TaskDraftSave(Strict):
    data = fields.Dict(keys=fields.String(), required=True, metadata={
        "description": "the form's values as far as they were entered; not validated"})


class TaskDraft(Strict):
    task_id = fields.String()
    data = fields.Dict()
    saved_by = UsernameField()
    saved_at = fields.DateTime()
