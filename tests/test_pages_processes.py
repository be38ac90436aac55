"""The process pages through Flask's test client: versions, download, validate and deploy from the
modeller's form fields, the upload fallback, and who may do what. (The browser tests drive bpmn-js.)"""
from __future__ import annotations

import io

from .test_pages import csrf, sign_in

PROCESS = "normal_change"


def _xml(client, version=1):
    return client.get(f"/processes/{PROCESS}/versions/{version}.bpmn").get_data(as_text=True)


def test_versions_page_lists_who_deployed_what_and_downloads_are_attachments(app):
    client = app.test_client()
    sign_in(client, "paula")
    page = client.get(f"/processes/{PROCESS}").get_data(as_text=True)
    assert "Versions, newest first" in page and "processes/ directory" in page
    answer = client.get(f"/processes/{PROCESS}/versions/1.bpmn")
    assert answer.status_code == 200 and answer.headers["Content-Disposition"].startswith("attachment;")
    assert f'id="{PROCESS}"' in answer.get_data(as_text=True)
    assert client.get(f"/processes/{PROCESS}/versions/99.bpmn").status_code == 404


def test_validate_names_the_broken_element_and_stores_nothing(app):
    client = app.test_client()
    sign_in(client, "paula")
    token = csrf(client.get(f"/processes/{PROCESS}/edit").get_data(as_text=True))
    ok = client.post("/processes/validate", data={"csrf_token": token, "filename": "normal_change.bpmn",
                                                  "bpmn_xml": _xml(client)})
    assert ok.status_code == 200 and ok.get_json() == {"ok": True, "errors": [], "message": "valid"}
    # a task nothing leads to or from
    orphan = '<bpmn:userTask id="Orphan_Task" name="Nobody reaches me" /></bpmn:process>'
    bad = client.post("/processes/validate", data={"csrf_token": token, "filename": "normal_change.bpmn",
                                                   "bpmn_xml": _xml(client).replace("</bpmn:process>", orphan, 1)})
    assert bad.status_code == 200 and bad.get_json()["ok"] is False
    assert "Orphan_Task" in {e["element_id"] for e in bad.get_json()["errors"]}
    assert definitions_count(client) == 1


def definitions_count(client) -> int:
    page = client.get(f"/processes/{PROCESS}").get_data(as_text=True)
    return page.count('name="b"')


def test_deploy_from_the_modeller_creates_version_two_with_the_note(app):
    client = app.test_client()
    sign_in(client, "paula")
    token = csrf(client.get(f"/processes/{PROCESS}/edit").get_data(as_text=True))
    edited = _xml(client).replace('name="Normal change"', 'name="Normal change (edited)"', 1)
    assert edited != _xml(client)
    answer = client.post("/processes/deploy", headers={"Accept": "application/json"},
                         data={"csrf_token": token, "filename": "normal_change.bpmn", "bpmn_xml": edited,
                               "note": "renamed"})
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["deployed"] == [{"process_key": PROCESS, "version": 2}]
    page = client.get(answer.get_json()["location"]).get_data(as_text=True)
    assert "renamed" in page and "paula" in page
    assert _xml(client, 2) == edited
    # the same diagram again is no new version
    again = client.post("/processes/deploy", headers={"Accept": "application/json"},
                        data={"csrf_token": token, "filename": "normal_change.bpmn", "bpmn_xml": edited})
    assert again.status_code == 201 and again.get_json()["deployed"] == []


def test_a_refused_upload_lists_its_problems_and_deploys_nothing(app):
    client = app.test_client()
    sign_in(client, "paula")
    token = csrf(client.get("/processes").get_data(as_text=True))
    hostile = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "boom">]>'
               '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&x;</bpmn:definitions>')
    answer = client.post("/processes/deploy", data={"csrf_token": token, "file": (io.BytesIO(hostile.encode()), "x.bpmn")},
                         content_type="multipart/form-data", follow_redirects=True)
    page = answer.get_data(as_text=True)
    assert 'class="flash error"' in page and "DOCTYPE and ENTITY declarations are not allowed" in page
    assert definitions_count(client) == 1


def test_only_process_owners_and_admins_edit_and_deploy(app):
    client = app.test_client()
    sign_in(client, "alice")
    assert client.get(f"/processes/{PROCESS}/edit").status_code == 403
    token = csrf(client.get("/processes").get_data(as_text=True))
    assert client.post("/processes/deploy", data={"csrf_token": token, "bpmn_xml": "<x/>"}).status_code == 403
    assert client.post("/processes/validate", data={"csrf_token": token, "bpmn_xml": "<x/>"}).status_code == 403
    auditor = app.test_client()
    sign_in(auditor, "audrey")
    page = auditor.get(f"/processes/{PROCESS}").get_data(as_text=True)
    assert "Download" in page and "Open in modeller" not in page
    assert auditor.get(f"/processes/{PROCESS}/diff?a=1&b=1").status_code == 200
    assert auditor.get(f"/processes/{PROCESS}/diff").status_code == 400
