"""JSON responses are written by orjson (webui/json_responses.py); they must read as Flask's would."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone


def test_response_bodies_are_the_json_flask_would_write(app):
    document = {"b": 1, "a": ["é", None, 1.5], "when": datetime(2027, 1, 1, 1, 0, tzinfo=timezone.utc),
                "later": datetime(2027, 1, 1, 1, 0, 0, 250000, tzinfo=timezone(timedelta(hours=1))), 3: "three"}
    with app.app_context():
        body = app.json.response(document).get_data(as_text=True)
    assert body.endswith("}\n") and body.index('"3"') < body.index('"a"') < body.index('"b"')  # keys sorted
    assert json.loads(body) == {"3": "three", "a": ["é", None, 1.5], "b": 1, "when": "2027-01-01T01:00:00+00:00",
                                "later": "2027-01-01T01:00:00.250000+01:00"}


def test_what_orjson_refuses_is_still_written(app):
    """A form's free JSON may hold an integer beyond 64 bits; orjson refuses it, Flask's writer does not."""
    with app.app_context():
        response = app.json.response({"serial": 2**70})
    assert response.status_code == 200 and json.loads(response.get_data()) == {"serial": 2**70}
