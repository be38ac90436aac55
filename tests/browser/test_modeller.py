"""Process owners in the browser: the modeller opens every MIWG reference model, validation problems
select their element, an edited diagram deploys as version 2 that new changes use, and the visual
diff between the two versions marks what changed."""
from __future__ import annotations

import re

import pytest

from engine.config import PROJECT_ROOT
from tests.conftest import corpus_files

ORPHAN = '<bpmn:userTask id="Orphan_Task" name="Nobody reaches me" /></bpmn:process>'
ORPHAN_SHAPE = ('<bpmndi:BPMNShape id="Orphan_Task_di" bpmnElement="Orphan_Task">'
                '<dc:Bounds x="160" y="20" width="100" height="80" /></bpmndi:BPMNShape></bpmndi:BPMNPlane>')


def open_file(page, name: str, content: bytes) -> None:
    modeller = page.locator("[data-modeller]")
    page.evaluate("document.querySelector('[data-modeller]').dataset.loaded = ''")
    page.locator("[data-open-file]").set_input_files({"name": name, "mimeType": "application/xml", "buffer": content})
    page.wait_for_selector("[data-modeller][data-loaded=true], [data-modeller][data-loaded=error]")
    assert modeller.get_attribute("data-loaded") == "true", page.locator(".flash.error").all_inner_texts()


def test_every_miwg_reference_model_opens_and_renders_in_the_modeller(browser_for):
    paula = browser_for("paula")
    page = paula.page
    page.goto("/processes/new")
    page.wait_for_selector("[data-modeller][data-loaded=true]")
    for path in corpus_files():
        open_file(page, path.name, path.read_bytes())
        shapes = page.locator(".modeller-canvas .djs-element.djs-shape").count()
        assert shapes > 1, f"{path.name} rendered {shapes} shapes"
        assert page.locator("#filename").input_value() == path.name
        paula.screenshot(f"modeller-{path.stem}")
    assert len(corpus_files()) == 21


def test_every_shipped_process_survives_the_modeller_round_trip(browser_for):
    """Open each diagram of processes/ in bpmn-js and validate what bpmn-js saves: SpiffWorkflow's
    extensions and named references must come back intact, or editing would break the process."""
    paula = browser_for("paula")
    page = paula.page
    page.goto("/processes/new")
    page.wait_for_selector("[data-modeller][data-loaded=true]")
    shipped = sorted((PROJECT_ROOT / "processes").glob("*.bpmn"))
    assert shipped
    for path in shipped:
        open_file(page, path.name, path.read_bytes())
        page.get_by_role("button", name="Validate").click()
        page.locator("[data-status]", has_text=re.compile(r"^(Valid:|\d+ problem)")).wait_for()
        assert page.locator("[data-status]").inner_text() == "Valid: it can be deployed.", (
            path.name, page.locator("[data-problems]").inner_text())
        page.evaluate("document.querySelector('[data-status]').textContent = ''")


def test_validation_problems_name_the_element_and_select_it_on_click(browser_for):
    paula = browser_for("paula")
    page = paula.page
    page.goto("/processes/normal_change/edit")
    page.wait_for_selector("[data-modeller][data-loaded=true]")
    xml = page.evaluate("fetch('/processes/normal_change/versions/1.bpmn').then(r => r.text())")
    open_file(page, "normal_change.bpmn", xml.replace("</bpmn:process>", ORPHAN, 1)
              .replace("</bpmndi:BPMNPlane>", ORPHAN_SHAPE, 1).encode())
    page.get_by_role("button", name="Validate").click()
    problem = page.locator("[data-problems] button", has_text="Orphan_Task")
    problem.first.wait_for()
    assert "problem" in page.locator("[data-status]").inner_text()
    problem.first.click()
    assert page.locator("[data-modeller]").get_attribute("data-selected") == "Orphan_Task"
    assert page.locator('.djs-element.selected[data-element-id="Orphan_Task"]').count() == 1
    paula.screenshot("validation-problem-selected")


def test_a_process_owner_edits_deploys_version_two_and_a_new_change_uses_it(browser_for, api):
    paula = browser_for("paula")
    page = paula.page
    page.goto("/processes")
    page.get_by_role("link", name="Edit").first.wait_for()
    page.goto("/processes/normal_change/edit")
    page.wait_for_selector("[data-modeller][data-loaded=true]")
    paula.screenshot("modeller-open")

    # rename the authorization task by double-clicking it, as a person would
    page.locator('.djs-element[data-element-id="Task_Authorize"]').dblclick()
    editor = page.locator(".djs-direct-editing-parent")
    editor.wait_for()
    page.keyboard.press("Control+A")
    page.keyboard.type("Authorize change (v2)")
    page.locator(".modeller-canvas").click(position={"x": 5, "y": 5})
    assert "Authorize change (v2)" in page.locator('.djs-element[data-element-id="Task_Authorize"]').text_content()

    page.get_by_role("button", name="Validate").click()
    page.locator("[data-status]", has_text=re.compile(r"^(Valid:|\d+ problem)")).wait_for()
    assert page.locator("[data-status]").inner_text() == "Valid: it can be deployed.", page.locator("[data-problems]").inner_text()
    page.get_by_label("Note (what changed and why)").fill("Clearer task name")
    page.get_by_role("button", name="Deploy as a new version").click()
    page.wait_for_url(re.compile(r"/processes/normal_change$"))
    assert "normal_change version 2 deployed" in page.locator(".flash").inner_text()
    rows = page.locator("table tbody tr")
    assert rows.count() == 2 and "Clearer task name" in rows.first.inner_text() and "paula" in rows.first.inner_text()
    paula.screenshot("versions")

    change = api.submit()
    assert api.trace(change["id"])["diagram"]["version"] == 2
    assert api.task("morgan", change["id"])["name"] == "Authorize change (v2)"

    page.get_by_role("button", name="Compare the chosen versions").click()
    page.wait_for_selector("[data-bpmn-diff][data-rendered=true]")
    differences = page.locator("[data-differences] li")
    assert "Task_Authorize" in differences.all_inner_texts()[0] or any(
        "Task_Authorize" in text for text in differences.all_inner_texts())
    assert page.locator('.diff-panes figure:nth-child(2) .djs-element.cf-changed[data-element-id="Task_Authorize"]').count() == 1
    paula.screenshot("diff")


@pytest.mark.parametrize("who", ["alice", "audrey"])
def test_people_who_may_not_deploy_get_no_modeller(browser_for, who):
    person = browser_for(who)
    answer = person.page.goto("/processes/normal_change/edit")
    assert answer.status == 403
