"""The audit trail as hash chains, so an edited, deleted or reordered event shows.

Every change has its own chain ("change:<id>"); events about no change (users, tokens, services,
windows, deployments) share the "system" chain. One chain per change keeps writers of different
changes from queueing behind each other. Each event stores its position `seq` (1, 2, …), the
`prev_hash` of the event before it (64 zeros for the first) and its own `hash`: SHA-256 over a
canonical JSON of its content, chain, seq and prev_hash (`event_hash`).

Events are chained at flush time (`chain_pending`, called for every flush by engine/models/audit.py),
so whatever the code put into `data` up to then is what is hashed — and what is stored.
Concurrent writers of one chain take turns rather than fail: a transaction-scoped advisory lock per
chain on PostgreSQL, the database's writer lock (taken before the head is read) on SQLite. The
UNIQUE (chain, seq) constraint is the backstop for a writer that bypasses this: the loser's
IntegrityError becomes a 409 in run_command, never a forked chain.

`verify` walks the chains and names the first broken event of each.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from .models.audit import AuditEvent
from .models.changes import Change
from .db import utcnow

GENESIS = "0" * 64
SYSTEM_CHAIN = "system"
FORMAT = 1  # part of every hash: a future change of the canonical form can be told apart
_LOCK_CLASS = 0x41554454  # "AUDT": the advisory-lock namespace of audit chains
HEADS = "changeflow.audit_heads"  # session.info: chain -> (seq, hash) this transaction wrote last
HASHED = ("chain", "seq", "prev_hash", "kind", "at", "actor", "actor_id", "change_id", "element_id",
          "task_id", "data")


class AppendOnly(RuntimeError):
    """Code tried to update or delete an audit event through the ORM."""


def chain_of(change_id: int | None) -> str:
    return f"change:{change_id}" if change_id is not None else SYSTEM_CHAIN


def event_hash(*, chain: str, seq: int, prev_hash: str, kind: str, at: datetime, actor: str,
               actor_id: int | None, change_id: int | None, element_id: str | None, task_id: str | None,
               data) -> str:
    body = {"v": FORMAT, "chain": chain, "seq": seq, "prev_hash": prev_hash, "kind": kind,
            "at": at.astimezone(timezone.utc).isoformat(timespec="microseconds"), "actor": actor,
            "actor_id": actor_id, "change_id": change_id, "element_id": element_id, "task_id": task_id,
            # the JSON column stores json.dumps(data): hash the value it reads back (tuples are lists,
            # keys are strings), so a row read from the database hashes as it did when written
            "data": json.loads(json.dumps(data))}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def content_hash(event) -> str:
    """The hash `event` (a model instance or a result row) should carry, from what it holds now."""
    return event_hash(**{name: getattr(event, name) for name in HASHED})


# -- writing -------------------------------------------------------------------------------------

def chain_pending(session: Session) -> None:
    """Give every audit event about to be inserted its place in its chain, and its hash."""
    _refuse_rewrites(session)
    new = sorted((obj for obj in session.new if isinstance(obj, AuditEvent)),
                 key=lambda obj: getattr(obj, "_chain_order", 0))
    if not new:
        return
    by_chain: dict[str, list[AuditEvent]] = {}
    for event in new:
        # the column defaults would only be applied during the INSERT, after hashing
        event.at = event.at or utcnow()
        event.actor = event.actor or "system"
        event.data = {} if event.data is None else event.data
        by_chain.setdefault(chain_of(event.change_id), []).append(event)
    # A command flushes several times. After its first flush it holds the chain's lock until it
    # ends and nobody else can move the head, so later flushes continue from the head it wrote.
    heads = session.info.setdefault(HEADS, {})
    with session.no_autoflush:
        _take_turns(session, sorted(chain for chain in by_chain if chain not in heads))
        for chain in by_chain:
            seq, prev = heads.get(chain) or _head(session, chain)
            for event in by_chain[chain]:
                seq += 1
                event.chain, event.seq, event.prev_hash = chain, seq, prev
                event.hash = prev = content_hash(event)
            heads[chain] = (seq, prev)


@event.listens_for(Session, "after_soft_rollback")
def _forget_heads_on_rollback(session: Session, previous_transaction) -> None:
    session.info.pop(HEADS, None)  # a savepoint rollback may have dropped events we counted


@event.listens_for(Session, "after_transaction_end")
def _forget_heads_at_end(session: Session, transaction) -> None:
    if transaction.parent is None:  # the locks go with the transaction
        session.info.pop(HEADS, None)


def _take_turns(session: Session, chains: list[str]) -> None:
    """Wait for other writers of these chains to finish before reading the heads."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        for chain in chains:  # always in one order: fewer deadlocks between two-chain writers
            key = 0 if chain == SYSTEM_CHAIN else int(chain.split(":", 1)[1]) % 2147483647
            connection.execute(text("SELECT pg_advisory_xact_lock(:cls, :key)"), {"cls": _LOCK_CLASS, "key": key})
    elif connection.dialect.name == "sqlite":
        # pysqlite begins a transaction only at the first write, so a head read before it may be
        # outdated by the time the INSERT gets the writer lock. A write matching no row takes
        # that lock (waiting busy_timeout) first; the head read after it is current.
        connection.execute(text("UPDATE audit_events SET seq = seq WHERE 0 = 1"))


