"""The REST API: one blueprint per resource, registered on the flask-smorest Api."""
from flask_smorest.spec.plugins import integerconverter2paramschema
from werkzeug.routing import IntegerConverter

from ..extensions import api
from .request_checks import refuse_nul_characters, refuse_unknown_query
from . import (background, cab, calendar, changes, dashboard, definitions, evidence, health, impact, me,
               reports, schedule, services, tasks, templates, windows)

DATABASE_INT_MAX = 2**31 - 1  # PostgreSQL's integer columns; SQLite overflows past 2**63


class DatabaseInt(IntegerConverter):
    """`<int:…>` bounded to what an id column holds: a larger id is a 404, not an overflow (500)."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", DATABASE_INT_MAX)
        super().__init__(map, *args, **kwargs)


api.register_converter(DatabaseInt, integerconverter2paramschema)  # documented with its maximum


def register(app) -> None:
    # before any route is added: the pages' blueprint, registered after the API, uses it too
    app.url_map.converters["int"] = DatabaseInt
    api.init_app(app)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    api.spec.options["security"] = [{"bearerAuth": []}]
    for module in (health, changes, tasks, services, definitions, templates, cab, impact, windows, calendar,
                   schedule, evidence, background, me, dashboard, reports):
        api.register_blueprint(module.blp)
    app.before_request(refuse_nul_characters)  # the pages' requests too
    app.before_request(refuse_unknown_query)
