"""The audit trail is a hash chain: editing, deleting or reordering an event in the database shows.

Migrations and the audit trail: tests/test_audit_chain_migrations.py."""
from __future__ import annotations

import re
import threading
import time

import pytest
from sqlalchemy import func, select, text

from engine.audit_chain import GENESIS, chain_of, event_hash, verify
from engine.db import make_engine
from engine.models import AuditEvent, Change
from webui.extensions import db

from .test_cli import run_cli


def _moved_change(api) -> dict:
    """A change submitted and approved: several events in its chain."""
    change = api.submit()
    api.act("morgan", change["id"], {"decision": "approve", "comment": "Fine."})
    return change


def _verify(api, change_id: int | None = None):
    with api.app.app_context():
        change = db.session.get(Change, change_id) if change_id else None
        result = verify(db.session, change)
        db.session.remove()
    return result


def _events(api, change_id: int) -> list[tuple[int, int]]:
    """(id, seq) of the change's events in chain order."""
    with api.app.app_context():
        rows = db.session.execute(select(AuditEvent.id, AuditEvent.seq).where(
            AuditEvent.chain == chain_of(change_id)).order_by(AuditEvent.seq)).all()
        db.session.remove()
    return [tuple(row) for row in rows]


def _sql(api, statement: str, **params) -> None:
    """Someone with database access edits history behind the application's back."""
    with api.app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text(statement), params)


def _cli_verify(api, database_url, tmp_path, *args):
    return run_cli("audit", "verify", *args, database_url=database_url, tmp_path=tmp_path, check=False)


# -- writing ---------------------------------------------------------------------------------------

def test_events_chain_as_a_change_moves_and_the_trace_carries_the_hashes(api):
    change = _moved_change(api)
    trace = api.trace(change["id"])
    events = trace["events"]
    assert len(events) >= 5
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["prev_hash"] == GENESIS and events[0]["kind"] == "change_created"
    for before, after in zip(events, events[1:]):
        assert after["prev_hash"] == before["hash"]
    assert all(re.fullmatch(r"[0-9a-f]{64}", e["hash"]) for e in events)
    assert len({e["hash"] for e in events}) == len(events)
    assert trace["audit_chain"] == {"chain": f"change:{change['id']}", "events": len(events),
                                    "head_hash": events[-1]["hash"], "intact": True, "first_broken": None}

    result = _verify(api)
    with api.app.app_context():
        total = db.session.scalar(select(func.count()).select_from(AuditEvent))
        chains = db.session.scalar(select(func.count(func.distinct(AuditEvent.chain))))
    assert result.ok and (result.events, result.chains) == (total, chains)
    assert result.heads[f"change:{change['id']}"] == events[-1]["hash"]


def test_events_about_no_change_share_the_system_chain(api):
    with api.app.app_context():
        from engine.accounts import create_user

        create_user(db.session, "dana", ["requester"])
        create_user(db.session, "eli", ["requester"])
        db.session.commit()
        rows = db.session.execute(select(AuditEvent.chain, AuditEvent.seq, AuditEvent.data)
                                  .where(AuditEvent.kind == "user_created").order_by(AuditEvent.id)).all()
        db.session.remove()
    dana, eli = rows[-2:]
    assert dana.chain == eli.chain == "system" and eli.seq == dana.seq + 1
    assert _verify(api).ok


def test_the_change_page_shows_the_chain(app, api):
    from .test_pages import sign_in

    change = _moved_change(api)
    client = app.test_client()
    sign_in(client, "audrey")
    html = client.get(f"/changes/{change['number']}").get_data(as_text=True)
    head = api.trace(change["id"])["audit_chain"]["head_hash"]
    assert "Audit chain intact" in html and head[:12] in html


# -- tampering -------------------------------------------------------------------------------------

