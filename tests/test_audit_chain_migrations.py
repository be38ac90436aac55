"""Migrations never drop audit data, and the one that added the hash chain chained what was there."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from sqlalchemy import select, text

from engine import audit, migrate
from engine.audit_chain import verify
from engine.db import make_engine
from engine.models import AuditEvent

from .conftest import POSTGRES_URL, _private_postgres_schema

MIGRATIONS = Path(migrate.MIGRATIONS_DIR) / "versions"

AUDIT_DESTRUCTION = re.compile(
    r"\b(DELETE\s+FROM|TRUNCATE(\s+TABLE)?|DROP\s+TABLE(\s+IF\s+EXISTS)?)\s+\"?audit_events\b", re.IGNORECASE)


def _destructive_calls(function: ast.FunctionDef) -> list[str]:
    """Calls in `function` that would drop audit data: the table, a column of it, or rows."""
    found = []

    def visit(node, table=None):
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "batch_alter_table":
                    table = _first_string(call)
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            target = _first_string(node)
            if name in ("drop_table", "drop_column") and (target == "audit_events" or
                                                          (name == "drop_column" and table == "audit_events")):
                found.append(f"line {node.lineno}: {name}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and AUDIT_DESTRUCTION.search(node.value):
            found.append(f"line {node.lineno}: {node.value.strip()[:60]}")
        for child in ast.iter_child_nodes(node):
            visit(child, table)

    visit(function)
    return found


def _first_string(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant):
        return call.args[0].value
    return None


def test_no_migration_drops_audit_data():
    files = sorted(MIGRATIONS.glob("*.py"))
    assert len(files) >= 8
    problems = []
    for path in files:
        tree = ast.parse(path.read_text())
        functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
        scanned = ["upgrade"]
        if path.name != "0001_initial_schema.py":  # its downgrade is the teardown of the whole schema
            scanned.append("downgrade")
        for name in scanned:
            problems += [f"{path.name} {name}() {p}" for p in _destructive_calls(functions[name])]
    assert problems == []


def test_the_scan_finds_what_it_looks_for():
    tree = ast.parse('''
def upgrade():
    op.drop_table('audit_events')
    with op.batch_alter_table('audit_events') as batch_op:
        batch_op.drop_column('data')
    op.execute("DELETE FROM audit_events WHERE kind = 'x'")
    op.drop_column('audit_events', 'actor')
    with op.batch_alter_table('changes') as batch_op:
        batch_op.drop_column('old')
''')
    assert len(_destructive_calls(tree.body[0])) == 4


def _seed_events_at_0007(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, username, display_name, roles, active, created_at) "
                          "VALUES (1, 'alice', 'Alice', '[\"requester\"]', true, CURRENT_TIMESTAMP)"))
        for change_id in (1, 2):
            conn.execute(text(
                "INSERT INTO changes (id, number, title, description, change_type, category, state, risk_reasons, "
                "impact, urgency, implementation_plan, rollback_plan, rollback_tested, test_plan, justification, "
                "emergency_reason, requester_id, created_at, updated_at, approval_round) VALUES (:id, :number, "
                "'Old change', '', 'normal', 'infrastructure', 'authorize', '[]', 2, 2, '', '', false, '', '', '', "
                "1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)"), {"id": change_id, "number": f"CHG000000{change_id}"})
        # interleaved chains, as history really is
        for n, (change_id, kind) in enumerate([(None, "user_created"), (1, "change_created"), (2, "change_created"),
                                               (1, "state_changed"), (None, "token_created"),
                                               (1, "task_completed")], start=1):
            conn.execute(text("INSERT INTO audit_events (at, actor_id, actor, kind, change_id, data) "
                              "VALUES (CURRENT_TIMESTAMP, 1, 'alice', :kind, :change, :data)"),
                         {"kind": kind, "change": change_id, "data": '{"n": %d, "é": [1]}' % n})
    engine.dispose()


def _check_backfilled(url: str) -> None:
    from sqlalchemy.orm import Session

    engine = make_engine(url)
    with Session(engine) as session:
        rows = session.execute(select(AuditEvent.id, AuditEvent.chain, AuditEvent.seq)
                               .order_by(AuditEvent.id)).all()
        assert [tuple(r) for r in rows] == [(1, "system", 1), (2, "change:1", 1), (3, "change:2", 1),
                                            (4, "change:1", 2), (5, "system", 2), (6, "change:1", 3)]
        result = verify(session)
        assert result.ok and (result.events, result.chains) == (6, 3), [b.describe() for b in result.breaks]
        # and the application goes on from there
        audit.record(session, "note", change_id=1, data={"after": "upgrade"})
        session.commit()
        assert session.scalar(select(AuditEvent.seq).where(AuditEvent.kind == "note")) == 4
        assert verify(session).ok
    engine.dispose()


def test_upgrade_chains_existing_events_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    migrate.upgrade(url, "0007")
    _seed_events_at_0007(url)
    migrate.upgrade(url)
    _check_backfilled(url)


def test_upgrade_chains_existing_events_on_postgresql():
    admin, schema, schema_url = _private_postgres_schema(POSTGRES_URL, prefix="cf_audit_chain")
    try:
        migrate.upgrade(schema_url, "0007")
        _seed_events_at_0007(schema_url)
        migrate.upgrade(schema_url)
        _check_backfilled(schema_url)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
