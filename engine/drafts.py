"""Drafts of task forms: what someone entered, kept without validation until the task is done.

One draft per task: whoever may act on the task (its assignee, or while unclaimed its role) saves
and sees the same draft, with who saved it last. A draft is working state, not part of the audit
trail, so saving one records no event; it goes as soon as the task stops taking input (completed or
cancelled), in the same transaction.
"""
from __future__ import annotations

import json

from sqlalchemy import delete
from sqlalchemy.orm import Session

from .db import utcnow
from .errors import Conflict, NotFound, ValidationFailed
from .models import Task, TaskDraft, User
from .permissions import can_see_task, require_task_actor

MAX_DRAFT_BYTES = 256 * 1024  # far above any shipped form; keeps a draft from becoming file storage


def _visible_task(session: Session, task_id: str, user: User) -> Task:
    task = session.get(Task, task_id)
    if task is None or not can_see_task(user, task):
        raise NotFound(f"Task {task_id} does not exist.")  # do not reveal others' tasks
    return task


def get_draft(session: Session, task_id: str, user: User) -> TaskDraft | None:
    """The task's draft, if `user` may see the task and it still takes input."""
    task = _visible_task(session, task_id, user)
    if task.status != "ready":
        return None
    return session.get(TaskDraft, task.id)


def save_draft(session: Session, task_id: str, user: User, data: dict) -> TaskDraft:
    """Keep `data` as the task's draft, replacing any earlier one. Nothing is validated but its size."""
    task = _visible_task(session, task_id, user)
    if task.status != "ready":
        raise Conflict(f"This task is {task.status}; it no longer takes input.")
    require_task_actor(user, task)
    if not isinstance(data, dict):
        raise ValidationFailed("A draft is an object of form values.",
                               errors=[{"field": "data", "message": "must be an object"}])
    if len(json.dumps(data, default=str)) > MAX_DRAFT_BYTES:
        raise ValidationFailed("The draft is too large.", errors=[
            {"field": "data", "message": f"larger than {MAX_DRAFT_BYTES} bytes as JSON"}])
    draft = session.get(TaskDraft, task.id)
    if draft is None:
        draft = TaskDraft(task_id=task.id)
        session.add(draft)
    draft.data, draft.saved_by, draft.saved_at = json.loads(json.dumps(data, default=str)), user, utcnow()
    session.flush()
    return draft


def discard(session: Session, task_ids: list[str]) -> None:
    """Drop the drafts of tasks that no longer take input (completed or cancelled). The command that
    closes them knows which have a draft (engine.runtime reads it with the task), so a step that
    closes no drafted task costs nothing here."""
    if task_ids:
        session.execute(delete(TaskDraft).where(TaskDraft.task_id.in_(task_ids))
                        .execution_options(synchronize_session=False))
