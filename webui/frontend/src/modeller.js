// The process owners' modeller: edit a diagram in bpmn-js, validate it on the server (problems
// listed with their element ids; clicking one selects the element), deploy it as a new version,
// download it, or open a .bpmn file from disk. Everything the server decides stays on the server:
// this page only sends the XML.
import BpmnModeler from "bpmn-js/lib/Modeler";
import { fetchText, showError } from "./path.js";

const root = document.querySelector("[data-modeller]");
if (root) start(root);

async function start(root) {
  const modeler = new BpmnModeler({ container: root.querySelector(".bpmn-canvas") });
  const problems = root.querySelector("[data-problems]");
  const status = root.querySelector("[data-status]");
  const form = root.querySelector("form[data-deploy]");
  const filenameInput = form.querySelector("[name=filename]");

  async function open(xml) {
    try {
      const { warnings: all } = await modeler.importXML(xml);
      const warnings = keepNamedReferences(modeler, all);
      modeler.get("canvas").zoom("fit-viewport", "auto");
      say(warnings.length ? `Opened, with ${warnings.length} import warning(s): ${warnings[0].message}` : "Opened.");
      root.dataset.loaded = "true";  // browser tests wait for this
      root.dataset.importWarnings = String(warnings.length);
    } catch (error) {
      root.dataset.loaded = "error";
      showError(root, `This file could not be opened as BPMN: ${error.message}`);
    }
  }

  function say(text) { status.textContent = text; }

  async function currentXml() {
    const { xml } = await modeler.saveXML({ format: true });
    return xml;
  }

  async function send(url, extra) {
    const body = new FormData();
    body.set("csrf_token", form.querySelector("[name=csrf_token]").value);
    body.set("filename", filenameInput.value || "process.bpmn");
    body.set("bpmn_xml", await currentXml());
    for (const [key, value] of Object.entries(extra || {})) body.set(key, value);
    const response = await fetch(url, { method: "POST", body, credentials: "same-origin",
                                         headers: { Accept: "application/json" } });
    const answer = await response.json().catch(() => ({ message: `${response.status} ${response.statusText}` }));
    return { ok: response.ok, answer };
  }

  function listProblems(errors) {
    problems.replaceChildren();
    for (const problem of errors) {
      const item = document.createElement("li");
      const where = problem.element_id ? problem.element_id : problem.line ? `line ${problem.line}` : (problem.file || "file");
      if (problem.element_id && modeler.get("elementRegistry").get(problem.element_id)) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "link";
        button.textContent = where;
        button.dataset.elementId = problem.element_id;
        button.addEventListener("click", () => select(problem.element_id));
        item.append(button, `: ${problem.message}`);
      } else {
        item.textContent = `${where}: ${problem.message}`;
      }
      problems.append(item);
    }
  }

  function select(id) {
    const element = modeler.get("elementRegistry").get(id);
    modeler.get("selection").select(element);
    modeler.get("canvas").scrollToElement(element);
    root.dataset.selected = id;
  }

  root.querySelector("[data-validate]").addEventListener("click", async () => {
    say("Validating…");
    const { ok, answer } = await send(root.dataset.validateUrl);
    const errors = answer.errors || [];
    listProblems(errors);
    say(ok && !errors.length ? "Valid: it can be deployed." : `${errors.length || 1} problem(s): ${answer.message || ""}`);
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    say("Deploying…");
    const { ok, answer } = await send(form.action, { note: form.querySelector("[name=note]").value });
    if (ok) {
      window.location.assign(answer.location);
      return;
    }
    listProblems(answer.errors || []);
    say(`Not deployed: ${answer.message || "refused"}`);
  });

  root.querySelector("[data-download]").addEventListener("click", async () => {
    const blob = new Blob([await currentXml()], { type: "application/xml" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = filenameInput.value || "process.bpmn";
    link.click();
    URL.revokeObjectURL(link.href);
  });

  root.querySelector("[data-open-file]").addEventListener("change", async (event) => {
    const [file] = event.target.files;
    if (!file) return;
    filenameInput.value = file.name;
    problems.replaceChildren();
    await open(await file.text());
  });

  try {
    await open(await fetchText(root.dataset.src));
  } catch (error) {
    showError(root, error.message);
  }
}

// SpiffWorkflow reads some references as plain names — `loopDataInputRef` holding the variable a
// multi-instance task loops over — where BPMN expects the id of a data element. bpmn-js would drop
// such unresolved references on save, so a stub with that id is put back and saved as the same name.
function keepNamedReferences(modeler, warnings) {
  const moddle = modeler.get("moddle");
  return warnings.filter((warning) => {
    if (!warning.element || !warning.property || !warning.value || !/unresolved reference/.test(warning.message)) {
      return true;
    }
    warning.element.set(warning.property, moddle.create("bpmn:DataInput", { id: warning.value }));
    return false;
  });
}
