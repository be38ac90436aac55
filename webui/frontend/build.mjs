// Bundles the pages' browser libraries into webui/static/vendor/ (not committed; `make` runs this).
// One bundle per page kind, so a page loads only what it uses.
import { build } from "esbuild";

const outdir = new URL("../static/vendor/", import.meta.url).pathname;

await build({
  entryPoints: {
    viewer: "src/viewer.js",      // the change page's diagram with the path it took
    modeller: "src/modeller.js",  // the process owners' editor
    diff: "src/diff.js",          // two versions side by side
    charts: "src/charts.js",      // dashboards: tables become charts
    bpmn: "src/bpmn.css",         // bpmn-js and diagram-js styles with the BPMN icon font
  },
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "esm",
  target: ["chrome110", "firefox110", "safari16"],
  outdir,
  loader: { ".woff": "file", ".woff2": "file", ".ttf": "file", ".eot": "file", ".svg": "file" },
  assetNames: "assets/[name]-[hash]",
  logLevel: "info",
});
