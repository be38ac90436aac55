"""The pages. Thin like the API routes: read the form, call the engine, render or redirect."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort, flash, redirect, render_template, request, session, url_for

from engine import runtime
from engine.db import utcnow
from engine.errors import ChangeflowError
from engine.inbox import inbox as engine_inbox
from engine.passwords import authenticate
from engine.transactions import run_command

from ..extensions import db
from . import blp
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
