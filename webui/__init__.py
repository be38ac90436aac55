"""The Flask app: REST API (and, as it grows, the pages) over the engine."""
from __future__ import annotations

from flask import Flask

from engine.config import Settings
from engine.db import sqlalchemy_engine_options
from engine.errors import ChangeflowError


def create_app(settings: Settings | None = None, **config) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__, instance_path=str(settings.instance_dir.resolve()))
    app.config.update(
        CHANGEFLOW_SETTINGS=settings,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=sqlalchemy_engine_options(settings.database_url),
        REDIS_URL=settings.redis_url,
        SECRET_KEY=settings.secret_key or None,
        JSON_SORT_KEYS=False,
        API_TITLE="Changeflow API",
        API_VERSION="0.1.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="/api/docs/assets/",
        API_SPEC_OPTIONS={
            "info": {"description": "Change requests, their BPMN processes, the task inbox and audit traces. "
                                    "Authenticate with `Authorization: Bearer <token>`."},
        },
    )
    app.config.update(config)
    if settings.database_url.startswith("sqlite"):
        settings.instance_dir.mkdir(parents=True, exist_ok=True)

    from . import api, background, docs
    from .errors import handle_domain_error
    from .extensions import db

    db.init_app(app)
    background.init_app(app)
    api.register(app)
    docs.register(app)
    app.register_error_handler(ChangeflowError, handle_domain_error)
    return app