def test_an_edited_event_is_named_by_the_cli_and_the_engine(api, database_url, tmp_path):
    change = _moved_change(api)
    other = _moved_change(api)
    ok = _cli_verify(api, database_url, tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert re.fullmatch(r"ok: \d+ events in \d+ chains\n", ok.stdout)

    edited, _ = _events(api, change["id"])[2]
    _sql(api, "UPDATE audit_events SET data = :data WHERE id = :id", data='{"decision": "approve"}', id=edited)

    result = _cli_verify(api, database_url, tmp_path)
    assert result.returncode == 1
    broken = [line for line in result.stdout.splitlines() if line.startswith("broken:")]
    assert len(broken) == 1  # the other change's chain is fine
    assert f"event {edited} ({change['number']}, change:{change['id']} seq 3," in broken[0]
    assert "content changed" in broken[0]

    engine_says = _verify(api)
    assert not engine_says.ok and [b.event_id for b in engine_says.breaks] == [edited]
    assert _verify(api, other["id"]).ok
    only_other = _cli_verify(api, database_url, tmp_path, "--change", other["number"])
    assert only_other.returncode == 0 and only_other.stdout.startswith("ok: ")

    chain = api.trace(change["id"])["audit_chain"]
    assert chain["intact"] is False and f"event {edited}" in chain["first_broken"]


def test_a_rehashed_edit_breaks_the_link_to_the_next_event(api):
    change = _moved_change(api)
    (_, _), (edited, _), (following, _), *_ = _events(api, change["id"])
    with api.app.app_context():
        row = db.session.get(AuditEvent, edited)
        forged = event_hash(chain=row.chain, seq=row.seq, prev_hash=row.prev_hash, kind=row.kind, at=row.at,
                            actor="mallory", actor_id=row.actor_id, change_id=row.change_id,
                            element_id=row.element_id, task_id=row.task_id, data=row.data)
        db.session.remove()
    _sql(api, "UPDATE audit_events SET actor = 'mallory', hash = :h WHERE id = :id", h=forged, id=edited)
    [broken] = _verify(api, change["id"]).breaks
    assert broken.event_id == following and broken.problems == [
        f"link broken: its prev_hash is not the hash of event {edited}"]


def test_a_deleted_event_is_named_by_the_cli_and_the_engine(api, database_url, tmp_path):
    change = _moved_change(api)
    events = _events(api, change["id"])
    (deleted, _), (following, _) = events[3], events[4]
    _sql(api, "DELETE FROM audit_events WHERE id = :id", id=deleted)

    result = _cli_verify(api, database_url, tmp_path, "--change", change["number"])
    assert result.returncode == 1
    assert f"broken: event {following} ({change['number']}, change:{change['id']} seq 5," in result.stdout
    assert "sequence gap: seq 4 missing" in result.stdout
    [broken] = _verify(api).breaks
    assert broken.event_id == following and broken.problems[0] == "sequence gap: seq 4 missing (deleted event?)"
    assert "link broken" in broken.problems[1]


def test_swapped_events_are_named_by_the_cli_and_the_engine(api, database_url, tmp_path):
    change = _moved_change(api)
    events = _events(api, change["id"])
    (first, _), (second, _) = events[1], events[2]
    # seq 2 ↔ seq 3, through a free value because (chain, seq) is unique
    _sql(api, "UPDATE audit_events SET seq = -1 WHERE id = :id", id=first)
    _sql(api, "UPDATE audit_events SET seq = 2 WHERE id = :id", id=second)
    _sql(api, "UPDATE audit_events SET seq = 3 WHERE id = :id", id=first)

    result = _cli_verify(api, database_url, tmp_path)
    assert result.returncode == 1
    assert f"broken: event {second} ({change['number']}, change:{change['id']} seq 2," in result.stdout
    [broken] = _verify(api).breaks
    assert broken.event_id == second
    assert any(p.startswith("link broken") for p in broken.problems)
    assert any(p.startswith("content changed") for p in broken.problems)
    # what the trace shows is the chain's order, and it says the order is broken
    trace = api.trace(change["id"])
    assert [e["id"] for e in trace["events"][1:3]] == [second, first] and not trace["audit_chain"]["intact"]


def test_a_change_whose_whole_chain_was_deleted_is_named(api, database_url, tmp_path):
    change = _moved_change(api)
    _sql(api, "DELETE FROM audit_events WHERE change_id = :id", id=change["id"])
    result = _cli_verify(api, database_url, tmp_path)
    assert result.returncode == 1
    assert f"broken: {change['number']}: no audit events" in result.stdout


def test_verify_of_an_unknown_change_is_an_error(api, database_url, tmp_path):
    result = _cli_verify(api, database_url, tmp_path, "--change", "CHG9999999")
    assert result.returncode == 2 and "CHG9999999" in result.stderr


def test_the_orm_refuses_to_rewrite_an_event(api):
    from engine.audit_chain import AppendOnly

    change = _moved_change(api)
    with api.app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.change_id == change["id"]).limit(1))
        event.actor = "mallory"
        with pytest.raises(AppendOnly):
            db.session.flush()
        db.session.rollback()
        db.session.delete(db.session.get(AuditEvent, event.id))
        with pytest.raises(AppendOnly):
            db.session.flush()
        db.session.rollback()
        db.session.remove()
    assert _verify(api).ok


