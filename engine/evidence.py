"""Evidence attached to a change: files (stored content-addressed) and links.

Rows are immutable. A correction is a new row that supersedes the old one (version n+1, same kind);
both stay in the trace. Every upload and every download is an audit event on the change.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased, selectinload

from . import audit
from .changes import get_change
from .errors import Conflict, NotFound, ValidationFailed
from .evidence_files import EvidenceStore, StagedBlob, safe_filename
from .models import EVIDENCE_KINDS, Change, Evidence, User
from .operators import FINAL_STATES
from .permissions import require, require_read_change
from .transactions import run_command

MAX_URL = 2000


@dataclass(frozen=True)
class EvidenceVersion:
    """A row as the API shows it: with the id of the row that supersedes it, if any."""

    evidence: Evidence
    superseded_by: int | None


_NEWER = aliased(Evidence, name="newer")  # built once: an alias costs about a millisecond to make


def _not_superseded():
    return ~select(_NEWER.id).where(_NEWER.supersedes_id == Evidence.id).exists()


def present_kinds(session: Session, change: Change) -> set[str]:
    """The kinds of the change's current (not superseded) evidence, in one query."""
    return set(session.scalars(
        select(Evidence.kind).where(Evidence.change_id == change.id, _not_superseded()).distinct()))


def current_evidence(session: Session, change: Change) -> list[Evidence]:
    """The change's evidence rows that no other row supersedes, oldest first."""
    return list(session.scalars(
        select(Evidence).where(Evidence.change_id == change.id, _not_superseded())
        .order_by(Evidence.uploaded_at, Evidence.id)))


# -- reading -----------------------------------------------------------------------------------

def list_evidence(session: Session, change: Change) -> list[EvidenceVersion]:
    """Every version of every piece of evidence on the change, oldest first, with the id superseding it."""
    rows = session.execute(
        select(Evidence, _NEWER.id).outerjoin(_NEWER, _NEWER.supersedes_id == Evidence.id)
        .where(Evidence.change_id == change.id).options(selectinload(Evidence.uploaded_by)).order_by(Evidence.id))
    return [EvidenceVersion(evidence, superseded_by) for evidence, superseded_by in rows]


def get_evidence(session: Session, evidence_id: int, actor: User) -> EvidenceVersion:
    """One evidence row, if `actor` may read its change, with the id of the row superseding it."""
    require(actor, "evidence.read")
    evidence = session.get(Evidence, evidence_id)
    if evidence is None:
        raise NotFound(f"Evidence {evidence_id} does not exist.")
    require_read_change(actor, session.get(Change, evidence.change_id))
    return EvidenceVersion(evidence, _superseded_by(session, evidence.id))


def open_download(session: Session, evidence_id: int, actor: User, store: EvidenceStore) -> tuple[Evidence, Path]:
    """The stored file of a piece of evidence; records the download. Run it as a command."""
    evidence = get_evidence(session, evidence_id, actor).evidence
    if evidence.sha256 is None:
        raise NotFound(f"Evidence {evidence_id} is a link ({evidence.url}); there is no file to download.")
    path = store.path_for(evidence.sha256)
    if not path.is_file():
        raise NotFound(f"The file of evidence {evidence_id} is missing from the evidence store.")
    audit.record(session, "evidence_downloaded", actor=actor, change_id=evidence.change_id,
                 data={"evidence_id": evidence.id, "kind": evidence.kind, "version": evidence.version,
                       "filename": evidence.filename, "sha256": evidence.sha256})
    return evidence, path


def _superseded_by(session: Session, evidence_id: int) -> int | None:
    return session.scalar(select(Evidence.id).where(Evidence.supersedes_id == evidence_id))


# -- adding ------------------------------------------------------------------------------------

def link_refusal(url: str) -> str | None:
    """Why `url` may not be link evidence (only absolute http/https URLs), or None."""
    if len(url) > MAX_URL:
        return f"is longer than {MAX_URL} characters"
    if any(ord(ch) <= 32 or ord(ch) == 127 for ch in url):
        return "may not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "must be an http or https URL"
    if not host:
        return "must name a host"
    return None


