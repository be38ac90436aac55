"""Bulk loading of the service catalogue from YAML or CSV (`changeflow services import FILE`).

All or nothing: every row is checked first and every problem reported with its row, key and field;
only a clean file is written, in the caller's single transaction. Rows are 1-based item numbers in a
YAML list, and line numbers in a CSV file (the header is line 1).

YAML: a list of services, or `{services: [...], dependencies: [{service, depends_on, kind}]}`; a
service may also list `depends_on: ["identity:calls", "cloud-capacity"]` (kind defaults to calls).
CSV columns: key, name, description, owner, business_owner, criticality, sla_tier, vendors (separated
by `;`), requires_maintenance_window, depends_on (`key:kind` or `key`, separated by `;`). An empty cell
is "not given": a new service gets the default, an updated one keeps its value.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .catalog import FIELDS, apply_update, check_fields, check_kind, insert_dependency, insert_service
from .errors import ValidationFailed
from .models import Service, ServiceDependency, User
from .permissions import require

CSV_COLUMNS = (*FIELDS, "depends_on")
TRUE, FALSE = ("true", "yes", "y", "1"), ("false", "no", "n", "0")


@dataclass
class Row:
    row: int
    fields: dict
    section: str = "services"
    depends_on: list[tuple[str, str]] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)

    def problem(self, name: str, message: str) -> None:
        self.errors.append({"section": self.section, "row": self.row, "key": self.fields.get("key"),
                            "field": name, "message": message})


def read_file(path: Path) -> tuple[list[Row], list[Row]]:
    """Services and stand-alone dependency rows from `path` (by extension: .yaml, .yml or .csv)."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"Cannot read {path.name}: {exc}") from None
    if suffix == ".csv":
        return _read_csv(text), []
    if suffix in (".yaml", ".yml"):
        return _read_yaml(text)
    raise ValidationFailed(f"Cannot tell the format of {path.name}: use .yaml, .yml or .csv.")


def _parse_links(row: Row, value) -> None:
    items = value.split(";") if isinstance(value, str) else value
    if not isinstance(items, list):
        row.problem("depends_on", "must be a list of 'key' or 'key:kind'")
        return
    for item in items:
        if isinstance(item, dict):
            key, kind = item.get("key") or item.get("service"), item.get("kind", "calls")
        elif isinstance(item, str) and item.strip():
            key, _, kind = item.strip().partition(":")
            kind = kind.strip() or "calls"
        else:
            continue
        if not isinstance(key, str) or not key.strip():
            row.problem("depends_on", f"{item!r} names no service")
            continue
        row.depends_on.append((key.strip(), kind))


def _read_csv(text: str) -> list[Row]:
    reader = csv.DictReader(io.StringIO(text))
    header = Row(1, {}, section="header")
    columns = reader.fieldnames or []
    for name in columns:
        if name not in CSV_COLUMNS:
            header.problem(name, f"unknown column (columns: {', '.join(CSV_COLUMNS)})")
    for name in ("key", "name"):
        if name not in columns:
            header.problem(name, "required column is missing")
    if header.errors:
        raise ValidationFailed("The CSV header is not valid; nothing was imported.", errors=header.errors)
    rows = []
    for cells in reader:
        row = Row(reader.line_num, {})
        for name, raw in cells.items():
            value = (raw or "").strip() if not isinstance(raw, list) else ""
            if name is None:
                row.problem("_row", "more cells than columns")
            elif value:
                _csv_cell(row, name, value)
        rows.append(row)
    return rows


def _csv_cell(row: Row, name: str, value: str) -> None:
    if name == "criticality":
        try:
            row.fields[name] = int(value)
        except ValueError:
            row.problem(name, f"{value!r} is not an integer from 1 to 4")
    elif name == "requires_maintenance_window":
        if value.lower() not in TRUE + FALSE:
            row.problem(name, f"{value!r} is not true or false")
        row.fields[name] = value.lower() in TRUE
    elif name == "vendors":
        row.fields[name] = [v.strip() for v in value.split(";") if v.strip()]
    elif name == "depends_on":
        _parse_links(row, value)
    else:
        row.fields[name] = value


