"""Sign-in throttling: after too many failed passwords for one username, or from one client address,
within a window, further attempts are refused (429) before any password is checked — whether or not
the username exists, so the refusal reveals nothing.

With Redis (REDIS_URL) the counters are shared by every web process; without it (the embedded demo)
each process counts for itself. Counter keys carry a hash of the username, never the name itself.
"""
from __future__ import annotations

import hashlib
import threading
import time

KEY_PREFIX = "changeflow:login-failures:"


class LoginThrottle:
    def __init__(self, *, max_failures: int, address_max_failures: int, window_seconds: float,
                 redis_url: str | None = None, clock=time.monotonic):
        self.limits = {"user": max_failures, "address": address_max_failures}
        self.window = window_seconds
        self._memory = _MemoryCounters(window_seconds, clock)
        self._redis = _RedisCounters(redis_url, window_seconds) if redis_url else None

    def retry_after(self, username: str, address: str | None) -> int | None:
        """Seconds until this person may try again, or None when they may try now."""
        waits = [self._call("blocked_for", key, self.limits[kind]) for kind, key in self._keys(username, address)]
        waits = [w for w in waits if w]
        return max(waits) if waits else None

    def failed(self, username: str, address: str | None) -> None:
        for _kind, key in self._keys(username, address):
            self._call("add", key)

    def succeeded(self, username: str) -> None:
        self._call("clear", self._user_key(username))

    def _call(self, method: str, *args):
        # Redis down must not lock everyone out, nor stop counting: this process counts meanwhile
        if self._redis is not None:
            import redis

            try:
                return getattr(self._redis, method)(*args)
            except redis.RedisError:
                pass
        return getattr(self._memory, method)(*args)

    def _keys(self, username: str, address: str | None):
        yield "user", self._user_key(username)
        if address:
            yield "address", "address:" + address

    @staticmethod
    def _user_key(username: str) -> str:
        return "user:" + hashlib.sha256(username.strip().lower().encode("utf-8")).hexdigest()[:32]


class _MemoryCounters:
    """Fixed windows per key: (count, window end)."""

    def __init__(self, window: float, clock):
        self.window, self.clock = window, clock
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def add(self, key: str) -> None:
        with self._lock:
            count, ends = self._current(key)
            self._counts[key] = (count + 1, ends if count else self.clock() + self.window)

    def blocked_for(self, key: str, limit: int) -> int | None:
        with self._lock:
            count, ends = self._current(key)
        return max(int(ends - self.clock()) + 1, 1) if count >= limit else None

    def clear(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)

    def _current(self, key: str) -> tuple[int, float]:
        count, ends = self._counts.get(key, (0, 0.0))
        if count and ends <= self.clock():
            self._counts.pop(key, None)
            return 0, 0.0
        return count, ends


class _RedisCounters:
    def __init__(self, url: str, window: float):
        import redis

        self.redis = redis.Redis.from_url(url, socket_timeout=2)
        self.window = max(int(window), 1)

    def add(self, key: str) -> None:
        pipe = self.redis.pipeline()
        pipe.incr(KEY_PREFIX + key)
        pipe.expire(KEY_PREFIX + key, self.window, nx=True)
        pipe.execute()

    def blocked_for(self, key: str, limit: int) -> int | None:
        pipe = self.redis.pipeline()
        pipe.get(KEY_PREFIX + key)
        pipe.ttl(KEY_PREFIX + key)
        count, ttl = pipe.execute()
        return max(ttl, 1) if count is not None and int(count) >= limit else None

    def clear(self, key: str) -> None:
        self.redis.delete(KEY_PREFIX + key)


def throttle_for(app) -> LoginThrottle:
    if "changeflow.login_throttle" not in app.extensions:
        settings = app.config["CHANGEFLOW_SETTINGS"]
        app.extensions["changeflow.login_throttle"] = LoginThrottle(
            max_failures=settings.login_max_failures, address_max_failures=settings.login_address_max_failures,
            window_seconds=settings.login_window_seconds, redis_url=settings.redis_url)
    return app.extensions["changeflow.login_throttle"]
