"""`changeflow worker` processes against the real Redis and PostgreSQL, with a real SMTP server:
two workers share a queue without double delivery, a worker killed mid-job is recovered, a flushed
Redis loses nothing, a down SMTP server ends in the dead-letter list, and jobs racing users on the
same instance never corrupt it. No mocks, no skips: Redis or PostgreSQL unreachable fails these tests."""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from uuid import UUID

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import func, select
from SpiffWorkflow.util.task import TaskState

from engine.definitions import deploy_files
from engine.jobs.dispatch import RqDispatcher
from engine.jobs.queue import Handout
from engine.models import Change, Job, Notification, ProcessInstance, Task, User
from engine.runtime import MAX_DEPTH, load_workflow
from webui.extensions import db

from .background_support import DroppingServer, PrivateRedis, wait_until
from .worker_stack import FAST, counts, postgres_url, queue_mail, redis_db, running_workers, stack  # noqa: F401 (fixtures)

pytestmark = pytest.mark.postgres_only


def test_two_workers_share_the_queue_and_deliver_each_notification_once(stack):
    stack.start_worker("w1")
    stack.start_worker("w2")
    wait_until(lambda: running_workers(stack) == 2, what="two workers registered")
    cid = stack.api.submit()["id"]
    ids = queue_mail(stack, cid, 60)
    with stack.session():  # hand every job out a second time, as a sweep racing the first hand-out would
        jobs = db.session.execute(select(Job.id, Job.due_at, Job.kind).where(Job.kind == "deliver")).all()
    RqDispatcher(stack.settings).dispatch([Handout(j.id, j.due_at, j.kind) for j in jobs])

    total = wait_until(lambda: (n := counts(stack)) == counts(stack, status="sent") and n, timeout=60,
                       what="every notification sent")
    assert total == len(ids) + 1  # and the approver's task_waiting
    time.sleep(1)  # duplicates would arrive now
    message_ids = stack.smtp.sink.ids()
    assert len(message_ids) == total and len(set(message_ids)) == total
    with stack.session():
        runs = db.session.execute(select(Job.worker, Job.attempts).where(Job.kind == "deliver")).all()
    assert {attempts for _, attempts in runs} == {1}
    assert {worker for worker, _ in runs} == {"w1", "w2"}  # both took a share


def test_a_worker_killed_mid_delivery_is_recovered_and_the_mail_sent_once(stack):
    stack.smtp.sink.hold.clear()  # the SMTP server keeps the first client waiting at MAIL FROM
    first = stack.start_worker("doomed")
    cid = stack.api.submit()["id"]
    wait_until(stack.smtp.sink.holding.is_set, timeout=30, what="the worker to be mid-delivery")
    killed_at = time.monotonic()
    first.kill()  # SIGKILL to the worker's process group: no cleanup, the lease stays
    stack.smtp.sink.hold.set()
    second = stack.start_worker("rescuer")
    wait_until(lambda: counts(stack, status="sent") == 1, timeout=60, what="the notification to be sent")
    recovery = time.monotonic() - killed_at
    print(f"recovered a killed worker's delivery in {recovery:.1f} s "
          f"(lease {FAST['job_lease_seconds']} s, sweep {FAST['sweep_seconds']} s, plus a worker start)")
    time.sleep(1)
    with stack.session():
        note = db.session.scalar(select(Notification).where(Notification.change_id == cid))
        job = db.session.scalar(select(Job).where(Job.kind == "deliver", Job.ref == str(note.id)))
        assert (job.status, job.attempts) == ("done", 2)
        assert job.worker == "rescuer"
    assert stack.smtp.sink.ids() == [f"<notification-{note.id}@localhost>"]
    assert second.process.poll() is None


def fast_sla_process(stack, sla: str) -> None:
    """Deploy normal_change with the authorization SLA shortened to `sla` (ISO duration)."""
    xml = (Path(__file__).resolve().parent.parent / "processes" / "normal_change.bpmn").read_text()
    xml, replaced = re.subn(
        r'(<bpmn:timerEventDefinition id="TimerEventDefinition_AuthorizeOverdue">\s*)<bpmn:timeDate[^>]*>[^<]*</bpmn:timeDate>',
        rf'\1<bpmn:timeDuration xsi:type="bpmn:tFormalExpression">"{sla}"</bpmn:timeDuration>', xml)
    assert replaced == 1
    with stack.session():
        paula = db.session.scalar(select(User).where(User.username == "paula"))
        deploy_files(db.session, {"normal_change.bpmn": xml}, paula)
        db.session.commit()


