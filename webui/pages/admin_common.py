"""The admin index, and what the admin pages share: posted forms turned into the API's request bodies,
and every refusal (schema or engine) turned into an error at the field it is about."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, NamedTuple

from flask import render_template
from marshmallow import ValidationError

from engine import permissions
from engine.errors import ChangeflowError

from . import blp
from .security import page, signed_in_user


class Area(NamedTuple):
    endpoint: str
    title: str
    summary: str
    action: str  # reading the area needs this; the area's own page decides what may be changed


AREAS = (
    Area("pages.admin_users", "Users and roles", "People, their roles, deactivating, passwords.", "user.read"),
    Area("pages.admin_services", "Services and dependencies", "The service catalogue and what needs what.",
         "service.read"),
    Area("pages.admin_windows", "Maintenance windows and blackouts", "When changes may, or may not, happen.",
         "window.read"),
    Area("pages.admin_templates", "Standard-change templates", "Pre-approved templates and the proposals "
         "waiting for a change manager.", "template.read"),
    Area("pages.outbox", "Notification outbox", "Notifications and dead letters.", "outbox.read"),
)


def visible_areas() -> list[Area]:
    user = signed_in_user()
    return [area for area in AREAS if permissions.can(user, area.action)]


@blp.app_context_processor
def _admin_globals():
    return {"admin_areas": visible_areas}


@blp.route("/admin", methods=["GET"])
@page("admin.index")
def admin_index():
    """Links to the admin areas the signed-in person may see."""
    return render_template("admin_index.html", areas=visible_areas())


# -- forms ---------------------------------------------------------------------------------------

def text(form, name: str) -> str:
    return (form.get(name) or "").strip()


def lines(value: str) -> list[str]:
    """A text area with one item per line; blank lines left out."""
    return [line.strip() for line in (value or "").splitlines() if line.strip()]


def utc_input(value: str) -> str:
    """A datetime-local value (entered in UTC) as ISO 8601 with its offset; anything else unchanged,
    so the schema names what is wrong with it."""
    return f"{value}:00+00:00" if len(value) == 16 and "T" in value else value


def utc_field(moment: datetime | None) -> str:
    """A stored moment as a datetime-local value, in UTC."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M") if moment else ""


def form_errors(error: Exception, default_field: str = "") -> tuple[dict, int]:
    """{field: message} and the status to answer with; a refusal naming no field goes to
    `default_field` ('' is the message above the form)."""
    found: dict[str, list[str]] = {}
    if isinstance(error, ValidationError):
        messages = error.messages if isinstance(error.messages, dict) else {"": error.messages}
        for name, message in messages.items():
            field = "" if name == "_schema" else str(name)
            found.setdefault(field, []).extend(_texts(message))
        return {k: "; ".join(v) for k, v in found.items()}, 422
    for item in error.errors or []:
        if isinstance(item, dict) and item.get("message"):
            found.setdefault(item.get("field") or default_field, []).append(item["message"])
    return ({k: "; ".join(v) for k, v in found.items()} or {default_field: error.message}), error.status


def _texts(message) -> list[str]:
    if isinstance(message, dict):  # list items: {index: [messages]}
        return [text for value in message.values() for text in _texts(value)]
    return [str(m) for m in message] if isinstance(message, list) else [str(message)]


def submit(command: Callable, data=None, schema=None, default_field: str = ""):
    """Load `data` through the API's `schema` (if any), then `command(fields)`.

    Returns (result, {}, 200), or (None, errors by field, status) when anything refused it — the
    command runs in its own transaction (run_command), so a refusal stores nothing."""
    try:
        fields = schema.load(data) if schema is not None else data
        return command(fields), {}, 200
    except (ValidationError, ChangeflowError) as error:
        if isinstance(error, ChangeflowError) and error.status == 404:
            raise  # what the page is about does not exist: the usual not-found answer
        errors, status = form_errors(error, default_field)
        return None, errors, status
