"""The service map: services CRUD, dependencies, impact analysis in one recursive query, risk, import."""
from __future__ import annotations

import pytest
from sqlalchemy import event, insert, select

from engine.accounts import create_user, issue_token
from engine.catalog import add_dependency, create_service
from engine.models import AuditEvent, Service, ServiceDependency, User
from engine.service_map import MAX_DEPTH, impacted_services, related_service_ids
from webui.extensions import db

from .test_cli import run_cli

FULL = {"key": "billing", "name": "Billing", "description": "Invoices and dunning", "owner": "sam",
        "business_owner": "CFO", "criticality": 2, "sla_tier": "gold", "vendors": ["InvoiceCo", "MailHouse"],
        "requires_maintenance_window": True}


def fields_of(response) -> set[str]:
    return {e["field"] for e in response.get_json()["errors"]}


def audit_kinds(api) -> list[str]:
    with api.app.app_context():
        return list(db.session.scalars(select(AuditEvent.kind).order_by(AuditEvent.id)))


def link(api, service, depends_on, kind="calls", user="morgan", expect=201):
    response = api.post(f"/api/services/{service}/dependencies", user, json={"depends_on": depends_on, "kind": kind})
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def graph(api, edges, criticality=3) -> dict[str, int]:
    """Create services `s-<name>` and the dependencies `(a, b)` = a depends on b; return ids by name."""
    with api.app.app_context():
        ada = db.session.scalar(select(User).where(User.username == "ada"))
        names = sorted({n for edge in edges for n in edge[:2]})
        ids = {n: create_service(db.session, ada, {"key": f"s-{n}", "name": n.upper(), "criticality": criticality}).id
               for n in names}
        for a, b, *kind in edges:
            add_dependency(db.session, ada, f"s-{a}", f"s-{b}", *(kind or ["calls"]))
        db.session.commit()
    return ids


def impact(api, *seeds):
    with api.app.app_context():
        return {row["key"].removeprefix("s-"): row for row in impacted_services(db.session, seeds)}


# -- CRUD ---------------------------------------------------------------------------------------------

def test_service_crud_round_trip_with_validation_naming_fields(api):
    created = api.post("/api/services", "morgan", json=FULL)
    assert created.status_code == 201, created.get_json()
    assert {k: created.get_json()[k] for k in FULL} == FULL
    detail = api.get("/api/services/billing", "audrey").get_json()
    assert detail["depends_on"] == [] and detail["dependents"] == [] and detail["vendors"] == FULL["vendors"]

    bad = api.post("/api/services", "morgan", json={"key": "Bad Key", "criticality": 5, "vendors": "x"})
    assert bad.status_code == 422 and {"key", "name", "criticality", "vendors"} <= fields_of(bad)
    assert api.post("/api/services", "morgan", json=FULL).status_code == 409
    unknown_owner = api.post("/api/services", "morgan", json={**FULL, "key": "billing-2", "owner": "nobody"})
    assert unknown_owner.status_code == 422 and fields_of(unknown_owner) == {"owner"}

    patched = api.request("PATCH", "/api/services/billing", "ada", json={"criticality": 1, "vendors": ["InvoiceCo"]})
    assert patched.status_code == 200, patched.get_json()
    body = patched.get_json()
    assert (body["criticality"], body["vendors"], body["sla_tier"], body["owner"]) == (1, ["InvoiceCo"], "gold", "sam")
    for refused in ({"colour": "red"}, {"key": "other"}, {"criticality": 0}):
        response = api.request("PATCH", "/api/services/billing", "ada", json=refused)
        assert response.status_code == 422 and fields_of(response) == set(refused), response.get_json()
    assert api.request("PATCH", "/api/services/billing", "ada", json={}).status_code == 422
    assert api.request("PATCH", "/api/services/nope", "ada", json={"name": "x"}).status_code == 404

    listed = api.get("/api/services", "audrey", query_string={"owner": "sam", "criticality": 1}).get_json()
    assert [s["key"] for s in listed] == ["billing", "identity", "payroll"]
    assert api.request("DELETE", "/api/services/billing", "morgan").status_code == 204
    assert api.get("/api/services/billing", "audrey").status_code == 404
    kinds = audit_kinds(api)
    assert kinds.count("service_created") == 9 and "service_updated" in kinds and "service_deleted" in kinds


