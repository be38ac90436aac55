// Marks the path an instance took on a rendered diagram: completed, active and not-taken elements.
// The server only knows flow nodes (the engine's tasks); a sequence flow counts as taken when both
// of its ends were reached, which is exact except for a loop left before its flow back was used.

export function markPath(viewer, completedIds, activeIds) {
  const completed = new Set(completedIds);
  const active = new Set(activeIds);
  const reached = (id) => completed.has(id) || active.has(id);
  const canvas = viewer.get("canvas");
  viewer.get("elementRegistry").forEach((element) => {
    const bo = element.businessObject;
    if (!bo || element.labelTarget || element.type === "label") return;
    if (bo.$instanceOf("bpmn:SequenceFlow")) {
      const taken = bo.sourceRef && bo.targetRef && completed.has(bo.sourceRef.id) && reached(bo.targetRef.id);
      canvas.addMarker(element.id, taken ? "cf-taken" : "cf-not-taken");
    } else if (bo.$instanceOf("bpmn:FlowNode")) {
      canvas.addMarker(element.id, active.has(bo.id) ? "cf-active" : completed.has(bo.id) ? "cf-completed" : "cf-not-taken");
    }
  });
}

export async function fetchText(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/xml" } });
  if (!response.ok) throw new Error(`${url}: ${response.status} ${response.statusText}`);
  return response.text();
}

export function showError(container, message) {
  const note = document.createElement("p");
  note.className = "flash error";
  note.setAttribute("role", "alert");
  note.textContent = message;
  container.prepend(note);
}
