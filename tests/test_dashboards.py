"""Dashboards: every figure against a history the test builds through the API, each drill-down link
listing exactly what its number counts, the chart-table markup, and who may see them."""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from html.parser import HTMLParser

from engine import dashboards
from engine.db import utcnow
from engine.models import User
from webui.extensions import db

from .test_evidence_rules import APPROVE, DONE, authorized_and_scheduled, ready
from .test_pages import sign_in


# -- building the history ----------------------------------------------------------------------

def window(today: date, days: int, hour: int, minutes: int) -> dict:
    start = datetime.combine(today + timedelta(days=days), time(hour), tzinfo=timezone.utc)
    return {"planned_start": start.isoformat(), "planned_end": (start + timedelta(minutes=minutes)).isoformat()}


def closed_normal(api, close_code: str, follow_ups: list | None = None, **overrides) -> int:
    """A normal change driven through authorization, implementation and review to closure."""
    cid = api.submit(**overrides)["id"]
    api.attach_required(cid)
    authorized_and_scheduled(api, cid)
    if ready(api, cid) == [("Review rollback plan", None)]:
        api.act("morgan", cid, APPROVE, name="Review rollback plan")
    api.wait_for_window(cid)
    result = DONE if close_code != "unsuccessful" else {
        **DONE, "implementation_result": "completed_with_issues", "implementation_notes": "Logins fail."}
    api.act("ivan", cid, result, name="Implement change")
    api.attach_required(cid, "close", user="ivan")
    api.act("morgan", cid, {"close_code": close_code, "close_notes": "Reviewed.",
                            **({"follow_up_actions": follow_ups} if follow_ups else {})},
            name="Post-implementation review")
    api.accept(cid)
    assert api.change(cid)["state"] == "closed"
    return cid


def closed_emergency(api, close_code: str) -> int:
    cid = api.submit(change_type="emergency", category="emergency_patch", emergency_reason="Exploited CVE.",
                     implementer="ivan", title="Emergency patch")["id"]
    api.attach_required(cid)
    api.act("erin", cid, APPROVE, name="Emergency approval")
    api.act("erin", cid, APPROVE, name="Review rollback plan")
    api.act("ivan", cid, DONE, name="Implement change")
    api.attach_required(cid, "close", user="ivan")
    api.act("casey", cid, {"close_code": close_code, "lessons_learned": "Patch sooner."}, name="Retrospective review")
    api.accept(cid)
    assert api.change(cid)["state"] == "closed"
    return cid


def build_history(api) -> dict:
    """Open changes (high risk soon, high risk later, low risk soon, one canceled), then four closed ones:
    three successful (one an emergency, one with issues) and one unsuccessful; one overdue follow-up."""
    today = utcnow().date()
    soon = api.submit(title="High risk soon", impact=1, services=["crm-web", "intranet"], **window(today, 3, 20, 90))
    later = api.submit(title="High risk later", impact=1, **window(today, 20, 20, 60))
    low = api.submit(title="Low risk soon", **window(today, 3, 21, 30))
    canceled = api.submit(title="High risk canceled", impact=1, **window(today, 5, 20, 45))
    assert [c["risk"] for c in (soon, later, low, canceled)] == ["high", "high", "low", "high"]
    api.act("morgan", soon["id"], APPROVE, name="Authorize change")  # now waits for sam, the services' owner
    api.act("morgan", canceled["id"], {"decision": "reject", "comment": "Not now."}, name="Authorize change")
    api.act("alice", canceled["id"], {"rework_action": "cancel", "comment": "No longer needed."})
    assert api.change(canceled["id"])["state"] == "canceled"

    ok = closed_normal(api, "successful", follow_ups=[
        {"action": "Remove the old artefacts.", "owner": "ivan", "due_date": "2020-01-31"},
        {"action": "Add a smoke test.", "owner": "ivan", "due_date": (today + timedelta(days=30)).isoformat()}])
    bad = closed_normal(api, "unsuccessful", services=["cloud-capacity"])
    issues = closed_normal(api, "successful_with_issues", services=["service-desk"])
    emergency = closed_emergency(api, "successful")
    numbers = {name: api.change(cid)["number"] for name, cid in
               {"soon": soon["id"], "later": later["id"], "low": low["id"], "canceled": canceled["id"],
                "ok": ok, "bad": bad, "issues": issues, "emergency": emergency}.items()}
    return {"today": today, "numbers": numbers}


# -- reading pages -----------------------------------------------------------------------------

def listed_numbers(client, href: str) -> set[str]:
    page = client.get(href)
    assert page.status_code == 200, href
    return set(re.findall(r'class="number" href="/changes/(CHG\d+)"', page.get_data(as_text=True)))


