"""Checks on every request before its view runs: NUL characters, and query parameters nobody documented.

NUL: PostgreSQL cannot store or even compare a text containing U+0000, so a `%00` in a path, query,
form field or JSON string would end as a 500 there (and be stored as-is on SQLite). No field of
Changeflow means to hold one: such a request is malformed, answered 400 naming the field, for the
pages as well as the API.

Unknown query parameters: webargs ignores them, and a route without a query schema reads none, so a
typo (`?sevice=crm`) would quietly answer the unfiltered list. They are refused with 422 naming
each, like unknown body fields. Callers the route refuses anyway get their 401/403 from
`@permission` first, so this never tells a stranger which parameters exist.
"""
from __future__ import annotations

from flask import current_app, g, request
from flask_smorest import abort

from engine import permissions

from ..auth import current_user

NUL = "\x00"


def _nul_fields(value, name: str = ""):
    if isinstance(value, str):
        if NUL in value:
            yield name or "_schema"
    elif isinstance(value, dict):
        for key, item in value.items():
            if NUL in str(key):
                yield f"{name}.{key}".lstrip(".").replace(NUL, "\\x00")
            else:
                yield from _nul_fields(item, f"{name}.{key}".lstrip("."))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_fields(item, f"{name}.{index}".lstrip("."))


def refuse_nul_characters():
    found = {"path": list(_nul_fields(request.view_args or {})),
             "query": list(_nul_fields(request.args.to_dict(flat=False))),
             # multipart is left to the views: they set the upload's size limit before it is parsed
             # (the schemas refuse NUL in its text parts, webui/api/schemas/common.py)
             "form": list(_nul_fields(request.form.to_dict(flat=False)))
                     if request.mimetype == "application/x-www-form-urlencoded" else [],
             "json": list(_nul_fields(request.get_json(silent=True))) if request.is_json else []}
    messages = {location: {name.split(".")[0] if location in ("query", "form") else name:
                           ["May not contain NUL (U+0000) characters."] for name in names}
                for location, names in found.items() if names}
    if messages:
        abort(400, messages=messages)


def documented_query_names(view) -> set[str]:
    names = set()
    for parameter in getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", []):
        if parameter.get("in") == "query":
            schema = parameter["schema"]() if isinstance(parameter["schema"], type) else parameter["schema"]
            names.update(f.data_key or name for name, f in schema.fields.items() if not f.dump_only)
    return names


def _refused_by_permission(view) -> bool:
    action = getattr(view, "permission_action", None)
    if action is None or "*" in permissions.allowed_roles(action):
        return False
    user = current_user()
    return (user is None or not permissions.can(user, action)
            or (g.token_scopes is not None and action not in g.token_scopes))


def refuse_unknown_query():
    view = current_app.view_functions.get(request.endpoint or "")
    if not request.args or not hasattr(view, "_apidoc") or _refused_by_permission(view):
        return
    unknown = sorted(set(request.args) - documented_query_names(view))
    if unknown:
        abort(422, messages={"query": {name: ["Unknown field."] for name in unknown}})
