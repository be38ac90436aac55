"""Compacting stored workflow state (engine.workflow_store): a change reworked again and again keeps a
small state and keeps running, and nothing a trace, an inbox or the engine reads changes."""
from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from SpiffWorkflow.util.task import TaskState

from engine import workflow_store
from engine.bpmn.specs import SPECS
from engine.models import ProcessInstance
from engine.runtime import MAX_DEPTH, load_workflow, workflow_elements
from engine.scripting import ChangeflowScriptEngine
from webui.extensions import db

WINDOW = {"planned_start": "2037-12-06T21:00:00+01:00", "planned_end": "2037-12-06T22:45:00+01:00"}
DONE = {"actual_start": "2037-12-06T21:05:00+01:00", "actual_end": "2037-12-06T22:10:00+01:00",
        "implementation_result": "completed"}
REVIEWED = {"close_code": "successful", "close_notes": "Release is live, no incidents."}


@contextmanager
def compaction(monkeypatch, after):
    with monkeypatch.context() as patch:
        patch.setattr(workflow_store, "COMPACT_AFTER", after)
        yield


def rework(api, change_id: int, rounds: int) -> None:
    for round_ in range(rounds):
        api.act("morgan", change_id, {"decision": "reject", "comment": f"Round {round_}: not yet."},
                name="Authorize change")
        api.act("alice", change_id, {"rework_action": "resubmit", "comment": f"Round {round_}: fixed."},
                name="Rework change request")


def stored(api, change_id: int) -> str:
    with api.app.app_context():
        return db.session.scalar(select(ProcessInstance.state).where(ProcessInstance.change_id == change_id))


def load(api, change_id: int):
    with api.app.app_context():
        instance = db.session.scalar(select(ProcessInstance).where(ProcessInstance.change_id == change_id))
        return load_workflow(db.session, instance)


def depth(workflow) -> int:
    levels, task = 0, workflow.last_task
    while task is not None:
        levels, task = levels + 1, task.parent
    return levels


def snapshot(api, change_id: int) -> dict:
    """What people and the engine see of a change: its state, its waiting tasks, the diagram path."""
    trace = api.trace(change_id)
    diagram = trace["diagram"]
    return {"state": api.change(change_id)["state"],
            "ready": sorted((t["element_id"], t["name"]) for t in trace["tasks"] if t["status"] == "ready"),
            "completed": diagram["completed_element_ids"], "active": sorted(diagram["active_element_ids"]),
            "events": [e["kind"] for e in trace["events"]],
            "completed_tasks": workflow_store.completed_tasks(stored(api, change_id))[1]}


def walk(api, snapshots: list) -> int:
    """A moderate-risk change, rejected by the change manager and by the service owner, left waiting past
    its approval SLA, then approved and taken to closure; a snapshot after every step."""
    change_id = api.submit(rollback_tested=False)["id"]
    snapshots.append(snapshot(api, change_id))
    rework(api, change_id, 3)
    snapshots.append(snapshot(api, change_id))
    for round_ in range(2):
        api.act("morgan", change_id, {"decision": "approve"}, name="Authorize change")
        api.act("sam", change_id, {"decision": "reject", "comment": f"Owner round {round_}."},
                name="Service owner approval")
        api.act("alice", change_id, {"rework_action": "resubmit"}, name="Rework change request")
    api.act("morgan", change_id, {"decision": "approve"}, name="Authorize change")
    snapshots.append(snapshot(api, change_id))
    api.run_due(datetime.now(timezone.utc) + timedelta(days=4))  # the owner approval's SLA timer fires
    snapshots.append(snapshot(api, change_id))
    api.act("sam", change_id, {"decision": "approve"}, name="Service owner approval")
    api.attach(change_id, "test_result", "business_sign_off")
    api.act("morgan", change_id, {**WINDOW, "implementer": "ivan"}, name="Schedule change")
    api.act("morgan", change_id, {"decision": "approve"}, name="Review rollback plan")
    snapshots.append(snapshot(api, change_id))
    api.wait_for_window(change_id)
    api.act("ivan", change_id, DONE)
    api.attach(change_id, "verification", user="ivan")
    api.act("morgan", change_id, REVIEWED, name="Post-implementation review")
    api.accept(change_id)
    snapshots.append(snapshot(api, change_id))
    return change_id


def test_compaction_changes_nothing_a_trace_an_inbox_or_the_engine_reads(api, monkeypatch):
    plain, compacted = [], []
    with compaction(monkeypatch, None):
        reference = walk(api, plain)
    with compaction(monkeypatch, 5):  # compacts at nearly every load and save
        walked = walk(api, compacted)
        assert api.change(walked)["state"] == "closed"
        assert workflow_store.HISTORY_KEY in json.loads(stored(api, walked))
    assert workflow_store.HISTORY_KEY not in json.loads(stored(api, reference))
    assert compacted == plain
    assert len(json.loads(stored(api, walked))["tasks"]) < len(json.loads(stored(api, reference))["tasks"]) / 2


