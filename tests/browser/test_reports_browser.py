"""Reports in the browser: a report over a recorded history draws its charts (the success score's
trend across periods), each number opens the changes behind it, and the PDF downloads."""
from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect

from tests.report_history import Facts, History, at
from webui.extensions import db


def closed_change(key: str, closed: str, close_code: str, services=("crm-web",), incidents=()):
    end = at(closed)
    return Facts(key=key, services=services, created=end - timedelta(days=3), close_code=close_code,
                 implementation_result="completed", incidents=incidents, states=[
                     ("authorize", end - timedelta(days=3)), ("scheduled", end - timedelta(days=2)),
                     ("implement", end - timedelta(days=1)), ("review", end - timedelta(hours=6)), ("closed", end)])


def test_a_report_draws_its_trend_and_opens_the_changes_behind_a_number(browser_for, app):
    with app.app_context():
        history = History(db.session)
        for facts in (closed_change("q3-ok", "2026-08-10 12:00", "successful"),
                      closed_change("q4-ok", "2026-11-10 12:00", "successful"),
                      closed_change("q4-bad", "2026-11-12 12:00", "backed_out", incidents=("INC0042",)),
                      closed_change("q4-fw", "2026-11-20 12:00", "successful_with_issues", services=("firewall",))):
            history.add(facts)
        db.session.commit()
    morgan = browser_for("morgan")
    page = morgan.page
    page.goto("/reports")
    page.get_by_label("Period", exact=True).select_option("2026-Q4")
    page.get_by_role("button", name="Show").click()
    page.get_by_role("link", name="Change success score").click()
    page.wait_for_url(re.compile(r"/reports/success-score\?period=2026-Q4"))
    page.wait_for_selector("table.chart[data-charted=true]", state="attached")
    assert page.locator("figure.chart-figure canvas").count() >= 2
    morgan.screenshot("success-score")

    closed = page.locator("#figure-closed a")
    expect(closed).to_have_text("3")
    closed.click()
    page.wait_for_url(re.compile(r"/reports/success-score/changes\?"))
    expect(page.locator("h1")).to_contain_text("3 changes")
    listed = page.locator("table.tasks tbody").inner_text()
    assert all(f"History {key}" in listed for key in ("q4-ok", "q4-bad", "q4-fw")) and "q3-ok" not in listed
    morgan.screenshot("success-score-drill-down")

    page.go_back()
    with page.expect_download() as download:
        page.get_by_role("link", name="PDF").first.click()
    assert download.value.suggested_filename == "changeflow-success-score-2026-Q4.pdf"
    assert open(download.value.path(), "rb").read(5) == b"%PDF-"
