"""One command, one transaction: commit on success, roll back on any failure.

A workflow failure is also written down as an incident — in a fresh transaction after the
rollback, so the record survives while nothing of the failed command does.

The commit keeps what the command loaded and wrote (no expiry): the response describes the rows
the command just committed, and reading them all again would cost a query per object. Whoever
writes the same rows from another session in the same request (the in-process job runner) expires
them (`webui.background`).
"""
from __future__ import annotations

from typing import Callable, TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from . import audit
from .errors import Conflict, WorkflowFailure
from .models import Incident, User

T = TypeVar("T")


def run_command(session: Session, actor: User | None, func: Callable[..., T], *args, **kwargs) -> T:
    actor_id = actor.id if actor else None
    try:
        result = func(session, *args, **kwargs)
        _commit_keeping_objects(session)
        return result
    except StaleDataError:
        session.rollback()
        raise Conflict("Someone else changed this change at the same time; reload and try again.") from None
    except IntegrityError:
        # Checks run before writing; a unique-key violation here means a concurrent writer got there first.
        session.rollback()
        raise Conflict("Someone else created or changed the same record at the same time; reload and try again.") from None
    except OperationalError as exc:
        session.rollback()
        text = str(exc).lower()
        if "locked" in text or "deadlock" in text or "could not serialize" in text:
            # SQLite's single writer gave up waiting, or PostgreSQL chose this transaction as a deadlock victim
            raise Conflict("The database is busy with another update; try again.") from None
        raise
    except WorkflowFailure as failure:
        session.rollback()
        incident = record_incident(session, failure, actor_id)
        session.commit()
        failure.extra["incident_id"] = incident.id
        raise
    except BaseException:
        session.rollback()
        raise


def _commit_keeping_objects(session) -> None:
    real = session.registry() if hasattr(session, "registry") else session  # a scoped session's own
    expire, real.expire_on_commit = real.expire_on_commit, False
    try:
        session.commit()
    finally:
        real.expire_on_commit = expire


def record_incident(session: Session, failure: WorkflowFailure, actor_id: int | None) -> Incident:
    incident = Incident(change_id=failure.change_id, process_key=failure.process_key,
                        element_id=failure.element_id, message=failure.message, actor_id=actor_id)
    session.add(incident)
    session.flush()
    audit.record(session, "incident", change_id=failure.change_id, element_id=failure.element_id,
                 data={"incident_id": incident.id, "message": failure.message,
                       "process_key": failure.process_key})
    return incident
