"""CAB meetings: the agenda of changes awaiting the board, and decisions taken in the meeting.

A meeting is a row (date, members, horizon). Its agenda is computed on every read, never stored:
changes with a READY CAB approval task whose planned start falls before the next meeting (or this
one, when none is planned) plus the horizon — and changes without a planned start, last.

A decision taken in the meeting is entered by the chair: each present member's CAB task is
completed on the member's behalf through `runtime.complete_task`, so the process (quorum, veto,
segregation of duties) decides exactly as if the members had used their inbox; each approval is
linked to the meeting, the chair and the evidence reviewed. One call is one transaction.
Minutes are rendered by `engine.cab_minutes`.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from . import audit, runtime
from .approvals import sod_refusal
from .db import utcnow
from .errors import Conflict, NotFound, ValidationFailed
from .models import Approval, CabMeeting, Change, Task, User
from .permissions import require

CAB_STEP = "cab"  # the approvalStep of the CAB approval task in the diagrams
CAB_ROLE = "cab_member"
STEP_ENDED = "the CAB step had already ended (quorum reached or a rejection) when this vote came up"


class MeetingAgenda:
    """A meeting seen together with its computed agenda."""

    def __init__(self, meeting: CabMeeting, agenda_until: datetime, agenda: list[dict]):
        self.meeting, self.agenda_until, self.agenda = meeting, agenda_until, agenda

    def __getattr__(self, name):
        return getattr(self.meeting, name)


# -- meetings ------------------------------------------------------------------------------------

def create_meeting(session: Session, actor: User, fields: dict) -> CabMeeting:
    require(actor, "cab.manage")
    starts_at, ends_at = fields["starts_at"], fields.get("ends_at")
    if starts_at.tzinfo is None or (ends_at is not None and ends_at.tzinfo is None):
        raise ValidationFailed("Date-times need a UTC offset.", errors=[
            {"field": "starts_at", "message": "must include a UTC offset, e.g. 2026-12-01T10:00:00+01:00"}])
    if ends_at is not None and ends_at <= starts_at:
        raise ValidationFailed("A meeting ends after it starts.", errors=[
            {"field": "ends_at", "message": "must be after starts_at"}])
    members = _cab_members(session, fields.get("members") or [])
    meeting = CabMeeting(title=(fields.get("title") or "CAB meeting").strip(), starts_at=starts_at,
                         ends_at=ends_at, members=[m.username for m in members],
                         horizon_days=fields.get("horizon_days", 7), status="planned",
                         notes=fields.get("notes") or "", created_by=actor)
    session.add(meeting)
    session.flush()
    audit.record(session, "cab_meeting_created", actor=actor,
                 data={"cab_meeting_id": meeting.id, "title": meeting.title, "starts_at": starts_at.isoformat(),
                       "members": meeting.members, "horizon_days": meeting.horizon_days})
    return meeting


def _cab_members(session: Session, usernames: list[str]) -> list[User]:
    names = list(dict.fromkeys(usernames))
    if not names:
        raise ValidationFailed("A meeting needs members.", errors=[
            {"field": "members", "message": "name at least one CAB member"}])
    found = {u.username: u for u in session.scalars(select(User).where(User.username.in_(names)))}
    problems = []
    for name in names:
        user = found.get(name)
        if user is None:
            problems.append(f"no user '{name}'")
        elif not user.active:
            problems.append(f"'{name}' is not active")
        elif CAB_ROLE not in user.roles:
            problems.append(f"'{name}' does not hold the {CAB_ROLE} role")
    if problems:
        raise ValidationFailed("Every member must be an active CAB member.",
                               errors=[{"field": "members", "message": p} for p in problems])
    return [found[n] for n in names]


def list_meetings(session: Session, user: User, *, start: datetime | None = None,
                  end: datetime | None = None, limit: int = 200) -> list[CabMeeting]:
    """Meetings not yet over first (soonest first), then past ones (latest first)."""
    require(user, "cab.read")
    upcoming = case((func.coalesce(CabMeeting.ends_at, CabMeeting.starts_at) >= utcnow(), 0), else_=1)
    query = select(CabMeeting).options(selectinload(CabMeeting.created_by)).order_by(
        upcoming, case((upcoming == 0, CabMeeting.starts_at)), CabMeeting.starts_at.desc(), CabMeeting.id)
    if start is not None:
        query = query.where(CabMeeting.starts_at >= start)
    if end is not None:
        query = query.where(CabMeeting.starts_at < end)
    return list(session.scalars(query.limit(limit)))


def get_meeting(session: Session, user: User, meeting_id: int, *, action: str = "cab.read",
                lock: bool = False) -> CabMeeting:
    require(user, action)
    query = select(CabMeeting).where(CabMeeting.id == meeting_id)
    meeting = session.scalar(query.with_for_update() if lock else query)
    if meeting is None:
        raise NotFound(f"CAB meeting {meeting_id} does not exist.")
    return meeting


def meeting_with_agenda(session: Session, user: User, meeting_id: int) -> MeetingAgenda:
    meeting = get_meeting(session, user, meeting_id)
    until = agenda_until(session, meeting)
    return MeetingAgenda(meeting, until, agenda(session, meeting, until=until))


# -- the agenda ----------------------------------------------------------------------------------

def agenda_until(session: Session, meeting: CabMeeting) -> datetime:
    """Changes starting before this moment are on the agenda: the next meeting plus the horizon."""
    following = session.scalar(select(CabMeeting.starts_at).where(
        CabMeeting.starts_at > meeting.starts_at, CabMeeting.id != meeting.id)
        .order_by(CabMeeting.starts_at).limit(1))
    return (following or meeting.starts_at) + timedelta(days=meeting.horizon_days)


def _awaiting_cab(until: datetime):
    """SQL condition: the change has a ready CAB task and starts before `until` (or has no start)."""
    waiting = exists().where(Task.change_id == Change.id, Task.status == "ready", Task.approval_step == CAB_STEP)
    return and_(waiting, or_(Change.planned_start.is_(None), Change.planned_start < until))


def agenda(session: Session, meeting: CabMeeting, *, until: datetime | None = None) -> list[dict]:
    """One item per change awaiting the CAB — three queries in all, however long the agenda."""
    until = until or agenda_until(session, meeting)
    changes = session.scalars(
        select(Change).where(_awaiting_cab(until))
        .options(selectinload(Change.services), selectinload(Change.requester))
        .order_by(Change.planned_start.is_(None), Change.planned_start, Change.id)).all()
    if not changes:
        return []
    ids = [c.id for c in changes]
    approvals = session.scalars(
        select(Approval).join(Change, Change.id == Approval.change_id)
        .where(Approval.change_id.in_(ids), Approval.round == Change.approval_round)
        .options(selectinload(Approval.approver), selectinload(Approval.recorded_by)).order_by(Approval.id)).all()
    pending = session.scalars(
        select(Task).where(Task.change_id.in_(ids), Task.status == "ready", Task.approval_step == CAB_STEP)
        .options(selectinload(Task.assignee)).order_by(Task.created_at, Task.id)).all()
    items = []
    for change in changes:
        mine = [a for a in approvals if a.change_id == change.id]
        votes = [a.decision for a in mine if a.step == CAB_STEP]
        items.append({
            "change_id": change.id, "number": change.number, "title": change.title, "state": change.state,
            "risk": change.risk, "risk_reasons": list(change.risk_reasons or []), "priority": change.priority,
            "services": [s.key for s in change.services], "planned_start": change.planned_start,
            "planned_end": change.planned_end, "requester": change.requester.username,
            "approvals": [a for a in mine if a.step != CAB_STEP],
            "cab_votes": {"approve": votes.count("approve"), "reject": votes.count("reject")},
            "pending_members": [t.assignee.username for t in pending
                                if t.change_id == change.id and t.assignee is not None],
            "conflicts": [],  # filled once conflict detection lands
            "evidence": [],  # filled once evidence lands
        })
    return items


def on_agenda(session: Session, meeting: CabMeeting, change_id: int) -> bool:
    return session.scalar(select(Change.id).where(
        Change.id == change_id, _awaiting_cab(agenda_until(session, meeting)))) is not None


# -- decisions -----------------------------------------------------------------------------------

def record_decision(session: Session, chair: User, meeting_id: int, fields: dict) -> dict:
    """Record a decision taken in the meeting: complete each present member's CAB task for them.

    All votes are cast at once in a meeting, so rejections are recorded first: as in the process,
    one rejection ends the step. Votes that come up after the step has ended (quorum reached, or
    rejected) are not recorded and are reported in `skipped`, as are members whom segregation of
    duties excludes.
    """
    meeting = get_meeting(session, chair, meeting_id, action="cab.manage", lock=True)
    decision, comment = fields["decision"], (fields.get("comment") or "").strip()
    votes, evidence = dict(fields.get("votes") or {}), list(fields.get("evidence_reviewed") or [])
    present = list(dict.fromkeys(meeting.members if fields.get("present") is None else fields["present"]))
    cast = {member: votes.get(member, decision) for member in present}
    _check_votes(meeting, decision, comment, votes, present, cast)
    change = session.get(Change, fields["change_id"])
    if change is None:
        raise NotFound(f"Change {fields['change_id']} does not exist.")
    if not on_agenda(session, meeting, change.id):
        raise Conflict(f"{change.number} is not on the agenda of this meeting: no CAB approval is waiting "
                       "for it, or its planned start is beyond the meeting's horizon.")
    cab_tasks = session.scalars(select(Task).where(Task.change_id == change.id, Task.approval_step == CAB_STEP)
                                .order_by(Task.created_at, Task.id)).all()
    users = {u.username: u for u in session.scalars(select(User).where(User.username.in_(present)))}
    round_, recorded, skipped = change.approval_round, [], []
    for name in sorted(present, key=lambda m: cast[m] != "reject"):
        member = users.get(name)
        task = _task_for(member, cab_tasks)
        reason = _skip_reason(session, member, task, cab_tasks)
        if reason:
            skipped.append({"member": name, "vote": cast[name], "reason": reason})
            continue
        runtime.complete_task(session, task.id, member, {"decision": cast[name], "comment": comment},
                              cab_meeting_id=meeting.id, recorded_by=chair, evidence_reviewed=evidence)
        recorded.append(task.id)
    if not recorded:
        raise Conflict(f"No vote on {change.number} could be recorded.", skipped=skipped)
    meeting.status = "held"
    approvals = session.scalars(select(Approval).where(Approval.task_id.in_(recorded))
                                .order_by(Approval.id)).all()
    result = outcome(session, change, round_)
    audit.record(session, "cab_decision_recorded", actor=chair, change_id=change.id, data={
        "cab_meeting_id": meeting.id, "decision": decision, "comment": comment, "present": present, "votes": cast,
        "recorded": [a.approver.username for a in approvals], "skipped": skipped,
        "evidence_reviewed": evidence, "round": round_, "outcome": result})
    return {"cab_meeting_id": meeting.id, "change_id": change.id, "change_number": change.number,
            "state": change.state, "outcome": result, "approvals": approvals, "skipped": skipped}


def _check_votes(meeting: CabMeeting, decision: str, comment: str, votes: dict, present: list[str],
                 cast: dict) -> None:
    errors = []
    if not present:
        errors.append({"field": "present", "message": "name at least one member present"})
    errors += [{"field": "present", "message": f"'{m}' is not a member of this meeting"}
               for m in present if m not in meeting.members]
    errors += [{"field": "votes", "message": f"'{m}' is not a member present at this meeting"}
               for m in votes if m not in present]
    errors += [{"field": "votes", "message": f"'{v}' is not a decision (approve or reject)"}
               for v in votes.values() if v not in ("approve", "reject")]
    if decision not in ("approve", "reject"):
        errors.append({"field": "decision", "message": "must be 'approve' or 'reject'"})
    if "reject" in cast.values() and not comment:
        errors.append({"field": "comment", "message": "is required when anyone rejects"})
    if errors:
        raise ValidationFailed("The decision is not valid.", errors=errors)


def _task_for(member: User | None, cab_tasks: list[Task]) -> Task | None:
    """The member's ready CAB task — or, failing that, an unclaimed one of the role."""
    if member is None:
        return None
    ready = [t for t in cab_tasks if t.status == "ready"]
    return (next((t for t in ready if t.assignee_id == member.id), None)
            or next((t for t in ready if t.assignee_id is None and t.role in member.roles), None))


def _skip_reason(session: Session, member: User | None, task: Task | None, cab_tasks: list[Task]) -> str | None:
    if member is None or not member.active:
        return "this account no longer exists or is disabled"
    refusal = sod_refusal(session, member, task or cab_tasks[0])
    if refusal:
        return refusal
    if task is not None:
        return None
    if any(t.status == "ready" for t in cab_tasks):
        return "has no CAB approval task on this change"
    return STEP_ENDED


def outcome(session: Session, change: Change, round_: int) -> str:
    """authorized / rejected / pending: the CAB step of `round_` as it stands now."""
    rows = dict(session.execute(
        select(Approval.decision, func.count()).where(
            Approval.change_id == change.id, Approval.step == CAB_STEP, Approval.round == round_)
        .group_by(Approval.decision)).all())
    if rows.get("reject"):
        return "rejected"
    still_open = session.scalar(select(exists().where(
        Task.change_id == change.id, Task.status == "ready", Task.approval_step == CAB_STEP)))
    if still_open and change.approval_round == round_:
        return "pending"
    return "authorized" if rows.get("approve") else "pending"
