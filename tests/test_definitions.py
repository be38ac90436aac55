"""Deploying process definitions: real-world BPMN, hostile XML, validation, versions and policy changes."""
from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import func, select

from engine.config import PROJECT_ROOT
from engine.models import AuditEvent, DefinitionResource, ProcessVersion
from webui.extensions import db

from .conftest import corpus_files

PROCESSES = PROJECT_ROOT / "processes"
FORMS = PROJECT_ROOT / "forms"
DATA = Path(__file__).parent / "data"
BPMN_NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL"}
ENDPOINT = "/api/process-definitions"


# -- helpers -----------------------------------------------------------------------------------

def upload(api, files: dict[str, str | bytes], user: str = "paula", note: str = ""):
    """Deploy as a browser would: one multipart `files` part per file."""
    parts = [(io.BytesIO(c if isinstance(c, bytes) else c.encode("utf-8")), name) for name, c in files.items()]
    return api.post(ENDPOINT, user, data={"files": parts, "note": note}, content_type="multipart/form-data")


def deploy_json(api, files: dict[str, str], user: str = "paula", note: str = ""):
    return api.post(ENDPOINT, user, json={"files": files, "note": note})


def stored(api) -> tuple[int, int]:
    """(process versions, definition resources) in the database."""
    with api.app.app_context():
        versions = db.session.scalar(select(func.count()).select_from(ProcessVersion))
        resources = db.session.scalar(select(func.count()).select_from(DefinitionResource))
        db.session.remove()
    return versions, resources


def definitions(api) -> dict[str, dict]:
    response = api.get(ENDPOINT, "audrey")
    assert response.status_code == 200, response.get_json()
    return {d["process_key"]: d for d in response.get_json()}


def versions(api, key: str) -> list[dict]:
    response = api.get(f"{ENDPOINT}/{key}/versions", "paula")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def assert_refused(response, *, file: str | None = None) -> list[dict]:
    assert response.status_code == 422, (response.status_code, response.get_data(as_text=True)[:500])
    errors = response.get_json()["errors"]
    assert errors, response.get_json()
    for error in errors:
        assert error["message"], error
        if file is not None:
            assert error["file"] == file, error
    return errors


def renamed_task(xml: str, task_id: str, name: str) -> str:
    root = etree.fromstring(xml.encode("utf-8"))
    task = root.find(f".//bpmn:*[@id='{task_id}']", BPMN_NS)
    task.set("name", name)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode("utf-8")


def risk_dmn_with_routine_high_rule() -> str:
    """risk.dmn plus a rule: impact 3 on a criticality-3 service is high risk."""
    root = etree.fromstring((PROCESSES / "risk.dmn").read_bytes())
    rules = list(root.iter("{*}rule"))
    rule = copy.deepcopy(rules[0])
    rule.set("id", "Rule_RoutineIsHigh")
    for i, element in enumerate(rule.iter()):
        if element.get("id") and element is not rule:
            element.set("id", f"RoutineIsHigh_{i}")
    entries = [e.find("{*}text") for e in rule.findall("{*}inputEntry")]
    for entry in entries:
        entry.text = "-"
    entries[0].text, entries[1].text = "3", "3"  # max_criticality, impact
    outputs = [e.find("{*}text") for e in rule.findall("{*}outputEntry")]
    outputs[0].text, outputs[1].text = '"high"', '"Routine changes now count as high risk."'
    rules[-1].addnext(rule)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode("utf-8")


def run_to_closure(api, change_id: int) -> None:
    api.act("morgan", change_id, {"decision": "approve", "comment": "fine"})
    api.attach_required(change_id)
    api.act("morgan", change_id, {"planned_start": "2037-12-05T22:00:00+01:00",
                                  "planned_end": "2037-12-05T23:30:00+01:00", "implementer": "ivan"})
    api.wait_for_window(change_id)
    api.act("ivan", change_id, {"actual_start": "2037-12-05T22:05:00+01:00",
                                "actual_end": "2037-12-05T23:00:00+01:00", "implementation_result": "completed"})
    api.attach_required(change_id, "close")
    api.act("morgan", change_id, {"close_code": "successful", "close_notes": "Went to plan."})
    api.accept(change_id)


# -- the interchange corpus ----------------------------------------------------------------------