def test_nothing_is_lost_when_redis_is_flushed(stack):
    fast_sla_process(stack, "PT1S")
    cid = stack.api.submit()["id"]  # an approval waiting, with a timer due in a second
    queue_mail(stack, cid, 5)
    assert stack.redis.dbsize() > 0
    stack.redis.flushdb()  # Redis loses every queued and scheduled job
    time.sleep(1.5)  # the timer falls due while no worker runs
    stack.start_worker("after-flush")
    wait_until(lambda: counts(stack, kind="approval_overdue", status="sent") == 1, timeout=60,
               what="the timer to fire and its escalation to be sent")
    wait_until(lambda: counts(stack) == counts(stack, status="sent"), timeout=30, what="all mail sent")
    assert counts(stack, kind="request_approved") == 5
    assert len(stack.smtp.sink.ids()) == counts(stack)
    assert stack.api.task("morgan", cid, "Authorize change")["status"] == "ready"  # the approval stays open


def test_nothing_is_lost_when_redis_restarts_under_a_running_worker(stack):
    with PrivateRedis() as redis_server:
        web = stack.api.with_settings(redis_url=redis_server.url)
        worker = stack.start_worker("survivor", redis_url=redis_server.url)
        first = web.submit()["id"]
        wait_until(lambda: counts(stack, status="sent") == 1, timeout=30, what="delivery before the restart")
        redis_server.kill()  # Redis goes away (and comes back empty: it keeps nothing on disk)
        second = web.submit()["id"]  # the web cannot hand the job to Redis; the row waits
        web.act("morgan", first, {"decision": "approve", "comment": "ok"}, name="Authorize change")
        redis_server.start()
        wait_until(lambda: counts(stack) == counts(stack, status="sent"), timeout=60,
                   what="everything written while Redis was down to be delivered")
        assert counts(stack, change_id=second, kind="task_waiting") == 1
        assert counts(stack, change_id=first, kind="request_approved") == 1
        assert len(stack.smtp.sink.ids()) == counts(stack) == len(set(stack.smtp.sink.ids()))
        assert worker.process.poll() is None  # the worker rode it out


def test_a_worker_whose_rq_loop_gives_up_while_redis_is_away_starts_again(stack):
    """Redis vanishes while rq records the end of a job, so rq abandons its loop; Redis is back by the
    time rq has torn down, so rq returns as if asked to stop. The worker must start again, not exit.
    The scheduler child is held (SIGSTOP) so that Redis comes back during the teardown every time."""
    with PrivateRedis() as redis_server:
        web = stack.api.with_settings(redis_url=redis_server.url)
        worker = stack.start_worker("midjob", redis_url=redis_server.url)
        scheduler = wait_until(lambda: child_pids(worker.process.pid), timeout=30, what="rq's scheduler")[0]
        os.kill(scheduler, signal.SIGSTOP)
        try:
            # A job that takes Redis down under the worker running it.
            Queue(stack.settings.queue_name, connection=Redis.from_url(redis_server.url)).enqueue(
                os.system, f"kill -9 {redis_server.process.pid}; sleep 0.3")
            redis_server.process.wait(timeout=30)
            wait_until(lambda: "quitting" in worker.output(), timeout=30, what="rq to give up its loop")
            redis_server.start()
        finally:
            os.kill(scheduler, signal.SIGCONT)
        cid = web.submit()["id"]
        wait_until(lambda: worker.process.poll() is not None or (
            counts(stack, change_id=cid) and counts(stack) == counts(stack, status="sent")),
            timeout=60, what="mail written after Redis came back to be delivered")
        assert worker.process.poll() is None
        assert counts(stack, change_id=cid, status="sent") == counts(stack, change_id=cid) > 0
        os.killpg(worker.process.pid, signal.SIGTERM)  # and the worker it started again still stops when asked
        assert worker.process.wait(timeout=10) == 0


def child_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in children.read_text().split()] if children.exists() else []


def test_smtp_down_retries_with_backoff_then_dead_letter_and_the_change_goes_on(stack):
    with DroppingServer() as down:
        stack.start_worker("w-down", smtp_port=down.port)
        cid = stack.api.submit()["id"]
        wait_until(lambda: counts(stack, status="failed") == 1, timeout=60, what="a dead letter")
        first, second, third = down.attempts[:3]
        assert len(down.attempts) == 3  # max attempts, then no more
        assert third - second > second - first  # backoff grows (0.5 s, then 2 s)
        assert third - second >= 1.9
        dead = stack.api.get("/api/admin/outbox", "ada", query_string={"status": "failed"}).get_json()["items"]
        assert [(d["kind"], d["attempts"]) for d in dead] == [("task_waiting", 3)]
        assert "closed" in dead[0]["last_error"].lower() or "disconnect" in dead[0]["last_error"].lower()
        # the workflow never waited for the mail server
        stack.api.act("morgan", cid, {"decision": "approve", "comment": "ok"}, name="Authorize change")
        assert stack.api.change(cid)["state"] == "scheduled"


