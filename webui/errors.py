"""One JSON error shape for every API failure: {code, status, message, errors?, ...}; people at a
browser get the same facts as an HTML page."""
from __future__ import annotations

from flask import has_request_context, jsonify, render_template, request
from flask_smorest import Api
from marshmallow import INCLUDE, Schema, fields
from werkzeug.exceptions import HTTPException

from engine.errors import ChangeflowError, WorkflowFailure


def _flatten(errors, location="", prefix=""):
    """webargs nests messages by location and field; clients want a flat list naming each field."""
    flat = []
    if isinstance(errors, dict):
        for key, value in errors.items():
            if not prefix and not location and key in ("json", "query", "files", "form", "path", "headers"):
                flat.extend(_flatten(value, key, ""))
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
                flat.extend(_flatten(value, location, name))
    elif isinstance(errors, list) and all(isinstance(e, str) for e in errors):
        flat.extend({"field": prefix or "_schema", "location": location, "message": e} for e in errors)
    else:
        flat.append({"field": prefix or "_schema", "location": location, "message": str(errors)})
    return flat


class ApiError(Schema):
    """The error body as built below, so /api/openapi.json documents the answers clients really get."""

    class Meta:
        unknown = INCLUDE  # documented as additionalProperties: a domain error may add context (action, skipped)

    code = fields.Integer(required=True, metadata={"description": "the HTTP status"})
    status = fields.String(required=True, metadata={"description": "the HTTP status' name"})
    message = fields.String(required=True)
    error = fields.String(metadata={"description": "the domain error: not_found, forbidden, conflict, "
                                                   "validation_failed, workflow_error"})
    errors = fields.List(fields.Dict(), metadata={
        "description": "one entry per problem: {field, location, message} for request fields, "
                       "{file, element_id, line, message} for BPMN"})
    element_id = fields.String(allow_none=True, metadata={"description": "the failing BPMN element"})
    process_key = fields.String(allow_none=True)


class ChangeflowApi(Api):
    ERROR_SCHEMA = ApiError

    def handle_http_exception(self, error: HTTPException):
        if is_page_request():
            return error_page(error.code, error.name, error.description)
        data = getattr(error, "data", None) or {}
        payload = {"code": error.code, "status": error.name,
                   "message": data.get("message") or error.description}
        if "messages" in data:
            payload["errors"] = _flatten(data["messages"])
            payload["message"] = "The request is not valid."
        response = jsonify(payload)
        response.status_code = error.code
        for name, value in (data.get("headers") or {}).items():
            response.headers[name] = value
        if error.code == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="changeflow"'
        return response


STATUS_NAMES = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
                413: "Payload Too Large", 422: "Unprocessable Entity"}


def is_page_request() -> bool:
    """People at a browser get HTML error pages; the API (and anything under /api) gets JSON."""
    return has_request_context() and not request.path.startswith(("/api", "/static/", "/calendar.ics"))


def error_page(code: int, title: str, message: str, errors=None):
    return render_template("error.html", code=code, title=title, message=message, errors=errors or []), code


def handle_domain_error(error: ChangeflowError):
    status_names = STATUS_NAMES
    if is_page_request():
        return error_page(error.status, status_names.get(error.status, "Error"), error.message, error.errors)
    payload = {"code": error.status, "status": status_names.get(error.status, ""), "error": error.code,
               "message": error.message}
    if error.errors is not None:
        payload["errors"] = error.errors
    if isinstance(error, WorkflowFailure):
        payload["element_id"] = error.element_id
        payload["process_key"] = error.process_key
    payload.update({k: v for k, v in error.extra.items() if k not in payload})
    response = jsonify(payload)
    response.status_code = error.status
    return response