@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_model_gets_a_clear_answer(api, path):
    assert len(corpus_files()) == 21
    before = stored(api)
    count_before = sum(d["versions"] for d in definitions(api).values())
    response = upload(api, {path.name: path.read_bytes()})
    assert response.status_code in (201, 422), (response.status_code, response.get_data(as_text=True)[:500])
    if response.status_code == 201:
        for deployed in response.get_json()["deployed"]:
            listed = versions(api, deployed["process_key"])
            assert deployed["version"] in [v["version"] for v in listed]
        return
    for error in assert_refused(response, file=path.name):
        assert error["element_id"] or error["line"], error
    assert stored(api) == before
    assert sum(d["versions"] for d in definitions(api).values()) == count_before


# -- hostile XML ---------------------------------------------------------------------------------

MINIMAL = """<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="Defs" targetNamespace="urn:t">
  <bpmn:process id="probe" name="Probe" isExecutable="true">
    <bpmn:documentation>DOC</bpmn:documentation>
    <bpmn:startEvent id="Start"><bpmn:outgoing>F1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="F1" sourceRef="Start" targetRef="End"/>
    <bpmn:endEvent id="End"><bpmn:incoming>F1</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""
XXE_DTD = '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
LAUGHS_DTD = ('<!DOCTYPE lolz [<!ENTITY lol "lol">'
              + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
              .replace("&lol0;", "&lol;") + "]>\n")
DMN_XXE = ('<?xml version="1.0"?>\n' + XXE_DTD + '<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" '
           'id="d" name="d" namespace="urn:t"><decision id="risk_assessment" name="&e;"/></definitions>')

HOSTILE = {
    "xxe": ("probe.bpmn", '<?xml version="1.0"?>\n' + XXE_DTD + MINIMAL.replace("DOC", "&e;"), r"DOCTYPE|ENTITY"),
    "billion_laughs": ("probe.bpmn", '<?xml version="1.0"?>\n' + LAUGHS_DTD + MINIMAL.replace("DOC", "&lol9;"),
                       r"DOCTYPE|ENTITY"),
    "over_5mb": ("probe.bpmn", MINIMAL.replace("DOC", "x" * (5 * 1024 * 1024 + 1)), r"bytes|large|limit"),
    "nested_too_deep": ("probe.bpmn", MINIMAL.replace("DOC", "<a>" * 300 + "</a>" * 300), r"depth|nest"),
    "not_xml": ("probe.bpmn", "Please deploy my process, thanks!\n", r"XML"),
    "dmn_with_entity": ("risk.dmn", DMN_XXE, r"DOCTYPE|ENTITY"),
    "unknown_extension": ("probe.exe", MINIMAL.replace("DOC", "x"), r"\.bpmn"),
    "not_utf8": ("probe.bpmn", '<?xml version="1.0"?>\n'.encode() + MINIMAL.replace("DOC", "caf\u00e9 cr\u00e8me")
                 .encode("latin-1"), r"UTF-8"),
    # The DOCTYPE hidden in UTF-7 ("+ADwAIQ-" is "<!") must be refused like any other.
    "xxe_in_utf7": ("probe.bpmn", '<?xml version="1.0" encoding="UTF-7"?>\n'
                    + (XXE_DTD + MINIMAL.replace("DOC", "&e;")).replace("<!", "+ADwAIQ-"), r"DOCTYPE|ENTITY|encoding"),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_upload_is_refused_and_nothing_is_stored(api, case):
    filename, content, reason = HOSTILE[case]
    before, listed = stored(api), definitions(api)
    response = upload(api, {filename: content})
    errors = assert_refused(response, file=filename)
    assert any(re.search(reason, e["message"], re.IGNORECASE) for e in errors), errors
    assert "root:" not in response.get_data(as_text=True)
    assert stored(api) == before
    assert definitions(api) == listed
    assert api.get(f"{ENDPOINT}/probe/versions", "paula").status_code == 404


def test_hostile_xml_sent_as_json_is_refused_too(api):
    before = stored(api)
    for name in ("xxe", "billion_laughs", "over_5mb", "nested_too_deep", "dmn_with_entity"):
        filename, content, _reason = HOSTILE[name]
        response = deploy_json(api, {filename: content})
        assert_refused(response, file=filename)
        assert "root:" not in response.get_data(as_text=True)
    assert stored(api) == before


# -- validation ----------------------------------------------------------------------------------

def test_validation_lists_every_problem_with_its_element(api):
    before = stored(api)
    errors = assert_refused(upload(api, {"invalid_process.bpmn": (DATA / "invalid_process.bpmn").read_text()}))
    by_element: dict[str, list[str]] = {}
    for error in errors:
        by_element.setdefault(error["element_id"], []).append(error["message"])
        assert error["line"], error
    expected = {
        "Task_NoLane": r"not in a lane",
        "Task_Janitor": r"Janitor.*no known role",
        "Task_NoForm": r"no form",
        "Task_Missiles": r"unknown .*operator 'launch_missiles'",
        "Task_ImportOs": r"sandbox|import",
        "Flow_Sneaky": r"sandbox.*__class__",
        "Task_MissingDecision": r"no_such_decision",
    }
    missing = {e: p for e, p in expected.items()
               if not any(re.search(p, m, re.IGNORECASE) for m in by_element.get(e, []))}
    assert not missing, f"no meaningful error for {sorted(missing)}; got {by_element}"
    assert stored(api) == before


def test_non_executable_process_is_refused_naming_the_process(api):
    xml = (PROCESSES / "normal_change.bpmn").read_text().replace('isExecutable="true"', 'isExecutable="false"')
    errors = assert_refused(upload(api, {"normal_change.bpmn": xml}))
    assert any(e["element_id"] == "normal_change" and "executable" in e["message"] for e in errors), errors
    assert definitions(api)["normal_change"]["versions"] == 1


# -- versions ------------------------------------------------------------------------------------

def test_unchanged_deploy_adds_no_version(api):
    response = upload(api, {"normal_change.bpmn": (PROCESSES / "normal_change.bpmn").read_text()})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["deployed"] == [] and body["resources"] == []
    assert [(v["process_key"], v["version"]) for v in body["unchanged"]] == [("normal_change", 1)]
    assert [v["version"] for v in versions(api, "normal_change")] == [1]


def test_new_version_runs_new_changes_while_old_changes_finish_on_theirs(api):
    before = api.submit(title="Started on version 1")
    original = (PROCESSES / "normal_change.bpmn").read_text()
    edited = renamed_task(original, "Task_Authorize", "Approve change request")
    response = upload(api, {"normal_change.bpmn": edited}, note="clearer task name")
    assert response.status_code == 201, response.get_json()
    [deployed] = response.get_json()["deployed"]
    assert (deployed["process_key"], deployed["version"], deployed["deployed_by"]) == ("normal_change", 2, "paula")
    assert deployed["note"] == "clearer task name"

    listed = versions(api, "normal_change")
    assert [v["version"] for v in listed] == [2, 1]
    assert listed[0]["deployed_by"] == "paula"
    v1 = api.get(f"{ENDPOINT}/normal_change/versions/1", "audrey").get_json()
    v2 = api.get(f"{ENDPOINT}/normal_change/versions/2", "audrey").get_json()
    assert v1["bpmn_xml"] == original
    assert "Approve change request" in v2["bpmn_xml"] and "Approve change request" not in v1["bpmn_xml"]
    assert "authorize_change.schema.json" in v2["form_documents"]
    assert api.get(f"{ENDPOINT}/normal_change/versions/3", "audrey").status_code == 404
    assert definitions(api)["normal_change"]["latest_version"] == 2

    after = api.submit(title="Started on version 2")
    assert api.task("morgan", before["id"])["name"] == "Authorize change"
    assert api.task("morgan", after["id"])["name"] == "Approve change request"

    run_to_closure(api, before["id"])
    assert api.change(before["id"])["state"] == "closed"
    trace = api.trace(before["id"])
    assert trace["diagram"]["version"] == 1
    assert "EndEvent_Closed" in trace["diagram"]["completed_element_ids"]
    assert api.trace(after["id"])["diagram"]["version"] == 2


def test_process_uploaded_with_a_changed_dmn_becomes_the_latest_version(api):
    """A process uploaded together with a DMN change is what new changes run — not the old copy."""
    edited = renamed_task((PROCESSES / "normal_change.bpmn").read_text(), "Task_Authorize", "Approve change request")
    response = upload(api, {"risk.dmn": risk_dmn_with_routine_high_rule(), "normal_change (1).bpmn": edited})
    assert response.status_code == 201, response.get_json()
    latest = api.get(f"{ENDPOINT}/normal_change/versions/{definitions(api)['normal_change']['latest_version']}",
                     "paula").get_json()
    assert "Approve change request" in latest["bpmn_xml"]
    change = api.submit()
    assert api.task("morgan", change["id"])["name"] == "Approve change request"


# -- policy without code -------------------------------------------------------------------------

def test_edited_risk_policy_applies_to_new_changes_only(api):
    old = api.submit(title="Submitted under the old policy")
    assert old["risk"] == "low"

    response = upload(api, {"risk.dmn": risk_dmn_with_routine_high_rule()}, note="routine is high now")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["resources"] == ["risk.dmn"]
    assert sorted((d["process_key"], d["version"]) for d in body["deployed"]) == [
        ("emergency_change", 2), ("normal_change", 2)]
    listed = definitions(api)
    assert listed["standard_change"]["latest_version"] == 1
    assert "Rule_RoutineIsHigh" in api.get(f"{ENDPOINT}/normal_change/versions/2", "paula").get_json()[
        "dmn_documents"]["risk.dmn"]

    new = api.submit(title="Submitted under the new policy")
    assert new["risk"] == "high"
    assert "Routine changes now count as high risk." in new["risk_reasons"]

    # The old change is reassessed after rework — still under the policy it started with.
    api.act("morgan", old["id"], {"decision": "reject", "comment": "Add a test plan owner."})
    api.act("alice", old["id"], {"rework_action": "resubmit", "test_plan": "Owner: QA team."})
    reassessed = api.change(old["id"])
    assert reassessed["state"] == "authorize"
    assert reassessed["risk"] == "low"
    assert api.trace(old["id"])["diagram"]["version"] == 1

    # Deploying the same DMN again changes nothing.
    again = upload(api, {"risk.dmn": risk_dmn_with_routine_high_rule()}).get_json()
    assert again["deployed"] == [] and again["resources"] == []


def test_edited_form_creates_new_versions_and_applies_to_new_changes(api):
    old = api.submit(title="Form version 1")
    schema = json.loads((FORMS / "authorize_change.schema.json").read_text())
    schema["required"] = ["decision", "comment"]
    schema["properties"]["comment"]["minLength"] = 1
    response = upload(api, {"authorize_change.schema.json": json.dumps(schema, indent=2)})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["resources"] == ["authorize_change.schema.json"]
    assert [(d["process_key"], d["version"]) for d in body["deployed"]] == [("normal_change", 2)]
    assert definitions(api)["emergency_change"]["versions"] == 1

    new = api.submit(title="Form version 2")
    refused = api.complete("morgan", api.task("morgan", new["id"])["id"], {"decision": "approve"}, expect=422)
    assert any(e["field"] == "comment" for e in refused["errors"]), refused
    api.complete("morgan", api.task("morgan", old["id"])["id"], {"decision": "approve"})
    assert api.change(old["id"])["state"] == "scheduled"


def test_broken_form_json_is_refused(api):
    before = stored(api)
    errors = assert_refused(upload(api, {"authorize_change.schema.json": '{"type": "object",'}))
    assert any("JSON" in e["message"] for e in errors), errors
    assert stored(api) == before


# -- who may deploy, and the record of it --------------------------------------------------------

def test_only_process_owners_deploy_and_each_deploy_is_audited(api):
    edited = renamed_task((PROCESSES / "normal_change.bpmn").read_text(), "Task_Authorize", "Approve change request")
    before = stored(api)
    for user in ("alice", "audrey", "morgan"):
        response = upload(api, {"normal_change.bpmn": edited}, user=user)
        assert response.status_code == 403, (user, response.get_json())
        assert "definition.deploy" in response.get_json()["message"]
    assert api.post(ENDPOINT, json={"files": {"normal_change.bpmn": edited}}).status_code == 401
    assert stored(api) == before

    assert upload(api, {"normal_change.bpmn": edited}).status_code == 201
    with api.app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.kind == "definition_deployed",
                                                             AuditEvent.actor == "paula")).all()
        assert [(e.data["process_key"], e.data["version"]) for e in events] == [("normal_change", 2)]
        assert events[0].change_id is None
        assert "authorize_change.schema.json" in events[0].data["resources"]
        db.session.remove()


def test_definitions_list_shows_each_process_with_its_versions(api):
    listed = definitions(api)
    assert {"normal_change", "emergency_change", "standard_change"} <= set(listed)
    for key in ("normal_change", "emergency_change", "standard_change"):
        assert listed[key]["latest_version"] == 1 and listed[key]["versions"] == 1, listed[key]
        assert listed[key]["name"]
    upload(api, {"standard_change.bpmn": renamed_task(
        (PROCESSES / "standard_change.bpmn").read_text(), "standard_change", "Standard change (pre-approved)")})
    listed = definitions(api)
    assert (listed["standard_change"]["latest_version"], listed["standard_change"]["versions"]) == (2, 2)
    assert listed["standard_change"]["name"] == "Standard change (pre-approved)"
    assert api.get(f"{ENDPOINT}/no_such_process/versions", "paula").status_code == 404
