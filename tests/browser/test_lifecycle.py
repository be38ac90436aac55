"""A normal change from request to closure, by clicking as the people involved would: the requester
files it, the change manager approves and schedules it from the inbox, the implementer records the
implementation, the review closes it, the service owner accepts — and the change page's diagram shows
the path it took. Then the auditor reads the trace, and form errors appear next to their fields."""
from __future__ import annotations

import re

from playwright.sync_api import expect

CHANGE = re.compile(r"/changes/(CHG\d+)$")


def open_task(person, number: str, task_name: str):
    page = person.page
    page.goto("/inbox")
    row = page.locator("tr[data-task]", has_text=number).filter(has_text=task_name)
    expect(row).to_have_count(1)
    row.get_by_role("link", name=task_name).click()
    page.wait_for_url(re.compile(r"/tasks/"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(task_name)
    return page


def change_id(api, number: str) -> int:
    return next(c["id"] for c in api.get("/api/changes", "audrey").get_json()["items"] if c["number"] == number)


def add_evidence(person, number: str, kind: str, *, file=None, url=None) -> None:
    page = person.page
    page.goto(f"/changes/{number}#evidence")
    form = page.locator("form.evidence-upload")
    form.get_by_label("Kind").select_option(kind)
    if file:
        name, content = file
        form.get_by_label("File").set_input_files({"name": name, "mimeType": "text/plain", "buffer": content})
    else:
        form.get_by_label("URL").fill(url)
    form.get_by_role("button", name="Add evidence").click()
    expect(page.locator("#evidence table")).to_contain_text(kind.replace("_", " "))


def file_the_change(alice) -> str:
    page = alice.page
    page.get_by_role("link", name="New change").click()
    page.get_by_label("Title").fill("Upgrade CRM web app to 5.3")
    page.get_by_label("Type").select_option("normal")
    page.get_by_label("Category").select_option("application_release")
    page.get_by_label(re.compile(r"^\s*CRM")).check()
    page.get_by_label("Impact").select_option("3")
    page.get_by_label("Urgency").select_option("3")
    page.get_by_label("Planned start").fill("2037-12-05T21:00")
    page.get_by_label("Planned end").fill("2037-12-05T22:30")
    page.get_by_label("Rollback plan").fill("Redeploy 5.2 from the artefact store.")
    page.get_by_label("The rollback has been tested").check()
    page.get_by_label("Test plan").fill("Regression suite in staging.")
    alice.screenshot("new-change")
    page.get_by_role("button", name="File change").click()
    page.wait_for_url(CHANGE)
    expect(page.locator(".flash")).to_contain_text("filed")
    alice.screenshot("change-filed")
    return CHANGE.search(page.url).group(1)


def test_a_normal_change_from_request_to_closure_by_clicking(browser_for, api):
    alice = browser_for("alice")
    number = file_the_change(alice)
    cid = change_id(api, number)

    morgan = browser_for("morgan")
    expect(morgan.page.locator("nav .count")).not_to_have_text("0")
    morgan.screenshot("inbox")
    page = open_task(morgan, number, "Authorize change")
    morgan.screenshot("authorize-task")
    page.get_by_label("Approve").check()
    page.get_by_label("Comment").fill("Low risk, rollback tested.")
    page.get_by_role("button", name="Submit decision").click()
    expect(page.locator(".flash.ok")).to_be_visible()

    # what an application release needs before implementing: a test report (a file) and a sign-off (a link)
    add_evidence(alice, number, "test_result", file=("regression.txt", b"412 passed, 0 failed\n"))
    add_evidence(alice, number, "business_sign_off", url="https://tickets.example.com/SIGN-42")
    page = open_task(morgan, number, "Schedule change")
    page.get_by_label("Implementer").fill("ivan")
    page.get_by_role("button", name="Schedule").click()
    expect(page.locator(".flash.ok")).to_be_visible()
    assert api.change(cid)["state"] == "scheduled"

    api.wait_for_window(cid)  # time passes until the planned start
    ivan = browser_for("ivan")
    page = open_task(ivan, number, "Implement change")
    page.get_by_label("Actual start").fill("2037-12-05T21:02")
    page.get_by_label("Actual end").fill("2037-12-05T22:05")
    page.get_by_label("Completed", exact=True).check()
    page.get_by_label("Implementation notes").fill("Deployed with the pipeline; smoke tests green.")
    ivan.screenshot("implement-task")
    page.get_by_role("button", name="Record implementation").click()
    expect(page.locator(".flash.ok")).to_be_visible()

    add_evidence(ivan, number, "verification", url="https://monitoring.example.com/crm-web/after-5.3")
    page = open_task(morgan, number, "Post-implementation review")
    page.get_by_label("Successful", exact=True).check()
    page.get_by_label("Closure notes").fill("Release is live, no incidents.")
    page.get_by_role("button", name="Close change").click()
    expect(page.locator(".flash.ok")).to_be_visible()

    sam = browser_for("sam")
    page = open_task(sam, number, "Business acceptance")
    page.get_by_label("Accept", exact=True).check()
    page.get_by_role("button", name="Submit").click()
    expect(page.locator(".flash.ok")).to_be_visible()
    assert api.change(cid)["state"] == "closed"

    # the change page: closed, and the diagram marks the path it took
    page = alice.page
    page.goto(f"/changes/{number}")
    expect(page.locator("main")).to_contain_text("closed")
    page.wait_for_selector("[data-bpmn-viewer][data-rendered=true]")
    for element in ("Task_Authorize", "Task_Schedule", "Task_Implement", "Task_Review", "Task_BusinessAcceptance"):
        assert page.locator(f'.djs-element.cf-completed[data-element-id="{element}"]').count() == 1, element
    assert page.locator(".djs-element.cf-active").count() == 0
    assert page.locator(".djs-element.djs-shape.cf-not-taken").count() > 0  # e.g. rejection and rework
    assert page.locator(".djs-connection.cf-taken").count() >= 5
    alice.screenshot("change-closed-with-path")
    with page.expect_download() as download:
        page.locator("#evidence").get_by_role("link", name=re.compile("Download")).first.click()
    assert download.value.suggested_filename == "regression.txt"
    assert open(download.value.path(), "rb").read() == b"412 passed, 0 failed\n"


def test_the_auditor_reads_the_whole_trace_on_one_printable_page(browser_for, api):
    change = api.submit()
    api.act("morgan", change["id"], {"decision": "approve", "comment": "Fine."})
    audrey = browser_for("audrey")
    page = audrey.page
    page.goto(f"/changes/{change['number']}")
    for section in ("Timeline", "Approvals", "Tasks", "Evidence", "Conflicts", "Impacted services", "Process"):
        expect(page.get_by_role("heading", name=section, exact=True)).to_be_visible()
    expect(page.locator("#approvals")).to_contain_text("Fine.")
    page.wait_for_selector("[data-bpmn-viewer][data-rendered=true]")
    assert page.locator('.djs-element.cf-completed[data-element-id="Task_Authorize"]').count() == 1
    assert page.locator(".djs-element.cf-active").count() >= 1
    assert page.locator("main form").count() == 0  # nothing to change for an auditor
    # tabs: one section at a time, chosen by the URL, so the back button works
    page.locator("nav.tabs").get_by_role("link", name="Approvals").click()
    expect(page.locator("#approvals")).to_be_visible()
    expect(page.locator("#timeline")).to_be_hidden()
    page.locator("nav.tabs").get_by_role("link", name="Process").click()
    expect(page.locator("#process .djs-element.cf-completed").first).to_be_visible()
    audrey.screenshot("trace-process-tab")
    page.go_back()
    expect(page.locator("#approvals")).to_be_visible()
    expect(page.locator("#process")).to_be_hidden()
    page.emulate_media(media="print")
    expect(page.locator("#timeline")).to_be_visible()
    expect(page.locator("header.top nav")).to_be_hidden()
    audrey.screenshot("trace-print")


def test_form_errors_appear_next_to_their_fields(browser_for, api):
    alice = browser_for("alice")
    page = alice.page
    page.goto("/changes/new")
    page.get_by_role("button", name="File change").click()
    title = page.get_by_label("Title")
    error_id = title.get_attribute("aria-describedby")
    assert error_id and "title-error" in error_id
    expect(page.locator("#title-error")).to_be_visible()
    alice.screenshot("new-change-errors")

    change = api.submit()
    api.act("morgan", change["id"], {"decision": "approve"})
    api.attach(change["id"], "test_result", "business_sign_off")
    morgan = browser_for("morgan")
    page = open_task(morgan, change["number"], "Schedule change")
    page.get_by_label("Planned end").fill("")
    page.get_by_label("Implementer").fill("")
    page.get_by_role("button", name="Schedule").click()
    expect(page.locator(".field.invalid")).not_to_have_count(0)
    implementer = page.get_by_label("Implementer")
    assert "implementer-error" in (implementer.get_attribute("aria-describedby") or "")
    expect(page.locator("#implementer-error")).to_be_visible()
    morgan.screenshot("task-errors")


def test_pages_fit_a_phone_and_start_with_a_skip_link(browser_for, api):
    api.submit()
    morgan = browser_for("morgan", width=390, height=844)
    page = morgan.page
    for path in ("/inbox", "/changes", "/calendar", "/changes/new"):
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1, path
        morgan.screenshot("phone" + path.replace("/", "-"))
    page.goto("/inbox")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
