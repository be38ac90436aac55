"""The standard-change catalogue through the REST API: proposing, approving, versions, retirement,
changes raised from templates, and automatic suspension after a failed change."""
from __future__ import annotations

from sqlalchemy import select

from engine.accounts import create_user, issue_token
from engine.models import AuditEvent, Change, ChangeTemplate, TemplateVersion
from webui.extensions import db

TEMPLATE = {
    "key": "intranet-news",
    "name": "Publish an intranet news page",
    "category": "service_catalog",
    "description": "A new page in the intranet's news section.",
    "implementation_plan": "Publish the page from the CMS staging area.",
    "rollback_plan": "Unpublish the page in the CMS.",
    "test_plan": "Open the page as an ordinary employee.",
    "allowed_services": ["intranet", "crm-web", "payroll"],
    "max_risk": "low",
}
STANDARD = {
    "title": "Publish the holiday rota",
    "description": "News page with the holiday rota.",
    "change_type": "standard",
    "template": TEMPLATE["key"],
    "services": ["intranet"],
    "impact": 3,
    "urgency": 3,
}
DONE = {"actual_start": "2037-12-06T21:05:00+01:00", "actual_end": "2037-12-06T22:10:00+01:00"}


def propose(api, user="sam", expect=201, **overrides) -> dict:
    response = api.post("/api/templates", user, json={**TEMPLATE, **overrides})
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def decide(api, key, number, decision="approve", user="morgan", comment="", expect=200) -> dict:
    response = api.post(f"/api/templates/{key}/versions/{number}/decision", user,
                        json={"decision": decision, "comment": comment})
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def active_template(api, **overrides) -> dict:
    proposed = propose(api, **overrides)
    decide(api, proposed["key"], 1, comment="Routine, well understood.")
    return template(api, proposed["key"])


def template(api, key, user="audrey") -> dict:
    response = api.get(f"/api/templates/{key}", user)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def raise_change(api, user="alice", **overrides):
    return api.post("/api/changes", user, json={**STANDARD, **overrides})


def raised(api, **overrides) -> dict:
    response = raise_change(api, **overrides)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def started(api, change: dict) -> dict:
    """A standard change waits only for the evidence its category needs before implementation (a
    service-catalog change: the business sign-off); attach it and let the change go to implementation."""
    task = api.task("alice", change["id"])
    assert (change["state"], task["name"], task["assignee"]) == ("scheduled", "Provide evidence", "alice")
    api.provide_evidence(change["id"], "business_sign_off")
    return api.change(change["id"])


def refused(response, field: str, *words: str) -> str:
    """Assert a 422 naming `field`; return its message."""
    assert response.status_code == 422, response.get_json()
    errors = {e["field"]: e["message"] for e in response.get_json()["errors"]}
    assert field in errors, errors
    for word in words:
        assert word in errors[field], (word, errors[field])
    return errors[field]


def template_version_of(api, change_id: int) -> tuple[str, int] | None:
    with api.app.app_context():
        version = db.session.get(Change, change_id).template_version
        return (version.template.key, version.version) if version else None


def events(api, *kinds: str) -> list[tuple[str, str, dict]]:
    with api.app.app_context():
        rows = db.session.scalars(select(AuditEvent).where(AuditEvent.kind.in_(kinds)).order_by(AuditEvent.id))
        return [(e.kind, e.actor, e.data) for e in rows]


def change_count(api) -> int:
    return api.get("/api/changes", "audrey").get_json()["total"]


def test_a_proposed_template_is_active_once_a_change_manager_approves_it(api):
    proposed = propose(api)
    assert (proposed["status"], proposed["owner"], proposed["active_version"], proposed["pending_version"]) == (
        "proposed", "sam", None, 1)
    [v1] = proposed["versions"]
    assert (v1["kind"], v1["status"], v1["proposed_by"], v1["decided_by"], v1["active"]) == (
        "create", "pending", "sam", None, False)
    assert [t["key"] for t in api.get("/api/templates", "alice", query_string={"status": "proposed"}).get_json()] == [
        "intranet-news"]
    refused(raise_change(api), "template", "not approved")

    decided = decide(api, "intranet-news", 1, comment="Routine, well understood.")
    assert (decided["status"], decided["decided_by"], decided["decision_comment"]) == (
        "approved", "morgan", "Routine, well understood.")
    shown = template(api, "intranet-news")
    assert (shown["status"], shown["active_version"], shown["pending_version"]) == ("active", 1, None)
    assert shown["versions"][0]["active"] is True and shown["rollback_plan"] == TEMPLATE["rollback_plan"]
    assert api.get("/api/templates", "audrey", query_string={"status": "proposed"}).get_json() == []
    assert [t["key"] for t in api.get("/api/templates", "audrey").get_json()] == ["intranet-news"]
    assert events(api, "template_proposed", "template_decided") == [
        ("template_proposed", "sam", {"key": "intranet-news", "version": 1, "kind": "create"}),
        ("template_decided", "morgan", {"key": "intranet-news", "version": 1, "kind": "create", "decision": "approve",
                                        "comment": "Routine, well understood.", "from": "proposed", "to": "active"})]
    decide(api, "intranet-news", 1, expect=409)  # only pending versions are decided


