"""The pages. Thin like the API routes: read the form, call the engine, render or redirect."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from urllib.parse import urlsplit

from flask import abort, flash, redirect, render_template, request, session, url_for
from sqlalchemy import select

from engine import calendar_feed, notification_admin, permissions, runtime
from engine.changes import CATEGORIES, CHANGE_TYPES, create_change, get_change, list_changes
from engine.db import utcnow
from engine.errors import ChangeflowError, ValidationFailed
from engine.evidence_rules import evidence_status
from engine.inbox import inbox as engine_inbox
from engine.models import Approval, ChangeConflict, ProcessInstance, Service
from engine.notification_admin import NOTIFICATION_STATUSES
from engine.passwords import authenticate
from engine.permissions import can_see_task
from engine.projection import form_values
from engine.service_map import change_impact
from engine.trace import change_trace
from engine.transactions import run_command

from ..extensions import db
from . import blp, task_forms
from .security import page, sign_in, signed_in_user

FILTERS = {"type": ("standard", "normal", "emergency"), "risk": ("low", "moderate", "high")}


def _safe_next(target: str | None) -> str:
    """Only paths on this site: an absolute URL in ?next= would make the login page an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("pages.inbox")


@blp.route("/", methods=["GET"])
@page("task.read")
def index():
    return redirect(url_for("pages.inbox"))


@blp.route("/login", methods=["GET", "POST"])
@page("session.login")
def login():
    if request.method == "GET":
        return render_template("login.html", next=_safe_next(request.args.get("next")))
    user = authenticate(db.session, request.form.get("username", "").strip(), request.form.get("password", ""))
    if user is None:
        db.session.rollback()
        return render_template("login.html", next=_safe_next(request.form.get("next")),
                               error="Unknown username or wrong password.",
                               username=request.form.get("username", "")), 401
    db.session.commit()  # a rehashed password
    sign_in(user)
    return redirect(_safe_next(request.form.get("next")))


@blp.route("/logout", methods=["POST"])
@page("session.login")
def logout():
    session.clear()
    return redirect(url_for("pages.login"))


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
    return redirect(_safe_next(request.form.get("next")))


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
    return len(engine_inbox(db.session, user)) if user is not None else 0


def _task_page(task_id: str):
    """The task, its form documents and the change's context — or 404 for a task one may not see."""
    task = runtime.get_task(db.session, task_id)
    if not can_see_task(signed_in_user(), task):
        abort(404)
    instance = db.session.get(ProcessInstance, task.instance_id)
    forms = instance.process_version.forms
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
    errors, status = [], 200
    if request.method == "GET":
        values = form_values(task.change, schema) if task.status == "ready" else (task.data or {})
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
    fields = task_forms.build(schema, ui_schema, values, errors)
    general = [e["message"] for e in errors if e.get("field") in ("", None)
               or not any(_has_path(f, e["field"]) for f in fields)]
    submit = (ui_schema.get("ui:submitButtonOptions") or {}).get("submitText", "Complete task")
    return render_template("task.html", task=task, schema=schema, fields=fields, general_errors=general,
                           submit=submit, now=utcnow(), **context), status


def _has_path(item, path: str) -> bool:
    return item.path == path or any(_has_path(f, path) for row in item.rows for f in row)


@blp.route("/changes", methods=["GET"])
@page("change.read")
def changes():
    """Changes the signed-in person may read (requesters: their own), newest first, with filters."""
    state, change_type, risk = (request.args.get(n) or None for n in ("state", "type", "risk"))
    page_no = max(request.args.get("page", 1, type=int), 1)
    rows, total = list_changes(db.session, signed_in_user(), state=state, change_type=change_type, risk=risk,
                               service=request.args.get("service") or None, page=page_no, per_page=50)
    return render_template("changes.html", changes=rows, total=total, page=page_no,
                           filters={"state": state, "type": change_type, "risk": risk,
                                    "service": request.args.get("service") or ""})


@blp.route("/changes/<change_ref>", methods=["GET"])
@page("change.read")
def change(change_ref):
    """One change from request to closure: header, timeline, approvals, tasks, evidence, conflicts,
    impacted services, notifications and what the process waits for. Printable (the auditor's trace)."""
    found = get_change(db.session, change_ref, signed_in_user())
    return render_template("change.html", change=found, trace=change_trace(db.session, found),
                           impact=change_impact(db.session, found))


CHANGE_FIELDS = ("title", "description", "change_type", "category", "template", "impact", "urgency",
                 "planned_start", "planned_end", "implementation_plan", "rollback_plan", "test_plan",
                 "justification", "emergency_reason", "incident_ref", "implementer")


def _change_form_data(form) -> dict:
    """The posted intake form as the API's request body: empty fields left out, UTC date-times."""
    data = {}
    for name in CHANGE_FIELDS:
        value = (form.get(name) or "").strip()
        if not value:
            continue
        if name in ("impact", "urgency"):
            data[name] = int(value) if value.isdigit() else value
        elif name in ("planned_start", "planned_end") and len(value) == 16:
            data[name] = f"{value}:00+00:00"  # entered in UTC
        else:
            data[name] = value
    data["services"] = form.getlist("services")
    data["rollback_tested"] = "rollback_tested" in form
    return data


