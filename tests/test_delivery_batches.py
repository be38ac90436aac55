"""Deliveries run in batches: one command's mail costs the same statements for one recipient as
for six, goes over one SMTP connection, a refused mailbox fails only its own messages, and a batch
slower than its lease keeps its jobs — nothing is sent twice. The worker tests run real
`changeflow worker` processes against PostgreSQL, Redis and an in-process SMTP server."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from engine import outbox
from engine.accounts import create_user
from engine.models import Change, Job, Notification, User
from webui.extensions import db

from .background_support import wait_until
from .query_count import count_statements
from .worker_stack import FAST, counts, postgres_url, queue_mail, redis_db, running_workers, stack  # noqa: F401 (fixtures)


def deliveries_of_one_command(api, app, people: list[str]) -> list[str]:
    """The statements a worker sends to deliver what one command queued for `people` (by e-mail)."""
    change_id = api.submit()["id"]
    with app.app_context():
        for name in people:
            create_user(db.session, name, ["requester"], email=f"{name}@example.invalid")
        db.session.commit()
    with count_statements(app) as seen, app.app_context():
        change = db.session.get(Change, change_id)
        users = db.session.scalars(select(User).where(User.username.in_(people))).all()
        queued = outbox.notify(db.session, "request_approved", change, users, dedupe="budget")
        ids = [row.id for row in queued]
        db.session.commit()  # the in-process dispatcher delivers them now, as a worker would
    with app.app_context():
        assert db.session.scalars(select(Notification.status).where(Notification.id.in_(ids))).all() == \
            ["sent"] * len(people)
    mail = {path.name for path in (app.config["CHANGEFLOW_SETTINGS"].instance_dir / "mail").iterdir()}
    assert {f"notification-{i}.eml" for i in ids} <= mail
    return seen.background


def test_delivering_a_commands_notifications_costs_the_same_for_one_recipient_as_for_six(api, app):
    one = deliveries_of_one_command(api, app, ["solo1"])
    six = deliveries_of_one_command(api, app, [f"team{i}" for i in range(6)])
    assert len(one) == len(six), "\n".join(" ".join(sql.split())[:160] for sql in six)
    assert len(six) <= 4  # claim, read the rows, mark them sent, finish the jobs: not statements per message


def sent_once_each(stack, ids: list[int]) -> None:
    """Every one of the notifications reached the SMTP server exactly once, on its first attempt."""
    with stack.session():
        statuses = db.session.scalars(select(Notification.status).where(Notification.id.in_(ids))).all()
        attempts = set(db.session.scalars(select(Job.attempts).where(Job.kind == "deliver",
                                                                     Job.ref.in_([str(i) for i in ids]))))
    assert statuses == ["sent"] * len(ids) and attempts == {1}
    received = stack.smtp.sink.ids()
    assert all(received.count(f"<notification-{i}@localhost>") == 1 for i in ids)


@pytest.mark.postgres_only
def test_a_commands_mail_goes_over_one_smtp_connection_and_a_refused_recipient_fails_alone(stack):
    cid = stack.api.submit()["id"]
    stack.start_worker("batch")
    wait_until(lambda: counts(stack, status="sent") == 1, timeout=30, what="the approver's mail")

    ids = queue_mail(stack, cid, 12)  # one command, twelve messages: one hand-out
    wait_until(lambda: counts(stack, status="sent") == 13, timeout=30, what="the twelve messages")
    sent_once_each(stack, ids)
    assert len({stack.smtp.sink.peers[f"<notification-{i}@localhost>"] for i in ids}) == 1

    with stack.session():
        refused = db.session.scalar(select(User.email).join(Notification, Notification.recipient_id == User.id)
                                    .where(Notification.id == ids[1]))
    stack.smtp.sink.refuse.add(refused)  # the server answers 550 for this one mailbox
    more = queue_mail(stack, stack.api.submit()["id"], 12)
    with stack.session():
        doomed = set(db.session.scalars(select(Notification.id).join(User, Notification.recipient_id == User.id)
                                        .where(Notification.id.in_(more), User.email == refused)))
    assert 0 < len(doomed) < len(more)
    def dead_letters() -> bool:
        with stack.session():
            return set(db.session.scalars(select(Notification.status).where(Notification.id.in_(doomed)))) == {"failed"}

    wait_until(dead_letters, timeout=60, what="the refused mailbox's messages to be dead letters after their attempts")
    sent_once_each(stack, [i for i in more if i not in doomed])
    with stack.session():
        errors = db.session.scalars(select(Notification.last_error).where(Notification.id.in_(doomed))).all()
        tries = set(db.session.scalars(select(Job.attempts).where(Job.ref.in_([str(i) for i in doomed]))))
    assert all("550" in error for error in errors) and tries == {FAST["job_max_attempts"]}


@pytest.mark.postgres_only
def test_a_batch_slower_than_its_lease_keeps_its_jobs_and_sends_each_mail_once(stack):
    """Fifteen messages at 0.4 s each outlast the 3 s lease; a second worker sweeping for jobs whose
    lease ran out must not take over the ones the first is still sending."""
    stack.smtp.sink.delay = 0.4
    stack.start_worker("slow1")
    stack.start_worker("slow2")
    wait_until(lambda: running_workers(stack) == 2, what="two workers registered")
    cid = stack.api.submit()["id"]
    ids = queue_mail(stack, cid, 15)
    wait_until(lambda: counts(stack, status="sent") == 16, timeout=60, what="every message sent")
    time.sleep(2 * FAST["sweep_seconds"] + 1)  # a takeover's duplicates would arrive now
    sent_once_each(stack, ids)
    with stack.session():
        senders = set(db.session.scalars(select(Job.worker).where(Job.ref.in_([str(i) for i in ids]))))
    assert len(senders) == 1  # one hand-out, one worker, from the first message to the last
