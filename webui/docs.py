"""Serves Swagger UI's files from the swagger-ui-bundle package (no CDN, works offline)."""
from __future__ import annotations

from flask import Blueprint, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from .auth import permission

bp = Blueprint("api_docs_assets", __name__)


@bp.route("/api/docs/assets/<path:filename>")
@permission("health.read")
def asset(filename):
    return send_from_directory(swagger_ui_path, filename, max_age=86400)


def register(app) -> None:
    app.register_blueprint(bp)
