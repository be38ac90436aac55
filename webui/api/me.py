"""The caller's own settings: which notifications reach them on which channel."""
from __future__ import annotations

from flask import current_app
from flask_smorest import Blueprint

from engine import notification_admin as admin
from engine.transactions import run_command

from ..auth import current_user, permission
from ..extensions import db
from . import schemas

blp = Blueprint("me", __name__, url_prefix="/api/me", description="Your own notification preferences")


@blp.route("/notifications", methods=["GET"])
@permission("me.notifications")
@blp.response(200, schemas.Preferences)
def get_preferences():
    """Your channels, opt-outs and the notification kinds (mandatory ones cannot be switched off)."""
    return admin.preferences(current_user())


@blp.route("/notifications", methods=["PUT"])
@permission("me.notifications")
@blp.arguments(schemas.PreferencesUpdate)
@blp.response(200, schemas.Preferences)
def put_preferences(fields):
    """Opt out per channel (`email`, `webhook`) or per channel and kind (`email:window_reminder`);
    set or remove a personal webhook URL (its signing secret is in this answer only)."""
    user = current_user()
    settings = current_app.config["CHANGEFLOW_SETTINGS"]
    prefs, secret = run_command(db.session, user, admin.update_preferences, user, fields,
                                allow_private_webhooks=settings.webhook_allow_private)
    return {**prefs, **({"webhook_secret": secret} if secret else {})}
