"""Evidence on a change: uploaded files and links, each version immutable."""
from __future__ import annotations

from marshmallow import ValidationError, fields, pre_dump, validate

from engine.evidence import MAX_URL, link_refusal
from engine.models import EVIDENCE_KINDS

from .common import Strict, UsernameField

_KIND = fields.String(required=True, validate=validate.OneOf(EVIDENCE_KINDS))
_NOTE = fields.String(load_default="", validate=validate.Length(max=20000))
_SUPERSEDES = fields.Integer(load_default=None, allow_none=True, metadata={
    "description": "id of the evidence (same change, same kind) this version corrects; it must be the current version"})


def _web_url(value: str) -> None:
    reason = link_refusal(value)
    if reason:
        raise ValidationError(reason)


class EvidenceUploadForm(Strict):
    """The text parts of a multipart upload (the file itself is the `file` part)."""

    kind = _KIND
    note = _NOTE
    supersedes = _SUPERSEDES


class EvidenceUpload(EvidenceUploadForm):
    """For the API document: the multipart body."""

    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


class EvidenceLinkCreate(Strict):
    kind = _KIND
    url = fields.String(required=True, validate=_web_url,
                        metadata={"description": f"http or https only, at most {MAX_URL} characters "
                                                       "(a CI run, a ticket)"})
    note = _NOTE
    supersedes = fields.Integer(load_default=None, allow_none=True, strict=True,
                                metadata=_SUPERSEDES.metadata)


class EvidenceItem(Strict):
    """Dumped from an engine.evidence.EvidenceVersion."""

    id = fields.Integer()
    change_id = fields.Integer()
    kind = fields.String()
    version = fields.Integer()
    supersedes = fields.Integer(attribute="supersedes_id", allow_none=True)
    superseded_by = fields.Integer(allow_none=True)
    filename = fields.String(allow_none=True)
    content_type = fields.String(allow_none=True, metadata={"description": "sniffed from the content"})
    size = fields.Integer(allow_none=True)
    sha256 = fields.String(allow_none=True)
    url = fields.String(allow_none=True)
    note = fields.String()
    uploaded_by = UsernameField(allow_none=True)
    uploaded_at = fields.DateTime()
    download_url = fields.String(allow_none=True)

    @pre_dump
    def _unpack(self, item, **kwargs):
        evidence = item.evidence
        values = {name: getattr(evidence, name) for name in (
            "id", "change_id", "kind", "version", "supersedes_id", "filename", "content_type", "size", "sha256",
            "url", "note", "uploaded_by", "uploaded_at")}
        values["superseded_by"] = item.superseded_by
        values["download_url"] = f"/api/evidence/{evidence.id}/download" if evidence.sha256 else None
        return values