def test_the_proposer_may_not_decide_their_own_proposal(api):
    with api.app.app_context():
        mona = issue_token(db.session, create_user(db.session, "mona", ["change_manager"]))
        db.session.commit()
    propose(api, user="morgan")
    own = api.post("/api/templates/intranet-news/versions/1/decision", "morgan", json={"decision": "approve"})
    assert own.status_code == 403 and own.get_json()["rule"] == "segregation_of_duties"
    assert "Segregation of duties" in own.get_json()["message"]
    assert api.post("/api/templates/intranet-news/versions/1/decision", "sam",
                    json={"decision": "approve"}).status_code == 403  # not a change manager
    assert template(api, "intranet-news")["status"] == "proposed"
    response = api.request("POST", "/api/templates/intranet-news/versions/1/decision", token=mona,
                           json={"decision": "approve"})
    assert response.status_code == 200 and response.get_json()["decided_by"] == "mona"


def test_a_rejected_proposal_leaves_a_rejected_template(api):
    propose(api)
    refused(api.post("/api/templates/intranet-news/versions/1/decision", "morgan", json={"decision": "reject"}),
            "comment")
    decide(api, "intranet-news", 1, "reject", comment="Covered by the CMS workflow already.")
    shown = template(api, "intranet-news")
    assert (shown["status"], shown["status_reason"], shown["active_version"]) == (
        "rejected", "Covered by the CMS workflow already.", None)
    assert shown["versions"][0]["status"] == "rejected"
    refused(raise_change(api), "template", "not approved")
    assert api.post("/api/templates/intranet-news/versions", "sam", json={"name": "Again"}).status_code == 409


def test_invalid_proposals_are_refused_naming_the_field(api):
    cases = [
        ({"rollback_plan": "   "}, "rollback_plan"),
        ({"rollback_plan": None}, "rollback_plan"),
        ({"max_risk": "high"}, "max_risk"),
        ({"allowed_services": ["intranet", "no-such-service"]}, "allowed_services"),
        ({"allowed_services": []}, "allowed_services"),
        ({"category": "gardening"}, "category"),
        ({"owner": "nobody"}, "owner"),
        ({"key": "Not A Key"}, "key"),
        ({"colour": "blue"}, "colour"),
    ]
    for overrides, field in cases:
        body = {k: v for k, v in {**TEMPLATE, **overrides}.items() if v is not None}
        refused(api.post("/api/templates", "sam", json=body), field)
    assert api.get("/api/templates", "audrey").get_json() == []
    propose(api)
    assert api.post("/api/templates", "ivan", json=TEMPLATE).status_code == 409


def test_auditors_read_the_catalogue_but_may_not_propose(api):
    active_template(api)
    assert api.post("/api/templates", "audrey", json={**TEMPLATE, "key": "other"}).status_code == 403
    assert api.post("/api/templates/intranet-news/retire", "audrey", json={"reason": "No."}).status_code == 403
    assert api.get("/api/templates", "audrey").status_code == 200
    assert api.get("/api/templates", "alice").status_code == 200
    assert api.get("/api/templates").status_code == 401


def test_a_change_from_an_active_template_goes_straight_to_implementation(api):
    shown = active_template(api)
    change = started(api, raised(api))  # no authorization: only its evidence before implementation
    cid = change["id"]
    assert change["state"] == "implement" and change["change_type"] == "standard"
    for field in ("category", "implementation_plan", "rollback_plan", "test_plan"):
        assert change[field] == TEMPLATE[field], field
    assert change["rollback_tested"] is True
    assert template_version_of(api, cid) == ("intranet-news", shown["active_version"])

    trace = api.trace(cid)
    assert all(t["element_id"] != "Task_Authorize" and t["approval_step"] is None for t in trace["tasks"])
    assert trace["approvals"] == [] and not any(t["change_id"] == cid for t in api.inbox("morgan"))
    assert [(e["data"]["from"], e["data"]["to"]) for e in trace["events"] if e["kind"] == "state_changed"] == [
        ("new", "scheduled"), ("scheduled", "implement")]
    created = next(e for e in trace["events"] if e["kind"] == "change_created")
    assert (created["data"]["template"], created["data"]["template_version"]) == ("intranet-news", 1)
    assert api.task("ivan", cid)["name"] == "Implement change"


