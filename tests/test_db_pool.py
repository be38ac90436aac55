"""Pooled PostgreSQL connections: pinged only after sitting idle, and replaced when the server dropped them."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.pool import NullPool

from engine import db as engine_db
from engine.db import make_engine

from .conftest import POSTGRES_URL


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _terminate(pid: int) -> None:
    from sqlalchemy import create_engine

    admin = create_engine(POSTGRES_URL, poolclass=NullPool)
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    admin.dispose()


def test_a_connection_the_server_dropped_while_idle_is_replaced_before_anyone_uses_it(monkeypatch):
    engine = make_engine(POSTGRES_URL)  # unreachable PostgreSQL fails the test here
    try:
        first = _backend_pid(engine)
        _terminate(first)
        monkeypatch.setattr(engine_db, "IDLE_PING_SECONDS", 0.0)  # as if it had sat idle long enough
        assert _backend_pid(engine) != first  # the query ran, on a new connection
    finally:
        engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged_so_one_caller_sees_the_drop_and_the_next_does_not(monkeypatch):
    """The trade-off of pinging only idle connections (docs/performance.md): when the server drops a
    busy connection, the one command using it fails once (a 503 / retry for a job) and the pool
    replaces every connection of that age, so the next command works."""
    import pytest
    from sqlalchemy.exc import DBAPIError

    engine = make_engine(POSTGRES_URL)
    try:
        first = _backend_pid(engine)
        _terminate(first)
        monkeypatch.setattr(engine_db, "IDLE_PING_SECONDS", 3600.0)
        with pytest.raises(DBAPIError) as failure:
            _backend_pid(engine)
        assert failure.value.connection_invalidated
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()


def test_sessions_run_in_utc_and_keep_the_options_of_the_database_url():
    """Timestamps come back as UTC whatever the server's zone; a URL's own options (here the
    search_path a deployment may use for its schema) still apply."""
    from datetime import timezone

    engine = make_engine(f"{POSTGRES_URL}?options=-csearch_path%3Dpg_catalog%2Cpublic%20-cstatement_timeout%3D5000")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW TimeZone")).scalar_one() == "UTC"
            assert conn.execute(text("SHOW search_path")).scalar_one() == "pg_catalog,public"
            assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "5s"
            now = conn.execute(text("SELECT now()")).scalar_one()
            assert now.tzinfo is timezone.utc
    finally:
        engine.dispose()
