"""Email over SMTP (host, port, STARTTLS or implicit TLS, optional login), or to .eml files when no
SMTP server is configured (the embedded demo: see `<instance>/mail`)."""
from __future__ import annotations

import binascii
import re
import smtplib
import ssl
from dataclasses import dataclass
from email.header import Header
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path

from ..config import Settings
from ..db import utcnow

SmtpError = smtplib.SMTPException
CRLF = "\r\n"
_LINE_BREAKS = re.compile(r"[\r\n]+")


@dataclass
class Outgoing:
    notification_id: int
    sender: str
    recipient: str
    data: bytes  # the whole message, headers and body, CRLF line ends, as it goes over the wire


def message_id(notification_id: int, sender: str) -> str:
    domain = sender.rpartition("@")[2] or "changeflow.invalid"
    return f"<notification-{notification_id}@{domain}>"


def compose(row, settings: Settings, link: str) -> Outgoing:
    sender = settings.smtp.sender if settings.smtp else "changeflow@localhost"
    if row.recipient is None or not row.recipient.email:
        raise SmtpError(f"{row.recipient.username if row.recipient else 'nobody'} has no email address")
    greeting = f"Hello {row.recipient.display_name or row.recipient.username},\n\n"
    footer = (f"\nOpen the change: {link}\n"
              f"Your notification settings: {settings.base_url}/api/me/notifications\n"
              "-- \nChangeflow change management\n")
    headers = {
        "Subject": row.subject,
        "From": sender,
        "To": row.recipient.email,
        "Date": format_datetime(row.created_at or utcnow()),
        "Message-ID": message_id(row.id, sender),  # stable across retries: receivers can drop duplicates
        "Auto-Submitted": "auto-generated",
        "X-Changeflow-Notification": str(row.id),
        "X-Changeflow-Event": row.kind,
    }
    return Outgoing(row.id, sender, row.recipient.email, plain_text_message(headers, greeting + row.body + footer))


def plain_text_message(headers: dict[str, str], text: str) -> bytes:
    """A text/plain UTF-8 message (RFC 5322 / MIME), written directly.

    The standard library's EmailMessage parses every header it is given into an object and back,
    ~1.5 ms a message (more than the rest of a delivery); these headers are our own, so they are
    written as they are: made one line (a title cannot inject a header), RFC 2047-encoded when not
    ASCII. The body goes as 7bit when it can, quoted-printable otherwise.
    """
    lines = [_header(name, value) for name, value in headers.items()]
    body = CRLF.join(text.splitlines()) + CRLF
    if body.isascii() and all(len(line) <= 998 for line in text.splitlines()):
        encoding, payload = "7bit", body.encode("ascii")
    else:
        encoding = "quoted-printable"
        payload = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True).replace(b"\n", b"\r\n")
        payload += b"" if payload.endswith(b"\r\n") else b"\r\n"
    lines += ["MIME-Version: 1.0", 'Content-Type: text/plain; charset="utf-8"', f"Content-Transfer-Encoding: {encoding}"]
    return (CRLF.join(lines) + CRLF + CRLF).encode("utf-8") + payload


def _header(name: str, value: str) -> str:
    value = _LINE_BREAKS.sub(" ", value).strip()
    if not value.isascii() and name not in ("From", "To"):  # addresses stay as they are (SMTPUTF8)
        value = Header(value, "utf-8", header_name=name).encode(linesep=CRLF)
    return f"{name}: {value}"


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
            options = () if outgoing.recipient.isascii() else ("SMTPUTF8",)
            self._client.sendmail(outgoing.sender, [outgoing.recipient], outgoing.data, mail_options=options)
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
    temporary.write_bytes(outgoing.data)
    temporary.replace(target)  # a crash never leaves half a message
