from __future__ import annotations

from flask_smorest import Blueprint
from sqlalchemy import select

from engine import catalog
from engine.models import Service
from engine.transactions import run_command

from ..auth import current_user, permission
from ..extensions import db
from . import schemas

blp = Blueprint("services", __name__, url_prefix="/api/services", description="Services changes affect")


@blp.route("", methods=["GET"])
@permission("service.read")
@blp.response(200, schemas.ServiceOut(many=True))
def list_services():
    return db.session.scalars(select(Service).order_by(Service.key)).all()


@blp.route("", methods=["POST"])
@permission("service.write")
@blp.arguments(schemas.Service)
@blp.response(201, schemas.ServiceOut)
def create_service(fields):
    user = current_user()
    return run_command(db.session, user, catalog.create_service, user, fields)