def writable_change(session: Session, change_id: int, actor: User) -> Change:
    """The change, if `actor` may add evidence to it: may read it, may upload, and it is still open."""
    require(actor, "evidence.upload")
    change = get_change(session, change_id, actor)
    if change.state in FINAL_STATES:
        raise Conflict(f"Change {change.number} is {change.state}; evidence can no longer be added.")
    return change


def check_upload(session: Session, change_id: int, actor: User, kind: str,
                 supersedes: int | None) -> tuple[Change, Evidence | None]:
    """Everything that can refuse an upload without its content: caller, change state, kind, version."""
    change = writable_change(session, change_id, actor)
    if kind not in EVIDENCE_KINDS:
        raise ValidationFailed("Unknown kind of evidence.", errors=[
            {"field": "kind", "message": f"must be one of: {', '.join(EVIDENCE_KINDS)}"}])
    if supersedes is None:
        return change, None
    old = session.get(Evidence, supersedes)
    if old is None or old.change_id != change.id:
        raise ValidationFailed("Only evidence of the same change can be superseded.", errors=[
            {"field": "supersedes", "message": f"change {change.number} has no evidence {supersedes}"}])
    if old.kind != kind:
        raise ValidationFailed("A new version keeps the kind of the evidence it supersedes.", errors=[
            {"field": "kind", "message": f"evidence {old.id} is {old.kind}"}])
    newer = _superseded_by(session, old.id)
    if newer is not None:
        raise Conflict(f"Evidence {old.id} is already superseded by evidence {newer}; supersede that version.",
                       superseded_by=newer)
    return change, old


def add_link(session: Session, change_id: int, actor: User, *, kind: str, url: str, note: str = "",
             supersedes: int | None = None) -> Evidence:
    change, old = check_upload(session, change_id, actor, kind, supersedes)
    reason = link_refusal(url)
    if reason:
        raise ValidationFailed("The link is not allowed.", errors=[{"field": "url", "message": reason}])
    return _record(session, change, actor, old, kind=kind, note=note, url=url)


def upload_file(session: Session, change_id: int, actor: User, store: EvidenceStore, stream: BinaryIO, *,
                filename: str | None, kind: str, note: str = "", supersedes: int | None = None) -> Evidence:
    """Store the file and record it, all or nothing. Commits: this is a whole command, not a step of one.

    Refusals that need no content come first, so a forbidden or late upload never touches the disk.
    """
    check_upload(session, change_id, actor, kind, supersedes)
    with store.stage(stream) as staged:
        try:
            return run_command(session, actor, _record_file, change_id, actor, staged,
                               filename=filename, kind=kind, note=note, supersedes=supersedes)
        except BaseException:
            # The row was rolled back; a blob this upload created goes too, unless another row uses it.
            if staged.created and session.scalar(
                    select(Evidence.id).where(Evidence.sha256 == staged.sha256).limit(1)) is None:
                store.discard(staged.sha256)
            raise


def _record_file(session: Session, change_id: int, actor: User, staged: StagedBlob, *, filename, kind, note,
                 supersedes) -> Evidence:
    change, old = check_upload(session, change_id, actor, kind, supersedes)
    evidence = _record(session, change, actor, old, kind=kind, note=note, filename=safe_filename(filename),
                       content_type=staged.content_type, size=staged.size, sha256=staged.sha256)
    staged.publish()  # last: everything that can refuse has run; only the commit is left
    return evidence


def _record(session: Session, change: Change, actor: User, old: Evidence | None, **fields) -> Evidence:
    evidence = Evidence(change_id=change.id, version=old.version + 1 if old else 1,
                        supersedes_id=old.id if old else None, uploaded_by=actor, **fields)
    session.add(evidence)
    session.flush()
    audit.record(session, "evidence_uploaded", actor=actor, change_id=change.id, data={
        "evidence_id": evidence.id, "kind": evidence.kind, "version": evidence.version,
        "supersedes": evidence.supersedes_id, "filename": evidence.filename, "url": evidence.url,
        "content_type": evidence.content_type, "size": evidence.size, "sha256": evidence.sha256})
    return evidence
