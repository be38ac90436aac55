"""Admin pages: the notification outbox and its dead letters."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from engine import notification_admin, permissions
from engine.errors import ChangeflowError
from engine.notification_admin import NOTIFICATION_STATUSES
from engine.transactions import run_command

from ..extensions import db
from . import blp
from .security import page, signed_in_user

@blp.route("/admin/outbox", methods=["GET"])
@page("outbox.read")
def outbox():
    """The notification outbox; `?status=failed` is the dead-letter list, each with a Retry button."""
    status = request.args.get("status") or None
    if status and status not in NOTIFICATION_STATUSES:
        abort(400, description=f"Unknown status '{status}'; use one of {', '.join(NOTIFICATION_STATUSES)}.")
    page_no = max(request.args.get("page", 1, type=int), 1)
    listing = notification_admin.list_outbox(db.session, signed_in_user(), status=status, page=page_no, per_page=50)
    return render_template("outbox.html", listing=listing, status=status, statuses=NOTIFICATION_STATUSES,
                           may_retry=permissions.can(signed_in_user(), "outbox.retry"))


@blp.route("/admin/outbox/<int:notification_id>/retry", methods=["POST"])
@page("outbox.retry")
def retry_notification(notification_id):
    user = signed_in_user()
    try:
        run_command(db.session, user, notification_admin.retry_notification, user, notification_id)
        flash(f"Notification {notification_id} is queued again.", "ok")
    except ChangeflowError as error:
        flash(error.message, "error")
    return redirect(url_for("pages.outbox", status="failed"))