def test_jobs_racing_users_on_the_same_instance_never_corrupt_it(stack):
    fast_sla_process(stack, "PT2S")
    stack.start_worker("r1")
    stack.start_worker("r2")
    wait_until(lambda: running_workers(stack) == 2, what="two workers registered")
    changes = [stack.api.submit()["id"] for _ in range(8)]
    time.sleep(1.8)  # the SLA timers fall due while the manager approves
    for cid in changes:
        task = stack.api.task("morgan", cid, "Authorize change")
        for _ in range(20):
            answer = stack.api.post(f"/api/tasks/{task['id']}/complete", "morgan",
                                    json={"data": {"decision": "approve", "comment": "ok"}})
            if answer.status_code != 409:
                break
            time.sleep(0.2)  # a worker held the instance: try again, as a client would
        assert answer.status_code == 200, answer.get_json()
    with stack.session():
        wait_until(lambda: not db.session.scalar(select(func.count()).select_from(Job).where(
            Job.kind == "timer", Job.status.in_(("pending", "running")))), timeout=30, what="timers settled")
        assert db.session.scalar(select(func.count()).select_from(Job).where(Job.status == "failed")) == 0
        for cid in changes:
            assert db.session.get(Change, cid).state == "scheduled"
            instance = db.session.scalar(select(ProcessInstance).where(ProcessInstance.change_id == cid))
            workflow = load_workflow(db.session, instance)
            engine_ready = {str(t.id) for t in workflow.get_tasks(state=TaskState.READY, manual=True,
                                                                  max_depth=MAX_DEPTH)}
            rows_ready = set(db.session.scalars(select(Task.id).where(Task.change_id == cid, Task.status == "ready")))
            assert engine_ready == rows_ready and len(rows_ready) == 1  # Schedule change, nothing else
            completed = db.session.scalars(select(Task.name).where(Task.change_id == cid,
                                                                   Task.status == "completed")).all()
            assert completed == ["Authorize change"]
            escalations = db.session.scalar(select(func.count()).select_from(Notification).where(
                Notification.change_id == cid, Notification.kind == "approval_overdue"))
            assert escalations <= 1
            assert all(UUID(t) for t in rows_ready)


def test_a_change_waiting_for_its_conflict_check_goes_ahead_of_queued_mail(stack):
    """The conflict check after scheduling is a background step; 80 e-mails queued before it must not delay it."""
    cid = stack.api.submit()["id"]
    stack.api.act("morgan", cid, {"decision": "approve", "comment": "ok"}, name="Authorize change")
    stack.api.attach_required(cid)
    queue_mail(stack, cid, 80)  # handed to Redis now; no worker runs yet
    change = stack.api.change(cid)
    stack.api.act("morgan", cid, {"planned_start": change["planned_start"], "planned_end": change["planned_end"],
                                  "implementer": "ivan"}, name="Schedule change")
    with stack.session():
        step = db.session.scalar(select(Job).where(Job.kind == "service_task", Job.change_id == cid))
        assert step is not None and step.status == "pending"
        waiting_mail = db.session.scalar(select(func.count()).select_from(Job).where(
            Job.kind == "deliver", Job.status == "pending"))
        assert waiting_mail >= 80

    stack.start_worker("p1")
    with stack.session():
        wait_until(lambda: db.session.scalar(select(Job.status).where(Job.id == step.id)
                                             .execution_options(populate_existing=True)) == "done",
                   timeout=60, what="the conflict check ran")
        db.session.expire_all()
        first_mail = db.session.scalar(select(func.min(Job.finished_at)).where(Job.kind == "deliver",
                                                                                Job.status == "done"))
        checked_at = db.session.get(Job, step.id).finished_at
    assert first_mail is None or checked_at <= first_mail
    assert stack.api.change(cid)["state"] == "scheduled"


def test_a_niced_worker_runs_at_lower_cpu_priority_and_still_delivers(stack):
    """`changeflow worker --nice N` for workers that share cores with the web server."""
    cid = stack.api.submit()["id"]
    ids = queue_mail(stack, cid, 3)
    worker = stack.start_worker("n1", args=("--nice", "7"))

    def all_sent() -> bool:
        with stack.session():
            return set(db.session.scalars(select(Notification.status).where(Notification.id.in_(ids)))) == {"sent"}

    wait_until(all_sent, timeout=60, what="the niced worker's deliveries")
    niceness = int(Path(f"/proc/{worker.process.pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    assert niceness == os.nice(0) + 7

