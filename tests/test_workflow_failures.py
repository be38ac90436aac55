"""When a script fails inside the engine: the command is rolled back whole and an incident is kept."""
from __future__ import annotations

import pytest
from lxml import etree
from sqlalchemy import func, select

from engine.config import PROJECT_ROOT
from engine.models import AuditEvent, Change, Incident, ProcessInstance, Task
from webui.extensions import db

from .client import NORMAL_CHANGE

PROCESSES = PROJECT_ROOT / "processes"
NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
      "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
      "dc": "http://www.omg.org/spec/DD/20100524/DC",
      "di": "http://www.omg.org/spec/DD/20100524/DI"}
APPROVE_PATH = "Flow_Approve"  # Gateway_Decision -> Task_SetState_Scheduled, after Task_Authorize
BEFORE_FIRST_USER_TASK = "Flow_SetStateAuthorize_Authorize"  # Task_SetState_Authorize -> Task_Authorize


def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


def with_script_on(flow_id: str, script: str, *, task_id: str = "Task_Broken", name: str = "Broken step") -> str:
    """processes/normal_change.bpmn with a script task spliced into sequence flow `flow_id`."""
    root = etree.fromstring((PROCESSES / "normal_change.bpmn").read_bytes())
    process = root.find("bpmn:process", NS)
    flow = process.find(f"bpmn:sequenceFlow[@id='{flow_id}']", NS)
    source, target = flow.get("sourceRef"), flow.get("targetRef")
    out_id = f"Flow_{task_id}_Out"

    task = etree.SubElement(process, _q("bpmn", "scriptTask"), id=task_id, name=name)
    etree.SubElement(task, _q("bpmn", "incoming")).text = flow_id
    etree.SubElement(task, _q("bpmn", "outgoing")).text = out_id
    etree.SubElement(task, _q("bpmn", "script")).text = script
    flow.set("targetRef", task_id)
    etree.SubElement(process, _q("bpmn", "sequenceFlow"), id=out_id, sourceRef=task_id, targetRef=target)
    target_node = process.find(f"*[@id='{target}']")
    next(i for i in target_node.findall("bpmn:incoming", NS) if i.text == flow_id).text = out_id
    lane = next(ref.getparent() for ref in process.iterfind(".//bpmn:flowNodeRef", NS) if ref.text == source)
    etree.SubElement(lane, _q("bpmn", "flowNodeRef")).text = task_id

    # Diagram: a shape under the old target and an edge from it, so the modeller can still draw it.
    plane = root.find("bpmndi:BPMNDiagram/bpmndi:BPMNPlane", NS)
    bounds = plane.find(f"bpmndi:BPMNShape[@bpmnElement='{target}']/dc:Bounds", NS)
    x, y = float(bounds.get("x")), float(bounds.get("y")) + 100
    shape = etree.SubElement(plane, _q("bpmndi", "BPMNShape"), id=f"{task_id}_di", bpmnElement=task_id)
    etree.SubElement(shape, _q("dc", "Bounds"), x=str(x), y=str(y), width="100", height="80")
    edge = plane.find(f"bpmndi:BPMNEdge[@bpmnElement='{flow_id}']", NS)
    edge.findall("di:waypoint", NS)[-1].attrib.update({"x": str(x), "y": str(y + 40)})
    new_edge = etree.SubElement(plane, _q("bpmndi", "BPMNEdge"), id=f"{out_id}_di", bpmnElement=out_id)
    etree.SubElement(new_edge, _q("di", "waypoint"), x=str(x + 50), y=str(y))
    etree.SubElement(new_edge, _q("di", "waypoint"), x=str(x + 50), y=str(y - 20))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode("utf-8")


def deploy(api, xml: str, expect: int = 201) -> dict:
    response = api.post("/api/process-definitions", "paula", json={"files": {"normal_change.bpmn": xml}})
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def total_changes(api) -> int:
    response = api.get("/api/changes", "morgan")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["total"]


