"""Signing in and out of the pages."""
from __future__ import annotations

from flask import current_app, redirect, render_template, request, session, url_for

from engine.passwords import authenticate

from ..extensions import db
from . import blp
from .login_throttle import throttle_for
from .security import page, safe_next, sign_in

@blp.route("/login", methods=["GET", "POST"])
@page("session.login")
def login():
    if request.method == "GET":
        return render_template("login.html", next=safe_next(request.args.get("next")))
    username, address = request.form.get("username", "").strip(), request.remote_addr
    throttle = throttle_for(current_app)
    wait = throttle.retry_after(username, address)
    if wait:
        minutes = -(-wait // 60)
        answer = render_template("login.html", next=safe_next(request.form.get("next")), username=username,
                                 error=f"Too many failed sign-ins. Try again in {minutes} minute{'s' * (minutes != 1)}.")
        return answer, 429, {"Retry-After": str(wait)}
    user = authenticate(db.session, username, request.form.get("password", ""))
    if user is None:
        db.session.rollback()
        throttle.failed(username, address)
        return render_template("login.html", next=safe_next(request.form.get("next")),
                               error="Unknown username or wrong password.", username=username), 401
    db.session.commit()  # a rehashed password
    throttle.succeeded(username)
    sign_in(user)
    return redirect(safe_next(request.form.get("next")))


@blp.route("/logout", methods=["POST"])
@page("session.login")
def logout():
    session.clear()
    return redirect(url_for("pages.login"))
