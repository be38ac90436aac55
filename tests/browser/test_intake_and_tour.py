"""The new-change page's live preview in the browser, and a tour of every page for each kind of user:
each renders without a script error or CSP violation, and is saved as a screenshot."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect


def test_risk_and_conflicts_update_while_the_window_is_chosen(browser_for, api):
    assert api.post("/api/windows", "morgan", json={
        "kind": "blackout", "name": "Year-end freeze", "starts_at": "2037-12-24T00:00:00+00:00",
        "ends_at": "2037-12-27T00:00:00+00:00", "services": []}).status_code == 201
    filed_before = api.get("/api/changes", "audrey").get_json()["total"]
    alice = browser_for("alice")
    page = alice.page
    page.goto("/changes/new")
    panel = page.locator("#change-preview")
    page.get_by_label("Type").select_option("normal")
    page.get_by_label("Category").select_option("infrastructure")
    page.get_by_label(re.compile(r"^\s*Payroll")).check()
    page.get_by_label("Impact").select_option("1")
    page.get_by_label("Urgency").select_option("1")
    expect(panel.locator(".risk")).to_have_text(re.compile(r"moderate|high"))  # no button pressed
    page.get_by_label("Planned start").fill("2037-12-25T10:00")
    page.get_by_label("Planned end").fill("2037-12-25T11:00")
    expect(panel.locator(".preview-conflicts")).to_contain_text("Year-end freeze")
    alice.screenshot("intake-preview-conflict")
    page.get_by_label("Planned start").fill("2037-12-29T10:00")
    page.get_by_label("Planned end").fill("2037-12-29T11:00")
    expect(panel.locator(".preview-conflicts")).to_have_count(0)
    expect(panel.locator(".preview-evidence")).to_contain_text("Before implementation: rollback plan")
    assert api.get("/api/changes", "audrey").get_json()["total"] == filed_before  # nothing was filed


TOUR = {
    "alice": ["/inbox", "/changes", "/changes/new", "/calendar", "/calendar?view=week"],
    "morgan": ["/inbox", "/changes", "/calendar", "/dashboards", "/processes", "/admin", "/admin/services",
               "/admin/windows", "/admin/templates", "/reports", "/reports/leadership",
               "/reports/leadership/changes?metric=requested", "/reports/service-owner", "/reports/steering"],
    "paula": ["/processes", "/processes/normal_change", "/processes/new"],
    "ada": ["/admin", "/admin/users", "/admin/outbox", "/admin/services", "/admin/windows", "/admin/templates"],
    "audrey": ["/changes", "/dashboards", "/processes", "/admin/outbox", "/admin/users", "/reports",
               "/reports/leadership?period=2026-12", "/reports/audit", "/reports/success-score"],
}


@pytest.mark.parametrize("who", sorted(TOUR))
def test_every_page_renders_cleanly_for_each_role(browser_for, api, who):
    change = api.submit()
    api.act("morgan", change["id"], {"decision": "approve", "comment": "ok"})
    for width, height in ((1280, 900), (390, 844)):
        person = browser_for(who, width=width, height=height)
        for path in TOUR[who] + [f"/changes/{change['number']}"]:
            visit(person, path)
            overflow = person.page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width + 1, f"{path} is {overflow} px wide on a {width} px screen"


def visit(person, path: str) -> None:
    page = person.page
    answer = page.goto(path)
    assert answer.status == 200, (path, answer.status)
    expect(page.locator("main h1").first).to_be_visible()
    if page.locator("[data-bpmn-viewer], [data-modeller]").count():
        page.wait_for_selector("[data-rendered=true], [data-loaded=true]")
    if page.locator("table.chart").count():
        page.wait_for_selector("table.chart[data-charted=true]", state="attached")
    width = page.viewport_size["width"]
    person.screenshot(f"{width}px-" + (re.sub(r"[^\w]+", "-", path).strip("-") or "home"))


def test_a_dashboard_bar_opens_the_list_behind_it(browser_for, api):
    change = api.submit()  # an open change on crm-web: one bar in "Service impact"
    morgan = browser_for("morgan")
    page = morgan.page
    page.goto("/dashboards")
    figure = page.locator("figure.chart-figure", has_text="Service impact")
    figure.wait_for()
    canvas = figure.locator("canvas")
    box = canvas.bounding_box()
    # the single row's second series (planned outage minutes) is the tall bar right of the centre
    canvas.click(position={"x": box["width"] * 0.62, "y": box["height"] * 0.75})
    page.wait_for_url(re.compile(r"/changes\?"))
    assert "service=crm-web" in page.url
    expect(page.locator("table.tasks tbody")).to_contain_text(change["number"])
    morgan.screenshot("drill-down")
    page.go_back()
    expect(page.locator("h1")).to_have_text("Dashboards")


def test_a_standard_change_is_filed_by_picking_its_template(browser_for, api):
    from tests.test_templates import active_template

    active_template(api)  # "intranet-news", approved by the change manager
    alice = browser_for("alice")
    page = alice.page
    page.goto("/changes/new")
    page.get_by_label("Title").fill("Publish the holiday rota")
    page.get_by_label("Type").select_option("standard")
    picker = page.get_by_label("Standard-change template")
    assert "at most low risk" in picker.locator("option[value=intranet-news]").inner_text()
    picker.select_option("intranet-news")
    page.get_by_label(re.compile(r"^\s*Intranet")).check()
    page.get_by_label("Impact").select_option("3")
    page.get_by_label("Urgency").select_option("3")
    page.get_by_role("button", name="File change").click()
    page.wait_for_url(re.compile(r"/changes/CHG\d+$"))
    expect(page.locator(".change-head")).to_contain_text("standard")
    alice.screenshot("standard-change-filed")