# -- concurrent writers ----------------------------------------------------------------------------

def _gate(api, change_id: int):
    return api.app.test_client().get(f"/api/changes/{change_id}/gate", headers={"Authorization": "Bearer demo-ivan"})


def test_concurrent_writers_of_one_chain_take_turns(api):
    change = api.submit()
    before = len(_events(api, change["id"]))
    barrier = threading.Barrier(6)
    responses = [None] * 6

    def ask(i):
        barrier.wait()
        responses[i] = _gate(api, change["id"])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # pipelines asking the gate at once all get their answer, each audited in one unforked chain
    assert [r.status_code for r in responses] == [200] * 6, [r.get_json() for r in responses]
    assert [seq for _, seq in _events(api, change["id"])] == list(range(1, before + 7))
    assert _verify(api, change["id"]).ok


def _wait_until_blocked(api, backend) -> None:
    if backend == "sqlite":
        time.sleep(0.5)
        return
    with api.app.app_context():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with db.engine.connect() as conn:
                if conn.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")):
                    return
            time.sleep(0.05)
    raise AssertionError("the command never waited on the uncommitted row")


def test_a_writer_that_loses_the_chain_head_gets_409_and_writes_nothing(api, backend):
    """A row written past the chain lock (here: raw SQL) takes the head first: the command is a conflict."""
    change = api.submit()
    last_id, last_seq = _events(api, change["id"])[-1]
    with api.app.app_context():
        head = db.session.get(AuditEvent, last_id)
        at, prev = head.at, head.hash
        db.session.remove()
    row = {"chain": chain_of(change["id"]), "seq": last_seq + 1, "prev_hash": prev, "kind": "note", "at": at,
           "actor": "dba", "actor_id": None, "change_id": change["id"], "element_id": None, "task_id": None,
           "data": {}}
    engine = make_engine(api.app.config["SQLALCHEMY_DATABASE_URI"])
    conn = engine.connect()
    conn.execute(AuditEvent.__table__.insert().values(**row, hash=event_hash(**row)))  # not committed yet
    answer = {}
    thread = threading.Thread(target=lambda: answer.update(response=_gate(api, change["id"])))
    thread.start()
    _wait_until_blocked(api, backend)
    conn.commit()
    conn.close()
    engine.dispose()
    thread.join()
    response = answer["response"]
    if backend == "postgresql":
        # it read the old head, then its INSERT met the row's (chain, seq): a conflict, not a 500
        assert response.status_code == 409, response.get_json()
        assert "at the same time" in response.get_json()["message"]
        assert _kinds(api, change["id"])[-1] == "note"
    else:
        # SQLite: the command waits for the writer lock before it reads the head, so it follows the row
        assert response.status_code == 200, response.get_json()
        assert _kinds(api, change["id"])[-2:] == ["note", "gate_checked"]
    assert _verify(api, change["id"]).ok


def _kinds(api, change_id):
    with api.app.app_context():
        kinds = db.session.scalars(select(AuditEvent.kind).where(AuditEvent.chain == chain_of(change_id))
                                   .order_by(AuditEvent.seq)).all()
        db.session.remove()
    return kinds
