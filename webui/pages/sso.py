"""Optional single sign-on through OpenID Connect (authorization code flow with PKCE, state and
nonce, by authlib). Off unless CHANGEFLOW_OIDC_ISSUER is set; then the sign-in page offers it beside
the password form.

The identity provider says who someone is, never what they may do: the ID token's username claim
(`preferred_username` by default) must name an active Changeflow user, whose roles stay managed
here. Nobody is created on first sign-in — an admin creates the user first.
"""
from __future__ import annotations

from flask import abort, current_app, redirect, render_template, request, session

from engine.models import User

from ..extensions import db
from . import blp
from .security import page, safe_next, sign_in

CALLBACK = "/login/sso/callback"


def sso_enabled() -> bool:
    return bool(current_app.config["CHANGEFLOW_SETTINGS"].oidc_issuer)


def _client():
    """The app's authlib client, registered on first use (discovery is fetched lazily by authlib)."""
    if "changeflow.oidc" not in current_app.extensions:
        from authlib.integrations.flask_client import OAuth

        settings = current_app.config["CHANGEFLOW_SETTINGS"]
        oauth = OAuth(current_app)
        oauth.register(
            "sso", client_id=settings.oidc_client_id, client_secret=settings.oidc_client_secret,
            server_metadata_url=f"{settings.oidc_issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256", "timeout": 10})
        current_app.extensions["changeflow.oidc"] = oauth
    return current_app.extensions["changeflow.oidc"].sso


@blp.route("/login/sso", methods=["GET"])
@page("session.login")
def sso_start():
    if not sso_enabled():
        abort(404)
    session["sso_next"] = safe_next(request.args.get("next"))
    base = current_app.config["CHANGEFLOW_SETTINGS"].base_url
    return _client().authorize_redirect(base + CALLBACK)


@blp.route(CALLBACK, methods=["GET"])
@page("session.login")
def sso_callback():
    if not sso_enabled():
        abort(404)
    from authlib.integrations.base_client import OAuthError
    from joserfc.errors import JoseError

    settings = current_app.config["CHANGEFLOW_SETTINGS"]
    try:
        # exchanges the code, then checks the ID token's signature (JWKS), issuer, audience, expiry, nonce
        token = _client().authorize_access_token()
    except (OAuthError, JoseError, ValueError) as error:
        current_app.logger.warning("single sign-on refused: %s", error)
        return _refused("The sign-in with single sign-on did not complete. Try again."), 400
    claims = token.get("userinfo") or {}
    username = str(claims.get(settings.oidc_username_claim) or "").strip()
    user = db.session.query(User).filter_by(username=username).one_or_none() if username else None
    if user is None or not user.active:
        return _refused(f"There is no active Changeflow account for '{username or '?'}'. "
                        "Ask an administrator to create it."), 403
    target = session.pop("sso_next", None)
    sign_in(user)
    return redirect(safe_next(target))


def _refused(message: str) -> str:
    return render_template("login.html", next=safe_next(None), error=message)
