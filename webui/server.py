"""Running the app under gunicorn from `changeflow serve` (docker-compose uses the same command)."""
from __future__ import annotations

import os

from gunicorn.app.base import BaseApplication

from engine.heap import WarmHeap, freeze

GIL_SWITCH_SECONDS = 0.0005


def default_workers() -> int:
    """Two worker processes per core (of two threads each): the threads of one process share its GIL,
    so four requests in one process compute on one core while another process may sit idle, and
    clients keep their connection to the process they first reached. Measured at 16 clients on two
    cores: p99 161-167 ms with 4 x 2 against 196-208 ms with 2 x 4 (docs/performance.md)."""
    return 2 * (os.cpu_count() or 1)


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from . import create_app
        from .background import dispatcher

        app = create_app()
        if not app.config["CHANGEFLOW_SETTINGS"].redis_url:
            # No workers without Redis: each web worker fires due timers itself (claims keep it once).
            dispatcher(app).start_timer_thread()
        # What the app loaded (modules, specs, schemas) lives as long as the worker: moved out of
        # the collector's view, a full collection no longer walks it, which was most of the
        # 55-75 ms latency spikes in the queries-at-scale benchmark.
        import sys

        freeze()
        app.wsgi_app = FreezingMiddleware(app.wsgi_app)  # and again once the caches have filled
        # A request thread back from a database round trip waits for the GIL until the thread holding
        # it is made to let go: 5 ms by default, once per statement, while another request computes.
        # Measured at 16 clients: p99 lower in 3 of 4 pairs, within the host's drift (docs/performance.md).
        sys.setswitchinterval(GIL_SWITCH_SECONDS)
        return app


def run_gunicorn(bind: str, *, workers: int, threads: int) -> None:
    _Gunicorn({"bind": bind, "workers": workers, "threads": threads, "worker_class": "gthread",
               "accesslog": "-", "timeout": 60}).run()


class FreezingMiddleware:
    """Each request is a unit of work for `engine.heap.WarmHeap`: the heap is frozen again when idle
    after the 50th, 500th and 5,000th."""

    def __init__(self, app, heap: WarmHeap | None = None):
        self.app = app
        self.heap = heap or WarmHeap()

    def __call__(self, environ, start_response):
        with self.heap.working():
            return self.app(environ, start_response)