def test_delete_refused_while_a_change_names_the_service(api):
    api.submit(services=["crm-web"])
    link(api, "crm-web", "identity")
    refused = api.request("DELETE", "/api/services/crm-web", "ada")
    assert refused.status_code == 409 and "history" in refused.get_json()["message"]
    assert api.get("/api/services/crm-web", "audrey").get_json()["depends_on"][0]["key"] == "identity"
    assert api.request("DELETE", "/api/services/intranet", "ada").status_code == 204


def test_dependencies_added_listed_and_removed(api):
    assert link(api, "crm-web", "identity") == {"service": "crm-web", "depends_on": "identity", "kind": "calls"}
    link(api, "crm-web", "cloud-capacity", "runs_on")
    crm = api.get("/api/services/crm-web", "audrey").get_json()
    assert [(d["key"], d["kind"]) for d in crm["depends_on"]] == [("cloud-capacity", "runs_on"), ("identity", "calls")]
    assert [d["key"] for d in api.get("/api/services/identity", "audrey").get_json()["dependents"]] == ["crm-web"]

    self_dep = api.post("/api/services/crm-web/dependencies", "morgan", json={"depends_on": "crm-web"})
    assert self_dep.status_code == 422 and fields_of(self_dep) == {"depends_on"}
    assert link(api, "crm-web", "identity", "runs_on", expect=409)["code"] == 409
    unknown = api.post("/api/services/crm-web/dependencies", "morgan", json={"depends_on": "nope"})
    assert unknown.status_code == 422 and fields_of(unknown) == {"depends_on"}
    bad_kind = api.post("/api/services/crm-web/dependencies", "morgan", json={"depends_on": "payroll", "kind": "x"})
    assert bad_kind.status_code == 422 and fields_of(bad_kind) == {"kind"}
    assert api.post("/api/services/nope/dependencies", "morgan", json={"depends_on": "payroll"}).status_code == 404
    link(api, "identity", "crm-web")  # a cycle is allowed: real estates have them

    assert api.request("DELETE", "/api/services/crm-web/dependencies/identity", "morgan").status_code == 204
    assert api.request("DELETE", "/api/services/crm-web/dependencies/identity", "morgan").status_code == 404
    assert [d["key"] for d in api.get("/api/services/crm-web", "audrey").get_json()["depends_on"]] == ["cloud-capacity"]
    kinds = audit_kinds(api)
    assert kinds.count("dependency_added") == 3 and kinds.count("dependency_removed") == 1


def test_only_admins_and_change_managers_write_and_everyone_reads(api):
    for user in ("alice", "sam", "audrey"):
        assert api.post("/api/services", user, json=FULL).status_code == 403
        assert api.request("PATCH", "/api/services/intranet", user, json={"criticality": 1}).status_code == 403
        assert api.request("DELETE", "/api/services/intranet", user).status_code == 403
        assert api.post("/api/services/crm-web/dependencies", user, json={"depends_on": "identity"}).status_code == 403
        assert api.get("/api/services", user).status_code == 200
        assert api.get("/api/services/intranet", user).status_code == 200
    assert api.get("/api/services").status_code == 401
    assert api.post("/api/services", "ada", json=FULL).status_code == 201
    link(api, "crm-web", "identity", user="ada")
    assert api.request("DELETE", "/api/services/crm-web/dependencies/identity", "alice").status_code == 403


# -- impact analysis ----------------------------------------------------------------------------------

def test_chain_reports_depth_and_full_path(api):
    ids = graph(api, [("b", "a", "runs_on"), ("c", "b", "feeds_data_to")])  # A ← B ← C
    found = impact(api, ids["a"])
    assert set(found) == {"b", "c"}
    assert (found["b"]["depth"], found["b"]["path"], found["b"]["kinds"]) == (1, ["s-a", "s-b"], ["runs_on"])
    assert (found["c"]["depth"], found["c"]["path"]) == (2, ["s-a", "s-b", "s-c"])
    assert found["c"]["kinds"] == ["runs_on", "feeds_data_to"] and found["c"]["owner_id"] is None
    assert impact(api, ids["c"]) == {}  # nothing depends on C
    assert set(impact(api, ids["a"], ids["b"])) == {"c"}  # changed services are not listed as impacted


