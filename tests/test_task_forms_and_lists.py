"""Form validation, claiming, refused change requests and the change list — through the real API."""
from __future__ import annotations

from .client import NORMAL_CHANGE
from .test_processes_e2e import (DONE, WINDOW, approved, inbox_for, make_user, ready_tasks, standard_template,
                                 state)


def refused_fields(api, user: str, task_id: str, data: dict) -> list[str]:
    response = api.post(f"/api/tasks/{task_id}/complete", user, json={"data": data})
    assert response.status_code == 422, (data, response.get_json())
    return [e["field"] for e in response.get_json()["errors"]]


def snapshot(api, change_id: int):
    trace = api.trace(change_id)
    return trace["change"], len(trace["events"]), trace["approvals"], [t["id"] for t in ready_tasks(api, change_id)]


def assert_all_refused(api, user: str, change_id: int, cases: list[tuple[dict, list[str]]]) -> None:
    task = api.task(user, change_id)
    before = snapshot(api, change_id)
    for data, fields in cases:
        assert set(refused_fields(api, user, task["id"], data)) == set(fields), data
    assert snapshot(api, change_id) == before  # nothing stored: no state, events, approvals, tasks
    assert api.task(user, change_id)["id"] == task["id"]


def test_invalid_form_data_is_refused_field_by_field_and_nothing_is_stored(api):
    cid = api.submit()["id"]
    assert_all_refused(api, "morgan", cid, [
        ({}, ["decision"]),
        ({"decision": "maybe"}, ["decision"]),
        ({"decision": "approve", "colour": "red"}, ["colour"]),
        ({"decision": "maybe", "colour": "red"}, ["colour", "decision"]),
        ({"decision": "reject"}, ["comment"]),
        ({"decision": "reject", "comment": "   "}, ["comment"]),
    ])
    assert api.trace(cid)["approvals"] == [] and state(api, cid) == "authorize"
    api.act("morgan", cid, {"decision": "approve"})
    api.attach_required(cid)
    assert_all_refused(api, "morgan", cid, [
        ({"implementer": "ivan"}, ["planned_end", "planned_start"]),
        ({**WINDOW, "implementer": "nobody"}, ["implementer"]),
        ({"planned_start": WINDOW["planned_end"], "planned_end": WINDOW["planned_start"], "implementer": "ivan"},
         ["planned_end"]),
        ({**WINDOW, "planned_start": "next Tuesday", "implementer": "ivan"}, ["planned_start"]),
    ])
    api.act("morgan", cid, {**WINDOW, "implementer": "ivan"})
    api.wait_for_window(cid)
    assert_all_refused(api, "ivan", cid, [
        ({**DONE, "actual_start": "2037-12-06T21:05:00"}, ["actual_start"]),
        ({**DONE, "actual_end": "yesterday"}, ["actual_end"]),
        ({**DONE, "implementation_result": "done"}, ["implementation_result"]),
        ({**DONE, "implementation_result": "failed"}, ["implementation_notes"]),
    ])
    assert state(api, cid) == "implement"


def test_each_missing_form_field_is_reported_once(api):
    cid = approved(api)
    fields = refused_fields(api, "morgan", api.task("morgan", cid)["id"], {"note": "Window to be agreed."})
    assert sorted(fields) == ["implementer", "planned_end", "planned_start"]


def test_scheduling_refuses_an_implementer_who_may_not_act_on_tasks(api):
    """An auditor may not complete tasks, so an implementation assigned to one could never finish."""
    cid = approved(api)
    task = api.task("morgan", cid)
    assert refused_fields(api, "morgan", task["id"], {**WINDOW, "implementer": "audrey"}) == ["implementer"]
    assert state(api, cid) == "scheduled"


