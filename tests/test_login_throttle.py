"""Sign-in throttling: too many failed passwords for a username or from an address are refused with
429 before any password is checked, the same way for unknown usernames; with Redis every web process
shares the count."""
from __future__ import annotations

import uuid

import pytest

from engine.demo import demo_password

from .background_support import REDIS_URL
from .test_pages import csrf


def attempt(client, username: str, password: str):
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": csrf(page)})


def test_five_wrong_passwords_lock_the_username_even_for_the_right_one(app):
    client = app.test_client()
    for _ in range(5):
        assert attempt(client, "morgan", "guess-guess").status_code == 401
    locked = attempt(client, "morgan", demo_password("morgan"))
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins. Try again in 15 minutes." in locked.get_data(as_text=True)
    assert attempt(app.test_client(), "Morgan", demo_password("morgan")).status_code == 429  # any spelling
    # another person is not affected, and a success clears nothing of morgan's lock
    assert attempt(client, "casey", demo_password("casey")).status_code == 302


def test_unknown_usernames_are_throttled_alike(app):
    client = app.test_client()
    for _ in range(5):
        assert attempt(client, "nobody", "guess-guess").status_code == 401
    assert attempt(client, "nobody", "guess-guess").status_code == 429


def test_one_address_trying_many_usernames_is_stopped(api):
    app = api.with_settings(login_address_max_failures=3).app
    client = app.test_client()
    for name in ("a1", "a2", "a3"):
        assert attempt(client, name, "guess-guess").status_code == 401
    assert attempt(client, "alice", demo_password("alice")).status_code == 429


def test_the_lock_ends_with_its_window():
    from webui.pages.login_throttle import LoginThrottle

    now = [1000.0]
    throttle = LoginThrottle(max_failures=2, address_max_failures=10, window_seconds=900, clock=lambda: now[0])
    throttle.failed("ivan", "10.0.0.1")
    throttle.failed("ivan", "10.0.0.1")
    assert throttle.retry_after("ivan", "10.0.0.2") == 901  # locked for the rest of the window, any address
    now[0] += 600
    assert throttle.retry_after("ivan", None) == 301
    now[0] += 301
    assert throttle.retry_after("ivan", "10.0.0.1") is None


def test_a_success_resets_the_count(app):
    client = app.test_client()
    for _ in range(4):
        attempt(client, "sam", "guess-guess")
    assert attempt(client, "sam", demo_password("sam")).status_code == 302
    for _ in range(4):
        assert attempt(app.test_client(), "sam", "guess-guess").status_code == 401


@pytest.fixture
def redis_prefix(monkeypatch):
    """Counters of this test only, in the real Redis, removed afterwards."""
    import redis

    from webui.pages import login_throttle

    prefix = f"changeflow:test-login:{uuid.uuid4().hex}:"
    monkeypatch.setattr(login_throttle, "KEY_PREFIX", prefix)
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()  # fails, not skips, without Redis
    yield prefix
    for key in client.scan_iter(prefix + "*"):
        client.delete(key)


def test_with_redis_every_web_process_shares_the_count(api, redis_prefix):
    first, second = (api.with_settings(redis_url=REDIS_URL).app for _ in range(2))
    for app in (first, second, first, second, first):
        assert attempt(app.test_client(), "erin", "guess-guess").status_code == 401
    assert attempt(second.test_client(), "erin", demo_password("erin")).status_code == 429
    import redis

    keys = [k.decode() for k in redis.Redis.from_url(REDIS_URL).scan_iter(redis_prefix + "*")]
    assert keys and not any("erin" in k for k in keys)  # no usernames in Redis
