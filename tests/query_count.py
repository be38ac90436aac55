"""Counting the SQL statements a request sends, for the query budgets in test_query_budget.py.

Statements are counted with a `before_cursor_execute` listener on the app's engine, so everything
that reaches the database counts, whichever session sent it. Jobs the InlineDispatcher runs right
after the commit (no Redis, as in the tests: deliveries, due timers, the conflict check) are kept
apart in `background`: in production a worker runs them, so they are no part of the request's time.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import event

from engine.jobs.dispatch import InlineDispatcher
from webui.extensions import db


@dataclass
class Statements:
    request: list[str] = field(default_factory=list)
    background: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.request)

    def report(self) -> str:
        """The statements, numbered, for an assertion message: what to look at when a budget breaks."""
        return "\n".join(f"{n:3d}. {' '.join(sql.split())[:200]}" for n, sql in enumerate(self.request, 1))


@contextmanager
def count_statements(app):
    """Yields the Statements sent while the block runs; len() of it is the request's own count."""
    with app.app_context():
        engine = db.engine
    seen = Statements()
    in_background = [0]
    dispatch = InlineDispatcher.dispatch

    def dispatch_counted_apart(self, jobs):
        in_background[0] += 1
        try:
            return dispatch(self, jobs)
        finally:
            in_background[0] -= 1

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        (seen.background if in_background[0] else seen.request).append(statement)

    InlineDispatcher.dispatch = dispatch_counted_apart
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        InlineDispatcher.dispatch = dispatch
