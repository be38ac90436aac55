"""Who is signed in, CSRF tokens, and the security headers of every page — in one place.

`page(action)` is the pages' counterpart of the API's `@permission`: it asks the same matrix, and
sends people who are not signed in to the login page instead of answering 401.
"""
from __future__ import annotations

import hmac
import secrets
from functools import wraps
from urllib.parse import urlsplit

from flask import abort, g, redirect, request, session, url_for

from engine import permissions
from engine.models import User

from ..extensions import db
from . import blp

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def signed_in_user() -> User | None:
    if "page_user" not in g:
        user_id = session.get("user_id")
        user = db.session.get(User, user_id) if user_id else None
        # a session outlives a password change or deactivation only until the next request
        if user is not None and (not user.active or session.get("pw") != _password_mark(user)):
            session.clear()
            user = None
        g.page_user = user
    return g.page_user


def _password_mark(user: User) -> str:
    return (user.password_hash or "")[-16:]


def sign_in(user: User) -> None:
    session.clear()  # a fresh session id: no fixation
    session["user_id"], session["pw"] = user.id, _password_mark(user)
    session["csrf"] = secrets.token_urlsafe(32)
    session.permanent = True


def safe_next(target: str | None) -> str:
    """Only paths on this site: an absolute URL in ?next= would make the login page an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("pages.inbox")


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def page(action: str):
    permissions.allowed_roles(action)  # fail at import time on a typo

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if "*" not in permissions.allowed_roles(action):
                user = signed_in_user()
                if user is None:
                    return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
                if not permissions.can(user, action):
                    abort(403, description=f"Your roles ({', '.join(user.roles) or 'none'}) do not allow '{action}'.")
            return view(*args, **kwargs)

        wrapper.permission_action = action
        return wrapper

    return decorate


@blp.before_request
def _check_csrf():
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.form.get("csrf_token", "")
    if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
        abort(400, description="The form expired or did not come from this site (CSRF check). Reload the page.")


@blp.after_app_request
def _security_headers(response):
    if request.blueprint == "pages" or request.path.startswith("/static/"):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


@blp.app_context_processor
def _template_globals():
    from .sso import sso_enabled

    return {"csrf_token": csrf_token, "me": signed_in_user, "sso_enabled": sso_enabled,
            "may": lambda action: permissions.can(signed_in_user(), action)}
