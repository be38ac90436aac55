"""Evidence on the change page: the upload form (file or URL) and downloads, over the API's engine calls.

Uploads go through `engine.evidence` exactly as POST /api/changes/{id}/evidence does (the same
schemas, the same size limit, applied before the body is read); downloads through
`evidence.open_download` (read permission, audited) and are always attachments.
"""
from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from engine import evidence, permissions
from engine.changes import get_change
from engine.errors import ChangeflowError, NotFound
from engine.evidence_files import EvidenceStore
from engine.evidence_rules import STAGE_WORDS
from engine.models import EVIDENCE_KINDS
from engine.operators import FINAL_STATES
from engine.service_map import change_impact
from engine.trace import change_trace
from engine.transactions import run_command

from ..api.evidence import MULTIPART_OVERHEAD
from ..downloads import evidence_attachment
from ..extensions import db
from . import blp
from .security import page, signed_in_user

AFTER_IMPLEMENTATION = ("implement", "review")  # from here on, the evidence asked for is closure's


def _store() -> EvidenceStore:
    settings = current_app.config["CHANGEFLOW_SETTINGS"]
    return EvidenceStore(settings.evidence_dir, settings.evidence_max_bytes)


def _size(limit: int) -> str:
    return f"{limit / 1024 / 1024:.3g} MB" if limit >= 1024 * 1024 else f"{limit} bytes"


def _upload_form(change, trace, values: dict, errors: dict) -> dict | None:
    """What the Evidence section's form offers: the kinds the current stage requires first."""
    if change.state in FINAL_STATES or not permissions.can(signed_in_user(), "evidence.upload"):
        return None
    stage = "close" if change.state in AFTER_IMPLEMENTATION else "implement"
    status = trace["evidence_requirements"][stage]
    return {"stage": STAGE_WORDS[stage], "required": status["required"], "missing": status["missing"],
            "others": [k for k in EVIDENCE_KINDS if k not in status["required"]],
            "values": values, "errors": errors, "max_size": _size(_store().max_bytes)}


def change_page(change, *, values: dict | None = None, errors: dict | None = None, status: int = 200):
    """The change page; after a refused upload, with what was entered and each problem at its field."""
    trace = change_trace(db.session, change)
    return render_template("change.html", change=change, trace=trace, impact=change_impact(db.session, change),
                           evidence_form=_upload_form(change, trace, values or {}, errors or {})), status


@blp.before_app_request
def _cap_upload_body():
    # App-level hooks run before the pages' CSRF check, which is what first reads the body: the
    # limit must be set here to refuse an oversized upload unread.
    if request.endpoint == "pages.upload_evidence":
        request.max_content_length = _store().max_bytes + MULTIPART_OVERHEAD


@blp.errorhandler(RequestEntityTooLarge)
def _body_too_large(error):
    """An upload refused unread: nothing was stored, so the page can be shown again with the reason."""
    user = signed_in_user()
    if request.endpoint != "pages.upload_evidence" or not permissions.can(user, "evidence.upload"):
        return error
    try:
        change = get_change(db.session, request.view_args["change_ref"], user)
    except ChangeflowError:
        return error
    return change_page(change, errors={"file": f"larger than {_store().max_bytes} bytes; nothing was stored"},
                       status=413)


def _refusals(upload, values: dict) -> dict:
    """{field: message} for what the API would refuse before storing anything, all at once."""
    from ..api.schemas import EvidenceLinkCreate, EvidenceUploadForm

    errors = {}
    try:
        EvidenceUploadForm().load({"kind": values["kind"], "note": values["note"]})
    except ValidationError as error:
        errors.update({k: " ".join(v) for k, v in error.messages.items()})
    if not values["kind"]:
        errors["kind"] = "choose what kind of evidence this is"
    if upload and values["url"]:
        errors["file"] = "choose a file or enter a URL, not both"
    elif not upload and not values["url"]:
        errors["file"] = "choose a file or enter a URL"
    elif values["url"]:
        try:
            EvidenceLinkCreate().load({"kind": "other", "url": values["url"]})
        except ValidationError as error:
            errors.update({k: " ".join(v) for k, v in error.messages.items() if k == "url"})
    return errors


@blp.route("/changes/<change_ref>/evidence", methods=["POST"])
@page("evidence.upload")
def upload_evidence(change_ref):
    """Attach a file or a link, as POST /api/changes/{id}/evidence; the change page shows it or the problems."""
    user = signed_in_user()
    change = get_change(db.session, change_ref, user)
    values = {"kind": request.form.get("kind") or "", "url": (request.form.get("url") or "").strip(),
              "note": request.form.get("note") or ""}
    upload = request.files.get("file")
    upload = upload if upload is not None and upload.filename else None
    try:
        evidence.writable_change(db.session, change.id, user)
        errors = _refusals(upload, values)
        if errors:
            return change_page(change, values=values, errors=errors, status=422)
        if upload is not None:
            row = evidence.upload_file(db.session, change.id, user, _store(), upload.stream, filename=upload.filename,
                                       kind=values["kind"], note=values["note"])
        else:
            row = run_command(db.session, user, evidence.add_link, change.id, user, kind=values["kind"],
                              url=values["url"], note=values["note"])
    except ChangeflowError as error:
        problems = {e.get("field", ""): e.get("message", "") for e in (error.errors or [])} or {"": error.message}
        return change_page(change, values=values, errors=problems, status=error.status)
    flash(f"Evidence added: {row.kind.replace('_', ' ')}, version {row.version}.", "ok")
    return redirect(url_for("pages.change", change_ref=change.number, _anchor="evidence"))


@blp.route("/changes/<change_ref>/evidence/<int:evidence_id>/download", methods=["GET"])
@page("evidence.read")
def download_evidence(change_ref, evidence_id):
    """The stored file, always as an attachment (never shown inline); the download is audited."""
    user = signed_in_user()
    change = get_change(db.session, change_ref, user)
    if evidence.get_evidence(db.session, evidence_id, user).evidence.change_id != change.id:
        raise NotFound(f"Change {change.number} has no evidence {evidence_id}.")
    row, path = run_command(db.session, user, evidence.open_download, evidence_id, user, _store())
    return evidence_attachment(row, path)
