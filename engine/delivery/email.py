"""Email over SMTP (host, port, STARTTLS or implicit TLS, optional login), or to .eml files when no
SMTP server is configured (the embedded demo: see `<instance>/mail`)."""
from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from functools import lru_cache
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from ..config import Settings
from ..db import utcnow

SmtpError = smtplib.SMTPException


@dataclass
class Outgoing:
    notification_id: int
    message: EmailMessage


def message_id(notification_id: int, sender: str) -> str:
    domain = sender.rpartition("@")[2] or "changeflow.invalid"
    return f"<notification-{notification_id}@{domain}>"


def compose(row, settings: Settings, link: str) -> Outgoing:
    sender = settings.smtp.sender if settings.smtp else "changeflow@localhost"
    if row.recipient is None or not row.recipient.email:
        raise SmtpError(f"{row.recipient.username if row.recipient else 'nobody'} has no email address")
    msg = EmailMessage()
    msg["Subject"] = row.subject
    msg["From"] = sender
    msg["To"] = row.recipient.email
    msg["Date"] = format_datetime(row.created_at or utcnow())
    msg["Message-ID"] = message_id(row.id, sender)  # stable across retries: receivers can drop duplicates
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Changeflow-Notification"] = str(row.id)
    msg["X-Changeflow-Event"] = row.kind
    greeting = f"Hello {row.recipient.display_name or row.recipient.username},\n\n"
    footer = (f"\nOpen the change: {link}\n"
              f"Your notification settings: {settings.base_url}/api/me/notifications\n"
              "-- \nChangeflow change management\n")
    msg.set_content(greeting + row.body + footer)
    return Outgoing(row.id, msg)


@lru_cache(maxsize=8)
def _tls_context(cafile: str | None) -> ssl.SSLContext:
    # Loading the CA bundle costs ~50 ms: once per process, not once per message.
    return ssl.create_default_context(cafile=cafile)


class Mailer:
    """Sends a batch of messages over one SMTP connection (a TLS handshake and login per message would
    cost more than the message), or drops them in the mail folder when no server is configured.

    A send that fails drops the connection; the next message opens a new one, so one refused
    message does not fail the rest of the batch.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self._client: smtplib.SMTP | None = None

    def send(self, outgoing: Outgoing) -> None:
        if self.settings.smtp is None:
            _drop(outgoing, self.settings)
            return
        try:
            if self._client is None:
                self._client = _connect(self.settings.smtp)
            self._client.send_message(outgoing.message)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.quit()
        except (OSError, SmtpError):
            client.close()

    def __enter__(self) -> "Mailer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _connect(smtp) -> smtplib.SMTP:
    if smtp.ssl:
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=_tls_context(smtp.cafile))
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    try:
        client.ehlo()
        if smtp.starttls and not smtp.ssl:
            client.starttls(context=_tls_context(smtp.cafile))
            client.ehlo()
        if smtp.username:
            client.login(smtp.username, smtp.password or "")
    except BaseException:
        client.close()
        raise
    return client


def _drop(outgoing: Outgoing, settings: Settings) -> None:
    folder = Path(settings.instance_dir) / "mail"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"notification-{outgoing.notification_id}.eml"
    temporary = target.with_suffix(".tmp")
    temporary.write_bytes(bytes(outgoing.message))
    temporary.replace(target)  # a crash never leaves half a message
