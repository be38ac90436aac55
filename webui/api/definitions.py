from __future__ import annotations

from flask import request
from flask_smorest import Blueprint, abort
from marshmallow import ValidationError as InvalidBody

from engine import definitions
from engine.errors import ValidationFailed
from engine.transactions import run_command

from ..auth import current_user, permission
from ..extensions import db
from . import schemas

blp = Blueprint("process_definitions", __name__, url_prefix="/api/process-definitions",
                description="Versioned BPMN process definitions")

MAX_UPLOAD_BYTES = 5 * 1024 * 1024


@blp.route("", methods=["GET"])
@permission("definition.read")
@blp.response(200, schemas.ProcessDefinition(many=True))
def list_definitions():
    return [
        {"process_key": v.process_key, "name": v.name, "latest_version": v.version, "versions": count,
         "deployed_at": v.deployed_at}
        for v, count in definitions.list_latest(db.session)
    ]


@blp.route("", methods=["POST"])
@permission("definition.deploy")
@blp.doc(requestBody={"required": True, "content": {
    "application/json": {"schema": schemas.DeployRequest},
    "multipart/form-data": {"schema": {"type": "object", "required": ["files"], "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "note": {"type": "string", "maxLength": 2000}}}}}})
@blp.response(201, schemas.DeployResult)
@blp.alt_response(422, description="Every problem found, each with element_id, line and message")
def deploy():
    """Deploy BPMN (and the DMN and form files it uses) as new versions.

    Send `multipart/form-data` with one or more `files` parts (and an optional `note`), or JSON
    `{"files": {"name.bpmn": "<xml…>"}, "note": "…"}`. Unchanged content creates no version.
    """
    files, note = _uploaded_files()
    user = current_user()
    result = run_command(db.session, user, definitions.deploy_files, files, user, note=note)
    return {"deployed": result.deployed, "unchanged": result.unchanged, "resources": result.resources}


def _uploaded_files() -> tuple[dict[str, str], str]:
    if request.mimetype == "multipart/form-data":
        files = {}
        for storage in request.files.getlist("files"):
            raw = storage.read(MAX_UPLOAD_BYTES + 1)
            name = (storage.filename or "").rsplit("/", 1)[-1]
            if len(raw) > MAX_UPLOAD_BYTES:
                raise ValidationFailed("File too large.", errors=[
                    {"file": name, "element_id": None, "line": None,
                     "message": f"larger than {MAX_UPLOAD_BYTES} bytes"}])
            files[name] = _text(name, raw)
        note = request.form.get("note", "")
        if len(note) > 2000:  # as DeployRequest says for JSON
            abort(422, messages={"form": {"note": ["Longer than maximum length 2000."]}})
        return files, note
    try:  # the body is parsed here, not by @blp.arguments, because multipart is accepted too
        body = schemas.DeployRequest().load(request.get_json(silent=True) or {})
    except InvalidBody as error:
        abort(422, messages={"json": error.messages})
    return body["files"], body["note"]


def _text(name: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed("Files must be UTF-8 text.", errors=[
            {"file": name, "element_id": None, "line": None, "message": "not UTF-8 text"}]) from None


@blp.route("/<process_key>/versions", methods=["GET"])
@permission("definition.read")
@blp.response(200, schemas.ProcessVersion(many=True))
def list_versions(process_key):
    return definitions.list_versions(db.session, process_key)


@blp.route("/<process_key>/versions/<int:version>", methods=["GET"])
@permission("definition.read")
@blp.response(200, schemas.ProcessVersionDetail)
def get_version(process_key, version):
    return definitions.get_version(db.session, process_key, version)
