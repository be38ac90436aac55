"""The inbox and the task page: what waits for me, and the form that completes it."""
from __future__ import annotations

import json

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from engine import drafts, permissions, runtime
from engine.bpmn.specs import FORMS
from engine.db import utcnow
from engine.errors import ChangeflowError, ValidationFailed
from engine.evidence_rules import evidence_status
from engine.inbox import inbox as engine_inbox, inbox_count as engine_inbox_count
from engine.models import Approval, ChangeConflict, ProcessInstance
from engine.permissions import can_see_task
from engine.projection import form_values
from engine.transactions import run_command

from ..extensions import db
from . import blp, task_forms
from .security import page, safe_next, signed_in_user

FILTERS = {"type": ("standard", "normal", "emergency"), "risk": ("low", "moderate", "high")}


@blp.route("/", methods=["GET"])
@page("task.read")
def index():
    return redirect(url_for("pages.inbox"))


@blp.route("/inbox", methods=["GET"])
@page("task.read")
def inbox():
    """My tasks and my roles' tasks, due first; filters by change type, risk and service."""
    filters = {name: request.args.get(name) or None for name in ("type", "risk", "service")}
    for name, allowed in FILTERS.items():
        if filters[name] and filters[name] not in allowed:
            abort(400, description=f"Unknown {name} '{filters[name]}'; use one of {', '.join(allowed)}.")
    tasks = engine_inbox(db.session, signed_in_user(), change_type=filters["type"], risk=filters["risk"],
                         service=filters["service"])
    return render_template("inbox.html", tasks=tasks, filters=filters, options=FILTERS, now=utcnow())


def _task_command(func, task_id: str, done: str):
    user = signed_in_user()
    try:
        run_command(db.session, user, func, task_id, user)
        flash(done, "ok")
    except ChangeflowError as error:
        flash(error.message, "error")
    return redirect(safe_next(request.form.get("next")))


@blp.route("/tasks/<task_id>/claim", methods=["POST"])
@page("task.act")
def claim(task_id):
    return _task_command(runtime.claim_task, task_id, "The task is yours now.")


@blp.route("/tasks/<task_id>/unclaim", methods=["POST"])
@page("task.act")
def unclaim(task_id):
    return _task_command(runtime.unclaim_task, task_id, "The task is back with its role.")


def inbox_count() -> int:
    """For the navigation: how many tasks wait in the signed-in person's inbox."""
    user = signed_in_user()
    return engine_inbox_count(db.session, user) if user is not None else 0


def _task_page(task_id: str):
    """The task, its form documents and the change's context — or 404 for a task one may not see."""
    task = runtime.get_task(db.session, task_id)
    if not can_see_task(signed_in_user(), task):
        abort(404)
    instance = db.session.get(ProcessInstance, task.instance_id)
    forms = FORMS.get(instance.process_version)
    schema = json.loads(forms[task.form]) if task.form in forms else {"properties": {}}
    ui_schema = json.loads(forms[task.ui_form]) if task.ui_form in forms else {}
    context = {
        "approvals": db.session.scalars(select(Approval).where(Approval.change_id == task.change_id)
                                        .order_by(Approval.id)).all(),
        "conflicts": db.session.scalars(select(ChangeConflict).where(
            ChangeConflict.change_id == task.change_id, ChangeConflict.resolved_at.is_(None))).all(),
        "evidence": evidence_status(db.session, task.change, instance.process_version),
    }
    return task, schema, ui_schema, context


@blp.route("/tasks/<task_id>", methods=["GET", "POST"])
@page("task.read")
def task(task_id):
    """The form beside the change's context; a POST completes the task (errors shown at their fields)."""
    task, schema, ui_schema, context = _task_page(task_id)
    errors, status, draft = [], 200, None
    if request.method == "GET":
        draft = drafts.get_draft(db.session, task_id, signed_in_user())
        values = form_values(task.change, schema) if task.status == "ready" else (task.data or {})
        values = draft.data if draft is not None else values
    else:
        user = signed_in_user()
        values = task_forms.parse(schema, request.form)
        if not permissions.can(user, "task.act"):
            abort(403, description="Your roles do not allow acting on tasks.")
        try:
            run_command(db.session, user, runtime.complete_task, task_id, user, values)
        except ValidationFailed as error:
            errors, status = error.errors or [{"field": "", "message": error.message}], 422
        except ChangeflowError as error:
            errors, status = [{"field": "", "message": error.message}], error.status
        else:
            flash(f"{task.name} done for {task.change.number}.", "ok")
            return redirect(url_for("pages.inbox"))
    return _render_task(task, schema, ui_schema, context, values, errors, status, draft)


@blp.route("/tasks/<task_id>/draft", methods=["POST"])
@page("task.act")
def task_draft(task_id):
    """Save draft: keep what was entered, unvalidated, for whoever reopens the task; completes nothing."""
    task, schema, ui_schema, context = _task_page(task_id)
    values = task_forms.parse(schema, request.form)
    user = signed_in_user()
    try:
        run_command(db.session, user, drafts.save_draft, task_id, user, values)
    except ChangeflowError as error:
        return _render_task(task, schema, ui_schema, context, values,
                            [{"field": "", "message": error.message}], error.status, None)
    flash("Draft saved. It is shown to whoever opens this task until the task is completed.", "ok")
    return redirect(url_for("pages.task", task_id=task_id))


def _render_task(task, schema, ui_schema, context, values, errors, status, draft):
    fields = task_forms.build(schema, ui_schema, values, errors)
    general = [e["message"] for e in errors if e.get("field") in ("", None)
               or not any(_has_path(f, e["field"]) for f in fields)]
    submit = (ui_schema.get("ui:submitButtonOptions") or {}).get("submitText", "Complete task")
    return render_template("task.html", task=task, schema=schema, fields=fields, general_errors=general,
                           submit=submit, now=utcnow(), draft=draft, **context), status


def _has_path(item, path: str) -> bool:
    return item.path == path or any(_has_path(f, path) for row in item.rows for f in row)
