"""Admin pages: maintenance windows and blackout periods, one-off or recurring (RRULE)."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from engine import catalog
from engine import windows as window_service
from engine.transactions import run_command

from ..extensions import db
from . import blp
from .admin_common import submit, text, utc_field, utc_input
from .security import page, signed_in_user


def _window_form(form, *, creating: bool) -> dict:
    """The posted form as the API's request body; times are entered in UTC."""
    data = {name: text(form, name) for name in ("kind", "name", "description")}
    for name in ("starts_at", "ends_at"):
        value = text(form, name)
        if value or not creating:  # left out when creating, so the schema says it is required
            data[name] = utc_input(value)
    data["rrule"] = text(form, "rrule") or None
    data["timezone"] = text(form, "timezone") or "UTC"
    data["services"] = form.getlist("services")
    return data


def _stored(window) -> dict:
    return {"kind": window.kind, "name": window.name, "description": window.description or "",
            "starts_at": window.starts_at, "ends_at": window.ends_at, "rrule": window.rrule or "",
            "timezone": window.timezone or "UTC", "services": [s.key for s in window.services]}


def _window_page(window, values: dict, errors: dict, status: int = 200):
    shown = {**values, **{name: utc_field(values[name]) if hasattr(values.get(name), "tzinfo")
                          else (values.get(name) or "")[:16] for name in ("starts_at", "ends_at")}}
    return render_template("admin_window.html", window=window, values=shown, errors=errors,
                           kinds=window_service.KINDS,
                           service_options=[(s.key, f"{s.name} ({s.key})")
                                            for s in catalog.list_services(db.session, signed_in_user())]), status


@blp.route("/admin/windows", methods=["GET"])
@page("window.read")
def admin_windows():
    """Every window by start: kind, when, how it recurs, which services (or all)."""
    kind = request.args.get("kind") or None
    if kind not in (None, *window_service.KINDS):
        abort(400, description=f"Unknown kind '{kind}'; use one of {', '.join(window_service.KINDS)}.")
    found = window_service.list_windows(db.session, signed_in_user(), kind=kind)
    return render_template("admin_windows.html", windows=found, kind=kind, kinds=window_service.KINDS)


@blp.route("/admin/windows/new", methods=["GET", "POST"])
@page("window.write")
def admin_new_window():
    """Create a window: the same checks as POST /api/windows, each problem at its field."""
    from ..api.schemas import WindowCreate

    if request.method == "GET":
        return _window_page(None, {"kind": "maintenance", "timezone": "UTC", "services": []}, {})
    user, values = signed_in_user(), _window_form(request.form, creating=True)
    created, errors, status = submit(
        lambda fields: run_command(db.session, user, window_service.create_window, user, fields),
        values, WindowCreate())
    if errors:
        return _window_page(None, values, errors, status)
    flash(f"{created.kind.capitalize()} window “{created.name}” is saved.", "ok")
    return redirect(url_for("pages.admin_windows"))


@blp.route("/admin/windows/<int:window_id>", methods=["GET"])
@page("window.read")
def admin_window(window_id):
    """One window; editors get the form to change or delete it."""
    window = window_service.get_window(db.session, signed_in_user(), window_id)
    return _window_page(window, _stored(window), {})


@blp.route("/admin/windows/<int:window_id>", methods=["POST"])
@page("window.write")
def admin_edit_window(window_id):
    """Change the window; it is validated as a whole, as PATCH /api/windows/{id} does."""
    from ..api.schemas import WindowChange

    user, values = signed_in_user(), _window_form(request.form, creating=False)
    _done, errors, status = submit(
        lambda fields: run_command(db.session, user, window_service.update_window, user, window_id, fields),
        values, WindowChange())
    if errors:
        return _window_page(window_service.get_window(db.session, user, window_id), values, errors, status)
    flash(f"Window “{values['name']}” is saved.", "ok")
    return redirect(url_for("pages.admin_windows"))


@blp.route("/admin/windows/<int:window_id>/delete", methods=["POST"])
@page("window.write")
def admin_delete_window(window_id):
    user = signed_in_user()
    window = window_service.get_window(db.session, user, window_id)
    name = window.name
    run_command(db.session, user, window_service.delete_window, user, window_id)
    flash(f"Window “{name}” is deleted.", "ok")
    return redirect(url_for("pages.admin_windows"))