def test_claim_unclaim_and_completing_a_finished_task(api):
    mona = make_user(api, "mona", "change_manager")
    cid = api.submit()["id"]
    task = api.task("morgan", cid)
    assert [t["id"] for t in inbox_for(api, mona, cid)] == [task["id"]]
    path = f"/api/tasks/{task['id']}"

    claimed = api.post(f"{path}/claim", "morgan")
    assert claimed.status_code == 200 and claimed.get_json()["assignee"] == "morgan"
    assert inbox_for(api, mona, cid) == [] and api.task("morgan", cid)["assignee"] == "morgan"
    assert api.request("POST", f"{path}/claim", token=mona).status_code == 409
    taken = api.request("POST", f"{path}/complete", token=mona, json={"data": {"decision": "approve"}})
    assert taken.status_code == 403, taken.get_json()
    assert api.request("POST", f"{path}/unclaim", token=mona).status_code == 409

    released = api.post(f"{path}/unclaim", "morgan")
    assert released.status_code == 200 and released.get_json()["assignee"] is None
    assert [t["assignee"] for t in inbox_for(api, mona, cid)] == [None]
    kinds = [e["kind"] for e in api.trace(cid)["events"]]
    assert kinds.count("task_claimed") == 1 and kinds.count("task_unclaimed") == 1

    api.complete("morgan", task["id"], {"decision": "approve"})
    api.complete("morgan", task["id"], {"decision": "reject", "comment": "Too late."}, expect=409)
    assert api.post(f"{path}/claim", "morgan").status_code == 409
    assert state(api, cid) == "scheduled" and len(api.trace(cid)["approvals"]) == 1


def test_invalid_change_requests_are_refused_naming_the_field(api):
    missing = object()
    cases = [
        ({"services": ["crm-web", "no-such-service"]}, "services"),
        ({"planned_end": "2037-12-05T21:00:00+01:00"}, "planned_end"),
        ({"planned_start": "2037-12-05T22:00:00"}, "planned_start"),
        ({"impact": 4}, "impact"),
        ({"colour": "blue"}, "colour"),
        ({"title": missing}, "title"),
        ({"category": "gardening"}, "category"),
        ({"implementer": "nobody"}, "implementer"),
        ({"change_type": "emergency"}, "emergency_reason"),
        ({"change_type": "emergency", "emergency_reason": "   "}, "emergency_reason"),
    ]
    for overrides, field in cases:
        body = {k: v for k, v in {**NORMAL_CHANGE, **overrides}.items() if v is not missing}
        response = api.post("/api/changes", "alice", json=body)
        assert response.status_code == 422, (overrides, response.get_json())
        errors = response.get_json()["errors"]
        assert isinstance(errors, list) and all(e["field"] and e["message"] for e in errors), errors
        assert field in [e["field"] for e in errors], (overrides, errors)
    assert api.get("/api/changes", "audrey").get_json()["total"] == 0


def listed(api, **query) -> list[int]:
    response = api.get("/api/changes", "audrey", query_string=query)
    assert response.status_code == 200, response.get_json()
    return [c["id"] for c in response.get_json()["items"]]


def test_change_list_filters_and_pages(api):
    created = [
        api.submit(),
        api.submit(services=["payroll"], rollback_plan="", rollback_tested=False),
        api.submit(**standard_template(api)),
        api.submit("morgan", change_type="emergency", emergency_reason="Outage", services=["firewall"]),
    ]
    newest_first = sorted((c["id"] for c in created), reverse=True)
    assert listed(api) == newest_first

    def expect(predicate):
        ids = [c["id"] for c in sorted(created, key=lambda c: -c["id"]) if predicate(c)]
        assert 0 < len(ids) < len(created)  # the filter must actually discriminate
        return ids

    assert listed(api, state="authorize") == expect(lambda c: c["state"] == "authorize")
    assert listed(api, type="standard") == expect(lambda c: c["change_type"] == "standard")
    assert listed(api, risk="high") == expect(lambda c: c["risk"] == "high")
    assert listed(api, service="payroll") == expect(lambda c: "payroll" in c["services"])
    assert listed(api, requester="morgan") == expect(lambda c: c["requester"] == "morgan")
    assert listed(api, type="normal", risk="low") == expect(lambda c: c["change_type"] == "normal" and c["risk"] == "low")
    assert listed(api, state="closed") == []

    pages = [api.get("/api/changes", "audrey", query_string={"per_page": 3, "page": p}).get_json() for p in (1, 2, 3)]
    assert [(p["total"], p["page"], p["per_page"]) for p in pages] == [(4, 1, 3), (4, 2, 3), (4, 3, 3)]
    assert [c["id"] for p in pages for c in p["items"]] == newest_first
    assert pages[2]["items"] == []
    bad = api.get("/api/changes", "audrey", query_string={"state": "sideways"})
    assert bad.status_code == 422 and "state" in [e["field"] for e in bad.get_json()["errors"]]


