"""A recorded history of changes for the report tests: each change is written as the processes leave
it — the change row with its services, state transitions as audit events, approval tasks and their
decisions, evidence, follow-up actions — at chosen moments, so the tests know every figure.

`History.add(...)` takes the facts of one change; the tests keep the same facts and compute the
expected figures from them independently of the report code.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import select

from engine.models import Approval, AuditEvent, Change, Evidence, FollowUpAction, Service, Task, User


def at(text: str) -> datetime:
    """'2026-07-03 10:00' as a UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@dataclass
class Step:
    """An approval: its task was created at `asked`, decided at `decided` (None: still pending)."""
    step: str
    asked: datetime
    decided: datetime | None = None
    decision: str = "approve"
    role: str = "change_manager"
    approver: str = "morgan"
    round: int = 1
    due: datetime | None = None
    assigned: bool = False  # the task was assigned to `approver` (business acceptance asks each owner by name)
    withdrawn: datetime | None = None  # the process cancelled the task then, undecided


@dataclass
class Facts:
    key: str
    change_type: str = "normal"
    category: str = "infrastructure"
    risk: str = "low"
    risk_reasons: tuple[str, ...] = ()
    services: tuple[str, ...] = ("crm-web",)
    created: datetime = field(default_factory=lambda: at("2026-07-01 09:00"))
    # (state, entered at) after "new"; e.g. [("authorize", t1), ("scheduled", t2), ...]
    states: list[tuple[str, datetime]] = field(default_factory=list)
    planned: tuple[datetime, datetime] | None = None
    close_code: str | None = None
    implementation_result: str | None = None
    incidents: tuple[str, ...] = ()
    implementer: str | None = "ivan"
    requester: str = "alice"
    cost_estimate: str | None = None
    cost_actual: str | None = None
    approvals: list[Step] = field(default_factory=list)
    tasks: list[Step] = field(default_factory=list)  # other tasks (no approval step): review, implement
    evidence: tuple[str, ...] = ()
    # (kind, kind of the newer row superseding it): a corrected version; only the newer row is current
    superseded: tuple[tuple[str, str], ...] = ()
    rollback_plan: str = "Restore the previous version."
    rollback_tested: bool = True
    justification: str = "Needed by the business."
    emergency_reason: str = ""
    incident_ref: str | None = None
    follow_ups: list[tuple[str, date, datetime | None]] = field(default_factory=list)  # (action, due, done at)

    @property
    def state(self) -> str:
        return self.states[-1][0] if self.states else "new"

    def entered(self, state: str) -> datetime | None:
        return next((t for s, t in self.states if s == state), None)

    @property
    def closed_at(self) -> datetime | None:
        return self.entered("closed")


