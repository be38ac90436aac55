"""Changes: the list, one change from request to closure, and filing a new one."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from engine.change_filters import InvalidFilter, parse_change_filters
from engine.changes import CATEGORIES, CHANGE_TYPES, create_change, get_change, list_changes
from engine.errors import ChangeflowError
from engine.intake_preview import preview_change
from engine.models import Service
from engine.transactions import run_command

from ..extensions import db
from . import blp
from .evidence import change_page  # also registers the Evidence section's upload and download routes
from .security import page, signed_in_user

@blp.route("/changes", methods=["GET"])
@page("change.read")
def changes():
    """Changes the signed-in person may read (requesters: their own), newest first, with filters
    (engine/change_filters.py; the dashboards link here with them). An unknown value is a 400."""
    try:
        filters = parse_change_filters(request.args)
    except InvalidFilter as error:
        abort(400, description=error.message)
    page_no = max(request.args.get("page", 1, type=int), 1)
    rows, total = list_changes(db.session, signed_in_user(), **filters, page=page_no, per_page=50)
    return render_template("changes.html", changes=rows, total=total, page=page_no,
                           filters={n: request.args.get(n) or "" for n in ("state", "type", "risk", "service", "from",
                                                                         "to", "closed_from", "closed_to", "outcome")})


@blp.route("/changes/<change_ref>", methods=["GET"])
@page("change.read")
def change(change_ref):
    """One change from request to closure: header, timeline, approvals, tasks, evidence, conflicts,
    impacted services, notifications and what the process waits for. Printable (the auditor's trace)."""
    return change_page(get_change(db.session, change_ref, signed_in_user()))


CHANGE_FIELDS = ("title", "description", "change_type", "category", "template", "impact", "urgency",
                 "planned_start", "planned_end", "implementation_plan", "rollback_plan", "test_plan",
                 "justification", "cost_estimate", "emergency_reason", "incident_ref", "implementer")


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


def _field_errors(error) -> dict:
    """{field: message} from a schema's or the engine's refusal; "" holds what names no field."""
    from marshmallow import ValidationError

    if isinstance(error, ValidationError):
        return {k: " ".join(v) if isinstance(v, list) else str(v) for k, v in error.messages.items()}
    return {e.get("field", ""): e.get("message", "") for e in (error.errors or [])} or {"": error.message}


def _preview(values: dict) -> tuple[dict | None, dict, int]:
    """(preview, errors, status): the form through POST /api/changes/preview's schema and engine function."""
    from marshmallow import ValidationError

    from ..api.schemas import ChangePreview

    try:
        return preview_change(db.session, signed_in_user(), ChangePreview().load(values)), {}, 200
    except ValidationError as error:
        return None, _field_errors(error), 422
    except ChangeflowError as error:
        return None, _field_errors(error), error.status


@blp.route("/changes/new", methods=["GET", "POST"])
@page("change.create")
def new_change():
    """File a change: the same checks as POST /api/changes, with each problem shown at its field.
    "Check risk and conflicts" shows the preview instead and files nothing."""
    from marshmallow import ValidationError

    from ..api.schemas import ChangeCreate

    values, errors, status = {"change_type": "normal", "impact": 3, "urgency": 3, "services": []}, {}, 200
    preview = None
    if request.method == "POST" and "check" in request.form:
        values = _change_form_data(request.form)
        preview, errors, status = _preview(values)
    elif request.method == "POST":
        values = _change_form_data(request.form)
        user = signed_in_user()
        try:
            fields = ChangeCreate().load(values)
            created = run_command(db.session, user, create_change, user, fields)
        except (ValidationError, ChangeflowError) as error:
            errors, status = _field_errors(error), getattr(error, "status", 422)
        else:
            flash(f"{created.number} filed: {created.state}, risk {created.risk or 'not assessed'}.", "ok")
            return redirect(url_for("pages.change", change_ref=created.number))
    services = db.session.scalars(select(Service).order_by(Service.key)).all()
    return render_template("new_change.html", values=values, errors=errors, services=services,
                           categories=CATEGORIES, types=CHANGE_TYPES, preview=preview,
                           templates=_standard_templates(),
                           preview_errors=errors if "check" in request.form else {}), status


@blp.route("/changes/new/preview", methods=["POST"])
@page("change.create")
def new_change_preview():
    """The preview panel alone (an HTML fragment) for the page's script; files nothing."""
    values = _change_form_data(request.form)
    preview, errors, status = _preview(values)
    return render_template("_change_preview.html", preview=preview, preview_errors=errors, values=values), status


def _standard_templates() -> list[tuple[str, str]]:
    """(key, label) of each active standard-change template, for the picker."""
    from engine.templates import active_version, list_templates

    picked = []
    for template in list_templates(db.session, signed_in_user(), status="active"):
        version = active_version(template)
        if version is not None:
            services = ", ".join(version.allowed_services) or "any service"
            picked.append((template.key, f"{version.name} ({template.key}; {services}; at most {version.max_risk} risk)"))
    return picked
