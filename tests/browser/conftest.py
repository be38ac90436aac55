"""Browser tests: Playwright (Python) driving Debian's Chromium against the app served on localhost.

The browser is never downloaded: it is /usr/bin/chromium (`apt-get install chromium`; override with
CHANGEFLOW_CHROMIUM). Each test gets the seeded app of tests/conftest.py served by a threaded
werkzeug server on a free port, a fresh browser context at 1280 px, and fails on any JavaScript error
or Content-Security-Policy violation the page reports. Screenshots go to test-artifacts/screenshots/.
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from engine.config import PROJECT_ROOT
from engine.demo import demo_password

CHROMIUM = os.environ.get("CHANGEFLOW_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
VENDOR = PROJECT_ROOT / "webui" / "static" / "vendor"


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    assert (VENDOR / ".built").exists(), "the front-end bundles are missing: run `make frontend` (or make test)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


class Browser:
    """One person's browser: a context of its own (cookies), its pages' errors collected."""

    def __init__(self, chromium, base_url: str, request, width: int = 1280, height: int = 900):
        self.base_url = base_url
        self.test_name = re.sub(r"[^\w.-]+", "_", request.node.name)
        self.context = chromium.new_context(base_url=base_url, viewport={"width": width, "height": height})
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("console", self._console)
        self.page.on("response", self._response)

    def _console(self, message) -> None:
        # 4xx answers are logged by the browser too; they are the pages' expected refusals and form
        # errors (422), so only server errors and missing assets count, from _response
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console: {message.text}")

    def _response(self, response) -> None:
        if response.status >= 500 or (response.status == 404 and "/static/" in response.url):
            self.problems.append(f"{response.status} {response.request.method} {response.url}")

    def sign_in(self, username: str) -> None:
        self.page.goto("/login")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(demo_password(username))
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(re.compile(r"/inbox"))

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.test_name}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def browser_for(chromium, live_server, request):
    """`browser_for("morgan")` — a signed-in browser per person; all fail the test on page errors."""
    opened: list[Browser] = []

    def open_for(username: str | None = None, **size) -> Browser:
        browser = Browser(chromium, live_server, request, **size)
        opened.append(browser)
        if username:
            browser.sign_in(username)
        return browser

    yield open_for
    problems = [p for b in opened for p in b.problems]
    for browser in opened:
        browser.close()
    assert not problems, "the pages reported errors:\n" + "\n".join(problems)