def test_standard_changes_need_an_active_template_and_only_they_use_one(api):
    refused(raise_change(api, template=None, category="service_catalog"), "template", "required")
    without = {k: v for k, v in STANDARD.items() if k != "template"}
    refused(api.post("/api/changes", "alice", json={**without, "category": "service_catalog"}), "template")
    refused(raise_change(api, template="no-such-template"), "template", "no template")
    active_template(api)
    refused(raise_change(api, change_type="normal"), "template", "standard")
    refused(api.post("/api/changes", "alice", json={**without, "change_type": "normal"}), "category")
    assert change_count(api) == 0


def test_services_must_be_allowed_and_plans_are_fixed(api):
    active_template(api, allowed_services=["intranet"])
    refused(raise_change(api, services=["intranet", "crm-web"]), "services", "crm-web")
    refused(raise_change(api, implementation_plan="Edit the page in production."), "implementation_plan", "fixed")
    refused(raise_change(api, rollback_plan="Hope."), "rollback_plan", "fixed")
    refused(raise_change(api, test_plan="None."), "test_plan", "fixed")
    refused(raise_change(api, category="infrastructure"), "category", "fixed")
    assert change_count(api) == 0
    same = raised(api, category=TEMPLATE["category"], implementation_plan=TEMPLATE["implementation_plan"])
    assert same["implementation_plan"] == TEMPLATE["implementation_plan"]


def test_a_change_above_the_templates_maximum_risk_is_refused(api):
    active_template(api)  # max_risk low
    message = refused(raise_change(api, services=["payroll"]), "template", "maximum risk", "normal change")
    assert "high" in message
    refused(raise_change(api, services=["crm-web"], impact=2), "template", "moderate")
    assert change_count(api) == 0
    active_template(api, key="crm-moderate", max_risk="moderate")
    assert started(api, raised(api, template="crm-moderate", services=["crm-web"], impact=2))["state"] == "implement"
    refused(raise_change(api, template="crm-moderate", services=["payroll"]), "template", "maximum risk")


def test_a_new_version_takes_over_only_once_approved(api):
    active_template(api)
    first = raised(api)["id"]
    new_plan = "Publish the page through the CMS release train."
    pending = api.post("/api/templates/intranet-news/versions", "ivan", json={"implementation_plan": new_plan})
    assert pending.status_code == 201, pending.get_json()
    assert (pending.get_json()["version"], pending.get_json()["kind"], pending.get_json()["status"]) == (
        2, "change", "pending")
    assert pending.get_json()["rollback_plan"] == TEMPLATE["rollback_plan"]  # unchanged fields carry over
    assert api.post("/api/templates/intranet-news/versions", "sam", json={"name": "x"}).status_code == 409
    refused(api.post("/api/templates/intranet-news/versions", "sam", json={}), "_schema")

    shown = template(api, "intranet-news")
    assert (shown["status"], shown["active_version"], shown["pending_version"]) == ("active", 1, 2)
    assert shown["implementation_plan"] == TEMPLATE["implementation_plan"]
    second = raised(api)
    assert second["implementation_plan"] == TEMPLATE["implementation_plan"]

    decide(api, "intranet-news", 2, comment="Release train is the standard now.")
    shown = template(api, "intranet-news")
    assert (shown["active_version"], shown["implementation_plan"]) == (2, new_plan)
    assert [v["active"] for v in shown["versions"]] == [False, True]
    third = raised(api, implementation_plan=new_plan)
    assert third["implementation_plan"] == new_plan
    assert [template_version_of(api, c) for c in (first, second["id"], third["id"])] == [
        ("intranet-news", 1), ("intranet-news", 1), ("intranet-news", 2)]
    assert api.change(first)["implementation_plan"] == TEMPLATE["implementation_plan"]


def test_a_rejected_change_of_content_keeps_the_active_version(api):
    active_template(api)
    api.post("/api/templates/intranet-news/versions", "sam", json={"max_risk": "moderate"})
    decide(api, "intranet-news", 2, "reject", comment="Keep it low risk.")
    shown = template(api, "intranet-news")
    assert (shown["status"], shown["active_version"], shown["max_risk"]) == ("active", 1, "low")