def incident(api, incident_id: int) -> Incident:
    with api.app.app_context():
        row = db.session.get(Incident, incident_id)
        db.session.expunge(row)
        db.session.remove()
    return row


# -- a failing script on the approve path --------------------------------------------------------

def test_failing_script_rolls_back_the_whole_completion(api):
    [v2] = deploy(api, with_script_on(APPROVE_PATH, "result = 1 / 0"))["deployed"]
    assert v2["version"] == 2
    change = api.submit()
    assert change["state"] == "authorize"
    task = api.task("morgan", change["id"])
    events_before = [e["kind"] for e in api.trace(change["id"])["events"]]

    failed = api.complete("morgan", task["id"], {"decision": "approve", "comment": "Looks fine."}, expect=422)
    assert failed["element_id"] == "Task_Broken"
    assert failed["process_key"] == "normal_change"
    assert "division by zero" in failed["message"]
    assert isinstance(failed["incident_id"], int)

    # Nothing of the completion was kept: same task ready for morgan, same state, no approval.
    again = api.task("morgan", change["id"])
    assert (again["id"], again["status"], again["name"]) == (task["id"], "ready", "Authorize change")
    assert api.change(change["id"])["state"] == "authorize"
    trace = api.trace(change["id"])
    assert trace["approvals"] == []
    assert [e["kind"] for e in trace["events"]] == events_before + ["incident"]
    assert "Task_Broken" not in trace["diagram"]["completed_element_ids"]
    assert "Task_Authorize" in trace["diagram"]["active_element_ids"]
    [recorded] = trace["incidents"]
    assert recorded["id"] == failed["incident_id"]
    assert recorded["element_id"] == "Task_Broken"
    assert recorded["message"] == failed["message"]
    assert recorded["actor"] == "morgan"
    row = incident(api, failed["incident_id"])
    assert (row.change_id, row.process_key, row.element_id) == (change["id"], "normal_change", "Task_Broken")
    with api.app.app_context():
        instance = db.session.scalar(select(ProcessInstance).where(ProcessInstance.change_id == change["id"]))
        assert instance.lock_version == 1  # the failed completion saved no workflow state
        db.session.remove()

    # The instance is not corrupted: the same completion fails the same way, and a rejection works.
    second = api.complete("morgan", task["id"], {"decision": "approve"}, expect=422)
    assert second["element_id"] == "Task_Broken" and second["incident_id"] != failed["incident_id"]
    assert [i["id"] for i in api.trace(change["id"])["incidents"]] == [failed["incident_id"], second["incident_id"]]

    # A fixed version helps new changes; the running instance stays on the version it started on.
    fixed = deploy(api, (PROCESSES / "normal_change.bpmn").read_text())
    assert [d["version"] for d in fixed["deployed"]] == [3]
    third = api.complete("morgan", task["id"], {"decision": "approve"}, expect=422)
    assert third["element_id"] == "Task_Broken"
    assert api.trace(change["id"])["diagram"]["version"] == 2

    api.act("morgan", change["id"], {"decision": "reject", "comment": "Cannot go ahead on this version."})
    assert api.change(change["id"])["state"] == "new"
    assert api.task("alice", change["id"])["name"] == "Rework change request"
    [approval] = api.trace(change["id"])["approvals"]
    assert approval["decision"] == "reject"

    new = api.submit(title="Submitted after the fix")
    api.act("morgan", new["id"], {"decision": "approve"})
    assert api.change(new["id"])["state"] == "scheduled"
    assert api.trace(new["id"])["diagram"]["version"] == 3


# -- a failure while the process starts ----------------------------------------------------------