def _head(session: Session, chain: str) -> tuple[int, str]:
    row = session.execute(select(AuditEvent.seq, AuditEvent.hash).where(AuditEvent.chain == chain)
                          .order_by(AuditEvent.seq.desc()).limit(1)).first()
    return (row.seq, row.hash) if row else (0, GENESIS)


def _refuse_rewrites(session: Session) -> None:
    for obj in session.deleted:
        if isinstance(obj, AuditEvent):
            raise AppendOnly(f"audit event {obj.id} may not be deleted")
    for obj in session.dirty:
        if isinstance(obj, AuditEvent) and session.is_modified(obj):
            raise AppendOnly(f"audit event {obj.id} may not be changed")


# -- verifying -----------------------------------------------------------------------------------

@dataclass
class Break:
    """The first event of a chain that does not check out, and what is wrong with it."""

    chain: str
    problems: list[str]
    event_id: int | None = None
    seq: int | None = None
    kind: str | None = None
    change_number: str | None = None

    def describe(self) -> str:
        if self.event_id is None:
            return f"{self.change_number or self.chain}: {'; '.join(self.problems)}"
        where = f"{self.change_number}, " if self.change_number else ""
        return (f"event {self.event_id} ({where}{self.chain} seq {self.seq}, {self.kind}): "
                + "; ".join(self.problems))


@dataclass
class Verification:
    events: int = 0
    chains: int = 0
    breaks: list[Break] = field(default_factory=list)
    heads: dict[str, str] = field(default_factory=dict)  # chain → hash of its newest event

    @property
    def ok(self) -> bool:
        return not self.breaks


class _Walk:
    """One chain, event by event in seq order; remembers the first break."""

    def __init__(self, chain: str):
        self.chain, self.expected, self.prev_hash, self.prev_id = chain, 1, GENESIS, None
        self.count, self.broken = 0, None

    def step(self, event, change_number: str | None = None) -> None:
        self.count += 1
        if self.broken is not None:
            return
        problems = _problems(self, event)
        if problems:
            self.broken = Break(self.chain, problems, event.id, event.seq, event.kind, change_number)
        self.expected, self.prev_hash, self.prev_id = event.seq + 1, event.hash, event.id


def _problems(walk: _Walk, event) -> list[str]:
    problems = []
    if event.seq != walk.expected:
        missing = (f"seq {walk.expected}" if event.seq == walk.expected + 1
                   else f"seq {walk.expected}–{event.seq - 1}")
        problems.append(f"sequence gap: {missing} missing (deleted event?)" if event.seq > walk.expected
                        else f"sequence out of order: seq {event.seq} after seq {walk.expected - 1}")
    if event.prev_hash != walk.prev_hash:
        before = f"event {walk.prev_id}" if walk.prev_id is not None else "the start of the chain"
        problems.append(f"link broken: its prev_hash is not the hash of {before}")
    if event.chain != chain_of(event.change_id) or content_hash(event) != event.hash:
        problems.append("content changed: its stored hash does not match what the row holds now")
    if walk.prev_id is not None and event.id < walk.prev_id:
        problems.append(f"order changed: it follows event {walk.prev_id}, which was written after it")
    return problems


def verify_events(chain: str, events: Iterable) -> tuple[int, Break | None]:
    """Check one chain's events (in seq order): how many, and the first broken one."""
    walk = _Walk(chain)
    for event in events:
        walk.step(event)
    return walk.count, walk.broken


def verify(session: Session, change: Change | None = None) -> Verification:
    """Walk every chain (or only `change`'s), recomputing each hash."""
    columns = [getattr(AuditEvent, name) for name in ("id", "hash", *HASHED)]
    query = (select(*columns, Change.number.label("change_number"))
             .outerjoin(Change, Change.id == AuditEvent.change_id)
             .order_by(AuditEvent.chain, AuditEvent.seq, AuditEvent.id))
    if change is not None:
        query = query.where(AuditEvent.chain == chain_of(change.id))
    result, walk = Verification(), None
    for row in session.execute(query.execution_options(yield_per=2000)):
        if walk is None or row.chain != walk.chain:
            _finish(result, walk)
            walk = _Walk(row.chain)
        walk.step(row, row.change_number)
        result.heads[walk.chain] = row.hash
    _finish(result, walk)
    for number, change_id in _changes_without_events(session, change):
        result.breaks.append(Break(chain_of(change_id), ["no audit events: the change's chain is missing (deleted?)"],
                                   change_number=number))
    return result


def _finish(result: Verification, walk: _Walk | None) -> None:
    if walk is None:
        return
    result.events += walk.count
    result.chains += 1
    if walk.broken is not None:
        result.breaks.append(walk.broken)


def _changes_without_events(session: Session, change: Change | None):
    # Every change is created with a change_created event; a change with none lost its whole chain.
    has_events = select(AuditEvent.id).where(AuditEvent.change_id == Change.id).exists()
    query = select(Change.number, Change.id).where(~has_events).order_by(Change.id)
    if change is not None:
        query = query.where(Change.id == change.id)
    return session.execute(query).all()
