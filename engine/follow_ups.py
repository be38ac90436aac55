"""Follow-up actions agreed in a post-implementation (or retrospective) review: who does what by when.

The review forms submit `follow_up_actions` as a list of {action, owner, due_date}; completing the task
stores each one as a FollowUpAction row (projection.apply_form_to_change calls `record_follow_ups`).
An open action whose due date has passed is overdue.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from .db import utcnow
from .errors import ValidationFailed
from .models import Change, FollowUpAction, User

FIELD = "follow_up_actions"


def _today(today: date | None) -> date:
    return today or utcnow().date()


def _owner(session: Session, username, index: int) -> User | None:
    if username is None or not str(username).strip():
        return None
    username = str(username).strip()
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        raise ValidationFailed("Unknown follow-up action owner.", errors=[
            {"field": f"{FIELD}.{index}.owner", "message": f"no active user '{username}'"}])
    return user


def _due(value, index: int) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValidationFailed("Invalid due date.", errors=[
            {"field": f"{FIELD}.{index}.due_date", "message": "must be a date, e.g. 2026-12-31"}]) from None


def record_follow_ups(session: Session, change: Change, actions) -> list[FollowUpAction]:
    """Store the actions a review form submitted; refuse (422, naming `follow_up_actions.N.<field>`) an
    unknown owner or a bad due date before anything is stored."""
    if not actions:
        return []
    if not isinstance(actions, list):
        raise ValidationFailed("Follow-up actions must be a list.", errors=[
            {"field": FIELD, "message": "must be a list of {action, owner, due_date}"}])
    rows = []
    for index, item in enumerate(actions):
        text = str((item or {}).get("action") or "").strip() if isinstance(item, dict) else ""
        if not text:
            raise ValidationFailed("A follow-up action needs a description.", errors=[
                {"field": f"{FIELD}.{index}.action", "message": "describe what needs to be done"}])
        rows.append(FollowUpAction(change_id=change.id, action=text, owner=_owner(session, item.get("owner"), index),
                                   due_date=_due(item.get("due_date"), index), status="open"))
    session.add_all(rows)  # the task_completed audit event carries the submitted actions
    session.flush()
    for row in rows:
        schedule_overdue_check(session, row)
    return rows


def schedule_overdue_check(session: Session, action: FollowUpAction) -> None:
    """A job at the first moment the action is overdue (the day after its due date, UTC) to remind its owner."""
    if action.due_date is None:
        return
    from .jobs import queue

    overdue_at = datetime.combine(action.due_date + timedelta(days=1), time.min, tzinfo=timezone.utc)
    queue.schedule(session, "follow_up_due", str(action.id), due_at=overdue_at, change_id=action.change_id,
                   dedupe_key=f"follow_up_due:{action.id}:{action.due_date}")


def remind_if_overdue(session: Session, action_id: int, today: date) -> bool:
    """Run by the follow_up_due job: notify the owner and the change managers if the action is still open."""
    from . import audit, notify

    action = session.get(FollowUpAction, action_id)
    if action is None or not is_overdue(action, today):
        return False
    notify.follow_up_overdue(session, action)
    audit.record(session, "follow_up_overdue", change_id=action.change_id,
                 data={"action_id": action.id, "action": action.action, "due_date": str(action.due_date)})
    return True


def is_overdue(action: FollowUpAction, today: date | None = None) -> bool:
    return action.status == "open" and action.due_date is not None and action.due_date < _today(today)


def overdue_actions(session: Session, today: date | None = None) -> list[FollowUpAction]:
    """Every open action, on any change, whose due date has passed: oldest due first."""
    return list(session.scalars(
        select(FollowUpAction).where(FollowUpAction.status == "open", FollowUpAction.due_date.is_not(None),
                                     FollowUpAction.due_date < _today(today))
        .options(selectinload(FollowUpAction.owner))
        .order_by(FollowUpAction.due_date, FollowUpAction.id)))


def change_follow_ups(session: Session, change: Change, today: date | None = None) -> list[dict]:
    """The change's follow-up actions for its trace, each flagged `overdue`."""
    rows = session.scalars(select(FollowUpAction).where(FollowUpAction.change_id == change.id)
                           .options(selectinload(FollowUpAction.owner)).order_by(FollowUpAction.id)).all()
    return [{"id": r.id, "action": r.action, "owner": r.owner, "due_date": r.due_date, "status": r.status,
             "created_at": r.created_at, "completed_at": r.completed_at, "overdue": is_overdue(r, today)}
            for r in rows]
