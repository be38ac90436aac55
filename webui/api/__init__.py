"""The REST API: one blueprint per resource, registered on the flask-smorest Api."""
from ..extensions import api
from . import (background, cab, calendar, changes, dashboard, definitions, evidence, health, impact, me,
               reports, schedule, services, tasks, templates, windows)


def register(app) -> None:
    api.init_app(app)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    api.spec.options["security"] = [{"bearerAuth": []}]
    for module in (health, changes, tasks, services, definitions, templates, cab, impact, windows, calendar,
                   schedule, evidence, background, me, dashboard, reports):
        api.register_blueprint(module.blp)
