"""Domain errors. The web layer maps each to one HTTP status; the CLI prints them."""
from __future__ import annotations


class ChangeflowError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, errors: list | dict | None = None, **extra):
        super().__init__(message)
        self.message = message
        self.errors = errors
        self.extra = extra


class NotFound(ChangeflowError):
    status = 404
    code = "not_found"


class Forbidden(ChangeflowError):
    """The caller is known but may not do this; `message` names the rule."""

    status = 403
    code = "forbidden"


class Conflict(ChangeflowError):
    """The resource changed under the caller (task no longer ready, concurrent update)."""

    status = 409
    code = "conflict"


class ValidationFailed(ChangeflowError):
    """Input is wrong; `errors` lists each field (or BPMN element) and why."""

    status = 422
    code = "validation_failed"


class WorkflowFailure(ChangeflowError):
    """A script, expression or service task failed; the command was rolled back.

    `element_id` names the BPMN element; the caller records it as an incident after rollback.
    """

    status = 422
    code = "workflow_error"

    def __init__(self, message: str, *, element_id: str | None, process_key: str, change_id: int | None = None):
        super().__init__(message)
        self.element_id = element_id
        self.process_key = process_key
        self.change_id = change_id
