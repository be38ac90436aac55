"""Real peers for background-work tests: an SMTP server and a webhook receiver in this process, and
`changeflow worker` processes against the real Redis and PostgreSQL."""
from __future__ import annotations

import email
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from engine.config import PROJECT_ROOT

REDIS_URL = os.environ.get("CHANGEFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class MailSink:
    """aiosmtpd handler: keeps every message it accepted, and the connection (client address) each came
    over. `hold` makes MAIL FROM wait until released; `refuse` names recipients answered 550; `delay`
    makes each DATA take that many seconds (a slow server)."""

    def __init__(self):
        self.messages: list[email.message.Message] = []
        self.peers: dict[str, tuple] = {}  # Message-ID -> the client's (host, port)
        self.lock = threading.Lock()
        self.hold = threading.Event()
        self.holding = threading.Event()  # set while a client is held at MAIL FROM
        self.hold.set()
        self.refuse: set[str] = set()
        self.delay = 0.0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if not self.hold.is_set():
            self.holding.set()
            import asyncio

            while not self.hold.is_set():
                await asyncio.sleep(0.05)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        message = email.message_from_bytes(envelope.content)
        with self.lock:
            self.messages.append(message)
            self.peers[message["Message-ID"]] = session.peer
        return "250 Message accepted for delivery"

    def ids(self) -> list[str]:
        with self.lock:
            return [m["Message-ID"] for m in self.messages]


class SmtpServer:
    """A real SMTP server on localhost; optionally STARTTLS-only with LOGIN/PLAIN authentication."""

    def __init__(self, port: int | None = None, *, tls_context=None, credentials: tuple[str, str] | None = None):
        self.sink = MailSink()
        self.port = port or free_port()
        kwargs = {}
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        if credentials:
            def authenticate(server, session, envelope, mechanism, auth_data):
                ok = isinstance(auth_data, LoginPassword) and \
                    (auth_data.login.decode(), auth_data.password.decode()) == credentials
                return AuthResult(success=ok, handled=False)
            kwargs.update(authenticator=authenticate, auth_required=True)
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.sink.hold.set()
        self.controller.stop()


class DroppingServer:
    """Accepts TCP connections and closes them at once (an SMTP server that is down), noting when."""

    def __init__(self):
        self.port = free_port()
        self.attempts: list[float] = []
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", self.port))
        self._socket.listen(16)
        self._socket.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except OSError:
                continue
            self.attempts.append(time.monotonic())
            conn.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._socket.close()


class WebhookReceiver:
    """An HTTP server that records POSTs; `status` is what it answers (e.g. 500 to make deliveries fail)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                          "json": json.loads(body or b"null")})
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class Worker:
    """`changeflow worker` in its own process group, so SIGKILL takes it down like a lost machine."""

    def __init__(self, env: dict, log: Path, name: str, args: tuple[str, ...] = ()):
        self.env, self.log, self.name, self.args = env, log, name, args
        self.process: subprocess.Popen | None = None

    def start(self) -> "Worker":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "webui.cli", "worker", "--name", self.name, *self.args],
                                        cwd=PROJECT_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        return self

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class PrivateRedis:
    """A redis-server of the test's own on a free port, so it can be killed and restarted."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> "PrivateRedis":
        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from redis import Redis

        wait_until(lambda: _pings(Redis.from_url(self.url)), timeout=10, what="redis-server to start")
        return self

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            self.kill()


def _pings(connection) -> bool:
    try:
        return connection.ping()
    except Exception:  # noqa: BLE001 — not up yet
        return False
