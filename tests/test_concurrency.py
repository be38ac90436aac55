"""Concurrent writers: exactly one wins, the other gets 409, and the instance stays intact."""
from __future__ import annotations

import threading

from sqlalchemy import func, select

from engine.models import Approval, ProcessInstance, Task
from webui.extensions import db


def _race(api, calls):
    """Run `calls` (user, path, body) at the same moment from separate threads."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, user, path, body):
        client = api.app.test_client()
        barrier.wait()
        results[i] = client.post(path, json=body, headers={"Authorization": f"Bearer demo-{user}"})

    threads = [threading.Thread(target=run, args=(i, *call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_managers_completing_one_task_one_wins(api, backend):
    for _ in range(5 if backend == "postgresql" else 2):
        change = api.submit()
        task = api.task("morgan", change["id"])
        path = f"/api/tasks/{task['id']}/complete"
        responses = _race(api, [
            ("morgan", path, {"data": {"decision": "approve", "comment": "first"}}),
            ("morgan", path, {"data": {"decision": "reject", "comment": "second"}}),
        ])
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 409], [r.get_json() for r in responses]
        loser = next(r for r in responses if r.status_code == 409).get_json()
        assert loser["message"]

        with api.app.app_context():
            approvals = db.session.scalars(select(Approval).where(Approval.change_id == change["id"])).all()
            assert len(approvals) == 1
            ready = db.session.scalar(select(func.count()).select_from(Task).where(
                Task.change_id == change["id"], Task.status == "ready"))
            assert ready == 1
            instance = db.session.scalar(select(ProcessInstance).where(ProcessInstance.change_id == change["id"]))
            assert instance.lock_version == 2  # inserted at 1, then exactly one completion

        winner = approvals[0].decision
        expected = {"approve": ("scheduled", "Schedule change"), "reject": ("new", "Rework change request")}[winner]
        assert api.change(change["id"])["state"] == expected[0]
        next_user = "morgan" if winner == "approve" else "alice"
        assert api.task(next_user, change["id"])["name"] == expected[1]


def test_two_claims_one_wins(api):
    change = api.submit()
    with api.app.app_context():
        from engine.accounts import create_user, issue_token

        user = create_user(db.session, "morgan2", ["change_manager"])
        issue_token(db.session, user, token="demo-morgan2")
        db.session.commit()
    task = api.task("morgan", change["id"])
    responses = _race(api, [("morgan", f"/api/tasks/{task['id']}/claim", None),
                            ("morgan2", f"/api/tasks/{task['id']}/claim", None)])
    assert sorted(r.status_code for r in responses) == [200, 409]
    winner = next(r for r in responses if r.status_code == 200).get_json()["assignee"]
    loser = "morgan2" if winner == "morgan" else "morgan"
    assert [t for t in api.inbox(loser) if t["change_id"] == change["id"]] == []
