"""A served worker moves its warmed-up caches out of the garbage collector's view, never mid-request."""
from __future__ import annotations

import gc
import threading

import pytest

from engine.heap import WarmHeap
from webui.server import FreezingMiddleware


@pytest.fixture(autouse=True)
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()  # give the rest of the test session its collector back


class Blocking:
    """A WSGI app whose requests wait until released, so a test can hold one in flight."""

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, environ, start_response):
        if environ.get("block"):
            self.started.set()
            self.release.wait(5)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


def request(app, **environ) -> None:
    body = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/", **environ}, lambda status, headers: None)
    assert list(body) == [b"ok"]


def test_the_heap_is_frozen_at_the_scheduled_request_counts_and_a_full_collection_then_walks_little():
    heap = WarmHeap(schedule=(3, 6))
    app = FreezingMiddleware(Blocking(), heap)
    cache = [{"spec": i, "children": [[i]]} for i in range(20_000)]  # what warming up fills

    for _ in range(2):
        request(app)
    assert heap.freezes == 0 and gc.get_freeze_count() == 0
    request(app)
    assert heap.freezes == 1
    frozen = gc.get_freeze_count()
    assert frozen > len(cache)  # the cache is among what a full collection no longer walks
    assert len(gc.get_objects()) < frozen / 10
    for _ in range(3):
        request(app)
    assert heap.freezes == 2
    for _ in range(50):
        request(app)
    assert heap.freezes == 2  # the schedule is spent: no more full collections on the request path


def test_no_freeze_while_another_request_is_in_flight():
    blocking = Blocking()
    heap = WarmHeap(schedule=(2,))
    app = FreezingMiddleware(blocking, heap)
    slow = threading.Thread(target=request, args=(app,), kwargs={"block": True})
    slow.start()
    assert blocking.started.wait(5)
    request(app)
    request(app)
    # The count is reached while the slow request is in flight: freezing now would freeze its
    # half-built objects.
    assert heap.freezes == 0 and gc.get_freeze_count() == 0
    blocking.release.set()
    slow.join(5)
    assert heap.freezes == 1  # frozen once the last one in flight finished


def test_a_request_that_fails_still_counts_and_leaves_nothing_in_flight():
    def failing(environ, start_response):
        raise RuntimeError("boom")

    heap = WarmHeap(schedule=(2,))
    app = FreezingMiddleware(failing, heap)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            app({}, None)
    assert heap.freezes == 1
