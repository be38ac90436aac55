"""The service-owner and steering-committee reports against a recorded history across 2026-Q3 and
2026-Q4 with dependent services (a cycle included; tests/service_owner_history.py): every figure,
table cell and drill-down is computed again from the history's own facts, then compared. Edge cases:
a window across the quarter end, canceled changes, a business acceptance rejected and accepted again,
an acceptance task withdrawn, costs recorded on some changes only, a change naming no service, one
naming three. Last, a change driven through the real API (with its actual cost recorded at the review)
is counted exactly like its History twin, and the new-change page takes a cost estimate."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import select

from engine.accounts import create_user
from engine.catalog import add_dependency
from engine.errors import Forbidden, ValidationFailed
from engine.models import User
from engine.reports import build_report, changes_behind
from engine.reports.scope import InvalidScope, Scope, parse_scope
from webui.extensions import db

from .report_history import History
from .service_owner_history import (CODES, DEPENDS, Q3, Q4, SERVICES, as_float, closed, edge_cases, lifecycle,
                                    minutes_inside, money, number, open_steps, outcome, owner_sets, planned,
                                    relation, requested, routine)
from .test_evidence_rules import APPROVE, DONE, REVIEWED, authorized_and_scheduled, ready
from .test_pages import csrf, sign_in


@pytest.fixture
def history(app):
    with app.app_context():
        ada = db.session.scalar(select(User).where(User.username == "ada"))
        for key, depends_on, kind in DEPENDS:
            add_dependency(db.session, ada, key, depends_on, kind)
        create_user(db.session, "olga", ["service_owner"], display_name="Olga Owner", email="olga@example.com")
        db.session.flush()
        h = History(db.session)
        for facts in [routine(i) for i in range(32)] + edge_cases():
            h.add(facts)
        db.session.commit()
        h.key_of = {change_id: key for key, change_id in h.ids.items()}
        yield h


def behind(h, kind, scope, drill, user="audrey") -> set[str]:
    rows, total = changes_behind(db.session, db.session.scalar(select(User).where(User.username == user)), kind,
                                 scope, drill["metric"], drill.get("group"))
    assert total == len(rows)
    return {h.key_of[c.id] for c in rows}


def report(kind, scope, user="audrey"):
    return build_report(db.session, db.session.scalar(select(User).where(User.username == user)), kind, scope)


# -- service owner ---------------------------------------------------------------------------------

def test_the_service_owner_report_for_each_service_matches_the_history(history):
    h = history
    for service, period in ((service, period) for service in SERVICES for period in (Q3, Q4)):
        scope = Scope(period.first_day, period.last_day, period.kind, service=service)
        built, sets = report("service-owner", scope), owner_sets(h, service, period)
        figures = {f.key: f for f in built.figures}
        for key in ("touching", "direct", "dependent", "canceled", "planned", "closed", "acceptance_open"):
            assert figures[key].value == len(sets[key]), (service, period.label, key)
            assert behind(h, "service-owner", scope, figures[key].drill) == sets[key], (service, period.label, key)
        assert figures["downtime"].value == round(sum(minutes_inside(h.facts[k], period) for k in sets["planned"]), 1)
        assert figures["incidents"].value == sum(len(h.facts[k].incidents) for k in sets["closed"])
        assert behind(h, "service-owner", scope, figures["incidents"].drill) == sets["incidents"]
        results = built.table("results").rows
        assert [(r["label"], r["count"]) for r in results] == [(code, len(sets[code])) for code in CODES]
        for row in results:
            assert behind(h, "service-owner", scope, row["drill"]["count"]) == sets[row["label"]]
        incidents = sorted((h.facts[k] for k in sets["incidents"]), key=lambda f: (f.closed_at, h.ids[f.key]))
        assert [(r["incident"], r["change"], r["via"]) for r in built.table("incidents").rows] == [
            (i, number(h, f.key), relation(f, service).replace("dependent", "dependency"))
            for f in incidents for i in f.incidents]
        items = [(number(h, f.key), f"{s.approver} (Business acceptance)", s.asked.isoformat())
                 for f in h.facts.values() if relation(f, service) for s in open_steps(f, period.end)]
        assert sorted((r["change"], r["asked"], r["since"]) for r in built.table("acceptance_items").rows) == \
            sorted(items)


def test_the_edge_cases_land_where_they_should(history):
    h = history
    # the 5-hour window across the quarter end: 120 minutes on 30 September, 180 on 1 October (where R17's
    # 90-minute window also touches identity), and the change is planned in both quarters
    for day, minutes in ((date(2026, 9, 30), 120.0), (date(2026, 10, 1), 180.0 + 90.0)):
        assert report("service-owner", Scope(day, day, "custom", "identity")).figure("downtime").value == minutes
    for period in (Q3, Q4):
        assert "BOUNDARY" in behind(h, "service-owner", Scope(period.first_day, period.last_day, "quarter", "identity"),
                                    {"metric": "planned"})
    crm_q3 = Scope(Q3.first_day, Q3.last_day, "quarter", "crm-web")
    assert "REOPENED" in behind(h, "service-owner", crm_q3, {"metric": "acceptance_open"})
    reopened_items = [r for r in report("service-owner", crm_q3).table("acceptance_items").rows
                      if r["change"] == number(h, "REOPENED")]
    assert sorted(r["asked"] for r in reopened_items) == ["olga (Business acceptance)", "sam (Business acceptance)"]
    crm_q4 = Scope(Q4.first_day, Q4.last_day, "quarter", "crm-web")
    assert behind(h, "service-owner", crm_q4, {"metric": "closed", "group": "code:successful_with_issues"}) >= \
        {"REOPENED"}  # closed once, in Q4, after both rounds
    payroll_q3 = Scope(Q3.first_day, Q3.last_day, "quarter", "payroll")
    assert "CANCELED" in behind(h, "service-owner", payroll_q3, {"metric": "canceled"})
    assert "CANCELED" not in behind(h, "service-owner", payroll_q3, {"metric": "planned"})
    # the acceptance task withdrawn on 1 December was open at the end of October and November, not December
    for month, expected in (("2026-10", True), ("2026-11", True), ("2026-12", False)):
        scope = parse_scope({"period": month, "service": "data-warehouse"})
        assert ("WITHDRAWN" in behind(h, "service-owner", scope, {"metric": "acceptance_open"})) is expected, month
        assert ("WITHDRAWN" in behind(h, "steering", parse_scope({"period": month}),
                                      {"metric": "acceptance_open"})) is expected, month
    assert "NOSERVICE" not in behind(h, "service-owner", Q4, {"metric": "touching"})


def test_without_a_service_every_service_has_its_row(history):
    h = history
    for period in (Q3, Q4):
        built = report("service-owner", period)
        totals = owner_sets(h, None, period)
        figures = {f.key: f for f in built.figures}
        assert "dependent" not in figures
        for key in ("touching", "canceled", "planned", "closed", "acceptance_open"):
            assert figures[key].value == len(totals[key]) and \
                behind(h, "service-owner", period, figures[key].drill) == totals[key], key
        assert figures["downtime"].value == round(sum(minutes_inside(h.facts[k], period) for k in totals["planned"]), 1)
        rows = built.table("services").rows
        assert [r["label"] for r in rows] == sorted(SERVICES)
        for row in rows:
            sets = owner_sets(h, row["label"], period)
            for column in ("touching", "direct", "dependent", "closed", *CODES, "acceptance_open"):
                assert row[column] == len(sets[column]), (row["label"], column)
                assert behind(h, "service-owner", period, row["drill"][column]) == sets[column], (row["label"], column)
            assert row["incidents"] == sum(len(h.facts[k].incidents) for k in sets["closed"])
            assert row["downtime"] == round(sum(minutes_inside(h.facts[k], period) for k in sets["planned"]), 1)
    category = parse_scope({"period": "2026-Q4", "category": "application_release", "service": "intranet"})
    expected = {k for k in owner_sets(h, "intranet", Q4)["touching"] if h.facts[k].category == "application_release"}
    assert report("service-owner", category).figure("touching").value == len(expected)


def test_who_may_read_them_and_what_is_refused(history):
    sam, casey, alice = (db.session.scalar(select(User).where(User.username == u)) for u in ("sam", "casey", "alice"))
    assert build_report(db.session, sam, "service-owner", Q4).figure("touching").value > 0
    assert build_report(db.session, casey, "steering", Q4).figure("high_risk").value > 0
    for user, kind in ((sam, "steering"), (casey, "service-owner"), (alice, "service-owner"), (alice, "steering")):
        with pytest.raises(Forbidden):
            build_report(db.session, user, kind, Q4)
    with pytest.raises(InvalidScope) as refused:
        report("service-owner", parse_scope({"period": "2026-Q4", "service": "nope"}))
    assert refused.value.extra == {"field": "service"}
    for kind, metric, group in (("service-owner", "dependent", None), ("service-owner", "closed", "colour:red"),
                                ("steering", "high_risk", "category:infrastructure"), ("steering", "nope", None)):
        with pytest.raises(ValidationFailed):
            changes_behind(db.session, casey if kind == "steering" else sam, kind, Q4, metric, group)


# -- steering committee ----------------------------------------------------------------------------

def test_the_steering_report_matches_the_history(history):
    h = history
    for period in (Q3, Q4):
        built = report("steering", period)
        high = [f for f in h.facts.values() if f.risk == "high" and (requested(f, period) or closed(f, period))]
        assert built.figure("high_risk").value == len(high)
        assert behind(h, "steering", period, built.figure("high_risk").drill) == {f.key for f in high}
        for row in built.table("high_risk_outcomes").rows:
            keys = {f.key for f in high if outcome(f, period) == row["label"]}
            assert row["count"] == len(keys) and behind(h, "steering", period, row["drill"]["count"]) == keys
        assert [(r["change"], r["outcome"], r["incidents"]) for r in built.table("high_risk_changes").rows] == [
            (number(h, f.key), outcome(f, period), len(f.incidents))
            for f in sorted(high, key=lambda f: (f.created, h.ids[f.key]))]
        failed = {f.key for f in high if closed(f, period) and (f.close_code in ("unsuccessful", "backed_out")
                                                                or f.incidents)}
        assert built.figure("high_risk_failed").value == len(failed)
        assert behind(h, "steering", period, built.figure("high_risk_failed").drill) == failed

        done = [f for f in h.facts.values() if closed(f, period)]
        rows = {r["label"]: r for r in built.table("financial").rows}
        assert list(rows) == sorted({f.category for f in done}) + ["All categories"]
        for label, row in rows.items():
            group = [f for f in done if label in ("All categories", f.category)]
            both = [f for f in group if f.cost_estimate and f.cost_actual]
            variance = money([f.cost_actual for f in both]) - money([f.cost_estimate for f in both]) if both else None
            assert (row["changes"], row["estimated"], row["actualized"], row["both"]) == (
                len(group), sum(bool(f.cost_estimate) for f in group), sum(bool(f.cost_actual) for f in group), len(both))
            assert (row["estimate"], row["actual"], row["variance"]) == (
                as_float(money([f.cost_estimate for f in group])), as_float(money([f.cost_actual for f in group])),
                as_float(variance)), label
            for column, keys in (("changes", group), ("estimated", [f for f in group if f.cost_estimate]),
                                 ("actual", [f for f in group if f.cost_actual]), ("variance", both)):
                assert behind(h, "steering", period, row["drill"][column]) == {f.key for f in keys}, (label, column)
        total = rows["All categories"]
        assert (built.figure("cost_estimate").value, built.figure("cost_actual").value,
                built.figure("cost_variance").value) == (total["estimate"], total["actual"], total["variance"])

        waiting = {f.key for f in h.facts.values() if open_steps(f, period.end)}
        assert built.figure("acceptance_open").value == len(waiting)
        assert behind(h, "steering", period, built.figure("acceptance_open").drill) == waiting
        assert len(built.table("acceptance_items").rows) == sum(len(open_steps(f, period.end)) for f in h.facts.values())

        following = period.next()
        upcoming = sorted((f for f in h.facts.values() if f.risk == "high" and planned(f, following)),
                          key=lambda f: (f.planned[0], h.ids[f.key]))
        assert built.figure("next_high_risk").value == len(upcoming)
        assert [(r["change"], r["services"], r["risk_reasons"]) for r in built.table("next_risks").rows] == [
            (number(h, f.key), ", ".join(sorted(f.services)), "; ".join(f.risk_reasons)) for f in upcoming]
    q4_next = [r["change"] for r in report("steering", Q4).table("next_risks").rows]
    assert q4_next == [number(h, k) for k in ("NEXT_SPAN", "NEXT2", "NEXT1")]  # canceled and low risk left out
    for period, expected in ((Q3, "open"), (Q4, "successful")):  # BOUNDARY: requested in Q3, closed in Q4
        [row] = [r for r in report("steering", period).table("high_risk_changes").rows
                 if r["change"] == number(h, "BOUNDARY")]
        assert row["outcome"] == expected
    outcomes = {p.label: {r["change"]: r["outcome"] for r in report("steering", p).table("high_risk_changes").rows}
                for p in (Q3, Q4)}
    assert outcomes["2026-Q3"][number(h, "CANCELED")] == "canceled" and number(h, "CANCELED") not in outcomes["2026-Q4"]
    assert outcomes["2026-Q4"][number(h, "CANCELED_NEXT")] == "canceled"

    filtered = report("steering", parse_scope({"period": "2026-Q4", "category": "infrastructure"}))
    assert [r["label"] for r in filtered.table("financial").rows] == ["infrastructure", "All categories"]
    payroll = report("steering", parse_scope({"period": "2026-Q3", "service": "payroll"}))
    assert payroll.figure("high_risk").value == sum(
        1 for f in h.facts.values() if "payroll" in f.services and f.risk == "high" and (requested(f, Q3) or closed(f, Q3)))


# -- a real change, through the API ---------------------------------------------------------------

def test_a_change_through_the_api_counts_like_a_history_change(app, api):
    with app.app_context():
        add_dependency(db.session, db.session.scalar(select(User).where(User.username == "ada")), "intranet",
                       "crm-web", "calls")
        db.session.commit()
    cid = api.submit(services=["crm-web"], cost_estimate="2500.00")["id"]
    api.attach_required(cid)
    authorized_and_scheduled(api, cid)
    if ready(api, cid) == [("Review rollback plan", None)]:
        api.act("morgan", cid, APPROVE, name="Review rollback plan")
    api.wait_for_window(cid)
    api.act("ivan", cid, DONE, name="Implement change")
    api.attach_required(cid, "close", user="ivan")

    review = api.task("morgan", cid, "Post-implementation review")
    client = app.test_client()
    sign_in(client, "morgan")
    page = client.get(f"/tasks/{review['id']}").get_data(as_text=True)
    assert '<label for="cost_actual">Actual cost</label>' in page and 'type="number"' in page
    refused = client.post(f"/tasks/{review['id']}", data={"csrf_token": csrf(page), **REVIEWED, "cost_actual": "-5"})
    assert refused.status_code == 422 and 'id="cost_actual-error"' in refused.get_data(as_text=True)
    assert api.change(cid)["cost_actual"] is None and api.change(cid)["state"] == "review"
    api.complete("morgan", review["id"], {**REVIEWED, "cost_actual": 2750.5})

    change = api.change(cid)
    today = datetime.now(timezone.utc).date()
    window = datetime.fromisoformat(change["planned_start"]).date()
    scope = Scope(min(today, window), max(today, window), "custom", service="intranet")
    with app.app_context():
        waiting = report("service-owner", scope)
        assert (waiting.figure("dependent").value, waiting.figure("acceptance_open").value) == (1, 1)
    api.accept(cid)
    change = api.change(cid)
    assert (change["state"], change["cost_estimate"], change["cost_actual"]) == ("closed", "2500.00", "2750.50")

    counted = ("touching", "direct", "dependent", "canceled", "planned", "downtime", "closed", "incidents",
               "acceptance_open")
    with app.app_context():
        real = {f.key: f.value for f in report("service-owner", scope).figures}
        assert {k: real[k] for k in counted} == {
            "touching": 1, "direct": 0, "dependent": 1, "canceled": 0, "planned": 1, "downtime": 105.0, "closed": 1,
            "incidents": 0, "acceptance_open": 0}
        created, start, end, closed_at = (datetime.fromisoformat(change[name]) for name in (
            "created_at", "planned_start", "planned_end", "closed_at"))
        twin = lifecycle(created, start, end, closed_at,
                         key="twin", services=("crm-web",), category=change["category"], risk=change["risk"],
                         close_code="successful", cost_estimate="2500.00", cost_actual="2750.50")
        History(db.session).add(twin)
        db.session.commit()
        both = {f.key: f.value for f in report("service-owner", scope).figures}
        assert {k: both[k] for k in counted} == {k: 2 * real[k] for k in counted}
        steering = report("steering", Scope(scope.first_day, scope.last_day, "custom"))
        [row] = [r for r in steering.table("financial").rows if r["label"] == change["category"]]
        assert (row["changes"], row["estimate"], row["actual"], row["variance"]) == (2, 5000.0, 5501.0, 501.0)


def test_the_new_change_page_takes_a_cost_estimate(app, api):
    client = app.test_client()
    sign_in(client, "alice")
    page = client.get("/changes/new").get_data(as_text=True)
    assert '<label for="cost_estimate">Cost estimate</label>' in page
    form = {"csrf_token": csrf(page), "title": "Rotate firewall certificates", "change_type": "normal",
            "category": "infrastructure", "services": ["firewall"], "impact": "2", "urgency": "2"}
    refused = client.post("/changes/new", data={**form, "cost_estimate": "lots"})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="cost_estimate-error"' in html and 'value="lots"' in html
    assert api.get("/api/changes", "audrey").get_json()["total"] == 0
    assert client.post("/changes/new", data={**form, "cost_estimate": "1234.50"}).status_code == 302
    [change] = api.get("/api/changes", "audrey").get_json()["items"]
    assert change["cost_estimate"] == "1234.50" and change["cost_actual"] is None
