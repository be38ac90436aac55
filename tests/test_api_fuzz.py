"""schemathesis against /api/openapi.json: no 5xx, and every answer is one the document describes.

Every operation of the document gets generated requests — valid ones (positive) and ones that
break the schema (negative: wrong types, out-of-range numbers, bad dates and enums, missing or
extra fields) — each sent as one of a requester, a change manager, an auditor and an admin (drawn
with the example), through the WSGI app in-process. An answer fails when it is a 5xx, has a status
or content type the document does not list, has a body that does not match the documented schema
(errors included: webui/errors.py's ApiError), or accepts input the schema forbids.

Generation is derandomized (the same examples on every run, no example database) and bounded:
CHANGEFLOW_FUZZ_EXAMPLES per operation and mode, default 10. To dig deeper locally:
`CHANGEFLOW_FUZZ_EXAMPLES=200 .venv/bin/pytest tests/test_api_fuzz.py -k documented`, and
CHANGEFLOW_FUZZ_ONLY='templates' (a regular expression over "METHOD /path") to focus.

The fuzz runs on PostgreSQL only. Its time goes to generating examples (about four fifths of it
in Hypothesis and schemathesis, not in requests), some three minutes per run, and the requests
exercise the same web layer on either backend; PostgreSQL is production's database and the
stricter one — 32-bit ids, NUL characters, enforced lengths fail there, not on SQLite. The two
tests after it, which do not depend on chance (unknown fields, NUL characters), run on both.

The examples are driven with Hypothesis directly rather than through schemathesis' pytest
plugin: its fixture-based loader relies on pytest internals that pytest 9 no longer has, and one
test keeps the app and its seeded database built once.
"""
from __future__ import annotations

import os
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_schema_conformance, status_code_conformance)

from engine.demo import demo_token

MAX_EXAMPLES = int(os.environ.get("CHANGEFLOW_FUZZ_EXAMPLES", "10"))
ONLY = os.environ.get("CHANGEFLOW_FUZZ_ONLY", "")  # a regular expression over "METHOD /path", to focus
USERS = ("alice", "morgan", "audrey", "ada")  # requester, change_manager, auditor, admin
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]
SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                    print_blob=False)


def _fuzz(operation, mode: GenerationMode) -> None:
    # the caller is drawn like the rest of the example, so a failing example replays as the same person
    @SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode), username=st.sampled_from(USERS))
    def run(case, username):
        try:
            case.call_and_validate(headers={"Authorization": f"Bearer {demo_token(username)}"}, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as error:  # schemathesis' FailureGroup is a BaseExceptionGroup
            raise AssertionError(f"as {username}: {error}") from None

    run()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # see the module's docstring
def test_every_api_operation_answers_as_documented(app):
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a crash is a 500 for the checks, with its traceback logged
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    # the bearer token is ours to send (one per role), not a header for schemathesis to generate or drop
    schema.config.generation.update(with_security_parameters=False)
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if not re.search(ONLY, f"{operation.method.upper()} {operation.path}"):
            continue
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode)
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to break: no parameters, no body
            except AssertionError as error:
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}) {error}")
    if failures:
        pytest.fail(f"{len(failures)} operations answered outside their documentation:\n\n"
                    + "\n\n".join(failures), pytrace=False)
    assert operations > (50 if not ONLY else 0)


def _caller_for(app, method: str, path: str) -> str:
    """A demo user whose role the route's rule allows, so the refusal below is about the request."""
    from engine.demo import DEMO_USERS
    from engine.permissions import MATRIX

    endpoint, _args = app.url_map.bind("localhost").match(path, method=method)
    roles = MATRIX[app.view_functions[endpoint].permission_action]
    return next(username for username, _name, user_roles in DEMO_USERS
                if "*" in roles or set(user_roles) & roles)


def test_unknown_query_parameters_and_body_fields_are_refused_by_name(app, api):
    """Not left to chance: every documented operation, one made-up query parameter and body field each."""
    change_id = api.submit()["id"]  # evidence is refused for a missing change before its body is read
    spec = api.get("/api/openapi.json").get_json()
    checked = []
    for template, operations in spec["paths"].items():
        path = re.sub(r"\{change_id\}", str(change_id), template)
        path = re.sub(r"\{[^}]*(id|version|number)\}", "1", path)
        path = re.sub(r"\{[^}]+\}", "x", path)
        for method, operation in operations.items():
            if method == "parameters":
                continue
            username = _caller_for(app, method.upper(), path)
            attempts = [("query", {"query_string": {"zz_unknown": "1"}})]
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                attempts.append(("json", {"json": {"zz_unknown": 1}}))
            for location, request in attempts:
                response = api.request(method.upper(), path, username, **request)
                errors = (response.get_json(silent=True) or {}).get("errors") or []
                assert response.status_code == 422, (method, path, location, response.get_data(as_text=True)[:300])
                assert {"field": "zz_unknown", "location": location, "message": "Unknown field."} in errors, \
                    (method, path, errors)
                checked.append((method, template, location))
    assert len(checked) > 80


def test_nul_characters_are_refused_by_field_and_nothing_is_stored(app, api):
    """PostgreSQL cannot hold U+0000: anywhere in a request it is a 4xx naming the field, never a 500."""
    import io

    from .test_pages import csrf, sign_in

    app.config["PROPAGATE_EXCEPTIONS"] = False
    change_id = api.submit()["id"]
    api_cases = [
        ("GET", "/api/services/crm%00web", {}, "path", "key"),
        ("GET", "/api/changes", {"query_string": {"service": "crm\x00"}}, "query", "service"),
        ("POST", "/api/services", {"json": {"key": "nul", "name": "Nul\x00"}}, "json", "name"),
        ("POST", "/api/tasks/x/complete", {"json": {"data": {"note": "a\x00b"}}}, "json", "data.note"),
        ("POST", f"/api/changes/{change_id}/evidence", {"data": {
            "kind": "test_result", "note": "ok\x00", "file": (io.BytesIO(b"all green"), "result.txt")}},
         "form", "note"),
    ]
    for method, path, request, location, field in api_cases:
        response = api.request(method, path, "ada", **request)
        assert response.status_code in (400, 422), (path, response.status_code, response.get_data(as_text=True)[:300])
        assert {"field": field, "location": location} in [
            {k: e[k] for k in ("field", "location")} for e in response.get_json()["errors"]], response.get_json()
    assert api.get("/api/services/nul", "ada").status_code == 404
    assert api.get(f"/api/changes/{change_id}/evidence", "ada").get_json() == []

    client = app.test_client()
    sign_in(client, "ada")
    token = csrf(client.get("/admin/services/new").get_data(as_text=True))
    assert client.get("/admin/services/crm%00web").status_code == 400
    created = client.post("/admin/services/new", data={"csrf_token": token, "key": "nul", "name": "Nul\x00"})
    assert created.status_code == 400 and "name" in created.get_data(as_text=True)
    assert api.get("/api/services/nul", "ada").status_code == 404
