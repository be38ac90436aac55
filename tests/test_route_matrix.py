"""Every route in the URL map, for every role, answers as engine/permissions.py's MATRIX says.

The walk is driven by `app.url_map`, not by a list kept by hand: a route added without
`@permission` (API) or `@page` (pages) fails here with its endpoint named, and one whose rule lets
the wrong roles in fails for each of them.

Path values are placeholders that exist nowhere (id 99999999, key "no-such-…"): the role check runs
before any lookup, so a refused role is refused all the same, and the scope rules that look at the
resource (a requester reading someone else's change) never fire. That keeps "refused by role"
(the decorators' "Your roles (…) do not allow '<action>'.") apart from every other 403.
"""
from __future__ import annotations

import html
import re

import pytest
from werkzeug.routing import IntegerConverter

from engine.demo import DEMO_USERS, demo_token
from engine.permissions import MATRIX

from .test_pages import csrf, sign_in

# Public by design and outside the matrix: static files, the API document and its Swagger UI.
EXEMPT_ENDPOINTS = {
    "static": "CSS, scripts and images of the pages",
    "api-docs.openapi_json": "the OpenAPI document (/api/openapi.json)",
    "api-docs.openapi_swagger_ui": "the Swagger UI page (/api/docs)",
    "api_docs_assets.asset": "Swagger UI's files (/api/docs/assets/…)",
}
ANONYMOUS = "anonymous"
ROLES = {username: roles for username, _name, roles in DEMO_USERS}
PLACEHOLDER_INT = 99999999  # fits PostgreSQL's integer columns
PLACEHOLDER_VALUES = {"fmt": "csv"}  # /reports/<kind>.<fmt>: a format that exists, for an unknown kind


