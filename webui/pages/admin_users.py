"""Admin pages: people and their roles — create, edit, deactivate and reactivate, set a password."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from engine import accounts
from engine.passwords import MIN_LENGTH
from engine.roles import ROLES
from engine.transactions import run_command

from ..extensions import db
from . import blp
from .admin_common import submit, text
from .security import page, signed_in_user


def _profile(form) -> dict:
    return {"display_name": text(form, "display_name"), "email": text(form, "email"), "team": text(form, "team"),
            "roles": form.getlist("roles")}


def _password(form, errors: dict) -> str:
    """The new password, or '' when none was typed; a mistyped repeat is an error at its field."""
    password = form.get("password") or ""
    if password and password != form.get("password_repeat"):
        errors["password_repeat"] = "does not match the password"
    return password


def _values(user) -> dict:
    return {"username": user.username, "display_name": user.display_name, "email": user.email or "",
            "team": user.team or "", "roles": list(user.roles)}


def _user_page(user, values: dict, errors: dict, status: int = 200):
    return render_template("admin_user.html", user=user, values=values, errors=errors, roles=ROLES,
                           teams=accounts.known_teams(db.session, signed_in_user()), min_length=MIN_LENGTH), status


@blp.route("/admin/users", methods=["GET"])
@page("user.read")
def admin_users():
    """Everyone with their roles and whether they may sign in."""
    return render_template("admin_users.html", users=accounts.list_users(db.session, signed_in_user()))


@blp.route("/admin/users/new", methods=["GET", "POST"])
@page("user.manage")
def admin_new_user():
    """Create a person with roles and, optionally, their first password (both or neither are stored)."""
    if request.method == "GET":
        return _user_page(None, {"roles": []}, {})
    user, values, errors = signed_in_user(), {**_profile(request.form), "username": text(request.form, "username")}, {}
    password = _password(request.form, errors)
    if errors:
        return _user_page(None, values, errors, 422)
    created, errors, status = submit(
        lambda fields: run_command(db.session, user, accounts.add_user, user, fields, password or None),
        values, default_field="username")
    if errors:
        return _user_page(None, values, errors, status)
    flash(f"{created.username} can sign in{'' if password else ' once a password is set'}.", "ok")
    return redirect(url_for("pages.admin_user", username=created.username))


@blp.route("/admin/users/<username>", methods=["GET"])
@page("user.read")
def admin_user(username):
    """One person; admins get the forms to change them."""
    found = accounts.get_user(db.session, signed_in_user(), username)
    return _user_page(found, _values(found), {})


@blp.route("/admin/users/<username>", methods=["POST"])
@page("user.manage")
def admin_edit_user(username):
    """Display name, e-mail, team and roles."""
    user, values = signed_in_user(), _profile(request.form)
    _done, errors, status = submit(
        lambda fields: run_command(db.session, user, accounts.update_user, user, username, fields), values)
    if errors:
        found = accounts.get_user(db.session, user, username)
        return _user_page(found, {**values, "username": username}, errors, status)
    flash(f"{username} is saved.", "ok")
    return redirect(url_for("pages.admin_user", username=username))


@blp.route("/admin/users/<username>/password", methods=["POST"])
@page("user.manage")
def admin_user_password(username):
    """Set a password, as `changeflow users set-password` does; the person's sessions end."""
    user, errors = signed_in_user(), {}
    password = _password(request.form, errors)
    if not password:
        errors["password"] = "type the new password twice"
    if not errors:
        _done, errors, status = submit(
            lambda _: run_command(db.session, user, accounts.change_password, user, username, password),
            default_field="password")
    else:
        status = 422
    found = accounts.get_user(db.session, user, username)
    if errors:
        return _user_page(found, _values(found), errors, status)
    flash(f"The password of {username} is set.", "ok")
    return redirect(url_for("pages.admin_user", username=username))


@blp.route("/admin/users/<username>/active", methods=["POST"])
@page("user.manage")
def admin_user_active(username):
    """Deactivate (signed out at once, tokens stop working) or reactivate."""
    user, active = signed_in_user(), request.form.get("active") == "1"
    _done, errors, _status = submit(
        lambda _: run_command(db.session, user, accounts.set_active, user, username, active))
    if errors:
        flash(errors.get("", "; ".join(errors.values())), "error")
    else:
        flash(f"{username} is {'active again' if active else 'deactivated'}.", "ok")
    return redirect(url_for("pages.admin_user", username=username))