def test_a_change_reworked_past_a_thousand_levels_keeps_running_and_stays_small(api):
    """Each round hangs ~11 tasks below the last: uncompacted, SpiffWorkflow failed with RecursionError
    after ~90 rounds (Task.is_descendant_of recursing once per level) and stopped seeing tasks deeper
    than 1,000 levels."""
    change_id = api.submit()["id"]
    rework(api, change_id, 120)
    state = stored(api, change_id)
    held, lifetime = workflow_store.completed_tasks(state)
    assert lifetime > 1_300 and held < workflow_store.COMPACT_AFTER + 60
    assert len(json.loads(state)["tasks"]) < workflow_store.COMPACT_AFTER + 150
    assert depth(load(api, change_id)) < workflow_store.COMPACT_AFTER + 80
    api.act("morgan", change_id, {"decision": "approve"})
    assert api.change(change_id)["state"] == "scheduled"
    diagram = api.trace(change_id)["diagram"]
    assert diagram["active_element_ids"] == ["Task_Schedule"]
    assert diagram["completed_element_ids"][:5] == [
        "StartEvent_Submitted", "Task_SetState_Assess", "Task_AssessRisk", "Task_CalculatePriority",
        "Task_SetState_Authorize"]
    assert {"Task_Rework", "Gateway_Rework", "Task_SetState_New", "Task_SetState_Scheduled"} <= set(
        diagram["completed_element_ids"])
    assert [t["name"] for t in api.inbox("morgan") if t["change_id"] == change_id] == ["Schedule change"]


def test_a_state_written_before_compaction_loads_the_same_and_runs_on(api, monkeypatch):
    with compaction(monkeypatch, None):
        change_id = api.submit()["id"]
        rework(api, change_id, 25)
        old = stored(api, change_id)
        before = api.trace(change_id)["diagram"]
        full = load(api, change_id)
    assert workflow_store.HISTORY_KEY not in json.loads(old)

    with api.app.app_context():
        instance = db.session.scalar(select(ProcessInstance).where(ProcessInstance.change_id == change_id))
        spec, subprocess_specs = SPECS.get(instance.process_version)
    compact = workflow_store.load_state(old, spec, subprocess_specs, ChangeflowScriptEngine(None))
    assert len(compact.tasks) < len(full.tasks) / 2
    assert workflow_elements(compact) == workflow_elements(full)
    assert api.trace(change_id)["diagram"] == before  # the trace compacts on load, and shows the same

    stubs = set(compact.changeflow_history["stubs"])
    earliest = {}
    for task in full.get_tasks(state=TaskState.COMPLETED, max_depth=MAX_DEPTH):
        if task.id not in compact.tasks or str(task.id) in stubs:
            earliest[task.task_spec.name] = min(earliest.get(task.task_spec.name, task.last_state_change),
                                                task.last_state_change)
    rehung = []
    for task in compact.get_tasks(max_depth=MAX_DEPTH):
        if str(task.id) in stubs:  # one per element, completed when the element first completed
            assert task.state == TaskState.COMPLETED and task.data == {}
            assert task.last_state_change == earliest.pop(task.task_spec.name)
            continue
        kept = full.get_task_from_id(task.id)  # everything else as it was
        assert (task.task_spec, task.state, task.last_state_change, task.data, task.internal_data) == (
            kept.task_spec, kept.state, kept.last_state_change, kept.data, kept.internal_data)
        if task.parent is not None and task.parent.id != kept.parent.id:
            rehung.append(task)
    assert not {name for name in earliest if getattr(spec.task_specs[name], "bpmn_id", None)}
    assert len(rehung) == 1 and str(rehung[0].parent.id) in stubs  # the cut, below the last stub
    assert {t.id for t in compact.get_tasks(state=TaskState.READY, max_depth=MAX_DEPTH)} == {
        t.id for t in full.get_tasks(state=TaskState.READY, max_depth=MAX_DEPTH)}
    assert workflow_store.completed_tasks(workflow_store.dump_state(compact))[1] == \
        workflow_store.completed_tasks(old)[1]

    api.act("morgan", change_id, {"decision": "approve"})
    assert api.change(change_id)["state"] == "scheduled"
    assert workflow_store.HISTORY_KEY in json.loads(stored(api, change_id))
    compacted_trace = api.trace(change_id)["diagram"]
    with compaction(monkeypatch, None):  # code without compaction reads a compacted state as any other
        assert api.trace(change_id)["diagram"] == compacted_trace


def test_an_ordinary_change_keeps_the_state_format_it_always_had(api, monkeypatch):
    change_id = api.submit()["id"]
    rework(api, change_id, 2)
    workflow = load(api, change_id)
    compacted = workflow_store.dump_state(workflow)
    with compaction(monkeypatch, None):
        assert workflow_store.dump_state(workflow) == compacted == stored(api, change_id)
