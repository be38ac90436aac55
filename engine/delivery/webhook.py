"""Outbound webhooks: a JSON POST signed with HMAC-SHA256.

Headers: `X-Changeflow-Event` (kind), `X-Changeflow-Delivery` (stable notification id: receivers
drop repeats), `X-Changeflow-Timestamp` (Unix seconds) and `X-Changeflow-Signature:
sha256=<hex>` — the HMAC of "<timestamp>.<body>" with the endpoint's secret. Any non-2xx answer
or network error is retried with backoff.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
import urllib.error
import urllib.parse
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
    personal: bool = False  # a user's own webhook: held to public addresses


def compose(row, url: str | None, secret: str, link: str, *, personal: bool = False) -> Outgoing:
    document = {"id": row.id, **row.payload, "url": link,
                "created_at": row.created_at.isoformat() if row.created_at else None}
    body = json.dumps(document, sort_keys=True, default=str).encode()
    return Outgoing(row.id, row.kind, url, secret, body, personal)


def private_address_problem(url: str) -> str | None:
    """Why `url` points into a private network (loopback, RFC 1918, link-local, …), or None."""
    host = urllib.parse.urlsplit(url).hostname
    if not host:
        return "the URL has no host"
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast \
                or ip.is_unspecified:
            return f"{host} resolves to {ip}, a private or local address"
    return None


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def send(outgoing: Outgoing, settings: Settings) -> None:
    if not outgoing.url:
        raise WebhookError("no webhook URL configured")
    if not outgoing.url.startswith(("https://", "http://")):
        raise WebhookError("webhook URLs must be http(s)")
    if outgoing.personal and not settings.webhook_allow_private:
        problem = private_address_problem(outgoing.url)
        if problem:
            raise WebhookError(f"refused: {problem}")
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