def test_diamond_lists_each_service_once_by_its_shortest_path(api):
    ids = graph(api, [("b", "a"), ("c", "a"), ("d", "b"), ("d", "c"), ("e", "d"), ("e", "a")])
    found = impact(api, ids["a"])
    assert sorted(found) == ["b", "c", "d", "e"]
    assert (found["d"]["depth"], found["d"]["path"]) == (2, ["s-a", "s-b", "s-d"])  # ties: smallest key
    assert (found["e"]["depth"], found["e"]["path"]) == (1, ["s-a", "s-e"])


def test_cycles_terminate(api):
    ids = graph(api, [("b", "a"), ("c", "b"), ("a", "c"), ("d", "c"), ("c", "d")])
    found = impact(api, ids["a"])
    assert {k: v["depth"] for k, v in found.items()} == {"b": 1, "c": 2, "d": 3}
    assert found["d"]["path"] == ["s-a", "s-b", "s-c", "s-d"]
    with api.app.app_context():
        assert related_service_ids(db.session, {ids["b"]}) == {ids["a"], ids["c"], ids["d"]}


def test_related_services_go_both_ways_but_not_sideways(api):
    ids = graph(api, [("y", "x"), ("z", "y"), ("s", "x")])  # S is Y's sibling: both need X
    with api.app.app_context():
        assert related_service_ids(db.session, [ids["y"]]) == {ids["x"], ids["z"]}
        assert related_service_ids(db.session, [ids["x"]]) == {ids["y"], ids["z"], ids["s"]}
        assert related_service_ids(db.session, []) == set() and impacted_services(db.session, []) == []


def test_impact_of_a_200_service_chain_is_one_query(api):
    with api.app.app_context():
        session = db.session
        session.execute(insert(Service), [{"key": f"chain-{i:03}", "name": f"Chain {i}", "criticality": 3}
                                          for i in range(200)])
        ids = dict(session.execute(select(Service.key, Service.id).where(Service.key.like("chain-%"))).all())
        session.execute(insert(ServiceDependency), [
            {"service_id": ids[f"chain-{i + 1:03}"], "depends_on_id": ids[f"chain-{i:03}"], "kind": "calls"}
            for i in range(199)])
        session.commit()
        session.execute(select(1))  # the connection is checked out before counting
        statements = []
        engine = session.get_bind()
        listener = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            found = impacted_services(session, [ids["chain-000"]])
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert len(statements) == 1 and "RECURSIVE" in statements[0].upper()
        assert len(found) == MAX_DEPTH and found[-1]["depth"] == MAX_DEPTH
        assert found[-1]["path"] == [f"chain-{i:03}" for i in range(MAX_DEPTH + 1)]


def test_change_impact_endpoint_and_risk_from_dependents(api):
    link(api, "payroll", "intranet", "runs_on")  # mission-critical payroll needs the intranet
    link(api, "data-warehouse", "payroll", "feeds_data_to")
    plain = api.submit(services=["cloud-capacity"])
    assert plain["risk"] != "high"
    change = api.submit(services=["intranet"])
    assert change["risk"] == "high"
    assert any("mission-critical" in reason for reason in change["risk_reasons"]), change["risk_reasons"]

    body = api.get(f"/api/changes/{change['id']}/impact", "alice").get_json()
    assert [s["key"] for s in body["services"]] == ["intranet"] and body["max_criticality"] == 1
    assert [(i["key"], i["depth"], i["path"], i["kinds"], i["owner"]) for i in body["impacted"]] == [
        ("payroll", 1, ["intranet", "payroll"], ["runs_on"], "sam"),
        ("data-warehouse", 2, ["intranet", "payroll", "data-warehouse"], ["runs_on", "feeds_data_to"], "sam")]
    assert api.get(f"/api/changes/{change['id']}/impact", "audrey").status_code == 200
    assert api.get("/api/changes/99999/impact", "audrey").status_code == 404
    with api.app.app_context():
        bob = create_user(db.session, "bob", ["requester"])  # another requester: not his change
        token = issue_token(db.session, bob)
        db.session.commit()
    assert api.request("GET", f"/api/changes/{change['id']}/impact", token=token).status_code == 403


# -- import -------------------------------------------------------------------------------------------

def _services(api) -> dict[str, dict]:
    return {s["key"]: s for s in api.get("/api/services", "audrey").get_json()}