def test_the_inbox_pages_with_a_total_and_links(api):
    for index in range(5):
        api.submit(title=f"Rotate certificate {index}")
    everything = api.get("/api/tasks", "morgan")
    assert everything.status_code == 200
    all_ids = [t["id"] for t in everything.get_json()]
    assert len(all_ids) == 5 and everything.headers["X-Total-Count"] == "5"
    assert 'rel="next"' not in everything.headers["Link"]

    pages = [api.get("/api/tasks", "morgan", query_string={"per_page": 2, "page": p}) for p in (1, 2, 3, 4)]
    assert [len(p.get_json()) for p in pages] == [2, 2, 1, 0]
    assert {p.headers["X-Total-Count"] for p in pages} == {"5"}
    assert [t["id"] for p in pages for t in p.get_json()] == all_ids  # same order, no overlap
    assert '<http://localhost/api/tasks?page=2&per_page=2>; rel="next"' in pages[0].headers["Link"]
    assert 'rel="next"' not in pages[2].headers["Link"] and 'page=3&per_page=2>; rel="last"' in pages[2].headers["Link"]

    filtered = api.get("/api/tasks", "morgan", query_string={"role": "change_manager", "per_page": 1, "page": 2})
    assert filtered.headers["X-Total-Count"] == "5" and "role=change_manager" in filtered.headers["Link"]
    for bad in ({"per_page": 0}, {"per_page": 501}, {"page": 0}):
        refused = api.get("/api/tasks", "morgan", query_string=bad)
        assert refused.status_code == 422 and list(bad) == [e["field"] for e in refused.get_json()["errors"]]


def test_the_inbox_total_leaves_out_what_segregation_of_duties_hides(api):
    """The total is counted by its own query; it must agree with the list, SoD exclusions included."""
    mine = api.submit("morgan", title="Morgan's own change")  # morgan may not authorize it
    others = [api.submit(title=f"Rotate certificate {index}") for index in range(4)]
    api.act("morgan", others[0]["id"], {"decision": "approve", "comment": "Fine."}, name="Authorize change")
    listed = [t["change_id"] for t in api.get("/api/tasks", "morgan", query_string={"per_page": 500}).get_json()]
    assert len(listed) >= 3 and mine["id"] not in listed
    for user in ("morgan", "alice", "sam", "casey"):
        full = api.get("/api/tasks", user, query_string={"per_page": 500}).get_json()
        counted = api.get("/api/tasks", user, query_string={"per_page": 1, "page": 2})
        assert counted.headers["X-Total-Count"] == str(len(full)), user


def test_an_approver_who_decided_in_this_round_is_not_offered_the_step_again_until_the_next(api):
    """Segregation of duties in the inbox query itself: a decision already recorded for the step in
    the change's current round hides the step's task from that approver; a new round shows it."""
    from sqlalchemy import select

    from engine.models import Approval, Change, User
    from webui.extensions import db

    cid = api.submit()["id"]
    authorize = api.task("morgan", cid, "Authorize change")
    with api.app.app_context():
        morgan = db.session.scalar(select(User).where(User.username == "morgan"))
        change = db.session.get(Change, cid)
        db.session.add(Approval(change_id=cid, task_id="earlier-vote", step=authorize["approval_step"],
                                approver_id=morgan.id, role="change_manager", decision="approve",
                                round=change.approval_round))
        db.session.commit()
    waiting = api.get("/api/tasks", "morgan", query_string={"change": cid})
    assert waiting.get_json() == [] and waiting.headers["X-Total-Count"] == "0"
    with api.app.app_context():
        db.session.get(Change, cid).approval_round += 1
        db.session.commit()
    again = api.get("/api/tasks", "morgan", query_string={"change": cid})
    assert [t["id"] for t in again.get_json()] == [authorize["id"]] and again.headers["X-Total-Count"] == "1"


def test_inbox_filters_narrow_the_list_and_its_total_one_combination_at_a_time(api):
    """Each combination of filters has a statement of its own (built once): none may answer for another."""
    first, second = (api.submit(title=f"Rotate certificate {name}")["id"] for name in ("A", "B"))

    def inbox(**query):
        answer = api.get("/api/tasks", "morgan", query_string=query)
        assert answer.status_code == 200
        return [t["change_id"] for t in answer.get_json()], int(answer.headers["X-Total-Count"])

    assert inbox(change=first) == ([first], 1)
    assert inbox(change=second) == ([second], 1)
    assert inbox(change=first, role="change_manager") == ([first], 1)
    assert inbox(change=first, role="implementer") == ([], 0)
    listed, total = inbox(role="change_manager")
    assert {first, second} <= set(listed) and total == len(listed)
    assert inbox(change=second, page=2, per_page=1) == ([], 1)  # past the last page: the filtered count
