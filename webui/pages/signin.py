"""Signing in and out of the pages."""
from __future__ import annotations

from flask import redirect, render_template, request, session, url_for

from engine.passwords import authenticate

from ..extensions import db
from . import blp
from .security import page, safe_next, sign_in

@blp.route("/login", methods=["GET", "POST"])
@page("session.login")
def login():
    if request.method == "GET":
        return render_template("login.html", next=safe_next(request.args.get("next")))
    user = authenticate(db.session, request.form.get("username", "").strip(), request.form.get("password", ""))
    if user is None:
        db.session.rollback()
        return render_template("login.html", next=safe_next(request.form.get("next")),
                               error="Unknown username or wrong password.",
                               username=request.form.get("username", "")), 401
    db.session.commit()  # a rehashed password
    sign_in(user)
    return redirect(safe_next(request.form.get("next")))


@blp.route("/logout", methods=["POST"])
@page("session.login")
def logout():
    session.clear()
    return redirect(url_for("pages.login"))