def test_failure_before_the_first_user_task_creates_no_change(api):
    deploy(api, with_script_on(BEFORE_FIRST_USER_TASK, "result = 1 / 0"))
    total = total_changes(api)
    with api.app.app_context():
        events = db.session.scalar(select(func.count()).select_from(AuditEvent))
        db.session.remove()

    response = api.post("/api/changes", "alice", json=NORMAL_CHANGE)
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["element_id"] == "Task_Broken"
    assert "Broken step" in body["message"] and "division by zero" in body["message"]
    assert total_changes(api) == total
    assert api.get("/api/changes", "alice").get_json()["items"] == []
    assert [t for t in api.inbox("morgan") if t["name"] == "Authorize change"] == []

    row = incident(api, body["incident_id"])
    assert (row.change_id, row.process_key, row.element_id) == (None, "normal_change", "Task_Broken")
    assert "division by zero" in row.message
    with api.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Change)) == 0
        assert db.session.scalar(select(func.count()).select_from(Task)) == 0
        assert db.session.scalar(select(func.count()).select_from(ProcessInstance)) == 0
        kinds = db.session.scalars(select(AuditEvent.kind).order_by(AuditEvent.id).offset(events)).all()
        assert kinds == ["incident"]  # no change_created, state_changed or risk_assessed survived
        db.session.remove()

    # Once the process is fixed, the same request goes through.
    deploy(api, (PROCESSES / "normal_change.bpmn").read_text())
    assert api.submit()["state"] == "authorize"
    assert total_changes(api) == total + 1


# -- the script sandbox --------------------------------------------------------------------------

@pytest.mark.parametrize("script", [
    "secret = '{0.__class__.__mro__}'.format(())",
    "secret = type(())",
], ids=["str_format", "type"])
def test_sandbox_stops_escapes_at_runtime_and_leaks_nothing(api, script):
    deploy(api, with_script_on(BEFORE_FIRST_USER_TASK, script, name="Peek"))
    total = total_changes(api)
    response = api.post("/api/changes", "alice", json=NORMAL_CHANGE)
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["element_id"] == "Task_Broken"
    assert body["incident_id"]
    text = response.get_data(as_text=True)
    for leak in ("root:", "<class", "object"):
        assert leak not in text, text
    assert "root:" not in incident(api, body["incident_id"]).message
    assert total_changes(api) == total


@pytest.mark.parametrize("script", [
    "module = __import__('os')",
    "classes = ().__class__.__mro__",
    "result = eval('1 + 1')",
    "flag = datetime.datetime.now.__self__",
    "secret = open('/etc/passwd').read()",  # file and introspection functions are refused by name
    "secret = getattr((), '__cl' + 'ass__')",
], ids=["dunder_import", "class_mro", "eval", "dunder_self", "open", "getattr"])
def test_sandbox_refuses_escapes_at_deploy_naming_the_element(api, script):
    response = api.post("/api/process-definitions", "paula", json={
        "files": {"normal_change.bpmn": with_script_on(APPROVE_PATH, script, task_id="Task_Escape")}})
    assert response.status_code == 422, response.get_json()
    errors = response.get_json()["errors"]
    assert any(e["element_id"] == "Task_Escape" and "sandbox" in e["message"] for e in errors), errors
    assert [v["version"] for v in api.get("/api/process-definitions/normal_change/versions",
                                          "paula").get_json()] == [1]


def test_risk_policy_with_forbidden_code_is_refused_at_deploy(api):
    """A DMN rule the sandbox would refuse must not go live: it would fail every new change."""
    policy = (PROCESSES / "risk.dmn").read_text()
    forbidden = policy.replace('<text>"Access-control changes are security-sensitive."</text>',
                               "<text>\"x\".__class__.__mro__</text>")
    assert forbidden != policy
    response = api.post("/api/process-definitions", "paula", json={"files": {"risk.dmn": forbidden}})
    assert response.status_code == 422, response.get_json()
    errors = response.get_json()["errors"]
    assert any(e["file"] == "risk.dmn" and e["element_id"] in ("Rule_AccessControl", "OutputEntry_AccessControl_2")
               and "sandbox" in e["message"] for e in errors), errors
    assert api.submit(category="access_control")["risk"] == "moderate"
