"""Evidence on a change: upload files and links, list every version, download with an audit trail."""
from __future__ import annotations

from flask import current_app, jsonify, request
from flask_smorest import Blueprint, abort
from marshmallow import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from engine import changes as change_service
from engine import evidence
from engine.evidence_files import EvidenceStore, EvidenceTooLarge
from engine.transactions import run_command

from ..auth import current_user, permission
from ..downloads import evidence_attachment
from ..extensions import db
from . import schemas

blp = Blueprint("evidence", __name__, url_prefix="/api", description="Evidence attached to changes")

MULTIPART_OVERHEAD = 1024 * 1024  # the parts' headers and the note around the file


def _store() -> EvidenceStore:
    settings = current_app.config["CHANGEFLOW_SETTINGS"]
    return EvidenceStore(settings.evidence_dir, settings.evidence_max_bytes)


@blp.errorhandler(EvidenceTooLarge)
def _too_large(error: EvidenceTooLarge):
    response = jsonify({"code": 413, "status": "Payload Too Large", "error": error.code, "message": error.message,
                        "errors": error.errors, **error.extra})
    response.status_code = 413
    return response


@blp.route("/changes/<int:change_id>/evidence", methods=["POST"])
@permission("evidence.upload")
@blp.doc(requestBody={"required": True, "content": {
    "multipart/form-data": {"schema": schemas.EvidenceUpload},
    "application/json": {"schema": schemas.EvidenceLinkCreate}}})
@blp.response(201, schemas.EvidenceItem)
@blp.alt_response(409, description="The change is closed or canceled, or the evidence superseded is not current")
@blp.alt_response(413, description="The file is over the size limit; nothing was stored")
@blp.alt_response(422, description="Unknown kind, empty file, refused URL, or a version of other evidence")
def upload(change_id):
    """Attach a file (multipart: `file`, `kind`, `note`, `supersedes`) or a link (JSON: `kind`, `url`, …).

    Files are stored by SHA-256 and typed from their content, not from the client. Evidence is
    immutable: to correct it, upload a new version with `supersedes` set to the current one's id.
    """
    user = current_user()
    store = _store()
    request.max_content_length = store.max_bytes + MULTIPART_OVERHEAD
    # Refuse the caller and a closed change before the body is parsed. Holding the change keeps it
    # in the session's identity map, so the command below does not load it again.
    change = evidence.writable_change(db.session, change_id, user)  # noqa: F841
    try:
        if request.mimetype != "multipart/form-data":
            body = _load(schemas.EvidenceLinkCreate(), request.get_json(silent=True) or {}, "json")
            return evidence.EvidenceVersion(run_command(db.session, user, evidence.add_link, change_id, user, **body),
                                            None)
        uploads = request.files.getlist("file")
        form = _load(schemas.EvidenceUploadForm(), request.form.to_dict(), "form")
    except RequestEntityTooLarge:
        raise EvidenceTooLarge(f"The request is larger than the limit of {store.max_bytes} bytes; nothing was stored.",
                               errors=[{"field": "file", "message": f"larger than {store.max_bytes} bytes"}],
                               max_bytes=store.max_bytes) from None
    if len(uploads) != 1:
        abort(422, messages={"files": {"file": ["Send exactly one file part." if uploads
                                                else "Missing data for required field."]}})
    file = uploads[0]
    row = evidence.upload_file(db.session, change_id, user, store, file.stream, filename=file.filename, **form)
    return evidence.EvidenceVersion(row, None)


def _load(schema, data: dict, location: str) -> dict:
    try:
        return schema.load(data)
    except ValidationError as error:
        abort(422, messages={location: error.messages})


@blp.route("/changes/<int:change_id>/evidence", methods=["GET"])
@permission("evidence.read")
@blp.response(200, schemas.EvidenceItem(many=True))
def list_evidence(change_id):
    """Every version of the change's evidence, oldest first; a corrected one names its `superseded_by`."""
    change = change_service.get_change(db.session, change_id, current_user())
    return evidence.list_evidence(db.session, change)


@blp.route("/evidence/<int:evidence_id>", methods=["GET"])
@permission("evidence.read")
@blp.response(200, schemas.EvidenceItem)
def get_evidence(evidence_id):
    return evidence.get_evidence(db.session, evidence_id, current_user())


@blp.route("/evidence/<int:evidence_id>/download", methods=["GET"])
@permission("evidence.read")
@blp.response(200, description="The file, always as an attachment")
@blp.alt_response(404, description="No such evidence, or it is a link")
def download(evidence_id):
    """The stored file, as an attachment with its sanitised name. Every download is audited."""
    user = current_user()
    row, path = run_command(db.session, user, evidence.open_download, evidence_id, user, _store())
    return evidence_attachment(row, path)
