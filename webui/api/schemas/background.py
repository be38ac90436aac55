"""The outbox, jobs, webhook endpoints and notification preferences."""
from __future__ import annotations

from marshmallow import fields, validate

from engine.notification_admin import JOB_STATUSES, NOTIFICATION_STATUSES
from engine.notification_templates import TEMPLATES
from engine.outbox import CHANNELS

from .common import _NOT_BLANK, Strict, UsernameField


class Paging(Strict):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class OutboxQuery(Paging):
    status = fields.String(validate=validate.OneOf(NOTIFICATION_STATUSES),
                           metadata={"description": "failed: the dead-letter list"})
    channel = fields.String(validate=validate.OneOf(CHANNELS))
    change_id = fields.Integer(validate=validate.Range(min=1))


class OutboxItem(Strict):
    id = fields.Integer()
    kind = fields.String()
    channel = fields.String()
    recipient = UsernameField()
    endpoint = fields.Function(lambda n: n.endpoint.name if n.endpoint else None)
    change_id = fields.Integer(allow_none=True)
    subject = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    send_after = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class OutboxPage(Strict):
    items = fields.List(fields.Nested(OutboxItem))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class JobQuery(Paging):
    status = fields.String(validate=validate.OneOf(JOB_STATUSES))
    kind = fields.String(validate=validate.OneOf(("deliver", "timer", "service_task", "follow_up_due")))


class JobItem(Strict):
    id = fields.Integer()
    kind = fields.String()
    ref = fields.String()
    instance_id = fields.Integer(allow_none=True)
    change_id = fields.Integer(allow_none=True)
    status = fields.String()
    due_at = fields.DateTime()
    attempts = fields.Integer()
    worker = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)


class JobPage(Strict):
    items = fields.List(fields.Nested(JobItem))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class WebhookCreate(Strict):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=100), _NOT_BLANK])
    url = fields.String(required=True, validate=validate.Length(min=8, max=2000),
                        metadata={"description": "http(s) URL that receives signed JSON POSTs"})
    events = fields.List(fields.String(validate=validate.OneOf(tuple(TEMPLATES))), load_default=list,
                         metadata={"description": "notification kinds to receive; empty: all"})
    secret = fields.String(validate=validate.Length(min=16, max=128),
                           metadata={"description": "signing secret; generated when left out"})


class Webhook(Strict):
    id = fields.Integer()
    name = fields.String()
    url = fields.String()
    events = fields.List(fields.String())
    active = fields.Boolean()
    created_at = fields.DateTime()


class WebhookCreated(Webhook):
    secret = fields.String(metadata={"description": "shown once: verify X-Changeflow-Signature with it"})


class PreferencesUpdate(Strict):
    opt_out = fields.List(fields.String(validate=validate.Length(min=1, max=80)), validate=validate.Length(max=50),
                          metadata={"description": "channels (email, webhook) or channel:kind to switch off"})
    webhook_url = fields.String(allow_none=True, validate=validate.Length(max=2000),
                                metadata={"description": "personal webhook (e.g. chat); null removes it"})


class KindInfo(Strict):
    kind = fields.String()
    description = fields.String()
    mandatory = fields.Boolean()


class Preferences(Strict):
    opt_out = fields.List(fields.String())
    email = fields.String(allow_none=True)
    webhook_url = fields.String(allow_none=True)
    webhook_secret = fields.String(metadata={"description": "only when a webhook URL was just set: shown once"})
    channels = fields.List(fields.String())
    kinds = fields.List(fields.Nested(KindInfo))
