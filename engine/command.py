"""The context one command runs in: who acts, on which change, inside which transaction."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from .db import utcnow
from .models import Change, User


@dataclass
class Command:
    session: Session
    actor: User | None
    change: Change
    process_key: str
    # ids of service tasks left waiting for a worker (background operators) during this command
    deferred: list[str] = field(default_factory=list)
    # the moment the command acts at: now for requests, the job's clock for timers run by a worker
    now: datetime = field(default_factory=utcnow)
    # ids of tasks this command closed (completed, cancelled) that have a draft, now void
    void_drafts: list[str] = field(default_factory=list)
    # ids of the timers that waited when the command loaded the state (None: not known)
    timers_at_load: set[str] | None = None
    # the command started the instance: it has no task rows yet to reconcile
    fresh_instance: bool = False
    _approval_facts: dict | None = None

    def approval_facts(self) -> dict:
        """service_owners and cab_members, read the first time a step of this command names them."""
        if self._approval_facts is None:
            from .approvals import approver_facts

            self._approval_facts = approver_facts(self.session, self.change)
        return self._approval_facts
