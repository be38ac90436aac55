"""Deploying process definitions: immutable, numbered versions of BPMN + DMN + forms.

Forms and DMN files are shared resources (the newest deployed copy of a name is current). A process
version snapshots the resources it references, so a running instance keeps the exact policy it
started with. Deploying a changed DMN or form re-deploys, as new versions, the processes whose
current version uses it — that is how a process owner changes policy without touching code.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit
from .bpmn.bundle import NS, Bundle, decision_ids, referenced_decisions, referenced_forms
from .bpmn.safe_xml import XmlRejected, parse_xml
from .bpmn.specs import build_specs
from .bpmn.validation import validate_bundle
from .errors import NotFound, ValidationFailed
from .models import DefinitionResource, ProcessVersion, User
from .permissions import require

BPMN_SUFFIXES = (".bpmn", ".bpmn20.xml", ".xml")


@dataclass
class DeployResult:
    deployed: list[ProcessVersion] = field(default_factory=list)
    unchanged: list[ProcessVersion] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)


def latest_version(session: Session, process_key: str) -> ProcessVersion | None:
    return session.scalar(
        select(ProcessVersion).where(ProcessVersion.process_key == process_key)
        .order_by(ProcessVersion.version.desc()).limit(1)
    )


def get_version(session: Session, process_key: str, version: int) -> ProcessVersion:
    row = session.scalar(select(ProcessVersion).where(
        ProcessVersion.process_key == process_key, ProcessVersion.version == version))
    if row is None:
        raise NotFound(f"Process '{process_key}' has no version {version}.")
    return row


def list_versions(session: Session, process_key: str) -> list[ProcessVersion]:
    rows = session.scalars(select(ProcessVersion).where(ProcessVersion.process_key == process_key)
                           .order_by(ProcessVersion.version.desc())).all()
    if not rows:
        raise NotFound(f"No process '{process_key}' is deployed.")
    return rows


def list_latest(session: Session) -> list[tuple[ProcessVersion, int]]:
    """(latest version, number of versions) for every process key."""
    counts = dict(session.execute(
        select(ProcessVersion.process_key, func.count()).group_by(ProcessVersion.process_key)).all())
    newest = select(ProcessVersion.process_key, func.max(ProcessVersion.version).label("v")) \
        .group_by(ProcessVersion.process_key).subquery()
    rows = session.scalars(select(ProcessVersion).join(
        newest, (newest.c.process_key == ProcessVersion.process_key) & (newest.c.v == ProcessVersion.version))
        .order_by(ProcessVersion.process_key)).all()
    return [(row, counts[row.process_key]) for row in rows]


def current_resources(session: Session) -> dict[str, DefinitionResource]:
    newest = select(DefinitionResource.name, func.max(DefinitionResource.id).label("id")) \
        .group_by(DefinitionResource.name).subquery()
    rows = session.scalars(select(DefinitionResource).join(newest, newest.c.id == DefinitionResource.id))
    return {row.name: row for row in rows}


def _kind(filename: str) -> str | None:
    name = filename.lower()
    if name.endswith(".dmn"):
        return "dmn"
    if name.endswith(".json"):
        return "form"
    if name.endswith(BPMN_SUFFIXES):
        return "bpmn"
    return None


@lru_cache(maxsize=512)
def _decisions_of(sha: str, content: str) -> frozenset[str]:
    return frozenset(decision_ids(content))


def deploy_files(session: Session, files: dict[str, str], actor: User | None, *, note: str = "",
                 check_permission: bool = True) -> DeployResult:
    """Deploy uploaded files (BPMN, DMN, JSON forms) in one transaction, or refuse them all."""
    if check_permission:
        require(actor, "definition.deploy")
    problems: list[dict] = []
    bpmn_files: list[tuple[str, str]] = []
    uploaded = {}
    for filename, content in files.items():
        kind = _kind(filename)
        if kind is None:
            problems.append({"file": filename, "element_id": None, "line": None,
                             "message": "unsupported file type; upload .bpmn, .dmn or .json (forms)"})
        elif kind == "bpmn":
            bpmn_files.append((filename, content))
        else:
            problem = _check_resource(filename, kind, content)
            if problem:
                problems.append(problem)
            uploaded[filename] = (kind, content)
    if problems:
        raise ValidationFailed("The upload was refused.", errors=problems)
    if not bpmn_files and not uploaded:
        raise ValidationFailed("Nothing to deploy.", errors=[
            {"file": None, "element_id": None, "line": None, "message": "upload at least one file"}])

    result = DeployResult()
    resources = current_resources(session)
    changed = set()
    for filename, (kind, content) in uploaded.items():
        sha = hashlib.sha256(content.encode("utf-8")).hexdigest()
        if filename in resources and resources[filename].sha256 == sha:
            continue
        row = DefinitionResource(name=filename, kind=kind, sha256=sha, content=content)
        session.add(row)
        resources[filename] = row
        changed.add(filename)
        result.resources.append(filename)

    # Processes whose current version uses a changed resource get a new version too, unless the
    # upload brings a new diagram for that process anyway.
    uploaded_keys = {key for _name, xml in bpmn_files for key in executable_process_ids(xml)}
    for version, _count in list_latest(session):
        if changed & (set(version.dmn) | set(version.forms)) and version.process_key not in uploaded_keys:
            bpmn_files.append((version.filename, version.bpmn_xml))

    pending = []
    for filename, xml in bpmn_files:
        bundle = _bundle(filename, xml, resources)
        validation = validate_bundle(bundle, spec_builder=build_specs)
        for problem in validation.problems:
            problem.setdefault("file", filename)
        problems.extend(validation.problems)
        if validation.ok:
            pending.append((bundle, validation))
    if problems:
        raise ValidationFailed("The process definition is not valid.", errors=problems)

    for bundle, validation in pending:
        latest = latest_version(session, validation.process_key)
        if latest is not None and latest.sha256 == bundle.sha256:
            result.unchanged.append(latest)
            continue
        version = ProcessVersion(
            process_key=validation.process_key, name=validation.process_name,
            version=(latest.version + 1) if latest else 1, sha256=bundle.sha256,
            bpmn_xml=bundle.bpmn_xml, filename=bundle.filename, dmn=bundle.dmn, forms=bundle.forms,
            deployed_by=actor, note=note,
        )
        session.add(version)
        session.flush()
        audit.record(session, "definition_deployed", actor=actor, data={
            "process_key": version.process_key, "version": version.version, "sha256": version.sha256,
            "resources": sorted(set(bundle.dmn) | set(bundle.forms))})
        result.deployed.append(version)
    return result


def check_bpmn(session: Session, filename: str, xml: str) -> list[dict]:
    """The problems deploying this diagram would meet, without deploying anything (the modeller's
    Validate button): the same bundle and checks as `deploy_files`."""
    validation = validate_bundle(_bundle(filename, xml, current_resources(session)), spec_builder=build_specs)
    return [{"file": filename, **problem} for problem in validation.problems]


def executable_process_ids(xml: str) -> list[str]:
    try:
        root = parse_xml(xml)
    except XmlRejected:
        return []
    return [p.get("id") for p in root.iterfind("bpmn:process", NS) if p.get("isExecutable") == "true"]


def _check_resource(filename: str, kind: str, content: str) -> dict | None:
    try:
        if kind == "dmn":
            if not decision_ids(content):
                return {"file": filename, "element_id": None, "line": None,
                        "message": "the DMN file defines no <decision>"}
        else:
            json.loads(content)
    except XmlRejected as exc:
        return {"file": filename, "element_id": None, "line": exc.line, "message": exc.message}
    except ValueError as exc:
        return {"file": filename, "element_id": None, "line": getattr(exc, "lineno", None),
                "message": f"not valid JSON: {exc}"}
    return None


def _bundle(filename: str, xml: str, resources: dict[str, DefinitionResource]) -> Bundle:
    bundle = Bundle(xml, filename)
    try:
        root = parse_xml(xml)
    except XmlRejected:
        return bundle  # validation reports it with its line
    for name in referenced_forms(root):
        if name in resources:
            bundle.forms[name] = resources[name].content
    wanted = referenced_decisions(root)
    for name, row in resources.items():
        if row.kind == "dmn" and wanted & _decisions_of(row.sha256, row.content):
            bundle.dmn[name] = row.content
    return bundle


def sync_directories(session: Session, processes_dir: Path, forms_dir: Path) -> DeployResult:
    """Deploy `processes/` and `forms/` as they are on disk; unchanged content adds no version."""
    files = {}
    for path in sorted(forms_dir.glob("*.json")):
        files[path.name] = path.read_text(encoding="utf-8")
    for path in sorted(processes_dir.glob("*.dmn")) + sorted(processes_dir.glob("*.bpmn")):
        files[path.name] = path.read_text(encoding="utf-8")
    return deploy_files(session, files, None, note="deployed from the processes/ directory",
                        check_permission=False)