class History:
    def __init__(self, session):
        self.session = session
        self.facts: dict[str, Facts] = {}
        self.ids: dict[str, int] = {}
        self._users = {u.username: u for u in session.scalars(select(User))}
        self._services = {s.key: s for s in session.scalars(select(Service))}

    def add(self, facts: Facts) -> Change:
        s, users = self.session, self._users
        change = Change(
            title=f"History {facts.key}", change_type=facts.change_type, category=facts.category,
            state=facts.state, risk=facts.risk, risk_reasons=list(facts.risk_reasons), priority=3, impact=2,
            urgency=2,
            planned_start=facts.planned[0] if facts.planned else None,
            planned_end=facts.planned[1] if facts.planned else None,
            rollback_plan=facts.rollback_plan, rollback_tested=facts.rollback_tested,
            justification=facts.justification, emergency_reason=facts.emergency_reason,
            incident_ref=facts.incident_ref, requester=users[facts.requester],
            implementer=users[facts.implementer] if facts.implementer else None,
            implementation_result=facts.implementation_result, close_code=facts.close_code,
            incidents_caused=list(facts.incidents), created_at=facts.created, updated_at=facts.created,
            closed_at=facts.closed_at or facts.entered("canceled"),  # the process sets it on both final states
            cost_estimate=Decimal(facts.cost_estimate) if facts.cost_estimate else None,
            services=[self._services[k] for k in facts.services],
        )
        change.cost_actual = Decimal(facts.cost_actual) if facts.cost_actual else None
        s.add(change)
        s.flush()
        change.number = f"CHG{change.id:07d}"
        s.add(AuditEvent(kind="change_created", change_id=change.id, at=facts.created, actor=facts.requester,
                         actor_id=users[facts.requester].id, data={"title": change.title}))
        previous = "new"
        for state, moment in facts.states:
            s.add(AuditEvent(kind="state_changed", change_id=change.id, at=moment, actor="system",
                             data={"from": previous, "to": state}))
            previous = state
        for step in facts.approvals + facts.tasks:
            self._task(change, step, approval=step in facts.approvals)
        for kind in facts.evidence:
            s.add(Evidence(change_id=change.id, kind=kind, url=f"https://evidence.example.com/{facts.key}/{kind}",
                           uploaded_by=users[facts.requester], uploaded_at=facts.created + timedelta(hours=1)))
        for old_kind, new_kind in facts.superseded:
            old = Evidence(change_id=change.id, kind=old_kind, url=f"https://evidence.example.com/{facts.key}/v1",
                           uploaded_by=users[facts.requester], uploaded_at=facts.created + timedelta(hours=1))
            s.add(old)
            s.flush()
            s.add(Evidence(change_id=change.id, kind=new_kind, version=2, supersedes_id=old.id,
                           url=f"https://evidence.example.com/{facts.key}/v2", uploaded_by=users[facts.requester],
                           uploaded_at=facts.created + timedelta(hours=2)))
        for action, due, done in facts.follow_ups:
            s.add(FollowUpAction(change_id=change.id, action=action, owner=users["ivan"], due_date=due,
                                 status="done" if done else "open", created_at=facts.closed_at or facts.created,
                                 completed_at=done))
        s.flush()
        self.facts[facts.key], self.ids[facts.key] = facts, change.id
        return change

    def _task(self, change: Change, step: Step, *, approval: bool) -> None:
        task_id = str(uuid.uuid4())
        approver = self._users[step.approver]
        self.session.add(Task(
            id=task_id, instance_id=self._instance(change), change_id=change.id, element_id=f"Task_{step.step}",
            name=step.step.replace("_", " ").capitalize(), role=step.role,
            status="completed" if step.decided else "cancelled" if step.withdrawn else "ready",
            approval_step=step.step if approval else None, assignee_id=approver.id if step.assigned else None,
            created_at=step.asked, due_at=step.due, completed_at=step.decided,
            completed_by_id=approver.id if step.decided else None))
        if step.withdrawn:
            self.session.add(AuditEvent(kind="task_cancelled", change_id=change.id, at=step.withdrawn, actor="system",
                                        element_id=f"Task_{step.step}", task_id=task_id))
        if approval and step.decided:
            self.session.add(Approval(change_id=change.id, task_id=task_id, step=step.step, approver_id=approver.id,
                                      role=step.role, decision=step.decision, decided_at=step.decided,
                                      round=step.round))

    def _instance(self, change: Change) -> int:
        """Tasks belong to a process instance; one stand-in instance per change, on the deployed version."""
        from engine.models import ProcessInstance, ProcessVersion

        instance = self.session.scalar(select(ProcessInstance).where(ProcessInstance.change_id == change.id))
        if instance is None:
            version = self.session.scalar(select(ProcessVersion).where(
                ProcessVersion.process_key == f"{change.change_type}_change").order_by(ProcessVersion.version.desc()))
            instance = ProcessInstance(change_id=change.id, process_version_id=version.id, state="{}",
                                       status="completed" if change.state in ("closed", "canceled") else "running",
                                       )
            self.session.add(instance)
            self.session.flush()
        return instance.id
