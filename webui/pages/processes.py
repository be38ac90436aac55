"""Process definitions for process owners and admins: the versions of each process (who deployed
what, when), the modeller (bpmn-js) with server-side validation and deploy, downloads, and the visual
diff between two versions. Deploying goes through the same `deploy_files` command as the API."""
from __future__ import annotations

from flask import Response, abort, flash, jsonify, redirect, render_template, request, url_for

from engine import definitions
from engine.errors import ChangeflowError
from engine.transactions import run_command

from ..extensions import db
from . import blp
from .security import page, signed_in_user

MAX_BPMN_BYTES = 5 * 1024 * 1024
BLANK = "blank.bpmn"


@blp.route("/processes", methods=["GET"])
@page("definition.read")
def processes():
    return render_template("processes.html", definitions=definitions.list_latest(db.session))


@blp.route("/processes/<process_key>", methods=["GET"])
@page("definition.read")
def process_versions(process_key):
    versions = definitions.list_versions(db.session, process_key)
    return render_template("process_versions.html", process_key=process_key, versions=versions,
                           a=request.args.get("a", type=int), b=request.args.get("b", type=int))


@blp.route("/processes/<process_key>/versions/<int:version>.bpmn", methods=["GET"])
@page("definition.read")
def download_version(process_key, version):
    row = definitions.get_version(db.session, process_key, version)
    # always a download: uploaded XML rendered by the browser could carry XHTML script
    return Response(row.bpmn_xml, mimetype="application/xml", headers={
        "Content-Disposition": f'attachment; filename="{process_key}-v{version}.bpmn"'})


@blp.route("/processes/<process_key>/diff", methods=["GET"])
@page("definition.read")
def diff_versions(process_key):
    a, b = request.args.get("a", type=int), request.args.get("b", type=int)
    if a is None or b is None:
        abort(400, description="Choose two versions to compare: ?a=<older>&b=<newer>.")
    older, newer = (definitions.get_version(db.session, process_key, v) for v in (a, b))
    return render_template("process_diff.html", process_key=process_key, older=older, newer=newer)


@blp.route("/processes/<process_key>/edit", methods=["GET"])
@page("definition.deploy")
def edit_process(process_key):
    versions = definitions.list_versions(db.session, process_key)
    chosen = request.args.get("version", type=int) or versions[0].version
    version = definitions.get_version(db.session, process_key, chosen)
    return render_template("modeller.html", version=version, filename=version.filename,
                           src=url_for("pages.download_version", process_key=process_key, version=chosen))


@blp.route("/processes/new", methods=["GET"])
@page("definition.deploy")
def new_process():
    return render_template("modeller.html", version=None, filename="new-process.bpmn",
                           src=url_for("static", filename=f"bpmn/{BLANK}"))


@blp.route("/processes/validate", methods=["POST"])
@page("definition.deploy")
def validate_process():
    """The modeller's Validate: every problem a deploy would meet, with element ids; stores nothing."""
    filename, xml = _posted_bpmn()
    problems = definitions.check_bpmn(db.session, filename, xml)
    return jsonify(ok=not problems, errors=problems,
                   message="valid" if not problems else f"{len(problems)} problem(s)")


@blp.route("/processes/deploy", methods=["POST"])
@page("definition.deploy")
def deploy_process():
    """Deploy from the modeller (XML in a form field, answered in JSON) or from the upload form
    (a file; answered with a page)."""
    filename, xml = _posted_bpmn()
    user = signed_in_user()
    wants_json = request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"
    try:
        result = run_command(db.session, user, definitions.deploy_files, {filename: xml}, user,
                             note=request.form.get("note", "").strip()[:2000])
    except ChangeflowError as error:
        if wants_json:
            return jsonify(message=error.message, errors=error.errors or []), error.status
        for problem in error.errors or [{"message": error.message}]:
            flash(_problem_text(problem), "error")
        return redirect(request.referrer if _same_site(request.referrer) else url_for("pages.processes"))
    versions = result.deployed or result.unchanged
    key = versions[0].process_key if versions else None
    message = (", ".join(f"{v.process_key} version {v.version} deployed" for v in result.deployed)
               or "Nothing changed: the diagram is the same as the latest version.")
    flash(message + ".", "ok")
    location = url_for("pages.process_versions", process_key=key) if key else url_for("pages.processes")
    if wants_json:
        return jsonify(location=location, message=message,
                       deployed=[{"process_key": v.process_key, "version": v.version} for v in result.deployed]), 201
    return redirect(location)


def _posted_bpmn() -> tuple[str, str]:
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        raw = upload.read(MAX_BPMN_BYTES + 1)
        filename = upload.filename
    else:
        raw = request.form.get("bpmn_xml", "").encode("utf-8")
        filename = request.form.get("filename", "")
    filename = filename.replace("\\", "/").rsplit("/", 1)[-1].strip() or "process.bpmn"
    if not filename.endswith((".bpmn", ".bpmn20.xml", ".xml")):
        filename += ".bpmn"
    if not raw.strip():
        abort(400, description="Send the diagram: a BPMN file or the modeller's XML.")
    if len(raw) > MAX_BPMN_BYTES:
        abort(413, description=f"The diagram is larger than {MAX_BPMN_BYTES} bytes.")
    try:
        return filename, raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        abort(400, description="The diagram must be UTF-8 text.")


def _problem_text(problem: dict) -> str:
    where = problem.get("element_id") or (f"line {problem['line']}" if problem.get("line") else problem.get("file"))
    return f"{where}: {problem.get('message')}" if where else str(problem.get("message"))


def _same_site(url: str | None) -> bool:
    return bool(url) and url.startswith(request.host_url)
