"""A task's JSON Schema (+ UI schema) as an HTML form, and the posted form back as JSON data.

Server-side, so a form works without JavaScript and the server's validation errors land next to
their fields. Covers what the shipped forms use: strings (text, textarea, radio or select for enums),
date-times (entered in UTC), dates, booleans, integers and numbers, lists of strings (one per line) and
lists of small objects (a few rows of fields, e.g. follow-up actions).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

ROWS = 3  # empty rows offered for a list of objects; more after each save


@dataclass
class Field:
    name: str           # the form field's name and id: "comment", "follow_up_actions-0-owner"
    path: str           # the data path that errors name: "comment", "follow_up_actions.0.owner"
    label: str
    widget: str         # text | textarea | radio | select | checkbox | number | datetime | date | lines | rows
    help: str = ""
    required: bool = False
    value: object = ""
    options: list[tuple[str, str]] = field(default_factory=list)  # (value, label)
    rows: list[list["Field"]] = field(default_factory=list)       # for widget == "rows"
    error: str = ""


def _kind(prop: dict) -> str:
    kind = prop.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    return kind


def _widget(prop: dict, ui: dict) -> str:
    kind, fmt = _kind(prop), prop.get("format")
    if kind == "array":
        return "rows" if _kind(prop.get("items", {})) == "object" else "lines"
    if kind == "boolean":
        return "checkbox"
    if kind in ("integer", "number"):
        return "number"
    if "enum" in prop:
        return "radio" if ui.get("ui:widget") == "radio" or len(prop["enum"]) <= 4 else "select"
    if fmt == "date-time":
        return "datetime"
    if fmt == "date":
        return "date"
    return "textarea" if ui.get("ui:widget") == "textarea" else "text"


def _display(value, widget: str):
    if value is None:
        return ""
    if widget == "datetime" and isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value).astimezone(timezone.utc)
            return moment.strftime("%Y-%m-%dT%H:%M")
        except ValueError:
            return value
    if widget == "lines" and isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return value


def _order(schema: dict, ui_schema: dict) -> list[str]:
    names = list(schema.get("properties", {}))
    wanted = [n for n in ui_schema.get("ui:order", []) if n in names]
    return wanted + [n for n in names if n not in wanted]


def build(schema: dict, ui_schema: dict | None, values: dict, errors: list[dict] | None = None,
          prefix: str = "", path: str = "") -> list[Field]:
    ui_schema = ui_schema or {}
    problems = {e.get("field", ""): e.get("message", "") for e in errors or []}
    required = set(schema.get("required", []))
    fields = []
    for name in _order(schema, ui_schema):
        prop, ui = schema["properties"][name], ui_schema.get(name, {}) if isinstance(ui_schema.get(name), dict) else {}
        widget = _widget(prop, ui)
        item = Field(name=f"{prefix}{name}", path=f"{path}{name}", label=prop.get("title", name.replace("_", " ")),
                     widget=widget, help=ui.get("ui:help") or prop.get("description", ""),
                     required=name in required, value=_display(values.get(name), widget),
                     error=problems.get(f"{path}{name}", ""))
        if "enum" in prop:
            labels = ui.get("ui:enumNames") or [str(v).replace("_", " ") for v in prop["enum"]]
            item.options = list(zip([str(v) for v in prop["enum"]], labels))
        if widget == "rows":
            existing = values.get(name) or []
            item.rows = [build(prop["items"], ui.get("items"), row if isinstance(row, dict) else {}, errors,
                               prefix=f"{prefix}{name}-{i}-", path=f"{path}{name}.{i}.")
                         for i, row in enumerate(list(existing) + [{}] * ROWS)]
        fields.append(item)
    return fields


def parse(schema: dict, form) -> dict:
    """The posted form as the JSON the task expects: empty fields left out, UTC date-times, lists."""
    data = {}
    for name, prop in schema.get("properties", {}).items():
        widget = _widget(prop, {})
        if widget == "rows":
            rows, index = [], 0
            while any(key.startswith(f"{name}-{index}-") for key in form):
                row = parse(prop["items"], {k[len(f"{name}-{index}-"):]: v for k, v in form.items()
                                            if k.startswith(f"{name}-{index}-")})
                if row:
                    rows.append(row)
                index += 1
            if rows:
                data[name] = rows
            continue
        if widget == "checkbox":
            data[name] = name in form
            continue
        raw = (form.get(name) or "").strip() if widget != "textarea" else (form.get(name) or "")
        if raw == "" or (widget == "textarea" and not raw.strip()):
            continue
        if widget == "lines":
            data[name] = [line.strip() for line in raw.splitlines() if line.strip()]
        elif widget == "number":
            try:
                data[name] = int(raw) if _kind(prop) == "integer" else float(raw)
            except ValueError:
                data[name] = raw  # the schema check names the field
        elif widget == "datetime":
            data[name] = f"{raw}:00+00:00" if len(raw) == 16 else raw  # entered in UTC
        else:
            data[name] = raw
    return data
