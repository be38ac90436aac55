from __future__ import annotations

import json

from flask_smorest import Blueprint
from sqlalchemy import select

from engine import drafts, runtime
from engine.bpmn.specs import FORMS
from engine.errors import NotFound
from engine.evidence_rules import evidence_status
from engine.inbox import inbox_page
from engine.models import Approval, ProcessInstance, Task
from engine.permissions import can_see_task
from engine.projection import form_values
from engine.transactions import run_command

from ..auth import current_user, permission
from ..extensions import db
from ..paging import paging_headers
from . import schemas

blp = Blueprint("tasks", __name__, url_prefix="/api/tasks", description="The task inbox")


@blp.route("", methods=["GET"])
@permission("task.read")
@blp.arguments(schemas.TaskQuery, location="query")
@blp.response(200, schemas.Task(many=True), headers={
    "X-Total-Count": {"description": "how many tasks wait in all (every page)", "schema": {"type": "integer"}},
    "Link": {"description": 'RFC 8288 links to the other pages: rel="next", "prev", "first", "last"',
             "schema": {"type": "string"}}})
def inbox(query):
    """Ready tasks assigned to the caller, or unclaimed for one of the caller's roles: due first, a
    page at a time (`page`, `per_page`; default 100 per page)."""
    user, page, per_page = current_user(), query["page"], query["per_page"]
    filters = {"role": query.get("role"), "change_id": query.get("change")}
    tasks, total = inbox_page(db.session, user, limit=per_page, offset=(page - 1) * per_page, **filters)
    return tasks, 200, paging_headers(total, page, per_page)


def _visible_task(task_id: str) -> Task:
    task = runtime.get_task(db.session, task_id)
    if not can_see_task(current_user(), task):
        raise NotFound(f"Task {task_id} does not exist.")  # do not reveal others' tasks
    return task


@blp.route("/<task_id>", methods=["GET"])
@permission("task.read")
@blp.response(200, schemas.TaskDetail)
def get_task(task_id):
    """The task with its form (JSON Schema, UI schema) and the current values of its fields."""
    task = _visible_task(task_id)
    instance = db.session.get(ProcessInstance, task.instance_id)
    forms = FORMS.get(instance.process_version)
    schema = json.loads(forms[task.form]) if task.form in forms else {}
    ui_schema = json.loads(forms[task.ui_form]) if task.ui_form in forms else None
    values = form_values(task.change, schema) if task.status == "ready" else (task.data or {})
    approvals = db.session.scalars(select(Approval).where(Approval.change_id == task.change_id)
                                   .order_by(Approval.id)).all()
    evidence = evidence_status(db.session, task.change, instance.process_version)
    return _TaskWithForm(task, schema=schema, ui_schema=ui_schema, data=values, approvals=approvals,
                         evidence=evidence)


class _TaskWithForm:
    """A task row seen together with its form documents and current values."""

    def __init__(self, task: Task, **extra):
        self._task = task
        self.__dict__.update(extra)

    def __getattr__(self, name):
        return getattr(self._task, name)


@blp.route("/<task_id>/claim", methods=["POST"])
@permission("task.act")
@blp.response(200, schemas.Task)
def claim(task_id):
    user = current_user()
    return run_command(db.session, user, runtime.claim_task, task_id, user)


@blp.route("/<task_id>/unclaim", methods=["POST"])
@permission("task.act")
@blp.response(200, schemas.Task)
def unclaim(task_id):
    user = current_user()
    return run_command(db.session, user, runtime.unclaim_task, task_id, user)


@blp.route("/<task_id>/complete", methods=["POST"])
@permission("task.act")
@blp.arguments(schemas.TaskComplete)
@blp.response(200, schemas.Task)
def complete(body, task_id):
    """Submit the form; the process runs on to its next wait state."""
    user = current_user()
    return run_command(db.session, user, runtime.complete_task, task_id, user, body["data"],
                       override_reason=body.get("override_reason"))


@blp.route("/<task_id>/draft", methods=["PUT"])
@permission("task.act")
@blp.arguments(schemas.TaskDraftSave)
@blp.response(200, schemas.TaskDraft)
def save_draft(body, task_id):
    """Keep the form's values without validating or completing; replaces the task's earlier draft."""
    user = current_user()
    return run_command(db.session, user, drafts.save_draft, task_id, user, body["data"])


@blp.route("/<task_id>/draft", methods=["GET"])
@permission("task.read")
@blp.response(200, schemas.TaskDraft)
def get_draft(task_id):
    """The task's draft (404 when none is saved, or the task is done or not visible to the caller)."""
    draft = drafts.get_draft(db.session, task_id, current_user())
    if draft is None:
        raise NotFound(f"Task {task_id} has no draft.")
    return draft