def test_import_yaml_creates_services_and_dependencies(api, database_url, tmp_path):
    source = tmp_path / "estate.yaml"
    source.write_text("""
services:
  - {key: hr-portal, name: HR portal, owner: sam, criticality: 2, vendors: [Acme], sla_tier: gold,
     business_owner: Head of HR, requires_maintenance_window: true, depends_on: ["identity:calls", payroll]}
  - {key: hr-db, name: HR database, criticality: 1}
dependencies:
  - {service: hr-portal, depends_on: hr-db, kind: runs_on}
""")
    result = run_cli("services", "import", str(source), database_url=database_url, tmp_path=tmp_path)
    assert "2 created" in result.stdout and "3 added" in result.stdout
    portal = api.get("/api/services/hr-portal", "audrey").get_json()
    assert (portal["owner"], portal["criticality"], portal["vendors"], portal["requires_maintenance_window"]) == (
        "sam", 2, ["Acme"], True)
    assert [(d["key"], d["kind"]) for d in portal["depends_on"]] == [
        ("hr-db", "runs_on"), ("identity", "calls"), ("payroll", "calls")]
    again = run_cli("services", "import", str(source), database_url=database_url, tmp_path=tmp_path, check=False)
    assert again.returncode == 2 and "already exists" in again.stderr and "--update" in again.stderr
    example = run_cli("services", "import", "docs/examples/services.yaml", "--update",
                      database_url=database_url, tmp_path=tmp_path)
    assert "0 created" in example.stdout, example.stdout
    assert _services(api)["payroll"]["sla_tier"] == "gold"
    assert "services_imported" in audit_kinds(api)


def test_import_csv_and_update(api, database_url, tmp_path):
    source = tmp_path / "estate.csv"
    source.write_text(
        "key,name,description,owner,business_owner,criticality,sla_tier,vendors,requires_maintenance_window,"
        "depends_on\n"
        "mail,Mail,Corporate mail,sam,CIO,2,silver,MailCo;SpamGuard,yes,identity:calls;cloud-capacity:runs_on\n"
        "crm-web,CRM web app,,,,1,,,,mail\n")
    refused = run_cli("services", "import", str(source), database_url=database_url, tmp_path=tmp_path, check=False)
    assert refused.returncode == 2 and "crm-web" in refused.stderr and "row 3" in refused.stderr
    assert "mail" not in _services(api)
    result = run_cli("services", "import", str(source), "--update", database_url=database_url, tmp_path=tmp_path)
    assert "1 created, 1 updated" in result.stdout and "3 added" in result.stdout
    services = _services(api)
    assert services["mail"]["vendors"] == ["MailCo", "SpamGuard"] and services["mail"]["requires_maintenance_window"]
    crm = services["crm-web"]
    assert (crm["criticality"], crm["description"], crm["owner"]) == (1, "Customer relationship management front end",
                                                                      "sam")  # empty cells keep values


@pytest.mark.parametrize("suffix", ["csv", "yaml"])
def test_a_bad_file_reports_every_row_and_field_and_stores_nothing(api, database_url, tmp_path, suffix):
    before = _services(api)
    source = tmp_path / f"bad.{suffix}"
    if suffix == "csv":
        source.write_text("key,name,criticality,owner,depends_on\n"
                          "good-one,Good,2,sam,identity\n"
                          "bad-crit,Bad,high,,\n"
                          "bad-owner,Bad,2,nobody,ghost:calls\n"
                          "good-one,Again,3,,\n")
        rows = ("row 3", "row 4", "row 5")
    else:
        source.write_text("- {key: good-one, name: Good, depends_on: [identity]}\n"
                          "- {key: bad-crit, name: Bad, criticality: high}\n"
                          "- {key: bad-owner, name: Bad, owner: nobody, depends_on: ['ghost:calls', 'identity:x']}\n"
                          "- {key: good-one, name: Again}\n")
        rows = ("row 2", "row 3", "row 4")
    result = run_cli("services", "import", str(source), database_url=database_url, tmp_path=tmp_path, check=False)
    assert result.returncode == 2 and "nothing was imported" in result.stderr
    for row in rows:
        assert row in result.stderr, result.stderr
    for text in ("(bad-crit): criticality", "(bad-owner): owner", "(bad-owner): depends_on: no service 'ghost'",
                 "(good-one): key"):
        assert text in result.stderr, result.stderr
    assert _services(api) == before
