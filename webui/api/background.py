"""Background work for admins: the notification outbox (dead letters), jobs, webhook endpoints."""
from __future__ import annotations

from flask_smorest import Blueprint

from engine import notification_admin as admin
from engine.transactions import run_command

from ..auth import current_user, permission
from ..extensions import db
from . import schemas

blp = Blueprint("background", __name__, url_prefix="/api/admin",
                description="Notification outbox and dead letters, background jobs, webhook endpoints")


@blp.route("/outbox", methods=["GET"])
@permission("outbox.read")
@blp.arguments(schemas.OutboxQuery, location="query")
@blp.response(200, schemas.OutboxPage)
def outbox(query):
    """Notifications, newest first; `status=failed` is the dead-letter list (retries exhausted)."""
    return admin.list_outbox(db.session, current_user(), **query)


@blp.route("/outbox/<int:notification_id>/retry", methods=["POST"])
@permission("outbox.retry")
@blp.response(200, schemas.OutboxItem)
def retry_notification(notification_id):
    """Send a failed notification again (all attempts anew)."""
    user = current_user()
    return run_command(db.session, user, admin.retry_notification, user, notification_id)


@blp.route("/jobs", methods=["GET"])
@permission("job.read")
@blp.arguments(schemas.JobQuery, location="query")
@blp.response(200, schemas.JobPage)
def jobs(query):
    """Background jobs (deliveries, timers, service tasks, follow-up reminders), newest first."""
    return admin.list_jobs(db.session, current_user(), **query)


@blp.route("/jobs/<int:job_id>/retry", methods=["POST"])
@permission("job.retry")
@blp.response(200, schemas.JobItem)
def retry_job(job_id):
    """Run a failed job again, e.g. a service task after its external system is back."""
    user = current_user()
    return run_command(db.session, user, admin.retry_job, user, job_id)


@blp.route("/webhooks", methods=["GET"])
@permission("webhook.manage")
@blp.response(200, schemas.Webhook(many=True))
def webhooks():
    """Webhook endpoints (secrets are never shown again)."""
    return admin.list_webhooks(db.session, current_user())


@blp.route("/webhooks", methods=["POST"])
@permission("webhook.manage")
@blp.arguments(schemas.WebhookCreate)
@blp.response(201, schemas.WebhookCreated)
def create_webhook(fields):
    """Register a system to receive notifications as signed JSON POSTs; the secret is in this answer only."""
    user = current_user()
    endpoint, _secret = run_command(db.session, user, admin.create_webhook, user, fields)
    return endpoint  # WebhookCreated shows its secret: this once


@blp.route("/webhooks/<int:endpoint_id>", methods=["DELETE"])
@permission("webhook.manage")
@blp.response(204)
def delete_webhook(endpoint_id):
    """Stop delivering to an endpoint (it is kept, disabled, for the record)."""
    user = current_user()
    run_command(db.session, user, admin.delete_webhook, user, endpoint_id)