def _read_yaml(text: str) -> tuple[list[Row], list[Row]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationFailed(f"The YAML is not valid: {exc}") from None
    if isinstance(data, dict):
        unknown = set(data) - {"services", "dependencies"}
        if unknown:
            raise ValidationFailed(f"Unknown top-level keys: {', '.join(sorted(map(str, unknown)))} "
                                   "(expected services and dependencies).")
        services, links = data.get("services") or [], data.get("dependencies") or []
    else:
        services, links = data or [], []
    if not isinstance(services, list) or not isinstance(links, list):
        raise ValidationFailed("Expected a list of services, or {services: [...], dependencies: [...]}.")
    rows = []
    for number, item in enumerate(services, start=1):
        row = Row(number, {})
        if not isinstance(item, dict):
            row.problem("_row", "must be a mapping of service fields")
        else:
            row.fields = {k: v for k, v in item.items() if k != "depends_on"}
            _parse_links(row, item.get("depends_on") or [])
        rows.append(row)
    dependencies = []
    for number, item in enumerate(links, start=1):
        row = Row(number, {}, section="dependencies")
        if not isinstance(item, dict) or set(item) - {"service", "depends_on", "kind"}:
            row.problem("_row", "must be {service, depends_on, kind}")
        else:
            row.fields = {"key": item.get("service")}
            _parse_links(row, [{"key": item.get("depends_on"), "kind": item.get("kind", "calls")}])
        dependencies.append(row)
    return rows, dependencies


def import_file(session: Session, actor: User | None, path: Path, *, update: bool = False,
                check_permission: bool = True) -> dict:
    rows, links = read_file(path)
    return import_services(session, actor, rows, links, update=update, check_permission=check_permission,
                           source=path.name)


def import_services(session: Session, actor: User | None, rows: list[Row], links: list[Row], *,
                    update: bool = False, check_permission: bool = True, source: str = "") -> dict:
    """Create (or with `update`, also update) services and add dependencies; refuse everything on any problem."""
    if check_permission:
        require(actor, "service.write")
    existing, users = _check_services(session, rows, update)
    known, pairs = _check_links(session, rows + links, existing, update)
    errors = [problem for row in rows + links for problem in row.errors]
    if errors:
        raise ValidationFailed(f"{len(errors)} problem(s) in {source or 'the file'}; nothing was imported.",
                               errors=errors)
    summary = dict.fromkeys(("created", "updated", "unchanged", "dependencies_added", "dependencies_updated",
                             "dependencies_unchanged"), 0)
    for row in rows:
        key = row.fields["key"]
        if key in existing:
            fields = {k: v for k, v in row.fields.items() if k != "key"}
            changed = apply_update(session, actor, existing[key], fields, users)
            summary["updated" if changed else "unchanged"] += 1
        else:
            known[key] = insert_service(session, actor, row.fields, users)
            summary["created"] += 1
    session.flush()
    for row in rows + links:
        for target, kind in row.depends_on:
            current = pairs.get((row.fields["key"], target))
            if current is None:
                insert_dependency(session, actor, known[row.fields["key"]], known[target], kind, flush=False)
                summary["dependencies_added"] += 1
            elif current.kind != kind:
                audit.record(session, "dependency_updated", actor=actor, data={
                    "service": row.fields["key"], "depends_on": target, "kind": {"from": current.kind, "to": kind}})
                current.kind = kind
                summary["dependencies_updated"] += 1
            else:
                summary["dependencies_unchanged"] += 1
    audit.record(session, "services_imported", actor=actor, data={"source": source, "update": update, **summary})
    session.flush()
    return summary


def _check_services(session: Session, rows: list[Row], update: bool) -> tuple[dict, dict]:
    keys = {r.fields.get("key") for r in rows if isinstance(r.fields.get("key"), str)}
    existing = {s.key: s for s in session.scalars(select(Service).where(Service.key.in_(keys)))}
    first_row: dict[str, int] = {}
    for row in rows:
        key = row.fields.get("key")
        if isinstance(key, str) and key in first_row:
            row.problem("key", f"'{key}' is also on row {first_row[key]}")
        elif isinstance(key, str):
            first_row[key] = row.row
        creating = not (isinstance(key, str) and key in existing)
        if not creating and not update:
            row.problem("key", f"service '{key}' already exists (use --update to update it)")
        fields = row.fields if creating else {k: v for k, v in row.fields.items() if k != "key"}
        for problem in check_fields(fields, creating=creating):
            row.problem(problem["field"], problem["message"])
    names = {r.fields["owner"] for r in rows if isinstance(r.fields.get("owner"), str)}
    users = {u.username: u for u in session.scalars(
        select(User).where(User.username.in_(names), User.active.is_(True)))}
    for row in rows:
        owner = row.fields.get("owner")
        if isinstance(owner, str) and owner not in users:
            row.problem("owner", f"no active user '{owner}'")
    return existing, users


def _check_links(session: Session, rows: list[Row], existing: dict, update: bool) -> tuple[dict, dict]:
    """Services by key (in the file or stored) and the stored dependencies among them, by key pair."""
    in_file = {r.fields.get("key") for r in rows if r.section == "services" and isinstance(r.fields.get("key"), str)}
    named = {k for r in rows for k in (r.fields.get("key"), *(t for t, _ in r.depends_on)) if isinstance(k, str)}
    known = {s.key: s for s in session.scalars(select(Service).where(Service.key.in_(named - in_file)))}
    known.update(existing)
    stored = {s.id: s.key for s in known.values()}
    pairs = {(stored[d.service_id], stored[d.depends_on_id]): d for d in session.scalars(
        select(ServiceDependency).where(ServiceDependency.service_id.in_(stored),
                                        ServiceDependency.depends_on_id.in_(stored)))}
    seen: dict[tuple, str] = {}
    available = in_file | set(known)
    for row in rows:
        source = row.fields.get("key")
        own = "depends_on" if row.section == "services" else None
        if row.section == "dependencies" and (not isinstance(source, str) or source not in available):
            row.problem("service", f"no service '{source}'")
            continue
        for target, kind in row.depends_on:
            for problem in check_kind(kind):
                row.problem(own or "kind", f"{target}:{kind}: {problem['message']}" if own else problem["message"])
            if target not in available:
                row.problem(own or "depends_on", f"no service '{target}'")
            elif target == source:
                row.problem(own or "depends_on", "a service cannot depend on itself")
            elif (source, target) in seen:
                row.problem(own or "depends_on", f"{source} → {target} is also given in {seen[(source, target)]}")
            elif (source, target) in pairs and not update:
                row.problem(own or "depends_on", f"'{source}' already depends on '{target}' "
                                                 "(use --update to change its kind)")
            seen[(source, target)] = f"{row.section} row {row.row}"
    return known, pairs
