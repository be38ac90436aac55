"""Admin pages: the standard-change catalogue — templates, proposals waiting for a change manager,
and the decision on them (never by the proposer: segregation of duties, as in the API)."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from engine import catalog
from engine import templates as template_service
from engine.changes import CATEGORIES
from engine.transactions import run_command

from ..extensions import db
from . import blp
from .admin_common import submit, text
from .security import page, signed_in_user

PLANS = ("description", "implementation_plan", "rollback_plan", "test_plan")


def shown_content(template):
    """The active version's content, or the latest proposal's while nothing is approved."""
    return template_service.active_version(template) or (template.versions[-1] if template.versions else None)


def _template_page(key: str, values: dict | None = None, errors: dict | None = None, status: int = 200):
    template = template_service.get_template(db.session, signed_in_user(), key)
    return render_template("admin_template.html", template=template, content=shown_content(template),
                           pending=template_service.pending_version(template),
                           active=template_service.active_version(template),
                           values=values or {"decision": "approve"}, errors=errors or {}), status


@blp.route("/admin/templates", methods=["GET"])
@page("template.read")
def admin_templates():
    """Every template with its status, and the proposals waiting for a decision."""
    templates = template_service.list_templates(db.session, signed_in_user())
    proposals = [(t, v) for t in templates for v in [template_service.pending_version(t)] if v is not None]
    return render_template("admin_templates.html", templates=templates, proposals=proposals, shown=shown_content)


@blp.route("/admin/templates/new", methods=["GET", "POST"])
@page("template.propose")
def admin_new_template():
    """Propose a template; it is usable once a change manager other than the proposer approves it."""
    from ..api.schemas import TemplateCreate

    values, errors, status = {"max_risk": "low", "allowed_services": []}, {}, 200
    if request.method == "POST":
        user = signed_in_user()
        values = {name: text(request.form, name) for name in ("key", "name", "category", "max_risk", *PLANS)}
        values["owner"] = text(request.form, "owner") or None
        values["allowed_services"] = request.form.getlist("allowed_services")
        created, errors, status = submit(
            lambda fields: run_command(db.session, user, template_service.propose_template, user, fields),
            values, TemplateCreate(), default_field="key")
        if not errors:
            flash(f"Template {created.key} is proposed; a change manager decides on it.", "ok")
            return redirect(url_for("pages.admin_template", key=created.key))
    services = catalog.list_services(db.session, signed_in_user())
    return render_template("admin_template_new.html", values=values, errors=errors, categories=CATEGORIES,
                           max_risks=template_service.MAX_RISKS,
                           service_options=[(s.key, f"{s.name} ({s.key})") for s in services]), status


@blp.route("/admin/templates/<key>", methods=["GET"])
@page("template.read")
def admin_template(key):
    """A template's content and every version; change managers decide the pending one here."""
    return _template_page(key)


@blp.route("/admin/templates/<key>/versions/<int:number>/decision", methods=["POST"])
@page("template.decide")
def admin_decide_template(key, number):
    """Approve or reject a pending version, with a comment (required when rejecting)."""
    from ..api.schemas import TemplateDecision

    user = signed_in_user()
    values = {"decision": text(request.form, "decision"), "comment": text(request.form, "comment")}
    decided, errors, status = submit(
        lambda fields: run_command(db.session, user, template_service.decide_version, user, key, number,
                                   fields["decision"], fields["comment"]),
        values, TemplateDecision())
    if errors:
        return _template_page(key, values, errors, status)
    flash(f"Version {number} of {key} is {decided.status}; the template is {decided.template.status}.", "ok")
    return redirect(url_for("pages.admin_template", key=key))


@blp.route("/admin/templates/<key>/reinstate", methods=["POST"])
@page("template.decide")
def admin_reinstate_template(key):
    """After reviewing a suspension: the template may be used again."""
    user = signed_in_user()
    values = {"reinstate_comment": text(request.form, "reinstate_comment")}
    _done, errors, status = submit(
        lambda _: run_command(db.session, user, template_service.reinstate_template, user, key,
                              values["reinstate_comment"]))
    if errors:
        errors = {("reinstate_comment" if k == "comment" else k): v for k, v in errors.items()}
        return _template_page(key, values, errors, status)
    flash(f"Template {key} is active again.", "ok")
    return redirect(url_for("pages.admin_template", key=key))
