"""Validating submitted task data against the task's JSON Schema."""
from __future__ import annotations

import json
from functools import lru_cache

from jsonschema import Draft202012Validator, FormatChecker

from .errors import ValidationFailed

_FORMATS = FormatChecker()


@lru_cache(maxsize=256)
def _validator(schema_text: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_text), format_checker=_FORMATS)


def form_errors(schema_text: str, data: dict) -> list[dict]:
    """Each problem as {field, message}; `field` is a dotted path ('' for the form as a whole)."""
    problems = []
    for error in sorted(_validator(schema_text).iter_errors(data), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "required":
            missing = [name for name in error.validator_value if name not in (error.instance or {})]
            for name in missing:
                problems.append({"field": f"{path}.{name}" if path else name, "message": "is required"})
            continue
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            for name in sorted(set(error.instance) - allowed):
                problems.append({"field": f"{path}.{name}" if path else name,
                                 "message": "is not a field of this form"})
            continue
        problems.append({"field": path, "message": error.message})
    unique = []
    for problem in problems:  # jsonschema reports a missing field once per `required` keyword
        if problem not in unique:
            unique.append(problem)
    return unique


def validate_form(schema_text: str, data: dict, *, form_name: str) -> None:
    problems = form_errors(schema_text, data)
    if problems:
        raise ValidationFailed(f"The data does not match the form '{form_name}'.", errors=problems)