@blp.route("/changes/new", methods=["GET", "POST"])
@page("change.create")
def new_change():
    """File a change: the same checks as POST /api/changes, with each problem shown at its field."""
    from marshmallow import ValidationError

    from ..api.schemas import ChangeCreate

    values, errors, status = {"change_type": "normal", "impact": 3, "urgency": 3, "services": []}, {}, 200
    if request.method == "POST":
        values = _change_form_data(request.form)
        user = signed_in_user()
        try:
            fields = ChangeCreate().load(values)
            created = run_command(db.session, user, create_change, user, fields)
        except ValidationError as error:
            errors, status = {k: " ".join(v) if isinstance(v, list) else str(v)
                              for k, v in error.messages.items()}, 422
        except ChangeflowError as error:
            errors = {e.get("field", ""): e.get("message", "") for e in (error.errors or [])} or {"": error.message}
            status = error.status
        else:
            flash(f"{created.number} filed: {created.state}, risk {created.risk or 'not assessed'}.", "ok")
            return redirect(url_for("pages.change", change_ref=created.number))
    services = db.session.scalars(select(Service).order_by(Service.key)).all()
    return render_template("new_change.html", values=values, errors=errors, services=services,
                           categories=CATEGORIES, types=CHANGE_TYPES), status


@blp.route("/admin/outbox", methods=["GET"])
@page("outbox.read")
def outbox():
    """The notification outbox; `?status=failed` is the dead-letter list, each with a Retry button."""
    status = request.args.get("status") or None
    if status and status not in NOTIFICATION_STATUSES:
        abort(400, description=f"Unknown status '{status}'; use one of {', '.join(NOTIFICATION_STATUSES)}.")
    page_no = max(request.args.get("page", 1, type=int), 1)
    listing = notification_admin.list_outbox(db.session, signed_in_user(), status=status, page=page_no, per_page=50)
    return render_template("outbox.html", listing=listing, status=status, statuses=NOTIFICATION_STATUSES,
                           may_retry=permissions.can(signed_in_user(), "outbox.retry"))


@blp.route("/admin/outbox/<int:notification_id>/retry", methods=["POST"])
@page("outbox.retry")
def retry_notification(notification_id):
    user = signed_in_user()
    try:
        run_command(db.session, user, notification_admin.retry_notification, user, notification_id)
        flash(f"Notification {notification_id} is queued again.", "ok")
    except ChangeflowError as error:
        flash(error.message, "error")
    return redirect(url_for("pages.outbox", status="failed"))


def _calendar_range(view: str, anchor: date) -> tuple[date, date]:
    """Whole weeks, Monday first: the weeks touching the month, or the anchor's week."""
    if view == "week":
        first = anchor - timedelta(days=anchor.weekday())
        return first, first + timedelta(days=7)
    month_start = anchor.replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    first = month_start - timedelta(days=month_start.weekday())
    last = next_month + timedelta(days=(7 - next_month.weekday()) % 7)
    return first, last


@blp.route("/calendar", methods=["GET"])
@page("calendar.read")
def calendar():
    """Month or week of changes and window occurrences (blackouts and maintenance shaded, conflicts
    marked), optionally for one service; with the link to one's iCalendar feed."""
    view = request.args.get("view", "month")
    if view not in ("month", "week"):
        abort(400, description="view must be month or week")
    try:
        anchor = date.fromisoformat(request.args.get("date") or utcnow().date().isoformat())
    except ValueError:
        abort(400, description="date must look like 2026-12-01")
    first, last = _calendar_range(view, anchor)
    service = request.args.get("service") or None
    found = calendar_feed.calendar_entries(
        db.session, signed_in_user(), datetime.combine(first, time.min, tzinfo=timezone.utc),
        datetime.combine(last, time.min, tzinfo=timezone.utc), service)
    change_ids = [e["id"] for e in found["entries"] if e["type"] == "change"]
    conflicted = set(db.session.scalars(select(ChangeConflict.change_id).where(
        ChangeConflict.change_id.in_(change_ids), ChangeConflict.resolved_at.is_(None)))) if change_ids else set()
    days = []
    for offset in range((last - first).days):
        day = first + timedelta(days=offset)
        start = datetime.combine(day, time.min, tzinfo=timezone.utc)
        end = start + timedelta(days=1)
        days.append({"date": day, "in_month": view == "week" or day.month == anchor.month,
                     "entries": [e for e in found["entries"] if e["start"] < end and e["end"] > start]})
    step = timedelta(days=7) if view == "week" else timedelta(days=31)
    return render_template("calendar.html", days=days, view=view, anchor=anchor, service=service or "",
                           conflicted=conflicted,
                           previous=(anchor.replace(day=1) - timedelta(days=1)) if view == "month" else anchor - step,
                           following=(anchor.replace(day=1) + step).replace(day=1) if view == "month" else anchor + step)


@blp.route("/calendar/feed-link", methods=["POST"])
@page("calendar.read")
def calendar_feed_link():
    """A new secret iCalendar URL for the signed-in person (the old one stops working)."""
    user = signed_in_user()
    token = run_command(db.session, user, calendar_feed.rotate_calendar_token, user)
    flash(f"Subscribe your calendar app to {request.host_url.rstrip('/')}/calendar.ics?token={token} "
          "— it is shown once; a new link replaces it.", "ok")
    return redirect(url_for("pages.calendar"))
