"""Who is calling, and may they? Routes declare their action with @permission; the matrix decides.

Put `@permission` right under `@blp.route`, above `@blp.arguments`: callers are refused before their
request body is looked at.

The action is also stored on the view function, so a test can walk the URL map and prove that no
route was added without a rule.
"""
from __future__ import annotations

from functools import wraps

from flask import abort, g, request

from engine import permissions
from engine.accounts import valid_token
from engine.models import User

from .extensions import db


def current_user() -> User | None:
    if "user" not in g:
        token = _bearer_token()
        g.user, g.token_scopes = (token.user, token.scopes) if token else (None, None)
    return g.user


def _bearer_token():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return valid_token(db.session, token.strip())
    return None


def permission(action: str):
    permissions.allowed_roles(action)  # fail at import time on a typo

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            roles = permissions.allowed_roles(action)
            if "*" not in roles:
                user = current_user()
                if user is None:
                    abort(401, description="Send a valid API token: 'Authorization: Bearer <token>'.")
                if not permissions.can(user, action):
                    abort(403, description=f"Your roles ({', '.join(user.roles) or 'none'}) do not allow '{action}'.")
                if g.token_scopes is not None and action not in g.token_scopes:
                    abort(403, description=f"This token is limited to {', '.join(g.token_scopes)}; "
                                           f"'{action}' needs another token.")
            return view(*args, **kwargs)

        wrapper.permission_action = action
        return wrapper

    return decorate
