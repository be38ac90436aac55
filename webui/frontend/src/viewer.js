// The change page's diagram: its own process version, with the path the change took highlighted.
import NavigatedViewer from "bpmn-js/lib/NavigatedViewer";
import { fetchText, markPath, showError } from "./path.js";

for (const figure of document.querySelectorAll("[data-bpmn-viewer]")) show(figure);

async function show(figure) {
  const canvasElement = figure.querySelector(".bpmn-canvas");
  const viewer = new NavigatedViewer({ container: canvasElement });
  try {
    const { warnings } = await viewer.importXML(await fetchText(figure.dataset.src));
    if (warnings.length) console.warn("diagram import warnings", warnings);
  } catch (error) {
    showError(figure, `The diagram could not be shown: ${error.message}`);
    return;
  }
  fitWhenShown(viewer, canvasElement);
  markPath(viewer, JSON.parse(figure.dataset.completed || "[]"), JSON.parse(figure.dataset.active || "[]"));
  figure.dataset.rendered = "true";  // browser tests wait for this
}

// A diagram in a hidden tab has no size yet: fit it when it first gets one.
function fitWhenShown(viewer, element) {
  const fit = () => { viewer.get("canvas").resized(); viewer.get("canvas").zoom("fit-viewport", "auto"); };
  if (element.clientWidth) { fit(); return; }
  const observer = new ResizeObserver(() => {
    if (element.clientWidth) { observer.disconnect(); fit(); }
  });
  observer.observe(element);
}