class ChartTables(HTMLParser):
    """Each `table.chart` as {attrs, caption, header, rows: [(row header, href, [cells])]}."""

    def __init__(self):
        super().__init__()
        self.tables, self.table, self.cell, self.text = [], None, None, ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "chart" in (attrs.get("class") or "").split():
            self.table = {"attrs": attrs, "caption": "", "header": [], "rows": []}
        elif self.table is None:
            return
        elif tag == "tr":
            self.row = None
        elif tag in ("th", "td", "caption"):
            self.cell, self.text, self.cell_attrs, self.href = tag, "", attrs, None
        elif tag == "a":
            self.href = attrs.get("href")

    def handle_data(self, data):
        if self.cell:
            self.text += data

    def handle_endtag(self, tag):
        if self.table is None:
            return
        text = self.text.strip()
        if tag == "caption":
            self.table["caption"], self.cell = text, None
        elif tag == "th" and self.cell_attrs.get("scope") == "col":
            self.table["header"].append(text)
            self.cell = None
        elif tag == "th":
            self.row = (text, self.href, [])
            self.table["rows"].append(self.row)
            self.cell = None
        elif tag == "td":
            self.row[2].append(text)
            self.cell = None
        elif tag == "table":
            self.tables.append(self.table)
            self.table = None


def chart_tables(html: str) -> dict[str, dict]:
    parser = ChartTables()
    parser.feed(html)
    return {t["caption"]: t for t in parser.tables}


# -- the figures and their drill-downs ---------------------------------------------------------

def test_every_figure_counts_the_history_and_each_link_lists_exactly_those_changes(app, api):
    history = build_history(api)
    today, n = history["today"], history["numbers"]
    answer = api.get("/api/dashboard", "audrey")
    assert answer.status_code == 200, answer.get_json()
    data = answer.get_json()
    assert data["period"] == "month"
    client = app.test_client()
    sign_in(client, "sam")

    # pending approvals: the change manager's pool has two Authorize tasks, sam one owner approval
    pending = {(r["approver"], r["role"]): r["count"] for r in data["pending_approvals"]}
    assert pending == {(None, "change_manager"): 2, ("sam", None): 1}
    assert all(0 <= r["oldest_hours"] < 1 for r in data["pending_approvals"])
    by_label = {r["label"]: r["href"] for r in data["pending_approvals"]}
    assert listed_numbers(client, by_label["change manager (anyone)"]) == {n["later"], n["low"]}
    assert listed_numbers(client, by_label["sam"]) == {n["soon"]}

    # high-risk changes: only the open one three days ahead (not the canceled one, not the one in 20 days)
    days = data["high_risk_upcoming"]
    assert [d["date"] for d in days] == [(today + timedelta(days=i)).isoformat() for i in range(14)]
    assert {d["date"]: d["count"] for d in days if d["count"]} == {(today + timedelta(days=3)).isoformat(): 1}
    assert listed_numbers(client, days[3]["href"]) == {n["soon"]}
    assert listed_numbers(client, days[5]["href"]) == set()  # the canceled one is not listed either

    # overdue: nothing is late yet except the follow-up action due in 2020
    assert {r["kind"]: r["count"] for r in data["overdue"]} == {"approvals": 0, "tasks": 0, "actions": 1}
    overdue_page = client.get([r for r in data["overdue"] if r["kind"] == "actions"][0]["href"])
    text = overdue_page.get_data(as_text=True)
    assert "Remove the old artefacts." in text and "Add a smoke test." not in text and n["ok"] in text

    # service impact: open changes and the minutes of their planned windows
    impact = [(r["service"], r["changes"], r["outage_minutes"]) for r in data["service_impact"]]
    assert impact == [("crm-web", 3, 90 + 60 + 30), ("intranet", 1, 90)]
    assert listed_numbers(client, data["service_impact"][0]["href"]) == {n["soon"], n["later"], n["low"]}

    # over time: four changes closed this month, one an emergency; three of four successful
    *earlier, this = data["trend"]
    assert len(earlier) == 5 and all(p["closed"] == 0 and p["emergency_ratio"] is None for p in earlier)
    assert date.fromisoformat(this["start"]) <= today <= date.fromisoformat(this["end"])
    assert (this["closed"], this["emergency"], this["emergency_ratio"]) == (4, 1, 25.0)
    assert (this["with_outcome"], this["successful"], this["success_rate"]) == (4, 3, 75.0)
    assert listed_numbers(client, this["emergency_href"]) == {n["emergency"]}
    assert listed_numbers(client, this["success_href"]) == {n["ok"], n["issues"], n["emergency"]}

    weekly = api.get("/api/dashboard?period=week", "audrey").get_json()["trend"]
    assert len(weekly) == 6 and weekly[-1]["period"] == "{}-W{:02d}".format(*today.isocalendar()[:2])
    assert (weekly[-1]["closed"], weekly[-1]["emergency_ratio"], weekly[-1]["success_rate"]) == (4, 25.0, 75.0)
    assert listed_numbers(client, weekly[-1]["emergency_href"]) == {n["emergency"]}


