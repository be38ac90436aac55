// Two versions of a process side by side: removed and changed elements marked on the older one,
// added and changed on the newer one, and the list of differences (click one to find it).
import NavigatedViewer from "bpmn-js/lib/NavigatedViewer";
import { diff } from "bpmn-js-differ";
import { fetchText, showError } from "./path.js";

const root = document.querySelector("[data-bpmn-diff]");
if (root) compare(root);

async function compare(root) {
  const [left, right] = root.querySelectorAll(".bpmn-canvas");
  const older = new NavigatedViewer({ container: left });
  const newer = new NavigatedViewer({ container: right });
  try {
    await older.importXML(await fetchText(root.dataset.srcA));
    await newer.importXML(await fetchText(root.dataset.srcB));
  } catch (error) {
    showError(root, `The versions could not be compared: ${error.message}`);
    return;
  }
  for (const viewer of [older, newer]) viewer.get("canvas").zoom("fit-viewport", "auto");

  const changes = diff(older.getDefinitions(), newer.getDefinitions());
  const mark = (viewer, ids, marker) => {
    const registry = viewer.get("elementRegistry");
    for (const id of ids) if (registry.get(id)) viewer.get("canvas").addMarker(id, marker);
  };
  mark(older, Object.keys(changes._removed), "cf-removed");
  mark(older, Object.keys(changes._changed), "cf-changed");
  mark(newer, Object.keys(changes._added), "cf-added");
  mark(newer, Object.keys(changes._changed), "cf-changed");
  mark(newer, Object.keys(changes._layoutChanged), "cf-layout-changed");

  const list = root.querySelector("[data-differences]");
  const entries = [
    ...Object.values(changes._added).map((e) => ["added", e, newer]),
    ...Object.values(changes._removed).map((e) => ["removed", e, older]),
    ...Object.entries(changes._changed).map(([id, c]) => ["changed", { ...c.model, id, attrs: c.attrs }, newer]),
    ...Object.keys(changes._layoutChanged).map((id) => ["moved", { id, $type: "" }, newer]),
  ];
  list.replaceChildren();
  for (const [kind, element, viewer] of entries) {
    const item = document.createElement("li");
    item.className = `diff-${kind}`;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.textContent = element.id;
    button.addEventListener("click", () => {
      const shape = viewer.get("elementRegistry").get(element.id);
      if (shape) { viewer.get("selection").select(shape); viewer.get("canvas").scrollToElement(shape); }
    });
    const what = [element.$type?.replace("bpmn:", ""), element.name ? `“${element.name}”` : ""].filter(Boolean).join(" ");
    const attrs = element.attrs ? ` (${Object.keys(element.attrs).join(", ")})` : "";
    item.append(`${kind}: `, button, what ? ` ${what}` : "", attrs);
    list.append(item);
  }
  if (!entries.length) list.textContent = "The two versions draw the same diagram.";
  root.dataset.rendered = "true";
  root.dataset.differences = String(entries.length);
}
