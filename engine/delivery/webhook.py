"""Outbound webhooks: a JSON POST signed with HMAC-SHA256.

Headers: `X-Changeflow-Event` (kind), `X-Changeflow-Delivery` (stable notification id: receivers
drop repeats), `X-Changeflow-Timestamp` (Unix seconds) and `X-Changeflow-Signature:
sha256=<hex>` — the HMAC of "<timestamp>.<body>" with the endpoint's secret. Any non-2xx answer
or network error is retried with backoff.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from ..config import Settings


class WebhookError(Exception):
    pass


@dataclass
class Outgoing:
    notification_id: int
    kind: str
    url: str | None
    secret: str
    body: bytes


def compose(row, url: str | None, secret: str, link: str) -> Outgoing:
    document = {"id": row.id, **row.payload, "url": link,
                "created_at": row.created_at.isoformat() if row.created_at else None}
    body = json.dumps(document, sort_keys=True, default=str).encode()
    return Outgoing(row.id, row.kind, url, secret, body)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def send(outgoing: Outgoing, settings: Settings) -> None:
    if not outgoing.url:
        raise WebhookError("no webhook URL configured")
    if not outgoing.url.startswith(("https://", "http://")):
        raise WebhookError("webhook URLs must be http(s)")
    timestamp = str(int(time.time()))
    request = urllib.request.Request(outgoing.url, data=outgoing.body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "Changeflow-Webhook/1",
        "X-Changeflow-Event": outgoing.kind, "X-Changeflow-Delivery": str(outgoing.notification_id),
        "X-Changeflow-Timestamp": timestamp,
        "X-Changeflow-Signature": signature(outgoing.secret, timestamp, outgoing.body)})
    try:
        with urllib.request.urlopen(request, timeout=settings.webhook_timeout) as response:  # noqa: S310 (scheme checked)
            if not 200 <= response.status < 300:
                raise WebhookError(f"HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        raise WebhookError(f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise WebhookError(str(exc.reason)) from None