def test_the_page_renders_each_figure_as_a_chart_table_from_the_same_numbers(app, api):
    history = build_history(api)
    client = app.test_client()
    sign_in(client, "audrey")
    page = client.get("/dashboards")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'style="' not in html
    tables = chart_tables(html)
    assert set(tables) == {"Pending approvals by approver", "High-risk changes in the next 14 days", "Overdue",
                           "Service impact: open changes per service", "Emergency ratio per month",
                           "Success rate per month"}
    for caption, table in tables.items():
        assert table["attrs"]["data-chart"] in ("bar", "line", "doughnut"), caption
        series = table["attrs"]["data-series"].split(",")
        assert table["header"][1:] == series, caption  # the first column holds the labels
        for label, href, cells in table["rows"]:
            assert href and href.startswith("/"), (caption, label)
            assert len(cells) == len(series), (caption, label)
            assert all(re.fullmatch(r"-?\d+(\.\d+)?", c) or c == "" for c in cells), (caption, cells)
    assert [(label, cells) for label, _, cells in tables["Service impact: open changes per service"]["rows"]] == [
        ("CRM web app", ["3", "180"]), ("Intranet", ["1", "90"])]
    assert [(label, cells) for label, _, cells in tables["Overdue"]["rows"]] == [
        ("Approvals", ["0"]), ("Other tasks", ["0"]), ("Follow-up actions", ["1"])]
    assert tables["Emergency ratio per month"]["rows"][-1][2] == ["25.0"]
    assert tables["Success rate per month"]["rows"][-1][2] == ["75.0"]
    assert tables["Success rate per month"]["rows"][0][2] == [""]  # no closed change: no value, not 0
    soon_day = history["today"] + timedelta(days=3)
    high = tables["High-risk changes in the next 14 days"]["rows"]
    assert len(high) == 14 and high[3][2] == ["1"] and soon_day.isoformat() in high[3][1]
    weekly = chart_tables(client.get("/dashboards?period=week").get_data(as_text=True))
    assert weekly["Emergency ratio per week"]["rows"][-1][2] == ["25.0"]


def test_time_passing_makes_approvals_overdue_and_moves_closures_into_earlier_periods(app, api):
    history = build_history(api)
    later = utcnow() + timedelta(days=40)
    with app.app_context():
        audrey = db.session.query(User).filter_by(username="audrey").one()
        figures = dashboards.dashboard(db.session, audrey, now=later)
    # the two Authorize tasks and sam's owner approval were due within two days; the smoke-test
    # follow-up was due in 30
    assert {r["kind"]: r["count"] for r in figures["overdue"]} == {"approvals": 3, "tasks": 0, "actions": 2}
    assert all(r["oldest_hours"] >= 40 * 24 for r in figures["pending_approvals"])
    assert all(d["count"] == 0 for d in figures["high_risk_upcoming"])  # their windows are past by then
    closing = [p for p in figures["trend"] if p["start"] <= history["today"] <= p["end"]]
    assert len(closing) == 1 and figures["trend"][-1] is not closing[0]
    assert (closing[0]["closed"], closing[0]["emergency_ratio"], closing[0]["success_rate"]) == (4, 25.0, 75.0)
    assert sum(p["closed"] for p in figures["trend"]) == 4


def test_requesters_may_not_see_the_dashboards_auditors_may(app, api):
    assert api.get("/api/dashboard", "alice").status_code == 403
    assert api.get("/api/dashboard", "audrey").status_code == 200
    assert api.get("/api/dashboard").status_code == 401
    assert api.get("/api/dashboard?period=year", "audrey").status_code == 422
    alice, audrey = app.test_client(), app.test_client()
    sign_in(alice, "alice")
    sign_in(audrey, "audrey")
    for path in ("/dashboards", "/dashboards/approvals", "/dashboards/overdue"):
        assert alice.get(path).status_code == 403, path
        assert audrey.get(path).status_code == 200, path
    assert 'href="/dashboards"' in audrey.get("/inbox").get_data(as_text=True)
    assert 'href="/dashboards"' not in alice.get("/inbox").get_data(as_text=True)


def test_unknown_filter_values_are_refused_with_a_message(app, api):
    client = app.test_client()
    sign_in(client, "morgan")
    refused = {
        "/dashboards?period=year": "Unknown period 'year'",
        "/dashboards/approvals?approver=nobody": "no user 'nobody'",
        "/dashboards/approvals?role=wizard": "Unknown role 'wizard'",
        "/dashboards/overdue?kind=late": "Unknown kind 'late'",
        "/changes?risk=extreme": "Unknown risk 'extreme'",
        "/changes?state=done": "Unknown state 'done'",
        "/changes?from=2026-13-01": "from must be a date",
        "/changes?from=2026-12-10&to=2026-12-01": "to (2026-12-01) is before from (2026-12-10)",
        "/changes?closed_from=yesterday": "closed_from must be a date",
        "/changes?outcome=successful,great": "Unknown outcome 'great'",
    }
    for path, message in refused.items():
        answer = client.get(path)
        assert answer.status_code == 400, path
        assert message in answer.get_data(as_text=True).replace("&#39;", "'"), path
    assert client.get("/changes?state=open&outcome=successful,backed_out&from=2026-12-01&to=2026-12-01"
                      ).status_code == 200
