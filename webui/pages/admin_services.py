"""Admin pages: the service catalogue and its dependencies (A depends on B = A needs B)."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from engine import catalog
from engine.catalog import DEPENDENCY_KINDS
from engine.transactions import run_command

from ..extensions import db
from . import blp
from .admin_common import lines, submit, text
from .security import page, signed_in_user

CRITICALITIES = [(1, "1 — mission critical"), (2, "2 — high"), (3, "3 — medium"), (4, "4 — low")]
EDITABLE = ("name", "description", "owner", "criticality", "business_owner", "sla_tier", "vendors",
            "requires_maintenance_window")


def _service_form(form, *, creating: bool) -> dict:
    """The posted form as the API's request body (POST /api/services, or PATCH for an edit)."""
    data = {name: text(form, name) for name in ("name", "description", "business_owner", "sla_tier")}
    data["owner"] = text(form, "owner") or None
    criticality = text(form, "criticality")
    data["criticality"] = int(criticality) if criticality.isdigit() else criticality
    data["vendors"] = lines(form.get("vendors", ""))
    data["requires_maintenance_window"] = "requires_maintenance_window" in form
    if creating:
        data["key"] = text(form, "key")
    return data


def _shown(values: dict) -> dict:
    """Values as the form shows them: vendors one per line, the owner's username."""
    owner = values.get("owner")
    typed = values.get("depends_on")  # the add-dependency field; a service's own list is not shown in it
    return {"kind": "calls", **values, "vendors": "\n".join(values.get("vendors") or []),
            "depends_on": typed if isinstance(typed, str) else "",
            "owner": owner.username if hasattr(owner, "username") else owner or ""}


def _service_page(key: str, values: dict | None = None, errors: dict | None = None, status: int = 200):
    detail = catalog.describe_service(db.session, signed_in_user(), key)
    everything = catalog.list_services(db.session, signed_in_user())
    members = catalog.list_members(db.session, signed_in_user(), key)
    return render_template("admin_service.html", service=detail, values=_shown(values or detail),
                           errors=errors or {}, kinds=DEPENDENCY_KINDS, criticalities=CRITICALITIES,
                           keys=[s.key for s in everything if s.key != key], members=members), status


@blp.route("/admin/services", methods=["GET"])
@page("service.read")
def admin_services():
    """Every service with its criticality and owner."""
    return render_template("admin_services.html", services=catalog.list_services(db.session, signed_in_user()))


@blp.route("/admin/services/new", methods=["GET", "POST"])
@page("service.write")
def admin_new_service():
    """Create a service: the same checks as POST /api/services, each problem at its field."""
    from ..api.schemas import Service as ServiceSchema

    values, errors, status = {"criticality": 3}, {}, 200
    if request.method == "POST":
        user, values = signed_in_user(), _service_form(request.form, creating=True)
        created, errors, status = submit(
            lambda fields: run_command(db.session, user, catalog.create_service, user, fields),
            values, ServiceSchema(), default_field="key")
        if not errors:
            flash(f"Service {created.key} is in the catalogue.", "ok")
            return redirect(url_for("pages.admin_service", key=created.key))
    return render_template("admin_service.html", service=None, values=_shown(values), errors=errors,
                           criticalities=CRITICALITIES), status


@blp.route("/admin/services/<key>", methods=["GET"])
@page("service.read")
def admin_service(key):
    """A service with what it depends on and what depends on it; editors get the forms."""
    return _service_page(key)


@blp.route("/admin/services/<key>", methods=["POST"])
@page("service.write")
def admin_edit_service(key):
    from ..api.schemas import ServicePatch

    user, values = signed_in_user(), _service_form(request.form, creating=False)
    _done, errors, status = submit(
        lambda fields: run_command(db.session, user, catalog.update_service, user, key, fields),
        values, ServicePatch())
    if errors:
        return _service_page(key, values, errors, status)
    flash(f"Service {key} is saved.", "ok")
    return redirect(url_for("pages.admin_service", key=key))


@blp.route("/admin/services/<key>/dependencies", methods=["POST"])
@page("service.write")
def admin_add_dependency(key):
    """`key` depends on (needs) the service named; unknown keys and self-dependencies are refused at
    the field. Longer cycles are allowed, as in the API: real estates have them."""
    from ..api.schemas import DependencyCreate

    user = signed_in_user()
    values = {"depends_on": text(request.form, "depends_on"), "kind": text(request.form, "kind") or "calls"}
    _done, errors, status = submit(
        lambda fields: run_command(db.session, user, catalog.add_dependency, user, key, fields["depends_on"],
                                   fields["kind"]),
        values, DependencyCreate(), default_field="depends_on")
    if errors:
        detail = catalog.describe_service(db.session, user, key)
        return _service_page(key, {**detail, **values}, errors, status)
    flash(f"{key} now depends on {values['depends_on']} ({values['kind'].replace('_', ' ')}).", "ok")
    return redirect(url_for("pages.admin_service", key=key))


@blp.route("/admin/services/<key>/dependencies/<depends_on>/remove", methods=["POST"])
@page("service.write")
def admin_remove_dependency(key, depends_on):
    user = signed_in_user()
    run_command(db.session, user, catalog.remove_dependency, user, key, depends_on)
    flash(f"{key} no longer depends on {depends_on}.", "ok")
    return redirect(url_for("pages.admin_service", key=key))


@blp.route("/admin/services/<key>/members", methods=["POST"])
@page("service.write")
def admin_add_member(key):
    """Add a member by username (the API's check: an unknown or inactive user is refused at the field)."""
    from ..api.schemas import MemberCreate

    user = signed_in_user()
    values = {"username": text(request.form, "username")}
    _done, errors, status = submit(
        lambda fields: run_command(db.session, user, catalog.add_member, user, key, fields["username"]),
        values, MemberCreate(), default_field="username")
    if errors:
        detail = catalog.describe_service(db.session, user, key)
        return _service_page(key, {**detail, **values}, errors, status)
    flash(f"{values['username']} is now a member of {key}.", "ok")
    return redirect(url_for("pages.admin_service", key=key) + "#members")


@blp.route("/admin/services/<key>/members/<username>/remove", methods=["POST"])
@page("service.write")
def admin_remove_member(key, username):
    user = signed_in_user()
    run_command(db.session, user, catalog.remove_member, user, key, username)
    flash(f"{username} is no longer a member of {key}.", "ok")
    return redirect(url_for("pages.admin_service", key=key) + "#members")