def _routes(app):
    """(rule, method, endpoint, action) for every routed method; exempt endpoints left out."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if rule.endpoint in EXEMPT_ENDPOINTS:
            continue
        action = getattr(app.view_functions[rule.endpoint], "permission_action", None)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method, rule.endpoint, action


def _placeholder_path(rule) -> str:
    values = {}
    for name, converter in rule._converters.items():
        if name in PLACEHOLDER_VALUES:
            values[name] = PLACEHOLDER_VALUES[name]
        elif isinstance(converter, IntegerConverter):
            values[name] = PLACEHOLDER_INT
        else:
            values[name] = f"no-such-{name.replace('_', '-')}"
    path = rule.rule
    for name, value in values.items():
        path = re.sub(rf"<(?:[^:<>]+:)?{name}>", str(value), path)
    return path


def _is_page(endpoint: str) -> bool:
    return endpoint.startswith("pages.")


def _message(response) -> str:
    body = response.get_json(silent=True)
    if isinstance(body, dict):
        return str(body.get("message", ""))
    page = response.get_data(as_text=True)
    # pages answer with an HTML error page whose alert paragraph carries the message
    alert = re.search(r'<p role="alert">(.*?)</p>', page, re.S)
    return html.unescape(alert.group(1) if alert else page)


def _role_refusal(roles: tuple[str, ...], action: str) -> str:
    return f"Your roles ({', '.join(roles)}) do not allow '{action}'."


class Caller:
    """One signed-in page session and one API token per demo user; the session survives sign-outs."""

    def __init__(self, app):
        app.config["PROPAGATE_EXCEPTIONS"] = False  # a crash is one more 500 in the list, not the end
        self.app = app
        self.sessions: dict[str, tuple[str, str]] = {}
        for username in ROLES:
            client = app.test_client()
            assert sign_in(client, username).status_code == 302, username
            token = csrf(client.get("/inbox").get_data(as_text=True))
            self.sessions[username] = (client.get_cookie("session").value, token)

    def call(self, who: str, method: str, path: str, page: bool):
        client = self.app.test_client()
        if page:
            kwargs = {}
            if who != ANONYMOUS:
                cookie, token = self.sessions[who]
                client.set_cookie("session", cookie)  # as signed in, even after /logout cleared it
                if method != "GET":
                    kwargs["data"] = {"csrf_token": token}
            elif method != "GET":
                anonymous_token = csrf(client.get("/login").get_data(as_text=True))
                kwargs["data"] = {"csrf_token": anonymous_token}
            return client.open(path, method=method, **kwargs)
        headers = {} if who == ANONYMOUS else {"Authorization": f"Bearer {demo_token(who)}"}
        body = {} if method == "GET" else {"json": {}}
        return client.open(path, method=method, headers=headers, **body)


def _verdict(who: str, action: str, endpoint: str, response) -> str | None:
    """What is wrong with this answer, or None."""
    status, message = response.status_code, _message(response)
    location = response.headers.get("Location", "")
    open_route = "*" in MATRIX[action]
    if status >= 500:
        return f"answered {status}: {message[:200]}"
    if who == ANONYMOUS:
        if open_route:
            return None if status not in (401, 403) else f"open route refused a visitor with {status}"
        if _is_page(endpoint):
            return None if status == 302 and location.startswith("/login") else f"expected a redirect to /login, got {status}"
        return None if status == 401 else f"expected 401 without a token, got {status}"
    roles = ROLES[who]
    if _is_page(endpoint) and status in (301, 302, 303, 307) and location.startswith("/login") \
            and endpoint != "pages.logout":  # signing out lands on /login; nothing else may
        return f"sent a signed-in {'/'.join(roles)} to {location}"
    allowed = open_route or any(role in MATRIX[action] for role in roles)
    if allowed:
        if status == 403 and f"do not allow '{action}'" in message:
            return f"refused a role the matrix allows: {message}"
        return None
    if status != 403 or message != _role_refusal(roles, action):
        return f"expected 403 {_role_refusal(roles, action)!r}, got {status} {message[:200]!r}"
    return None


def test_every_route_declares_a_rule_in_the_matrix(app):
    missing = [f"{endpoint} ({method} {rule.rule}): "
               + ("no @permission/@page" if action is None else f"action {action!r} is not in MATRIX")
               for rule, method, endpoint, action in _routes(app) if action not in MATRIX]
    assert missing == []
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert set(EXEMPT_ENDPOINTS) <= endpoints, "an exempt endpoint is gone: drop it from EXEMPT_ENDPOINTS"


def test_every_route_answers_every_role_as_the_matrix_says(app):
    caller = Caller(app)
    failures, checked = [], 0
    for rule, method, endpoint, action in _routes(app):
        if action not in MATRIX:
            continue  # reported by the test above, with its endpoint
        path = _placeholder_path(rule)
        for who in (*ROLES, ANONYMOUS):
            response = caller.call(who, method, path, _is_page(endpoint))
            checked += 1
            problem = _verdict(who, action, endpoint, response)
            if problem:
                failures.append(f"{method} {path} [{endpoint}, {action}] as {who}: {problem}")
    assert failures == []
    assert checked > 100 * (len(ROLES) + 1)  # the walk really covered the map


@pytest.mark.parametrize("username", ["alice", "audrey"])
def test_the_walk_tells_a_role_refusal_from_other_answers(app, username):
    """The verdict itself: a refused role must be refused by the matrix's words, not by a 404."""
    caller = Caller(app)
    outbox = caller.call(username, "GET", "/api/admin/outbox", page=False)
    page = caller.call(username, "GET", "/admin/users", page=True)
    if username == "alice":
        assert _verdict("alice", "outbox.read", "background.outbox", outbox) is None
        assert _message(outbox) == "Your roles (requester) do not allow 'outbox.read'."
        assert _verdict("alice", "user.read", "pages.admin_users", page) is None
        missing = caller.call("alice", "GET", "/api/changes/99999999", page=False)
        assert missing.status_code == 404
        assert _verdict("alice", "outbox.read", "background.outbox", missing) is not None
    else:
        assert outbox.status_code == 200 and page.status_code == 200
        write = caller.call("audrey", "POST", "/admin/users/new", page=True)
        assert _verdict("audrey", "user.manage", "pages.admin_new_user", write) is None
        assert write.status_code == 403
