"""Migrations upgrade a database that already holds data, on both backends, without losing it."""
from __future__ import annotations

from sqlalchemy import text

from engine import migrate
from engine.db import make_engine

from .conftest import POSTGRES_URL, _private_postgres_schema


def _seed_revision_0001(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, username, display_name, roles, active, created_at) "
                          "VALUES (1, 'alice', 'Alice', '[\"requester\"]', true, CURRENT_TIMESTAMP)"))
        conn.execute(text(
            "INSERT INTO changes (id, number, title, description, change_type, category, state, risk_reasons, "
            "impact, urgency, implementation_plan, rollback_plan, rollback_tested, test_plan, justification, "
            "emergency_reason, requester_id, created_at, updated_at) VALUES (1, 'CHG0000001', 'Old change', '', "
            "'normal', 'infrastructure', 'authorize', '[]', 2, 2, '', '', false, '', '', '', 1, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        conn.execute(text(
            "INSERT INTO approvals (change_id, task_id, step, approver_id, role, decision, comment, decided_at) "
            "VALUES (1, 't1', 'change_manager', 1, 'change_manager', 'approve', 'ok', CURRENT_TIMESTAMP)"))
    engine.dispose()


def _check_upgraded(url: str) -> None:
    engine = make_engine(url)
    with engine.connect() as conn:
        change = conn.execute(text("SELECT number, approval_round FROM changes")).one()
        approval = conn.execute(text("SELECT decision, round, comment FROM approvals")).one()
    engine.dispose()
    assert tuple(change) == ("CHG0000001", 0)
    assert tuple(approval) == ("approve", 1, "ok")


def test_upgrade_keeps_data_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    migrate.upgrade(url, "0001")
    _seed_revision_0001(url)
    migrate.upgrade(url)
    _check_upgraded(url)


def test_upgrade_keeps_data_on_postgresql():
    admin, schema, schema_url = _private_postgres_schema(POSTGRES_URL, prefix="cf_migration")
    try:
        migrate.upgrade(schema_url, "0001")
        _seed_revision_0001(schema_url)
        migrate.upgrade(schema_url)
        _check_upgraded(schema_url)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