def test_retiring_goes_through_approval(api):
    active_template(api)
    response = api.post("/api/templates/intranet-news/retire", "sam", json={"reason": "The CMS replaces it."})
    assert response.status_code == 201, response.get_json()
    assert (response.get_json()["kind"], response.get_json()["status"]) == ("retire", "pending")
    assert template(api, "intranet-news")["status"] == "active"
    raised(api)  # still in force until the retirement is approved

    decide(api, "intranet-news", 2, user="sam", expect=403)  # sam is no change manager
    decide(api, "intranet-news", 2, comment="Agreed.")
    shown = template(api, "intranet-news")
    assert (shown["status"], shown["status_reason"]) == ("retired", "The CMS replaces it.")
    refused(raise_change(api), "template", "retired")
    assert api.post("/api/templates/intranet-news/retire", "sam", json={"reason": "Again"}).status_code == 409
    assert events(api, "template_retired") == [
        ("template_retired", "morgan", {"key": "intranet-news", "version": 2, "reason": "The CMS replaces it."})]


def test_a_backed_out_change_suspends_its_template_until_reviewed(api):
    active_template(api, max_risk="moderate")  # after a failure, the service's next change is moderate
    failed = started(api, raised(api))
    api.act("ivan", failed["id"], {**DONE, "implementation_result": "backed_out",
                                   "implementation_notes": "Page broke the menu; unpublished."})
    shown = template(api, "intranet-news")
    assert shown["status"] == "suspended" and failed["number"] in shown["status_reason"]
    [(kind, actor, data)] = events(api, "template_suspended")
    assert (actor, data["change"], data["outcome"]) == ("system", failed["number"], "backed_out")
    assert api.get("/api/templates", "audrey", query_string={"status": "suspended"}).get_json()[0]["key"] == (
        "intranet-news")
    refused(raise_change(api), "template", "suspended until reviewed")

    assert api.post("/api/templates/intranet-news/reinstate", "sam", json={"comment": "Fine."}).status_code == 403
    refused(api.post("/api/templates/intranet-news/reinstate", "morgan", json={"comment": " "}), "comment")
    response = api.post("/api/templates/intranet-news/reinstate", "morgan",
                        json={"comment": "Menu bug fixed in the CMS; template is sound."})
    assert response.status_code == 200 and response.get_json()["status"] == "active"
    assert response.get_json()["status_reason"] == ""
    [(_, actor, data)] = events(api, "template_reinstated")
    assert actor == "morgan" and data["comment"] == "Menu bug fixed in the CMS; template is sound."
    assert started(api, raised(api))["state"] == "implement"

    # closing the same failed change later does not suspend the reviewed template again
    api.act("alice", failed["id"], {"close_code": "backed_out", "verification_notes": "Page is gone."})
    assert template(api, "intranet-news")["status"] == "active"
    assert api.post("/api/templates/intranet-news/reinstate", "morgan", json={"comment": "x"}).status_code == 409


def test_an_unsuccessful_close_code_also_suspends_the_template(api):
    active_template(api)
    cid = started(api, raised(api))["id"]
    api.act("ivan", cid, {**DONE, "implementation_result": "completed"})
    assert template(api, "intranet-news")["status"] == "active"
    api.act("alice", cid, {"close_code": "unsuccessful", "verification_notes": "Wrong rota published."})
    shown = template(api, "intranet-news")
    assert shown["status"] == "suspended" and api.change(cid)["number"] in shown["status_reason"]


def test_versions_record_who_proposed_and_decided(api):
    active_template(api)
    api.post("/api/templates/intranet-news/versions", "paula", json={"test_plan": "Also check on mobile."})
    decide(api, "intranet-news", 2, comment="Good addition.")
    with api.app.app_context():
        tpl = db.session.scalar(select(ChangeTemplate).where(ChangeTemplate.key == "intranet-news"))
        versions = db.session.scalars(select(TemplateVersion).where(TemplateVersion.template_id == tpl.id)
                                      .order_by(TemplateVersion.version)).all()
        assert [(v.version, v.proposed_by.username, v.decided_by.username) for v in versions] == [
            (1, "sam", "morgan"), (2, "paula", "morgan")]
    shown = template(api, "intranet-news")
    assert [(v["version"], v["kind"], v["proposed_by"], v["decided_by"], v["decision_comment"])
            for v in shown["versions"]] == [
        (1, "create", "sam", "morgan", "Routine, well understood."),
        (2, "change", "paula", "morgan", "Good addition.")]
    assert api.get("/api/templates/no-such", "audrey").status_code == 404
