// Small progressive enhancements shared by every page. Pages work without it.
// (Library bundles — bpmn-js, charts — are built from webui/frontend/ into static/dist/.)
