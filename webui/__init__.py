"""The Flask app: REST API (and, as it grows, the pages) over the engine."""
from __future__ import annotations

import os
import secrets
import time
from datetime import timedelta
from pathlib import Path

from flask import Flask

from engine import sandbox_limits
from engine.config import Settings
from engine.db import sqlalchemy_engine_options
from engine.errors import ChangeflowError

from .json_responses import ResponseJSONProvider


def _instance_secret(instance_dir: Path) -> str:
    """Without SECRET_KEY, a random key kept in the instance directory (sessions survive restarts)."""
    path = Path(instance_dir) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another web worker made it a moment ago
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    for _ in range(50):  # the other worker may still be writing it
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.01)
    raise RuntimeError(f"{path} is empty; delete it or set SECRET_KEY")


def create_app(settings: Settings | None = None, **config) -> Flask:
    settings = settings or Settings.from_env()
    sandbox_limits.configure(sandbox_limits.ScriptLimits.from_settings(settings))
    app = Flask(__name__, instance_path=str(settings.instance_dir.resolve()))
    app.json = ResponseJSONProvider(app)
    app.config.update(
        CHANGEFLOW_SETTINGS=settings,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=sqlalchemy_engine_options(settings.database_url),
        REDIS_URL=settings.redis_url,
        SECRET_KEY=settings.secret_key or _instance_secret(settings.instance_dir),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
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

    from . import api, background, docs, pages
    from .errors import handle_domain_error
    from .extensions import db

    db.init_app(app)
    background.init_app(app)
    api.register(app)
    app.register_blueprint(pages.blp)
    app.jinja_env.globals["inbox_count"] = pages.tasks.inbox_count
    app.jinja_env.filters["zip_labels"] = lambda values: [(v, str(v).replace("_", " ")) for v in values]
    docs.register(app)
    app.register_error_handler(ChangeflowError, handle_domain_error)
    return app
